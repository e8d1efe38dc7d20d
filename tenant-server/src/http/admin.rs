//! The admin API (`/admin/v1`), for the operator and the router: provisioning and
//! deleting projects, their quotas, their figures and the server's, and the primitives of
//! moving a project to another server (snapshot, changes since it, pause its writes,
//! fence the copy left behind).
//!
//! Handlers parse and validate, then call the registry; docs/admin-api.md is the contract.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{middleware, Json, Router};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::core::{blocking, project_name};
use super::error::{ApiError, ApiPath, ApiResult};
use super::{auth, parse, AppState};
use crate::store::quota::Quotas;
use crate::store::transfer::{write_frame, Frame};
use crate::store::{ProjectInfo, ProjectState, StatsSource};

/// Header carrying a sequence number on snapshot and changes answers.
pub const SEQUENCE_HEADER: &str = "x-quiver-sequence";
const DEFAULT_PAUSE_MS: u64 = 30_000;
const MAX_PAUSE_MS: u64 = 3_600_000;
/// Chunks of a streamed answer in flight between the blocking producer and the socket.
const STREAM_CHUNKS: usize = 8;

/// The admin routes, relative to `/admin/v1`; every one of them behind the admin token.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_projects))
        .route(
            "/projects/{project}",
            get(project_info).put(provision).delete(delete_project),
        )
        .route("/projects/{project}/quotas", put(set_quotas))
        .route(
            "/projects/{project}/snapshot",
            get(export_snapshot).put(import_snapshot),
        )
        .route(
            "/projects/{project}/changes",
            get(changes_since).post(apply_changes),
        )
        .route("/projects/{project}/pause", post(pause))
        .route("/projects/{project}/resume", post(resume))
        .route("/projects/{project}/fence", post(fence).delete(unfence))
        .route("/stats", get(server_stats))
        .fallback(super::not_found)
        .method_not_allowed_fallback(super::method_not_allowed)
        // `layer`, not `route_layer`: unknown admin paths need the token too, so that
        // they do not reveal which ones exist
        .layer(middleware::from_fn_with_state(
            state,
            auth::require_admin_token,
        ))
}

fn state_name(s: ProjectState) -> &'static str {
    match s {
        ProjectState::Active => "active",
        ProjectState::Paused => "paused",
        ProjectState::Fenced => "fenced",
        ProjectState::Incoming => "incoming",
    }
}

fn source_name(s: StatsSource) -> &'static str {
    match s {
        StatsSource::Live => "live",
        StatsSource::Saved => "saved",
        StatsSource::Directory => "directory",
    }
}

fn info_json(i: &ProjectInfo, quotas: Option<Quotas>) -> Value {
    json!({
        "name": i.name,
        "collections": i.collections,
        "records": i.records,
        "bytes": i.bytes,
        "open": i.open,
        "state": state_name(i.state),
        "movedTo": i.fence.as_ref().and_then(|f| f.moved_to.clone()),
        "statsSource": source_name(i.stats_source),
        "quotas": quotas,
        "sourceSequence": i.fence.as_ref().and_then(|f| f.source_sequence),
    })
}

fn project_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Project [{name}] does not exist"))
}

/// The request body as a JSON object holding only `allowed` keys, so that a misspelt
/// field fails loudly instead of being ignored.
fn body_with(
    body: Result<Bytes, BytesRejection>,
    allowed: &[&str],
) -> ApiResult<Map<String, Value>> {
    let body = parse::body_object(body)?;
    if let Some(unknown) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        let expected = if allowed.is_empty() {
            "no fields".to_string()
        } else {
            allowed.join(", ")
        };
        return Err(ApiError::invalid(format!(
            "Unknown field '{unknown}' (expected {expected})"
        )));
    }
    Ok(body)
}

async fn list_projects(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let reg = Arc::clone(&s.registry);
    let list = blocking(move || {
        let list = reg.list_projects()?;
        Ok(list
            .iter()
            .map(|i| info_json(i, reg.quotas_of(&i.name).ok()))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({"projects": list})))
}

async fn project_info(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let name = project_name(&name)?;
    let reg = Arc::clone(&s.registry);
    blocking(move || match reg.project_info(&name)? {
        Some(info) => Ok(Json(info_json(&info, reg.quotas_of(&name).ok()))),
        None => Err(project_not_found(&name)),
    })
    .await
}

/// Quotas from a JSON object (`null` or absent fields: no limit).
fn quotas_from(value: Value) -> ApiResult<Quotas> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::invalid(format!(
            "Expected quotas as {{\"maxCollections\", \"maxRecords\", \"maxBytes\"}} of \
             non-negative integers or null: {e}"
        ))
    })
}

