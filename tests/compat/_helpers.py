"""Shared helpers of the Chroma compatibility suite."""

from __future__ import annotations

import uuid

import chromadb
import numpy as np

# What real Chroma fills in for an hnsw configuration that sets nothing.
DEFAULT_HNSW = {
    "space": "l2",
    "ef_construction": 100,
    "ef_search": 100,
    "max_neighbors": 16,
    "resize_factor": 1.2,
    "sync_threshold": 1000,
}

ALL_GET_INCLUDES = ["documents", "embeddings", "metadatas", "uris"]
ALL_QUERY_INCLUDES = ["documents", "embeddings", "metadatas", "uris", "distances"]


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def brute_force(space: str, queries, data) -> np.ndarray:
    """Distances [n_queries, n_data] as Chroma defines them (l2 is squared)."""
    q = np.asarray(queries, dtype=np.float64)
    x = np.asarray(data, dtype=np.float64)
    if space == "l2":
        return ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if space == "ip":
        return 1.0 - q @ x.T
    if space == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        return 1.0 - qn @ xn.T
    raise ValueError(space)


def records_url(client, collection, op: str) -> str:
    """Path of a record route of `collection` (relative to the server base URL)."""
    return (f"/api/v2/tenants/{collection.tenant}/databases/{collection.database}"
            f"/collections/{collection.id}/{op}")


def by_id(result) -> dict:
    """{id: (embedding, document, metadata, uri)} of a GetResult, for order-free checks."""
    out = {}
    for i, rid in enumerate(result["ids"]):
        def pick(key):
            v = result.get(key)
            return None if v is None else v[i]
        out[rid] = {
            "embedding": pick("embeddings"),
            "document": pick("documents"),
            "metadata": pick("metadatas"),
            "uri": pick("uris"),
        }
    return out


def new_tenant(admin) -> str:
    """Create a fresh tenant through the admin API, with its `default_database`.

    A tenant created through `POST /tenants` has no databases at all, on real Chroma and on
    Quiver alike, so `default_database` is created right after it (as a Chroma user does
    before `HttpClient(tenant=...)`, which checks that its database exists).
    """
    name = unique("tenant")
    admin.create_tenant(name)
    admin.create_database(chromadb.DEFAULT_DATABASE, tenant=name)
    return name
