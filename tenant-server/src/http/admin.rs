//! The admin API (`/admin/v1`), for the operator and the router: provisioning and
//! deleting projects, their figures and the server's, and the primitives of moving a
//! project to another server (pause its writes, fence the copy left behind).
//!
//! Handlers parse and validate, then call the registry; docs/admin-api.md is the contract.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiPath, ApiResult};
use super::v1::blocking;
use super::{auth, parse, AppState};
use crate::store::{ProjectInfo, ProjectState, StatsSource};

/// The admin routes, relative to `/admin/v1`; every one of them behind the admin token.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_projects))
        .route(
            "/projects/{project}",
            get(project_info).put(provision).delete(delete_project),
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
    }
}

fn source_name(s: StatsSource) -> &'static str {
    match s {
        StatsSource::Live => "live",
        StatsSource::Saved => "saved",
        StatsSource::Directory => "directory",
    }
}

fn info_json(i: &ProjectInfo) -> Value {
    json!({
        "name": i.name,
        "collections": i.collections,
        "records": i.records,
        "bytes": i.bytes,
        "open": i.open,
        "state": state_name(i.state),
        "movedTo": i.fence.as_ref().and_then(|f| f.moved_to.clone()),
        "statsSource": source_name(i.stats_source),
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
    let list = blocking(move || Ok(reg.list_projects()?)).await?;
    Ok(Json(
        json!({"projects": list.iter().map(info_json).collect::<Vec<_>>()}),
    ))
}

async fn project_info(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let reg = Arc::clone(&s.registry);
    blocking(move || match reg.project_info(&name)? {
        Some(info) => Ok(Json(info_json(&info))),
        None => Err(project_not_found(&name)),
    })
    .await
}

/// Creates the project if absent: `201` when created, `200` when it existed.
async fn provision(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    body_with(body, &[])?;
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        let (_, created) = reg.provision(&name)?;
        let info = reg
            .project_info(&name)?
            .ok_or_else(|| project_not_found(&name))?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(info_json(&info))))
    })
    .await
}

/// Deletes the project whatever its state (a fenced copy left by a move included).
async fn delete_project(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
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
    body_with(body, &[])?;
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        let paused = reg.pause(&name)?;
        Ok(Json(json!({
            "project": name,
            "paused": true,
            "sequence": paused.sequence,
            "drainedWrites": paused.drained_writes,
        })))
    })
    .await
}

async fn resume(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
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
    let body = body_with(body, &["movedTo"])?;
    let moved_to = parse::opt_string(&body, "movedTo")?;
    let reg = Arc::clone(&s.registry);
    blocking(move || {
        let fence = reg.fence(&name, moved_to)?;
        Ok(Json(json!({
            "project": name,
            "fenced": true,
            "movedTo": fence.moved_to,
            "fencedAt": fence.fenced_at,
        })))
    })
    .await
}

async fn unfence(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
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
        "diskBytes": st.disk_bytes,
        "rssBytes": crate::process::resident_bytes(),
    })))
}
