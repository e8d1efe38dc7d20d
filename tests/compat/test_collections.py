"""Collection lifecycle and configuration."""

import uuid

import pytest
from chromadb.errors import ChromaError, InvalidArgumentError, NotFoundError

from _helpers import DEFAULT_HNSW


def hnsw(**changes):
    return {**DEFAULT_HNSW, **changes}


def test_create_collection_defaults(client):
    coll = client.create_collection("coll_one", metadata={"m": 1}, embedding_function=None)
    assert coll.name == "coll_one"
    assert coll.metadata == {"m": 1}
    assert isinstance(coll.id, uuid.UUID)
    assert coll.tenant == client.tenant
    assert coll.database == client.database
    assert coll.get_model().dimension is None
    cfg = coll.configuration_json
    assert cfg["hnsw"] == DEFAULT_HNSW
    assert cfg.get("spann") is None
    assert coll.count() == 0


def test_create_collection_without_metadata(client):
    coll = client.create_collection("no_meta", embedding_function=None)
    assert coll.metadata is None
    assert client.get_collection("no_meta").metadata is None


def test_create_collection_raw_json_shape(api, tenant):
    # the body the client sends (None fields as explicit nulls)
    body = {"name": "raw_coll", "metadata": None, "configuration": None, "schema": None,
            "get_or_create": False}
    r = api.post(f"/api/v2/tenants/{tenant}/databases/default_database/collections", json=body)
    assert r.status_code == 200
    c = r.json()
    uuid.UUID(c["id"])
    assert c["name"] == "raw_coll"
    assert c["tenant"] == tenant
    assert c["database"] == "default_database"
    assert isinstance(c["configuration_json"], dict)
    assert c["configuration_json"]["hnsw"] == DEFAULT_HNSW
    assert c["metadata"] is None
    assert c["dimension"] is None
    assert isinstance(c.get("version", 0), int)
    assert isinstance(c.get("log_position", 0), int)
    assert c.get("schema") is None or isinstance(c["schema"], dict)


def test_configuration_merged_with_defaults(client):
    coll = client.create_collection(
        "cfg_cos", configuration={"hnsw": {"space": "cosine", "ef_search": 77}}, embedding_function=None
    )
    expected = hnsw(space="cosine", ef_search=77)
    assert coll.configuration_json["hnsw"] == expected
    assert coll.configuration_json.get("spann") is None
    assert client.get_collection("cfg_cos").configuration_json["hnsw"] == expected
    listed = [c for c in client.list_collections() if c.name == "cfg_cos"]
    assert listed[0].configuration_json["hnsw"] == expected
    assert coll.configuration["hnsw"]["space"] == "cosine"


def test_configuration_custom_hnsw_parameters(client):
    coll = client.create_collection(
        "cfg_ip",
        configuration={"hnsw": {"space": "ip", "ef_construction": 200, "max_neighbors": 32, "ef_search": 64}},
        embedding_function=None,
    )
    expected = hnsw(space="ip", ef_construction=200, max_neighbors=32, ef_search=64)
    assert coll.configuration_json["hnsw"] == expected
    assert client.get_collection("cfg_ip").configuration_json["hnsw"] == expected


def test_space_from_legacy_metadata(client):
    coll = client.create_collection("md_space", metadata={"hnsw:space": "ip"}, embedding_function=None)
    assert coll.configuration_json["hnsw"] == hnsw(space="ip")
    assert coll.metadata == {"hnsw:space": "ip"}


def test_empty_metadata_rejected(client):
    with pytest.raises(InvalidArgumentError):
        client.create_collection("empty_md", metadata={}, embedding_function=None)


def test_duplicate_collection(client):
    client.create_collection("dup_coll", embedding_function=None)
    with pytest.raises(ChromaError, match=r"Collection \[dup_coll\] already exists") as e:
        client.create_collection("dup_coll", embedding_function=None)
    assert e.type is ChromaError


def test_get_or_create(client):
    first = client.get_or_create_collection("goc", metadata={"m": 1}, embedding_function=None)
    assert first.metadata == {"m": 1}
    again = client.get_or_create_collection("goc", metadata={"m": 2}, embedding_function=None)
    assert again.id == first.id
    assert again.metadata == {"m": 1}  # an existing collection is returned unchanged
    assert client.count_collections() == 1


def test_get_collection_by_name_and_id(client):
    coll = client.create_collection("find_me", metadata={"k": "v"}, embedding_function=None)
    got = client.get_collection("find_me")
    assert got.id == coll.id and got.name == "find_me" and got.metadata == {"k": "v"}
    by_id = client.get_collection_by_id(coll.id)
    assert by_id.name == "find_me"


def test_get_unknown_collection(client):
    with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
        client.get_collection("missing_coll")
    with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
        client.get_collection_by_id(uuid.uuid4())


def test_list_collections_limit_offset(client):
    names = [f"list_{i}" for i in range(5)]
    for n in names:
        client.create_collection(n, embedding_function=None)
    everything = [c.name for c in client.list_collections()]
    assert sorted(everything) == names
    pages = [c.name for off in range(0, 5, 2) for c in client.list_collections(limit=2, offset=off)]
    # the pages partition the full listing, in the same order
    assert pages == everything
    assert len(client.list_collections(limit=3)) == 3
    assert [c.name for c in client.list_collections(offset=3)] == everything[3:]
    assert client.list_collections(offset=10) == []
    assert client.count_collections() == 5


