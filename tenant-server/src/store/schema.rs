//! A collection's schema, with Chroma 1.5.9's meaning: for every metadata key, the value
//! types it has held and which of their indexes are enabled; for `#document`, full-text
//! search; for `#embedding`, the vector index (space, embedding function, HNSW settings).
//!
//! The schema is the collection's configuration of record. What a create request gives
//! (a schema, a configuration, legacy `hnsw:*` metadata) is reconciled into one here, the
//! configuration a client reads back is derived from it, keys written in metadata are
//! added to it as they appear, and a filter on an index the schema disables is refused.
//! Serialised, it is exactly the JSON the `chromadb` client's `Schema` class reads.
//!
//! A single node serves every collection with HNSW, as single-node Chroma does: a SPANN
//! configuration is accepted, keeps its space, and the HNSW settings take their defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::filter::{MetaOp, Where};
use super::types::{HnswConfig, MetaValue, Scalar, Space};

pub const DOCUMENT_KEY: &str = "#document";
pub const EMBEDDING_KEY: &str = "#embedding";
/// Metadata keys with this prefix are Chroma's own and never enter the schema.
const RESERVED_METADATA_PREFIX: &str = "chroma:";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    /// A schema that breaks one of the structural rules (Chroma's request validation).
    #[error("Validation error: schema: {0}")]
    Invalid(String),
    #[error(
        "Failed to reconcile schema: Cannot set both collection config and schema simultaneously"
    )]
    ConfigAndSchemaConflict,
    #[error("Failed to reconcile schema: Invalid HNSW configuration: {0}")]
    InvalidHnsw(String),
    #[error("Failed to reconcile schema: Invalid schema input: {0}")]
    InvalidInput(String),
    #[error(
        "Cannot filter using metadata key '{key}' with type '{kind}' because indexing is disabled"
    )]
    IndexingDisabled { key: String, kind: &'static str },
    #[error("Cannot filter using full-text search because FTS indexing is disabled")]
    FtsDisabled,
}

/// An embedding function as the client records it, so that it can rebuild the same one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EmbeddingFunction {
    /// Set by an older client that did not record its function.
    #[serde(rename = "legacy")]
    Legacy,
    #[serde(rename = "known")]
    Known { name: String, config: Value },
    #[serde(rename = "unknown")]
    Unknown,
}

impl EmbeddingFunction {
    /// Chroma treats no function, an unknown one and its own default alike.
    pub fn is_default(ef: Option<&EmbeddingFunction>) -> bool {
        match ef {
            None | Some(EmbeddingFunction::Unknown) => true,
            Some(EmbeddingFunction::Legacy) => false,
            Some(EmbeddingFunction::Known { name, .. }) => name == "default",
        }
    }
}

/// An index of some kind, on or off, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toggle<C> {
    pub enabled: bool,
    pub config: C,
}

impl<C: Default> Toggle<C> {
    fn new(enabled: bool) -> Toggle<C> {
        Toggle {
            enabled,
            config: C::default(),
        }
    }
}

/// The settings of an index that has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_neighbors: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_threads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_factor: Option<f64>,
}

/// SPANN settings as a schema may carry them. A single node has no SPANN index, so they
/// are checked for shape and then dropped when the schema is reconciled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpannParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_nprobe: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_rng_factor: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_rng_epsilon: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nreplica_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_nprobe: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rng_factor: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rng_epsilon: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_samples_kmeans: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_lambda: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassign_neighbor_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_centers_to_merge_to: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_neighbors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center_drift_threshold: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantize: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorIndexConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<Space>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_function: Option<EmbeddingFunction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<HnswParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spann: Option<SpannParams>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseVectorIndexConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_function: Option<EmbeddingFunction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StringIndexes {
    #[serde(default, alias = "$fts_index", skip_serializing_if = "Option::is_none")]
    pub fts_index: Option<Toggle<NoConfig>>,
    #[serde(
        default,
        alias = "$string_inverted_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub string_inverted_index: Option<Toggle<NoConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloatListIndexes {
    #[serde(
        default,
        alias = "$vector_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub vector_index: Option<Toggle<VectorIndexConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVectorIndexes {
    #[serde(
        default,
        alias = "$sparse_vector_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub sparse_vector_index: Option<Toggle<SparseVectorIndexConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntIndexes {
    #[serde(
        default,
        alias = "$int_inverted_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub int_inverted_index: Option<Toggle<NoConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloatIndexes {
    #[serde(
        default,
        alias = "$float_inverted_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub float_inverted_index: Option<Toggle<NoConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoolIndexes {
    #[serde(
        default,
        alias = "$bool_inverted_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub bool_inverted_index: Option<Toggle<NoConfig>>,
}

/// The indexes of each value type a key (or, as defaults, any key) may hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueTypes {
    #[serde(default, alias = "#string", skip_serializing_if = "Option::is_none")]
    pub string: Option<StringIndexes>,
    #[serde(
        default,
        alias = "#float_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub float_list: Option<FloatListIndexes>,
    #[serde(
        default,
        alias = "#sparse_vector",
        skip_serializing_if = "Option::is_none"
    )]
    pub sparse_vector: Option<SparseVectorIndexes>,
    #[serde(default, alias = "#int", skip_serializing_if = "Option::is_none")]
    pub int: Option<IntIndexes>,
    #[serde(default, alias = "#float", skip_serializing_if = "Option::is_none")]
    pub float: Option<FloatIndexes>,
    #[serde(default, alias = "#bool", skip_serializing_if = "Option::is_none")]
    pub bool: Option<BoolIndexes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub defaults: ValueTypes,
    #[serde(alias = "key_overrides")]
    pub keys: BTreeMap<String, ValueTypes>,
    /// A customer-managed encryption key names a hosted key service; a single node keeps
    /// it with the schema after checking its form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmek: Option<Cmek>,
    /// Reserved for the system; a request that sets it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_attached_function_id: Option<Value>,
}

