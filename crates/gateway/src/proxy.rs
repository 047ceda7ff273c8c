//! One request through the gateway: its own endpoints, the `/internal` refusal, routing, rate
//! limits, load shedding, header rewriting, then attempts on instances with a deadline, retries
//! for idempotent methods on another instance, breaker and ejection bookkeeping, and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::Semaphore;
use tower::retry::budget::{Budget, TpsBudget};

use crate::ProxyBody;
use crate::config::GatewayConfig;
use crate::limit::{RateLimiter, Verdict, client_key};
use crate::meter::{Outcome, RouteMeter};
use crate::problem::Problem;
use crate::stale::StaleAnswers;
use crate::table::{Group, Table, cookie, is_internal, stable_hash};
use crate::upstream::{Admission, OutstandingGuard, Upstream};

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Everything a request needs that a reload replaces at once.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) table: Table,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) shed: Arc<Semaphore>,
    pub(crate) budget: Arc<TpsBudget>,
    /// The document `GET /openapi.json` answers with, from `openapi_file`.
    pub(crate) openapi: Option<Bytes>,
}

impl State {
    /// The state of `config`, keeping from `previous` whatever the change leaves alone
    /// (instance state, limiter budgets, the in-flight bound, the retry budget).
    pub(crate) fn build(config: GatewayConfig, previous: Option<&State>) -> Self {
        let table = Table::build(&config, previous.map(|p| &p.table));
        let limiter = match previous {
            Some(p) if *p.limiter.config() == config.rate_limit => p.limiter.clone(),
            _ => Arc::new(RateLimiter::new(&config.rate_limit)),
        };
        let shed = match previous {
            Some(p) if p.config.limits.max_in_flight == config.limits.max_in_flight => {
                p.shed.clone()
            }
            _ => Arc::new(Semaphore::new(config.limits.max_in_flight)),
        };
        let budget = match previous {
            Some(p) if p.config.retry_budget == config.retry_budget => p.budget.clone(),
            _ => Arc::new(TpsBudget::new(
                Duration::from_millis(config.retry_budget.window_ms),
                config.retry_budget.min_per_sec,
                config.retry_budget.retry_percent,
            )),
        };
        let openapi = config
            .openapi_file
            .as_ref()
            .and_then(|file| std::fs::read(file).ok())
            .map(Bytes::from);
        Self {
            config: Arc::new(config),
            table,
            limiter,
            shed,
            budget,
            openapi,
        }
    }
}

/// What the connections share.
pub(crate) struct Shared {
    pub(crate) state: ArcSwap<State>,
    pub(crate) client: Client<HttpConnector, ProxyBody>,
    /// The answers kept for routes that serve stale ones when their group is down.
    pub(crate) stale: StaleAnswers,
    // Serialises writers of `state` (reload, set_instances); readers never wait.
    pub(crate) write: tokio::sync::Mutex<()>,
}