def test_count_collections(client):
    assert client.count_collections() == 0
    client.create_collection("cnt_a", embedding_function=None)
    client.create_collection("cnt_b", embedding_function=None)
    assert client.count_collections() == 2
    client.delete_collection("cnt_a")
    assert client.count_collections() == 1


def test_modify_name_and_metadata(client):
    coll = client.create_collection("old_name", metadata={"a": 1, "b": 2}, embedding_function=None)
    coll.add(ids=["r"], embeddings=[[1.0, 2.0]])
    coll.modify(name="new_name", metadata={"c": "x"})
    assert coll.name == "new_name"
    with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
        client.get_collection("old_name")
    got = client.get_collection("new_name")
    assert got.id == coll.id
    assert got.metadata == {"c": "x"}  # metadata is replaced, not merged
    assert got.count() == 1


def test_modify_name_keeps_metadata(client):
    coll = client.create_collection("keep_md", metadata={"a": 1, "b": 2}, embedding_function=None)
    coll.modify(name="keep_md2")
    assert client.get_collection("keep_md2").metadata == {"a": 1, "b": 2}


def test_modify_metadata_value_types(client):
    coll = client.create_collection("md_types", embedding_function=None)
    coll.modify(metadata={"i": 1, "s": "x", "f": 2.5, "b": True})
    md = client.get_collection("md_types").metadata
    assert md == {"i": 1, "s": "x", "f": 2.5, "b": True}
    assert type(md["i"]) is int and type(md["f"]) is float and type(md["b"]) is bool


def test_modify_metadata_none_value_drops_key(client):
    coll = client.create_collection("md_none", metadata={"a": 1, "b": 2}, embedding_function=None)
    coll.modify(metadata={"keep": 1, "b": None})
    assert client.get_collection("md_none").metadata == {"keep": 1}


def test_modify_configuration_ef_search(client):
    coll = client.create_collection(
        "ef_mod", configuration={"hnsw": {"space": "cosine", "ef_search": 77}}, embedding_function=None
    )
    coll.modify(configuration={"hnsw": {"ef_search": 50}})
    expected = hnsw(space="cosine", ef_search=50)
    assert coll.configuration_json["hnsw"] == expected
    assert client.get_collection("ef_mod").configuration_json["hnsw"] == expected


def test_modify_immutable_space_rejected(client):
    coll = client.create_collection("space_fixed", embedding_function=None)
    with pytest.raises(ChromaError):
        coll.modify(configuration={"hnsw": {"space": "ip"}})
    assert client.get_collection("space_fixed").configuration_json["hnsw"] == DEFAULT_HNSW


def test_modify_to_existing_name_fails(client):
    a = client.create_collection("taken_a", embedding_function=None)
    b = client.create_collection("taken_b", embedding_function=None)
    with pytest.raises(ChromaError):
        b.modify(name="taken_a")
    assert client.get_collection("taken_a").id == a.id
    assert client.get_collection("taken_b").id == b.id


def test_modify_invalid_name(client):
    coll = client.create_collection("rename_bad", embedding_function=None)
    with pytest.raises(InvalidArgumentError):
        coll.modify(name="a!")
    assert client.get_collection("rename_bad").id == coll.id


def test_delete_collection(client):
    coll = client.create_collection("to_delete", embedding_function=None)
    coll.add(ids=["a"], embeddings=[[1.0, 2.0, 3.0]])
    client.delete_collection("to_delete")
    with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
        client.get_collection("to_delete")
    with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
        client.delete_collection("to_delete")
    # the name can be reused; the new collection is empty and has no dimension
    again = client.create_collection("to_delete", embedding_function=None)
    assert again.id != coll.id
    assert again.count() == 0
    assert again.get_model().dimension is None
    again.add(ids=["b"], embeddings=[[1.0, 2.0]])
    assert again.count() == 1


def test_operations_on_deleted_collection(client):
    coll = client.create_collection("deleted_ops", embedding_function=None)
    coll.add(ids=["a"], embeddings=[[1.0, 2.0]])
    client.delete_collection("deleted_ops")
    for op in (
        lambda: coll.add(ids=["b"], embeddings=[[1.0, 2.0]]),
        lambda: coll.count(),
        lambda: coll.get(),
        lambda: coll.query(query_embeddings=[[1.0, 2.0]], n_results=1),
        lambda: coll.upsert(ids=["a"], embeddings=[[1.0, 2.0]]),
        lambda: coll.delete(ids=["a"]),
    ):
        with pytest.raises(NotFoundError, match=r"Collection .* does not exist"):
            op()


def test_dimension_none_until_first_add_then_fixed(client):
    coll = client.create_collection("dims", embedding_function=None)
    assert client.get_collection("dims").get_model().dimension is None
    coll.add(ids=["a"], embeddings=[[1.0, 2.0, 3.0]])
    assert client.get_collection("dims").get_model().dimension == 3
    with pytest.raises(InvalidArgumentError, match=r"dimension of 3, got 2"):
        coll.add(ids=["b"], embeddings=[[1.0, 2.0]])
    assert client.get_collection("dims").get_model().dimension == 3
    assert coll.count() == 1


def test_fork_unsupported_on_single_node(client):
    coll = client.create_collection("forkme", embedding_function=None)
    with pytest.raises(ChromaError):
        coll.fork("forked")
    with pytest.raises(NotFoundError):
        client.get_collection("forked")
