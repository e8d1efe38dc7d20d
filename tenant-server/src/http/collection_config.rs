//! A collection's configuration as both data APIs accept it, read the way Chroma 1.5.9
//! reads it: `configuration.hnsw` or `configuration.spann` (a single node serves SPANN
//! requests with HNSW, keeping their space), the legacy `hnsw:*` metadata keys when the
//! configuration does not say, the embedding function, the request's schema, the changes
//! a modify may make, and collection metadata as stored.

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use crate::store::schema::{
    check_graph_params, EmbeddingFunction, HnswParams, Schema, SettingsUpdate, VectorIndexSettings,
};
use crate::store::types::Space;

/// A body field that does not have the shape its type needs: Chroma answers these with
/// `422` and the path of the offending field.
fn deserialize_field<T: DeserializeOwned>(v: &Value, field: &str) -> ApiResult<T> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            field.to_string()
        } else {
            format!("{field}.{path}")
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ChromaError",
            format!(
                "Failed to deserialize the JSON body into the target type: {at}: {}",
                e.inner()
            ),
        )
    })
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
struct HnswRequest {
    space: Option<Space>,
    ef_construction: Option<usize>,
    ef_search: Option<usize>,
    max_neighbors: Option<usize>,
    num_threads: Option<usize>,
    resize_factor: Option<f64>,
    sync_threshold: Option<usize>,
    batch_size: Option<usize>,
}

/// Only the space of a SPANN request matters here; the other fields are checked for shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SpannRequest {
    search_nprobe: Option<u32>,
    write_nprobe: Option<u32>,
    space: Option<Space>,
    ef_construction: Option<u32>,
    ef_search: Option<u32>,
    max_neighbors: Option<u32>,
    reassign_neighbor_count: Option<u32>,
    split_threshold: Option<u32>,
    merge_threshold: Option<u32>,
}

#[derive(Deserialize, Default)]
struct ConfigurationRequest {
    hnsw: Option<HnswRequest>,
    spann: Option<SpannRequest>,
    embedding_function: Option<EmbeddingFunction>,
}

fn settings_of(h: &HnswRequest, default_space: Space) -> VectorIndexSettings {
    let params = HnswParams {
        ef_construction: h.ef_construction,
        max_neighbors: h.max_neighbors,
        ef_search: h.ef_search,
        num_threads: h.num_threads,
        batch_size: h.batch_size,
        sync_threshold: h.sync_threshold,
        resize_factor: h.resize_factor,
    };
    VectorIndexSettings::from_params(h.space.unwrap_or(default_space), &params)
}

/// The HNSW settings of the legacy `hnsw:*` collection metadata keys. Chroma refuses an
/// unknown `hnsw:` key or a value of the wrong type, with one message for all.
fn legacy_settings(
    metadata: Option<&Map<String, Value>>,
    default_space: Space,
) -> ApiResult<VectorIndexSettings> {
    let bad = || ApiError::invalid("Failed to parse hnsw parameters from segment metadata");
    let mut h = HnswRequest::default();
    for (k, v) in metadata.into_iter().flatten() {
        let Some(key) = k.strip_prefix("hnsw:") else {
            continue;
        };
        let count = || {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(bad)
        };
        match key {
            "space" => h.space = Some(v.as_str().and_then(Space::parse).ok_or_else(bad)?),
            "construction_ef" => h.ef_construction = Some(count()?),
            "search_ef" => h.ef_search = Some(count()?),
            "M" => h.max_neighbors = Some(count()?),
            "num_threads" => h.num_threads = Some(count()?),
            "sync_threshold" => h.sync_threshold = Some(count()?),
            "batch_size" => h.batch_size = Some(count()?),
            "resize_factor" => h.resize_factor = Some(v.as_f64().ok_or_else(bad)?),
            _ => return Err(bad()),
        }
    }
    Ok(settings_of(&h, default_space))
}