/// The pooled keep-alive client to the upstreams.
pub(crate) fn client() -> Client<HttpConnector, ProxyBody> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Headers meaningful to one connection only (RFC 9110 section 7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Fills `out` with random lowercase hex digits.
fn random_hex(out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for pair in out.chunks_mut(2) {
        let b = fastrand::u8(..);
        pair[0] = DIGITS[usize::from(b >> 4)];
        if let Some(low) = pair.get_mut(1) {
            *low = DIGITS[usize::from(b & 0x0f)];
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The `traceparent` to send upstream: the caller's trace with a new span id for this hop, or a
/// new trace when the caller sent none or an invalid one (W3C Trace Context).
pub(crate) fn next_traceparent(incoming: Option<&HeaderValue>) -> HeaderValue {
    let parsed = incoming.and_then(|v| v.to_str().ok()).and_then(|v| {
        let mut parts = v.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = is_hex(version, 2)
            && version != "ff"
            && (version != "00" || parts.next().is_none())
            && is_hex(trace, 32)
            && trace.bytes().any(|b| b != b'0')
            && is_hex(parent, 16)
            && parent.bytes().any(|b| b != b'0')
            && is_hex(flags, 2);
        valid.then_some((trace, flags))
    });
    // 00-<trace: 32>-<span: 16>-<flags: 2>
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    match parsed {
        Some((trace, flags)) => {
            out[3..35].copy_from_slice(trace.as_bytes());
            out[53..55].copy_from_slice(flags.as_bytes());
        }
        None => random_hex(&mut out[3..35]),
    }
    while out[36..52].iter().all(|b| *b == b'0') {
        random_hex(&mut out[36..52]);
    }
    HeaderValue::from_bytes(&out).expect("hex digits and dashes make a header value")
}

/// The metrics of requests no route serves.
static UNMATCHED: RouteMeter = RouteMeter::new();

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Answers one request (never fails: every failure is a problem+json answer).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    peer: SocketAddr,
    https: bool,
) -> Response<ProxyBody> {
    let started = Instant::now();
    if request.method() == Method::GET {
        match request.uri().path() {
            "/gateway/healthz" => return text(StatusCode::OK, "text/plain", "ok\n".to_owned()),
            "/gateway/metrics" => {
                let body = emporium_http::metrics::handle()
                    .map(|h| h.render())
                    .unwrap_or_default();
                return text(StatusCode::OK, "text/plain; version=0.0.4", body);
            }
            _ => {}
        }
    }
    let request_id = request_id(request.headers());
    let state = shared.state.load_full();
    if let (&Method::GET, "/openapi.json", Some(document)) =
        (request.method(), request.uri().path(), &state.openapi)
    {
        let mut response = Response::new(
            Full::new(document.clone())
                .map_err(|never| match never {})
                .boxed(),
        );
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }
    // The gateway's own paths and the services' internal ones are never proxied.
    let path = request.uri().path();
    let route = if is_internal(path) || path.starts_with("/gateway/") {
        None
    } else {
        state.table.route(path).cloned()
    };
    let Some(route) = route else {
        UNMATCHED.record(
            "unmatched",
            "none",
            StatusCode::NOT_FOUND,
            started.elapsed(),
        );
        return Problem::RouteNotFound.response(id_str(&request_id));
    };
    let response = match admit_and_forward(
        &shared,
        &state,
        &route.config,
        request,
        peer,
        https,
        &request_id,
    )
    .await
    {
        Ok(response) => response,
        Err(problem) => problem.response(id_str(&request_id)),
    };
    route.meter.record(
        &route.config.prefix,
        &route.config.group,
        response.status(),
        started.elapsed(),
    );
    response
}

/// The request's id: the caller's `x-request-id` when it is printable and at most 200 bytes,
/// else a new UUIDv7.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(X_REQUEST_ID)
        && v.to_str().is_ok_and(|s| !s.is_empty() && s.len() <= 200)
    {
        return v.clone();
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).expect("a UUID makes a header value")
}

/// A request id as text (it was checked to be printable when it was taken).
fn id_str(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or_default()
}

/// Rate limits and shedding, then the forwarding.
async fn admit_and_forward(
    shared: &Shared,
    state: &State,
    route: &crate::config::RouteConfig,
    request: Request<Incoming>,
    peer: SocketAddr,
    https: bool,
    request_id: &HeaderValue,
) -> Result<Response<ProxyBody>, Problem> {
    if !state.limiter.is_off() {
        let client = client_key(request.headers(), peer.ip());
        // Boxed: the check may go to Redis, whose future is large, and a future held across an
        // await makes every request's future that large.
        if let Verdict::Limited { scope, retry_after } =
            Box::pin(state.limiter.check(&client)).await
        {
            metrics::counter!("emporium_gateway_rate_limited_total", "scope" => scope).increment(1);
            return Err(Problem::RateLimited(retry_after));
        }
    }
    let queue = Duration::from_millis(state.config.limits.max_queue_ms);
    let permit = match state.shed.clone().try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) if queue.is_zero() => None,
        Err(_) => Box::pin(tokio::time::timeout(
            queue,
            state.shed.clone().acquire_owned(),
        ))
        .await
        .ok()
        .and_then(Result::ok),
    };
    let Some(permit) = permit else {
        metrics::counter!("emporium_gateway_shed_total").increment(1);
        return Err(Problem::Overloaded);
    };
    let stale_key = StaleAnswers::key_of(route, &request);
    let forwarded = match state.table.groups.get(&route.group).cloned() {
        Some(group) => {
            forward(
                shared, state, route, &group, request, peer, https, request_id,
            )
            .await
        }
        None => Err(Problem::UpstreamUnavailable),
    };
    // The instance counts the request as outstanding, and the shedding slot stays taken,
    // until the answer's body is sent: a streaming answer is in flight.
    let forwarded = forwarded.map(|(response, outstanding)| {
        response.map(|inner| {
            Held {
                inner,
                _held: (outstanding, permit),
            }
            .boxed()
        })
    });
    let Some(key) = stale_key else {
        return forwarded;
    };
    // On a route that keeps answers: a success is kept, a failure of the group replaced by
    // the last success when there is one young enough.
    let stale_for = Duration::from_secs(route.stale_if_error_secs);
    match forwarded {
        Ok(response) if response.status().is_server_error() => {
            Ok(shared.stale.stale(&key, stale_for).unwrap_or(response))
        }
        // Boxed, as the rare paths are: reading a body whole makes a large future.
        Ok(response) => Ok(Box::pin(shared.stale.keep(key, response)).await),
        Err(problem @ (Problem::UpstreamUnavailable | Problem::UpstreamTimeout)) => {
            shared.stale.stale(&key, stale_for).ok_or(problem)
        }
        Err(problem) => Err(problem),
    }
}