/// A customer-managed encryption key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmek {
    /// `projects/{project}/locations/{location}/keyRings/{ring}/cryptoKeys/{key}`
    Gcp(String),
}

impl Cmek {
    fn is_well_formed(&self) -> bool {
        static GCP: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        match self {
            Cmek::Gcp(resource) => GCP
                .get_or_init(|| {
                    regex::Regex::new(r"^projects/.+/locations/.+/keyRings/.+/cryptoKeys/.+$")
                        .expect("a constant, valid pattern")
                })
                .is_match(resource),
        }
    }
}

/// A scalar metadata type, as the schema and its error messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Bool,
    Int,
    Float,
    Str,
}

impl ValueKind {
    pub fn of(s: &Scalar) -> ValueKind {
        match s {
            Scalar::Bool(_) => ValueKind::Bool,
            Scalar::Int(_) => ValueKind::Int,
            Scalar::Float(_) => ValueKind::Float,
            Scalar::Str(_) => ValueKind::Str,
        }
    }
    /// The type of a metadata value; a list has the type of its elements.
    pub fn of_value(v: &MetaValue) -> Option<ValueKind> {
        match v {
            MetaValue::Scalar(s) => Some(ValueKind::of(s)),
            MetaValue::List(items) => items.first().map(ValueKind::of),
        }
    }
    fn name(self) -> &'static str {
        match self {
            ValueKind::Bool => "Bool",
            ValueKind::Int => "Int",
            ValueKind::Float => "Float",
            ValueKind::Str => "Str",
        }
    }
}

/// Chroma's defaults for HNSW settings a request leaves out.
pub mod defaults {
    pub const EF_CONSTRUCTION: usize = 100;
    pub const EF_SEARCH: usize = 100;
    pub const MAX_NEIGHBORS: usize = 16;
    pub const BATCH_SIZE: usize = 100;
    pub const SYNC_THRESHOLD: usize = 1000;
    pub const RESIZE_FACTOR: f64 = 1.2;

    /// Chroma sizes its index threads to the machine.
    pub fn num_threads() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// The vector index settings of a collection in full (Chroma's internal configuration):
/// what a configuration or legacy metadata asks for, and what a schema comes down to.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorIndexSettings {
    pub space: Space,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub max_neighbors: usize,
    pub num_threads: usize,
    pub batch_size: usize,
    pub sync_threshold: usize,
    pub resize_factor: f64,
    pub embedding_function: Option<EmbeddingFunction>,
}

impl Default for VectorIndexSettings {
    fn default() -> Self {
        VectorIndexSettings {
            space: Space::L2,
            ef_construction: defaults::EF_CONSTRUCTION,
            ef_search: defaults::EF_SEARCH,
            max_neighbors: defaults::MAX_NEIGHBORS,
            num_threads: defaults::num_threads(),
            batch_size: defaults::BATCH_SIZE,
            sync_threshold: defaults::SYNC_THRESHOLD,
            resize_factor: defaults::RESIZE_FACTOR,
            embedding_function: None,
        }
    }
}

impl VectorIndexSettings {
    /// Whether these are the settings of a request that asked for nothing in particular.
    pub fn is_default(&self) -> bool {
        let d = VectorIndexSettings::default();
        EmbeddingFunction::is_default(self.embedding_function.as_ref())
            && VectorIndexSettings {
                embedding_function: None,
                ..self.clone()
            } == d
    }

    /// The settings `params` give in `space`, with Chroma's defaults for what they leave
    /// out, and no embedding function.
    pub fn from_params(space: Space, params: &HnswParams) -> VectorIndexSettings {
        let d = VectorIndexSettings::default();
        VectorIndexSettings {
            space,
            ef_construction: params.ef_construction.unwrap_or(d.ef_construction),
            ef_search: params.ef_search.unwrap_or(d.ef_search),
            max_neighbors: params.max_neighbors.unwrap_or(d.max_neighbors),
            num_threads: params.num_threads.unwrap_or(d.num_threads),
            batch_size: params.batch_size.unwrap_or(d.batch_size),
            sync_threshold: params.sync_threshold.unwrap_or(d.sync_threshold),
            resize_factor: params.resize_factor.unwrap_or(d.resize_factor),
            embedding_function: None,
        }
    }

    /// The parameters the index is built with.
    pub fn hnsw(&self) -> HnswConfig {
        HnswConfig {
            space: self.space,
            ef_construction: self.ef_construction,
            ef_search: self.ef_search,
            max_neighbors: self.max_neighbors,
        }
    }

    fn params(&self) -> HnswParams {
        HnswParams {
            ef_construction: Some(self.ef_construction),
            max_neighbors: Some(self.max_neighbors),
            ef_search: Some(self.ef_search),
            num_threads: Some(self.num_threads),
            batch_size: Some(self.batch_size),
            sync_threshold: Some(self.sync_threshold),
            resize_factor: Some(self.resize_factor),
        }
    }

    /// The configuration as `configuration_json` shows it.
    pub fn configuration_json(&self) -> Value {
        serde_json::json!({
            "hnsw": {
                "space": self.space.as_str(),
                "ef_construction": self.ef_construction,
                "ef_search": self.ef_search,
                "max_neighbors": self.max_neighbors,
                "resize_factor": self.resize_factor,
                "sync_threshold": self.sync_threshold,
            },
            "spann": null,
            "embedding_function": self.embedding_function,
        })
    }
}