/// The vector index settings a create request asks for, from its configuration and its
/// metadata, as Chroma resolves them.
pub fn index_settings(
    configuration: Option<&Map<String, Value>>,
    metadata: Option<&Map<String, Value>>,
    default_space: Space,
) -> ApiResult<VectorIndexSettings> {
    let request: ConfigurationRequest = match configuration {
        Some(c) => deserialize_field(&Value::Object(c.clone()), "configuration")?,
        None => ConfigurationRequest::default(),
    };
    let base = settings_of(&HnswRequest::default(), default_space);
    let mut settings = match (&request.hnsw, &request.spann) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Multiple vector index configurations provided",
            ))
        }
        (None, None) => legacy_settings(metadata, default_space)?,
        (Some(h), None) => {
            let given = settings_of(h, default_space);
            let legacy = legacy_settings(metadata, default_space)?;
            // metadata speaks only when the configuration asked for nothing
            if given == base && legacy != base {
                legacy
            } else {
                given
            }
        }
        (None, Some(spann)) => VectorIndexSettings {
            space: spann.space.unwrap_or(default_space),
            ..base
        },
    };
    check_graph_params(
        Some(settings.ef_construction),
        Some(settings.ef_search),
        Some(settings.max_neighbors),
    )
    .map_err(|e| ApiError::invalid(format!("Invalid HNSW configuration: {e}")))?;
    settings.embedding_function = request.embedding_function;
    Ok(settings)
}

/// The schema a create request gives, if any.
pub fn request_schema(body: &Map<String, Value>) -> ApiResult<Option<Schema>> {
    match body.get("schema") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => deserialize_field(v, "schema").map(Some),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HnswUpdateRequest {
    ef_search: Option<usize>,
    max_neighbors: Option<usize>,
    num_threads: Option<usize>,
    resize_factor: Option<f64>,
    sync_threshold: Option<usize>,
    batch_size: Option<usize>,
}

#[derive(Deserialize)]
struct UpdateRequest {
    hnsw: Option<HnswUpdateRequest>,
    embedding_function: Option<EmbeddingFunction>,
}

/// Which changes an API lets a modify make to the index settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifiable {
    /// Chroma's: the search breadth and the knobs of its own index (recorded; only the
    /// search breadth changes how Quiver searches), and the embedding function.
    Chroma,
    /// The per-project API's: the search breadth only.
    SearchBreadth,
}

/// The changes a modify request makes to the vector index settings.
pub fn settings_update(
    new_configuration: Option<&Map<String, Value>>,
    modifiable: Modifiable,
) -> ApiResult<SettingsUpdate> {
    let Some(cfg) = new_configuration else {
        return Ok(SettingsUpdate::default());
    };
    let only_search_breadth = || {
        ApiError::invalid("Only ef_search can be changed in an existing collection's configuration")
    };
    if modifiable == Modifiable::SearchBreadth {
        if let Some(Value::Object(h)) = cfg.get("hnsw") {
            if h.iter().any(|(k, v)| k != "ef_search" && !v.is_null()) {
                return Err(only_search_breadth());
            }
        }
    }
    let request: UpdateRequest =
        deserialize_field(&Value::Object(cfg.clone()), "new_configuration")?;
    let h = request.hnsw;
    let pick = |f: fn(&HnswUpdateRequest) -> Option<usize>| h.as_ref().and_then(f);
    let update = SettingsUpdate {
        ef_search: pick(|h| h.ef_search),
        max_neighbors: pick(|h| h.max_neighbors),
        num_threads: pick(|h| h.num_threads),
        batch_size: pick(|h| h.batch_size),
        sync_threshold: pick(|h| h.sync_threshold),
        resize_factor: h.as_ref().and_then(|h| h.resize_factor),
        embedding_function: request.embedding_function,
    };
    if modifiable == Modifiable::SearchBreadth
        && update
            != (SettingsUpdate {
                ef_search: update.ef_search,
                ..SettingsUpdate::default()
            })
    {
        return Err(only_search_breadth());
    }
    check_graph_params(None, update.ef_search, update.max_neighbors)
        .map_err(|e| ApiError::invalid(format!("Invalid HNSW configuration: {e}")))?;
    Ok(update)
}

/// Collection metadata as stored: `null` values dropped, scalar values only.
pub fn collection_metadata(
    md: Option<Map<String, Value>>,
) -> ApiResult<Option<Map<String, Value>>> {
    let Some(mut md) = md else { return Ok(None) };
    md.retain(|_, v| !v.is_null());
    crate::store::project::check_collection_metadata(&md).map_err(ApiError::invalid)?;
    Ok(Some(md))
}
