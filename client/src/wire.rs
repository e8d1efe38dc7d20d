//! Request and response bodies of the per-project HTTP API (`/api/v1`), as documented in
//! `docs/api-v1.md`.
//!
//! Field names match the JSON exactly. Optional request fields are skipped when `None`, so
//! the server applies its defaults. Response fields that the server sends as `null` when
//! they were not asked for (`include`) are `Option`s.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Metadata of a record or a collection: a JSON object whose values are scalars (string,
/// int, float, bool) or lists of scalars. In `update`/`upsert` a key mapped to `null`
/// removes that key.
pub type Metadata = Map<String, Value>;

/// A `where` or `where_document` filter, as JSON (see the "Filters" section of the API).
pub type Filter = Value;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Body of every 4xx/5xx response: `{"error": "<Kind>", "message": "<what and why>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Error kind, e.g. `NotFoundError`, `InvalidArgumentError`, `UniqueConstraintError`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// `GET /`: server identification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Always `"Quiver tenant server"`.
    pub message: String,
    /// Server version.
    pub version: String,
    /// Directory holding the projects' stores.
    pub base_workspace: String,
}

/// `GET /api/v1/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `"ok"`.
    pub status: String,
    /// Server clock in nanoseconds since the Unix epoch.
    #[serde(rename = "nanosecond heartbeat")]
    pub nanosecond_heartbeat: u64,
}

/// `GET /api/v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Server version.
    pub version: String,
}

/// One entry of `GET /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    /// Project name.
    pub name: String,
    /// Directory of the project's store.
    pub path: String,
    /// Whether the project's store is currently open in the server.
    pub open: bool,
    /// Number of collections.
    pub collections: u64,
    /// Number of records over all collections.
    pub records: u64,
    /// Size of the project's store on disk, in bytes.
    pub bytes: u64,
}

/// `GET /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectsResponse {
    /// All projects known to the server.
    pub projects: Vec<ProjectInfo>,
}

/// `DELETE /api/v1/{project}` and `DELETE /api/v1/{project}/collections/{collection}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageResponse {
    /// The project concerned.
    pub project: String,
    /// What was done.
    pub message: String,
}

// ---------------------------------------------------------------------------------------
// Collections
// ---------------------------------------------------------------------------------------

/// Distance space of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// Squared Euclidean distance.
    L2,
    /// `1 - cos(a, b)`.
    Cosine,
    /// `1 - a·b`.
    Ip,
}

/// HNSW parameters. In responses every field is set; in requests (create, modify) only
/// the given ones are sent. Only `ef_search` can be modified after creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswConfiguration {
    /// Distance space (fixed at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<Space>,
    /// Build-time beam width (fixed at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<usize>,
    /// Query-time beam width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<usize>,
    /// Graph degree, Chroma's `M` (fixed at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_neighbors: Option<usize>,
}

/// A collection's configuration: `{"hnsw": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionConfiguration {
    /// HNSW parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<HnswConfiguration>,
}

impl CollectionConfiguration {
    /// A configuration with only an HNSW space.
    pub fn with_space(space: Space) -> Self {
        CollectionConfiguration {
            hnsw: Some(HnswConfiguration {
                space: Some(space),
                ..Default::default()
            }),
        }
    }
}

/// Indexing progress of a collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexingStatus {
    /// Records in the HNSW graph.
    pub indexed: u64,
    /// Records written but not yet in the graph (queries still see them by exact scan).
    pub unindexed: u64,
}

/// The `Collection` object of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// Collection name (unique within its project).
    pub name: String,
    /// Collection id (a UUID).
    pub id: String,
    /// Collection metadata, `null` if none was set.
    pub metadata: Option<Metadata>,
    /// Number of records.
    pub count: u64,
    /// Embedding dimension, `null` until the first add.
    pub dimension: Option<usize>,
    /// HNSW configuration in force.
    pub configuration: CollectionConfiguration,
    /// Indexing progress; `null` while the collection is not loaded on the server
    /// (nothing of it is pending in memory then).
    pub indexing: Option<IndexingStatus>,
}

