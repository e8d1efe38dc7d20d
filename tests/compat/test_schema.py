"""Collection schemas: the shape Chroma reports, keys discovered from metadata, index
overrides and their precedence, filters refused on disabled indexes, and the validation of
a schema in a create request.

Every expectation here was observed on the real Chroma 1.5.9 server.
"""

import copy

import pytest
from chromadb.api.types import (
    BoolInvertedIndexConfig,
    FloatInvertedIndexConfig,
    FtsIndexConfig,
    HnswIndexConfig,
    IntInvertedIndexConfig,
    Schema,
    StringInvertedIndexConfig,
    VectorIndexConfig,
)
from chromadb.errors import InvalidArgumentError

from _helpers import DEFAULT_HNSW, unique

DEFAULT_TYPES = {
    "string": {"fts_index": {"enabled": False, "config": {}},
               "string_inverted_index": {"enabled": True, "config": {}}},
    "int": {"int_inverted_index": {"enabled": True, "config": {}}},
    "float": {"float_inverted_index": {"enabled": True, "config": {}}},
    "bool": {"bool_inverted_index": {"enabled": True, "config": {}}},
}
FTS_OFF = "Cannot filter using full-text search because FTS indexing is disabled"


def indexing_off(key: str, kind: str) -> str:
    return f"Cannot filter using metadata key '{key}' with type '{kind}' because indexing is disabled"


def collections_url(coll) -> str:
    return f"/api/v2/tenants/{coll.tenant}/databases/{coll.database}/collections"


def schema_json(api, coll) -> dict:
    r = api.get(f"{collections_url(coll)}/{coll.name}")
    assert r.status_code == 200, r.text
    return r.json()["schema"]


def default_hnsw_params(hnsw) -> bool:
    expected = {"ef_construction": 100, "ef_search": 100, "max_neighbors": 16,
                "batch_size": 100, "sync_threshold": 1000, "resize_factor": 1.2}
    return all(hnsw[k] == v for k, v in expected.items()) and hnsw["num_threads"] >= 1


def emb(n: int):
    return [[float(i), 1.0] for i in range(n)]


# ---- the schema a collection reports ----

def test_default_schema_shape(api, client):
    coll = client.create_collection(unique("c"), embedding_function=None)
    s = schema_json(api, coll)
    for kind, indexes in DEFAULT_TYPES.items():
        assert s["defaults"][kind] == indexes
    assert s["defaults"]["sparse_vector"] == {"sparse_vector_index": {
        "enabled": False, "config": {"embedding_function": {"type": "unknown"}, "bm25": False}}}
    dv = s["defaults"]["float_list"]["vector_index"]
    assert dv["enabled"] is False and dv["config"]["space"] == "l2"
    assert "source_key" not in dv["config"]
    assert default_hnsw_params(dv["config"]["hnsw"])
    assert set(s["keys"]) == {"#document", "#embedding"}
    assert s["keys"]["#document"] == {"string": {
        "fts_index": {"enabled": True, "config": {}},
        "string_inverted_index": {"enabled": False, "config": {}}}}
    ev = s["keys"]["#embedding"]["float_list"]["vector_index"]
    assert ev["enabled"] is True
    assert ev["config"]["source_key"] == "#document"
    assert ev["config"]["space"] == "l2"
    assert default_hnsw_params(ev["config"]["hnsw"])
    # the client parses it into its Schema class
    parsed = client.get_collection(coll.name).schema
    assert isinstance(parsed, Schema)
    assert parsed.keys["#document"].string.fts_index.enabled is True


def test_schema_survives_get_list_and_reopen(api, client):
    s = Schema().delete_index(StringInvertedIndexConfig(), key="private")
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    by_name = schema_json(api, coll)
    assert by_name["keys"]["private"] == {"string": {"string_inverted_index": {"enabled": False, "config": {}}}}
    listed = [c for c in api.get(collections_url(coll)).json() if c["id"] == str(coll.id)]
    assert listed[0]["schema"] == by_name


# ---- keys discovered from metadata ----

def test_metadata_keys_are_discovered_with_their_types(api, collection):
    collection.add(ids=["1", "2"], embeddings=emb(2),
                   metadatas=[{"s": "x", "i": 1, "f": 1.5, "b": True},
                              {"ia": [1, 2], "sa": ["a", "b"], "fa": [0.5], "ba": [False]}])
    keys = schema_json(api, collection)["keys"]
    assert keys["s"] == {"string": DEFAULT_TYPES["string"]}
    assert keys["i"] == {"int": DEFAULT_TYPES["int"]}
    assert keys["f"] == {"float": DEFAULT_TYPES["float"]}
    assert keys["b"] == {"bool": DEFAULT_TYPES["bool"]}
    # an array is indexed as its element type
    assert keys["ia"] == {"int": DEFAULT_TYPES["int"]}
    assert keys["sa"] == {"string": DEFAULT_TYPES["string"]}
    assert keys["fa"] == {"float": DEFAULT_TYPES["float"]}
    assert keys["ba"] == {"bool": DEFAULT_TYPES["bool"]}


