"""Quiver: a multi-tenant vector database that speaks the ChromaDB HTTP API.

This package ships the server (the `quiver` and `quiver-tenant-server` commands) and the
Python client of its per-project API:

    from quiver.client import MultiTenantChromaClient, ProjectCollection

(also importable as `multi_tenant_client`, the original multi-tenant Chroma server's
module name). The official `chromadb` client works against the same server through the
Chroma v2 API: `chromadb.HttpClient(host, port, tenant="<project>")`.
"""

from . import errors
from .client import DEFAULT_PROJECT, MultiTenantChromaClient, ProjectCollection
from .errors import QuiverError

try:
    from importlib.metadata import PackageNotFoundError, version as _version

    __version__ = _version("quiver-db")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = ["MultiTenantChromaClient", "ProjectCollection", "QuiverError", "errors",
           "DEFAULT_PROJECT", "__version__"]
