//! One upstream instance and what the gateway knows of it: outstanding requests, the active
//! health verdict, passive ejection and the circuit breaker.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{BreakerConfig, Instance};
use crate::meter::AttemptMeter;

/// The breaker's state, as the `emporium_gateway_breaker_state` gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests fail fast until the open time is over.
    Open,
    /// One probe is let through; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// A snapshot of one instance's state, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// The instance.
    pub instance: Instance,
    /// The last verdict of the active health checks.
    pub healthy: bool,
    /// Passively ejected right now.
    pub ejected: bool,
    /// How many times it was ejected.
    pub times_ejected: u32,
    /// The breaker's state.
    pub breaker: BreakerState,
    /// Requests sent to it and not yet answered.
    pub outstanding: usize,
}

#[derive(Debug)]
struct Breaker {
    state: BreakerState,
    window_started: Instant,
    attempts: u32,
    failures: u32,
    open_until: Instant,
    probe_in_flight: bool,
}

#[derive(Debug)]
struct Ejection {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    times_ejected: u32,
}

/// The state of one upstream instance; shared by the requests and the health checker.
#[derive(Debug)]
pub struct Upstream {
    /// The configured or registered instance.
    pub instance: Instance,
    /// Its parsed base URL.
    pub(crate) base: hyper::Uri,
    /// The `group` label of its metrics.
    pub(crate) group: String,
    /// Its attempts by outcome.
    pub(crate) attempts: AttemptMeter,
    outstanding: AtomicUsize,
    healthy: AtomicBool,
    checks_passed: AtomicU32,
    checks_failed: AtomicU32,
    // Locks below are never held across an await.
    ejection: Mutex<Ejection>,
    breaker: Mutex<Breaker>,
}

/// Decrements the instance's outstanding count when the attempt ends, however it ends (the
/// answer's body is sent to the end, or dropped).
pub(crate) struct OutstandingGuard(Arc<Upstream>);

impl Drop for OutstandingGuard {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the breaker let an attempt through, and whether it is the half-open probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Allowed,
    Probe,
    Refused,
}

impl Upstream {
    pub(crate) fn new(group: &str, instance: Instance, base: hyper::Uri) -> Self {
        let now = Instant::now();
        Self {
            instance,
            base,
            group: group.to_owned(),
            attempts: AttemptMeter::new(),
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            checks_passed: AtomicU32::new(0),
            checks_failed: AtomicU32::new(0),
            ejection: Mutex::new(Ejection {
                consecutive_failures: 0,
                ejected_until: None,
                times_ejected: 0,
            }),
            breaker: Mutex::new(Breaker {
                state: BreakerState::Closed,
                window_started: now,
                attempts: 0,
                failures: 0,
                open_until: now,
                probe_in_flight: false,
            }),
        }
    }

