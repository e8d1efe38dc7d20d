"""Query distances against a brute-force computation, for each space."""

import numpy as np
import pytest

from _helpers import brute_force

N, DIM, K = 150, 8, 10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(N, DIM)).astype(np.float32)
    q = rng.normal(size=(4, DIM)).astype(np.float32)
    return x, q


def make(client, space, how):
    name = f"dist_{space}_{how}"
    if how == "configuration":
        return client.create_collection(name, configuration={"hnsw": {"space": space}}, embedding_function=None)
    if how == "metadata":
        return client.create_collection(name, metadata={"hnsw:space": space}, embedding_function=None)
    return client.create_collection(name, embedding_function=None)


@pytest.mark.parametrize(
    "space,how",
    [("l2", "default"), ("l2", "configuration"), ("cosine", "configuration"), ("ip", "configuration"),
     ("cosine", "metadata"), ("ip", "metadata")],
)
def test_distances_match_brute_force(module_client, data, space, how):
    x, q = data
    coll = make(module_client, space, how)
    assert coll.configuration_json["hnsw"]["space"] == space
    ids = [f"i{i}" for i in range(N)]
    coll.add(ids=ids, embeddings=x)
    res = coll.query(query_embeddings=q, n_results=K, include=["distances"])
    d = brute_force(space, q, x)
    for qi in range(len(q)):
        got = np.array(res["distances"][qi])
        assert len(got) == K
        assert np.all(np.diff(got) >= -1e-6), "distances must be ascending"
        order = np.argsort(d[qi], kind="stable")[:K]
        assert np.allclose(got, d[qi][order], rtol=1e-4, atol=1e-4)
        # every returned id is at its own brute-force distance
        got_ids = [int(i[1:]) for i in res["ids"][qi]]
        assert np.allclose(got, d[qi][got_ids], rtol=1e-4, atol=1e-4)
        assert set(got_ids) == set(order.tolist())


def test_l2_is_squared(collection):
    collection.add(ids=["p"], embeddings=[[0.5, 0.5, 0.5]])
    res = collection.query(query_embeddings=[[1.0, 2.0, 3.0]], n_results=1, include=["distances"])
    assert res["distances"][0][0] == pytest.approx(8.75, rel=1e-5)


def test_cosine_and_ip_values(client):
    cos = client.create_collection("cos_vals", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    ip = client.create_collection("ip_vals", configuration={"hnsw": {"space": "ip"}}, embedding_function=None)
    vecs = [[3.0, 4.0], [4.0, -3.0], [-3.0, -4.0]]
    for c in (cos, ip):
        c.add(ids=["same", "orth", "opp"], embeddings=vecs)
    r = cos.query(query_embeddings=[[6.0, 8.0]], n_results=3, include=["distances", "embeddings"])
    assert r["ids"] == [["same", "orth", "opp"]]
    assert np.allclose(r["distances"][0], [0.0, 1.0, 2.0], atol=1e-5)
    # stored embeddings are returned as given, not normalised
    assert np.allclose(r["embeddings"][0][0], [3.0, 4.0])
    r = ip.query(query_embeddings=[[0.1, 0.2]], n_results=3, include=["distances"])
    assert r["ids"] == [["same", "orth", "opp"]]
    assert np.allclose(r["distances"][0], [1 - 1.1, 1 - (-0.2), 1 - (-1.1)], atol=1e-5)


def test_query_several_embeddings_at_once(module_client, data):
    x, q = data
    coll = module_client.create_collection("dist_multi", embedding_function=None)
    coll.add(ids=[f"i{i}" for i in range(N)], embeddings=x)
    res = coll.query(query_embeddings=q, n_results=3, include=["distances"])
    assert len(res["ids"]) == len(q)
    for qi in range(len(q)):
        single = coll.query(query_embeddings=[q[qi]], n_results=3, include=["distances"])
        assert res["ids"][qi] == single["ids"][0]
        assert np.allclose(res["distances"][qi], single["distances"][0])
