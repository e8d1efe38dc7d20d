//! The async HTTP client: [`QuiverClient`] for the whole server and [`ProjectCollection`]
//! for one collection of one project.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use url::Url;

use crate::error::ClientError;
use crate::wire::*;

/// Typed async client of the per-project API (`/api/v1`) of a Quiver tenant server.
///
/// Cloning is cheap: clones share one connection pool (HTTP/1.1 keep-alive), so a clone
/// can be moved into each task. Every record or collection method takes the project
/// name first; a project is created by the server on first access.
///
/// ```no_run
/// # async fn demo() -> Result<(), quiver_client::ClientError> {
/// use quiver_client::{AddRequest, QueryRequest, QuiverClient};
/// let client = QuiverClient::new("http://127.0.0.1:7100")?;
/// client.create_collection("acme", "docs", None, None, true).await?;
/// let docs = client.collection("acme", "docs");
/// docs.add(&AddRequest::new(vec!["a".into()], vec![vec![0.0, 1.0]])).await?;
/// let hits = docs.query(&QueryRequest::new(vec![vec![0.0, 0.9]], 1)).await?;
/// assert_eq!(hits.ids[0][0], "a");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct QuiverClient {
    http: reqwest::Client,
    base: Url,
}

impl QuiverClient {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:7100`), with its own
    /// keep-alive connection pool. A path in `base_url` is kept as a prefix.
    pub fn new(base_url: impl AsRef<str>) -> Result<Self, ClientError> {
        Self::with_http_client(base_url, Self::http_builder().build()?)
    }

    /// Like [`QuiverClient::new`], but every request fails with
    /// [`ClientError::Http`] if it has not completed within `timeout`.
    pub fn with_timeout(base_url: impl AsRef<str>, timeout: Duration) -> Result<Self, ClientError> {
        Self::with_http_client(base_url, Self::http_builder().timeout(timeout).build()?)
    }

    fn http_builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
    }

    /// A client that sends its requests through `http` (to set timeouts, pool sizes…).
    pub fn with_http_client(
        base_url: impl AsRef<str>,
        http: reqwest::Client,
    ) -> Result<Self, ClientError> {
        let base_str = base_url.as_ref();
        let base = Url::parse(base_str)
            .map_err(|e| ClientError::InvalidUrl(format!("{base_str}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::InvalidUrl(format!(
                "{base_str}: expected an http:// or https:// URL"
            )));
        }
        Ok(QuiverClient { http, base })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// A handle on collection `name` of `project`. No request is sent; the collection
    /// need not exist yet.
    pub fn collection(
        &self,
        project: impl Into<String>,
        name: impl Into<String>,
    ) -> ProjectCollection {
        ProjectCollection {
            client: self.clone(),
            project: project.into(),
            name: name.into(),
        }
    }

    // -- server ---------------------------------------------------------------------------

    /// `GET /`: server name, version and workspace directory.
    pub async fn server_info(&self) -> Result<ServerInfo, ClientError> {
        self.send(self.http.get(self.url(&[]))).await
    }

    /// `GET /api/v1/heartbeat`.
    pub async fn heartbeat(&self) -> Result<Heartbeat, ClientError> {
        self.send(self.http.get(self.url(&["heartbeat"]))).await
    }

    /// `GET /api/v1/version`: the server version.
    pub async fn version(&self) -> Result<String, ClientError> {
        let v: VersionInfo = self.send(self.http.get(self.url(&["version"]))).await?;
        Ok(v.version)
    }

    /// `GET /api/v1/projects`: every project with its size.
    pub async fn list_projects(&self) -> Result<Vec<ProjectInfo>, ClientError> {
        let r: ProjectsResponse = self.send(self.http.get(self.url(&["projects"]))).await?;
        Ok(r.projects)
    }

    /// `DELETE /api/v1/{project}`: delete a project and all its collections
    /// (`NotFoundError` if it does not exist).
    pub async fn delete_project(&self, project: &str) -> Result<MessageResponse, ClientError> {
        self.send(self.http.delete(self.url(&[project]))).await
    }

    // -- collections ----------------------------------------------------------------------

    /// `GET /api/v1/{project}/collections`.
    pub async fn list_collections(
        &self,
        project: &str,
    ) -> Result<Vec<CollectionInfo>, ClientError> {
        let r: CollectionsResponse = self
            .send(self.http.get(self.url(&[project, "collections"])))
            .await?;
        Ok(r.collections)
    }

    /// `POST /api/v1/{project}/collections`: create collection `name`. Without a space in
    /// `metadata` (`hnsw:space`) or `configuration` (`hnsw.space`) it uses `cosine`. With
    /// `get_or_create` an existing collection is returned instead of a
    /// `UniqueConstraintError`.
    pub async fn create_collection(
        &self,
        project: &str,
        name: &str,
        metadata: Option<Metadata>,
        configuration: Option<CollectionConfiguration>,
        get_or_create: bool,
    ) -> Result<CollectionInfo, ClientError> {
        let body = CreateCollectionRequest {
            name: name.to_owned(),
            metadata,
            configuration,
            get_or_create: Some(get_or_create),
        };
        let r: CollectionResponse = self
            .send(
                self.http
                    .post(self.url(&[project, "collections"]))
                    .json(&body),
            )
            .await?;
        Ok(r.collection)
    }

    /// `GET /api/v1/{project}/collections/{name}`.
    pub async fn get_collection(
        &self,
        project: &str,
        name: &str,
    ) -> Result<CollectionInfo, ClientError> {
        let r: CollectionResponse = self
            .send(self.http.get(self.url(&[project, "collections", name])))
            .await?;
        Ok(r.collection)
    }

    /// `PUT /api/v1/{project}/collections/{name}`: rename, replace metadata or change
    /// `ef_search`. Returns the collection as modified.
    pub async fn modify_collection(
        &self,
        project: &str,
        name: &str,
        changes: &ModifyCollectionRequest,
    ) -> Result<CollectionInfo, ClientError> {
        let r: CollectionResponse = self
            .send(
                self.http
                    .put(self.url(&[project, "collections", name]))
                    .json(changes),
            )
            .await?;
        Ok(r.collection)
    }

    /// `DELETE /api/v1/{project}/collections/{name}`.
    pub async fn delete_collection(
        &self,
        project: &str,
        name: &str,
    ) -> Result<MessageResponse, ClientError> {
        self.send(self.http.delete(self.url(&[project, "collections", name])))
            .await
    }

    // -- records --------------------------------------------------------------------------

    /// `POST .../add`: insert records; existing ids are left as they are.
    pub async fn add(
        &self,
        project: &str,
        collection: &str,
        req: &AddRequest,
    ) -> Result<AddResponse, ClientError> {
        self.post_record(project, collection, "add", req).await
    }

    /// `POST .../upsert`: insert records or update existing ones.
    pub async fn upsert(
        &self,
        project: &str,
        collection: &str,
        req: &AddRequest,
    ) -> Result<UpsertResponse, ClientError> {
        self.post_record(project, collection, "upsert", req).await
    }

    /// `POST .../update`: change existing records; unknown ids are ignored.
    pub async fn update(
        &self,
        project: &str,
        collection: &str,
        req: &UpdateRequest,
    ) -> Result<UpdateResponse, ClientError> {
        self.post_record(project, collection, "update", req).await
    }

    /// `POST .../delete`: delete the records matching ids and/or filters.
    pub async fn delete(
        &self,
        project: &str,
        collection: &str,
        req: &DeleteRequest,
    ) -> Result<DeleteResponse, ClientError> {
        self.post_record(project, collection, "delete", req).await
    }

    /// `POST .../query`: nearest neighbours of each query embedding.
    pub async fn query(
        &self,
        project: &str,
        collection: &str,
        req: &QueryRequest,
    ) -> Result<QueryResult, ClientError> {
        let r: QueryResponse = self.post_record(project, collection, "query", req).await?;
        Ok(r.results)
    }

    /// `POST .../get`: records by ids and/or filters.
    pub async fn get(
        &self,
        project: &str,
        collection: &str,
        req: &GetRequest,
    ) -> Result<GetResult, ClientError> {
        let r: GetResponse = self.post_record(project, collection, "get", req).await?;
        Ok(r.results)
    }

    /// `GET .../count`: number of records.
    pub async fn count(&self, project: &str, collection: &str) -> Result<u64, ClientError> {
        let r: CountResponse = self
            .send(
                self.http
                    .get(self.url(&[project, "collections", collection, "count"])),
            )
            .await?;
        Ok(r.count)
    }

    /// `GET .../peek`: the first `limit` records (server default 10) with embeddings,
    /// documents and metadatas.
    pub async fn peek(
        &self,
        project: &str,
        collection: &str,
        limit: Option<usize>,
    ) -> Result<GetResult, ClientError> {
        let mut url = self.url(&[project, "collections", collection, "peek"]);
        if let Some(limit) = limit {
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
        }
        let r: GetResponse = self.send(self.http.get(url)).await?;
        Ok(r.results)
    }

    // -- plumbing -------------------------------------------------------------------------

    /// `{base}/api/v1/{segments...}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            // Checked in the constructor: an http(s) URL can always be a base.
            let mut path = url
                .path_segments_mut()
                .expect("http(s) base URL has path segments");
            path.pop_if_empty();
            if !segments.is_empty() {
                path.extend(["api", "v1"]).extend(segments);
            }
        }
        url
    }

    async fn post_record<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        project: &str,
        collection: &str,
        op: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(
            self.http
                .post(self.url(&[project, "collections", collection, op]))
                .json(body),
        )
        .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            return Err(ClientError::from_error_response(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Decode(format!("{e} in {}", snippet(&bytes))))
    }
}

