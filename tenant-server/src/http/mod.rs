//! HTTP edge: routing, middleware, and the mapping of store errors to responses.

pub mod admin;
mod auth;
pub mod collection_config;
pub mod core;
pub mod error;
pub mod observe;
pub mod parse;
pub mod results;
pub mod v1;
pub mod v2;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, OriginalUri};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::routing::get;
use axum::Router;

use crate::store::Registry;
use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    /// Whether `POST /api/v2/reset` may delete every project.
    pub allow_reset: bool,
    /// Bearer token the admin API requires; `None` leaves it open.
    pub admin_token: Option<Arc<str>>,
    pub metrics: Arc<observe::Metrics>,
}

pub struct HttpOptions {
    pub max_body_bytes: usize,
    /// `None` allows any origin.
    pub cors_origins: Option<Vec<String>>,
    pub allow_reset: bool,
    /// Bearer token the admin API requires; `None` leaves it open.
    pub admin_token: Option<String>,
}

pub fn router(registry: Arc<Registry>, opts: &HttpOptions) -> Router {
    let cors = quiver_http_edge::cors::layer(opts.cors_origins.as_deref());
    let state = AppState {
        registry,
        allow_reset: opts.allow_reset,
        admin_token: opts.admin_token.as_deref().map(Arc::from),
        metrics: observe::Metrics::new(),
    };
    let metrics = Arc::clone(&state.metrics);
    v1::routes()
        .merge(v2::routes())
        .nest("/admin/v1", admin::routes(state.clone()))
        .route("/metrics", get(observe::metrics_endpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(opts.max_body_bytes))
        .layer(axum::middleware::from_fn(close_unless_body_read))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            observe::observe,
        ))
        .layer(cors)
}

/// Marks the answer `Connection: close` when the request's body was not read to its end:
/// a request refused before its body was needed (a `401`, an import answered `409` before
/// its snapshot is read, a `413`). hyper then closes the connection rather than drain
/// the body, but says nothing; an HTTP/1.1 client would put the connection back in its
/// pool and see its next request on it fail ("connection closed before message
/// completed"). Bodies read to the end, the usual case, keep the connection.
async fn close_unless_body_read(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    let headers = req.headers();
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !has_body {
        return next.run(req).await;
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&read_to_end);
    let (parts, body) = req.into_parts();
    let tracked = body
        .into_data_stream()
        .chain(futures_util::stream::poll_fn(move |_| {
            // polled only once the body's own stream has ended
            flag.store(true, Ordering::Release);
            std::task::Poll::<Option<Result<axum::body::Bytes, axum::Error>>>::Ready(None)
        }));
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from_stream(tracked));
    let mut resp = next.run(req).await;
    if !read_to_end.load(Ordering::Acquire) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

// `OriginalUri`: under a nested router (the admin API) `Uri` lacks the prefix
async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("No route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "InvalidArgumentError",
        format!("Method {method} is not allowed on {}", uri.path()),
    )
}
