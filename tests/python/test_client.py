"""The Python client against a real server: every method, the typed errors, the original
client's signatures, numpy input, pooling and timeouts. The operations are those of the
Rust client's live test (client/tests/live.rs), so both clients cover the same API."""

from __future__ import annotations

import math
import socket
import threading

import numpy as np
import pytest

import multi_tenant_client
import quiver
import quiver.client
from multi_tenant_client import MultiTenantChromaClient, ProjectCollection
from quiver import errors


def test_both_import_names_are_the_same_client():
    assert multi_tenant_client.MultiTenantChromaClient is quiver.client.MultiTenantChromaClient
    assert multi_tenant_client.ProjectCollection is quiver.ProjectCollection
    assert multi_tenant_client.NotFoundError is errors.NotFoundError


def test_server_calls(client):
    beat = client.heartbeat()
    assert beat["status"] == "ok" and isinstance(beat["nanosecond heartbeat"], int)
    version = client.version()
    assert isinstance(version, str) and version
    assert client.server_info()["version"] == version


def test_collections(client, project):
    info = client.create_collection(
        "docs", metadata={"owner": "me"}, project_name=project,
        configuration={"hnsw": {"space": "l2", "ef_search": 50}})
    assert (info["name"], info["count"], info["dimension"]) == ("docs", 0, None)
    assert info["metadata"] == {"owner": "me"}
    hnsw = info["configuration"]["hnsw"]
    assert (hnsw["space"], hnsw["ef_search"]) == ("l2", 50)

    again = client.create_collection("docs", project_name=project, get_or_create=True)
    assert again["id"] == info["id"]
    assert client.get_or_create_collection("docs", project_name=project)["id"] == info["id"]
    with pytest.raises(errors.UniqueConstraintError) as e:
        client.create_collection("docs", project_name=project)
    assert (e.value.status, e.value.error) == (409, "UniqueConstraintError")
    assert "docs" in e.value.message
    with pytest.raises(errors.InvalidArgumentError) as e:
        client.create_collection("bad name/!", project_name=project)
    assert e.value.status == 400

    other = client.create_collection("other", project_name=project)
    assert other["configuration"]["hnsw"]["space"] == "cosine", "the original server's default"
    names = {c["name"] for c in client.list_collections(project_name=project)}
    assert names == {"docs", "other"}
    assert client.get_collection("other", project_name=project)["id"] == other["id"]

    client.delete_collection("other", project_name=project)
    with pytest.raises(errors.NotFoundError):
        client.delete_collection("other", project_name=project)
    with pytest.raises(errors.NotFoundError) as e:
        client.get_collection("other", project_name=project)
    assert e.value.error == "NotFoundError" and e.value.status == 404


