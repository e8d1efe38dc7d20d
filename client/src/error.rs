//! The client's error type.

use crate::wire::ErrorBody;

/// Everything a [`QuiverClient`](crate::QuiverClient) call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a 4xx/5xx status. `error` and `message` come from its
    /// JSON error body (`{"error", "message"}`); when the body is not of that form,
    /// `error` is `"HttpError"` and `message` holds the start of the body.
    #[error("HTTP {status} {error}: {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// Error kind, e.g. `NotFoundError`, `InvalidArgumentError`.
        error: String,
        /// The server's explanation.
        message: String,
    },
    /// The request could not be sent or the response could not be read (connection
    /// refused, reset, timeout…).
    #[error("HTTP transport error: {0}")]
    Http(#[from] reqwest::Error),
    /// A successful response whose body is not the expected JSON.
    #[error("cannot decode response: {0}")]
    Decode(String),
    /// The base URL given to the client is not an http(s) URL.
    #[error("invalid base URL: {0}")]
    InvalidUrl(String),
}

impl ClientError {
    /// The HTTP status of an [`Api`](ClientError::Api) error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Http(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// The error kind (`NotFoundError`, …) of an [`Api`](ClientError::Api) error.
    pub fn kind(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether this is a 404 (unknown project or collection).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Builds an [`Api`](ClientError::Api) error from a non-success response.
    pub(crate) fn from_error_response(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error, message }) => ClientError::Api {
                status,
                error,
                message,
            },
            Err(_) => ClientError::Api {
                status,
                error: "HttpError".to_owned(),
                message: crate::client::snippet(body),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_from_json_body() {
        let e = ClientError::from_error_response(
            409,
            br#"{"error": "UniqueConstraintError", "message": "Collection [docs] already exists"}"#,
        );
        match &e {
            ClientError::Api {
                status,
                error,
                message,
            } => {
                assert_eq!(*status, 409);
                assert_eq!(error, "UniqueConstraintError");
                assert_eq!(message, "Collection [docs] already exists");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(e.kind(), Some("UniqueConstraintError"));
        assert!(!e.is_not_found());
        assert_eq!(
            e.to_string(),
            "HTTP 409 UniqueConstraintError: Collection [docs] already exists"
        );
    }

    #[test]
    fn api_error_from_other_body() {
        let e = ClientError::from_error_response(404, b"no route");
        assert!(e.is_not_found());
        assert_eq!(e.kind(), Some("HttpError"));
        assert!(e.to_string().contains("no route"));
    }
}
