"""Error classes, statuses, messages and the chroma-trace-id header."""

import uuid

import pytest
from chromadb.errors import ChromaError, InternalError, InvalidArgumentError, NotFoundError

from _helpers import records_url

TRACE = "chroma-trace-id"


@pytest.fixture
def dim3(collection):
    collection.add(ids=["a", "b"], embeddings=[[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]],
                   documents=["alpha", "beta"], metadatas=[{"k": 1}, {"k": 2}])
    return collection


# ---- wrong dimension ----

@pytest.mark.parametrize("op", ["add", "upsert", "update", "query"])
def test_wrong_dimension(dim3, op):
    with pytest.raises(InvalidArgumentError, match=r"dimension of 3, got 2"):
        if op == "query":
            dim3.query(query_embeddings=[[1.0, 2.0]], n_results=1)
        else:
            getattr(dim3, op)(ids=["a"], embeddings=[[1.0, 2.0]])
    assert dim3.count() == 2


def test_wrong_dimension_batch_is_not_partially_applied(dim3):
    with pytest.raises(InvalidArgumentError):
        dim3.add(ids=["c", "d"], embeddings=[[1.0, 1.0, 1.0], [1.0, 1.0]])
    assert dim3.count() == 2
    assert dim3.get(ids=["c", "d"])["ids"] == []


def test_wrong_dimension_raw(api, dim3):
    r = api.post(records_url(None, dim3, "add"),
                 json={"ids": ["z"], "embeddings": [[1.0, 2.0]], "metadatas": None, "documents": None, "uris": None})
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidArgumentError"
    assert r.json()["message"] == "Collection expecting embedding with dimension of 3, got 2"


def test_nan_embedding_rejected(dim3):
    with pytest.raises(InvalidArgumentError):
        dim3.add(ids=["nan"], embeddings=[[float("nan"), 1.0, 1.0]])
    assert dim3.count() == 2


# ---- unknown / duplicate collections ----

def test_unknown_collection(client):
    with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
        client.get_collection("missing_coll")
    with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
        client.delete_collection("missing_coll")
    with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
        client.get_collection_by_id(uuid.uuid4())


def test_unknown_collection_raw(api, tenant):
    r = api.get(f"/api/v2/tenants/{tenant}/databases/default_database/collections/missing_coll")
    assert r.status_code == 404
    assert r.json() == {"error": "NotFoundError", "message": "Collection [missing_coll] does not exist"}
    cid = uuid.uuid4()
    r = api.post(f"/api/v2/tenants/{tenant}/databases/default_database/collections/{cid}/get", json={})
    assert r.status_code == 404
    assert r.json()["error"] == "NotFoundError"
    assert f"Collection [{cid}] does not exist" in r.json()["message"]


def test_invalid_collection_uuid_raw(api, tenant):
    r = api.get(f"/api/v2/tenants/{tenant}/databases/default_database/collections/not-a-uuid/count")
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidArgumentError"


def test_duplicate_collection(client):
    client.create_collection("dup_coll", embedding_function=None)
    with pytest.raises(ChromaError, match=r"Collection \[dup_coll\] already exists") as e:
        client.create_collection("dup_coll", embedding_function=None)
    assert e.type is ChromaError


def test_duplicate_collection_raw(api, tenant):
    url = f"/api/v2/tenants/{tenant}/databases/default_database/collections"
    body = {"name": "dup_raw", "metadata": None, "configuration": None, "schema": None, "get_or_create": False}
    assert api.post(url, json=body).status_code == 200
    r = api.post(url, json=body)
    assert r.status_code == 409
    assert r.json() == {"error": "ChromaError", "message": "Collection [dup_raw] already exists"}


# ---- invalid names ----

@pytest.mark.parametrize("bad", ["a", "ab", "_abc", "abc_", "abc!def", "a..b", "with space", "x" * 513])
def test_invalid_collection_name(client, bad):
    with pytest.raises(InvalidArgumentError):
        client.create_collection(bad, embedding_function=None)


@pytest.mark.parametrize("good", ["abc", "a.b-c_d", "A1b2C3", "x" * 512])
def test_valid_collection_name(client, good):
    assert client.create_collection(good, embedding_function=None).name == good


# ---- bad filters ----

def test_bad_where_through_client(dim3):
    # passes the client's own validation, rejected by the server
    with pytest.raises(InvalidArgumentError, match=r"Invalid where clause"):
        dim3.get(where={"k": {"$eq": [1]}})
    with pytest.raises(InvalidArgumentError, match=r"Invalid where clause"):
        dim3.query(query_embeddings=[[1.0, 2.0, 3.0]], n_results=1, where={"k": {"$eq": [1]}})
    with pytest.raises(InvalidArgumentError, match=r"Invalid where clause"):
        dim3.delete(where={"k": {"$eq": [1]}})
    assert dim3.count() == 2


@pytest.mark.parametrize(
    "where",
    [
        {"k": {"$foo": 1}},
        {"$and": "x"},
        {"k": {"$gt": "s"}},
        {"k": {"$gt": 1, "$lt": 3}},
        {"k": {"$in": 1}},
    ],
    ids=["unknown-op", "and-not-list", "gt-string", "two-ops", "in-not-list"],
)
def test_bad_where_raw(api, dim3, where):
    r = api.post(records_url(None, dim3, "get"), json={"where": where})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "InvalidArgumentError"
    assert body["message"].startswith("Invalid where clause")
    assert r.headers.get(TRACE)


