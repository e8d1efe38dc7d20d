"""Embedding functions recorded with a collection: set through the create call, the
configuration or the schema's vector index, they are stored, returned, rebuilt by the
client on get_collection, and used for documents; their space is kept.

The function under test is a deterministic one defined here and registered with the
client, so that nothing is downloaded. Every expectation was observed on the real
Chroma 1.5.9 server.
"""

import hashlib

import numpy as np
import pytest
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Schema, VectorIndexConfig
from chromadb.errors import InvalidArgumentError
from chromadb.utils.embedding_functions import register_embedding_function

from _helpers import DEFAULT_HNSW, brute_force, unique

EF_NAME = "quiver_compat_hash"


@register_embedding_function
class HashEmbedding(EmbeddingFunction[Documents]):
    """Embeds a text as bytes of its SHA-256, scaled to (0, 1]."""

    def __init__(self, dim: int = 4, space: str = "cosine"):
        self.dim = dim
        self.space = space

    def __call__(self, input: Documents) -> Embeddings:
        return [np.array([b / 255.0 + 0.01 for b in hashlib.sha256(d.encode()).digest()[: self.dim]],
                         dtype=np.float32) for d in input]

    @staticmethod
    def name() -> str:
        return EF_NAME

    def get_config(self):
        return {"dim": self.dim, "space": self.space}

    @staticmethod
    def build_from_config(config):
        return HashEmbedding(config["dim"], config.get("space", "cosine"))

    def default_space(self):
        return self.space

    def supported_spaces(self):
        return ["cosine", "l2", "ip"]


def recorded(ef: HashEmbedding) -> dict:
    return {"type": "known", "name": EF_NAME, "config": {"dim": ef.dim, "space": ef.space}}


def schema_vector_configs(api, coll):
    s = api.get(f"/api/v2/tenants/{coll.tenant}/databases/{coll.database}/collections/{coll.name}").json()["schema"]
    return (s["defaults"]["float_list"]["vector_index"]["config"],
            s["keys"]["#embedding"]["float_list"]["vector_index"]["config"])


def assert_uses(coll, ef: HashEmbedding, space: str):
    docs = ["first text", "second text", "third"]
    coll.add(ids=["1", "2", "3"], documents=docs)
    got = coll.get(ids=["1", "2", "3"], include=["embeddings", "documents"])
    order = {rid: i for i, rid in enumerate(got["ids"])}
    expected = ef(docs)
    for i, rid in enumerate(["1", "2", "3"]):
        np.testing.assert_allclose(got["embeddings"][order[rid]], expected[i], rtol=1e-6)
    # query texts are embedded with the same function
    res = coll.query(query_texts=["second text"], n_results=3, include=["distances"])
    exact = dict(zip(["1", "2", "3"], brute_force(space, ef(["second text"]), expected)[0]))
    assert res["distances"][0] == pytest.approx([exact[i] for i in res["ids"][0]], abs=1e-5)


def test_function_passed_to_create_is_recorded_and_rebuilt(api, client):
    ef = HashEmbedding(4, "cosine")
    coll = client.create_collection(unique("c"), embedding_function=ef)
    assert coll.configuration_json["embedding_function"] == recorded(ef)
    assert coll.configuration_json["hnsw"] == dict(DEFAULT_HNSW, space="cosine")
    for cfg in schema_vector_configs(api, coll):
        assert cfg["embedding_function"] == recorded(ef)
        assert cfg["space"] == "cosine"
    # a client that never saw the function gets it back from the server
    again = client.get_collection(coll.name)
    rebuilt = again.configuration["embedding_function"]
    assert isinstance(rebuilt, HashEmbedding) and rebuilt.dim == 4
    assert_uses(again, ef, "cosine")


