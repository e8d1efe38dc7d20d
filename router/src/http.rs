//! The router's HTTP face: its own routes (server-level calls, probes, metrics) and the
//! fallback that proxies every project-scoped path to the project's shard.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use quiver_placement::protocol::REQUEST_ID_HEADER;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::error::RouterError;
use crate::proxy::replay::UpstreamBody;
use crate::proxy::target::{project_of, route_class, route_template, Target};
use crate::proxy::{fanout, with_request_id, Outgoing, Proxy};

/// Largest body of `POST /api/v2/tenants` read to find the tenant's name.
const CREATE_TENANT_BODY_LIMIT: usize = 64 << 10;

#[derive(Clone)]
pub struct AppState {
    pub proxy: Arc<Proxy>,
    turn: Arc<AtomicUsize>,
}

pub fn router(proxy: Arc<Proxy>, cors_origins: Option<Vec<String>>) -> Router {
    let cors = quiver_http_edge::cors::layer(cors_origins.as_deref());
    let state = AppState {
        proxy,
        turn: Arc::new(AtomicUsize::new(0)),
    };
    Router::new()
        .route("/", get(root))
        .route("/api/v1/heartbeat", get(heartbeat_v1))
        .route("/api/v1/version", get(version_v1))
        .route("/api/v1/projects", get(list_projects))
        .route("/api/v2", get(heartbeat_v2))
        .route("/api/v2/", get(heartbeat_v2))
        .route("/api/v2/heartbeat", get(heartbeat_v2))
        .route("/api/v2/version", get(version_v2))
        .route("/api/v2/reset", post(reset))
        .route("/api/v2/pre-flight-checks", get(any_shard))
        .route("/api/v2/auth/identity", get(any_shard))
        .route("/api/v2/healthcheck", get(any_shard))
        .route("/api/v2/tenants", post(create_tenant))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/placement", get(placement))
        .fallback(proxy_project)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
        // outermost, as in the tenant server: preflights are answered here for every path
        // (a route layer never saw them: OPTIONS matched no route), and proxied answers
        // carry this policy's headers in place of the shard's
        .layer(cors)
}

/// Runs every request in its server span (continuing the caller's trace), and counts and
/// times it by route class and status.
async fn observe(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let class = route_class(req.uri().path());
    let template = match req.extensions().get::<MatchedPath>() {
        Some(m) => m.as_str().to_string(),
        None => route_template(class).to_string(),
    };
    // one request id for the whole hop: the client's, else a new one, echoed back even on
    // the router's own answers
    let request_id = match req.headers().get(REQUEST_ID_HEADER) {
        Some(v) => v.clone(),
        None => {
            let v = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("unknown"));
            req.headers_mut().insert(REQUEST_ID_HEADER, v.clone());
            v
        }
    };
    let (span, trace_id) = quiver_telemetry::http::server_span(&req, &template);
    req.extensions_mut().insert(trace_id);
    let mut flight = s.proxy.metrics.http.start(class);
    let mut resp = next.run(req).instrument(span.clone()).await;
    resp.headers_mut()
        .entry(REQUEST_ID_HEADER)
        .or_insert(request_id);
    quiver_telemetry::http::record_response(&span, &resp);
    flight.finish(resp.status());
    resp
}

fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Every project-scoped path: to the project's shard.
async fn proxy_project(State(s): State<AppState>, req: Request) -> Response {
    let target = match project_of(req.uri().path()) {
        Ok(t) => t,
        Err(e) => return RouterError::BadRequest(e).into_response(),
    };
    let Target::Project(project) = target else {
        return RouterError::NotFound(format!(
            "No route for {} {}",
            req.method(),
            req.uri().path()
        ))
        .into_response();
    };
    let peer = peer(&req);
    let (parts, body) = req.into_parts();
    let cap = match s.proxy.placement.current() {
        Some(t) if t.is_moving(&project) => s.proxy.opts.moving_retry_buffer_bytes,
        _ => s.proxy.opts.retry_buffer_bytes,
    };
    let (body, recorder) = UpstreamBody::tee(body, cap);
    s.proxy
        .forward(&project, Outgoing::new(parts, peer), body, recorder)
        .await
}