def test_records_through_the_collection_helper(client, project):
    client.create_collection("docs", project_name=project,
                             configuration={"hnsw": {"space": "l2"}})
    docs = ProjectCollection(client, project, "docs")
    r = docs.add(ids=["a", "b", "c"], embeddings=[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]],
                 documents=["alpha", "beta", None],
                 metadatas=[{"k": 1, "tag": "x"}, {"k": 2, "tag": "y"}, None],
                 uris=[None, "s3://b", None])
    assert (r["added"], r["total_count"]) == (3, 3)
    assert docs.add(ids=["a"], embeddings=[[9.0, 9.0]], documents=["changed"])["added"] == 0, \
        "add does not overwrite"
    assert docs.count() == 3
    assert docs.info()["dimension"] == 2
    with pytest.raises(errors.InvalidDimensionError) as e:
        docs.add(ids=["d"], embeddings=[[1.0, 2.0, 3.0]], documents=None)
    assert (e.value.status, e.value.error) == (400, "InvalidDimension")

    peek = docs.peek(2)
    assert len(peek["ids"]) == 2 and peek["embeddings"] is not None

    got = docs.get(ids=["b", "c"], include=["documents", "metadatas", "uris", "embeddings"])
    b = got["ids"].index("b")
    c = 1 - b
    assert got["documents"][b] == "beta" and got["documents"][c] is None
    assert got["uris"][b] == "s3://b"
    assert got["embeddings"][b] == [1.0, 0.0]
    assert got["metadatas"][b] == {"k": 2, "tag": "y"}
    filtered = docs.get(where={"k": {"$gte": 2}})
    assert filtered["ids"] == ["b"] and filtered["embeddings"] is None
    page = docs.get(limit=1, offset=1, include=[])
    assert len(page["ids"]) == 1

    res = docs.query(query_embeddings=[[0.9, 0.0], [0.0, 1.9]], n_results=2,
                     include=["distances", "metadatas"])
    assert res["ids"][0] == ["b", "a"]
    assert res["ids"][1][0] == "c"
    assert math.isclose(res["distances"][0][0], 0.01, abs_tol=1e-5), "squared L2"
    assert res["documents"] is None
    assert docs.query(query_embeddings=[[0.9, 0.0]], n_results=2,
                      where={"tag": "x"})["ids"][0] == ["a"]
    assert docs.query(query_embeddings=[[0.9, 0.0]], n_results=3,
                      where_document={"$contains": "alp"})["ids"][0] == ["a"]

    up = docs.update(ids=["a", "zzz"], metadatas=[{"tag": None, "k": 5}, None])
    assert up["updated"] == 1
    assert docs.get(ids=["a"])["metadatas"][0] == {"k": 5}
    docs.update(ids=["a"], documents=["alpha 2"])
    assert docs.get(ids=["a"])["documents"] == ["alpha 2"]

    ups = docs.upsert(ids=["c", "d"], embeddings=[[3.0, 3.0], [4.0, 4.0]], documents=None)
    assert (ups["upserted"], ups["total_count"]) == (2, 4)
    deleted = docs.delete(where={"k": 2})
    assert (deleted["deleted"], deleted["total_count"]) == (1, 3)
    assert docs.delete(ids=["d"])["deleted"] == 1
    assert docs.count() == 2

    m = docs.modify(new_configuration={"hnsw": {"ef_search": 77}})
    assert m["configuration"]["hnsw"]["ef_search"] == 77
    renamed = client.modify_collection("docs", new_name="docs2", project_name=project)
    assert renamed["name"] == "docs2"
    with pytest.raises(errors.NotFoundError):
        docs.count()
    moved = ProjectCollection(client, project, "docs2")
    assert moved.modify(new_name="docs3")["name"] == "docs3"
    assert moved.collection_name == "docs3" and moved.count() == 2


def test_original_client_signatures(client, project):
    """The original client's positional order: add(collection_name, documents, embeddings,
    ids, metadatas, project_name); query(collection_name, query_embeddings, n_results, where,
    where_document, include, project_name)."""
    client.create_collection("col", {"kind": "positional"}, project, True)
    client.add("col", ["one", "two"], [[1.0, 0.0], [0.0, 1.0]], ["1", "2"],
               [{"n": 1}, {"n": 2}], project)
    res = client.query("col", [[1.0, 0.1]], 1, {"n": {"$in": [1, 2]}}, None,
                       ["documents", "distances"], project)
    assert res["ids"] == [["1"]] and res["documents"] == [["one"]]
    assert res["metadatas"] is None
    client.upsert("col", ["two!"], [[0.0, 1.0]], ["2"], None, project)
    client.update("col", ["1"], None, ["one!"], None, project)
    got = client.get("col", ["1", "2"], None, None, None, None, ["documents"], project)
    assert dict(zip(got["ids"], got["documents"])) == {"1": "one!", "2": "two!"}
    assert client.count("col", project) == 2
    client.delete("col", ["1"], None, None, project)
    assert client.count("col", project_name=project) == 1


def test_projects(client, project):
    client.create_collection("col", project_name=project)
    client.add("col", None, [[0.5, 0.5]] * 3, ["a", "b", "c"], project_name=project)
    listed = {p["name"]: p for p in client.list_projects()}
    assert listed[project]["records"] == 3
    assert listed[project]["collections"] == 1
    assert client.delete_project(project)["project"] == project
    with pytest.raises(errors.NotFoundError):
        client.delete_project(project)
    assert project not in {p["name"] for p in client.list_projects()}


