//! A small typed async client of the Chroma v2 HTTP API (`/api/v2`), covering exactly the
//! calls the comparison bench makes. It speaks the API the way the official `chromadb`
//! Python client does: JSON bodies with explicit `null`s for unset fields, `add`
//! embeddings as base64 strings of packed little-endian float32 (when the server's
//! pre-flight check says it supports them), query embeddings as plain float lists, and
//! `{"error", "message"}` bodies on failure. Both real Chroma and Quiver serve it.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Metadata of a record or a collection.
pub type Metadata = Map<String, Value>;

/// The database every tenant of the bench uses.
pub const DEFAULT_DATABASE: &str = "default_database";

/// An error of a v2 call.
#[derive(Debug)]
pub enum V2Error {
    /// The request could not be sent or its response not read.
    Http(reqwest::Error),
    /// The server answered with a non-2xx status.
    Api {
        /// HTTP status.
        status: u16,
        /// Chroma's error name (`NotFoundError`, `ChromaError`, ...), or empty.
        error: String,
        /// The message, or the raw body when it is not an error object.
        message: String,
    },
    /// A 2xx response whose body is not the expected JSON.
    Decode(String),
}

impl V2Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            V2Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is a 409 (tenant, database or collection already exists).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl fmt::Display for V2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V2Error::Http(e) => write!(f, "HTTP error: {e}"),
            V2Error::Api {
                status,
                error,
                message,
            } => write!(f, "{status} {error}: {message}"),
            V2Error::Decode(m) => write!(f, "unexpected response: {m}"),
        }
    }
}

impl std::error::Error for V2Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            V2Error::Http(e) => Some(e),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for V2Error {
    fn from(e: reqwest::Error) -> Self {
        V2Error::Http(e)
    }
}

/// `Ok` for success and for a 409 (the thing already exists).
pub fn tolerate_conflict<T>(r: Result<T, V2Error>) -> Result<(), V2Error> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(e),
    }
}

/// `Ok` for success and for a 404 (the thing does not exist).
pub fn tolerate_not_found<T>(r: Result<T, V2Error>) -> Result<(), V2Error> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------

/// `GET /heartbeat`.
#[derive(Debug, Clone, Deserialize)]
pub struct Heartbeat {
    /// Nanoseconds since the epoch.
    #[serde(rename = "nanosecond heartbeat")]
    pub nanos: u64,
}

/// `GET /pre-flight-checks`.
#[derive(Debug, Clone, Deserialize)]
pub struct PreFlight {
    /// Most records per add.
    pub max_batch_size: i64,
    /// Whether add embeddings may be sent as base64 strings.
    #[serde(default)]
    pub supports_base64_encoding: bool,
}

/// `POST /tenants` and `POST /tenants/{t}/databases`.
#[derive(Debug, Clone, Serialize)]
struct NameBody<'a> {
    name: &'a str,
}

/// The `hnsw` part of a collection configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// `l2`, `cosine` or `ip`.
    pub space: String,
    /// Candidate list size at query time.
    pub ef_search: usize,
    /// Candidate list size at construction time.
    pub ef_construction: usize,
    /// Graph degree (M).
    pub max_neighbors: usize,
}

/// The `configuration` of a create-collection request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionConfiguration {
    /// HNSW parameters.
    pub hnsw: Option<HnswParams>,
    /// Always `null` (SPANN is not available on single-node Chroma).
    pub spann: Option<Value>,
    /// Always `null`: the bench sends its own embeddings.
    pub embedding_function: Option<Value>,
}

impl CollectionConfiguration {
    /// An HNSW configuration in `space` (`l2`, `cosine` or `ip`).
    pub fn hnsw(
        space: &str,
        ef_search: usize,
        ef_construction: usize,
        max_neighbors: usize,
    ) -> Self {
        CollectionConfiguration {
            hnsw: Some(HnswParams {
                space: space.into(),
                ef_search,
                ef_construction,
                max_neighbors,
            }),
            spann: None,
            embedding_function: None,
        }
    }
}

/// `POST C/collections`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateCollection {
    /// Collection name.
    pub name: String,
    /// Collection metadata.
    pub metadata: Option<Metadata>,
    /// Configuration (sent as given, `null` fields included).
    pub configuration: Option<CollectionConfiguration>,
    /// Index schema; the bench leaves it to the server.
    pub schema: Option<Value>,
    /// Return the existing collection instead of failing with 409.
    pub get_or_create: bool,
}

/// The Collection JSON of the v2 API (the fields the bench reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Collection {
    /// Collection UUID, used in the record routes.
    pub id: String,
    /// Collection name.
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// Database.
    pub database: String,
    /// The stored configuration merged with defaults.
    pub configuration_json: Value,
    /// Collection metadata.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Embedding dimension, `null` until the first add.
    #[serde(default)]
    pub dimension: Option<u64>,
}

