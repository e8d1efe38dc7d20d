"""The Python client of Quiver's per-project API (`/api/v1`, docs/api-v1.md).

It keeps the interface of the original multi-tenant Chroma server's client, so code
written for it runs unchanged:

    from multi_tenant_client import MultiTenantChromaClient, ProjectCollection

    client = MultiTenantChromaClient(host="localhost", port=7100)
    client.create_collection(name="docs", metadata={"a": 1}, project_name="my_project")
    client.add(collection_name="docs", documents=["hello"], embeddings=[[0.1, 0.2]],
               ids=["d1"], project_name="my_project")
    client.query(collection_name="docs", query_embeddings=[[0.1, 0.2]], n_results=1,
                 project_name="my_project")

`MultiTenantChromaClient` takes the project on every call (`project_name=`, default
`"default"`); `ProjectCollection(client, project, collection)` binds both names. One
client holds one pool of keep-alive connections and may be shared between threads.
Errors are the typed exceptions of `quiver.errors`, carrying the server's error name,
message and status. Embeddings (lists or numpy arrays) travel as packed float32, as the
server stores them, which is several times smaller than JSON numbers.
"""

from __future__ import annotations

import array
import base64
import json
import math
import sys
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from . import errors
from .errors import QuiverError

__all__ = ["MultiTenantChromaClient", "ProjectCollection", "DEFAULT_PROJECT"]

DEFAULT_PROJECT = "default"

Metadata = Mapping[str, Any]
Where = Mapping[str, Any]
Embedding = Any  # a sequence of numbers or a 1-d numpy array
Include = Sequence[str]


def _pack(embedding: Embedding) -> Union[str, list]:
    """base64 of little-endian float32, or the value unchanged when it is not a vector of
    numbers (the server then says what is wrong with it)."""
    if hasattr(embedding, "astype") and getattr(embedding, "ndim", None) == 1:
        try:
            return base64.b64encode(embedding.astype("<f4").tobytes()).decode("ascii")
        except (TypeError, ValueError):
            return embedding.tolist()
    if isinstance(embedding, (str, bytes)) or not isinstance(embedding, Iterable):
        return embedding
    values = list(embedding)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        return values
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        # JSON has no NaN; let the server name the bad value (it refuses it the same way)
        return [v if math.isfinite(v) else str(v) for v in values]
    packed = array.array("f", values)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _embeddings(embeddings: Any) -> Optional[list]:
    if embeddings is None:
        return None
    if getattr(embeddings, "ndim", None) == 2:
        return [_pack(row) for row in embeddings]
    if isinstance(embeddings, (str, bytes)) or not isinstance(embeddings, Iterable):
        return embeddings  # the server answers InvalidArgumentError
    return [_pack(e) for e in embeddings]