    /// Requests in flight to this instance.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub(crate) fn begin(self: &Arc<Self>) -> OutstandingGuard {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        OutstandingGuard(self.clone())
    }

    /// Healthy by active checks, not ejected, and the breaker not open (half-open counts as
    /// available while its probe is unused).
    pub(crate) fn is_available(&self, now: Instant) -> bool {
        if self.instance.weight == 0
            || !self.healthy.load(Ordering::Relaxed)
            || self.is_ejected(now)
        {
            return false;
        }
        let breaker = lock(&self.breaker);
        match breaker.state {
            BreakerState::Closed => true,
            BreakerState::Open => now >= breaker.open_until,
            BreakerState::HalfOpen => !breaker.probe_in_flight,
        }
    }

    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        lock(&self.ejection)
            .ejected_until
            .is_some_and(|until| now < until)
    }

    /// Asks the breaker for one attempt.
    pub(crate) fn admit(&self, now: Instant) -> Admission {
        let mut b = lock(&self.breaker);
        match b.state {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::Open if now >= b.open_until => {
                b.state = BreakerState::HalfOpen;
                b.probe_in_flight = true;
                self.publish_breaker(BreakerState::HalfOpen);
                Admission::Probe
            }
            BreakerState::HalfOpen if !b.probe_in_flight => {
                b.probe_in_flight = true;
                Admission::Probe
            }
            BreakerState::Open | BreakerState::HalfOpen => Admission::Refused,
        }
    }

    /// Records an attempt's outcome in the breaker and the ejection counter; `may_eject` says
    /// whether the group can spare one more ejected instance.
    pub(crate) fn record(
        &self,
        success: bool,
        admission: Admission,
        breaker: &BreakerConfig,
        outlier: &crate::config::OutlierConfig,
        may_eject: impl FnOnce() -> bool,
    ) {
        let now = Instant::now();
        self.record_breaker(success, admission, breaker, now);
        let wants_ejection = {
            let mut e = lock(&self.ejection);
            if success {
                e.consecutive_failures = 0;
                return;
            }
            e.consecutive_failures += 1;
            outlier.consecutive_failures > 0
                && e.consecutive_failures >= outlier.consecutive_failures
                && e.ejected_until.is_none_or(|until| now >= until)
        };
        // The group's count locks every instance's ejection state, this one's included, so
        // it is asked with no lock held.
        if !wants_ejection || !may_eject() {
            return;
        }
        let mut e = lock(&self.ejection);
        if e.ejected_until.is_some_and(|until| now < until) {
            return;
        }
        e.times_ejected += 1;
        e.consecutive_failures = 0;
        let duration =
            Duration::from_millis(outlier.base_ejection_ms).saturating_mul(e.times_ejected);
        e.ejected_until = Some(now + duration);
        metrics::counter!("emporium_gateway_ejections_total",
            "group" => self.group.clone(), "upstream" => self.instance.url.clone())
        .increment(1);
        tracing::warn!(group = %self.group, upstream = %self.instance.url,
            times = e.times_ejected, ejection_ms = duration.as_millis() as u64,
            "upstream ejected after consecutive failures");
    }

    fn record_breaker(
        &self,
        success: bool,
        admission: Admission,
        cfg: &BreakerConfig,
        now: Instant,
    ) {
        let mut b = lock(&self.breaker);
        if admission == Admission::Probe {
            b.probe_in_flight = false;
            let next = if success {
                b.attempts = 0;
                b.failures = 0;
                b.window_started = now;
                BreakerState::Closed
            } else {
                b.open_until = now + Duration::from_millis(cfg.open_ms);
                BreakerState::Open
            };
            b.state = next;
            self.publish_breaker(next);
            if next == BreakerState::Closed {
                tracing::info!(group = %self.group, upstream = %self.instance.url, "breaker closed");
            }
            return;
        }
        if b.state != BreakerState::Closed {
            return;
        }
        if now.duration_since(b.window_started) >= Duration::from_millis(cfg.window_ms) {
            b.window_started = now;
            b.attempts = 0;
            b.failures = 0;
        }
        b.attempts += 1;
        if !success {
            b.failures += 1;
        }
        if b.attempts >= cfg.min_requests.max(1)
            && f64::from(b.failures) >= cfg.failure_ratio * f64::from(b.attempts)
        {
            b.state = BreakerState::Open;
            b.open_until = now + Duration::from_millis(cfg.open_ms);
            self.publish_breaker(BreakerState::Open);
            tracing::warn!(group = %self.group, upstream = %self.instance.url,
                attempts = b.attempts, failures = b.failures, "breaker opened");
        }
    }

    /// Gives back a probe that was admitted but never sent (another instance was chosen).
    pub(crate) fn release_probe(&self) {
        lock(&self.breaker).probe_in_flight = false;
    }

    pub(crate) fn publish_breaker(&self, state: BreakerState) {
        metrics::gauge!("emporium_gateway_breaker_state",
            "group" => self.group.clone(), "upstream" => self.instance.url.clone())
        .set(state.gauge());
    }

    /// Records one active check; returns the new verdict when it changed.
    pub(crate) fn record_check(
        &self,
        passed: bool,
        healthy_after: u32,
        unhealthy_after: u32,
    ) -> Option<bool> {
        if passed {
            self.checks_failed.store(0, Ordering::Relaxed);
            let n = self.checks_passed.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= healthy_after && !self.healthy.swap(true, Ordering::Relaxed) {
                // A instance back from the dead starts with a clean slate.
                lock(&self.ejection).ejected_until = None;
                return Some(true);
            }
        } else {
            self.checks_passed.store(0, Ordering::Relaxed);
            let n = self.checks_failed.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= unhealthy_after && self.healthy.swap(false, Ordering::Relaxed) {
                return Some(false);
            }
        }
        None
    }

    /// The instance's state now.
    pub fn status(&self) -> UpstreamStatus {
        let now = Instant::now();
        let (ejected, times_ejected) = {
            let e = lock(&self.ejection);
            (e.ejected_until.is_some_and(|u| now < u), e.times_ejected)
        };
        UpstreamStatus {
            instance: self.instance.clone(),
            healthy: self.healthy.load(Ordering::Relaxed),
            ejected,
            times_ejected,
            breaker: lock(&self.breaker).state,
            outstanding: self.outstanding(),
        }
    }
}

/// Locks a mutex, taking the data even when a panicking holder poisoned it (the state stays
/// meaningful: counters and deadlines).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
