"""Tenants and databases (AdminClient).

A tenant made with `create_tenant` has no databases, `default_database` included, until
one is created; `list_databases` lists exactly the created ones, in byte order of their
names.

Not tested on purpose: "unknown tenant -> 404". Real Chroma answers 404 NotFoundError, but
Quiver creates a tenant (project) on first access by design.
"""

import uuid

import chromadb
import pytest
from chromadb.config import Settings
from chromadb.errors import ChromaError, InvalidArgumentError, NotFoundError

from _helpers import new_tenant, unique


def test_create_and_get_tenant(admin):
    name = unique("tenant")
    admin.create_tenant(name)
    t = admin.get_tenant(name)
    assert t["name"] == name


def test_duplicate_tenant(admin):
    name = unique("tenant")
    admin.create_tenant(name)
    with pytest.raises(ChromaError, match=rf"Tenant \[{name}\] already exists") as e:
        admin.create_tenant(name)
    assert e.type is ChromaError


def test_invalid_tenant_name(admin):
    with pytest.raises(InvalidArgumentError):
        admin.create_tenant("ab")  # fewer than 3 characters


def test_created_tenant_has_no_databases(admin):
    name = unique("tenant")
    admin.create_tenant(name)
    assert admin.list_databases(tenant=name) == []
    assert admin.list_databases(limit=5, offset=0, tenant=name) == []
    assert admin.list_databases(offset=3, tenant=name) == []
    with pytest.raises(NotFoundError, match=r"^Database \[default_database\] not found\. Are you sure it exists\?$"):
        admin.get_database(chromadb.DEFAULT_DATABASE, tenant=name)


def test_client_needs_the_database_of_a_created_tenant(admin, host_port):
    # HttpClient checks its tenant and database when it starts
    host, port = host_port
    name = unique("tenant")
    admin.create_tenant(name)
    with pytest.raises(NotFoundError, match=r"Database \[default_database\] not found"):
        chromadb.HttpClient(host=host, port=port, tenant=name,
                            settings=Settings(anonymized_telemetry=False))
    admin.create_database(chromadb.DEFAULT_DATABASE, tenant=name)
    client = chromadb.HttpClient(host=host, port=port, tenant=name,
                                 settings=Settings(anonymized_telemetry=False))
    assert client.list_collections() == []


def test_create_default_database_explicitly(admin):
    name = unique("tenant")
    admin.create_tenant(name)
    admin.create_database(chromadb.DEFAULT_DATABASE, tenant=name)
    db = admin.get_database(chromadb.DEFAULT_DATABASE, tenant=name)
    assert db["name"] == chromadb.DEFAULT_DATABASE and db["tenant"] == name
    uuid.UUID(str(db["id"]))
    assert [d["name"] for d in admin.list_databases(tenant=name)] == [chromadb.DEFAULT_DATABASE]
    with pytest.raises(ChromaError, match=r"Database \[default_database\] already exists"):
        admin.create_database(chromadb.DEFAULT_DATABASE, tenant=name)


def test_list_databases_lists_exactly_the_created_ones(admin):
    name = unique("tenant")
    admin.create_tenant(name)
    # byte order of the names: digits, then upper case, then lower case
    created = ["zz1", "B1x", "a_b", "9zz", "abc.d", "A00", "aa1"]
    for n in created:
        admin.create_database(n, tenant=name)
    expected = ["9zz", "A00", "B1x", "a_b", "aa1", "abc.d", "zz1"]
    assert expected == sorted(created)
    assert [d["name"] for d in admin.list_databases(tenant=name)] == expected
    pages = []
    for offset in range(0, len(expected), 3):
        pages += [d["name"] for d in admin.list_databases(limit=3, offset=offset, tenant=name)]
    assert pages == expected
    assert [d["name"] for d in admin.list_databases(limit=2, offset=5, tenant=name)] == expected[5:]
    assert admin.list_databases(offset=len(expected), tenant=name) == []


def test_list_databases_limit_zero(api, admin):
    name = unique("tenant")
    admin.create_tenant(name)
    admin.create_database("dbone", tenant=name)
    r = api.get(f"/api/v2/tenants/{name}/databases", params={"limit": 0})
    assert r.status_code == 200 and r.json() == []
    r = api.get(f"/api/v2/tenants/{name}/databases", params={"limit": -1})
    assert r.status_code == 400
    assert r.json() == {"error": "InvalidArgumentError",
                        "message": "Failed to deserialize query string: limit: invalid digit found in string"}


def test_deleted_default_database_stays_deleted(admin, tenant):
    admin.create_database("kept", tenant=tenant)
    admin.delete_database(chromadb.DEFAULT_DATABASE, tenant=tenant)
    assert [d["name"] for d in admin.list_databases(tenant=tenant)] == ["kept"]
    with pytest.raises(NotFoundError, match=r"Database \[default_database\] not found"):
        admin.get_database(chromadb.DEFAULT_DATABASE, tenant=tenant)
    admin.create_database(chromadb.DEFAULT_DATABASE, tenant=tenant)
    assert [d["name"] for d in admin.list_databases(tenant=tenant)] == [chromadb.DEFAULT_DATABASE, "kept"]