/// Creates the project if absent: `201` when created, `200` when it existed. Quotas, when
/// given, replace the project's.
async fn provision(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = project_name(&name)?;
    let mut body = body_with(body, &["quotas"])?;
    let quotas = match body.remove("quotas") {
        None | Some(Value::Null) => None,
        Some(q) => Some(quotas_from(q)?),
    };
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        let (_, created) = reg.provision_with_quotas(&name, quotas)?;
        let info = reg
            .project_info(&name)?
            .ok_or_else(|| project_not_found(&name))?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(info_json(&info, reg.quotas_of(&name).ok()))))
    })
    .await
}

async fn set_quotas(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let name = project_name(&name)?;
    let quotas = quotas_from(Value::Object(parse::body_object(body)?))?;
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        reg.set_quotas(&name, quotas)?;
        match reg.project_info(&name)? {
            Some(info) => Ok(Json(info_json(&info, Some(quotas)))),
            None => Err(project_not_found(&name)),
        }
    })
    .await
}

/// A blocking producer's writes, sent as body chunks of about 256 KiB.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 << 10;

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// Ends the body with an error, so that the client sees a cut stream, not a short one.
    fn fail(self, e: &dyn std::fmt::Display) {
        let _ = self
            .tx
            .blocking_send(Err(std::io::Error::other(e.to_string())));
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn streamed(rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

fn sequence_header(seq: u64) -> HeaderValue {
    HeaderValue::from(seq)
}

/// A blocking reader over a request body, for the store's importers.
fn body_reader(body: Body) -> impl std::io::Read {
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e));
    SyncIoBridge::new(StreamReader::new(stream))
}

/// Reads what is left of a request body after its content ended (at most 1 MiB; beyond
/// that the connection is closed instead, see `close_unless_body_read`).
fn drain(reader: &mut impl std::io::Read) {
    let _ = std::io::copy(
        &mut std::io::Read::take(reader, 1 << 20),
        &mut std::io::sink(),
    );
}

/// Streams a consistent snapshot (tar) of the project; `x-quiver-sequence` says up to
/// which sequence it holds every write.
async fn export_snapshot(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let name = project_name(&name)?;
    let reg = Arc::clone(&s.registry);
    let snapshot = blocking(move || Ok(reg.export_snapshot(&name)?)).await?;
    let sequence = snapshot.sequence;
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        match snapshot.write_tar(&mut out) {
            Ok(_) => {
                if let Err(e) = out.send() {
                    tracing::debug!("snapshot stream ended early: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("snapshot stream failed: {e}");
                out.fail(&e);
            }
        }
        // the staging directory goes with `snapshot`, here
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            ),
            (
                header::HeaderName::from_static(SEQUENCE_HEADER),
                sequence_header(sequence),
            ),
        ],
        streamed(rx),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImportParams {
    source_sequence: u64,
}

/// Imports a snapshot as the project's incoming copy.
async fn import_snapshot(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = project_name(&name)?;
    let Query(params) = params.map_err(|e| {
        ApiError::invalid(format!(
            "Expected the query parameter sourceSequence (an integer): {}",
            e.body_text()
        ))
    })?;
    let reg = Arc::clone(&s.registry);
    let mut reader = body_reader(body);
    blocking(move || {
        reg.import_snapshot(&name, params.source_sequence, &mut reader)?;
        // the tar ends at its first zero block: read the rest (the second one) so that
        // the connection can carry the next request
        drain(&mut reader);
        match reg.project_info(&name)? {
            Some(info) => Ok((
                StatusCode::CREATED,
                Json(info_json(&info, reg.quotas_of(&name).ok())),
            )),
            None => Err(project_not_found(&name)),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesParams {
    since: u64,
}

/// Streams the project's write batches above `since` (see docs/admin-api.md for framing).
async fn changes_since(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    params: Result<Query<ChangesParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let name = project_name(&name)?;
    let Query(params) = params.map_err(|e| {
        ApiError::invalid(format!(
            "Expected the query parameter since (an integer): {}",
            e.body_text()
        ))
    })?;
    let reg = Arc::clone(&s.registry);
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
    let (start_tx, start_rx) = tokio::sync::oneshot::channel::<Result<u64, ApiError>>();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let mut start_tx = Some(start_tx);
        let result = reg.changes_since(
            &name,
            params.since,
            |latest| {
                if let Some(tx) = start_tx.take() {
                    let _ = tx.send(Ok(latest));
                }
            },
            &mut |frame: Frame| write_frame(&mut out, &frame),
        );
        match result {
            Ok(_) => {
                if let Err(e) = out.send() {
                    tracing::debug!("changes stream ended early: {e}");
                }
            }
            Err(e) => match start_tx.take() {
                // nothing sent yet: a proper error answer
                Some(tx) => {
                    let _ = tx.send(Err(e.into()));
                }
                None => {
                    tracing::warn!("changes stream failed: {e}");
                    out.fail(&e);
                }
            },
        }
    });
    let latest = start_rx
        .await
        .map_err(|_| ApiError::internal("the changes reader stopped before starting"))??;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-quiver-changes"),
            ),
            (
                header::HeaderName::from_static(SEQUENCE_HEADER),
                sequence_header(latest),
            ),
        ],
        streamed(rx),
    )
        .into_response())
}

