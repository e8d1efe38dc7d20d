//! What every handler of the three APIs (v1, v2, admin) shares: running store work off
//! the async runtime, the project named by a request (checked here, once, and trusted by
//! the store), and the parsing of filters. The APIs depend on this module, never on each
//! other.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::store::filter::{FilterError, Where, WhereDocument};
use crate::store::{Project, ProjectName};

/// Runs blocking store work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    // the store's spans belong to the request's trace
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
}

/// The project a request names, checked against the name rule.
pub fn project_name(name: &str) -> ApiResult<ProjectName> {
    Ok(ProjectName::new(name)?)
}

/// The project a request names, opened (and created on first use).
pub fn open_project(state: &AppState, name: &str) -> ApiResult<Arc<Project>> {
    Ok(state.registry.project(&project_name(name)?)?)
}

/// Nanoseconds since the Unix epoch, for heartbeats.
pub fn nanos_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// An integer field within `lo..=hi`.
pub fn usize_in(v: &Value, key: &str, lo: usize, hi: usize) -> ApiResult<usize> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(format!("Expected '{key}' to be an integer in {lo}..={hi}"))
        })
}

/// The `where` and `where_document` filters of a request body.
pub fn filters(body: &Map<String, Value>) -> ApiResult<(Option<Where>, Option<WhereDocument>)> {
    Ok((
        filter(body, "where", Where::parse)?,
        filter(body, "where_document", WhereDocument::parse)?,
    ))
}

/// One filter of a request body; absent or `null` is none.
fn filter<T>(
    body: &Map<String, Value>,
    key: &str,
    parse: impl Fn(&Value) -> Result<Option<T>, FilterError>,
) -> ApiResult<Option<T>> {
    match body.get(key) {
        None => Ok(None),
        Some(v) => parse(v).map_err(|e| ApiError::invalid(e.to_string())),
    }
}
