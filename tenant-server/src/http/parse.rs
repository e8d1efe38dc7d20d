//! Turning request JSON into store inputs, with errors that say what was wrong.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use crate::store::types::{Include, MetaValue, RecordInput, Scalar};

/// The request body as a JSON object (`{}` when empty). Body-limit and JSON errors become
/// Chroma-style errors.
pub fn body_object(body: Result<Bytes, BytesRejection>) -> ApiResult<Map<String, Value>> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeError",
                "Request body exceeds the configured limit (--max-body-bytes)",
            )
        } else {
            ApiError::invalid(format!("Cannot read request body: {e}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("Request body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(format!("Malformed JSON: {e}"))),
    }
}

fn present<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

pub fn opt_string(m: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match present(m, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(format!(
            "Expected '{key}' to be a string"
        ))),
    }
}

pub fn opt_usize(m: &Map<String, Value>, key: &str) -> ApiResult<Option<usize>> {
    match present(m, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(format!("Expected '{key}' to be a non-negative integer"))
            }),
    }
}

pub fn opt_bool(m: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match present(m, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(format!(
            "Expected '{key}' to be a boolean"
        ))),
    }
}

pub fn opt_object(m: &Map<String, Value>, key: &str) -> ApiResult<Option<Map<String, Value>>> {
    match present(m, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o.clone())),
        Some(_) => Err(ApiError::invalid(format!(
            "Expected '{key}' to be an object"
        ))),
    }
}

pub fn opt_string_list(m: &Map<String, Value>, key: &str) -> ApiResult<Option<Vec<String>>> {
    match present(m, key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ApiError::invalid(format!(
                    "Expected '{key}' to be a list of strings"
                ))),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::invalid(format!(
            "Expected '{key}' to be a list of strings"
        ))),
    }
}

/// One embedding: a list of numbers, or base64 of packed little-endian float32.
pub fn embedding(v: &Value, what: &str) -> ApiResult<Vec<f32>> {
    match v {
        Value::Array(xs) => xs
            .iter()
            .map(|x| {
                x.as_f64().map(|f| f as f32).ok_or_else(|| {
                    ApiError::invalid(format!("Expected {what} to be a list of numbers"))
                })
            })
            .collect(),
        Value::String(s) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| ApiError::invalid(format!("Invalid base64 {what}: {e}")))?;
            if bytes.len() % 4 != 0 {
                return Err(ApiError::invalid(format!(
                    "Base64 {what} is not a whole number of float32 values"
                )));
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        }
        _ => Err(ApiError::invalid(format!(
            "Expected {what} to be a list of numbers or a base64 string"
        ))),
    }
}

pub fn embeddings_list(m: &Map<String, Value>, key: &str) -> ApiResult<Option<Vec<Vec<f32>>>> {
    match present(m, key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| embedding(v, &format!("{key}[{i}]")))
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::invalid(format!(
            "Expected '{key}' to be a list of embeddings"
        ))),
    }
}

fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(Scalar::Int)
            .or_else(|| n.as_f64().map(Scalar::Float)),
        Value::String(s) => Some(Scalar::Str(s.clone())),
        _ => None,
    }
}

/// A metadata object; `null` values mean "remove this key" on update/upsert.
pub fn metadata(v: &Value, what: &str) -> ApiResult<BTreeMap<String, Option<MetaValue>>> {
    let Value::Object(o) = v else {
        return Err(ApiError::invalid(format!(
            "Expected {what} to be an object"
        )));
    };
    let mut out = BTreeMap::new();
    for (k, v) in o {
        let value = match v {
            Value::Null => None,
            Value::Array(items) => Some(MetaValue::List(
                items
                    .iter()
                    .map(|x| {
                        scalar(x).ok_or_else(|| {
                            ApiError::invalid(format!("Metadata list [{k}] in {what} may only hold strings, numbers or booleans"))
                        })
                    })
                    .collect::<ApiResult<Vec<_>>>()?,
            )),
            other => Some(MetaValue::Scalar(scalar(other).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Metadata value for [{k}] in {what} must be a string, number, boolean or a list of them"
                ))
            })?)),
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

/// The per-record columns of add/upsert/update, zipped into records.
pub fn record_inputs(
    m: &Map<String, Value>,
    embeddings_required: bool,
) -> ApiResult<Vec<RecordInput>> {
    let ids = opt_string_list(m, "ids")?
        .ok_or_else(|| ApiError::invalid("Missing required field 'ids'"))?;
    if ids.is_empty() {
        return Err(ApiError::invalid("Expected 'ids' to be a non-empty list"));
    }
    let n = ids.len();
    let column = |key: &str| -> ApiResult<Option<&Vec<Value>>> {
        match present(m, key) {
            None => Ok(None),
            Some(Value::Array(a)) if a.len() == n => Ok(Some(a)),
            Some(Value::Array(a)) => Err(ApiError::invalid(format!(
                "Number of {key} ({}) must match number of ids ({n})",
                a.len()
            ))),
            Some(_) => Err(ApiError::invalid(format!("Expected '{key}' to be a list"))),
        }
    };
    let embeddings = column("embeddings")?;
    if embeddings.is_none() && embeddings_required {
        return Err(ApiError::invalid(
            "Missing required field 'embeddings' (this server stores the embeddings it is given)",
        ));
    }
    let documents = column("documents")?;
    let metadatas = column("metadatas")?;
    let uris = column("uris")?;
    let text = |col: Option<&Vec<Value>>, key: &str, i: usize| -> ApiResult<Option<String>> {
        match col.map(|c| &c[i]) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid(format!(
                "Expected {key}[{i}] to be a string or null"
            ))),
        }
    };
    let mut out = Vec::with_capacity(n);
    for (i, id) in ids.into_iter().enumerate() {
        let embedding = match embeddings.map(|c| &c[i]) {
            None | Some(Value::Null) => None,
            Some(v) => Some(embedding(v, &format!("embeddings[{i}]"))?),
        };
        let metadata = match metadatas.map(|c| &c[i]) {
            None | Some(Value::Null) => None,
            Some(v) => Some(metadata(v, &format!("metadatas[{i}]"))?),
        };
        out.push(RecordInput {
            id,
            embedding,
            document: text(documents, "documents", i)?,
            metadata,
            uri: text(uris, "uris", i)?,
        });
    }
    Ok(out)
}

pub fn include(v: Option<&Value>, default: Include) -> ApiResult<Include> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    let Value::Array(items) = v else {
        return Err(ApiError::invalid("Expected 'include' to be a list"));
    };
    let names: Vec<&str> = items
        .iter()
        .map(|x| {
            x.as_str()
                .ok_or_else(|| ApiError::invalid("Expected 'include' to be a list of strings"))
        })
        .collect::<ApiResult<_>>()?;
    include_names(&names)
}

pub fn include_names(names: &[&str]) -> ApiResult<Include> {
    let mut inc = Include::default();
    for n in names {
        match *n {
            "documents" => inc.documents = true,
            "metadatas" => inc.metadatas = true,
            "embeddings" => inc.embeddings = true,
            "distances" => inc.distances = true,
            "uris" => inc.uris = true,
            "data" => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "Invalid include item [{other}]: expected documents, metadatas, embeddings, distances or uris"
                )))
            }
        }
    }
    Ok(inc)
}