@pytest.mark.parametrize(
    "where_document",
    [{"$foo": "x"}, {"$contains": 1}, {"$and": "x"}],
    ids=["unknown-op", "contains-int", "and-not-list"],
)
def test_bad_where_document_raw(api, dim3, where_document):
    r = api.post(records_url(None, dim3, "get"), json={"where_document": where_document})
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidArgumentError"


def test_bad_regex(dim3):
    with pytest.raises(InvalidArgumentError, match=r"[Rr]egex"):
        dim3.get(where_document={"$regex": "("})
    with pytest.raises(InvalidArgumentError, match=r"[Rr]egex"):
        dim3.query(query_embeddings=[[1.0, 2.0, 3.0]], n_results=1, where_document={"$not_regex": "[a-"})


# ---- query restricted to ids that are not all there ----
# Chroma fails the whole query when `ids` names a record the collection does not hold
# (never written, or deleted), unless a `where`/`where_document` filter is given too: then
# the unknown ids are simply left out. The failure is a 500 InternalError.

FINDING_ID = "Error executing plan: Internal error: Error finding id"


@pytest.mark.parametrize("ids", [["a", "nope"], ["nope"], ["a", "nope", "nope"]])
def test_query_with_unknown_id(dim3, ids):
    with pytest.raises(InternalError) as e:
        dim3.query(query_embeddings=[[1.0, 2.0, 3.0]], ids=ids, n_results=1)
    assert e.type is InternalError
    assert str(e.value) == FINDING_ID


def test_query_with_deleted_id(dim3):
    dim3.delete(ids=["b"])
    with pytest.raises(InternalError, match=r"^Error executing plan: Internal error: Error finding id$"):
        dim3.query(query_embeddings=[[1.0, 2.0, 3.0]], ids=["a", "b"], n_results=2)
    dim3.delete(ids=["a"])
    # an emptied collection keeps its dimension, and still fails
    with pytest.raises(InternalError, match=FINDING_ID):
        dim3.query(query_embeddings=[[1.0, 2.0, 3.0]], ids=["a"], n_results=2)


def test_query_with_unknown_id_raw(api, dim3, is_quiver):
    url = records_url(None, dim3, "query")
    for body in (
        {"query_embeddings": [[1.0, 2.0, 3.0]], "ids": ["a", "nope"], "n_results": 2, "include": []},
        # every query embedding fails alike, whatever n_results and include
        {"query_embeddings": [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], "ids": ["nope"], "n_results": 0,
         "include": ["documents", "distances"]},
    ):
        r = api.post(url, json=body)
        # Chroma answers 500; Quiver answers 404 with the same body, because the request,
        # not the server, is at fault (docs/chroma-v2.md, "Known differences")
        assert r.status_code == (404 if is_quiver else 500), r.text
        assert r.json() == {"error": "InternalError", "message": FINDING_ID}
        assert r.headers.get(TRACE)


def test_query_with_unknown_id_checks_dimension_first(api, dim3):
    r = api.post(records_url(None, dim3, "query"),
                 json={"query_embeddings": [[1.0, 2.0]], "ids": ["nope"], "n_results": 1})
    assert r.status_code == 400
    assert r.json() == {"error": "InvalidArgumentError",
                        "message": "Collection expecting embedding with dimension of 3, got 2"}


def test_query_with_unknown_id_and_a_filter_ignores_it(dim3):
    q = [[1.0, 2.0, 3.0]]
    assert dim3.query(query_embeddings=q, ids=["a", "nope"], where={"k": {"$gte": 1}},
                      n_results=5, include=[])["ids"] == [["a"]]
    assert dim3.query(query_embeddings=q, ids=["nope"], where={"k": 1},
                      n_results=5, include=[])["ids"] == [[]]
    assert dim3.query(query_embeddings=q, ids=["b", "nope"], where_document={"$contains": "bet"},
                      n_results=5, include=[])["ids"] == [["b"]]


def test_query_with_known_ids_only(api, dim3):
    url = records_url(None, dim3, "query")
    r = api.post(url, json={"query_embeddings": [[1.0, 2.0, 3.0]], "ids": ["b", "b"],
                            "n_results": 5, "include": []})
    assert r.status_code == 200 and r.json()["ids"] == [["b"]]
    r = api.post(url, json={"query_embeddings": [[1.0, 2.0, 3.0]], "ids": [],
                            "n_results": 5, "include": []})
    assert r.status_code == 200 and r.json()["ids"] == [[]]


def test_query_unknown_id_in_a_collection_never_written(collection):
    # no embedding was ever written, so there is no dimension and nothing to miss
    res = collection.query(query_embeddings=[[1.0, 2.0]], ids=["nope"], n_results=1, include=[])
    assert res["ids"] == [[]]


# ---- trace id header ----

def test_error_responses_carry_trace_id(api, tenant, dim3):
    base = f"/api/v2/tenants/{tenant}/databases/default_database"
    responses = [
        api.get(f"{base}/collections/missing_coll"),  # 404
        api.post(f"{base}/collections", json={"name": "a"}),  # 400 invalid name
        api.post(f"{base}/collections", json={"name": dim3.name}),  # 409 duplicate
        api.post(records_url(None, dim3, "query"),
                 json={"query_embeddings": [[1.0, 2.0]], "n_results": 1}),  # 400 dimension
    ]
    assert [r.status_code for r in responses] == [404, 400, 409, 400]
    for r in responses:
        assert r.headers.get(TRACE), r.request.url
        assert set(r.json()) == {"error", "message"}


def test_client_error_has_trace_id(client):
    with pytest.raises(NotFoundError) as e:
        client.get_collection("missing_coll")
    assert e.value.trace_id