/// The start of a body, for error messages.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{text:?}…")
    } else {
        format!("{text:?}")
    }
}

/// One collection of one project: the record methods of [`QuiverClient`] without the
/// project and collection arguments (the counterpart of the Python `ProjectCollection`).
/// Obtained from [`QuiverClient::collection`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct ProjectCollection {
    client: QuiverClient,
    project: String,
    name: String,
}

impl ProjectCollection {
    /// The project name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The collection name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying client.
    pub fn client(&self) -> &QuiverClient {
        &self.client
    }

    /// The collection's current description (count, dimension, configuration, indexing).
    pub async fn info(&self) -> Result<CollectionInfo, ClientError> {
        self.client.get_collection(&self.project, &self.name).await
    }

    /// Rename, replace metadata or change `ef_search`. After a rename this handle still
    /// names the old collection; get a new one with [`QuiverClient::collection`].
    pub async fn modify(
        &self,
        changes: &ModifyCollectionRequest,
    ) -> Result<CollectionInfo, ClientError> {
        self.client
            .modify_collection(&self.project, &self.name, changes)
            .await
    }

    /// See [`QuiverClient::add`].
    pub async fn add(&self, req: &AddRequest) -> Result<AddResponse, ClientError> {
        self.client.add(&self.project, &self.name, req).await
    }