/// `GET /api/v1/{project}/collections`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionsResponse {
    /// The project.
    pub project: String,
    /// Its collections.
    pub collections: Vec<CollectionInfo>,
}

/// Responses that carry one collection (create, get, modify).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionResponse {
    /// The project.
    pub project: String,
    /// The collection.
    pub collection: CollectionInfo,
}

/// `POST /api/v1/{project}/collections`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateCollectionRequest {
    /// Collection name.
    pub name: String,
    /// Collection metadata; the legacy keys `hnsw:space`, `hnsw:construction_ef`,
    /// `hnsw:search_ef` and `hnsw:M` are honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// HNSW configuration. Without a space the collection uses `cosine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<CollectionConfiguration>,
    /// Return the existing collection instead of failing with 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_or_create: Option<bool>,
}

/// `PUT /api/v1/{project}/collections/{collection}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModifyCollectionRequest {
    /// Rename the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// Replace the collection metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_metadata: Option<Metadata>,
    /// Change the configuration (only `hnsw.ef_search` can change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_configuration: Option<CollectionConfiguration>,
}

// ---------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------

/// Fields that a get or query can return (`ids` always are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Include {
    /// Documents.
    Documents,
    /// Metadatas.
    Metadatas,
    /// Embeddings.
    Embeddings,
    /// Distances (query only).
    Distances,
    /// URIs.
    Uris,
}

/// Embeddings on the wire as base64 strings of packed little-endian float32 (what the
/// chromadb client sends too); reading accepts those or lists of numbers.
pub mod packed_embeddings {
    use base64::Engine;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneEmbedding {
        List(Vec<f32>),
        Packed(String),
    }

    fn encode(v: &[f32]) -> String {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn decode<E: Error>(e: OneEmbedding) -> Result<Vec<f32>, E> {
        match e {
            OneEmbedding::List(v) => Ok(v),
            OneEmbedding::Packed(s) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(E::custom)?;
                if bytes.len() % 4 != 0 {
                    return Err(E::custom("packed embedding is not whole float32 values"));
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect())
            }
        }
    }

    pub fn serialize<S: Serializer>(v: &[Vec<f32>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|e| encode(e)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f32>>, D::Error> {
        Vec::<OneEmbedding>::deserialize(d)?
            .into_iter()
            .map(decode)
            .collect()
    }

    pub mod optional {
        use super::*;

        pub fn serialize<S: Serializer>(
            v: &Option<Vec<Vec<f32>>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Vec<Vec<f32>>>, D::Error> {
            Option::<Vec<OneEmbedding>>::deserialize(d)?
                .map(|v| v.into_iter().map(decode).collect())
                .transpose()
        }
    }
}

/// Body of `add` and `upsert`. The optional lists, when given, must have one entry per id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AddRequest {
    /// Record ids.
    pub ids: Vec<String>,
    /// One embedding per id (sent as base64 of little-endian float32, the fastest form
    /// for the server to read; lists of numbers are accepted too).
    #[serde(with = "packed_embeddings")]
    pub embeddings: Vec<Vec<f32>>,
    /// One document (or `None`) per id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<Option<String>>>,
    /// One metadata object (or `None`) per id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadatas: Option<Vec<Option<Metadata>>>,
    /// One URI (or `None`) per id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uris: Option<Vec<Option<String>>>,
}

impl AddRequest {
    /// A request with ids and embeddings only.
    pub fn new(ids: Vec<String>, embeddings: Vec<Vec<f32>>) -> Self {
        AddRequest {
            ids,
            embeddings,
            ..Default::default()
        }
    }
}

/// Body of `update`: like [`AddRequest`] but embeddings are optional. Unknown ids are
/// ignored; fields not given are left unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateRequest {
    /// Record ids.
    pub ids: Vec<String>,
    /// New embeddings, one per id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "packed_embeddings::optional"
    )]
    pub embeddings: Option<Vec<Vec<f32>>>,
    /// New documents, one per id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<Option<String>>>,
    /// Metadata changes, one per id (a key set to `null` is removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadatas: Option<Vec<Option<Metadata>>>,
    /// New URIs, one per id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uris: Option<Vec<Option<String>>>,
}