/// Changes a modify request makes to the vector index settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsUpdate {
    pub ef_search: Option<usize>,
    pub max_neighbors: Option<usize>,
    pub num_threads: Option<usize>,
    pub batch_size: Option<usize>,
    pub sync_threshold: Option<usize>,
    pub resize_factor: Option<f64>,
    pub embedding_function: Option<EmbeddingFunction>,
}

fn is_default_hnsw(h: &HnswParams) -> bool {
    // num_threads depends on the machine, so Chroma leaves it out of this comparison
    h.ef_construction
        .is_none_or(|v| v == defaults::EF_CONSTRUCTION)
        && h.max_neighbors.is_none_or(|v| v == defaults::MAX_NEIGHBORS)
        && h.ef_search.is_none_or(|v| v == defaults::EF_SEARCH)
        && h.batch_size.is_none_or(|v| v == defaults::BATCH_SIZE)
        && h.sync_threshold
            .is_none_or(|v| v == defaults::SYNC_THRESHOLD)
        && h.resize_factor.is_none_or(|v| v == defaults::RESIZE_FACTOR)
}

fn is_default_vector(cfg: &VectorIndexConfig) -> bool {
    EmbeddingFunction::is_default(cfg.embedding_function.as_ref())
        && cfg.space.is_none_or(|s| s == Space::L2)
        && match (&cfg.hnsw, &cfg.spann) {
            (Some(h), None) => is_default_hnsw(h),
            (None, Some(s)) => *s == SpannParams::default(),
            (Some(_), Some(_)) => false,
            (None, None) => true,
        }
}

fn toggle_is(t: &Option<Toggle<NoConfig>>, enabled: bool) -> bool {
    t.as_ref().is_none_or(|t| t.enabled == enabled)
}

impl ValueTypes {
    fn is_default_defaults(&self) -> bool {
        let string_ok = self.string.as_ref().is_none_or(|s| {
            toggle_is(&s.string_inverted_index, true) && toggle_is(&s.fts_index, false)
        });
        let vector_ok = self
            .float_list
            .as_ref()
            .and_then(|f| f.vector_index.as_ref())
            .is_none_or(|v| {
                !v.enabled && v.config.source_key.is_none() && is_default_vector(&v.config)
            });
        let sparse_ok = self
            .sparse_vector
            .as_ref()
            .and_then(|s| s.sparse_vector_index.as_ref())
            .is_none_or(|s| {
                !s.enabled
                    && EmbeddingFunction::is_default(s.config.embedding_function.as_ref())
                    && s.config.source_key.is_none()
                    && s.config.bm25 != Some(true)
            });
        string_ok
            && vector_ok
            && sparse_ok
            && self
                .int
                .as_ref()
                .is_none_or(|i| toggle_is(&i.int_inverted_index, true))
            && self
                .float
                .as_ref()
                .is_none_or(|f| toggle_is(&f.float_inverted_index, true))
            && self
                .bool
                .as_ref()
                .is_none_or(|b| toggle_is(&b.bool_inverted_index, true))
    }

    fn is_default_embedding(&self) -> bool {
        if self.string.is_some()
            || self.int.is_some()
            || self.float.is_some()
            || self.bool.is_some()
            || self.sparse_vector.is_some()
        {
            return false;
        }
        self.float_list
            .as_ref()
            .and_then(|f| f.vector_index.as_ref())
            .is_none_or(|v| {
                v.enabled
                    && v.config.source_key.as_deref() == Some(DOCUMENT_KEY)
                    && is_default_vector(&v.config)
            })
    }

    fn is_default_document(&self) -> bool {
        if self.float_list.is_some()
            || self.int.is_some()
            || self.float.is_some()
            || self.bool.is_some()
            || self.sparse_vector.is_some()
        {
            return false;
        }
        self.string.as_ref().is_none_or(|s| {
            toggle_is(&s.fts_index, true) && toggle_is(&s.string_inverted_index, false)
        })
    }

    fn vector_index_mut(&mut self) -> Option<&mut Toggle<VectorIndexConfig>> {
        self.float_list.as_mut()?.vector_index.as_mut()
    }

    fn vector_index(&self) -> Option<&Toggle<VectorIndexConfig>> {
        self.float_list.as_ref()?.vector_index.as_ref()
    }

    fn sparse_enabled(&self) -> bool {
        self.sparse_vector
            .as_ref()
            .and_then(|s| s.sparse_vector_index.as_ref())
            .is_some_and(|t| t.enabled)
    }

    /// Whether the inverted index of `kind` is enabled here; `None` when this level does
    /// not say (the defaults decide).
    fn inverted_enabled(&self, kind: ValueKind) -> Option<bool> {
        match kind {
            ValueKind::Bool => self.bool.as_ref()?.bool_inverted_index.as_ref(),
            ValueKind::Int => self.int.as_ref()?.int_inverted_index.as_ref(),
            ValueKind::Float => self.float.as_ref()?.float_inverted_index.as_ref(),
            ValueKind::Str => self.string.as_ref()?.string_inverted_index.as_ref(),
        }
        .map(|t| t.enabled)
    }

    fn has_kind(&self, kind: ValueKind) -> bool {
        match kind {
            ValueKind::Bool => self.bool.is_some(),
            ValueKind::Int => self.int.is_some(),
            ValueKind::Float => self.float.is_some(),
            ValueKind::Str => self.string.is_some(),
        }
    }

