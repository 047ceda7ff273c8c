//! The answers the gateway makes itself: RFC 9457 `application/problem+json` bodies.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode, header};

use crate::ProxyBody;

/// A failure the gateway answers itself, with its stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    RouteNotFound,
    RateLimited(Duration),
    Overloaded,
    UpstreamUnavailable,
    UpstreamTimeout,
    BodyTooLarge,
    BadRequest,
}

impl Problem {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest => StatusCode::BAD_REQUEST,
        }
    }

    fn code_title_detail(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::RouteNotFound => ("not_found", "Not found", "no route serves this path"),
            Self::RateLimited(_) => (
                "rate_limited",
                "Too many requests",
                "the request rate is over the limit; retry after the given time",
            ),
            Self::Overloaded => (
                "overloaded",
                "Service overloaded",
                "the gateway is at capacity; retry after the given time",
            ),
            Self::UpstreamUnavailable => (
                "upstream_unavailable",
                "Upstream unavailable",
                "no healthy instance could answer the request",
            ),
            Self::UpstreamTimeout => (
                "upstream_timeout",
                "Upstream timeout",
                "the upstream did not answer within the route's deadline",
            ),
            Self::BodyTooLarge => (
                "body_too_large",
                "Request body too large",
                "the request body is larger than the gateway buffers",
            ),
            Self::BadRequest => (
                "body_unreadable",
                "Bad request",
                "the request body could not be read",
            ),
        }
    }

    /// The answer: problem+json, with `Retry-After` where the client should come back.
    pub(crate) fn response(&self, request_id: &str) -> Response<ProxyBody> {
        let (code, title, detail) = self.code_title_detail();
        let status = self.status();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": status.as_u16(),
            "code": code,
            "detail": detail,
            "request_id": request_id,
        });
        let mut response = Response::new(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if let Ok(v) = header::HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", v);
        }
        let retry_after = match self {
            Self::RateLimited(wait) => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            Self::Overloaded => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}
