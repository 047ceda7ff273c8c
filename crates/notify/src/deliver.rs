//! `Deliverer`: the worker that sends due deliveries, signed per Standard Webhooks 1.0.
//!
//! A delivery is taken with a lease (a conditional update), so any number of processes may run
//! a deliverer over one database and each delivery is attempted by one at a time. Attempts are
//! bounded over every endpoint (`max_in_flight`) and per endpoint (`per_endpoint`); each has
//! one deadline for connecting, sending and reading, follows no redirect, reads at most
//! `response_max_bytes` of the answer, and connects only to addresses [`Destinations`] permits
//! (checked on the resolved addresses, so a name cannot be re-pointed at the store's network).
//! Outcomes are written in batches. A failed attempt is retried on the schedule with jitter;
//! when the schedule is spent the delivery is dead-lettered (`failed`); an endpoint that has
//! not succeeded for `disable_after` is disabled and `webhook_endpoint.changed` (`disabled`)
//! tells the staff.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_db::Db;
use emporium_kernel::Clock;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::domain::{self, DeliveryId, Destinations};
use crate::fanout::Handoff;
use crate::service::{WebhookSettings, disable_failing};
use crate::store::{self, ClaimedRow, EndpointRow, Outcome};

/// The most of an answer kept for staff to read.
const KEPT_RESPONSE: usize = 1024;
/// Deliveries taken per claim.
const CLAIM_BATCH: usize = 128;
/// How long a deliverer lets work gather before one transaction takes or records it: a
/// little latency for far fewer write transactions beside the store's own.
const LINGER: Duration = Duration::from_millis(20);
/// The longest a deliverer sleeps without looking for due deliveries (others may make them).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Sends due deliveries until stopped.
pub struct Deliverer {
    db: Db,
    clock: Arc<dyn Clock>,
    settings: WebhookSettings,
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    /// New deliveries in memory, and the wake-up for replays.
    handoff: Arc<Handoff>,
    endpoints: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
}

