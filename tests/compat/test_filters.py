"""`where` and `where_document` filters (expected ids are what real Chroma returns)."""

import pytest

DATA = [
    ("r1", [1.0, 0.0], "the quick brown fox",
     {"n": 1, "f": 1.5, "s": "a", "b": True, "tags": ["red", "blue"], "nums": [1, 2, 3]}),
    ("r2", [0.0, 1.0], "lazy dog sleeps",
     {"n": 2, "f": 2.5, "s": "b", "b": False, "tags": ["green"], "nums": [4]}),
    ("r3", [1.0, 1.0], "Quick thinking 123", {"n": 3, "f": 3.0, "s": "c", "b": True}),
    ("r4", [2.0, 2.0], None, {"n": 4, "s": "a", "tags": ["red"]}),
    ("r5", [3.0, 1.5], "fox and dog", None),
    ("r6", [1.2, 3.0], "ERROR: code 42", {"n": 1.0, "s": "d", "fl": [0.5, 1.5], "bl": [True]}),
]


@pytest.fixture(scope="module")
def coll(module_client):
    c = module_client.create_collection("filters", embedding_function=None)
    c.add(
        ids=[d[0] for d in DATA],
        embeddings=[d[1] for d in DATA],
        documents=[d[2] for d in DATA],
        metadatas=[d[3] for d in DATA],
    )
    return c


WHERE = [
    # shorthand equality
    ({"n": 1}, ["r1", "r6"]),
    ({"s": "a"}, ["r1", "r4"]),
    ({"b": True}, ["r1", "r3"]),
    ({"b": False}, ["r2"]),
    ({"f": 3}, ["r3"]),
    ({"n": 1.0}, ["r1", "r6"]),
    # comparison operators
    ({"n": {"$eq": 1}}, ["r1", "r6"]),
    ({"n": {"$ne": 1}}, ["r2", "r3", "r4", "r5"]),
    ({"s": {"$ne": "a"}}, ["r2", "r3", "r5", "r6"]),
    ({"b": {"$ne": True}}, ["r2", "r4", "r5", "r6"]),
    ({"n": {"$gt": 2}}, ["r3", "r4"]),
    ({"n": {"$gte": 2}}, ["r2", "r3", "r4"]),
    ({"n": {"$lt": 2}}, ["r1", "r6"]),
    ({"n": {"$lte": 2}}, ["r1", "r2", "r6"]),
    ({"f": {"$gt": 2}}, ["r2", "r3"]),
    ({"n": {"$gt": 1.5}}, ["r2", "r3", "r4"]),
    ({"f": {"$lte": 3}}, ["r1", "r2", "r3"]),
    # $in / $nin
    ({"s": {"$in": ["a", "c"]}}, ["r1", "r3", "r4"]),
    ({"s": {"$nin": ["a", "c"]}}, ["r2", "r5", "r6"]),
    ({"n": {"$in": [1, 3]}}, ["r1", "r3", "r6"]),
    ({"n": {"$nin": [1, 3]}}, ["r2", "r4", "r5"]),
    ({"n": {"$in": [1.0]}}, ["r1", "r6"]),
    # a key nobody has: negative operators match everything
    ({"missing": {"$ne": 1}}, ["r1", "r2", "r3", "r4", "r5", "r6"]),
    ({"missing": {"$nin": [1]}}, ["r1", "r2", "r3", "r4", "r5", "r6"]),
    ({"missing": 1}, []),
    # array metadata
    ({"tags": {"$contains": "red"}}, ["r1", "r4"]),
    ({"tags": {"$not_contains": "red"}}, ["r2", "r3", "r5", "r6"]),
    ({"nums": {"$contains": 2}}, ["r1"]),
    ({"nums": {"$not_contains": 4}}, ["r1", "r3", "r4", "r5", "r6"]),
    ({"fl": {"$contains": 1.5}}, ["r6"]),
    ({"bl": {"$contains": True}}, ["r6"]),
    ({"tags": "red"}, []),  # equality never matches an array value
    ({"tags": {"$in": ["red"]}}, []),
    ({"s": {"$contains": "a"}}, []),  # $contains is for arrays, not substrings
    # logical operators
    ({"$and": [{"n": {"$gte": 1}}, {"s": "a"}]}, ["r1", "r4"]),
    ({"$or": [{"s": "b"}, {"n": {"$gt": 3}}]}, ["r2", "r4"]),
    ({"$and": [{"$or": [{"s": "a"}, {"s": "c"}]}, {"b": True}]}, ["r1", "r3"]),
    ({"$or": [{"$and": [{"n": 1}, {"s": "a"}]}, {"f": 2.5}]}, ["r1", "r2"]),
    ({"$and": [{"n": {"$gte": 1}}, {"n": {"$lte": 3}}, {"s": {"$ne": "b"}}]}, ["r1", "r3", "r6"]),
]


@pytest.mark.parametrize("where,expected", WHERE, ids=[str(w) for w, _ in WHERE])
def test_where(coll, where, expected):
    assert sorted(coll.get(where=where, include=[])["ids"]) == expected