/// Embeddings of an add request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Embeddings {
    /// Base64 of packed little-endian float32, one string per record.
    Base64(Vec<String>),
    /// Plain float lists.
    Floats(Vec<Vec<f32>>),
}

/// Base64 of the packed little-endian float32 bytes of `v` (Python `struct "<{n}f"`).
pub fn pack_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `POST C/collections/{id}/add`.
#[derive(Debug, Clone, Serialize)]
pub struct AddRecords {
    /// Record ids.
    pub ids: Vec<String>,
    /// One embedding per id.
    pub embeddings: Embeddings,
    /// One metadata per id, or `null`.
    pub metadatas: Option<Vec<Option<Metadata>>>,
    /// Always `null` here.
    pub documents: Option<Vec<Option<String>>>,
    /// Always `null` here.
    pub uris: Option<Vec<Option<String>>>,
}

impl AddRecords {
    /// Records `ids` with `vectors` (encoded as base64 if `base64`) and `metadatas`.
    pub fn new<'a>(
        ids: Vec<String>,
        vectors: impl IntoIterator<Item = &'a [f32]>,
        metadatas: Option<Vec<Option<Metadata>>>,
        base64: bool,
    ) -> Self {
        let embeddings = if base64 {
            Embeddings::Base64(vectors.into_iter().map(pack_base64).collect())
        } else {
            Embeddings::Floats(vectors.into_iter().map(<[f32]>::to_vec).collect())
        };
        AddRecords {
            ids,
            embeddings,
            metadatas,
            documents: None,
            uris: None,
        }
    }
}

/// Values of `include`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Include {
    /// Documents.
    Documents,
    /// Embeddings.
    Embeddings,
    /// Metadatas.
    Metadatas,
    /// Distances (query only).
    Distances,
    /// URIs.
    Uris,
}

/// `POST C/collections/{id}/query`.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRecords {
    /// Restrict the search to these ids.
    pub ids: Option<Vec<String>>,
    /// Query vectors (plain lists).
    pub query_embeddings: Vec<Vec<f32>>,
    /// Neighbours per query.
    pub n_results: usize,
    /// Metadata filter.
    #[serde(rename = "where")]
    pub where_metadata: Option<Value>,
    /// Document filter.
    pub where_document: Option<Value>,
    /// Fields to return.
    pub include: Vec<Include>,
}

/// Response of `query`: one inner list per query vector.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryResult {
    /// Ids, nearest first.
    pub ids: Vec<Vec<String>>,
    /// Distances, if included.
    #[serde(default)]
    pub distances: Option<Vec<Vec<Option<f64>>>>,
    /// Metadatas, if included.
    #[serde(default)]
    pub metadatas: Option<Vec<Vec<Option<Metadata>>>>,
}

/// `POST C/collections/{id}/get`.
#[derive(Debug, Clone, Serialize)]
pub struct GetRecords {
    /// Ids to fetch.
    pub ids: Option<Vec<String>>,
    /// Metadata filter.
    #[serde(rename = "where")]
    pub where_metadata: Option<Value>,
    /// Most records returned.
    pub limit: Option<usize>,
    /// Records skipped.
    pub offset: Option<usize>,
    /// Document filter.
    pub where_document: Option<Value>,
    /// Fields to return.
    pub include: Vec<Include>,
}

/// Response of `get`.
#[derive(Debug, Clone, Deserialize)]
pub struct GetResult {
    /// Ids found.
    pub ids: Vec<String>,
    /// Metadatas, if included.
    #[serde(default)]
    pub metadatas: Option<Vec<Option<Metadata>>>,
}

/// A non-2xx body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// Typed async client of one server's `/api/v2`. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct V2Client {
    http: reqwest::Client,
    /// `http://host:port/api/v2`, no trailing slash.
    base: String,
}

