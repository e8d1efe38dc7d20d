//! Errors the router itself answers with, as JSON in the tenant server's shape
//! (`{"error": <kind>, "message": <text>}`), mapped to status codes here only.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("shard {ordinal} ({url}) is unavailable: {reason}")]
    ShardUnavailable {
        ordinal: u32,
        url: String,
        reason: String,
    },
    #[error("shard {ordinal} ({url}) did not answer within {millis} ms")]
    ShardTimeout {
        ordinal: u32,
        url: String,
        millis: u128,
    },
    #[error("no placement table has been loaded yet (source: {0})")]
    NoPlacement(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("shard {ordinal} ({url}) answered {status}: {body}")]
    ShardFailed {
        ordinal: u32,
        url: String,
        status: u16,
        body: String,
    },
}

impl RouterError {
    fn status(&self) -> StatusCode {
        match self {
            RouterError::ShardUnavailable { .. }
            | RouterError::ShardTimeout { .. }
            | RouterError::NoPlacement(_) => StatusCode::SERVICE_UNAVAILABLE,
            RouterError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RouterError::NotFound(_) => StatusCode::NOT_FOUND,
            RouterError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            RouterError::ShardFailed { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            RouterError::ShardUnavailable { .. } => "ShardUnavailable",
            RouterError::ShardTimeout { .. } => "ShardTimeout",
            RouterError::NoPlacement(_) => "NoPlacement",
            RouterError::BadRequest(_) => "InvalidArgumentError",
            RouterError::NotFound(_) => "NotFoundError",
            RouterError::MethodNotAllowed(_) => "InvalidArgumentError",
            RouterError::ShardFailed { .. } => "ShardFailed",
        }
    }

    fn shard(&self) -> Option<u32> {
        match self {
            RouterError::ShardUnavailable { ordinal, .. }
            | RouterError::ShardTimeout { ordinal, .. }
            | RouterError::ShardFailed { ordinal, .. } => Some(*ordinal),
            _ => None,
        }
    }
}

impl IntoResponse for RouterError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({"error": self.kind(), "message": self.to_string()});
        if let Some(ordinal) = self.shard() {
            body["shard"] = json!(ordinal);
        }
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}
