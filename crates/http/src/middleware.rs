//! The request pipeline every route shares: request id, W3C traceparent, a request span, a
//! timeout, RED metrics; and the problem answers for unknown routes, wrong methods and panics.

use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_kernel::ErrorKind;
use emporium_kernel::trace::RequestContext;
use tracing::Instrument;

use crate::ApiError;

/// The request id header, received or generated, always echoed.
pub const REQUEST_ID: &str = "x-request-id";
/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// Limits and trust settings of the request pipeline.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a request may take before it is answered 503 `request_timeout`.
    pub request_timeout: Duration,
    /// Peers (reverse proxies, the gateway) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpAddr]>,
}

/// The address of the client a request came from: the TCP peer, or, when the peer is a trusted
/// proxy, the nearest untrusted address in `X-Forwarded-For`. Absent when the server was not
/// started with connection info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Works out the client address from the peer and the forwarding header.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    // Each proxy appends the address it received from; walk back past our own proxies.
    let mut client = peer;
    if let Some(chain) = forwarded_for {
        for hop in chain.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted.contains(&ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client,
            }
        }
    }
    client
}

/// The route template a request matched, carried on the response for the outer middleware.
#[derive(Debug, Clone)]
struct RouteTemplate(String);

/// Route layer: copies the matched route template onto the response so metrics and logs use the
/// template, never the raw path.
pub async fn mark_route(req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut response = next.run(req).await;
    if let Some(t) = template {
        response.extensions_mut().insert(RouteTemplate(t));
    }
    response
}

/// Outer layer: request id, traceparent, span, timeout, metrics.
pub async fn request_context(
    State(limits): State<Limits>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let mut client = None;
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let addr = client_addr(peer.ip(), forwarded, &limits.trusted_proxies);
        req.extensions_mut().insert(ClientAddr(addr));
        client = Some(addr);
    }
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned);
    let trace_id = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_trace_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let traceparent = format!("00-{trace_id}-{span_id}-01");
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        %method,
        path = %req.uri().path(),
        request_id = %request_id,
        trace_id = %trace_id,
        span_id = %span_id,
        client = client.map(tracing::field::display),
    );
    let ctx = RequestContext {
        request_id: request_id.clone(),
        traceparent: Some(traceparent.clone()),
    };
    let mut response = emporium_kernel::trace::scope(ctx.clone(), async move {
        match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                ErrorKind::Unavailable,
                "request_timeout",
                "the request took too long and was abandoned",
            )
            .into_response(),
        }
    })
    .instrument(span.clone())
    .await;

    let elapsed = started.elapsed();
    let status = response.status();
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or("unmatched", |r| r.0.as_str())
        .to_owned();
    crate::metrics::record_request(method.as_str(), &route, status.as_u16(), elapsed);
    let _entered = span.enter();
    if status.is_server_error() {
        tracing::warn!(
            status = status.as_u16(),
            route,
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "request failed"
        );
    } else {
        tracing::debug!(
            status = status.as_u16(),
            route,
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "request finished"
        );
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&traceparent) {
        headers.insert(TRACEPARENT, v);
    }
    response
}

/// The trace id of a valid version-00 `traceparent`, else `None` (a new trace starts).
fn parse_trace_id(value: &str) -> Option<String> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_owned())
}

/// Fallback for unknown routes: 404 problem.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no route matches this path")
}

/// Fallback for a known path with the wrong method: 405 problem.
pub async fn method_not_allowed() -> ApiError {
    method_not_allowed_error()
}

/// The 405 problem of a known path asked with a method it does not serve (axum adds `Allow`).
pub fn method_not_allowed_error() -> ApiError {
    ApiError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not accept that method",
    )
}

/// Answer for a handler that panicked: 500 problem; the panic is logged.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    ApiError::internal().into_response()
}

#[cfg(test)]
mod tests {
    use super::{client_addr, parse_trace_id};

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // An untrusted peer cannot claim another address.
        assert_eq!(
            client_addr(ip("203.0.113.9"), Some("198.51.100.1"), &proxies),
            ip("203.0.113.9")
        );
        // Through our proxies, the nearest untrusted hop is the client; what the client itself
        // wrote to the left of it is ignored.
        assert_eq!(
            client_addr(
                ip("10.0.0.1"),
                Some("6.6.6.6, 198.51.100.1, 10.0.0.2"),
                &proxies
            ),
            ip("198.51.100.1")
        );
        assert_eq!(client_addr(ip("10.0.0.1"), None, &proxies), ip("10.0.0.1"));
        assert_eq!(
            client_addr(ip("10.0.0.1"), Some("garbage"), &proxies),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_valid_traceparent_keeps_its_trace_id() {
        assert_eq!(
            parse_trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn an_invalid_traceparent_is_ignored() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(parse_trace_id(bad), None, "{bad}");
        }
    }
}
