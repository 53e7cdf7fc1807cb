//! The one error type of `kv-estimator`. Every variant carries the data a user needs to fix the
//! input: which field, which value, and what was expected.

use thiserror::Error;

/// Everything that can go wrong in the estimator. No function of this crate panics; they return this.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The text is not JSON at all, or is truncated.
    #[error("config.json is not valid JSON (line {line}, column {column}): {message}")]
    Json { line: usize, column: usize, message: String },

    /// A field has the wrong JSON type (a string where a number belongs, ...).
    #[error("config.json field `{field}`: {message}")]
    FieldType { field: String, message: String },

    /// A field the architecture needs is absent and has no documented default.
    #[error("config.json has no `{field}` (needed for {needed_for}); model_type `{model_type}`")]
    MissingField { field: String, model_type: String, needed_for: String },

    /// A field is present but its value is impossible (zero layers, heads that do not divide, ...).
    #[error("config.json field `{field}` = {value}: expected {expected}")]
    InvalidValue { field: String, value: String, expected: String },

    /// The model is not a decoder-only generator the planner can size.
    #[error("model_type `{model_type}` is not supported: {reason}")]
    Unsupported { model_type: String, reason: String },

    /// A scenario input (CLI flag or permalink parameter) is invalid.
    #[error("scenario `{param}` = `{value}`: expected {expected}")]
    Scenario { param: String, value: String, expected: String },

    /// A byte count does not fit in 64 bits (only absurd inputs get here).
    #[error("arithmetic overflow computing {what}: the inputs are too large to be real")]
    Overflow { what: String },

    /// A measurement document does not follow the schema.
    #[error("measurement `{field}`: {message}")]
    Measurement { field: String, message: String },
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn overflow(what: impl Into<String>) -> Self {
        Error::Overflow { what: what.into() }
    }
    pub(crate) fn invalid(field: impl Into<String>, value: impl ToString, expected: impl Into<String>) -> Self {
        Error::InvalidValue { field: field.into(), value: value.to_string(), expected: expected.into() }
    }
    pub(crate) fn scenario(param: impl Into<String>, value: impl ToString, expected: impl Into<String>) -> Self {
        Error::Scenario { param: param.into(), value: value.to_string(), expected: expected.into() }
    }
}