/// A body that keeps something alive (a shedding slot, an outstanding count) until it is
/// sent to the end or dropped.
struct Held<T> {
    inner: Incoming,
    _held: T,
}

impl<T: Unpin> hyper::body::Body for Held<T> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request's hash key for affinity, if the route hashes and the request carries one.
fn hash_key(route: &crate::config::RouteConfig, headers: &HeaderMap) -> Option<u64> {
    let hash_on = route.hash_on.as_deref()?;
    let value = match hash_on.strip_prefix("cookie:") {
        Some(name) => cookie(headers, name)?.as_bytes(),
        None => headers.get(hash_on)?.as_bytes(),
    };
    Some(stable_hash(value))
}

/// Rewrites the request's headers for the upstream.
fn rewrite_headers(
    headers: &mut HeaderMap,
    authority: Option<&str>,
    peer: SocketAddr,
    https: bool,
    request_id: &HeaderValue,
) {
    strip_hop_by_hop(headers);
    let traceparent = next_traceparent(headers.get(TRACEPARENT));
    headers.insert(TRACEPARENT, traceparent);
    headers.insert(X_REQUEST_ID, request_id.clone());
    let forwarded_for = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(previous) => HeaderValue::from_str(&format!("{previous}, {}", peer.ip())),
        None => HeaderValue::try_from(peer.ip().to_string()),
    };
    if let Ok(v) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    // The upstream's own authority goes in Host (the client sets it from the URI); the
    // client's is kept for links the upstream renders.
    match headers.remove(header::HOST) {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host);
        }
        None => {
            // HTTP/2 carries the host in the `:authority` pseudo-header, i.e. the URI.
            if let Some(v) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
                headers.insert(X_FORWARDED_HOST, v);
            }
        }
    }
}

/// How one attempt ended.
enum Attempt {
    /// The answer's head; the instance counts the request as outstanding until its body ends.
    Answered(Response<Incoming>, OutstandingGuard),
    Failed,
    TimedOut,
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    shared: &Shared,
    state: &State,
    route: &crate::config::RouteConfig,
    group: &Group,
    request: Request<Incoming>,
    peer: SocketAddr,
    https: bool,
    request_id: &HeaderValue,
) -> Result<(Response<Incoming>, OutstandingGuard), Problem> {
    let deadline = Instant::now() + Duration::from_millis(route.timeout_ms);
    let (mut parts, body) = request.into_parts();
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
    rewrite_headers(
        &mut parts.headers,
        authority.as_deref(),
        peer,
        https,
        request_id,
    );
    let idempotent = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let retries = if idempotent { route.retries } else { 0 };
    // A request that may be sent twice is buffered; others stream through once.
    let mut body = if retries > 0 && hyper::body::Body::is_end_stream(&body) {
        BodyKind::Buffered(Bytes::new())
    } else if retries > 0 {
        let limit = state.config.limits.max_buffered_body_bytes;
        match Box::pin(Limited::new(body, limit).collect()).await {
            Ok(collected) => BodyKind::Buffered(collected.to_bytes()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Err(Problem::BodyTooLarge);
            }
            Err(_) => return Err(Problem::BadRequest),
        }
    } else {
        BodyKind::Streaming(Some(body))
    };
    let version = group.choose_version(&parts.headers);
    let key = hash_key(route, &parts.headers);
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    state.budget.deposit();
    let mut tried: Vec<Arc<Upstream>> = Vec::new();
    let mut attempts = 0;
    // An upstream's failure answer that a retry may still replace.
    let mut last_answer: Option<(Response<Incoming>, OutstandingGuard)> = None;
    while attempts <= retries {
        let now = Instant::now();
        let Some(upstream) = group.pick(route.balance, key, version.as_deref(), &tried, now) else {
            break;
        };
        tried.push(upstream.clone());
        let admission = upstream.admit(now);
        if admission == Admission::Refused {
            continue;
        }
        if attempts > 0 && !state.budget.withdraw() {
            if admission == Admission::Probe {
                upstream.release_probe();
            }
            tracing::debug!(group = %group.name, "retry budget spent");
            break;
        }
        // Gives the probe back if this attempt ends without an outcome (the client left).
        let probe = ProbeGuard {
            upstream: &upstream,
            armed: admission == Admission::Probe,
        };
        let Some(outgoing_body) = body.take() else {
            break;
        };
        attempts += 1;
        let mut outgoing = Request::from_parts(parts.clone(), outgoing_body);
        *outgoing.version_mut() = Version::HTTP_11;
        *outgoing.uri_mut() = upstream_uri(&upstream.base, path_and_query.clone())?;
        let outcome = attempt(shared, &upstream, outgoing, deadline).await;
        let label = match &outcome {
            Attempt::Answered(r, _) if r.status().is_server_error() => Outcome::ErrorStatus,
            Attempt::Answered(..) => Outcome::Success,
            Attempt::Failed => Outcome::ConnectError,
            Attempt::TimedOut => Outcome::Timeout,
        };
        let success = label == Outcome::Success;
        upstream
            .attempts
            .record(&group.name, &upstream.instance.url, label);
        let size = group.upstreams.len();
        let max_percent = state.config.outlier.max_ejection_percent as usize;
        upstream.record(
            success,
            admission,
            &state.config.breaker,
            &state.config.outlier,
            || (group.ejected_count() + 1) * 100 <= size * max_percent,
        );
        probe.disarm();
        match outcome {
            Attempt::Answered(response, outstanding) => {
                let retryable = matches!(
                    response.status(),
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                );
                if !(retryable && attempts <= retries && body.can_resend()) {
                    return Ok(answer(response, outstanding, request_id));
                }
                tracing::debug!(group = %group.name, upstream = %upstream.instance.url,
                    status = response.status().as_u16(), "retrying on another instance");
                last_answer = Some((response, outstanding));
            }
            Attempt::Failed => {
                tracing::warn!(group = %group.name, upstream = %upstream.instance.url,
                    request_id = id_str(request_id), "upstream request failed");
            }
            Attempt::TimedOut => return Err(Problem::UpstreamTimeout),
        }
        if Instant::now() >= deadline {
            return Err(Problem::UpstreamTimeout);
        }
    }
    match last_answer {
        Some((response, outstanding)) => Ok(answer(response, outstanding, request_id)),
        None => Err(Problem::UpstreamUnavailable),
    }
}

