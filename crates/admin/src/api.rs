//! The UI's client of the store's HTTP API: JSON in and out with the staff user's bearer token,
//! and what a refusal means for a page (`Failure`).

use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

/// The API at one base URL.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) body: Value,
}

/// One bad field of a `validation_failed` problem.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FieldProblem {
    #[serde(default)]
    pub(crate) pointer: String,
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) detail: String,
}

/// An RFC 9457 problem the API answered with.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Problem {
    #[serde(default)]
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) detail: String,
    #[serde(default)]
    pub(crate) errors: Vec<FieldProblem>,
}

impl Problem {
    /// The message to show for the problem as a whole.
    pub(crate) fn message(&self) -> String {
        match (self.title.is_empty(), self.detail.is_empty()) {
            (false, false) => format!("{}: {}", self.title, self.detail),
            (false, true) => self.title.clone(),
            (true, false) => self.detail.clone(),
            (true, true) => format!("the store refused this ({})", self.code),
        }
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The token is no longer accepted (401): the session is over.
    SignedOut,
    /// The API's admin policy refused the caller (403).
    Forbidden,
    /// No such resource (404).
    NotFound,
    /// Any other refusal: invalid input, a conflict, a state that does not allow it.
    Refused(Problem),
    /// The API did not answer, or answered with something that is not a problem.
    Unavailable(String),
}

impl Api {
    /// A client of the API at `base`, each call bounded by `timeout`.
    pub(crate) fn new(base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The full URL of an API path (`/v1/…`, with its query).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to the API with the bearer `token`.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// A request without credentials (the token endpoint).
    pub(crate) fn anonymous(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Sends `request` and reads its answer.
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, Failure> {
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "the admin UI cannot reach the API");
            Failure::Unavailable("the store's API does not answer".to_owned())
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            tracing::warn!(error = %e, "the admin UI lost the API's answer");
            Failure::Unavailable("the store's API answer was cut short".to_owned())
        })?;
        if status.is_success() {
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            return Ok(Answer { body });
        }
        let mut problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
        problem.status = status.as_u16();
        Err(match status {
            StatusCode::UNAUTHORIZED => Failure::SignedOut,
            StatusCode::FORBIDDEN => Failure::Forbidden,
            StatusCode::NOT_FOUND => Failure::NotFound,
            s if s.is_server_error() => {
                Failure::Unavailable(format!("the store could not do this ({})", problem.code))
            }
            _ => Failure::Refused(problem),
        })
    }
}