def test_default_project(client):
    name = f"default-project-check-{threading.get_ident()}"
    try:
        client.create_collection(name)
        assert name in {c["name"] for c in client.list_collections()}
        assert name in {c["name"] for c in client.list_collections(project_name="default")}
    finally:
        client.delete_collection(name)


def test_numpy_embeddings_and_packing(client, project):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    client.create_collection("vectors", project_name=project)
    docs = ProjectCollection(client, project, "vectors")
    docs.add(documents=None, embeddings=vectors, ids=[f"v{i}" for i in range(50)])
    docs.add(documents=None, embeddings=[vectors[0].astype(np.float64)], ids=["f64"])
    docs.add(documents=None, embeddings=[[1, 2] + [0] * 14], ids=["ints"])
    got = docs.get(ids=["v3", "ints"], include=["embeddings"])
    by_id = dict(zip(got["ids"], got["embeddings"]))
    np.testing.assert_array_equal(np.array(by_id["v3"], dtype=np.float32), vectors[3])
    assert by_id["ints"][:3] == [1.0, 2.0, 0.0]
    res = docs.query(query_embeddings=vectors[10:12], n_results=1)
    assert [ids[0] for ids in res["ids"]] == ["v10", "v11"]
    with pytest.raises(errors.InvalidArgumentError) as e:
        docs.add(documents=None, embeddings=[[math.nan] * 16], ids=["nan"])
    assert e.value.status == 400
    with pytest.raises(errors.InvalidArgumentError):
        docs.add(documents=None, embeddings=[["x"] * 16], ids=["str"])
    assert docs.count() == 52, "refused batches change nothing"


def test_typed_errors_carry_the_server_answer(client, project):
    client.create_collection("col", project_name=project)
    with pytest.raises(errors.DuplicateIDError) as e:
        client.add("col", None, [[1.0], [2.0]], ["same", "same"], project_name=project)
    assert e.value.error == "DuplicateIDError" and e.value.status == 400
    assert isinstance(e.value, errors.InvalidArgumentError)
    with pytest.raises(errors.InvalidArgumentError) as e:
        client.get("col", where={"k": {"$bogus": 1}}, project_name=project)
    assert "$bogus" in e.value.message
    assert isinstance(e.value.body, dict) and e.value.body["error"] == "InvalidArgumentError"
    with pytest.raises(errors.NotFoundError) as e:
        client.count("missing", project_name=project)
    assert "missing" in str(e.value) and "404" in str(e.value)
    assert isinstance(e.value, quiver.QuiverError)


def test_connection_refused_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = MultiTenantChromaClient(host="127.0.0.1", port=port, timeout=2)
    with pytest.raises(errors.ConnectionError) as e:
        c.heartbeat()
    assert e.value.status is None


def test_timeout_is_a_timeout_error():
    """A server that accepts and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        c = MultiTenantChromaClient(host="127.0.0.1", port=listener.getsockname()[1],
                                    timeout=0.5)
        with pytest.raises(errors.TimeoutError):
            c.heartbeat()
    finally:
        stop.set()
        t.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_one_pooled_connection_serves_sequential_calls(host_port):
    host, port = host_port
    c = MultiTenantChromaClient(host=host, port=port)
    for _ in range(25):
        c.heartbeat()
    pools = c._session.get_adapter(c.base_url).poolmanager.pools
    opened = sum(pools[key].num_connections for key in pools.keys())
    assert opened == 1, "keep-alive: one connection for 25 calls"
    c.close()


def test_threads_share_one_client(client, project):
    client.create_collection("threads", project_name=project)
    failures = []

    def writer(i):
        try:
            client.add("threads", None, [[float(i), 1.0]], [f"id{i}"], project_name=project)
        except Exception as e:  # pragma: no cover - reported below
            failures.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert client.count("threads", project_name=project) == 40


def test_token_and_headers_are_sent(host_port):
    """`token=` becomes a Bearer header and `headers=` are sent as given; a server without
    auth ignores them."""
    host, port = host_port
    c = MultiTenantChromaClient(host=host, port=port, token="t0ken",
                                headers={"X-Request-Source": "tests"})
    sent = c._session.headers
    assert sent["Authorization"] == "Bearer t0ken"
    assert sent["X-Request-Source"] == "tests"
    assert c.heartbeat()["status"] == "ok"