/// Body of `POST .../delete`: records matching all the given conditions are deleted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeleteRequest {
    /// Restrict to these ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// Metadata filter (`where`).
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub where_metadata: Option<Filter>,
    /// Document filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub where_document: Option<Filter>,
    /// Delete at most this many records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Body of `POST .../query`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// One or more query vectors.
    pub query_embeddings: Vec<Vec<f32>>,
    /// Neighbours per query (server default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_results: Option<usize>,
    /// Metadata filter (`where`).
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub where_metadata: Option<Filter>,
    /// Document filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub where_document: Option<Filter>,
    /// Fields to return (server default: metadatas, documents, distances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Include>>,
    /// Restrict the search to these ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

impl QueryRequest {
    /// A query for the `n_results` nearest neighbours of each vector.
    pub fn new(query_embeddings: Vec<Vec<f32>>, n_results: usize) -> Self {
        QueryRequest {
            query_embeddings,
            n_results: Some(n_results),
            ..Default::default()
        }
    }
}

/// Body of `POST .../get`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetRequest {
    /// Restrict to these ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// Metadata filter (`where`).
    #[serde(rename = "where", default, skip_serializing_if = "Option::is_none")]
    pub where_metadata: Option<Filter>,
    /// Document filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub where_document: Option<Filter>,
    /// Return at most this many records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Skip this many records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// Fields to return (server default: metadatas, documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Include>>,
}

/// Records returned by get and peek. A field not included is `None`; an included field
/// has one entry per id, `None` for a missing value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetResult {
    /// Record ids.
    pub ids: Vec<String>,
    /// Embeddings.
    #[serde(default)]
    pub embeddings: Option<Vec<Option<Vec<f32>>>>,
    /// Documents.
    #[serde(default)]
    pub documents: Option<Vec<Option<String>>>,
    /// Metadatas.
    #[serde(default)]
    pub metadatas: Option<Vec<Option<Metadata>>>,
    /// URIs.
    #[serde(default)]
    pub uris: Option<Vec<Option<String>>>,
    /// The fields that were included.
    #[serde(default)]
    pub include: Vec<Include>,
}

/// Results of a query: one inner list per query embedding, nearest first. A field not
/// included is `None`; an included field has `None` entries for missing values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// Ids of the neighbours.
    pub ids: Vec<Vec<String>>,
    /// Distances in the collection's space (`l2` is squared Euclidean).
    #[serde(default)]
    pub distances: Option<Vec<Vec<f32>>>,
    /// Embeddings.
    #[serde(default)]
    pub embeddings: Option<Vec<Vec<Option<Vec<f32>>>>>,
    /// Documents.
    #[serde(default)]
    pub documents: Option<Vec<Vec<Option<String>>>>,
    /// Metadatas.
    #[serde(default)]
    pub metadatas: Option<Vec<Vec<Option<Metadata>>>>,
    /// URIs.
    #[serde(default)]
    pub uris: Option<Vec<Vec<Option<String>>>>,
    /// The fields that were included.
    #[serde(default)]
    pub include: Vec<Include>,
}

/// `POST .../add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResponse {
    /// The project.
    pub project: String,
    /// The collection.
    pub collection: String,
    /// Records actually inserted (existing ids are not overwritten).
    pub added: u64,
    /// Records in the collection afterwards.
    pub total_count: u64,
}

/// `POST .../upsert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertResponse {
    /// The project.
    pub project: String,
    /// The collection.
    pub collection: String,
    /// Records inserted or updated.
    pub upserted: u64,
    /// Records in the collection afterwards.
    pub total_count: u64,
}

/// `POST .../update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResponse {
    /// The project.
    pub project: String,
    /// The collection.
    pub collection: String,
    /// Records updated (unknown ids are ignored).
    pub updated: u64,
    /// Records in the collection afterwards.
    pub total_count: u64,
}

