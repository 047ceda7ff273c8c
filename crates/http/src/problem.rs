//! RFC 9457 problem details: the only place an error kind becomes an HTTP status.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emporium_kernel::{DomainError, ErrorKind, FieldError};
use serde::Serialize;

/// The body of every error response (`application/problem+json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:problem:emporium:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Stable machine-readable code; never changes meaning once published.
    pub code: String,
    /// What went wrong in this case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request id, to quote when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Every invalid field, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Option<String>,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A problem with an explicit status; for conditions of HTTP itself (413, 415, 405, …).
    pub fn with_status(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            detail: Some(detail.into()),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// A problem of `kind` with `code`.
    pub fn new(kind: ErrorKind, code: &'static str, detail: impl Into<String>) -> Self {
        Self::with_status(status_of(kind), code, detail)
    }

    /// 422 `validation_failed` listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: Cow::Borrowed("validation_failed"),
            detail: Some("the request has invalid fields".to_owned()),
            errors,
            retry_after: None,
        }
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", detail)
    }

    /// 500 `internal`; the detail stays in the log, never in the response.
    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "internal",
            "an unexpected error occurred",
        )
    }

    /// Sets `Retry-After` (seconds).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The field violations, for validation problems.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }
}

/// The one mapping from error kind to HTTP status.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl<E: DomainError> From<E> for ApiError {
    fn from(error: E) -> Self {
        let (kind, code) = error.kind_and_code();
        if kind == ErrorKind::Internal || kind == ErrorKind::Unavailable {
            // Logged once, here, with the whole cause chain; the client sees only the code.
            let mut chain = error.to_string();
            let mut source = error.source();
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(code, error = %chain, "request failed");
        }
        let detail = match kind {
            ErrorKind::Internal => "an unexpected error occurred".to_owned(),
            ErrorKind::Unavailable => "a dependency is unavailable; retry later".to_owned(),
            _ => error.to_string(),
        };
        let mut api = Self::new(kind, code, detail);
        api.errors = error.violations().to_vec();
        api.retry_after = error.retry_after_secs();
        api
    }
}

fn title_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Request is malformed",
        401 => "Authentication required",
        403 => "Not allowed",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "Conflict with current state",
        412 => "Precondition failed",
        413 => "Request body too large",
        415 => "Unsupported media type",
        422 => "Request is invalid",
        429 => "Too many requests",
        503 => "Service unavailable",
        _ => "Internal error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            problem_type: format!("urn:problem:emporium:{}", self.code),
            title: title_of(self.status).to_owned(),
            status: self.status.as_u16(),
            code: self.code.into_owned(),
            detail: self.detail,
            request_id: emporium_kernel::trace::request_id(),
            errors: self.errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::PROBLEM_JSON),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if matches!(problem.code.as_str(), "token_invalid" | "token_revoked") {
                r#"Bearer realm="emporium", error="invalid_token""#
            } else {
                r#"Bearer realm="emporium""#
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
