"""The order records come back in.

Real Chroma lists records in the collection's storage order: the order in which each id was
first written. `get(ids=[...])` answers in that order too (not in the order of the request),
so `get(ids)`, `get(where)`, `peek` and `limit`/`offset` paging all agree. Rewriting a record
(update, upsert of an existing id, add of an existing id) leaves it where it is; a record
deleted and added again goes to the end.
"""

import numpy as np

# first written in this order, which is neither sorted nor reverse-sorted
STORAGE = ["zeta", "alpha", "mid", "beta", "omega", "kappa", "delta"]


def _fill(collection):
    # two batches: the order holds within a batch and across batches
    collection.add(ids=STORAGE[:4], embeddings=[[float(i), 1.0] for i in range(4)],
                   metadatas=[{"g": i % 2, "n": i} for i in range(4)])
    collection.add(ids=STORAGE[4:], embeddings=[[float(i), 1.0] for i in range(4, 7)],
                   metadatas=[{"g": i % 2, "n": i} for i in range(4, 7)])
    return collection


def _ids(collection, **kwargs):
    return collection.get(include=[], **kwargs)["ids"]


def test_get_lists_storage_order(collection):
    _fill(collection)
    assert _ids(collection) == STORAGE


def test_get_by_ids_answers_in_storage_order(collection):
    _fill(collection)
    asked = ["delta", "alpha", "omega", "zeta"]
    assert _ids(collection, ids=asked) == ["zeta", "alpha", "omega", "delta"]
    assert _ids(collection, ids=list(reversed(STORAGE))) == STORAGE
    # unknown ids are left out, wherever they are asked
    assert _ids(collection, ids=["nope", "kappa", "mid", "gone"]) == ["mid", "kappa"]


def test_get_by_ids_with_fields_keeps_fields_aligned(collection):
    _fill(collection)
    res = collection.get(ids=["kappa", "alpha"], include=["metadatas", "embeddings"])
    assert res["ids"] == ["alpha", "kappa"]
    assert [m["n"] for m in res["metadatas"]] == [1, 5]
    assert np.allclose(res["embeddings"], [[1.0, 1.0], [5.0, 1.0]])


def test_get_by_ids_pages_in_storage_order(collection):
    _fill(collection)
    asked = ["delta", "mid", "zeta", "omega", "alpha"]
    in_order = ["zeta", "alpha", "mid", "omega", "delta"]
    assert _ids(collection, ids=asked) == in_order
    assert _ids(collection, ids=asked, limit=2) == in_order[:2]
    assert _ids(collection, ids=asked, limit=2, offset=2) == in_order[2:4]
    assert _ids(collection, ids=asked, offset=4) == in_order[4:]


def test_get_by_ids_and_where_in_storage_order(collection):
    _fill(collection)
    # g == 1 holds for alpha (1), beta (3) and kappa (5)
    assert _ids(collection, ids=["kappa", "beta", "zeta", "alpha"], where={"g": 1}) == [
        "alpha", "beta", "kappa"]


def test_where_pages_agree_with_get_by_ids(collection):
    _fill(collection)
    everything = _ids(collection, where={"n": {"$gte": 0}})
    assert everything == STORAGE
    pages = []
    for offset in range(0, len(STORAGE), 3):
        pages += _ids(collection, where={"n": {"$gte": 0}}, limit=3, offset=offset)
    assert pages == STORAGE
    odd = _ids(collection, where={"g": 1})
    assert odd == ["alpha", "beta", "kappa"]
    assert _ids(collection, where={"g": 1}, limit=2, offset=1) == ["beta", "kappa"]
    assert _ids(collection, ids=list(reversed(odd))) == odd


def test_rewrites_keep_position(collection):
    _fill(collection)
    collection.update(ids=["mid"], metadatas=[{"g": 9}])
    assert _ids(collection) == STORAGE
    collection.update(ids=["alpha"], embeddings=[[9.0, 9.0]])
    assert _ids(collection) == STORAGE
    collection.upsert(ids=["zeta"], embeddings=[[8.0, 8.0]], metadatas=[{"g": 7}])
    assert _ids(collection) == STORAGE
    # add of an existing id changes nothing, its place neither
    collection.add(ids=["beta"], embeddings=[[7.0, 7.0]])
    assert _ids(collection) == STORAGE
    assert _ids(collection, ids=["zeta", "delta", "mid"]) == ["zeta", "mid", "delta"]


def test_upsert_appends_new_ids_in_batch_order(collection):
    _fill(collection)
    # existing ids stay in place, new ones go to the end in the order of the batch
    collection.upsert(ids=["new2", "omega", "new1", "alpha"],
                      embeddings=[[1.0, 2.0], [2.0, 2.0], [3.0, 2.0], [4.0, 2.0]])
    assert _ids(collection) == STORAGE + ["new2", "new1"]
    assert _ids(collection, ids=["new1", "alpha", "new2"]) == ["alpha", "new2", "new1"]


def test_deleted_and_added_again_goes_to_the_end(collection):
    _fill(collection)
    collection.delete(ids=["alpha"])
    collection.add(ids=["alpha"], embeddings=[[0.0, 0.0]])
    expected = [i for i in STORAGE if i != "alpha"] + ["alpha"]
    assert _ids(collection) == expected
    assert _ids(collection, ids=["alpha", "zeta"]) == ["zeta", "alpha"]
    assert _ids(collection, limit=2, offset=5) == expected[5:7]


def test_peek_follows_storage_order(collection):
    _fill(collection)
    assert collection.peek(3)["ids"] == STORAGE[:3]
    assert collection.peek()["ids"] == STORAGE
