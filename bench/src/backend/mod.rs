//! What the phases need from a server under test, as one small trait, so that every phase
//! is written once and runs against both APIs the bench speaks:
//!
//! - [`v1::V1`]: Quiver's per-project API (`/api/v1`, through `quiver-client`): a scope is
//!   a project;
//! - [`v2::V2`]: the Chroma v2 API (`/api/v2`, through [`crate::v2_client`]), served by
//!   both Quiver and the real Chroma: a scope is a tenant with its default database.
//!
//! The trait speaks in the bench's own terms (a scope, a collection of rows of one flat
//! float array, ids that are row numbers) and each implementation builds its own requests
//! from them, inside the timed call as before, so the figures stay comparable between the
//! two APIs. Where an API lacks something (v2 has no indexing status, cannot list or
//! delete tenants) the method says what the implementation does instead.

pub mod v1;
pub mod v2;

pub use v1::V1;
pub use v2::V2;

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Map, Value};

use crate::workload::metadata_for;

/// Metadata of a record (the same JSON object in both APIs).
pub type Metadata = Map<String, Value>;

/// Which program serves the API (a backend may treat them differently: Quiver also
/// answers `/api/v1`, which tells the v2 backend how far it has indexed). The value is
/// the program's column in the side-by-side table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Software {
    /// A Quiver tenant server or router.
    Quiver = 0,
    /// The real Chroma.
    Chroma = 1,
}

/// HNSW settings of the bench's collections (`--space`, cosine unless set). Unset values are left
/// to the server (v1); the v2 mode fills in Chroma's defaults so both servers build the
/// same graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hnsw {
    pub space: quiver_tenant_server::store::types::Space,
    pub ef_search: usize,
    pub ef_construction: Option<usize>,
    pub max_neighbors: Option<usize>,
}

/// A collection the bench made: its scope (project or tenant), its name, and the id its
/// record routes take (v1: the name; v2: the collection's UUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollRef {
    pub scope: String,
    pub name: String,
    pub id: String,
}

/// A newly created collection and what differs between it and what was asked for.
#[derive(Debug)]
pub struct Created {
    pub coll: CollRef,
    pub problems: Vec<String>,
}

/// Records to add: rows `range` of `data` (`dim` floats a row), with ids `"{row}"` and
/// the bench's metadata of each row ([`metadata_for`]).
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub dim: usize,
    pub range: Range<usize>,
}

impl<'a> Rows<'a> {
    pub fn ids(&self) -> Vec<String> {
        self.range.clone().map(|i| i.to_string()).collect()
    }

    pub fn vectors(&self) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (data, dim) = (self.data, self.dim);
        self.range
            .clone()
            .map(move |i| &data[i * dim..(i + 1) * dim])
    }

    pub fn metadatas(&self) -> Vec<Option<Metadata>> {
        self.range.clone().map(|i| Some(metadata_for(i))).collect()
    }
}

/// One k-NN query: the `k` nearest neighbours of `vector` among the records matching
/// `filter`, with distances, and with metadatas if `metadatas`.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub vector: &'a [f32],
    pub k: usize,
    pub filter: Option<&'a Value>,
    pub metadatas: bool,
}

/// The answer to one query vector, nearest first.
#[derive(Debug, Default)]
pub struct QueryAnswer {
    pub ids: Vec<String>,
    /// One distance per id, when the server sent them.
    pub distances: Option<Vec<Option<f64>>>,
    /// One metadata per id, when asked for and sent.
    pub metadatas: Option<Vec<Option<Metadata>>>,
}

/// The answer to a get by ids.
#[derive(Debug, Default)]
pub struct GetAnswer {
    pub ids: Vec<String>,
    pub metadatas: Vec<Option<Metadata>>,
}

/// A collection's indexing status once the wait for it ended.
#[derive(Debug, Clone, Copy)]
pub struct Indexed {
    /// How long the wait took.
    pub wait: Duration,
    /// Whether nothing was left unindexed (false: the wait timed out).
    pub done: bool,
    /// Records not indexed yet.
    pub unindexed: u64,
    /// Records indexed; `None` when the collection is not loaded (nothing pending).
    pub indexed: Option<u64>,
    /// The collection's dimension as the server reports it.
    pub dimension: Option<usize>,
}