def _list(value: Any) -> Any:
    """numpy arrays and tuples as JSON lists; None stays None."""
    if value is None:
        return None
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def _body(**fields: Any) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class MultiTenantChromaClient:
    """Client of one Quiver server (a tenant server, or a router in front of several).

    `host`/`port` as in the original client; `ssl=True` for https. `timeout` is the
    seconds to wait for a connection and for each answer (a float, or a
    `(connect, read)` pair). `headers` are sent with every request (an `Authorization`
    header, say); `token`, when given, is sent as `Authorization: Bearer <token>`.
    `pool_size` bounds the keep-alive connections kept per host.
    """

    def __init__(self, host: str = "localhost", port: int = 7100, *, ssl: bool = False,
                 timeout: Union[float, tuple] = 30.0,
                 headers: Optional[Mapping[str, str]] = None,
                 token: Optional[str] = None, pool_size: int = 10,
                 base_url: Optional[str] = None) -> None:
        if base_url is None:
            scheme = "https" if ssl else "http"
            base_url = f"{scheme}://{host}:{int(port)}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        # a local server never goes through the environment's proxies
        self._session.trust_env = False
        self._session.headers.update({"Accept": "application/json",
                                      "User-Agent": "quiver-python"})
        if headers:
            self._session.headers.update(dict(headers))
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    # -- transport ------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the pooled connections."""
        self._session.close()

    def __enter__(self) -> "MultiTenantChromaClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MultiTenantChromaClient(base_url={self.base_url!r})"

    def _url(self, *segments: str) -> str:
        return self.base_url + "/" + "/".join(quote(s, safe="") for s in segments)

    def _request(self, method: str, *segments: str, body: Any = None,
                 params: Any = None) -> Any:
        url = self._url(*segments)
        data = None
        headers = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers = {"Content-Type": "application/json"}
        try:
            r = self._session.request(method, url, data=data, params=params,
                                      headers=headers, timeout=self.timeout)
        except requests.Timeout as e:
            raise errors.TimeoutError(f"{method} {url}: no answer in time ({e})") from e
        except requests.ConnectionError as e:
            raise errors.ConnectionError(f"{method} {url}: cannot connect ({e})") from e
        except requests.RequestException as e:
            raise QuiverError(f"{method} {url}: {e}") from e
        try:
            payload = r.json() if r.content else None
        except ValueError:
            payload = None
        if r.status_code >= 400:
            raise errors.from_response(r.status_code, payload, r.text)
        if payload is None and r.content:
            raise QuiverError(f"{method} {url}: the answer is not JSON: {r.text[:200]!r}",
                              status=r.status_code)
        return payload

    def _collection(self, project_name: str, collection_name: str, *rest: str) -> tuple:
        return ("api", "v1", project_name, "collections", collection_name, *rest)

    def _write(self, op: str, collection_name: str, project_name: str, ids: Any,
               embeddings: Any, documents: Any, metadatas: Any, uris: Any) -> Dict[str, Any]:
        """`POST …/{op}` (add, upsert, update) with the record columns given."""
        body = _body(ids=_list(ids), embeddings=_embeddings(embeddings),
                     documents=_list(documents), metadatas=_list(metadatas), uris=_list(uris))
        return self._request("POST", *self._collection(project_name, collection_name, op),
                             body=body)

    # -- server ---------------------------------------------------------------------------

    def heartbeat(self) -> Dict[str, Any]:
        """`{"status": "ok", "nanosecond heartbeat": <int>}`; raises when the server is down."""
        return self._request("GET", "api", "v1", "heartbeat")

    def version(self) -> str:
        """The server's version."""
        return self._request("GET", "api", "v1", "version")["version"]

    def server_info(self) -> Dict[str, Any]:
        """`GET /`: the server's name, version and workspace directory."""
        return self._request("GET")

    def list_projects(self) -> List[Dict[str, Any]]:
        """Every project: `{"name", "path", "open", "collections", "records", "bytes"}`."""
        return self._request("GET", "api", "v1", "projects")["projects"]

    def delete_project(self, project_name: str) -> Dict[str, Any]:
        """Deletes a project with all its collections (`NotFoundError` if there is none)."""
        return self._request("DELETE", "api", "v1", project_name)

    # -- collections ----------------------------------------------------------------------

    def list_collections(self, project_name: str = DEFAULT_PROJECT) -> List[Dict[str, Any]]:
        """The project's collections: `{"name", "id", "metadata", "count", "dimension",
        "configuration", "indexing"}` each."""
        return self._request("GET", "api", "v1", project_name, "collections")["collections"]

    def create_collection(self, name: str, metadata: Optional[Metadata] = None,
                          project_name: str = DEFAULT_PROJECT, get_or_create: bool = False,
                          configuration: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Creates collection `name` (`UniqueConstraintError` if it exists, unless
        `get_or_create`). `configuration` is `{"hnsw": {"space", "ef_construction",
        "ef_search", "max_neighbors"}}`; the space defaults to cosine."""
        body = _body(name=name, metadata=_list(metadata) if metadata else None,
                     configuration=configuration,
                     get_or_create=True if get_or_create else None)
        return self._request("POST", "api", "v1", project_name, "collections",
                             body=body)["collection"]

    def get_or_create_collection(self, name: str, metadata: Optional[Metadata] = None,
                                 project_name: str = DEFAULT_PROJECT,
                                 configuration: Optional[Mapping[str, Any]] = None
                                 ) -> Dict[str, Any]:
        """`create_collection(..., get_or_create=True)`."""
        return self.create_collection(name, metadata, project_name, True, configuration)

    def get_collection(self, name: str, project_name: str = DEFAULT_PROJECT) -> Dict[str, Any]:
        """One collection (`NotFoundError` if it does not exist)."""
        return self._request("GET", *self._collection(project_name, name))["collection"]

    def modify_collection(self, name: str, new_name: Optional[str] = None,
                          new_metadata: Optional[Metadata] = None,
                          project_name: str = DEFAULT_PROJECT,
                          new_configuration: Optional[Mapping[str, Any]] = None
                          ) -> Dict[str, Any]:
        """Renames a collection, replaces its metadata, or changes its `ef_search`."""
        body = _body(new_name=new_name, new_metadata=new_metadata,
                     new_configuration=new_configuration)
        return self._request("PUT", *self._collection(project_name, name),
                             body=body)["collection"]

    def delete_collection(self, name: str, project_name: str = DEFAULT_PROJECT) -> Dict[str, Any]:
        """Deletes a collection and its records (`NotFoundError` if it does not exist)."""
        return self._request("DELETE", *self._collection(project_name, name))

    # -- records --------------------------------------------------------------------------

    def add(self, collection_name: str, documents: Optional[Sequence[Optional[str]]],
            embeddings: Any, ids: Sequence[str],
            metadatas: Optional[Sequence[Optional[Metadata]]] = None,
            project_name: str = DEFAULT_PROJECT,
            uris: Optional[Sequence[Optional[str]]] = None) -> Dict[str, Any]:
        """Adds records; an id that exists is left as it is (Chroma's rule). Answers
        `{"added": <records inserted>, "total_count": <count after>, ...}`."""
        return self._write("add", collection_name, project_name, ids, embeddings, documents,
                           metadatas, uris)

    def upsert(self, collection_name: str, documents: Optional[Sequence[Optional[str]]],
               embeddings: Any, ids: Sequence[str],
               metadatas: Optional[Sequence[Optional[Metadata]]] = None,
               project_name: str = DEFAULT_PROJECT,
               uris: Optional[Sequence[Optional[str]]] = None) -> Dict[str, Any]:
        """Adds new ids and overwrites existing ones (a metadata key set to None is removed)."""
        return self._write("upsert", collection_name, project_name, ids, embeddings, documents,
                           metadatas, uris)

    def update(self, collection_name: str, ids: Sequence[str], embeddings: Any = None,
               documents: Optional[Sequence[Optional[str]]] = None,
               metadatas: Optional[Sequence[Optional[Metadata]]] = None,
               project_name: str = DEFAULT_PROJECT,
               uris: Optional[Sequence[Optional[str]]] = None) -> Dict[str, Any]:
        """Changes the given fields of existing records; unknown ids are ignored."""
        return self._write("update", collection_name, project_name, ids, embeddings, documents,
                           metadatas, uris)

    def delete(self, collection_name: str, ids: Optional[Sequence[str]] = None,
               where: Optional[Where] = None, where_document: Optional[Where] = None,
               project_name: str = DEFAULT_PROJECT,
               limit: Optional[int] = None) -> Dict[str, Any]:
        """Deletes records by ids and/or filters; answers `{"deleted", "total_count", ...}`."""
        body = _body(ids=_list(ids), where=where, where_document=where_document, limit=limit)
        return self._request("POST",
                             *self._collection(project_name, collection_name, "delete"),
                             body=body)

    def query(self, collection_name: str, query_embeddings: Any, n_results: int = 10,
              where: Optional[Where] = None, where_document: Optional[Where] = None,
              include: Optional[Include] = None, project_name: str = DEFAULT_PROJECT,
              ids: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """Nearest neighbours of each query embedding: `{"ids": [[...]], "distances",
        "documents", "metadatas", "embeddings", "uris", "include"}`, one inner list per
        query, nearest first. `include` defaults to metadatas, documents and distances."""
        body = _body(query_embeddings=_embeddings(query_embeddings), n_results=n_results,
                     where=where, where_document=where_document, include=_list(include),
                     ids=_list(ids))
        return self._request("POST",
                             *self._collection(project_name, collection_name, "query"),
                             body=body)["results"]

    def get(self, collection_name: str, ids: Optional[Sequence[str]] = None,
            where: Optional[Where] = None, where_document: Optional[Where] = None,
            limit: Optional[int] = None, offset: Optional[int] = None,
            include: Optional[Include] = None,
            project_name: str = DEFAULT_PROJECT) -> Dict[str, Any]:
        """Records by ids and/or filters: `{"ids": [...], "documents", "metadatas",
        "embeddings", "uris", "include"}`. `include` defaults to metadatas and documents."""
        body = _body(ids=_list(ids), where=where, where_document=where_document, limit=limit,
                     offset=offset, include=_list(include))
        return self._request("POST", *self._collection(project_name, collection_name, "get"),
                             body=body)["results"]

    def count(self, collection_name: str, project_name: str = DEFAULT_PROJECT) -> int:
        """The number of records in the collection."""
        return self._request("GET",
                             *self._collection(project_name, collection_name, "count"))["count"]

    def peek(self, collection_name: str, limit: int = 10,
             project_name: str = DEFAULT_PROJECT) -> Dict[str, Any]:
        """The first `limit` records, with embeddings, documents and metadatas."""
        return self._request("GET", *self._collection(project_name, collection_name, "peek"),
                             params={"limit": int(limit)})["results"]


class ProjectCollection:
    """One collection of one project: the client's record methods without the two names.

        docs = ProjectCollection(client, "my_project", "docs")
        docs.add(documents=["hi"], embeddings=[[0.1, 0.2]], ids=["a"])
        docs.query(query_embeddings=[[0.1, 0.2]], n_results=1)
    """

    def __init__(self, client: MultiTenantChromaClient, project_name: str,
                 collection_name: str) -> None:
        self.client = client
        self.project_name = project_name
        self.collection_name = collection_name

    def __repr__(self) -> str:
        return (f"ProjectCollection(project_name={self.project_name!r}, "
                f"collection_name={self.collection_name!r})")

    def create(self, metadata: Optional[Metadata] = None, get_or_create: bool = False,
               configuration: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Creates this collection (see `MultiTenantChromaClient.create_collection`)."""
        return self.client.create_collection(self.collection_name, metadata,
                                             self.project_name, get_or_create, configuration)

    def info(self) -> Dict[str, Any]:
        """The collection's description (`get_collection`)."""
        return self.client.get_collection(self.collection_name, self.project_name)

    def modify(self, new_name: Optional[str] = None, new_metadata: Optional[Metadata] = None,
               new_configuration: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Renames the collection (this handle follows), replaces its metadata or ef_search."""
        answer = self.client.modify_collection(self.collection_name, new_name, new_metadata,
                                               self.project_name, new_configuration)
        if new_name is not None:
            self.collection_name = new_name
        return answer

    def delete_collection(self) -> Dict[str, Any]:
        """Deletes the collection itself."""
        return self.client.delete_collection(self.collection_name, self.project_name)

    def add(self, documents: Optional[Sequence[Optional[str]]], embeddings: Any,
            ids: Sequence[str], metadatas: Optional[Sequence[Optional[Metadata]]] = None,
            uris: Optional[Sequence[Optional[str]]] = None) -> Dict[str, Any]:
        return self.client.add(self.collection_name, documents, embeddings, ids, metadatas,
                               self.project_name, uris)

    def upsert(self, documents: Optional[Sequence[Optional[str]]], embeddings: Any,
               ids: Sequence[str], metadatas: Optional[Sequence[Optional[Metadata]]] = None,
               uris: Optional[Sequence[Optional[str]]] = None) -> Dict[str, Any]:
        return self.client.upsert(self.collection_name, documents, embeddings, ids, metadatas,
                                  self.project_name, uris)

    def update(self, ids: Sequence[str], embeddings: Any = None,
               documents: Optional[Sequence[Optional[str]]] = None,
               metadatas: Optional[Sequence[Optional[Metadata]]] = None,
               uris: Optional[Sequence[Optional[str]]] = None) -> Dict[str, Any]:
        return self.client.update(self.collection_name, ids, embeddings, documents, metadatas,
                                  self.project_name, uris)

    def delete(self, ids: Optional[Sequence[str]] = None, where: Optional[Where] = None,
               where_document: Optional[Where] = None,
               limit: Optional[int] = None) -> Dict[str, Any]:
        return self.client.delete(self.collection_name, ids, where, where_document,
                                  self.project_name, limit)

    def query(self, query_embeddings: Any, n_results: int = 10, where: Optional[Where] = None,
              where_document: Optional[Where] = None, include: Optional[Include] = None,
              ids: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        return self.client.query(self.collection_name, query_embeddings, n_results, where,
                                 where_document, include, self.project_name, ids)

    def get(self, ids: Optional[Sequence[str]] = None, where: Optional[Where] = None,
            where_document: Optional[Where] = None, limit: Optional[int] = None,
            offset: Optional[int] = None, include: Optional[Include] = None) -> Dict[str, Any]:
        return self.client.get(self.collection_name, ids, where, where_document, limit, offset,
                               include, self.project_name)

    def count(self) -> int:
        return self.client.count(self.collection_name, self.project_name)

    def peek(self, limit: int = 10) -> Dict[str, Any]:
        return self.client.peek(self.collection_name, limit, self.project_name)