def test_upsert_and_update_discover_keys(api, collection):
    collection.add(ids=["1"], embeddings=emb(1), metadatas=[{"a": 1}])
    collection.upsert(ids=["2"], embeddings=[[2.0, 1.0]], metadatas=[{"from_upsert": "x"}])
    collection.upsert(ids=["1"], embeddings=emb(1), metadatas=[{"upsert_existing": 2.5}])
    collection.update(ids=["2"], metadatas=[{"from_update": False}])
    keys = schema_json(api, collection)["keys"]
    assert keys["from_upsert"] == {"string": DEFAULT_TYPES["string"]}
    assert keys["upsert_existing"] == {"float": DEFAULT_TYPES["float"]}
    assert keys["from_update"] == {"bool": DEFAULT_TYPES["bool"]}


def test_one_key_with_conflicting_types_lists_each_type(api, collection):
    collection.add(ids=["1", "2", "3"], embeddings=emb(3),
                   metadatas=[{"k": "text"}, {"k": 7}, {"k": 7.5}])
    assert schema_json(api, collection)["keys"]["k"] == {
        "string": DEFAULT_TYPES["string"], "int": DEFAULT_TYPES["int"],
        "float": DEFAULT_TYPES["float"]}
    # every value stays filterable by its own type
    assert collection.get(where={"k": "text"})["ids"] == ["1"]
    assert collection.get(where={"k": 7})["ids"] == ["2"]
    assert collection.get(where={"k": {"$gt": 7.2}})["ids"] == ["3"]


def test_discovery_does_not_touch_a_key_without_new_types(api, collection):
    collection.add(ids=["1"], embeddings=emb(1), metadatas=[{"k": "a"}])
    before = schema_json(api, collection)
    collection.add(ids=["2"], embeddings=[[5.0, 1.0]], metadatas=[{"k": "b"}])
    collection.update(ids=["1"], metadatas=[{"k": None}])
    assert schema_json(api, collection) == before


def test_discovered_keys_survive_get_collection(client, collection):
    collection.add(ids=["1"], embeddings=emb(1), metadatas=[{"found": 3}])
    again = client.get_collection(collection.name)
    assert again.schema.keys["found"].int_value.int_inverted_index.enabled is True


# ---- precedence: key overrides, then defaults ----

def test_key_override_beats_defaults_and_new_keys_take_defaults(api, client):
    s = (Schema().delete_index(IntInvertedIndexConfig())
         .create_index(IntInvertedIndexConfig(), key="n"))
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    coll.add(ids=["a"], embeddings=emb(1), metadatas=[{"n": 1, "m": 2}])
    keys = schema_json(api, coll)["keys"]
    assert keys["n"] == {"int": {"int_inverted_index": {"enabled": True, "config": {}}}}
    assert keys["m"] == {"int": {"int_inverted_index": {"enabled": False, "config": {}}}}
    assert coll.get(where={"n": 1})["ids"] == ["a"]
    with pytest.raises(InvalidArgumentError, match=indexing_off("m", "Int")):
        coll.get(where={"m": 2})
    # the float index is another index: filtering by a float value is allowed, and it
    # compares numerically with the int stored
    assert coll.get(where={"m": 2.0})["ids"] == ["a"]


def test_key_override_is_kept_as_given_when_values_arrive(api, client):
    s = Schema().delete_index(StringInvertedIndexConfig(), key="k")
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    coll.add(ids=["a"], embeddings=emb(1), metadatas=[{"k": "x", "n": 1}])
    keys = schema_json(api, coll)["keys"]
    assert keys["k"] == {"string": {"string_inverted_index": {"enabled": False, "config": {}}}}
    assert keys["n"] == {"int": DEFAULT_TYPES["int"]}


def test_disabled_default_applies_to_keys_not_yet_seen(client):
    s = Schema().delete_index(BoolInvertedIndexConfig())
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    coll.add(ids=["a"], embeddings=emb(1), metadatas=[{"flag": True}])
    with pytest.raises(InvalidArgumentError, match=indexing_off("flag", "Bool")):
        coll.get(where={"flag": True})
    with pytest.raises(InvalidArgumentError, match=indexing_off("never", "Bool")):
        coll.get(where={"never": False})