    fn copy_kind_from(&mut self, from: &ValueTypes, kind: ValueKind) {
        match kind {
            ValueKind::Bool => self.bool = from.bool.clone(),
            ValueKind::Int => self.int = from.int.clone(),
            ValueKind::Float => self.float = from.float.clone(),
            ValueKind::Str => self.string = from.string.clone(),
        }
    }
}

/// `user` over `default`: present fields of the user's win, one level at a time.
fn merge_opt<T: Clone>(
    default: &Option<T>,
    user: &Option<T>,
    both: impl Fn(&T, &T) -> T,
) -> Option<T> {
    match (default, user) {
        (Some(d), Some(u)) => Some(both(d, u)),
        (Some(d), None) => Some(d.clone()),
        (None, u) => u.clone(),
    }
}

fn take_user<T: Clone>(_: &T, user: &T) -> T {
    user.clone()
}

fn merge_hnsw(d: &HnswParams, u: &HnswParams) -> HnswParams {
    HnswParams {
        ef_construction: u.ef_construction.or(d.ef_construction),
        max_neighbors: u.max_neighbors.or(d.max_neighbors),
        ef_search: u.ef_search.or(d.ef_search),
        num_threads: u.num_threads.or(d.num_threads),
        batch_size: u.batch_size.or(d.batch_size),
        sync_threshold: u.sync_threshold.or(d.sync_threshold),
        resize_factor: u.resize_factor.or(d.resize_factor),
    }
}

fn merge_vector(
    d: &Toggle<VectorIndexConfig>,
    u: &Toggle<VectorIndexConfig>,
) -> Toggle<VectorIndexConfig> {
    let (dc, uc) = (&d.config, &u.config);
    Toggle {
        enabled: u.enabled,
        config: VectorIndexConfig {
            space: uc.space.or(dc.space),
            embedding_function: uc
                .embedding_function
                .clone()
                .or(dc.embedding_function.clone()),
            source_key: uc.source_key.clone().or(dc.source_key.clone()),
            hnsw: merge_opt(&dc.hnsw, &uc.hnsw, merge_hnsw),
            // the index is HNSW: SPANN settings have nothing to apply to
            spann: None,
        },
    }
}

fn merge_sparse(
    d: &Toggle<SparseVectorIndexConfig>,
    u: &Toggle<SparseVectorIndexConfig>,
) -> Toggle<SparseVectorIndexConfig> {
    let (dc, uc) = (&d.config, &u.config);
    Toggle {
        enabled: u.enabled,
        config: SparseVectorIndexConfig {
            embedding_function: uc
                .embedding_function
                .clone()
                .or(dc.embedding_function.clone()),
            source_key: uc.source_key.clone().or(dc.source_key.clone()),
            bm25: uc.bm25.or(dc.bm25),
            algorithm: uc.algorithm.clone().or(dc.algorithm.clone()),
        },
    }
}

fn merge_value_types(d: &ValueTypes, u: &ValueTypes) -> Result<ValueTypes, SchemaError> {
    let merged = ValueTypes {
        string: merge_opt(&d.string, &u.string, |d, u| StringIndexes {
            fts_index: merge_opt(&d.fts_index, &u.fts_index, take_user),
            string_inverted_index: merge_opt(
                &d.string_inverted_index,
                &u.string_inverted_index,
                take_user,
            ),
        }),
        float_list: merge_opt(&d.float_list, &u.float_list, |d, u| FloatListIndexes {
            vector_index: merge_opt(&d.vector_index, &u.vector_index, merge_vector),
        }),
        sparse_vector: merge_opt(&d.sparse_vector, &u.sparse_vector, |d, u| {
            SparseVectorIndexes {
                sparse_vector_index: merge_opt(
                    &d.sparse_vector_index,
                    &u.sparse_vector_index,
                    merge_sparse,
                ),
            }
        }),
        int: merge_opt(&d.int, &u.int, |d, u| IntIndexes {
            int_inverted_index: merge_opt(&d.int_inverted_index, &u.int_inverted_index, take_user),
        }),
        float: merge_opt(&d.float, &u.float, |d, u| FloatIndexes {
            float_inverted_index: merge_opt(
                &d.float_inverted_index,
                &u.float_inverted_index,
                take_user,
            ),
        }),
        bool: merge_opt(&d.bool, &u.bool, |d, u| BoolIndexes {
            bool_inverted_index: merge_opt(
                &d.bool_inverted_index,
                &u.bool_inverted_index,
                take_user,
            ),
        }),
    };
    if let Some(h) = merged.vector_index().and_then(|v| v.config.hnsw.as_ref()) {
        check_hnsw(h)?;
    }
    Ok(merged)
}

/// The checks Chroma applies to HNSW settings in a schema, plus the bound of our graph.
fn check_hnsw(h: &HnswParams) -> Result<(), SchemaError> {
    let range = |name: &str, min: usize, v: Option<usize>| match v {
        Some(v) if v < min => Err(SchemaError::InvalidHnsw(format!(
            "{name}: Validation error: range [{{\"min\": Number({min}), \"value\": Number({v})}}]"
        ))),
        _ => Ok(()),
    };
    range("batch_size", 2, h.batch_size)?;
    range("sync_threshold", 2, h.sync_threshold)?;
    check_graph_params(h.ef_construction, h.ef_search, h.max_neighbors)
        .map_err(SchemaError::InvalidHnsw)
}

