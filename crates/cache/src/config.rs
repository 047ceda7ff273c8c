//! How a cache is sized and how long its entries live.

use std::time::Duration;

/// The settings of one [`Cache`](crate::Cache).
///
/// Out-of-range values never panic: [`ttl_jitter`](Self::ttl_jitter) is clamped to `0.0..=0.5`
/// (a value that is not a number counts as `0.0`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// The `cache` label on the metrics and the prefix of second-level keys, e.g. `"product"`.
    pub name: &'static str,
    /// How many entries the in-process level holds before it evicts the least useful ones.
    pub max_entries: u64,
    /// How long a present value lives, before jitter.
    pub ttl: Duration,
    /// The relative spread of every lifetime: an entry lives `ttl * (1 ± ttl_jitter)`, chosen at
    /// random per entry, in `0.0..=0.5`.
    pub ttl_jitter: f64,
    /// How long an absent key is remembered as absent, before jitter; keep it short.
    pub negative_ttl: Duration,
}

impl CacheConfig {
    /// Settings with sensible defaults for a catalog read cache: 10 000 entries, five minutes for
    /// present values, thirty seconds for absent keys, ±10 % jitter.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            max_entries: 10_000,
            ttl: Duration::from_secs(300),
            ttl_jitter: 0.1,
            negative_ttl: Duration::from_secs(30),
        }
    }
}
