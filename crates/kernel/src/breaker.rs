//! A circuit breaker for one upstream: closed while it answers; open (calls fail at once) after
//! `failures_to_open` failures in a row; half-open once `open_for` has passed, letting one probe
//! through, whose outcome closes it or opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
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

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct Breaker {
    failures_to_open: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(failures_to_open: u32, open_for: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            open_for,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when a call may go through now. In half-open state only one caller gets `true`
    /// until that probe reports.
    pub fn allow(&self) -> bool {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } if Instant::now() >= until => {
                *inner = Inner::HalfOpen { probing: true };
                true
            }
            Inner::Open { .. } => false,
            Inner::HalfOpen { probing: true } => false,
            Inner::HalfOpen { probing: false } => {
                *inner = Inner::HalfOpen { probing: true };
                true
            }
        }
    }

    /// A call answered: the breaker closes.
    pub fn succeeded(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
    }

    /// A call failed (no answer, a timeout, a 5xx): counts towards opening; a failed probe opens
    /// again.
    pub fn failed(&self) {
        let mut inner = self.lock();
        let open = match *inner {
            Inner::Closed { failures } => failures + 1 >= self.failures_to_open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => true,
        };
        *inner = if open {
            Inner::Open {
                until: Instant::now() + self.open_for,
            }
        } else {
            match *inner {
                Inner::Closed { failures } => Inner::Closed {
                    failures: failures + 1,
                },
                _ => Inner::Closed { failures: 1 },
            }
        };
    }

    /// A probe that went out but whose outcome says nothing of the upstream (the caller gave
    /// up): lets the next caller probe.
    pub fn abandoned(&self) {
        let mut inner = self.lock();
        if let Inner::HalfOpen { probing: true } = *inner {
            *inner = Inner::HalfOpen { probing: false };
        }
    }

    /// The state now (an open breaker whose time is up reads as half-open).
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_and_a_success_resets_the_count() {
        let b = Breaker::new(3, Duration::from_secs(60));
        b.failed();
        b.failed();
        b.succeeded();
        b.failed();
        b.failed();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
        b.failed();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
    }

    #[test]
    fn half_open_lets_one_probe_through_and_its_outcome_decides() {
        let b = Breaker::new(1, Duration::ZERO);
        b.failed();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(), "the probe");
        assert!(!b.allow(), "only one probe at a time");
        b.failed();
        assert!(b.allow(), "open_for is zero: the next probe");
        b.succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow() && b.allow());
    }

    #[test]
    fn an_abandoned_probe_lets_another_caller_probe() {
        let b = Breaker::new(1, Duration::ZERO);
        b.failed();
        assert!(b.allow());
        assert!(!b.allow());
        b.abandoned();
        assert!(b.allow());
    }
}