/// `POST /api/v2/tenants` names the project in its body: read it (it is small), route by
/// the name. A body without a readable name goes to any shard, whose answer is the same
/// validation error a single server gives.
async fn create_tenant(State(s): State<AppState>, req: Request) -> Response {
    let peer = peer(&req);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, CREATE_TENANT_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return RouterError::BadRequest(format!(
                "create-tenant body is larger than {CREATE_TENANT_BODY_LIMIT} bytes"
            ))
            .into_response()
        }
    };
    let name = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string));
    let out = Outgoing::new(parts, peer);
    match name {
        Some(name) => {
            let (body, recorder) = UpstreamBody::buffered(bytes);
            s.proxy.forward(&name, out, body, recorder).await
        }
        None => {
            // no name to route by: the shard of the empty name gives the same validation
            // error a single server gives
            let (body, recorder) = UpstreamBody::buffered(bytes);
            s.proxy.forward("", out, body, recorder).await
        }
    }
}

async fn any_shard(State(s): State<AppState>, req: Request) -> Response {
    let peer = peer(&req);
    let (parts, _) = req.into_parts();
    let out = Outgoing::new(parts, peer);
    match fanout::any_shard(&s.proxy, &out, &s.turn).await {
        Ok(resp) => with_request_id(resp, &out.request_id),
        Err(e) => with_request_id(e.into_response(), &out.request_id),
    }
}

async fn list_projects(State(s): State<AppState>, req: Request) -> Response {
    let peer = peer(&req);
    let (parts, _) = req.into_parts();
    let out = Outgoing::new(parts, peer);
    let resp = match fanout::list_projects(&s.proxy, &out).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    with_request_id(resp, &out.request_id)
}

async fn reset(State(s): State<AppState>, req: Request) -> Response {
    let peer = peer(&req);
    let (parts, _) = req.into_parts();
    let out = Outgoing::new(parts, peer);
    let resp = match fanout::to_every_shard(&s.proxy, &out).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    with_request_id(resp, &out.request_id)
}

fn nanos_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn root(State(s): State<AppState>) -> Json<Value> {
    let placement = s.proxy.placement.current();
    Json(json!({
        "message": "Quiver router",
        "version": env!("CARGO_PKG_VERSION"),
        "placement_epoch": placement.as_ref().map(|t| t.epoch),
        "shards": placement.as_ref().map(|t| t.shards.clone()).unwrap_or_default(),
    }))
}

async fn heartbeat_v1() -> Json<Value> {
    Json(json!({"status": "ok", "nanosecond heartbeat": nanos_now()}))
}

async fn heartbeat_v2() -> Json<Value> {
    Json(json!({"nanosecond heartbeat": nanos_now()}))
}

async fn version_v1() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

async fn version_v2() -> Json<Value> {
    Json(json!(env!("CARGO_PKG_VERSION")))
}

/// Liveness: the process serves requests.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: a placement table is loaded and its source is reachable.
async fn readyz(State(s): State<AppState>) -> Response {
    match s.proxy.placement.ready() {
        Ok(()) => Json(json!({
            "status": "ready",
            "placement_epoch": s.proxy.placement.current().map(|t| t.epoch),
        }))
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "NotReady", "message": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.proxy.metrics.render(),
    )
        .into_response()
}

/// The placement table in force, in its published JSON form.
async fn placement(State(s): State<AppState>) -> Response {
    match s.proxy.table() {
        Ok(t) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            t.to_json(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    RouterError::MethodNotAllowed(format!("Method {method} is not allowed on {}", uri.path()))
        .into_response()
}
