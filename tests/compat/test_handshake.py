"""Client start-up: what the official client calls before and around anything else."""

import asyncio
import time

import chromadb
import pytest
from chromadb.config import Settings
from chromadb.errors import NotFoundError

HOUR_NS = 3600 * 10**9


def test_http_client_construction(make_client, tenant):
    # HttpClient() itself calls GET /auth/identity, /tenants/{t}, /tenants/{t}/databases/{db}
    client = make_client(tenant)
    assert client.tenant == tenant
    assert client.database == chromadb.DEFAULT_DATABASE


def test_heartbeat(client):
    hb = client.heartbeat()
    assert isinstance(hb, int)
    assert abs(hb - time.time_ns()) < HOUR_NS


def test_heartbeat_raw(api):
    r = api.get("/api/v2/heartbeat")
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body["nanosecond heartbeat"], int)
    assert abs(body["nanosecond heartbeat"] - time.time_ns()) < HOUR_NS


def test_async_client_heartbeat_route(api):
    # the async client's heartbeat is GET on the bare prefix
    r = api.get("/api/v2")
    assert r.status_code == 200
    assert isinstance(r.json()["nanosecond heartbeat"], int)


def test_get_version(client, api):
    v = client.get_version()
    assert isinstance(v, str) and v
    r = api.get("/api/v2/version")
    assert r.status_code == 200
    assert r.json() == v


def test_get_max_batch_size(client):
    assert client.get_max_batch_size() > 0


def test_pre_flight_checks(api):
    r = api.get("/api/v2/pre-flight-checks")
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body["max_batch_size"], int) and body["max_batch_size"] > 0
    assert isinstance(body.get("supports_base64_encoding"), bool)


def test_auth_identity(client, api):
    r = api.get("/api/v2/auth/identity")
    assert r.status_code == 200
    body = r.json()
    # the client does UserIdentity(**body): only these keys are allowed, user_id is required
    assert "user_id" in body
    assert set(body) <= {"user_id", "tenant", "databases", "attributes"}
    ident = client.get_user_identity()
    assert ident.user_id == body["user_id"]


def test_healthcheck(api):
    r = api.get("/api/v2/healthcheck")
    assert r.status_code == 200
    assert r.json() == {"is_executor_ready": True, "is_log_client_ready": True}


def test_get_tenant_raw(api, tenant):
    r = api.get(f"/api/v2/tenants/{tenant}")
    assert r.status_code == 200
    assert r.json()["name"] == tenant


def test_client_on_missing_database(make_client, tenant):
    with pytest.raises(NotFoundError, match=r"Database \[nodb\w*\] not found"):
        make_client(tenant, "nodb" + tenant[-6:])


def test_async_client_roundtrip(host_port, tenant):
    host, port = host_port

    async def run():
        ac = await chromadb.AsyncHttpClient(
            host=host, port=port, tenant=tenant, settings=Settings(anonymized_telemetry=False)
        )
        hb = await ac.heartbeat()
        coll = await ac.create_collection("async_coll", embedding_function=None)
        await coll.add(ids=["a", "b"], embeddings=[[1.0, 2.0], [3.0, 4.0]], documents=["x", "y"])
        count = await coll.count()
        res = await coll.query(query_embeddings=[[1.0, 2.0]], n_results=1)
        names = [c.name for c in await ac.list_collections()]
        return hb, count, res, names

    hb, count, res, names = asyncio.run(run())
    assert isinstance(hb, int)
    assert count == 2
    assert res["ids"] == [["a"]]
    assert res["documents"] == [["x"]]
    assert res["distances"][0][0] == pytest.approx(0.0, abs=1e-6)
    assert names == ["async_coll"]
