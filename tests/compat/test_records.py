"""Record operations: add, update, upsert, delete, get, query, count, peek."""

import base64
import struct

import numpy as np
import pytest

from _helpers import by_id, records_url

E3 = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [0.0, 0.0, 1.0]}


@pytest.fixture
def abc(collection):
    collection.add(
        ids=["a", "b", "c"],
        embeddings=[E3["a"], E3["b"], E3["c"]],
        documents=["apple pie", "banana split", None],
        metadatas=[{"k": 1, "s": "x"}, None, {"k": 3, "arr": [1, 2]}],
        uris=["uri://a", None, None],
    )
    return collection


def test_add_and_get_roundtrip(abc):
    res = abc.get(include=["embeddings", "documents", "metadatas", "uris"])
    assert sorted(res["ids"]) == ["a", "b", "c"]
    rec = by_id(res)
    for rid in "abc":
        assert np.allclose(rec[rid]["embedding"], E3[rid])
    assert rec["a"]["document"] == "apple pie"
    assert rec["b"]["document"] == "banana split"
    assert rec["c"]["document"] is None
    assert rec["a"]["metadata"] == {"k": 1, "s": "x"}
    assert rec["b"]["metadata"] is None
    assert rec["c"]["metadata"] == {"k": 3, "arr": [1, 2]}
    assert rec["a"]["uri"] == "uri://a"
    assert rec["b"]["uri"] is None
    assert abc.count() == 3


def test_add_existing_id_is_not_overwritten(abc):
    abc.add(ids=["a", "d"], embeddings=[[9.0, 9.0, 9.0], [1.0, 1.0, 1.0]],
            documents=["NEW", "dd"], metadatas=[{"k": 99}, {"k": 4}])
    assert abc.count() == 4
    rec = by_id(abc.get(ids=["a", "d"], include=["embeddings", "documents", "metadatas"]))
    assert np.allclose(rec["a"]["embedding"], E3["a"])
    assert rec["a"]["document"] == "apple pie"
    assert rec["a"]["metadata"] == {"k": 1, "s": "x"}
    assert rec["d"]["document"] == "dd"
    assert rec["d"]["metadata"] == {"k": 4}


def test_embeddings_roundtrip_float32(collection):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20, 16)).astype(np.float32)
    ids = [f"v{i}" for i in range(20)]
    collection.add(ids=ids, embeddings=x)
    rec = by_id(collection.get(include=["embeddings"]))
    got = np.array([rec[i]["embedding"] for i in ids])
    assert np.allclose(got, x, rtol=1e-6, atol=1e-6)


def test_metadata_value_types_roundtrip(collection):
    md = {"i": 1, "f": 1.5, "whole_float": 2.0, "s": "text", "t": True, "fl": False,
          "neg": -7, "si": ["a", "b"], "ii": [1, 2, 3], "ff": [0.5, 1.5], "bb": [True, False]}
    collection.add(ids=["m"], embeddings=[[1.0, 2.0]], metadatas=[md])
    got = collection.get(ids=["m"], include=["metadatas"])["metadatas"][0]
    assert got == md
    assert type(got["i"]) is int and type(got["neg"]) is int
    assert type(got["f"]) is float and type(got["whole_float"]) is float
    assert type(got["t"]) is bool and type(got["fl"]) is bool
    assert [type(v) for v in got["bb"]] == [bool, bool]
    assert [type(v) for v in got["ii"]] == [int, int, int]


def test_update(abc):
    abc.update(ids=["a"], metadatas=[{"s": None, "n": 5}])
    abc.update(ids=["b"], embeddings=[[0.0, 2.0, 0.0]], documents=["banana 2"])
    rec = by_id(abc.get(include=["embeddings", "documents", "metadatas", "uris"]))
    # a: key set to None removed, other keys kept, new key added; document/embedding untouched
    assert rec["a"]["metadata"] == {"k": 1, "n": 5}
    assert rec["a"]["document"] == "apple pie"
    assert rec["a"]["uri"] == "uri://a"
    assert np.allclose(rec["a"]["embedding"], E3["a"])
    assert rec["b"]["document"] == "banana 2"
    assert np.allclose(rec["b"]["embedding"], [0.0, 2.0, 0.0])
    assert rec["b"]["metadata"] is None


def test_update_unknown_ids_are_ignored(abc):
    abc.update(ids=["zz", "b"], embeddings=[[5.0, 5.0, 5.0], [0.0, 3.0, 0.0]],
               metadatas=[{"x": 1}, {"x": 2}])
    assert abc.count() == 3
    res = abc.get(ids=["zz", "b"], include=["metadatas", "embeddings"])
    assert res["ids"] == ["b"]
    assert res["metadatas"] == [{"x": 2}]
    assert np.allclose(res["embeddings"][0], [0.0, 3.0, 0.0])