def test_create_and_get_database(admin, tenant):
    admin.create_database("dbone", tenant=tenant)
    db = admin.get_database("dbone", tenant=tenant)
    assert db["name"] == "dbone"
    assert db["tenant"] == tenant
    uuid.UUID(str(db["id"]))


def test_list_databases_sorted_with_limit_offset(admin, tenant):
    names = ["zz9", "b7y", "q1x", "a00", "m55"]
    for n in names:
        admin.create_database(n, tenant=tenant)
    # the `tenant` fixture created default_database
    expected = sorted(names + [chromadb.DEFAULT_DATABASE])
    listed = admin.list_databases(tenant=tenant)
    assert [d["name"] for d in listed] == expected
    assert all(d["tenant"] == tenant for d in listed)
    assert [d["name"] for d in admin.list_databases(limit=2, tenant=tenant)] == expected[:2]
    assert [d["name"] for d in admin.list_databases(limit=2, offset=2, tenant=tenant)] == expected[2:4]
    assert [d["name"] for d in admin.list_databases(offset=4, tenant=tenant)] == expected[4:]
    assert admin.list_databases(offset=100, tenant=tenant) == []


def test_duplicate_database(admin, tenant):
    admin.create_database("dupdb", tenant=tenant)
    with pytest.raises(ChromaError, match=r"Database \[dupdb\] already exists") as e:
        admin.create_database("dupdb", tenant=tenant)
    assert e.type is ChromaError


def test_delete_database(admin, tenant):
    admin.create_database("gone", tenant=tenant)
    admin.create_database("kept", tenant=tenant)
    admin.delete_database("gone", tenant=tenant)
    with pytest.raises(NotFoundError, match=r"Database \[gone\] not found"):
        admin.get_database("gone", tenant=tenant)
    with pytest.raises(NotFoundError, match=r"Database \[gone\] not found"):
        admin.delete_database("gone", tenant=tenant)
    names = [d["name"] for d in admin.list_databases(tenant=tenant)]
    assert "gone" not in names and "kept" in names


def test_get_missing_database(admin, tenant):
    with pytest.raises(NotFoundError, match=r"Database \[nope\] not found"):
        admin.get_database("nope", tenant=tenant)


@pytest.mark.parametrize("bad", ["a", "ab", "-abc", "abc-", "ab!c", "x" * 513])
def test_invalid_database_name(admin, tenant, bad):
    with pytest.raises(InvalidArgumentError):
        admin.create_database(bad, tenant=tenant)


def test_databases_isolate_collections(admin, tenant, make_client):
    admin.create_database("other", tenant=tenant)
    c1 = make_client(tenant)
    c2 = make_client(tenant, "other")
    a = c1.create_collection("same_name", embedding_function=None)
    b = c2.create_collection("same_name", embedding_function=None)
    assert a.id != b.id
    a.add(ids=["x", "y"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    b.add(ids=["z"], embeddings=[[1.0, 1.0]])
    assert c1.get_collection("same_name").count() == 2
    assert c2.get_collection("same_name").count() == 1
    assert b.get()["ids"] == ["z"]
    c2.create_collection("only_in_other", embedding_function=None)
    assert sorted(c.name for c in c1.list_collections()) == ["same_name"]
    assert sorted(c.name for c in c2.list_collections()) == ["only_in_other", "same_name"]
    assert c1.count_collections() == 1 and c2.count_collections() == 2


def test_tenants_isolate_collections(admin, make_client, tenant):
    other = new_tenant(admin)
    c1 = make_client(tenant)
    c2 = make_client(other)
    c1.create_collection("mine", embedding_function=None)
    assert c2.list_collections() == []
    with pytest.raises(NotFoundError):
        c2.get_collection("mine")


def test_collections_of_a_database_that_does_not_exist(api, tenant):
    base = f"/api/v2/tenants/{tenant}/databases/nodb"
    r = api.get(f"{base}/collections")
    assert (r.status_code, r.json()) == (200, [])
    r = api.get(f"{base}/collections_count")
    assert (r.status_code, r.json()) == (200, 0)
    r = api.post(f"{base}/collections", json={"name": "abc"})
    assert r.status_code == 400
    assert r.json() == {"error": "InvalidArgumentError", "message": "Database [nodb] does not exist"}
    for method in ("GET", "DELETE"):
        r = api.request(method, f"{base}/collections/abc")
        assert r.status_code == 404
        assert r.json() == {"error": "NotFoundError", "message": "Collection [abc] does not exist"}
