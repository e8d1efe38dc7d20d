//! Server-level calls that concern every shard, or any one of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::future::join_all;
use quiver_placement::protocol::SHARD_HEADER;
use serde_json::{json, Value};

use super::{Outgoing, Proxy};
use crate::error::RouterError;

fn shard_failed(ordinal: u32, url: &str, status: StatusCode, body: &[u8]) -> RouterError {
    RouterError::ShardFailed {
        ordinal,
        url: url.to_string(),
        status: status.as_u16(),
        body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    }
}

/// `GET /api/v1/projects` over all shards: the union of their listings, each entry tagged
/// with the shard that answered. A project listed by two shards (mid-move) is reported
/// from the shard placement sends it to. Any shard failing fails the listing: an
/// incomplete list would look like lost projects.
pub async fn list_projects(proxy: &Proxy, out: &Outgoing) -> Result<Value, RouterError> {
    let table = proxy.table()?;
    let shards: Vec<(u32, &str)> = table.all_shards().collect();
    let answers = join_all(
        shards
            .iter()
            .map(|&(ordinal, url)| proxy.call_shard(ordinal, url, out)),
    )
    .await;
    let mut merged: BTreeMap<String, Value> = BTreeMap::new();
    for (&(ordinal, url), answer) in shards.iter().zip(answers) {
        let (status, _, body) = answer?;
        if !status.is_success() {
            return Err(shard_failed(ordinal, url, status, &body));
        }
        let listing: Value = serde_json::from_slice(&body)
            .map_err(|e| shard_failed(ordinal, url, status, e.to_string().as_bytes()))?;
        let items = listing
            .get("projects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for mut item in items {
            let Some(name) = item.get("name").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            item["shard"] = json!(ordinal);
            let home = table.ordinal_of(&name) == ordinal;
            if home || !merged.contains_key(&name) {
                merged.insert(name, item);
            }
        }
    }
    Ok(json!({"projects": merged.into_values().collect::<Vec<_>>()}))
}

/// A call every shard must accept (`POST /api/v2/reset`): sent to all of them; the first
/// refusal is passed on as the shard gave it.
pub async fn to_every_shard(proxy: &Proxy, out: &Outgoing) -> Result<Response<Body>, RouterError> {
    let table = proxy.table()?;
    let shards: Vec<(u32, &str)> = table.all_shards().collect();
    let answers = join_all(
        shards
            .iter()
            .map(|&(ordinal, url)| proxy.call_shard(ordinal, url, out)),
    )
    .await;
    let mut last = None;
    for (&(ordinal, _), answer) in shards.iter().zip(answers) {
        let (status, headers, body) = answer?;
        let resp = rebuild(ordinal, status, headers, body);
        if !status.is_success() {
            return Ok(resp);
        }
        last = Some(resp);
    }
    Ok(last.unwrap_or_else(|| axum::Json(json!(true)).into_response()))
}

/// A call whose answer is the same on every shard (pre-flight checks, identity,
/// health): the next shard in turn answers; an unreachable one is skipped.
pub async fn any_shard(
    proxy: &Proxy,
    out: &Outgoing,
    turn: &AtomicUsize,
) -> Result<Response<Body>, RouterError> {
    let table = proxy.table()?;
    let shards: Vec<(u32, &str)> = table.all_shards().collect();
    let start = turn.fetch_add(1, Ordering::Relaxed);
    let mut last_err = None;
    for i in 0..shards.len() {
        let (ordinal, url) = shards[(start + i) % shards.len()];
        match proxy.call_shard(ordinal, url, out).await {
            Ok((status, headers, body)) => return Ok(rebuild(ordinal, status, headers, body)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or(RouterError::NoPlacement(proxy.placement.source())))
}

fn rebuild(
    ordinal: u32,
    status: StatusCode,
    mut headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response<Body> {
    super::headers::strip_hop_by_hop(&mut headers);
    headers.remove("content-length");
    if let Ok(v) = HeaderValue::from_str(&ordinal.to_string()) {
        headers.insert(SHARD_HEADER, v);
    }
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
