//! The one error type of `kv-hub`. Every variant carries what the client (or the operator, for
//! start-up errors) needs to fix the request, and renders as a JSON body
//! `{"error": "...", "field": ...}` with the matching status code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong in the service.
#[derive(Debug, Error)]
pub enum Error {
    /// No upload token is configured: uploads are switched off on this instance (403).
    #[error("uploads are disabled on this kv-hub: no upload token is configured; start it with KV_HUB_TOKENS=token1,token2 or --tokens-file FILE to enable them")]
    UploadsDisabled,

    /// The bearer token is missing, malformed or not one of the configured tokens (401).
    #[error("{reason}")]
    Unauthorized { reason: String },

    /// The request body is larger than the limit (413).
    #[error("the request body is larger than {limit} bytes (the limit of one measurement document)")]
    PayloadTooLarge { limit: usize },

    /// The body could not be read, is not UTF-8 or not JSON at all (400).
    #[error("{message}")]
    BadBody { message: String },

    /// The body is JSON but not a valid measurement document (422); `field` names the culprit.
    #[error("measurement `{field}`: {message}")]
    Invalid { field: String, message: String },

    /// A query or path parameter is malformed (400).
    #[error("parameter `{param}` = `{value}`: expected {expected}")]
    BadParam { param: String, value: String, expected: String },

    /// Nothing is stored under that id, or the route does not exist (404).
    #[error("{what} not found")]
    NotFound { what: String },

    /// SQLite failed (500).
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),

    /// The database file was written by a newer kv-hub (start-up).
    #[error("database {path}: schema version {found} is newer than this kv-hub understands ({supported}); upgrade kv-hub")]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },

    /// A file or directory could not be read or created (start-up, import).
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// A bug or a lost blocking task (500).
    #[error("internal error: {message}")]
    Internal { message: String },
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::UploadsDisabled => StatusCode::FORBIDDEN,
            Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BadBody { .. } | Error::BadParam { .. } => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Database(_) | Error::SchemaTooNew { .. } | Error::Io { .. } | Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The offending field or parameter, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::BadParam { param, .. } => Some(param),
            _ => None,
        }
    }

    /// A schema error from the estimator, as a 422 naming the field.
    pub fn from_measurement(e: kv_estimator::Error) -> Error {
        match e {
            kv_estimator::Error::Measurement { field, message } => Error::Invalid { field, message },
            other => Error::Invalid { field: "(document)".into(), message: other.to_string() },
        }
    }

    pub(crate) fn param(param: &str, value: &str, expected: &str) -> Error {
        Error::BadParam { param: param.into(), value: value.chars().take(100).collect(), expected: expected.into() }
    }

    pub(crate) fn internal(message: impl ToString) -> Error {
        Error::Internal { message: message.to_string() }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.to_string(), "field": self.field() });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