impl V2Client {
    /// A client of the server at `server_url` (e.g. `http://127.0.0.1:8000`) with its own
    /// keep-alive connection pool; every request fails after `timeout`.
    pub fn new(server_url: &str, timeout: Duration) -> Result<Self, V2Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .timeout(timeout)
            .user_agent(concat!("quiver-bench/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(V2Client {
            http,
            base: format!("{}/api/v2", server_url.trim_end_matches('/')),
        })
    }

    fn coll_prefix(tenant: &str, database: &str) -> String {
        format!("/tenants/{tenant}/databases/{database}/collections")
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, V2Error> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| V2Error::Decode(format!("{e} in {}", snippet(&bytes))))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, V2Error> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post_json<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, V2Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| V2Error::Decode(e.to_string()))?;
        self.call(reqwest::Method::POST, path, Some(bytes)).await
    }

    /// `GET /heartbeat`.
    pub async fn heartbeat(&self) -> Result<Heartbeat, V2Error> {
        self.get_json("/heartbeat").await
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<String, V2Error> {
        self.get_json("/version").await
    }

    /// `GET /pre-flight-checks`.
    pub async fn pre_flight(&self) -> Result<PreFlight, V2Error> {
        self.get_json("/pre-flight-checks").await
    }

    /// `POST /tenants` (409 if it exists).
    pub async fn create_tenant(&self, name: &str) -> Result<(), V2Error> {
        self.post_json::<Value, _>("/tenants", &NameBody { name })
            .await
            .map(drop)
    }

    /// `POST /tenants/{tenant}/databases` (409 if it exists).
    pub async fn create_database(&self, tenant: &str, name: &str) -> Result<(), V2Error> {
        self.post_json::<Value, _>(&format!("/tenants/{tenant}/databases"), &NameBody { name })
            .await
            .map(drop)
    }

    /// `POST C/collections`.
    pub async fn create_collection(
        &self,
        tenant: &str,
        database: &str,
        req: &CreateCollection,
    ) -> Result<Collection, V2Error> {
        self.post_json(&Self::coll_prefix(tenant, database), req)
            .await
    }

    /// `DELETE C/collections/{name}` (by name).
    pub async fn delete_collection(
        &self,
        tenant: &str,
        database: &str,
        name: &str,
    ) -> Result<(), V2Error> {
        let path = format!("{}/{name}", Self::coll_prefix(tenant, database));
        self.call::<Value>(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    /// `POST C/collections/{id}/add`.
    pub async fn add(
        &self,
        tenant: &str,
        database: &str,
        id: &str,
        req: &AddRecords,
    ) -> Result<(), V2Error> {
        let path = format!("{}/{id}/add", Self::coll_prefix(tenant, database));
        self.post_json::<Value, _>(&path, req).await.map(drop)
    }

    /// `GET C/collections/{id}/count?read_level=index_and_wal`.
    pub async fn count(&self, tenant: &str, database: &str, id: &str) -> Result<u64, V2Error> {
        let path = format!(
            "{}/{id}/count?read_level=index_and_wal",
            Self::coll_prefix(tenant, database)
        );
        self.get_json(&path).await
    }

    /// `POST C/collections/{id}/get`.
    pub async fn get(
        &self,
        tenant: &str,
        database: &str,
        id: &str,
        req: &GetRecords,
    ) -> Result<GetResult, V2Error> {
        let path = format!("{}/{id}/get", Self::coll_prefix(tenant, database));
        self.post_json(&path, req).await
    }

    /// `POST C/collections/{id}/query`.
    pub async fn query(
        &self,
        tenant: &str,
        database: &str,
        id: &str,
        req: &QueryRecords,
    ) -> Result<QueryResult, V2Error> {
        let path = format!("{}/{id}/query", Self::coll_prefix(tenant, database));
        self.post_json(&path, req).await
    }
}

fn api_error(status: u16, body: &[u8]) -> V2Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => V2Error::Api {
            status,
            error: b.error,
            message: b.message,
        },
        Err(_) => V2Error::Api {
            status,
            error: String::new(),
            message: snippet(body),
        },
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > 300 {
        format!("{:?}…", text.chars().take(300).collect::<String>())
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_is_packed_little_endian_f32() {
        // The example of the v2 notes: [1.0, 2.0, 3.0] -> "AACAPwAAAEAAAEBA".
        assert_eq!(pack_base64(&[1.0, 2.0, 3.0]), "AACAPwAAAEAAAEBA");
        assert_eq!(pack_base64(&[]), "");
        let s = pack_base64(&[0.5, -1.25]);
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let back: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, vec![0.5, -1.25]);
    }

    #[test]
    fn add_body_matches_python_client() {
        let mut m = Metadata::new();
        m.insert("bucket".into(), json!(7));
        let v: Vec<f32> = vec![1.0, 2.0, 3.0];
        let req = AddRecords::new(vec!["7".into()], [v.as_slice()], Some(vec![Some(m)]), true);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"ids": ["7"], "embeddings": ["AACAPwAAAEAAAEBA"],
                   "metadatas": [{"bucket": 7}], "documents": null, "uris": null})
        );
        let req = AddRecords::new(vec!["a".into()], [v.as_slice()], None, false);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"ids": ["a"], "embeddings": [[1.0, 2.0, 3.0]],
                   "metadatas": null, "documents": null, "uris": null})
        );
    }

    #[test]
    fn query_get_and_create_bodies() {
        let q = QueryRecords {
            ids: None,
            query_embeddings: vec![vec![0.5, 1.0]],
            n_results: 10,
            where_metadata: Some(json!({"group": "g3"})),
            where_document: None,
            include: vec![Include::Metadatas, Include::Distances],
        };
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"ids": null, "query_embeddings": [[0.5, 1.0]], "n_results": 10,
                   "where": {"group": "g3"}, "where_document": null,
                   "include": ["metadatas", "distances"]})
        );
        let g = GetRecords {
            ids: Some(vec!["1".into(), "2".into()]),
            where_metadata: None,
            limit: None,
            offset: None,
            where_document: None,
            include: vec![Include::Metadatas],
        };
        assert_eq!(
            serde_json::to_value(&g).unwrap(),
            json!({"ids": ["1", "2"], "where": null, "limit": null, "offset": null,
                   "where_document": null, "include": ["metadatas"]})
        );
        let c = CreateCollection {
            name: "bench-a".into(),
            metadata: None,
            configuration: Some(CollectionConfiguration::hnsw("l2", 100, 200, 32)),
            schema: None,
            get_or_create: false,
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"name": "bench-a", "metadata": null,
                   "configuration": {"hnsw": {"space": "l2", "ef_search": 100,
                       "ef_construction": 200, "max_neighbors": 32},
                       "spann": null, "embedding_function": null},
                   "schema": null, "get_or_create": false})
        );
    }

    #[test]
    fn parses_real_chroma_responses() {
        // Bodies as real Chroma 1.5.9 sends them (schema shortened).
        let c: Collection = serde_json::from_str(
            r#"{"id":"50761d1e-8a4c-4f0e-9d59-3f1f7c1f2b11","name":"coll_one",
            "configuration_json":{"hnsw":{"space":"l2","ef_construction":100,"ef_search":100,
            "max_neighbors":16,"resize_factor":1.2,"sync_threshold":1000},"spann":null,
            "embedding_function":null},"schema":{"defaults":{}},"metadata":{"m":1},
            "dimension":null,"tenant":"default_tenant","database":"default_database",
            "log_position":0,"version":0}"#,
        )
        .unwrap();
        assert_eq!(c.id, "50761d1e-8a4c-4f0e-9d59-3f1f7c1f2b11");
        assert_eq!(
            (c.tenant.as_str(), c.database.as_str()),
            ("default_tenant", DEFAULT_DATABASE)
        );
        assert_eq!(c.configuration_json["hnsw"]["space"], json!("l2"));
        assert_eq!(c.metadata.unwrap()["m"], json!(1));
        assert_eq!(c.dimension, None);

        let q: QueryResult = serde_json::from_str(
            r#"{"ids":[["a","b"]],"embeddings":null,"documents":null,"uris":null,
            "metadatas":[[{"group":"g3","bucket":7},null]],"distances":[[14.0,8.75]],
            "include":["metadatas","distances"]}"#,
        )
        .unwrap();
        assert_eq!(q.ids, vec![vec!["a".to_owned(), "b".to_owned()]]);
        assert_eq!(q.distances.unwrap()[0], vec![Some(14.0), Some(8.75)]);
        let metas = q.metadatas.unwrap();
        assert_eq!(metas[0][0].as_ref().unwrap()["bucket"], json!(7));
        assert!(metas[0][1].is_none());

        let g: GetResult = serde_json::from_str(
            r#"{"ids":["a"],"embeddings":null,"documents":null,"uris":null,
            "metadatas":[{"group":"g3","bucket":7}],"include":["metadatas"]}"#,
        )
        .unwrap();
        assert_eq!(g.ids, vec!["a"]);
        let h: Heartbeat =
            serde_json::from_str(r#"{"nanosecond heartbeat":1795851938123084845}"#).unwrap();
        assert_eq!(h.nanos, 1795851938123084845);
        let p: PreFlight =
            serde_json::from_str(r#"{"max_batch_size":5461,"supports_base64_encoding":true}"#)
                .unwrap();
        assert_eq!((p.max_batch_size, p.supports_base64_encoding), (5461, true));
        let p: PreFlight = serde_json::from_str(r#"{"max_batch_size":100}"#).unwrap();
        assert!(!p.supports_base64_encoding);
    }

    #[test]
    fn error_bodies() {
        let e = api_error(
            409,
            br#"{"error":"ChromaError","message":"Tenant [x] already exists"}"#,
        );
        assert!(e.is_conflict() && !e.is_not_found());
        assert_eq!(e.to_string(), "409 ChromaError: Tenant [x] already exists");
        assert!(tolerate_conflict::<()>(Err(e)).is_ok());
        let e = api_error(404, b"not json");
        assert!(e.is_not_found());
        assert!(e.to_string().contains("not json"));
        assert!(tolerate_not_found::<()>(Err(e)).is_ok());
        assert!(tolerate_conflict::<()>(Err(api_error(500, b"{}"))).is_err());
    }
}