WHERE_DOCUMENT = [
    ({"$contains": "fox"}, ["r1", "r5"]),
    ({"$contains": "Quick"}, ["r3"]),  # case-sensitive
    ({"$contains": "quick"}, ["r1"]),
    ({"$not_contains": "fox"}, ["r2", "r3", "r4", "r6"]),  # includes the record without document
    ({"$regex": "^[Qq]uick"}, ["r3"]),
    ({"$regex": "[0-9]+"}, ["r3", "r6"]),
    ({"$regex": "(?i)error"}, ["r6"]),
    ({"$not_regex": "[0-9]+"}, ["r1", "r2", "r4", "r5"]),
    ({"$and": [{"$contains": "fox"}, {"$contains": "dog"}]}, ["r5"]),
    ({"$or": [{"$contains": "lazy"}, {"$regex": "ERROR"}]}, ["r2", "r6"]),
    ({"$and": [{"$or": [{"$contains": "fox"}, {"$contains": "lazy"}]}, {"$not_contains": "quick"}]}, ["r2", "r5"]),
]


@pytest.mark.parametrize("where_document,expected", WHERE_DOCUMENT, ids=[str(w) for w, _ in WHERE_DOCUMENT])
def test_where_document(coll, where_document, expected):
    assert sorted(coll.get(where_document=where_document, include=[])["ids"]) == expected


def test_where_and_where_document_combined(coll):
    assert coll.get(where={"n": {"$gte": 1}}, where_document={"$contains": "fox"}, include=[])["ids"] == ["r1"]


def test_ids_and_where_combined(coll):
    assert sorted(coll.get(ids=["r1", "r2", "r3"], where={"b": True}, include=[])["ids"]) == ["r1", "r3"]


def test_query_with_where(coll):
    res = coll.query(query_embeddings=[[0.0, 0.0]], n_results=10, where={"s": "a"}, include=["distances"])
    assert res["ids"] == [["r1", "r4"]]
    assert res["distances"][0] == pytest.approx([1.0, 8.0])


def test_query_with_where_document(coll):
    res = coll.query(query_embeddings=[[0.0, 0.0]], n_results=10, where_document={"$contains": "dog"},
                     include=["distances"])
    assert res["ids"] == [["r2", "r5"]]
    assert res["distances"][0] == pytest.approx([1.0, 11.25])


def test_query_with_array_filter_and_ids(coll):
    res = coll.query(query_embeddings=[[0.0, 0.0]], n_results=10, ids=["r1", "r2", "r4"],
                     where={"tags": {"$contains": "red"}}, include=[])
    assert res["ids"] == [["r1", "r4"]]


# Chroma compares an int value with a float operand truncated towards zero, and an int
# operand with float values as a float; `$contains` on a list wants the operand's own type.
NUMBERS = [
    ("i3", {"b": 3, "l": [3]}),
    ("f3", {"b": 3.0, "l": [3.0]}),
    ("i4", {"b": 4, "l": [4, 5]}),
    ("fm", {"b": -3.5, "l": [-3.5]}),
    ("im", {"b": -3, "l": [-3]}),
]

NUMBER_WHERE = [
    ({"b": {"$gte": 3.449}}, ["i3", "i4"]),
    ({"b": {"$gt": 3.449}}, ["i4"]),
    ({"b": {"$eq": 3.5}}, ["i3"]),
    ({"b": {"$ne": 3.5}}, ["f3", "fm", "i4", "im"]),
    ({"b": {"$in": [3.5]}}, ["i3"]),
    ({"b": {"$nin": [3.5, 4.2]}}, ["f3", "fm", "im"]),
    ({"b": {"$lt": 3.9}}, ["f3", "fm", "im"]),
    ({"b": {"$lte": -3.5}}, ["fm", "im"]),
    ({"b": {"$lt": -3.5}}, []),
    ({"b": {"$gt": -3.9}}, ["f3", "fm", "i3", "i4"]),
    ({"b": {"$gte": -3.9}}, ["f3", "fm", "i3", "i4", "im"]),
    ({"b": {"$gt": 3}}, ["i4"]),
    ({"b": {"$eq": 3}}, ["f3", "i3"]),
    ({"b": {"$eq": 3.0}}, ["f3", "i3"]),
    ({"l": {"$contains": 3}}, ["i3"]),
    ({"l": {"$contains": 3.0}}, ["f3"]),
    ({"l": {"$not_contains": 3}}, ["f3", "fm", "i4", "im"]),
    ({"l": {"$contains": -3.5}}, ["fm"]),
]


@pytest.fixture(scope="module")
def numbers(module_client):
    c = module_client.create_collection("numbers", embedding_function=None)
    c.add(ids=[i for i, _ in NUMBERS], embeddings=[[1.0, 0.0]] * len(NUMBERS),
          metadatas=[m for _, m in NUMBERS])
    return c


@pytest.mark.parametrize("where,expected", NUMBER_WHERE, ids=[str(w) for w, _ in NUMBER_WHERE])
def test_ints_and_floats_compare_as_in_chroma(numbers, where, expected):
    assert sorted(numbers.get(where=where, include=[])["ids"]) == expected
    # delete and query filter through the same rules
    res = numbers.query(query_embeddings=[[1.0, 0.0]], n_results=10, where=where, include=[])
    assert sorted(res["ids"][0]) == expected