/// Bounds the graph needs, whichever way the settings arrive.
pub fn check_graph_params(
    ef_construction: Option<usize>,
    ef_search: Option<usize>,
    max_neighbors: Option<usize>,
) -> Result<(), String> {
    let within = |name: &str, lo: usize, hi: usize, v: Option<usize>| match v {
        Some(v) if !(lo..=hi).contains(&v) => Err(format!(
            "{name}: expected an integer in {lo}..={hi}, got {v}"
        )),
        _ => Ok(()),
    };
    within("ef_construction", 1, 100_000, ef_construction)?;
    within("ef_search", 1, 100_000, ef_search)?;
    within("max_neighbors", 2, super::index::MAX_M, max_neighbors)
}

impl Schema {
    /// The schema of a collection created with nothing in particular asked for.
    pub fn new_default() -> Schema {
        let vector = |source_key: Option<&str>, enabled| Toggle {
            enabled,
            config: VectorIndexConfig {
                space: Some(Space::L2),
                embedding_function: None,
                source_key: source_key.map(str::to_string),
                hnsw: Some(VectorIndexSettings::default().params()),
                spann: None,
            },
        };
        let defaults = ValueTypes {
            string: Some(StringIndexes {
                fts_index: Some(Toggle::new(false)),
                string_inverted_index: Some(Toggle::new(true)),
            }),
            float_list: Some(FloatListIndexes {
                vector_index: Some(vector(None, false)),
            }),
            sparse_vector: Some(SparseVectorIndexes {
                sparse_vector_index: Some(Toggle {
                    enabled: false,
                    config: SparseVectorIndexConfig {
                        embedding_function: Some(EmbeddingFunction::Unknown),
                        source_key: None,
                        bm25: Some(false),
                        algorithm: None,
                    },
                }),
            }),
            int: Some(IntIndexes {
                int_inverted_index: Some(Toggle::new(true)),
            }),
            float: Some(FloatIndexes {
                float_inverted_index: Some(Toggle::new(true)),
            }),
            bool: Some(BoolIndexes {
                bool_inverted_index: Some(Toggle::new(true)),
            }),
        };
        let mut keys = BTreeMap::new();
        keys.insert(
            DOCUMENT_KEY.to_string(),
            ValueTypes {
                string: Some(StringIndexes {
                    fts_index: Some(Toggle::new(true)),
                    string_inverted_index: Some(Toggle::new(false)),
                }),
                ..ValueTypes::default()
            },
        );
        keys.insert(
            EMBEDDING_KEY.to_string(),
            ValueTypes {
                float_list: Some(FloatListIndexes {
                    vector_index: Some(vector(Some(DOCUMENT_KEY), true)),
                }),
                ..ValueTypes::default()
            },
        );
        Schema {
            defaults,
            keys,
            cmek: None,
            source_attached_function_id: None,
        }
    }

    /// The schema that serves `settings`: the defaults with its vector index.
    pub fn from_settings(settings: &VectorIndexSettings) -> Schema {
        let mut schema = Schema::new_default();
        let config = VectorIndexConfig {
            space: Some(settings.space),
            embedding_function: settings.embedding_function.clone(),
            source_key: None,
            hnsw: Some(settings.params()),
            spann: None,
        };
        if let Some(v) = schema.defaults.vector_index_mut() {
            v.config = config.clone();
        }
        if let Some(v) = schema.embedding_vector_mut() {
            v.config = VectorIndexConfig {
                source_key: Some(DOCUMENT_KEY.to_string()),
                ..config
            };
        }
        schema
    }

    /// The schema of a new collection from what its create request gave: a schema, and
    /// the settings from its configuration (or legacy metadata). Both may not ask for
    /// something; the one that does decides.
    pub fn reconcile(
        user: Option<&Schema>,
        settings: &VectorIndexSettings,
    ) -> Result<Schema, SchemaError> {
        if let Some(u) = user {
            u.validate()?;
            if !u.is_default() && !settings.is_default() {
                return Err(SchemaError::ConfigAndSchemaConflict);
            }
        }
        let merged = match user {
            Some(u) => Schema::with_defaults(u)?,
            None => Schema::new_default(),
        };
        let schema = if !settings.is_default() {
            Schema::from_settings(settings)
        } else if merged.is_default() {
            let mut schema = Schema::new_default();
            if let Some(ef) = &settings.embedding_function {
                schema.set_embedding_function(ef);
            }
            schema
        } else {
            merged
        };
        if schema.sparse_enabled() {
            return Err(SchemaError::InvalidInput(
                "Sparse vector indexing is not enabled in local".into(),
            ));
        }
        Ok(schema)
    }

    /// `user` over the default schema.
    fn with_defaults(user: &Schema) -> Result<Schema, SchemaError> {
        let base = Schema::new_default();
        let defaults = merge_value_types(&base.defaults, &user.defaults)?;
        let mut keys = base.keys.clone();
        for (key, types) in &user.keys {
            let merged = match base.keys.get(key) {
                Some(d) => merge_value_types(d, types)?,
                None => types.clone(),
            };
            keys.insert(key.clone(), merged);
        }
        Ok(Schema {
            defaults,
            keys,
            cmek: user.cmek.clone(),
            source_attached_function_id: None,
        })
    }