/// Releases an admitted half-open probe whose attempt never recorded an outcome (the client
/// left, the request could not be built), so the breaker cannot stay half-open for good.
struct ProbeGuard<'a> {
    upstream: &'a Upstream,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.upstream.release_probe();
        }
    }
}

/// The request body, kept for a resend or handed out once.
enum BodyKind {
    Buffered(Bytes),
    Streaming(Option<Incoming>),
}

impl BodyKind {
    fn take(&mut self) -> Option<ProxyBody> {
        match self {
            Self::Buffered(bytes) => Some(
                Full::new(bytes.clone())
                    .map_err(|never| match never {})
                    .boxed(),
            ),
            Self::Streaming(body) => body.take().map(BodyExt::boxed),
        }
    }

    fn can_resend(&self) -> bool {
        matches!(self, Self::Buffered(_))
    }
}

fn upstream_uri(base: &Uri, path_and_query: PathAndQuery) -> Result<Uri, Problem> {
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|_| Problem::BadRequest)
}

async fn attempt(
    shared: &Shared,
    upstream: &Arc<Upstream>,
    request: Request<ProxyBody>,
    deadline: Instant,
) -> Attempt {
    let outstanding = upstream.begin();
    match tokio::time::timeout_at(deadline.into(), shared.client.request(request)).await {
        Ok(Ok(response)) => Attempt::Answered(response, outstanding),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, upstream = %upstream.instance.url, "upstream attempt failed");
            Attempt::Failed
        }
        Err(_) => Attempt::TimedOut,
    }
}

/// The upstream's answer, minus hop-by-hop headers, with the request id.
fn answer(
    mut response: Response<Incoming>,
    outstanding: OutstandingGuard,
    request_id: &HeaderValue,
) -> (Response<Incoming>, OutstandingGuard) {
    let headers = response.headers_mut();
    strip_hop_by_hop(headers);
    if !headers.contains_key(X_REQUEST_ID) {
        headers.insert(X_REQUEST_ID, request_id.clone());
    }
    (response, outstanding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_keeps_its_trace_and_gets_a_new_span() {
        let incoming =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let next = next_traceparent(Some(&incoming));
        let next = next.to_str().unwrap();
        assert!(
            next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{next}"
        );
        assert!(next.ends_with("-01"));
        assert_ne!(&next[36..52], "00f067aa0ba902b7");
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            let next = next_traceparent(Some(&HeaderValue::from_static(bad)));
            let next = next.to_str().unwrap();
            assert_eq!(next.len(), 55, "{next}");
            assert!(
                !next.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
                "{bad} -> {next}"
            );
            assert!(next.starts_with("00-") && next.ends_with("-01"));
        }
        assert_eq!(next_traceparent(None).len(), 55);
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
