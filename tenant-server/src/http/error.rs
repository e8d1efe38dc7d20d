//! The one place where store errors become HTTP statuses and Chroma-style error bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "InvalidArgumentError",
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "NotFoundError",
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "InternalError",
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        use StoreError::*;
        let (status, kind) = match &e {
            InvalidArgument(_) | Filter(_) => (StatusCode::BAD_REQUEST, "InvalidArgumentError"),
            InvalidDimension(_) => (StatusCode::BAD_REQUEST, "InvalidDimension"),
            DuplicateId(_) => (StatusCode::BAD_REQUEST, "DuplicateIDError"),
            CollectionNotFound(_) | ProjectNotFound(_) | DatabaseNotFound(_) => {
                (StatusCode::NOT_FOUND, "NotFoundError")
            }
            CollectionExists(_) => (StatusCode::CONFLICT, "UniqueConstraintError"),
            ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "InternalError"),
            Storage(_) | Io(_) | Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        if status.is_server_error() {
            tracing::error!("store error: {e}");
        }
        ApiError {
            status,
            kind,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({"error": self.kind, "message": self.message})),
        )
            .into_response();
        // the chromadb client reads this header into error.trace_id
        resp.headers_mut().insert(
            "chroma-trace-id",
            axum::http::HeaderValue::from_static("00000000000000000000000000000000"),
        );
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::invalid(format!("Invalid path: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::invalid(format!("Invalid query string: {}", e.body_text()))
    }
}

/// `Path`, with rejections (such as invalid UTF-8) as JSON errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Query`, with rejections as JSON errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
