//! Stale answers when a group is down (the `stale-if-error` of RFC 5861, kept by the gateway):
//! on a route with `stale_if_error_secs`, the last successful answer to each anonymous `GET`
//! is kept, and while no instance answers (none known or reachable, a timeout, a 5xx) that
//! answer is served instead of the error, with `Age` and an RFC 9211 `Cache-Status` that says it
//! is stale. Only answers every shopper may see are kept: none to a request with
//! `Authorization` or `Cookie`, none marked `private` or `no-store`, none with `Set-Cookie`,
//! none larger than [`MAX_BODY`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::ProxyBody;
use crate::config::RouteConfig;

/// The largest answer body kept.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// One kept answer.
#[derive(Clone)]
struct Kept {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

/// The kept answers, bounded by bytes.
pub(crate) struct StaleAnswers {
    kept: moka::sync::Cache<String, Kept>,
}

impl StaleAnswers {
    /// Keeps at most `max_bytes` of answers.
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            kept: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, kept: &Kept| {
                    let size = key.len() + kept.body.len() + 64 * kept.headers.len();
                    u32::try_from(size).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// The key under which `request`'s answer is kept on `route`, when it may be.
    pub(crate) fn key_of<B>(route: &RouteConfig, request: &Request<B>) -> Option<String> {
        if route.stale_if_error_secs == 0 || request.method() != Method::GET {
            return None;
        }
        let headers = request.headers();
        if headers.contains_key(header::AUTHORIZATION) || headers.contains_key(header::COOKIE) {
            return None;
        }
        // The encoding is part of the key: a gzip answer is not kept for a client that asked
        // for none.
        let encoding = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        Some(format!("{encoding}\n{target}"))
    }

    /// Passes `response` on, keeping a copy under `key` when it is a shared success small
    /// enough; a body found too large on the way is passed on whole, unkept.
    pub(crate) async fn keep(
        &self,
        key: String,
        response: Response<ProxyBody>,
    ) -> Response<ProxyBody> {
        if response.status() != StatusCode::OK || !shareable(response.headers()) {
            return response;
        }
        let (parts, mut body) = response.into_parts();
        let mut read: Vec<Bytes> = Vec::new();
        let mut size = 0;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        size += data.len();
                        read.push(data);
                        if size > MAX_BODY {
                            // Too large to keep: what was read, then the rest as it comes.
                            let head = futures_util::stream::iter(
                                read.into_iter()
                                    .map(|d| Ok::<_, hyper::Error>(hyper::body::Frame::data(d))),
                            );
                            let rest = http_body_util::BodyStream::new(body);
                            let stream = futures_util::StreamExt::chain(head, rest);
                            return Response::from_parts(
                                parts,
                                http_body_util::StreamBody::new(stream).boxed(),
                            );
                        }
                    }
                    // Trailers: not kept, and the answer goes on without them.
                    Err(_) => break,
                },
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "an upstream answer broke off; not kept");
                    return Response::from_parts(parts, error_body(e));
                }
                None => break,
            }
        }
        let mut whole = bytes::BytesMut::with_capacity(size);
        for data in read {
            whole.extend_from_slice(&data);
        }
        let body = whole.freeze();
        self.kept.insert(
            key,
            Kept {
                status: parts.status,
                headers: parts.headers.clone(),
                body: body.clone(),
                at: Instant::now(),
            },
        );
        Response::from_parts(parts, full(body))
    }

    /// The answer kept under `key`, when it is at most `max_age` old, marked stale.
    pub(crate) fn stale(&self, key: &str, max_age: Duration) -> Option<Response<ProxyBody>> {
        let kept = self.kept.get(key)?;
        let age = kept.at.elapsed();
        if age > max_age {
            return None;
        }
        metrics::counter!("emporium_gateway_stale_answers_total").increment(1);
        let mut response = Response::new(full(kept.body));
        *response.status_mut() = kept.status;
        *response.headers_mut() = kept.headers;
        let headers = response.headers_mut();
        headers.remove("x-request-id");
        headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
        headers.insert(
            "cache-status",
            HeaderValue::from_static(
                "emporium-gateway; hit; detail=\"stale: the upstream group does not answer\"",
            ),
        );
        Some(response)
    }
}

/// True when an answer may be shown to every shopper.
fn shareable(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::SET_COOKIE) {
        return false;
    }
    !headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .any(|d| d == "private" || d == "no-store" || d.starts_with("private="))
}

fn full(body: Bytes) -> ProxyBody {
    Full::new(body).map_err(|never| match never {}).boxed()
}

/// A body that fails at once with `e`, so the client sees the answer break off as it did.
fn error_body(e: hyper::Error) -> ProxyBody {
    let stream = futures_util::stream::iter([Err::<hyper::body::Frame<Bytes>, _>(e)]);
    http_body_util::StreamBody::new(stream).boxed()
}
