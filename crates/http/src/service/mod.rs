//! Calls between service groups: the short-lived credential a caller signs and a callee verifies
//! (`credential`), the network client behind a context's API trait (`client`, with its deadline,
//! retries, retry budget and circuit breaker per upstream instance), and the wire shape of an
//! internal route's failure (`Failure`), which the client turns back into the callee's error.
//!
//! Internal routes live under `/internal/`; the gateway never routes them, and `guard` refuses a
//! call without a valid credential.

mod client;
mod credential;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emporium_kernel::{DomainError, ErrorKind, FieldError};
use serde::{Deserialize, Serialize};

pub use client::{CallError, ClientOptions, ServiceClient, Upstreams};
pub use credential::{CREDENTIAL_HEADER, MIN_SECRET_BYTES, ServiceCredentials, guard};
pub use emporium_kernel::breaker::{Breaker, BreakerState};

/// The path prefix of every route that only other services may call.
pub const INTERNAL_PREFIX: &str = "/internal/";

/// A callee's refusal as it crosses the wire: the error's stable code, its detail, the invalid
/// fields and whatever data the caller needs to rebuild the error (the lines out of stock).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
    /// The status it travels with (not sent in the body).
    #[serde(skip)]
    pub status: u16,
}

impl Failure {
    /// The failure of `error`, with `data` for the caller to rebuild it. Internal and
    /// unavailable failures are logged here, as a public route's would be.
    pub fn of<E: DomainError>(error: &E, data: serde_json::Value) -> Self {
        let (kind, code) = error.kind_and_code();
        if matches!(kind, ErrorKind::Internal | ErrorKind::Unavailable) {
            tracing::error!(code, error = %error, "internal call failed");
        }
        Self {
            code: code.to_owned(),
            detail: error.to_string(),
            errors: error.violations().to_vec(),
            data,
            status: crate::status_of(kind).as_u16(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::PROBLEM_JSON),
        );
        response
    }
}
