//! Real upstream servers on loopback ports, a gateway in front of them, and a plain client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_gateway::{
    Balance, GatewayConfig, Instance, RouteConfig, RunningGateway, UpstreamConfig,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How an upstream answers.
pub const OK: u8 = 0;
/// Answers 500 to everything but health checks.
pub const FAIL_500: u8 = 1;
/// Answers 503 to everything, health checks included.
pub const FAIL_503: u8 = 2;
/// Holds every request until released.
pub const HOLD: u8 = 3;

/// A real HTTP server on a loopback port that counts what it serves.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    /// Requests other than health checks that reached it.
    pub hits: Arc<AtomicUsize>,
    /// Requests currently held (mode HOLD).
    pub held: Arc<AtomicUsize>,
    pub mode: Arc<AtomicU8>,
    pub release: Arc<Notify>,
    /// Headers of the last request other than a health check.
    pub last_headers: Arc<Mutex<HeaderMap>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().expect("addr")).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr) -> Self {
        let mut upstream = Self {
            name: name.to_owned(),
            addr,
            hits: Arc::default(),
            held: Arc::default(),
            mode: Arc::default(),
            release: Arc::default(),
            last_headers: Arc::default(),
            task: None,
        };
        upstream.listen(addr).await;
        upstream
    }

    async fn listen(&mut self, addr: SocketAddr) {
        let listener = TcpListener::bind(addr).await.expect("bind upstream");
        self.addr = listener.local_addr().expect("addr");
        let (name, hits, held, mode, release, last) = (
            self.name.clone(),
            self.hits.clone(),
            self.held.clone(),
            self.mode.clone(),
            self.release.clone(),
            self.last_headers.clone(),
        );
        // Connections live in the accept task's set, so aborting the task closes them all.
        self.task = Some(tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (name, hits, held, mode, release, last) = (
                    name.clone(),
                    hits.clone(),
                    held.clone(),
                    mode.clone(),
                    release.clone(),
                    last.clone(),
                );
                connections.spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (name, hits, held, mode, release, last) = (
                            name.clone(),
                            hits.clone(),
                            held.clone(),
                            mode.clone(),
                            release.clone(),
                            last.clone(),
                        );
                        async move {
                            let mode = mode.load(Ordering::SeqCst);
                            if req.uri().path() == "/readyz" {
                                let status = if mode == FAIL_503 {
                                    StatusCode::SERVICE_UNAVAILABLE
                                } else {
                                    StatusCode::OK
                                };
                                return Ok::<_, Infallible>(reply(status, "ready"));
                            }
                            *last.lock().expect("lock") = req.headers().clone();
                            let _ = req.into_body().collect().await;
                            let status = match mode {
                                FAIL_500 => StatusCode::INTERNAL_SERVER_ERROR,
                                FAIL_503 => StatusCode::SERVICE_UNAVAILABLE,
                                HOLD => {
                                    let notified = release.notified();
                                    tokio::pin!(notified);
                                    // Registered before counting, so a release after the count
                                    // reaches it.
                                    notified.as_mut().enable();
                                    held.fetch_add(1, Ordering::SeqCst);
                                    hits.fetch_add(1, Ordering::SeqCst);
                                    notified.await;
                                    held.fetch_sub(1, Ordering::SeqCst);
                                    return Ok(reply(StatusCode::OK, &name));
                                }
                                _ => StatusCode::OK,
                            };
                            hits.fetch_add(1, Ordering::SeqCst);
                            Ok(reply(status, &name))
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn instance(&self) -> Instance {
        Instance::new(self.url())
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Closes the listener and every open connection, like a killed process.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        let addr = self.addr;
        self.listen(addr).await;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r
}

/// A route of `prefix` to `group`.
pub fn route(prefix: &str, group: &str, balance: Balance) -> RouteConfig {
    RouteConfig {
        prefix: prefix.to_owned(),
        group: group.to_owned(),
        balance,
        hash_on: None,
        timeout_ms: 10_000,
        retries: 1,
        stale_if_error_secs: 0,
    }
}

/// A gateway config on port 0 with one route `/v1` to `group` over `upstreams`; health checks
/// every 50 ms.
pub fn config(group: &str, balance: Balance, upstreams: &[&Upstream]) -> GatewayConfig {
    let mut config = GatewayConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..GatewayConfig::default()
    };
    config.routes.push(route("/v1", group, balance));
    config.upstreams.insert(
        group.to_owned(),
        UpstreamConfig {
            instances: upstreams.iter().map(|u| u.instance()).collect(),
        },
    );
    config.health.interval_ms = 50;
    config.health.timeout_ms = 500;
    config
}

/// A running gateway that stops when dropped.
pub struct Gateway {
    pub running: RunningGateway,
    pub base: String,
    shutdown: CancellationToken,
}

impl Gateway {
    pub async fn start(config: GatewayConfig) -> Self {
        let shutdown = CancellationToken::new();
        let running = emporium_gateway::run(config, shutdown.clone())
            .await
            .expect("gateway starts");
        let base = format!("http://{}", running.local_addr());
        Self {
            running,
            base,
            shutdown,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("json body")
    }

    /// Asserts a problem+json answer with `status` and `code`.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let json = self.json();
        assert_eq!(json["code"], code, "{json}");
        assert_eq!(json["status"], status);
        assert_eq!(json["type"], "about:blank");
        assert!(json["title"].is_string() && json["detail"].is_string());
    }
}

/// A plain HTTP/1.1 client.
#[derive(Clone)]
pub struct TestClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TestClient {
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn send(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
        let mut builder = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(Bytes::new())).expect("request");
        let response = self.client.request(request).await.expect("gateway answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.send("GET", url, &[]).await
    }
}

/// Waits until `condition` holds, polling every 20 ms; panics with `what` after 10 s.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if condition().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts answers by body (the upstream's name) for `n` GETs of `url`.
pub async fn spread(
    client: &TestClient,
    url: &str,
    n: usize,
    headers: &[(&str, &str)],
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let answer = client.send("GET", url, headers).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        *counts.entry(answer.body).or_insert(0) += 1;
    }
    counts
}
