"""get/query with every combination of `include`.

A field that was not asked for is None; a field that was asked for is a list (per query for
query results) with None entries where a record has no value.
"""

import itertools

import numpy as np
import pytest

from _helpers import ALL_GET_INCLUDES, ALL_QUERY_INCLUDES

RECORDS = {
    # id: (embedding, document, metadata, uri)
    "full": ([1.0, 0.0], "a document", {"k": 1}, "uri://full"),
    "bare": ([0.0, 3.0], None, None, None),
    "docs": ([2.0, 2.0], "another", None, None),
}


def combos(fields):
    return [list(c) for n in range(len(fields) + 1) for c in itertools.combinations(fields, n)]


@pytest.fixture(scope="module")
def coll(module_client):
    c = module_client.create_collection("includes", embedding_function=None)
    ids = list(RECORDS)
    c.add(
        ids=ids,
        embeddings=[RECORDS[i][0] for i in ids],
        documents=[RECORDS[i][1] for i in ids],
        metadatas=[RECORDS[i][2] for i in ids],
        uris=[RECORDS[i][3] for i in ids],
    )
    return c


FIELD_INDEX = {"embeddings": 0, "documents": 1, "metadatas": 2, "uris": 3}


def check_field(field, values, ids):
    for rid, v in zip(ids, values):
        expected = RECORDS[rid][FIELD_INDEX[field]]
        if field == "embeddings":
            assert np.allclose(v, expected)
        else:
            assert v == expected, (field, rid)


@pytest.mark.parametrize("include", combos(ALL_GET_INCLUDES), ids=lambda c: "+".join(c) or "none")
def test_get_include(coll, include):
    res = coll.get(include=include)
    ids = res["ids"]
    assert sorted(ids) == sorted(RECORDS)
    assert sorted(res["included"]) == sorted(include)
    for field in ALL_GET_INCLUDES:
        if field in include:
            assert res[field] is not None and len(res[field]) == len(ids), field
            check_field(field, res[field], ids)
        else:
            assert res[field] is None, field


def test_get_default_include(coll):
    res = coll.get()
    assert res["included"] == ["metadatas", "documents"]
    assert res["embeddings"] is None and res["uris"] is None
    check_field("documents", res["documents"], res["ids"])
    check_field("metadatas", res["metadatas"], res["ids"])


@pytest.mark.parametrize("include", combos(ALL_QUERY_INCLUDES), ids=lambda c: "+".join(c) or "none")
def test_query_include(coll, include):
    queries = [[1.0, 0.1], [0.0, 2.9]]
    res = coll.query(query_embeddings=queries, n_results=3, include=include)
    assert res["ids"] == [["full", "docs", "bare"], ["bare", "docs", "full"]]
    assert sorted(res["included"]) == sorted(include)
    for field in ALL_QUERY_INCLUDES:
        if field not in include:
            assert res[field] is None, field
            continue
        assert res[field] is not None and len(res[field]) == 2, field
        for qi, ids in enumerate(res["ids"]):
            assert len(res[field][qi]) == 3
            if field == "distances":
                x = np.array([RECORDS[i][0] for i in ids])
                expected = ((x - np.array(queries[qi])) ** 2).sum(-1)
                assert np.allclose(res[field][qi], expected, atol=1e-5)
            else:
                check_field(field, res[field][qi], ids)


def test_query_default_include(coll):
    res = coll.query(query_embeddings=[[1.0, 0.0]], n_results=1)
    assert res["included"] == ["metadatas", "documents", "distances"]
    assert res["ids"] == [["full"]]
    assert res["documents"] == [["a document"]]
    assert res["metadatas"] == [[{"k": 1}]]
    assert res["distances"][0][0] == pytest.approx(0.0, abs=1e-6)
    assert res["embeddings"] is None and res["uris"] is None


def test_peek_include(coll):
    res = coll.peek(2)
    assert sorted(res["included"]) == ["documents", "embeddings", "metadatas"]
    assert len(res["ids"]) == 2
    assert res["uris"] is None
    check_field("embeddings", res["embeddings"], res["ids"])
    check_field("documents", res["documents"], res["ids"])