/// What a server says about itself before the phases.
#[derive(Debug)]
pub struct Handshake {
    pub version: String,
    /// The rest of the start-up line (limits the phases depend on), or empty.
    pub detail: String,
}

/// The words the phases print for this API's scopes.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// What a scope is called: `project` or `tenant`.
    pub scope: &'static str,
    /// The unit of scope throughput: `proj/s` or `ten/s`.
    pub unit: &'static str,
    /// What creating one scope of the many-scopes phase makes, before its records.
    pub creation: &'static str,
    /// The label of removing the scopes.
    pub removal: &'static str,
    /// The RSS label after removing them (`after ...`).
    pub removed: &'static str,
}

/// One server under test, through one API. Clones share a connection pool; [`fresh`]
/// makes a handle with its own, so that each concurrent worker has its own connections.
///
/// [`fresh`]: Backend::fresh
pub trait Backend: Clone + Send + Sync + 'static {
    /// How the phases name this API's scopes.
    const WORDS: Words;

    /// A handle of the server at `url`; every request fails after `timeout`.
    fn connect(url: &str, timeout: Duration, software: Software) -> Result<Self>;

    /// A handle of the same server with its own connection pool.
    fn fresh(&self) -> Result<Self>;

    /// Whether the server answers its heartbeat.
    fn heartbeat(&self) -> impl Future<Output = Result<()>> + Send;

    /// Reads the version and what else the phases need to know (v2: the batch limit,
    /// which must admit `largest_batch` records, and whether embeddings may go as base64).
    fn handshake(&mut self, largest_batch: usize)
        -> impl Future<Output = Result<Handshake>> + Send;

    /// The line that says where the single-collection phases' collections are and how
    /// they are configured.
    fn describe_collections(&self, scope: &str, names: &[&str], hnsw: &Hnsw) -> String;

    /// Makes `scope` exist (v2: the tenant and its default database; v1: nothing, a
    /// project appears with its first collection).
    fn prepare_scope(&self, scope: &str) -> impl Future<Output = Result<()>> + Send;

    /// Drops collection `name` of `scope`; a missing one is fine.
    fn drop_collection(&self, scope: &str, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// Creates collection `name` in `scope` with `hnsw`; one of that name left by an
    /// earlier run is dropped and created afresh.
    fn create_collection(
        &self,
        scope: &str,
        name: &str,
        hnsw: &Hnsw,
    ) -> impl Future<Output = Result<Created>> + Send;

    /// Adds `rows`; returns how many records the server says it added, if it says.
    fn add(
        &self,
        coll: &CollRef,
        rows: Rows<'_>,
    ) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Runs one k-NN query.
    fn query(
        &self,
        coll: &CollRef,
        query: Query<'_>,
    ) -> impl Future<Output = Result<QueryAnswer>> + Send;

    /// The records with these ids, with their metadatas.
    fn get(
        &self,
        coll: &CollRef,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<GetAnswer>> + Send;

    /// The number of records.
    fn count(&self, coll: &CollRef) -> impl Future<Output = Result<u64>> + Send;

    /// Polls the indexing status until nothing is left unindexed or `timeout` passes;
    /// `None` when the server has no indexing status (the real Chroma indexes each add
    /// before it answers).
    fn wait_indexed(
        &self,
        coll: &CollRef,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<Indexed>>> + Send;

    /// The scopes a bench run with `prefix` left behind (v2 cannot list tenants: none;
    /// [`create_collection`](Backend::create_collection) replaces their collections).
    fn stale_scopes(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Removes what the bench made in `scope` (v1: the project; v2 cannot delete a
    /// tenant: its collection `coll`). A missing one is fine.
    fn remove_scope(&self, scope: &str, coll: &str) -> impl Future<Output = Result<()>> + Send;

    /// What the server lists of the bench's scopes with `prefix`, if it can list them.
    fn describe_scopes(&self, prefix: &str) -> impl Future<Output = Result<Option<String>>> + Send;
}
