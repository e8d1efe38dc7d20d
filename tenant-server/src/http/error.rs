//! The one place where store errors become HTTP statuses and Chroma-style error bodies.

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quiver_placement::protocol::{PROJECT_MOVED, PROJECT_PAUSED, PROJECT_STATE_HEADER};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// Value of the project-state header, for the `503`s the router acts on.
    pub project_state: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            project_state: None,
        }
    }
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidArgumentError", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFoundError", message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }
    /// This API's name for every malformed request: Chroma's `422`s become `400`s.
    pub fn as_invalid_argument(self) -> ApiError {
        if self.status == StatusCode::UNPROCESSABLE_ENTITY {
            ApiError::invalid(self.message)
        } else {
            self
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }
}

/// Whose names errors take. The Chroma v2 API names two cases as Chroma does (the
/// official client turns those names into its exception classes); the per-project and
/// admin APIs keep the original server's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Quiver,
    Chroma,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::from_store(e, Flavour::Quiver)
    }
}

impl ApiError {
    /// The status and error name of a store error, in the names of `flavour`'s API.
    pub fn from_store(e: StoreError, flavour: Flavour) -> ApiError {
        use StoreError::*;
        let chroma = flavour == Flavour::Chroma;
        let (status, kind) = match &e {
            InvalidArgument(_) | Filter(_) | Schema(_) => {
                (StatusCode::BAD_REQUEST, "InvalidArgumentError")
            }
            InvalidDimension(_) if chroma => (StatusCode::BAD_REQUEST, "InvalidArgumentError"),
            InvalidDimension(_) => (StatusCode::BAD_REQUEST, "InvalidDimension"),
            DuplicateId(_) => (StatusCode::BAD_REQUEST, "DuplicateIDError"),
            CollectionNotFound(_) | ProjectNotFound(_) | DatabaseNotFound(_) => {
                (StatusCode::NOT_FOUND, "NotFoundError")
            }
            CollectionExists(_) if chroma => (StatusCode::CONFLICT, "ChromaError"),
            CollectionExists(_) => (StatusCode::CONFLICT, "UniqueConstraintError"),
            ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "InternalError"),
            ProjectPaused(_) => (StatusCode::SERVICE_UNAVAILABLE, "ProjectPaused"),
            QuotaExceeded(_) => (StatusCode::BAD_REQUEST, "QuotaError"),
            ProjectExists(_) => (StatusCode::CONFLICT, "ProjectExists"),
            NotIncoming(_) => (StatusCode::CONFLICT, "NotIncoming"),
            ChangesUnavailable(_) => (StatusCode::GONE, "ChangesUnavailable"),
            PauseTimeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "PauseTimeout"),
            ProjectFenced { .. } => (StatusCode::SERVICE_UNAVAILABLE, "ProjectMoved"),
            Storage(_) | Io(_) | Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            // Chroma answers a 500 here, and clients written against it expect exactly that
            // Chroma answers 500; the request is at fault, not the server, so the status is a 4xx
            // while the error name (which the client turns into its exception) stays Chroma's
            QueryIdNotFound => (StatusCode::NOT_FOUND, "InternalError"),
        };
        let project_state = match &e {
            ProjectPaused(_) => Some(PROJECT_PAUSED),
            ProjectFenced { .. } => Some(PROJECT_MOVED),
            _ => None,
        };
        // a paused or moved project is routine during moves, and a missing query id is the
        // client's mistake: neither is a server fault
        let fault = project_state.is_none() && !matches!(e, QueryIdNotFound);
        if status.is_server_error() && fault {
            tracing::error!("store error: {e}");
        }
        ApiError {
            status,
            kind,
            message: e.to_string(),
            project_state,
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
            HeaderValue::from_static("00000000000000000000000000000000"),
        );
        if let Some(state) = self.project_state {
            resp.headers_mut()
                .insert(PROJECT_STATE_HEADER, HeaderValue::from_static(state));
            // a pause lasts as long as a move's final catch-up: seconds
            if state == PROJECT_PAUSED {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
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
        // axum's text already says "Failed to deserialize query string: …", Chroma's words
        ApiError::invalid(e.body_text())
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
