"""Quiver only: `/api/v1` and `/api/v2` share the store.

Records written through one API are visible through the other (`/api/v1` works on the
project's `default_database`, in the same record order), and a project first used without
`create_tenant` has its `default_database` (see docs/chroma-v2.md, "Tenants and databases").
"""

import numpy as np
import pytest
from chromadb.errors import ChromaError

from _helpers import unique


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


def test_v1_get_by_ids_in_storage_order(require_quiver, api, client):
    # /api/v1 reads the same store, in the same order as /api/v2
    coll = client.create_collection("order_v1", embedding_function=None)
    coll.add(ids=["zeta", "alpha", "mid"], embeddings=[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    r = api.post(f"/api/v1/{client.tenant}/collections/order_v1/get",
                 json={"ids": ["mid", "zeta", "nope"], "include": []})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["ids"] == ["zeta", "mid"]


def test_v1_query_ignores_unknown_ids(require_quiver, api, client):
    # unlike /api/v2 (Chroma's 500), the per-project API answers with the ids it holds
    coll = client.create_collection("query_v1", embedding_function=None)
    coll.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    r = api.post(f"/api/v1/{client.tenant}/collections/query_v1/query",
                 json={"query_embeddings": [[1.0, 0.0]], "ids": ["b", "nope"], "n_results": 2})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["ids"] == [["b"]]


def test_v1_use_of_a_created_tenant_makes_its_default_database(require_quiver, api, admin):
    name = unique("tenant")
    admin.create_tenant(name)
    r = api.get(f"/api/v1/{name}/collections")
    assert r.status_code == 200, r.text
    assert r.json()["collections"] == []
    # reading through /api/v1 creates nothing
    assert admin.list_databases(tenant=name) == []
    r = api.post(f"/api/v1/{name}/collections", json={"name": "from_v1"})
    assert r.status_code in (200, 201), r.text
    assert [d["name"] for d in admin.list_databases(tenant=name)] == ["default_database"]
    r = api.get(f"/api/v2/tenants/{name}/databases/default_database/collections")
    assert r.status_code == 200 and [c["name"] for c in r.json()] == ["from_v1"]


def test_tenant_first_used_without_create_tenant_has_default_database(require_quiver, admin, make_client):
    # Quiver creates a project on first use; made that way it has its default_database,
    # so HttpClient(tenant=...) works on a fresh name
    name = unique("tenant")
    client = make_client(name)
    assert client.list_collections() == []
    assert [d["name"] for d in admin.list_databases(tenant=name)] == ["default_database"]
    # and an explicit create_tenant of it now finds it
    with pytest.raises(ChromaError, match=rf"Tenant \[{name}\] already exists"):
        admin.create_tenant(name)


def test_v1_first_use_creates_project_with_default_database(require_quiver, api, admin):
    name = unique("tenant")
    r = api.get(f"/api/v1/{name}/collections")
    assert r.status_code == 200, r.text
    assert [d["name"] for d in admin.list_databases(tenant=name)] == ["default_database"]
