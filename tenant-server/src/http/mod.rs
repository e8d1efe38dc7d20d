//! HTTP edge: routing, middleware, and the mapping of store errors to responses.

pub mod error;
pub mod parse;
pub mod v1;
pub mod v2;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, Uri};
use axum::Router;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::store::Registry;
use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    /// Whether `POST /api/v2/reset` may delete every project.
    pub allow_reset: bool,
}

pub struct HttpOptions {
    pub max_body_bytes: usize,
    /// `None` allows any origin.
    pub cors_origins: Option<Vec<String>>,
    pub allow_reset: bool,
}

pub fn router(registry: Arc<Registry>, opts: &HttpOptions) -> Router {
    let cors = match &opts.cors_origins {
        None => CorsLayer::new()
            .allow_origin(Any)
            .allow_methods(Any)
            .allow_headers(Any),
        Some(list) => CorsLayer::new()
            .allow_origin(AllowOrigin::list(
                list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
            ))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(Any),
    };
    v1::routes()
        .merge(v2::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState {
            registry,
            allow_reset: opts.allow_reset,
        })
        .layer(DefaultBodyLimit::max(opts.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .layer(cors)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("No route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        kind: "InvalidArgumentError",
        message: format!("Method {method} is not allowed on {}", uri.path()),
    }
}
