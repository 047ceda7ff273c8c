//! The closed set of error kinds, the stable codes beside them, and field-level violations.
//!
//! Contexts never name an HTTP status: they say what kind of failure happened and give it a stable
//! snake_case code. Only the `http` crate turns a kind into a status.

use serde::Serialize;

/// What kind of failure an error is; decides the HTTP status in one place (`emporium-http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (syntax); 400.
    BadRequest,
    /// The request is well-formed but its data breaks a rule; 422.
    Invalid,
    /// No credentials, or bad ones; 401.
    Unauthenticated,
    /// Authenticated but not allowed; 403.
    Forbidden,
    /// The thing does not exist (or the caller may not know it does); 404.
    NotFound,
    /// The request conflicts with the current state; 409.
    Conflict,
    /// A payment was refused (declined card, insufficient funds); 402.
    PaymentRequired,
    /// A conditional request's precondition (`If-Match`) does not hold; 412.
    PreconditionFailed,
    /// Too many requests; 429.
    RateLimited,
    /// A dependency is down or the process is shutting down; 503.
    Unavailable,
    /// A bug or an unexpected infrastructure failure; 500.
    Internal,
}

/// An error a context returns: it knows its kind and its stable code.
pub trait DomainError: std::error::Error {
    /// The kind (decides the status) and the stable code (never changes meaning once published).
    fn kind_and_code(&self) -> (ErrorKind, &'static str);

    /// Field-level violations, for validation errors.
    fn violations(&self) -> &[FieldError] {
        &[]
    }

    /// Seconds the client should wait before retrying, for rate limits.
    fn retry_after_secs(&self) -> Option<u64> {
        None
    }
}

/// One invalid field: where (a JSON Pointer into the request), a stable code and a human detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the field, e.g. `/email`.
    pub pointer: String,
    /// Stable code: `required`, `too_short`, `too_long`, `invalid_format`, `unknown_field`, ….
    pub code: String,
    /// Human-readable explanation.
    pub detail: String,
}

impl FieldError {
    /// A violation at `pointer` with `code` and `detail`.
    pub fn new(pointer: impl Into<String>, code: &str, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            code: code.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Collects every violation of a request so the client learns all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one violation.
    pub fn push(&mut self, pointer: impl Into<String>, code: &str, detail: impl Into<String>) {
        self.0.push(FieldError::new(pointer, code, detail));
    }

    /// Records the error of a parse, if any, and returns the parsed value.
    pub fn check<T>(&mut self, pointer: &str, parsed: Result<T, FieldError>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(mut e) => {
                e.pointer = pointer.to_owned();
                self.0.push(e);
                None
            }
        }
    }

    /// `Ok(())` when nothing was recorded, else every violation.
    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}