/// `POST .../delete` and `DELETE .../documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResponse {
    /// The project.
    pub project: String,
    /// The collection.
    pub collection: String,
    /// Records deleted.
    pub deleted: u64,
    /// Records in the collection afterwards.
    pub total_count: u64,
}

/// `POST .../query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResponse {
    /// The project.
    pub project: String,
    /// The collection.
    pub collection: String,
    /// The neighbours.
    pub results: QueryResult,
}

/// `GET`/`POST .../get` and `GET .../peek`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetResponse {
    /// The project.
    pub project: String,
    /// The collection.
    pub collection: String,
    /// The records.
    pub results: GetResult,
}

/// `GET .../count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountResponse {
    /// The project.
    pub project: String,
    /// The collection.
    pub collection: String,
    /// Records in the collection.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collection_json() -> Value {
        json!({
            "name": "docs",
            "id": "6f1c1f0e-8a3e-4b7e-9a55-0d6a4f3b2c11",
            "metadata": {"hnsw:space": "l2", "owner": "alice"},
            "count": 3,
            "dimension": 4,
            "configuration": {"hnsw": {"space": "l2", "ef_construction": 100, "ef_search": 100, "max_neighbors": 16}},
            "indexing": {"indexed": 2, "unindexed": 1}
        })
    }

    #[test]
    fn collection_info_round_trip() {
        let v = collection_json();
        let c: CollectionInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.name, "docs");
        assert_eq!(c.count, 3);
        assert_eq!(c.dimension, Some(4));
        assert_eq!(c.metadata.as_ref().unwrap()["owner"], "alice");
        let h = c.configuration.hnsw.as_ref().unwrap();
        assert_eq!(h.space, Some(Space::L2));
        assert_eq!(h.ef_search, Some(100));
        assert_eq!(h.max_neighbors, Some(16));
        assert_eq!(
            c.indexing,
            Some(IndexingStatus {
                indexed: 2,
                unindexed: 1
            })
        );
        assert_eq!(serde_json::to_value(&c).unwrap(), v);
    }

    #[test]
    fn fresh_collection_has_null_dimension_and_metadata() {
        let v = json!({
            "project": "acme",
            "collection": {
                "name": "empty", "id": "x", "metadata": null, "count": 0, "dimension": null,
                "configuration": {"hnsw": {"space": "cosine", "ef_construction": 100, "ef_search": 100, "max_neighbors": 16}},
                "indexing": {"indexed": 0, "unindexed": 0}
            }
        });
        let r: CollectionResponse = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(r.project, "acme");
        assert_eq!(r.collection.dimension, None);
        assert_eq!(r.collection.metadata, None);
        assert_eq!(
            r.collection.configuration.hnsw.as_ref().unwrap().space,
            Some(Space::Cosine)
        );
        assert_eq!(serde_json::to_value(&r).unwrap(), v);

        let list: CollectionsResponse =
            serde_json::from_value(json!({"project": "acme", "collections": [collection_json()]}))
                .unwrap();
        assert_eq!(list.collections.len(), 1);
    }

    #[test]
    fn server_endpoints() {
        let hb: Heartbeat = serde_json::from_value(
            json!({"status": "ok", "nanosecond heartbeat": 1732776000123456789u64}),
        )
        .unwrap();
        assert_eq!(hb.nanosecond_heartbeat, 1732776000123456789);
        assert_eq!(
            serde_json::to_value(&hb).unwrap()["nanosecond heartbeat"],
            json!(1732776000123456789u64)
        );
        let v: VersionInfo = serde_json::from_value(json!({"version": "0.1.0"})).unwrap();
        assert_eq!(v.version, "0.1.0");
        let root: ServerInfo = serde_json::from_value(
            json!({"message": "Quiver tenant server", "version": "0.1.0", "base_workspace": "/data"}),
        )
        .unwrap();
        assert_eq!(root.base_workspace, "/data");
        let p: ProjectsResponse = serde_json::from_value(json!({"projects": [
            {"name": "acme", "path": "/data/acme", "open": true, "collections": 2, "records": 10, "bytes": 4096}
        ]}))
        .unwrap();
        assert_eq!(p.projects[0].name, "acme");
        assert!(p.projects[0].open);
        assert_eq!(p.projects[0].bytes, 4096);
        let m: MessageResponse =
            serde_json::from_value(json!({"project": "acme", "message": "Project acme deleted"}))
                .unwrap();
        assert_eq!(m.project, "acme");
    }

    #[test]
    fn error_body() {
        let e: ErrorBody = serde_json::from_value(json!({
            "error": "NotFoundError", "message": "Collection [docs] does not exist"
        }))
        .unwrap();
        assert_eq!(e.error, "NotFoundError");
        assert_eq!(e.message, "Collection [docs] does not exist");
    }

    #[test]
    fn create_and_modify_requests_skip_missing_fields() {
        let r = CreateCollectionRequest {
            name: "docs".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"name": "docs"}));
        let r = CreateCollectionRequest {
            name: "docs".into(),
            metadata: Some(json!({"hnsw:space": "ip"}).as_object().unwrap().clone()),
            configuration: Some(CollectionConfiguration {
                hnsw: Some(HnswConfiguration {
                    space: Some(Space::L2),
                    ef_search: Some(64),
                    ..Default::default()
                }),
            }),
            get_or_create: Some(true),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"name": "docs", "metadata": {"hnsw:space": "ip"},
                   "configuration": {"hnsw": {"space": "l2", "ef_search": 64}}, "get_or_create": true})
        );
        let m = ModifyCollectionRequest {
            new_configuration: Some(CollectionConfiguration {
                hnsw: Some(HnswConfiguration {
                    ef_search: Some(200),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"new_configuration": {"hnsw": {"ef_search": 200}}})
        );
        assert_eq!(
            serde_json::to_value(CollectionConfiguration::with_space(Space::Cosine)).unwrap(),
            json!({"hnsw": {"space": "cosine"}})
        );
    }

    #[test]
    fn add_request() {
        let mut r = AddRequest::new(
            vec!["a".into(), "b".into()],
            vec![vec![1.0, 2.0], vec![0.5, -1.0]],
        );
        // [1.0, 2.0] packed as little-endian float32 is 00 00 80 3f 00 00 00 40
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"ids": ["a", "b"], "embeddings": ["AACAPwAAAEA=", "AAAAPwAAgL8="]})
        );
        // both wire forms read back to the same numbers
        let lists: AddRequest = serde_json::from_value(
            json!({"ids": ["a", "b"], "embeddings": [[1.0, 2.0], [0.5, -1.0]]}),
        )
        .unwrap();
        let packed: AddRequest = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(lists.embeddings, packed.embeddings);
        assert_eq!(packed.embeddings, vec![vec![1.0, 2.0], vec![0.5, -1.0]]);
        r.documents = Some(vec![Some("hello".into()), None]);
        r.metadatas = Some(vec![
            Some(
                json!({"bucket": 7, "group": "g3", "tags": ["x", "y"]})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            None,
        ]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["documents"], json!(["hello", null]));
        assert_eq!(v["metadatas"][0]["bucket"], json!(7));
        assert_eq!(v["metadatas"][1], Value::Null);
        assert!(v.get("uris").is_none());
        let back: AddRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn update_and_delete_requests() {
        let u = UpdateRequest {
            ids: vec!["a".into()],
            metadatas: Some(vec![Some(
                json!({"gone": null}).as_object().unwrap().clone(),
            )]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"ids": ["a"], "metadatas": [{"gone": null}]})
        );
        let d = DeleteRequest {
            where_metadata: Some(json!({"bucket": {"$gte": 50}})),
            where_document: Some(json!({"$contains": "foo"})),
            limit: Some(5),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"where": {"bucket": {"$gte": 50}}, "where_document": {"$contains": "foo"}, "limit": 5})
        );
        assert_eq!(
            serde_json::to_value(DeleteRequest::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn query_and_get_requests() {
        let mut q = QueryRequest::new(vec![vec![0.0, 1.0]], 10);
        q.where_metadata = Some(json!({"group": "g3"}));
        q.include = Some(vec![Include::Metadatas, Include::Distances]);
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"query_embeddings": [[0.0, 1.0]], "n_results": 10, "where": {"group": "g3"},
                   "include": ["metadatas", "distances"]})
        );
        let g = GetRequest {
            ids: Some(vec!["1".into(), "2".into()]),
            limit: Some(2),
            offset: Some(0),
            include: Some(vec![Include::Embeddings, Include::Uris, Include::Documents]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&g).unwrap(),
            json!({"ids": ["1", "2"], "limit": 2, "offset": 0, "include": ["embeddings", "uris", "documents"]})
        );
    }

    #[test]
    fn get_result_with_nulls() {
        let v = json!({
            "project": "acme", "collection": "docs",
            "results": {
                "ids": ["a", "b"],
                "embeddings": null,
                "documents": ["hello", null],
                "metadatas": [{"bucket": 7, "score": 0.5, "ok": true}, null],
                "uris": null,
                "include": ["metadatas", "documents"]
            }
        });
        let r: GetResponse = serde_json::from_value(v.clone()).unwrap();
        let g = &r.results;
        assert_eq!(g.ids, vec!["a", "b"]);
        assert!(g.embeddings.is_none());
        assert_eq!(g.documents.as_ref().unwrap()[1], None);
        assert_eq!(
            g.metadatas.as_ref().unwrap()[0].as_ref().unwrap()["bucket"],
            json!(7)
        );
        assert_eq!(g.include, vec![Include::Metadatas, Include::Documents]);
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }

    #[test]
    fn query_result() {
        let v = json!({
            "project": "acme", "collection": "docs",
            "results": {
                "ids": [["a", "b"], ["c"]],
                "distances": [[0.0, 0.25], [1.5]],
                "embeddings": [[[1.0, 2.0], [1.0, 2.5]], [[0.0, 0.0]]],
                "documents": null,
                "metadatas": [[{"group": "g3"}, null], [{"group": "g1"}]],
                "uris": null,
                "include": ["metadatas", "embeddings", "distances"]
            }
        });
        let r: QueryResponse = serde_json::from_value(v.clone()).unwrap();
        let q = &r.results;
        assert_eq!(q.ids[0], vec!["a", "b"]);
        assert_eq!(q.distances.as_ref().unwrap()[0][1], 0.25);
        assert_eq!(
            q.embeddings.as_ref().unwrap()[1][0].as_deref(),
            Some(&[0.0f32, 0.0][..])
        );
        assert!(q.documents.is_none());
        assert_eq!(q.metadatas.as_ref().unwrap()[0][1], None);
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }

    #[test]
    fn write_and_count_responses() {
        let a: AddResponse = serde_json::from_value(
            json!({"project": "acme", "collection": "docs", "added": 2, "total_count": 5}),
        )
        .unwrap();
        assert_eq!((a.added, a.total_count), (2, 5));
        let u: UpsertResponse = serde_json::from_value(
            json!({"project": "acme", "collection": "docs", "upserted": 3, "total_count": 6}),
        )
        .unwrap();
        assert_eq!(u.upserted, 3);
        let u: UpdateResponse = serde_json::from_value(
            json!({"project": "acme", "collection": "docs", "updated": 1, "total_count": 6}),
        )
        .unwrap();
        assert_eq!(u.updated, 1);
        let d: DeleteResponse = serde_json::from_value(
            json!({"project": "acme", "collection": "docs", "deleted": 4, "total_count": 2}),
        )
        .unwrap();
        assert_eq!(d.deleted, 4);
        let c: CountResponse =
            serde_json::from_value(json!({"project": "acme", "collection": "docs", "count": 2}))
                .unwrap();
        assert_eq!(c.count, 2);
    }
}