def test_function_in_configuration(api, client):
    ef = HashEmbedding(6, "ip")
    coll = client.create_collection(unique("c"), configuration={"embedding_function": ef},
                                    embedding_function=None)
    assert coll.configuration_json["embedding_function"] == recorded(ef)
    # the function's own space is declared with it and kept
    assert coll.configuration_json["hnsw"]["space"] == "ip"
    assert_uses(client.get_collection(coll.name), ef, "ip")


def test_function_in_schema_vector_index(api, client):
    ef = HashEmbedding(5, "l2")
    s = Schema().create_index(VectorIndexConfig(embedding_function=ef, space="cosine"))
    coll = client.create_collection(unique("c"), schema=s, embedding_function=None)
    assert coll.configuration_json["embedding_function"] == recorded(ef)
    assert coll.configuration_json["hnsw"]["space"] == "cosine"
    for cfg in schema_vector_configs(api, coll):
        assert cfg["embedding_function"] == recorded(ef)
        assert cfg["space"] == "cosine"
    again = client.get_collection(coll.name)
    assert_uses(again, ef, "cosine")
    # the space declared in the schema is the one distances use
    got = again.get(ids=["1", "2", "3"], include=["embeddings"])
    q = ef(["probe"])[0]
    res = again.query(query_embeddings=[q], n_results=3)
    exact = brute_force("cosine", [q], got["embeddings"])[0]
    by_id = dict(zip(got["ids"], exact))
    assert res["distances"][0] == pytest.approx([by_id[i] for i in res["ids"][0]], abs=1e-5)


def test_schema_function_and_configuration_function_conflict(client):
    s = Schema().create_index(VectorIndexConfig(embedding_function=HashEmbedding(5, "l2"), space="cosine"))
    with pytest.raises(InvalidArgumentError,
                       match="Cannot set both collection config and schema simultaneously"):
        client.create_collection(unique("c"), schema=s, embedding_function=HashEmbedding(3))
    with pytest.raises(InvalidArgumentError,
                       match="Cannot set both collection config and schema simultaneously"):
        client.create_collection(unique("c"), schema=s,
                                 configuration={"embedding_function": HashEmbedding(3)},
                                 embedding_function=None)


def test_schema_without_function_and_a_function_argument_conflict(client):
    s = Schema().create_index(VectorIndexConfig(space="cosine"))
    with pytest.raises(InvalidArgumentError,
                       match="Cannot set both collection config and schema simultaneously"):
        client.create_collection(unique("c"), schema=s, embedding_function=HashEmbedding(3))


def test_modify_changes_the_function(api, client):
    coll = client.create_collection(unique("c"), configuration={"hnsw": {"space": "ip"}},
                                    embedding_function=None)
    ef = HashEmbedding(3, "ip")
    coll.modify(configuration={"embedding_function": ef})
    assert client.get_collection(coll.name).configuration_json["embedding_function"] == recorded(ef)
    for cfg in schema_vector_configs(api, coll):
        assert cfg["embedding_function"] == recorded(ef)
        assert cfg["space"] == "ip"
    assert_uses(client.get_collection(coll.name), ef, "ip")


def test_no_function_is_recorded_as_legacy_or_null(client):
    coll = client.create_collection(unique("c"), configuration={"hnsw": {"space": "cosine"}},
                                    embedding_function=None)
    assert coll.configuration_json["embedding_function"] in (None, {"type": "legacy"})
    raw = client.create_collection(unique("c"), metadata={"hnsw:M": 24}, embedding_function=None)
    assert raw.configuration_json["embedding_function"] is None
    assert raw.configuration_json["hnsw"]["max_neighbors"] == 24


def test_malformed_function_records_are_unprocessable(api, tenant):
    url = f"/api/v2/tenants/{tenant}/databases/default_database/collections"
    for ef, fragment in (({"type": "nope"}, "unknown variant `nope`"),
                         ({"type": "known", "name": "x"}, "missing field `config`")):
        r = api.post(url, json={"name": unique("c"), "configuration": {"embedding_function": ef}})
        assert r.status_code == 422, r.text
        assert fragment in r.json()["message"]