def test_deleted_then_restored_index_is_enabled(api, client):
    s = (Schema().delete_index(StringInvertedIndexConfig(), key="k")
         .create_index(StringInvertedIndexConfig(), key="k")
         .delete_index(FloatInvertedIndexConfig())
         .create_index(FloatInvertedIndexConfig()))
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    sj = schema_json(api, coll)
    assert sj["keys"]["k"] == {"string": {"string_inverted_index": {"enabled": True, "config": {}}}}
    assert sj["defaults"]["float"] == DEFAULT_TYPES["float"]
    coll.add(ids=["a"], embeddings=emb(1), metadatas=[{"k": "x", "f": 0.5}])
    assert coll.get(where={"k": "x"})["ids"] == ["a"]
    assert coll.get(where={"f": 0.5})["ids"] == ["a"]


# ---- filters on disabled indexes ----

@pytest.fixture
def fts_off(client):
    s = Schema().delete_index(FtsIndexConfig(), key="#document")
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    coll.add(ids=["a", "b"], embeddings=emb(2), documents=["hello world", "bye"],
             metadatas=[{"k": "x"}, {"k": "y"}])
    return coll


def test_fts_disabled_schema_shape(api, fts_off):
    assert schema_json(api, fts_off)["keys"]["#document"] == {"string": {
        "fts_index": {"enabled": False, "config": {}},
        "string_inverted_index": {"enabled": False, "config": {}}}}


@pytest.mark.parametrize("op", ["get", "query", "delete"])
def test_fts_disabled_refuses_where_document(fts_off, op):
    wd = {"$contains": "hello"}
    with pytest.raises(InvalidArgumentError, match=FTS_OFF):
        if op == "get":
            fts_off.get(where_document=wd)
        elif op == "query":
            fts_off.query(query_embeddings=[[0.0, 1.0]], n_results=1, where_document=wd)
        else:
            fts_off.delete(where_document=wd)
    assert fts_off.count() == 2


def test_fts_disabled_refuses_regex_and_compound_document_filters(fts_off):
    for wd in ({"$regex": "h.*o"}, {"$not_contains": "x"},
               {"$or": [{"$contains": "a"}, {"$contains": "b"}]}):
        with pytest.raises(InvalidArgumentError, match=FTS_OFF):
            fts_off.get(where_document=wd)


def test_fts_disabled_leaves_metadata_filters_working(fts_off):
    assert fts_off.get(where={"k": "x"})["ids"] == ["a"]
    assert fts_off.get()["documents"] == ["hello world", "bye"]


@pytest.fixture
def key_off(client):
    s = Schema().delete_index(StringInvertedIndexConfig(), key="k")
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    coll.add(ids=["a", "b"], embeddings=emb(2), documents=["hello world", "bye"],
             metadatas=[{"k": "x", "n": 1}, {"k": "y", "n": 2}])
    return coll


@pytest.mark.parametrize("where", [
    {"k": "x"},
    {"k": {"$ne": "x"}},
    {"k": {"$in": ["x", "y"]}},
    {"k": {"$nin": ["x"]}},
    {"$and": [{"n": 1}, {"k": "x"}]},
    {"$or": [{"n": 1}, {"$and": [{"n": 2}, {"k": "y"}]}]},
])
def test_disabled_key_refuses_filters_in_get(key_off, where):
    with pytest.raises(InvalidArgumentError, match=indexing_off("k", "Str")):
        key_off.get(where=where)


def test_disabled_key_refuses_filters_in_query_and_delete(key_off):
    with pytest.raises(InvalidArgumentError, match=indexing_off("k", "Str")):
        key_off.query(query_embeddings=[[0.0, 1.0]], n_results=1, where={"k": "x"})
    with pytest.raises(InvalidArgumentError, match=indexing_off("k", "Str")):
        key_off.delete(where={"k": "x"})
    assert key_off.count() == 2


def test_disabled_key_allows_other_types_and_keys(key_off):
    assert key_off.get(where={"k": 3})["ids"] == []
    assert key_off.get(where={"n": 1})["ids"] == ["a"]
    assert key_off.get(where_document={"$contains": "hello"})["ids"] == ["a"]
    # deleting by id needs no index
    key_off.delete(ids=["b"])
    assert key_off.get()["ids"] == ["a"]


def test_disabled_index_refused_raw(api, key_off):
    r = api.post(f"{collections_url(key_off)}/{key_off.id}/get", json={"where": {"k": "x"}})
    assert r.status_code == 400
    assert r.json() == {"error": "InvalidArgumentError", "message": indexing_off("k", "Str")}


