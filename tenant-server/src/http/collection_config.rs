//! A collection's configuration as both data APIs accept it: HNSW settings from
//! `configuration.hnsw` and the legacy `hnsw:*` metadata keys, the changes a modify may
//! make, and collection metadata as stored.

use serde_json::{Map, Value};

use super::core::usize_in;
use super::error::{ApiError, ApiResult};
use crate::store::types::{HnswConfig, Space};

/// HNSW settings from `configuration.hnsw` and the legacy `hnsw:*` metadata keys.
pub fn hnsw_config(
    configuration: Option<&Map<String, Value>>,
    metadata: Option<&Map<String, Value>>,
    default_space: Space,
) -> ApiResult<HnswConfig> {
    let mut cfg = HnswConfig {
        space: default_space,
        ..HnswConfig::default()
    };
    let mut apply = |key: &str, v: &Value| -> ApiResult<()> {
        match key {
            "space" => {
                cfg.space = v.as_str().and_then(Space::parse).ok_or_else(|| {
                    ApiError::invalid(format!("Invalid space {v}: expected l2, cosine or ip"))
                })?
            }
            "ef_construction" | "construction_ef" => {
                cfg.ef_construction = usize_in(v, key, 1, 100_000)?
            }
            "ef_search" | "search_ef" => cfg.ef_search = usize_in(v, key, 1, 100_000)?,
            "max_neighbors" | "M" => {
                cfg.max_neighbors = usize_in(v, key, 2, crate::store::graph::MAX_NEIGHBORS_LIMIT)?
            }
            _ => {}
        }
        Ok(())
    };
    if let Some(md) = metadata {
        for (k, v) in md {
            if let Some(key) = k.strip_prefix("hnsw:") {
                apply(key, v)?;
            }
        }
    }
    if let Some(h) = configuration
        .and_then(|c| c.get("hnsw"))
        .filter(|h| !h.is_null())
    {
        let Value::Object(h) = h else {
            return Err(ApiError::invalid(
                "Expected 'configuration.hnsw' to be an object",
            ));
        };
        for (k, v) in h {
            if !v.is_null() {
                apply(k, v)?;
            }
        }
    }
    Ok(cfg)
}

/// HNSW settings a modify request changes. Only `ef_search` changes how Quiver searches;
/// `tunables` names further keys that are accepted and recorded (Chroma's index knobs).
pub struct HnswChanges {
    pub ef_search: Option<usize>,
    /// Every accepted non-null key, as given, for the stored configuration.
    pub given: Map<String, Value>,
}

pub fn hnsw_changes(
    new_configuration: Option<&Map<String, Value>>,
    tunables: &[&str],
) -> ApiResult<HnswChanges> {
    let mut out = HnswChanges {
        ef_search: None,
        given: Map::new(),
    };
    let Some(h) = new_configuration
        .and_then(|c| c.get("hnsw"))
        .filter(|h| !h.is_null())
    else {
        return Ok(out);
    };
    let Value::Object(h) = h else {
        return Err(ApiError::invalid(
            "Expected 'new_configuration.hnsw' to be an object",
        ));
    };
    for (k, v) in h.iter().filter(|(_, v)| !v.is_null()) {
        if k == "ef_search" {
            out.ef_search = Some(usize_in(v, "ef_search", 1, 100_000)?);
        } else if !tunables.contains(&k.as_str()) {
            let mut allowed = vec!["ef_search"];
            allowed.extend_from_slice(tunables);
            return Err(ApiError::invalid(format!(
                "Cannot change '{k}' of an existing collection: only {} can be modified",
                allowed.join(", ")
            )));
        }
        out.given.insert(k.clone(), v.clone());
    }
    Ok(out)
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
