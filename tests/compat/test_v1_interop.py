"""Quiver only: records written through /api/v2 are visible through /api/v1 (default database)."""

import numpy as np


def test_v2_write_v1_read(require_quiver, api, client):
    coll = client.create_collection("interop", metadata={"x": 1}, embedding_function=None)
    coll.add(ids=["a", "b"], embeddings=[[1.0, 2.0], [3.0, 4.0]], documents=["da", "db"],
             metadatas=[{"k": 1}, None])
    tenant = client.tenant
    r = api.get(f"/api/v1/{tenant}/collections/interop/get",
                params=[("include", "embeddings"), ("include", "documents"), ("include", "metadatas")])
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    rec = {rid: i for i, rid in enumerate(res["ids"])}
    assert sorted(rec) == ["a", "b"]
    assert res["documents"][rec["a"]] == "da"
    assert res["metadatas"][rec["a"]] == {"k": 1}
    assert res["metadatas"][rec["b"]] is None
    assert np.allclose(res["embeddings"][rec["b"]], [3.0, 4.0])

    r = api.get(f"/api/v1/{tenant}/collections/interop/get", params={"where": '{"k": 1}'})
    assert r.status_code == 200
    assert r.json()["results"]["ids"] == ["a"]

    r = api.get(f"/api/v1/{tenant}/collections/interop")
    assert r.status_code == 200
    c = r.json()["collection"]
    assert c["id"] == str(coll.id)
    assert c["count"] == 2 and c["dimension"] == 2
    assert c["metadata"] == {"x": 1}


def test_v1_write_v2_read(require_quiver, api, client):
    tenant = client.tenant
    r = api.post(f"/api/v1/{tenant}/collections", json={"name": "from_v1", "configuration": {"hnsw": {"space": "l2"}}})
    assert r.status_code in (200, 201), r.text
    r = api.post(f"/api/v1/{tenant}/collections/from_v1/add",
                 json={"ids": ["x"], "embeddings": [[0.5, 0.5]], "documents": ["v1 doc"]})
    assert r.status_code in (200, 201), r.text
    coll = client.get_collection("from_v1")
    got = coll.get(include=["documents", "embeddings"])
    assert got["ids"] == ["x"] and got["documents"] == ["v1 doc"]
    assert np.allclose(got["embeddings"][0], [0.5, 0.5])
