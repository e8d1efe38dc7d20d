"""SPANN configurations on a single node: accepted, served by HNSW with the SPANN request's
space and HNSW's defaults, and reported in the shapes the client expects, so that code
written for Chroma Cloud runs unchanged. Observed on the real Chroma 1.5.9 server.
"""

import pytest
from chromadb.api.types import Schema, SpannIndexConfig, VectorIndexConfig
from chromadb.errors import InvalidArgumentError

from _helpers import DEFAULT_HNSW, brute_force, unique


def schema_of(api, coll):
    return api.get(f"/api/v2/tenants/{coll.tenant}/databases/{coll.database}/collections/{coll.name}").json()["schema"]


def assert_served_by_hnsw(api, coll, space):
    assert coll.configuration_json["hnsw"] == dict(DEFAULT_HNSW, space=space)
    assert coll.configuration_json["spann"] is None
    s = schema_of(api, coll)
    for vi in (s["defaults"]["float_list"]["vector_index"], s["keys"]["#embedding"]["float_list"]["vector_index"]):
        assert "spann" not in vi["config"]
        assert vi["config"]["space"] == space
        assert vi["config"]["hnsw"]["ef_search"] == 100
        assert vi["config"]["hnsw"]["max_neighbors"] == 16


def assert_distances(coll, space):
    data = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
    coll.add(ids=["a", "b", "c"], embeddings=data)
    q = [1.0, 0.1]
    res = coll.query(query_embeddings=[q], n_results=3)
    exact = dict(zip("abc", brute_force(space, [q], data)[0]))
    assert res["distances"][0] == pytest.approx([exact[i] for i in res["ids"][0]], abs=1e-5)
    assert res["distances"][0] == sorted(res["distances"][0])


def test_spann_configuration_keeps_its_space(api, client):
    coll = client.create_collection(
        unique("c"), configuration={"spann": {"space": "cosine", "search_nprobe": 10, "ef_search": 33}},
        embedding_function=None)
    assert_served_by_hnsw(api, coll, "cosine")
    again = client.get_collection(coll.name)
    assert again.configuration["hnsw"]["space"] == "cosine"
    assert again.configuration["spann"] is None
    assert_distances(again, "cosine")


def test_spann_configuration_without_space_is_l2(api, client):
    coll = client.create_collection(unique("c"), configuration={"spann": {"ef_construction": 50}},
                                    embedding_function=None)
    assert_served_by_hnsw(api, coll, "l2")
    assert_distances(coll, "l2")


def test_spann_in_schema(api, client):
    s = Schema().create_index(VectorIndexConfig(space="ip", spann=SpannIndexConfig(search_nprobe=5, ef_search=40)))
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    assert_served_by_hnsw(api, coll, "ip")
    again = client.get_collection(coll.name)
    vi = again.schema.keys["#embedding"].float_list.vector_index.config
    assert vi.spann is None and vi.hnsw is not None and vi.space == "ip"
    assert_distances(again, "ip")


def test_spann_ignores_legacy_metadata(api, client):
    coll = client.create_collection(unique("c"), metadata={"hnsw:space": "ip"},
                                    configuration={"spann": {"ef_search": 50}}, embedding_function=None)
    assert_served_by_hnsw(api, coll, "l2")
    assert coll.metadata == {"hnsw:space": "ip"}


def test_spann_and_hnsw_together_are_refused(api, tenant, client):
    with pytest.raises(ValueError, match="hnsw and spann cannot both be provided"):
        client.create_collection(unique("c"), configuration={"spann": {"space": "ip"}, "hnsw": {"space": "ip"}},
                                 embedding_function=None)
    r = api.post(f"/api/v2/tenants/{tenant}/databases/default_database/collections",
                 json={"name": unique("c"), "configuration": {"hnsw": {"space": "ip"}, "spann": {"space": "ip"}}})
    assert r.status_code == 400
    assert r.json() == {"error": "InvalidArgumentError", "message": "Multiple vector index configurations provided"}


def test_unknown_spann_fields_are_unprocessable(api, tenant):
    r = api.post(f"/api/v2/tenants/{tenant}/databases/default_database/collections",
                 json={"name": unique("c"), "configuration": {"spann": {"nprobe_typo": 1}}})
    assert r.status_code == 422
    assert "configuration.spann.nprobe_typo: unknown field `nprobe_typo`" in r.json()["message"]


def test_spann_update_on_an_hnsw_collection_is_refused_by_the_client(client):
    coll = client.create_collection(unique("c"), configuration={"spann": {"space": "cosine"}},
                                    embedding_function=None)
    with pytest.raises(ValueError, match="Trying to update SPANN config but schema has HNSW"):
        coll.modify(configuration={"spann": {"search_nprobe": 20}})
    coll.modify(configuration={"hnsw": {"ef_search": 64}})
    assert client.get_collection(coll.name).configuration_json["hnsw"]["ef_search"] == 64


def test_legacy_metadata_errors(api, tenant):
    url = f"/api/v2/tenants/{tenant}/databases/default_database/collections"
    for md in ({"hnsw:unknown_knob": 1}, {"hnsw:M": "many"}, {"hnsw:space": "manhattan"}, {"hnsw:M": 3.5}):
        r = api.post(url, json={"name": unique("c"), "metadata": md})
        assert r.status_code == 400, (md, r.text)
        assert r.json() == {"error": "InvalidArgumentError",
                            "message": "Failed to parse hnsw parameters from segment metadata"}


def test_legacy_metadata_applies_only_under_a_default_hnsw_configuration(api, tenant):
    url = f"/api/v2/tenants/{tenant}/databases/default_database/collections"
    r = api.post(url, json={"name": unique("c"), "metadata": {"hnsw:space": "ip"},
                            "configuration": {"hnsw": {"ef_search": 100}}})
    assert r.json()["configuration_json"]["hnsw"] == dict(DEFAULT_HNSW, space="ip")
    r = api.post(url, json={"name": unique("c"), "metadata": {"hnsw:space": "ip"},
                            "configuration": {"hnsw": {"ef_search": 50}}})
    assert r.json()["configuration_json"]["hnsw"] == dict(DEFAULT_HNSW, ef_search=50)