    /// See [`QuiverClient::upsert`].
    pub async fn upsert(&self, req: &AddRequest) -> Result<UpsertResponse, ClientError> {
        self.client.upsert(&self.project, &self.name, req).await
    }

    /// See [`QuiverClient::update`].
    pub async fn update(&self, req: &UpdateRequest) -> Result<UpdateResponse, ClientError> {
        self.client.update(&self.project, &self.name, req).await
    }

    /// See [`QuiverClient::delete`].
    pub async fn delete(&self, req: &DeleteRequest) -> Result<DeleteResponse, ClientError> {
        self.client.delete(&self.project, &self.name, req).await
    }

    /// See [`QuiverClient::query`].
    pub async fn query(&self, req: &QueryRequest) -> Result<QueryResult, ClientError> {
        self.client.query(&self.project, &self.name, req).await
    }

    /// See [`QuiverClient::get`].
    pub async fn get(&self, req: &GetRequest) -> Result<GetResult, ClientError> {
        self.client.get(&self.project, &self.name, req).await
    }

    /// See [`QuiverClient::count`].
    pub async fn count(&self) -> Result<u64, ClientError> {
        self.client.count(&self.project, &self.name).await
    }

    /// See [`QuiverClient::peek`].
    pub async fn peek(&self, limit: Option<usize>) -> Result<GetResult, ClientError> {
        self.client.peek(&self.project, &self.name, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_percent_encoded() {
        let c = QuiverClient::new("http://127.0.0.1:7100").unwrap();
        assert_eq!(
            c.url(&["heartbeat"]).as_str(),
            "http://127.0.0.1:7100/api/v1/heartbeat"
        );
        assert_eq!(
            c.url(&["acme", "collections", "a b/c?d#e%", "add"])
                .as_str(),
            "http://127.0.0.1:7100/api/v1/acme/collections/a%20b%2Fc%3Fd%23e%25/add"
        );
        assert_eq!(c.url(&[]).as_str(), "http://127.0.0.1:7100/");
    }

    #[test]
    fn base_path_is_kept_as_prefix() {
        for base in ["http://h:1/prefix", "http://h:1/prefix/"] {
            let c = QuiverClient::new(base).unwrap();
            assert_eq!(
                c.url(&["version"]).as_str(),
                "http://h:1/prefix/api/v1/version"
            );
        }
    }

    #[test]
    fn bad_base_urls_are_rejected() {
        for base in ["not a url", "mailto:x@y", "ftp://h/"] {
            assert!(
                matches!(QuiverClient::new(base), Err(ClientError::InvalidUrl(_))),
                "{base}"
            );
        }
    }

    #[test]
    fn collection_handle_names() {
        let c = QuiverClient::new("http://127.0.0.1:7100").unwrap();
        let h = c.collection("acme", "docs");
        assert_eq!((h.project(), h.name()), ("acme", "docs"));
    }
}
