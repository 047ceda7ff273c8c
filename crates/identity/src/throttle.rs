//! Throttling of failed sign-ins, per account and per client address.
//!
//! Each failure takes a cell from a GCRA bucket (governor) keyed by the submitted account name
//! (whether or not it exists, so throttling reveals nothing) and by the client address. When a
//! bucket is empty the key is blocked until it refills: every attempt for it, right or wrong, is
//! refused with 429 and `Retry-After` without checking the password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Throttling limits.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failures allowed per account before blocking.
    pub account_burst: u32,
    /// One more failure is allowed per account every this long.
    pub account_refill: Duration,
    /// Failures allowed per client address before blocking.
    pub address_burst: u32,
    /// One more failure is allowed per address every this long.
    pub address_refill: Duration,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            account_burst: 5,
            account_refill: Duration::from_secs(60),
            address_burst: 20,
            address_refill: Duration::from_secs(6),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

/// Counts sign-in failures and blocks keys that fail too often.
pub struct LoginThrottle {
    accounts: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    // A std mutex: held for a map lookup, never across an await.
    blocked: Mutex<HashMap<Key, Instant>>,
}

fn quota(burst: u32, refill: Duration) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(refill.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl LoginThrottle {
    /// A throttle with `limits`.
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            accounts: RateLimiter::keyed(quota(limits.account_burst, limits.account_refill)),
            addresses: RateLimiter::keyed(quota(limits.address_burst, limits.address_refill)),
            clock: DefaultClock::default(),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` when the account or the address is blocked now.
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let wait = [
            Some(Key::Account(account.to_owned())),
            address.map(Key::Address),
        ]
        .into_iter()
        .flatten()
        .filter_map(|k| blocked.get(&k).copied())
        .filter(|until| *until > now)
        .map(|until| until - now)
        .max();
        match wait {
            Some(w) => Err(w.as_secs().max(1)),
            None => Ok(()),
        }
    }

    /// Records a failure; `Err(seconds)` when it exhausted a bucket (the key is now blocked).
    pub fn record_failure(&self, account: &str, address: Option<IpAddr>) -> Result<(), u64> {
        let now = self.clock.now();
        let mut waits = Vec::with_capacity(2);
        if let Err(not_until) = self.accounts.check_key(&account.to_owned()) {
            waits.push((
                Key::Account(account.to_owned()),
                not_until.wait_time_from(now),
            ));
        }
        if let Some(ip) = address
            && let Err(not_until) = self.addresses.check_key(&ip)
        {
            waits.push((Key::Address(ip), not_until.wait_time_from(now)));
        }
        if waits.is_empty() {
            return Ok(());
        }
        let instant = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.len() > 100_000 {
            blocked.retain(|_, until| *until > instant);
            self.accounts.retain_recent();
            self.addresses.retain_recent();
        }
        let mut longest = Duration::ZERO;
        for (key, wait) in waits {
            longest = longest.max(wait);
            blocked.insert(key, instant + wait);
        }
        Err(longest.as_secs().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_blocked_after_its_burst_of_failures() {
        let t = LoginThrottle::new(ThrottleLimits {
            account_burst: 3,
            ..ThrottleLimits::default()
        });
        for _ in 0..3 {
            assert!(t.check("ada@example.com", None).is_ok());
            assert!(t.record_failure("ada@example.com", None).is_ok());
        }
        let wait = t.record_failure("ada@example.com", None).unwrap_err();
        assert!(wait >= 1);
        assert!(t.check("ada@example.com", None).is_err());
        assert!(t.check("bob@example.com", None).is_ok());
    }

    #[test]
    fn an_address_is_blocked_across_accounts() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t = LoginThrottle::new(ThrottleLimits {
            address_burst: 4,
            ..ThrottleLimits::default()
        });
        let results: Vec<_> = (0..5)
            .map(|i| t.record_failure(&format!("u{i}@example.com"), Some(ip)))
            .collect();
        assert!(results[..4].iter().all(Result::is_ok));
        assert!(results[4].is_err());
        assert!(t.check("new@example.com", Some(ip)).is_err());
        assert!(t.check("new@example.com", None).is_ok());
    }
}