impl Deliverer {
    /// A deliverer over `db`, woken by `wake`.
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        settings: WebhookSettings,
        handoff: Arc<Handoff>,
    ) -> Result<Self, std::io::Error> {
        let mut tcp = HttpConnector::new_with_resolver(GuardedResolver {
            destinations: settings.destinations.clone(),
        });
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(settings.timeout.min(Duration::from_secs(5))));
        tcp.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(b) => b,
            Err(e) => {
                // No system certificates: plain HTTP still works, HTTPS endpoints fail to verify.
                tracing::warn!(error = %e, "no system CA certificates; HTTPS webhook endpoints will fail");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(std::io::Error::other)?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let connector = tls.https_or_http().enable_http1().wrap_connector(tcp);
        // A client follows no redirect: hyper never does.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(settings.per_endpoint)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            db,
            clock,
            settings,
            client,
            handoff,
            endpoints: Mutex::new(HashMap::new()),
        })
    }

    /// Claims and sends due deliveries until `stop`; attempts under way then finish within
    /// their timeout and their outcomes are written.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let global = Arc::new(Semaphore::new(self.settings.max_in_flight.max(1)));
        let (outcomes, received) = mpsc::channel::<Outcome>(1024);
        let writer = tokio::spawn(self.clone().write_outcomes(received));
        let tasks = TaskTracker::new();
        let freed = Arc::new(Notify::new());
        // Attempts run on a thread of their own at the lowest CPU priority: on a busy machine
        // the store's requests come first and deliveries take what is left.
        let background = CancellationToken::new();
        let attempts = match background_runtime(background.clone()) {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(error = %e, "no background thread for webhook attempts; they share the request threads");
                tokio::runtime::Handle::current()
            }
        };
        loop {
            if stop.is_cancelled() {
                break;
            }
            let free = global.available_permits().min(CLAIM_BATCH);
            // Deliveries handed over in memory first: leased already, bodies at hand.
            let handed = self.handoff.take(free);
            let (claimed, bodies, wait) = if !handed.is_empty() {
                let bodies = handed
                    .iter()
                    .map(|h| (h.event_id, h.body.clone()))
                    .collect();
                let rows = handed
                    .into_iter()
                    .map(|h| ClaimedRow {
                        id: h.id,
                        endpoint_id: h.endpoint_id,
                        event_id: h.event_id,
                        attempts: 0,
                        replayed_after: 0,
                    })
                    .collect();
                (rows, bodies, Duration::ZERO)
            } else {
                self.take_due(free).await
            };
            if claimed.is_empty() {
                let wait = if wait.is_zero() {
                    Duration::from_millis(50)
                } else {
                    wait
                };
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    // Deliveries made close together are taken together.
                    () = self.handoff.notified() => tokio::time::sleep(LINGER).await,
                    () = freed.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let endpoints = match self.endpoints_of(&claimed).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read webhook endpoints; will retry");
                    continue;
                }
            };
            for row in claimed {
                let Ok(permit) = global.clone().try_acquire_owned() else {
                    break;
                };
                let (Some(endpoint), Some(body)) = (
                    endpoints.get(&row.endpoint_id).cloned(),
                    bodies.get(&row.event_id).cloned(),
                ) else {
                    continue;
                };
                // Disabled since it was handed over: it waits in the table, leased a while.
                if !endpoint.enabled {
                    continue;
                }
                let this = self.clone();
                let outcomes = outcomes.clone();
                let freed = freed.clone();
                tasks.spawn_on(
                    async move {
                        let gate = this.gate(row.endpoint_id);
                        let outcome = match gate.acquire().await {
                            Ok(_held) => this.attempt(&endpoint, &row, body).await,
                            Err(_) => return,
                        };
                        let _ = outcomes.send(outcome).await;
                        drop(permit);
                        freed.notify_one();
                    },
                    &attempts,
                );
            }
        }
        tasks.close();
        tasks.wait().await;
        background.cancel();
        drop(outcomes);
        let _ = writer.await;
    }

    /// Due deliveries from the table (none when `free` is 0), with their bodies; when none are
    /// taken, how long to wait before looking again.
    async fn take_due(&self, free: usize) -> (Vec<ClaimedRow>, HashMap<Uuid, Bytes>, Duration) {
        // Look before taking: a claim is a write, a look a read.
        let wait = if free == 0 {
            IDLE_POLL
        } else {
            self.until_next_due().await
        };
        if !wait.is_zero() {
            return (Vec::new(), HashMap::new(), wait);
        }
        match self.claim(free).await {
            Ok((rows, bodies)) => (rows, bodies, Duration::ZERO),
            Err(e) => {
                tracing::warn!(error = %e, "cannot take due webhook deliveries; will retry");
                (Vec::new(), HashMap::new(), IDLE_POLL)
            }
        }
    }

    /// Takes up to `n` due deliveries, leased for as long as their attempts may wait and take,
    /// with their bodies.
    async fn claim(
        &self,
        n: usize,
    ) -> Result<(Vec<ClaimedRow>, HashMap<Uuid, Bytes>), emporium_db::DbError> {
        let now = self.clock.now();
        let rounds = (n / self.settings.per_endpoint.max(1)) as u32 + 1;
        let lease = self.settings.timeout * rounds + Duration::from_secs(30);
        let mut tx = self.db.begin_write().await?;
        let rows = store::claim_due(&mut tx, now, now + lease, n as i64).await?;
        let mut events: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
        events.sort();
        events.dedup();
        let bodies = if events.is_empty() {
            HashMap::new()
        } else {
            store::messages(&mut tx, &events)
                .await?
                .into_iter()
                .map(|m| (m.event_id, Bytes::from(m.payload.into_bytes())))
                .collect()
        };
        tx.commit().await?;
        Ok((rows, bodies))
    }

    /// How long to sleep when nothing is due: until the next delivery is, at most `IDLE_POLL`.
    async fn until_next_due(&self) -> Duration {
        let next = match self.db.read().await {
            Ok(mut conn) => store::next_due(&mut conn).await.ok().flatten(),
            Err(_) => None,
        };
        next.map_or(IDLE_POLL, |at| {
            let wait = at - self.clock.now();
            Duration::try_from(wait)
                .unwrap_or(Duration::ZERO)
                .min(IDLE_POLL)
        })
    }

    async fn endpoints_of(
        &self,
        claimed: &[ClaimedRow],
    ) -> Result<HashMap<Uuid, Arc<EndpointRow>>, emporium_db::DbError> {
        let mut out = HashMap::new();
        let mut conn = self.db.read().await?;
        for row in claimed {
            if out.contains_key(&row.endpoint_id) {
                continue;
            }
            if let Some(e) = store::find_endpoint(&mut conn, row.endpoint_id).await? {
                out.insert(row.endpoint_id, Arc::new(e));
            }
        }
        Ok(out)
    }

    /// The per-endpoint bound.
    fn gate(&self, endpoint: Uuid) -> Arc<Semaphore> {
        let mut gates = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .entry(endpoint)
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_endpoint.max(1))))
            .clone()
    }

    /// One attempt: signs, sends, reads a bounded answer, and says what comes next.
    async fn attempt(&self, endpoint: &EndpointRow, row: &ClaimedRow, body: Bytes) -> Outcome {
        let started = Instant::now();
        let at = self.clock.now();
        let attempt = row.attempts + 1;
        let result = self.send(endpoint, row, body, at).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error, response) = match result {
            Ok((code, body)) if (200..300).contains(&code) => (Some(i64::from(code)), None, body),
            Ok((code, body)) if (300..400).contains(&code) => (
                Some(i64::from(code)),
                Some("redirect not followed: give the final URL".to_owned()),
                body,
            ),
            Ok((code, body)) => (
                Some(i64::from(code)),
                Some(format!("the endpoint answered {code}")),
                body,
            ),
            Err(e) => (None, Some(e), None),
        };
        let succeeded = error.is_none();
        metrics::counter!("emporium_webhook_attempts_total",
            "outcome" => if succeeded { "succeeded" } else { "failed" })
        .increment(1);
        metrics::histogram!("emporium_webhook_attempt_seconds")
            .record(started.elapsed().as_secs_f64());
        let (status, next_attempt_at) = if succeeded {
            ("succeeded", at)
        } else {
            match domain::next_delay(
                &self.settings.retry_delays_ms,
                attempt - row.replayed_after,
                fastrand::f64(),
            ) {
                Some(wait) => ("pending", at + wait),
                None => ("failed", at),
            }
        };
        if status == "failed" {
            tracing::warn!(delivery = %DeliveryId(row.id), attempts = attempt, "webhook delivery dead-lettered");
        }
        Outcome {
            delivery_id: row.id,
            endpoint_id: row.endpoint_id,
            attempt,
            at,
            status_code,
            duration_ms,
            error,
            response,
            status,
            next_attempt_at,
        }
    }

    /// Sends one attempt; the status code and the start of the answer, or why none came.
    async fn send(
        &self,
        endpoint: &EndpointRow,
        row: &ClaimedRow,
        body: Bytes,
        at: OffsetDateTime,
    ) -> Result<(u16, Option<String>), String> {
        let url = url::Url::parse(&endpoint.url).map_err(|_| "the URL is not valid".to_owned())?;
        // A literal address never reaches the resolver: check it here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !self.settings.destinations.permits(ip)) {
            return Err("destination not allowed".to_owned());
        }
        let msg_id = DeliveryId(row.id).to_string();
        let timestamp = at.unix_timestamp();
        let mut keys = Vec::with_capacity(2);
        keys.extend(domain::secret_key(&endpoint.secret));
        if let (Some(previous), Some(until)) =
            (&endpoint.previous_secret, endpoint.previous_expires_at)
            && until > at
        {
            keys.extend(domain::secret_key(previous));
        }
        let signature = domain::signature_header(&keys, &msg_id, timestamp, &body);
        let request = hyper::Request::post(url.as_str())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("Emporium-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(body))
            .map_err(|_| "the request cannot be built".to_owned())?;
        let limit = self.settings.response_max_bytes;
        let exchange = async {
            let response = self.client.request(request).await.map_err(describe)?;
            let code = response.status().as_u16();
            // Read at most the bound; the rest is never read.
            let mut kept = Vec::new();
            let mut read = 0usize;
            let mut body = response.into_body();
            while read < limit {
                let Some(Ok(frame)) = body.frame().await else {
                    break;
                };
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                read += chunk.len();
                if kept.len() < KEPT_RESPONSE {
                    let room = KEPT_RESPONSE - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
            }
            let text = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned());
            Ok::<_, String>((code, text))
        };
        tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    /// Writes outcomes in batches (one transaction each), then disables endpoints that kept
    /// failing past `disable_after`.
    async fn write_outcomes(self: Arc<Self>, mut received: mpsc::Receiver<Outcome>) {
        let mut batch = Vec::with_capacity(256);
        while received.recv_many(&mut batch, 256).await > 0 {
            // Outcomes that finish close together share a transaction.
            tokio::time::sleep(LINGER).await;
            while batch.len() < 1024 {
                match received.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            let mut tries = 0;
            loop {
                match self.write_batch(&batch).await {
                    Ok(()) => break,
                    Err(e) if tries < 5 => {
                        tries += 1;
                        tracing::warn!(error = %e, "cannot record webhook attempts; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                    }
                    Err(e) => {
                        // The leases run out and the deliveries are attempted again.
                        tracing::error!(error = %e, "webhook attempts not recorded; they will be attempted again");
                        break;
                    }
                }
            }
            let failed: Vec<Uuid> = batch
                .iter()
                .filter(|o| o.error.is_some())
                .map(|o| o.endpoint_id)
                .collect();
            batch.clear();
            if !failed.is_empty() {
                self.disable_failing(failed).await;
            }
        }
    }

    async fn write_batch(&self, batch: &[Outcome]) -> Result<(), emporium_db::DbError> {
        let mut tx = self.db.begin_write().await?;
        let mut health: HashMap<Uuid, (bool, OffsetDateTime)> = HashMap::new();
        store::record_outcomes(&mut tx, batch).await?;
        for o in batch {
            let entry = health.entry(o.endpoint_id).or_insert((false, o.at));
            // One success in the batch clears the endpoint's failure record.
            entry.0 |= o.error.is_none();
            entry.1 = entry.1.min(o.at);
        }
        for (endpoint, (succeeded, at)) in health {
            store::mark_endpoint_health(&mut tx, endpoint, succeeded, at).await?;
        }
        tx.commit().await
    }

    async fn disable_failing(&self, mut endpoints: Vec<Uuid>) {
        endpoints.sort();
        endpoints.dedup();
        let now = self.clock.now();
        let Ok(limit) = time::Duration::try_from(self.settings.disable_after) else {
            return;
        };
        for id in endpoints {
            let failing_since = match self.db.read().await {
                Ok(mut conn) => store::find_endpoint(&mut conn, id)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|e| e.failing_since),
                Err(_) => None,
            };
            if failing_since.is_some_and(|since| now - since >= limit) {
                match disable_failing(&self.db, id, now).await {
                    Ok(true) => {
                        tracing::warn!(endpoint = %domain::EndpointId(id), "webhook endpoint disabled after failing");
                        metrics::counter!("emporium_webhook_endpoints_disabled_total").increment(1);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot disable a failing webhook endpoint")
                    }
                }
            }
        }
    }
}

/// A single-threaded runtime on a thread at the lowest priority (nice 19 on Linux), running
/// until `stop`.
fn background_runtime(stop: CancellationToken) -> std::io::Result<tokio::runtime::Handle> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("emporium-webhooks".to_owned())
        .spawn(move || {
            if let Err(e) =
                thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
            {
                tracing::debug!(error = ?e, "cannot lower the webhook thread's priority");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(runtime.handle().clone()));
            runtime.block_on(stop.cancelled());
            runtime.shutdown_background();
        })?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the webhook thread ended at once"))?
}

/// Why an attempt got no answer, in words staff can act on.
fn describe(e: hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if s.to_string().contains(BLOCKED) {
            return "destination not allowed".to_owned();
        }
        source = s.source();
    }
    if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

const BLOCKED: &str = "resolves only to addresses deliveries may not reach";

/// Resolves names with the system resolver and keeps only the addresses deliveries may reach.
#[derive(Clone)]
struct GuardedResolver {
    destinations: Destinations,
}

type Resolving = std::pin::Pin<
    Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>,
>;

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let destinations = self.destinations.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| destinations.permits(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(std::io::Error::other(format!("{host} {BLOCKED}")));
            }
            Ok(found.into_iter())
        })
    }
}
