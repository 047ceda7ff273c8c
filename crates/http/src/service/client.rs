//! The network client behind a context's API trait when the context runs in another process.
//!
//! Each call is one JSON `POST` to an internal route of the callee's group, sent to one of its
//! instances in turn over pooled keep-alive connections, with the service credential, the
//! caller's `traceparent` and request id. A call has one deadline, whatever its retries. A call
//! the caller marks idempotent is retried on another instance after a failure (no answer, a
//! timeout, a 5xx), with jittered backoff, while the retry budget allows; any call is retried
//! when its connection was refused, since nothing reached the callee. Each instance has a
//! circuit breaker: an open one is passed over, so a dead instance costs nothing per call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use emporium_kernel::{DomainError, ErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::Failure;
use super::credential::{CREDENTIAL_HEADER, ServiceCredentials};
use emporium_kernel::breaker::Breaker;

/// The base URLs of a group's instances (`http://10.0.0.7:8080`), kept current by discovery.
pub type Upstreams = watch::Receiver<Vec<String>>;

/// How a client calls.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The whole call's deadline, retries included.
    pub timeout: Duration,
    /// Further attempts after the first, each on another instance when there is one.
    pub retries: u32,
    /// Failures in a row that open an instance's breaker.
    pub failures_to_open: u32,
    /// How long a breaker stays open before one probe may go through.
    pub open_for: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            retries: 2,
            failures_to_open: 5,
            open_for: Duration::from_secs(2),
        }
    }
}

/// Why a call gave no answer the caller can use.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No instance answered in time (none known, every breaker open, connections refused,
    /// timeouts, 5xx answers), after the retries allowed.
    #[error("service {service} is unavailable: {reason}")]
    Unavailable {
        service: &'static str,
        reason: String,
    },
    /// The callee refused the call with a code the caller does not turn into an error of its
    /// own.
    #[error("service {service} refused the call: {} ({})", .failure.code, .failure.detail)]
    Rejected {
        service: &'static str,
        failure: Box<Failure>,
    },
}

impl DomainError for CallError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Unavailable { service, .. } => {
                (ErrorKind::Unavailable, unavailable_code(service))
            }
            Self::Rejected { .. } => (ErrorKind::Internal, "internal"),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Unavailable { .. } => Some(1),
            Self::Rejected { .. } => None,
        }
    }
}

/// The stable code of a group that does not answer.
fn unavailable_code(service: &str) -> &'static str {
    match service {
        "identity" => "identity_unavailable",
        "catalog" => "catalog_unavailable",
        "inventory" => "inventory_unavailable",
        "search" => "search_unavailable",
        "ordering" => "ordering_unavailable",
        _ => "service_unavailable",
    }
}

/// Retries allowed: each call deposits a fifth of a retry (at most `BUDGET_CAP` kept) and each
/// retry spends one, so retries stay near a fifth of the calls and a failing group is not
/// hammered by every caller's every retry.
struct RetryBudget {
    milli: AtomicU64,
}

const BUDGET_CAP: u64 = 20_000;
const DEPOSIT: u64 = 200;

impl RetryBudget {
    fn new() -> Self {
        Self {
            milli: AtomicU64::new(BUDGET_CAP / 2),
        }
    }

    fn deposit(&self) {
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                Some((m + DEPOSIT).min(BUDGET_CAP))
            });
    }

    fn withdraw(&self) -> bool {
        self.milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                m.checked_sub(1000)
            })
            .is_ok()
    }
}

/// A client of one service group.
pub struct ServiceClient {
    service: &'static str,
    http: reqwest::Client,
    upstreams: Upstreams,
    next: AtomicUsize,
    breakers: RwLock<HashMap<String, Arc<Breaker>>>,
    budget: RetryBudget,
    credentials: Arc<ServiceCredentials>,
    options: ClientOptions,
}

/// What one attempt came to.
enum Attempt<T> {
    Answer(T),
    Refused(Failure),
    /// Failed; `sent` says whether the request may have reached the callee.
    Failed {
        reason: String,
        sent: bool,
    },
}

impl ServiceClient {
    /// A client of `service` (a group name, for codes and metrics) over `upstreams`.
    pub fn new(
        service: &'static str,
        upstreams: Upstreams,
        credentials: Arc<ServiceCredentials>,
        options: ClientOptions,
    ) -> Self {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .connect_timeout(options.timeout.min(Duration::from_secs(1)))
            .build()
            .unwrap_or_default();
        Self {
            service,
            http,
            upstreams,
            next: AtomicUsize::new(0),
            breakers: RwLock::new(HashMap::new()),
            budget: RetryBudget::new(),
            credentials,
            options,
        }
    }