# ---- the vector index in a schema ----

def test_schema_vector_index_settings_are_used(api, client):
    s = Schema().create_index(VectorIndexConfig(
        space="ip", hnsw=HnswIndexConfig(ef_search=40, max_neighbors=32)))
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    expected = dict(DEFAULT_HNSW, space="ip", ef_search=40, max_neighbors=32)
    assert coll.configuration_json["hnsw"] == expected
    assert client.get_collection(coll.name).configuration_json["hnsw"] == expected
    for where in ("defaults", "keys"):
        sj = schema_json(api, coll)
        vi = (sj["defaults"] if where == "defaults" else sj["keys"]["#embedding"])["float_list"]["vector_index"]
        assert vi["config"]["space"] == "ip"
        assert vi["config"]["hnsw"]["ef_search"] == 40
        assert vi["config"]["hnsw"]["max_neighbors"] == 32
        assert vi["config"]["hnsw"]["ef_construction"] == 100
    coll.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    d = coll.query(query_embeddings=[[1.0, 0.5]], n_results=2)["distances"][0]
    assert d == pytest.approx([0.0, 0.5], abs=1e-6)  # ip: 1 - a·b


def test_modify_updates_the_schema_too(api, client):
    coll = client.create_collection(unique("c"), configuration={"hnsw": {"space": "cosine"}},
                                    embedding_function=None)
    coll.modify(configuration={"hnsw": {"ef_search": 77, "sync_threshold": 500}})
    sj = schema_json(api, coll)
    for vi in (sj["defaults"]["float_list"]["vector_index"],
               sj["keys"]["#embedding"]["float_list"]["vector_index"]):
        assert vi["config"]["hnsw"]["ef_search"] == 77
        assert vi["config"]["hnsw"]["sync_threshold"] == 500
        assert vi["config"]["space"] == "cosine"
    assert client.get_collection(coll.name).configuration_json["hnsw"]["ef_search"] == 77


def test_modify_refuses_fields_that_cannot_change(api, collection):
    r = api.put(f"{collections_url(collection)}/{collection.id}",
                json={"new_configuration": {"hnsw": {"ef_construction": 5}}})
    assert r.status_code == 422
    assert "unknown field `ef_construction`" in r.json()["message"]


# ---- validation of a schema in a create request ----

def raw_create(api, tenant, body):
    return api.post(f"/api/v2/tenants/{tenant}/databases/default_database/collections", json=body)


def with_keys(**keys):
    s = Schema().serialize_to_json()
    s["keys"].update(keys)
    return s


@pytest.mark.parametrize("schema, message", [
    ({"defaults": {}, "keys": {"vk": {"float_list": {"vector_index": {"enabled": True, "config": {}}}}}},
     "Validation error: schema: Vector index can only be enabled on #embedding field: vk"),
    ({"defaults": {}, "keys": {"#mine": {}}},
     "Validation error: schema: key cannot begin with '#'"),
    ({"defaults": {"string": {"fts_index": {"enabled": True, "config": {}}}}, "keys": {}},
     "Validation error: schema: Full text search / regular expression index cannot be enabled by default"),
    ({"defaults": {}, "keys": {"title": {"string": {"fts_index": {"enabled": True, "config": {}}}}}},
     "Validation error: schema: Full text search / regular expression index can only be enabled on #document field: title"),
    ({"defaults": {}, "keys": {"#document": {"int": {}}}},
     "Validation error: schema: Document field cannot have any value types other than string"),
    ({"defaults": {}, "keys": {"sp": {"sparse_vector": {"sparse_vector_index": {"enabled": True, "config": {}}}}}},
     "Failed to reconcile schema: Invalid schema input: Sparse vector indexing is not enabled in local"),
    ({"defaults": {}, "keys": {"#embedding": {"float_list": {"vector_index": {"enabled": True, "config": {"hnsw": {"batch_size": 1}}}}}}},
     "Failed to reconcile schema: Invalid HNSW configuration: batch_size"),
    ({"defaults": {}, "keys": {}, "cmek": {"gcp": "not-a-key"}},
     "Validation error: schema: CMEK does not match expected pattern"),
])
def test_invalid_schemas_are_refused(api, tenant, schema, message):
    name = unique("c")
    r = raw_create(api, tenant, {"name": name, "schema": schema})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "InvalidArgumentError"
    assert r.json()["message"].startswith(message)
    assert api.get(f"/api/v2/tenants/{tenant}/databases/default_database/collections/{name}").status_code == 404