/// Applies a changes stream to the project's incoming copy.
async fn apply_changes(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let name = project_name(&name)?;
    let reg = Arc::clone(&s.registry);
    let mut reader = body_reader(body);
    blocking(move || {
        let applied = reg.apply_changes(&name, &mut reader)?;
        drain(&mut reader);
        Ok(Json(json!({
            "project": name,
            "appliedBatches": applied.batches,
            "sourceSequence": applied.source_sequence,
        })))
    })
    .await
}

/// Deletes the project whatever its state (a fenced copy left by a move included).
async fn delete_project(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let name = project_name(&name)?;
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        if !reg.purge_project(&name)? {
            return Err(project_not_found(&name));
        }
        Ok(Json(json!({"project": name, "deleted": true})))
    })
    .await
}

/// Answers once the project's writes in progress are done, with the sequence number a
/// copy must reach to hold every acknowledged write.
async fn pause(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let name = project_name(&name)?;
    let body = body_with(body, &["timeoutMs"])?;
    let hold_ms = match parse::opt_usize(&body, "timeoutMs")? {
        None => DEFAULT_PAUSE_MS,
        Some(ms) if (1..=MAX_PAUSE_MS as usize).contains(&ms) => ms as u64,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "Expected 'timeoutMs' between 1 and {MAX_PAUSE_MS}"
            )))
        }
    };
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        let paused = reg.pause(&name, Duration::from_millis(hold_ms))?;
        Ok(Json(json!({
            "project": name,
            "paused": true,
            "sequence": paused.sequence,
            "drainedWrites": paused.drained_writes,
            "timeoutMs": hold_ms,
        })))
    })
    .await
}

async fn resume(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let name = project_name(&name)?;
    body_with(body, &[])?;
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        let was_paused = reg.resume(&name)?;
        Ok(Json(
            json!({"project": name, "paused": false, "wasPaused": was_paused}),
        ))
    })
    .await
}

async fn fence(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let name = project_name(&name)?;
    let body = body_with(body, &["movedTo"])?;
    let moved_to = parse::opt_string(&body, "movedTo")?;
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        let (fence, sequence) = reg.fence(&name, moved_to)?;
        Ok(Json(json!({
            "project": name,
            "fenced": true,
            "movedTo": fence.moved_to,
            "fencedAt": fence.fenced_at,
            // the last write's sequence when the project was open: a move that shipped
            // this far has nothing left to ship
            "sequence": sequence,
        })))
    })
    .await
}

async fn unfence(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let name = project_name(&name)?;
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        let was_fenced = reg.unfence(&name)?;
        Ok(Json(
            json!({"project": name, "fenced": false, "wasFenced": was_fenced}),
        ))
    })
    .await
}

async fn server_stats(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let reg = Arc::clone(&s.registry);
    let st = blocking(move || Ok(reg.server_stats()?)).await?;
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "projects": st.projects,
        "fencedProjects": st.fenced_projects,
        "pausedProjects": st.paused_projects,
        "openProjects": st.open_projects,
        "maxOpenProjects": st.max_open_projects,
        "evictions": st.evictions,
        "idleCloses": st.idle_closes,
        "loadedMemoryBytes": st.loaded_memory_bytes,
        "unindexedRecords": st.unindexed_records,
        "diskBytes": st.disk_bytes,
        "rssBytes": crate::process::resident_bytes(),
    })))
}