    /// Chroma's structural rules for a schema in a create request.
    fn validate(&self) -> Result<(), SchemaError> {
        let invalid = |m: String| Err(SchemaError::Invalid(m));
        if self.source_attached_function_id.is_some() {
            return invalid(
                "Cannot set source_attached_function_id. This field is reserved for system use."
                    .into(),
            );
        }
        let d = &self.defaults;
        if d.vector_index().is_some_and(|v| v.enabled) {
            return invalid("Vector index cannot be enabled by default. It can only be enabled on #embedding field.".into());
        }
        if d.vector_index()
            .is_some_and(|v| v.config.hnsw.is_some() && v.config.spann.is_some())
        {
            return invalid(
                "Both spann and hnsw config cannot be present at the same time.".into(),
            );
        }
        if d.sparse_enabled() {
            return invalid("Sparse vector index cannot be enabled by default. Please enable sparse vector index on specific keys. At most one sparse vector index is allowed for the collection.".into());
        }
        if d.string
            .as_ref()
            .and_then(|s| s.fts_index.as_ref())
            .is_some_and(|t| t.enabled)
        {
            return invalid("Full text search / regular expression index cannot be enabled by default. It can only be enabled on #document field.".into());
        }
        let mut sparse_keys = Vec::new();
        for (key, t) in &self.keys {
            if key.starts_with('#') && key != DOCUMENT_KEY && key != EMBEDDING_KEY {
                return invalid(format!("key cannot begin with '#'. Keys starting with '#' are reserved for system use: {key}"));
            }
            if key == DOCUMENT_KEY
                && (t.bool.is_some()
                    || t.float.is_some()
                    || t.int.is_some()
                    || t.float_list.is_some()
                    || t.sparse_vector.is_some())
            {
                return invalid(format!(
                    "Document field cannot have any value types other than string: {key}"
                ));
            }
            if key == EMBEDDING_KEY
                && (t.bool.is_some()
                    || t.float.is_some()
                    || t.int.is_some()
                    || t.string.is_some()
                    || t.sparse_vector.is_some())
            {
                return invalid(format!(
                    "Embedding field cannot have any value types other than float_list: {key}"
                ));
            }
            if let Some(v) = t.vector_index() {
                if v.enabled && key != EMBEDDING_KEY {
                    return invalid(format!(
                        "Vector index can only be enabled on #embedding field: {key}"
                    ));
                }
                if v.config
                    .source_key
                    .as_ref()
                    .is_some_and(|s| s != DOCUMENT_KEY)
                {
                    return invalid("Vector index can only source from #document".into());
                }
            }
            if let Some(s) = t
                .sparse_vector
                .as_ref()
                .and_then(|s| s.sparse_vector_index.as_ref())
            {
                if s.enabled {
                    sparse_keys.push(key.as_str());
                    if sparse_keys.len() > 1 {
                        return invalid(format!("At most one sparse vector index is allowed for the collection: {sparse_keys:?}"));
                    }
                    if s.config.source_key.is_some() && s.config.embedding_function.is_none() {
                        return invalid("If source_key is provided then embedding_function must also be provided since there is no default embedding function.".into());
                    }
                }
                if s.config
                    .source_key
                    .as_ref()
                    .is_some_and(|k| k.starts_with('#') && k != DOCUMENT_KEY)
                {
                    return invalid("source_key cannot begin with '#'. The only valid key starting with '#' is Key.DOCUMENT or '#document'.".into());
                }
            }
            if key != DOCUMENT_KEY
                && t.string
                    .as_ref()
                    .and_then(|s| s.fts_index.as_ref())
                    .is_some_and(|f| f.enabled)
            {
                return invalid(format!("Full text search / regular expression index can only be enabled on #document field: {key}"));
            }
            if key == DOCUMENT_KEY
                && t.string
                    .as_ref()
                    .and_then(|s| s.string_inverted_index.as_ref())
                    .is_some_and(|f| f.enabled)
            {
                return invalid(format!(
                    "String inverted index can not be enabled on #document key: {key}"
                ));
            }
        }
        if let Some(cmek) = self.cmek.as_ref().filter(|c| !c.is_well_formed()) {
            return invalid(format!("CMEK does not match expected pattern: {cmek:?}"));
        }
        Ok(())
    }

    /// Whether this schema asks for nothing beyond the defaults.
    pub fn is_default(&self) -> bool {
        self.defaults.is_default_defaults()
            && self
                .keys
                .keys()
                .all(|k| k == EMBEDDING_KEY || k == DOCUMENT_KEY)
            && self
                .keys
                .get(EMBEDDING_KEY)
                .is_none_or(ValueTypes::is_default_embedding)
            && self
                .keys
                .get(DOCUMENT_KEY)
                .is_none_or(ValueTypes::is_default_document)
            && self.cmek.is_none()
    }

    fn sparse_enabled(&self) -> bool {
        self.defaults.sparse_enabled() || self.keys.values().any(ValueTypes::sparse_enabled)
    }

    fn embedding_vector_mut(&mut self) -> Option<&mut Toggle<VectorIndexConfig>> {
        self.keys.get_mut(EMBEDDING_KEY)?.vector_index_mut()
    }

    /// The vector index settings the schema comes down to (those of `#embedding`, else
    /// of the defaults), with Chroma's defaults for what it leaves out.
    pub fn settings(&self) -> VectorIndexSettings {
        let config = self
            .keys
            .get(EMBEDDING_KEY)
            .and_then(ValueTypes::vector_index)
            .or_else(|| self.defaults.vector_index())
            .map(|v| v.config.clone())
            .unwrap_or_default();
        VectorIndexSettings {
            embedding_function: config.embedding_function,
            ..VectorIndexSettings::from_params(
                config.space.unwrap_or(Space::L2),
                &config.hnsw.unwrap_or_default(),
            )
        }
    }

    fn set_embedding_function(&mut self, ef: &EmbeddingFunction) {
        self.update(&SettingsUpdate {
            embedding_function: Some(ef.clone()),
            ..SettingsUpdate::default()
        });
    }