def test_update_only_unknown_ids(abc):
    abc.update(ids=["nope"], embeddings=[[1.0, 1.0, 1.0]])
    assert abc.count() == 3
    assert abc.get(ids=["nope"])["ids"] == []


def test_update_embedding_changes_query(abc):
    abc.update(ids=["c"], embeddings=[[1.0, 0.1, 0.0]])
    res = abc.query(query_embeddings=[[1.0, 0.1, 0.0]], n_results=1, include=["distances"])
    assert res["ids"] == [["c"]]
    assert res["distances"][0][0] == pytest.approx(0.0, abs=1e-6)


def test_upsert(abc):
    abc.upsert(
        ids=["a", "e"],
        embeddings=[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
        metadatas=[{"k": None, "u": 1}, {"u": 2}],
        documents=["apple 2", "eel"],
    )
    assert abc.count() == 4
    rec = by_id(abc.get(include=["embeddings", "documents", "metadatas"]))
    assert np.allclose(rec["a"]["embedding"], [2.0, 0.0, 0.0])
    assert rec["a"]["metadata"] == {"s": "x", "u": 1}  # merged, k removed
    assert rec["a"]["document"] == "apple 2"
    assert np.allclose(rec["e"]["embedding"], [0.0, 2.0, 0.0])
    assert rec["e"]["metadata"] == {"u": 2}
    assert rec["e"]["document"] == "eel"


def test_upsert_existing_keeps_fields_not_given(abc):
    abc.upsert(ids=["a"], embeddings=[[5.0, 5.0, 5.0]])
    rec = by_id(abc.get(ids=["a"], include=["embeddings", "documents", "metadatas", "uris"]))
    assert np.allclose(rec["a"]["embedding"], [5.0, 5.0, 5.0])
    assert rec["a"]["document"] == "apple pie"
    assert rec["a"]["metadata"] == {"k": 1, "s": "x"}
    assert rec["a"]["uri"] == "uri://a"


def test_get_order_is_insertion_order(collection):
    ids = [f"id{i:02d}" for i in range(20)]
    collection.add(ids=ids, embeddings=[[float(i), 1.0] for i in range(20)])
    assert collection.get(include=[])["ids"] == ids
    collection.add(ids=["aaa"], embeddings=[[0.0, 0.0]])
    assert collection.get(include=[])["ids"] == ids + ["aaa"]


def test_get_order_stable_under_update_and_upsert(collection):
    # get() (and so limit/offset paging) lists records in insertion order; rewriting a record
    # with update or upsert does not move it
    ids = [f"id{i:02d}" for i in range(10)]
    collection.add(ids=ids, embeddings=[[float(i), 1.0] for i in range(10)])
    collection.update(ids=["id03"], metadatas=[{"x": 1}])
    assert collection.get(include=[])["ids"] == ids
    collection.upsert(ids=["id05"], embeddings=[[5.0, 5.0]])
    assert collection.get(include=[])["ids"] == ids
    assert collection.get(limit=3, offset=3, include=[])["ids"] == ["id03", "id04", "id05"]


def test_get_by_ids(abc):
    res = abc.get(ids=["c", "a", "missing"])
    assert sorted(res["ids"]) == ["a", "c"]
    assert res["included"] == ["metadatas", "documents"]
    rec = by_id(res)
    assert rec["a"]["document"] == "apple pie" and rec["c"]["document"] is None


def test_get_where_and_where_document(abc):
    assert abc.get(where={"k": 1})["ids"] == ["a"]
    assert abc.get(where_document={"$contains": "banana"})["ids"] == ["b"]
    assert abc.get(ids=["a", "b"], where={"k": {"$gte": 1}})["ids"] == ["a"]
    assert abc.get(where={"k": 99})["ids"] == []


def test_get_limit_offset(collection):
    ids = [f"p{i:02d}" for i in range(12)]
    collection.add(ids=ids, embeddings=[[float(i), 0.0] for i in range(12)],
                   metadatas=[{"even": i % 2 == 0} for i in range(12)])
    everything = collection.get(include=[])["ids"]
    assert sorted(everything) == ids
    pages = []
    for off in range(0, 12, 5):
        pages += collection.get(limit=5, offset=off, include=[])["ids"]
    assert pages == everything
    assert collection.get(limit=5, include=[])["ids"] == everything[:5]
    assert collection.get(offset=10, include=[])["ids"] == everything[10:]
    assert collection.get(limit=5, offset=20, include=[])["ids"] == []
    even = collection.get(where={"even": True}, include=[])["ids"]
    assert len(even) == 6
    assert collection.get(where={"even": True}, limit=2, offset=1, include=[])["ids"] == even[1:3]


def test_count(collection):
    assert collection.count() == 0
    collection.add(ids=[str(i) for i in range(7)], embeddings=[[float(i), 0.0] for i in range(7)])
    assert collection.count() == 7
    collection.delete(ids=["0", "1"])
    assert collection.count() == 5


def test_count_raw(api, collection):
    collection.add(ids=["a", "b"], embeddings=[[1.0, 2.0], [3.0, 4.0]])
    r = api.get(records_url(None, collection, "count"), params={"read_level": "index_and_wal"})
    assert r.status_code == 200
    assert r.json() == 2


def test_peek(collection):
    ids = [f"k{i:02d}" for i in range(15)]
    collection.add(ids=ids, embeddings=[[float(i), 1.0] for i in range(15)],
                   documents=[f"doc {i}" for i in range(15)])
    order = collection.get(include=[])["ids"]
    p = collection.peek()
    assert p["ids"] == order[:10]
    assert p["embeddings"] is not None and len(p["embeddings"]) == 10
    assert p["documents"] == [f"doc {int(i[1:])}" for i in order[:10]]
    assert p["metadatas"] == [None] * 10
    p3 = collection.peek(3)
    assert p3["ids"] == order[:3]
    assert np.allclose(p3["embeddings"], [[float(int(i[1:])), 1.0] for i in order[:3]])


def test_delete_by_ids(abc):
    out = abc.delete(ids=["a", "b"])
    if out is not None:
        assert out["deleted"] == 2
    assert abc.count() == 1
    assert abc.get()["ids"] == ["c"]


def test_delete_by_where(abc):
    out = abc.delete(where={"k": {"$gte": 1}})
    if out is not None:
        assert out["deleted"] == 2
    assert abc.get()["ids"] == ["b"]


def test_delete_by_where_document(abc):
    out = abc.delete(where_document={"$contains": "banana"})
    if out is not None:
        assert out["deleted"] == 1
    assert sorted(abc.get()["ids"]) == ["a", "c"]


def test_delete_ids_and_where_intersect(abc):
    abc.delete(ids=["a", "b"], where={"k": 1})
    assert sorted(abc.get()["ids"]) == ["b", "c"]


def test_delete_with_limit(collection):
    collection.add(ids=[f"l{i}" for i in range(6)], embeddings=[[float(i), 0.0] for i in range(6)],
                   metadatas=[{"grp": "x" if i < 4 else "y"} for i in range(6)])
    out = collection.delete(where={"grp": "x"}, limit=2)
    if out is not None:
        assert out["deleted"] == 2
    assert collection.count() == 4
    assert len(collection.get(where={"grp": "x"}, include=[])["ids"]) == 2
    assert len(collection.get(where={"grp": "y"}, include=[])["ids"]) == 2


def test_delete_matching_nothing(abc):
    out = abc.delete(where={"k": 12345})
    if out is not None:
        assert out["deleted"] == 0
    assert abc.count() == 3


def test_query_basic(abc):
    res = abc.query(query_embeddings=[[1.0, 0.1, 0.0], [0.0, 1.0, 0.1]], n_results=2)
    assert res["ids"] == [["a", "b"], ["b", "c"]]
    assert res["included"] == ["metadatas", "documents", "distances"]
    assert np.allclose(res["distances"], [[0.01, 1.81], [0.01, 1.81]], atol=1e-5)
    assert res["documents"] == [["apple pie", "banana split"], ["banana split", None]]
    assert res["metadatas"] == [[{"k": 1, "s": "x"}, None], [None, {"k": 3, "arr": [1, 2]}]]
    assert res["embeddings"] is None and res["uris"] is None


def test_query_n_results_larger_than_count(abc):
    res = abc.query(query_embeddings=[[1.0, 0.1, 0.2]], n_results=100, include=["distances"])
    assert res["ids"] == [["a", "c", "b"]]
    assert len(res["distances"][0]) == 3


def test_query_default_n_results(collection):
    collection.add(ids=[str(i) for i in range(15)], embeddings=[[float(i), 0.0] for i in range(15)])
    res = collection.query(query_embeddings=[[0.0, 0.0]], include=[])
    assert res["ids"] == [[str(i) for i in range(10)]]


def test_query_where_and_where_document(abc):
    res = abc.query(query_embeddings=[[0.0, 0.0, 1.0]], n_results=3, where={"k": {"$lt": 3}},
                    include=["distances"])
    assert res["ids"] == [["a"]]
    res = abc.query(query_embeddings=[[0.0, 0.0, 1.0]], n_results=3,
                    where_document={"$contains": "an"}, include=["distances"])
    assert res["ids"] == [["b"]]
    res = abc.query(query_embeddings=[[0.0, 0.0, 1.0]], n_results=3, where={"k": 12345})
    assert res["ids"] == [[]]


def test_query_ids(abc):
    res = abc.query(query_embeddings=[[1.0, 0.0, 0.0]], n_results=5, ids=["b", "c"], include=["distances"])
    assert sorted(res["ids"][0]) == ["b", "c"]
    assert np.allclose(res["distances"][0], [2.0, 2.0])
    res = abc.query(query_embeddings=[[0.0, 0.9, 0.0]], n_results=1, ids=["a", "b"], include=[])
    assert res["ids"] == [["b"]]


def test_query_empty_collection(collection):
    res = collection.query(query_embeddings=[[1.0, 2.0]], n_results=3)
    assert res["ids"] == [[]]
    assert res["distances"] == [[]]
    assert res["documents"] == [[]]
    assert res["metadatas"] == [[]]


def test_raw_write_statuses_and_bodies(api, collection):
    url = records_url(None, collection, "add")
    body = {"ids": ["r1"], "embeddings": [[1.0, 2.0, 3.0]], "metadatas": None, "documents": None, "uris": None}
    r = api.post(url, json=body)
    assert r.status_code == 201
    assert isinstance(r.json(), dict)
    for op in ("update", "upsert"):
        r = api.post(records_url(None, collection, op), json=body)
        assert r.status_code == 200, op
        assert isinstance(r.json(), dict), op
    r = api.post(records_url(None, collection, "delete"), json={"ids": ["r1"], "where": None, "where_document": None})
    assert r.status_code == 200
    assert r.json() == {"deleted": 1}


def test_raw_plain_and_base64_embeddings(api, collection):
    # base64 of packed little-endian float32 (what the client sends), or plain float lists;
    # one request uses one form for all its embeddings
    def b64(*v):
        return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()

    assert b64(1.0, 2.0, 3.0) == "AACAPwAAAEAAAEBA"
    r = api.post(records_url(None, collection, "add"),
                 json={"ids": ["b64", "half"], "embeddings": [b64(1.0, 2.0, 3.0), b64(0.5, 0.5, 0.5)],
                       "metadatas": None, "documents": None, "uris": None})
    assert r.status_code == 201, r.text
    r = api.post(records_url(None, collection, "add"),
                 json={"ids": ["plain"], "embeddings": [[4.0, 5.0, 6.0]],
                       "metadatas": None, "documents": None, "uris": None})
    assert r.status_code == 201, r.text
    rec = by_id(collection.get(include=["embeddings"]))
    assert np.allclose(rec["b64"]["embedding"], [1.0, 2.0, 3.0])
    assert np.allclose(rec["half"]["embedding"], [0.5, 0.5, 0.5])
    assert np.allclose(rec["plain"]["embedding"], [4.0, 5.0, 6.0])
    res = collection.query(query_embeddings=[[1.0, 2.0, 3.0]], n_results=3, include=["distances"])
    assert res["ids"] == [["b64", "half", "plain"]]
    # the l2 space is squared: [1,2,3] vs [0.5,0.5,0.5] is 8.75
    assert np.allclose(res["distances"][0], [0.0, 8.75, 27.0])


def test_floats_travel_in_their_shortest_form(api, collection):
    # Chroma writes each f32 as its shortest decimal, so 0.1 stored comes back as 0.1
    # (not as 0.10000000149011612, the exact value of the f32 widened to f64)
    collection.add(ids=["a"], embeddings=[[0.1, 0.2, 0.3]])
    got = collection.get(include=["embeddings"])["embeddings"][0]
    assert got.tolist() == [0.1, 0.2, 0.3]
    res = collection.query(query_embeddings=[[0.1, 0.2, 0.4]], n_results=1,
                           include=["distances", "embeddings"])
    assert res["embeddings"][0][0].tolist() == [0.1, 0.2, 0.3]
    assert res["distances"] == [[0.009999999]]
    r = api.post(records_url(None, collection, "get"), json={"include": ["embeddings"]})
    assert r.json()["embeddings"] == [[0.1, 0.2, 0.3]]
