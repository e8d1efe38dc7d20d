"""The original multi-tenant Chroma server's client module, kept under its old name so
that `from multi_tenant_client import MultiTenantChromaClient, ProjectCollection` keeps
working. Everything here is `quiver.client`."""

from quiver.client import DEFAULT_PROJECT, MultiTenantChromaClient, ProjectCollection
from quiver.errors import *  # noqa: F401,F403 - the typed errors, as quiver.errors
from quiver.errors import QuiverError

__all__ = ["MultiTenantChromaClient", "ProjectCollection", "QuiverError", "DEFAULT_PROJECT"]