@pytest.mark.parametrize("schema, fragment", [
    ({"defaults": {}, "keys": {"#document": {"string": {"fts_index": {"enabled": False, "config": {"x": 1}}}}}},
     "schema.keys.#document.string.fts_index.config.x: unknown field `x`"),
    ({"defaults": {"string": {"fts_index": {"config": {}}}}, "keys": {}},
     "schema.defaults.string.fts_index: missing field `enabled`"),
    ({"keys": {}}, "schema: missing field `defaults`"),
    ({"defaults": {}, "keys": {"#embedding": {"float_list": {"vector_index": {"enabled": True, "config": {"space": "manhattan"}}}}}},
     "unknown variant `manhattan`, expected one of `l2`, `cosine`, `ip`"),
    ({"defaults": {}, "keys": {"#embedding": {"float_list": {"vector_index": {"enabled": True, "config": {"hnsw": {"foo": 1}}}}}}},
     "unknown field `foo`"),
    (5, "schema: invalid type: integer `5`"),
])
def test_malformed_schemas_are_unprocessable(api, tenant, schema, fragment):
    r = raw_create(api, tenant, {"name": unique("c"), "schema": schema})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"].startswith("Failed to deserialize the JSON body into the target type: ")
    assert fragment in body["message"]


def test_unknown_schema_parts_are_ignored(api, tenant):
    r = raw_create(api, tenant, {"name": unique("c"), "schema": {
        "defaults": {"strng": {}, "string": {"foo_index": {"enabled": True, "config": {}}}},
        "keys": {}, "bogus": 1}})
    assert r.status_code == 200, r.text
    assert r.json()["schema"]["defaults"]["string"] == DEFAULT_TYPES["string"]


def test_empty_schema_takes_every_default(api, tenant):
    r = raw_create(api, tenant, {"name": unique("c"), "schema": {"defaults": {}, "keys": {}}})
    assert r.status_code == 200, r.text
    s = r.json()["schema"]
    for kind, indexes in DEFAULT_TYPES.items():
        assert s["defaults"][kind] == indexes
    assert set(s["keys"]) == {"#document", "#embedding"}
    assert r.json()["configuration_json"]["hnsw"] == DEFAULT_HNSW


def test_well_formed_cmek_is_kept(api, tenant):
    key = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    r = raw_create(api, tenant, {"name": unique("c"),
                                 "schema": {"defaults": {}, "keys": {}, "cmek": {"gcp": key}}})
    assert r.status_code == 200, r.text
    assert r.json()["schema"]["cmek"] == {"gcp": key}


def test_schema_and_configuration_cannot_both_ask(client):
    s = Schema().create_index(VectorIndexConfig(space="cosine"))
    with pytest.raises(InvalidArgumentError,
                       match="Cannot set both collection config and schema simultaneously"):
        client.create_collection(unique("c"), schema=s,
                                 configuration={"hnsw": {"ef_search": 50}}, embedding_function=None)


def test_default_schema_with_configuration_takes_the_configuration(api, tenant):
    r = raw_create(api, tenant, {"name": unique("c"),
                                 "configuration": {"hnsw": {"space": "ip", "ef_search": 33}},
                                 "schema": Schema().serialize_to_json()})
    assert r.status_code == 200, r.text
    assert r.json()["configuration_json"]["hnsw"] == dict(DEFAULT_HNSW, space="ip", ef_search=33)


def test_non_default_schema_with_default_configuration_takes_the_schema(api, tenant):
    s = Schema().delete_index(IntInvertedIndexConfig()).serialize_to_json()
    r = raw_create(api, tenant, {"name": unique("c"), "schema": s,
                                 "configuration": {"hnsw": {"ef_search": 100}}})
    assert r.status_code == 200, r.text
    assert r.json()["schema"]["defaults"]["int"] == {"int_inverted_index": {"enabled": False, "config": {}}}


def test_get_or_create_keeps_the_first_schema(api, client):
    name = unique("c")
    first = client.create_collection(name, schema=Schema().delete_index(IntInvertedIndexConfig()),
                                     embedding_function=None)
    again = client.get_or_create_collection(name, schema=Schema(), embedding_function=None)
    assert again.id == first.id
    assert schema_json(api, again)["defaults"]["int"]["int_inverted_index"]["enabled"] is False


def test_client_schema_round_trip(api, client):
    s = (Schema().delete_index(StringInvertedIndexConfig(), key="a")
         .delete_index(FtsIndexConfig(), key="#document"))
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    sent = copy.deepcopy(s.serialize_to_json())
    got = client.get_collection(coll.name).schema.serialize_to_json()
    assert got["keys"]["a"] == sent["keys"]["a"]
    assert got["keys"]["#document"] == sent["keys"]["#document"]
