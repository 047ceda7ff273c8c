//! `emporium-gateway`: Emporium's own load balancer and reverse proxy. It owns the listener
//! (HTTP/1.1 and HTTP/2, optional TLS), routing by path prefix to upstream groups, balancing
//! (round robin, least outstanding by power of two choices, consistent hashing), active health
//! checks, passive ejection, a breaker per instance, retries within a budget, rate limits, load
//! shedding, gray release, and the routing table's changes at run time.
//!
//! The gateway never routes `/internal` paths, and every answer it makes itself is
//! `application/problem+json`. It reads no file or variable of its own: the binary hands it a
//! typed [`GatewayConfig`].

mod config;
mod health;
mod limit;
mod meter;
mod problem;
mod proxy;
mod stale;
mod table;
mod tls;
mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{
    Balance, BreakerConfig, ConfigError, GatewayConfig, HealthConfig, Instance, LimitsConfig,
    OutlierConfig, RateLimitConfig, RegistryConfig, ReleaseConfig, RetryBudgetConfig, RouteConfig,
    TlsConfig, UpstreamConfig,
};
pub use tls::TlsError;
pub use upstream::{BreakerState, UpstreamStatus};

use crate::proxy::{Shared, State};

/// The body of every answer and every upstream request.
pub(crate) type ProxyBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A gateway that is serving; dropping it does not stop it (cancel the token given to [`run`]).
pub struct RunningGateway {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Binds `config.listen` and serves until `shutdown` is cancelled.
///
/// Fails when the configuration is invalid, the address cannot be bound or the TLS files
/// cannot be loaded.
pub async fn run(
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningGateway> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let tracker = TaskTracker::new();
    let tls = match &config.tls {
        Some(tls) => {
            let (acceptor, reload) = tls::acceptor(tls, shutdown.clone())?;
            tracker.spawn(reload);
            Some(acceptor)
        }
        None => None,
    };
    let shared = Arc::new(Shared {
        stale: stale::StaleAnswers::new(config.limits.stale_max_bytes),
        state: ArcSwap::from_pointee(State::build(config, None)),
        client: proxy::client(),
        write: tokio::sync::Mutex::new(()),
    });
    publish_initial_breakers(&shared);
    tracker.spawn(health::run(shared.clone(), shutdown.clone()));
    tracker.spawn(forget_idle_clients(shared.clone(), shutdown.clone()));
    tracker.spawn(serve(
        listener,
        shared.clone(),
        tls,
        shutdown,
        tracker.clone(),
    ));
    tracker.close();
    tracing::info!(address = %local_addr, "gateway listening");
    Ok(RunningGateway {
        local_addr,
        shared,
        tracker,
    })
}

fn publish_initial_breakers(shared: &Shared) {
    for group in shared.state.load().table.groups.values() {
        for upstream in &group.upstreams {
            upstream.publish_breaker(upstream.status().breaker);
        }
    }
}

async fn forget_idle_clients(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        shared.state.load().limiter.forget_idle_clients();
    }
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its request head is cut off (slowloris).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let max_connections = shared.state.load().config.limits.max_connections;
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let https = tls.is_some();
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(proxy::handle(shared, request, peer, https).await) }
            });
            let result = match tls {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "tls handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service).into_owned())
                        .await
                }
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service).into_owned())
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period");
    }
}

impl RunningGateway {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the instances of `group` (created if new) without dropping a request: requests
    /// under way finish on the table they started with, and instances that stay keep their
    /// health, ejection and breaker state.
    pub async fn set_instances(
        &self,
        group: &str,
        instances: Vec<Instance>,
    ) -> Result<(), ConfigError> {
        let _writer = self.shared.write.lock().await;
        let current = self.shared.state.load_full();
        let table = current.table.with_instances(group, &instances)?;
        self.shared.state.store(Arc::new(State {
            config: current.config.clone(),
            table,
            limiter: current.limiter.clone(),
            shed: current.shed.clone(),
            budget: current.budget.clone(),
            openapi: current.openapi.clone(),
        }));
        tracing::info!(
            group,
            instances = instances.len(),
            "upstream instances replaced"
        );
        Ok(())
    }

    /// Applies a new configuration (routes, upstreams, limits, checks, release weights) without
    /// dropping a request. `listen` and `tls` take effect only at the next start. Instances a
    /// registry set for a group that `config` does not list are kept.
    pub async fn reload(&self, config: GatewayConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let _writer = self.shared.write.lock().await;
        let current = self.shared.state.load_full();
        if config.listen != current.config.listen || config.tls != current.config.tls {
            tracing::warn!("listen and tls changes apply at the next start");
        }
        self.shared
            .state
            .store(Arc::new(State::build(config, Some(&current))));
        tracing::info!("gateway configuration reloaded");
        Ok(())
    }

    /// Every group a route names or instances are known for.
    pub fn groups(&self) -> Vec<String> {
        let state = self.shared.state.load();
        let mut groups: Vec<String> = state
            .config
            .routes
            .iter()
            .map(|r| r.group.clone())
            .chain(state.table.groups.keys().cloned())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// The state of each instance of `group` (empty for an unknown group).
    pub fn upstream_status(&self, group: &str) -> Vec<UpstreamStatus> {
        self.shared
            .state
            .load()
            .table
            .groups
            .get(group)
            .map(|g| g.upstreams.iter().map(|u| u.status()).collect())
            .unwrap_or_default()
    }

    /// Waits until the gateway has stopped (after the shutdown token is cancelled) and its open
    /// connections have finished or the drain period is over.
    pub async fn stopped(self) {
        self.tracker.wait().await;
    }
}