    /// Applies a modify request's changes, to the defaults and to `#embedding` alike.
    pub fn update(&mut self, u: &SettingsUpdate) {
        let embedding = self
            .keys
            .get_mut(EMBEDDING_KEY)
            .and_then(ValueTypes::vector_index_mut);
        for v in [self.defaults.vector_index_mut(), embedding]
            .into_iter()
            .flatten()
        {
            if let Some(h) = v.config.hnsw.as_mut() {
                h.ef_search = u.ef_search.or(h.ef_search);
                h.max_neighbors = u.max_neighbors.or(h.max_neighbors);
                h.num_threads = u.num_threads.or(h.num_threads);
                h.batch_size = u.batch_size.or(h.batch_size);
                h.sync_threshold = u.sync_threshold.or(h.sync_threshold);
                h.resize_factor = u.resize_factor.or(h.resize_factor);
            }
            if let Some(ef) = &u.embedding_function {
                v.config.embedding_function = Some(ef.clone());
            }
        }
    }

    /// Records that `key` held a value of `kind`, with the default indexes for that type.
    /// Returns whether the schema changed.
    pub fn discover(&mut self, key: &str, kind: ValueKind) -> bool {
        if key.starts_with(RESERVED_METADATA_PREFIX) {
            return false;
        }
        if self.keys.get(key).is_some_and(|t| t.has_kind(kind)) {
            return false;
        }
        let defaults = self.defaults.clone();
        self.keys
            .entry(key.to_string())
            .or_default()
            .copy_kind_from(&defaults, kind);
        true
    }

    /// Whether filtering `key` by a value of `kind` may use an index (the key's own
    /// setting, else the defaults').
    fn inverted_enabled(&self, key: &str, kind: ValueKind) -> bool {
        self.keys
            .get(key)
            .and_then(|t| t.inverted_enabled(kind))
            .or_else(|| self.defaults.inverted_enabled(kind))
            .unwrap_or(true)
    }

