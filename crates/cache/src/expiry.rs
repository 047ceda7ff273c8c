//! Jittered lifetimes, so that entries filled together do not expire together.

use std::time::{Duration, Instant};

use moka::Expiry;

/// The largest accepted relative jitter.
const MAX_JITTER: f64 = 0.5;

/// Stretches or shrinks `base` by up to `jitter` (relative, clamped to `0.0..=0.5`), according to
/// `unit`, a random number in `[0, 1)`.
///
/// `unit = 0.0` gives `base * (1 - jitter)`, `unit = 0.5` gives `base`, and `unit` close to `1.0`
/// gives almost `base * (1 + jitter)`. Values that are not numbers count as no jitter and the
/// middle unit; a result too large for a [`Duration`] saturates. Never panics.
pub fn jittered(base: Duration, jitter: f64, unit: f64) -> Duration {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, MAX_JITTER)
    } else {
        0.0
    };
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 + jitter * (2.0 * unit - 1.0);
    Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// How long entries live, in both levels: present values `ttl`, absent keys `negative_ttl`, each
/// jittered afresh for every entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    pub(crate) ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) jitter: f64,
}

impl Lifetimes {
    /// A fresh random lifetime for a present (`true`) or absent (`false`) entry.
    pub(crate) fn pick(&self, present: bool) -> Duration {
        let base = if present { self.ttl } else { self.negative_ttl };
        jittered(base, self.jitter, fastrand::f64())
    }
}

// The in-process level stores `Option<V>`: `None` is a remembered absence.
impl<K, V> Expiry<K, Option<V>> for Lifetimes {
    fn expire_after_create(&self, _key: &K, value: &Option<V>, _at: Instant) -> Option<Duration> {
        Some(self.pick(value.is_some()))
    }

    fn expire_after_update(
        &self,
        _key: &K,
        value: &Option<V>,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.pick(value.is_some()))
    }
}