    /// The group this client calls.
    pub fn service(&self) -> &'static str {
        self.service
    }

    fn breaker(&self, upstream: &str) -> Arc<Breaker> {
        if let Some(b) = self
            .breakers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(upstream)
        {
            return b.clone();
        }
        self.breakers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(upstream.to_owned())
            .or_insert_with(|| {
                Arc::new(Breaker::new(
                    self.options.failures_to_open,
                    self.options.open_for,
                ))
            })
            .clone()
    }

    /// The next instance in turn that was not tried yet in this call and whose breaker lets a
    /// call through.
    fn pick(&self, tried: &[String]) -> Option<(String, Arc<Breaker>)> {
        let upstreams = self.upstreams.borrow().clone();
        let n = upstreams.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let url = &upstreams[(start + i) % n];
            if tried.contains(url) {
                continue;
            }
            let breaker = self.breaker(url);
            if breaker.allow() {
                return Some((url.clone(), breaker));
            }
        }
        None
    }

    /// Calls `path` (an internal route) with `body`. `idempotent` says a retry after an
    /// ambiguous failure cannot have a second effect.
    pub async fn call<B, T>(&self, path: &str, body: &B, idempotent: bool) -> Result<T, CallError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let deadline = Instant::now() + self.options.timeout;
        let body = serde_json::to_vec(body).map_err(|e| CallError::Unavailable {
            service: self.service,
            reason: format!("cannot encode the request: {e}"),
        })?;
        self.budget.deposit();
        let mut tried: Vec<String> = Vec::new();
        let mut last = String::from("no instance is known");
        for attempt in 0..=self.options.retries {
            if attempt > 0 {
                if !self.budget.withdraw() {
                    last.push_str(" (retry budget spent)");
                    break;
                }
                metrics::counter!("emporium_service_call_retries_total", "service" => self.service)
                    .increment(1);
                let backoff =
                    Duration::from_millis(10 << attempt.min(4)).mul_f64(0.5 + fastrand::f64());
                if Instant::now() + backoff >= deadline {
                    break;
                }
                tokio::time::sleep(backoff).await;
            }
            if tried.is_empty() && self.upstreams.borrow().is_empty() {
                // None known yet (a registry still filling, a group starting): wait for one
                // within the deadline.
                let mut known = self.upstreams.clone();
                let left = deadline.saturating_duration_since(Instant::now());
                let _ =
                    tokio::time::timeout(left, known.wait_for(|upstreams| !upstreams.is_empty()))
                        .await;
            }
            let Some((upstream, breaker)) = self.pick(&tried).or_else(|| self.pick(&[])) else {
                if tried.is_empty() && !self.upstreams.borrow().is_empty() {
                    last = "every instance's breaker is open".to_owned();
                }
                break;
            };
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                last = "deadline passed".to_owned();
                break;
            };
            let outcome = self.attempt(&upstream, path, &body, left).await;
            let retry = match outcome {
                Attempt::Answer(answer) => {
                    breaker.succeeded();
                    self.record(&upstream, &breaker, "ok");
                    return Ok(answer);
                }
                Attempt::Refused(failure) => {
                    breaker.succeeded();
                    self.record(&upstream, &breaker, "rejected");
                    return Err(CallError::Rejected {
                        service: self.service,
                        failure: Box::new(failure),
                    });
                }
                Attempt::Failed { reason, sent } => {
                    breaker.failed();
                    self.record(&upstream, &breaker, "failed");
                    tracing::warn!(service = self.service, %upstream, %reason, attempt, "internal call failed");
                    last = format!("{upstream}: {reason}");
                    idempotent || !sent
                }
            };
            tried.push(upstream);
            if !retry {
                break;
            }
        }
        metrics::counter!("emporium_service_calls_total", "service" => self.service, "outcome" => "unavailable")
            .increment(1);
        Err(CallError::Unavailable {
            service: self.service,
            reason: last,
        })
    }

    fn record(&self, upstream: &str, breaker: &Breaker, outcome: &'static str) {
        metrics::counter!("emporium_service_calls_total", "service" => self.service, "outcome" => outcome)
            .increment(1);
        metrics::gauge!("emporium_service_breaker_state", "service" => self.service, "upstream" => upstream.to_owned())
            .set(breaker.state().gauge());
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        upstream: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Attempt<T> {
        let mut request = self
            .http
            .post(format!("{upstream}{path}"))
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(CREDENTIAL_HEADER, self.credentials.token())
            .body(body.to_vec());
        if let Some(traceparent) = emporium_kernel::trace::current() {
            request = request.header(crate::middleware::TRACEPARENT, traceparent);
        }
        if let Some(id) = emporium_kernel::trace::request_id() {
            request = request.header("x-request-id", id);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed {
                    sent: !e.is_connect(),
                    reason: if e.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        e.to_string()
                    },
                };
            }
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Failed {
                    sent: true,
                    reason: format!("answer cut short: {e}"),
                };
            }
        };
        if status.is_server_error() {
            return Attempt::Failed {
                sent: true,
                reason: format!("answered {status}"),
            };
        }
        if status.is_success() {
            return match serde_json::from_slice(&bytes) {
                Ok(answer) => Attempt::Answer(answer),
                Err(e) => Attempt::Failed {
                    sent: true,
                    reason: format!("answer does not decode: {e}"),
                },
            };
        }
        match serde_json::from_slice::<Failure>(&bytes) {
            Ok(mut failure) => {
                failure.status = status.as_u16();
                Attempt::Refused(failure)
            }
            Err(_) => Attempt::Failed {
                sent: true,
                reason: format!("answered {status} without a failure body"),
            },
        }
    }
}