    /// Refuses a metadata filter on an index this schema disables.
    pub fn check_where(&self, w: &Where) -> Result<(), SchemaError> {
        match w {
            Where::And(children) | Where::Or(children) => {
                children.iter().try_for_each(|c| self.check_where(c))
            }
            Where::Cmp { key, op } => {
                let operand = match op {
                    MetaOp::Eq(s)
                    | MetaOp::Ne(s)
                    | MetaOp::Gt(s)
                    | MetaOp::Gte(s)
                    | MetaOp::Lt(s)
                    | MetaOp::Lte(s)
                    | MetaOp::Contains(s)
                    | MetaOp::NotContains(s) => Some(s),
                    MetaOp::In(set) | MetaOp::Nin(set) => set.first(),
                };
                match operand.map(ValueKind::of) {
                    Some(kind) if !self.inverted_enabled(key, kind) => {
                        Err(SchemaError::IndexingDisabled {
                            key: key.clone(),
                            kind: kind.name(),
                        })
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// Refuses a document filter when full-text search is disabled.
    pub fn check_document_filter(&self) -> Result<(), SchemaError> {
        let fts = self
            .keys
            .get(DOCUMENT_KEY)
            .and_then(|t| t.string.as_ref())
            .and_then(|s| s.fts_index.as_ref())
            .or_else(|| {
                self.defaults
                    .string
                    .as_ref()
                    .and_then(|s| s.fts_index.as_ref())
            });
        if fts.is_none_or(|t| t.enabled) {
            Ok(())
        } else {
            Err(SchemaError::FtsDisabled)
        }
    }
}

/// A stored schema, read leniently: one written by an older version in another shape is
/// dropped, and the collection's settings stand in for it.
pub fn deserialize_stored<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Schema>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known(name: &str) -> EmbeddingFunction {
        EmbeddingFunction::Known {
            name: name.into(),
            config: json!({"dim": 4}),
        }
    }

    #[test]
    fn default_schema_is_default_and_round_trips() {
        let s = Schema::new_default();
        assert!(s.is_default());
        let back: Schema = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.settings(), VectorIndexSettings::default());
    }

    #[test]
    fn json_shape_is_chromas() {
        let v = serde_json::to_value(Schema::new_default()).unwrap();
        assert_eq!(
            v["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["source_key"],
            "#document"
        );
        assert_eq!(v["defaults"]["string"]["fts_index"]["enabled"], false);
        assert_eq!(
            v["defaults"]["sparse_vector"]["sparse_vector_index"]["config"],
            json!({"embedding_function": {"type": "unknown"}, "bm25": false})
        );
        assert!(v["defaults"]["float_list"]["vector_index"]["config"]
            .get("source_key")
            .is_none());
    }

    #[test]
    fn reconcile_default_takes_the_configurations_function() {
        let settings = VectorIndexSettings {
            embedding_function: Some(known("default")),
            ..VectorIndexSettings::default()
        };
        let s = Schema::reconcile(None, &settings).unwrap();
        assert_eq!(s.settings().embedding_function, Some(known("default")));
        assert!(s.is_default());
    }

    #[test]
    fn configuration_wins_over_a_default_schema() {
        let settings = VectorIndexSettings {
            space: Space::Cosine,
            embedding_function: Some(known("mine")),
            ..VectorIndexSettings::default()
        };
        let s = Schema::reconcile(Some(&Schema::new_default()), &settings).unwrap();
        assert_eq!(s.settings().space, Space::Cosine);
        assert_eq!(s.settings().embedding_function, Some(known("mine")));
    }

    #[test]
    fn schema_and_configuration_both_asking_conflict() {
        let mut user = Schema::new_default();
        user.keys.insert("k".into(), ValueTypes::default());
        let settings = VectorIndexSettings {
            ef_search: 50,
            ..VectorIndexSettings::default()
        };
        assert_eq!(
            Schema::reconcile(Some(&user), &settings),
            Err(SchemaError::ConfigAndSchemaConflict)
        );
    }

    #[test]
    fn spann_in_a_schema_keeps_its_space_and_hnsw_defaults() {
        let user: Schema = serde_json::from_value(json!({
            "defaults": {},
            "keys": {"#embedding": {"float_list": {"vector_index": {"enabled": true,
                "config": {"space": "ip", "spann": {"search_nprobe": 5}}}}}}
        }))
        .unwrap();
        let s = Schema::reconcile(Some(&user), &VectorIndexSettings::default()).unwrap();
        let st = s.settings();
        assert_eq!(st.space, Space::Ip);
        assert_eq!(st.ef_search, defaults::EF_SEARCH);
        let v = serde_json::to_value(&s).unwrap();
        let cfg = &v["keys"]["#embedding"]["float_list"]["vector_index"]["config"];
        assert!(cfg.get("spann").is_none());
        assert_eq!(cfg["hnsw"]["max_neighbors"], 16);
    }

    #[test]
    fn sparse_index_is_refused() {
        let user: Schema = serde_json::from_value(json!({
            "defaults": {},
            "keys": {"sp": {"sparse_vector": {"sparse_vector_index": {"enabled": true, "config": {}}}}}
        }))
        .unwrap();
        assert!(matches!(
            Schema::reconcile(Some(&user), &VectorIndexSettings::default()),
            Err(SchemaError::InvalidInput(_))
        ));
    }

    #[test]
    fn validation_rules() {
        let bad = |v: Value| {
            let s: Schema = serde_json::from_value(v).unwrap();
            matches!(
                Schema::reconcile(Some(&s), &VectorIndexSettings::default()),
                Err(SchemaError::Invalid(_))
            )
        };
        assert!(bad(
            json!({"defaults": {}, "keys": {"vk": {"float_list": {"vector_index": {"enabled": true, "config": {}}}}}})
        ));
        assert!(bad(json!({"defaults": {}, "keys": {"#other": {}}})));
        assert!(bad(
            json!({"defaults": {"string": {"fts_index": {"enabled": true, "config": {}}}}, "keys": {}})
        ));
        assert!(bad(
            json!({"defaults": {}, "keys": {"#document": {"int": {}}}})
        ));
    }

    #[test]
    fn unknown_config_fields_are_refused_but_unknown_types_ignored() {
        assert!(
            serde_json::from_value::<Schema>(json!({"defaults": {}, "keys": {"#document":
            {"string": {"fts_index": {"enabled": false, "config": {"x": 1}}}}}}))
            .is_err()
        );
        assert!(serde_json::from_value::<Schema>(
            json!({"defaults": {"strng": {}}, "keys": {}, "bogus": 1})
        )
        .is_ok());
    }

    #[test]
    fn hnsw_batch_size_below_two_is_refused() {
        let user: Schema = serde_json::from_value(json!({"defaults": {}, "keys": {"#embedding":
            {"float_list": {"vector_index": {"enabled": true, "config": {"hnsw": {"batch_size": 1}}}}}}}))
        .unwrap();
        assert!(matches!(
            Schema::reconcile(Some(&user), &VectorIndexSettings::default()),
            Err(SchemaError::InvalidHnsw(_))
        ));
    }

    #[test]
    fn discovery_adds_each_type_once_with_the_defaults() {
        let mut s = Schema::new_default();
        assert!(s.discover("k", ValueKind::Str));
        assert!(!s.discover("k", ValueKind::Str));
        assert!(s.discover("k", ValueKind::Int));
        assert!(!s.discover("chroma:internal", ValueKind::Int));
        let k = &s.keys["k"];
        assert_eq!(k.string, s.defaults.string);
        assert_eq!(k.int, s.defaults.int);
        assert!(k.float.is_none());
    }

    #[test]
    fn disabled_indexes_refuse_filters() {
        let mut s = Schema::new_default();
        s.keys.insert(
            "k".into(),
            ValueTypes {
                string: Some(StringIndexes {
                    fts_index: None,
                    string_inverted_index: Some(Toggle::new(false)),
                }),
                ..ValueTypes::default()
            },
        );
        let w = |v: Value| Where::parse(&v).unwrap().unwrap();
        assert_eq!(
            s.check_where(&w(json!({"k": "x"})))
                .unwrap_err()
                .to_string(),
            "Cannot filter using metadata key 'k' with type 'Str' because indexing is disabled"
        );
        assert!(s.check_where(&w(json!({"k": 3}))).is_ok());
        assert!(s
            .check_where(&w(json!({"$and": [{"n": 1}, {"k": {"$in": ["x"]}}]})))
            .is_err());
        assert!(s.check_document_filter().is_ok());
        if let Some(f) = s.keys.get_mut(DOCUMENT_KEY).and_then(|t| t.string.as_mut()) {
            f.fts_index = Some(Toggle::new(false));
        }
        assert_eq!(s.check_document_filter(), Err(SchemaError::FtsDisabled));
    }

    #[test]
    fn update_changes_both_vector_indexes() {
        let mut s = Schema::new_default();
        s.update(&SettingsUpdate {
            ef_search: Some(77),
            embedding_function: Some(known("mine")),
            ..SettingsUpdate::default()
        });
        assert_eq!(s.settings().ef_search, 77);
        assert_eq!(
            s.defaults
                .vector_index()
                .and_then(|v| v.config.hnsw.as_ref())
                .and_then(|h| h.ef_search),
            Some(77)
        );
        assert_eq!(s.settings().embedding_function, Some(known("mine")));
    }
}
