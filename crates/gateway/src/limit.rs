//! Rate limits, global and per client: `governor` in the process, or one GCRA budget in Redis
//! shared by every gateway. Redis failing falls back to the local limiter, never to an error.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use sha2::Digest;

use crate::config::RateLimitConfig;

/// Longest wait for Redis before the local limiter decides.
const REDIS_DEADLINE: Duration = Duration::from_millis(100);

/// GCRA over up to two keys (global, client) at once: a request passes only when both allow
/// it, and only then are both advanced. ARGV: emission interval of each key in µs (0 = no limit
/// on it), then the burst. Returns {allowed, scope index (1 global, 2 client), retry-after µs}.
const GCRA_SCRIPT: &str = r"
local burst = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next_tat = {}
for i = 1, 2 do
  local interval = tonumber(ARGV[i])
  if interval > 0 then
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    local new_tat = tat + interval
    local over = new_tat - now - interval * burst
    if over > 0 then
      return {0, i, over}
    end
    next_tat[i] = new_tat
  end
end
for i = 1, 2 do
  if next_tat[i] then
    redis.call('SET', KEYS[i], next_tat[i], 'PX', math.ceil((next_tat[i] - now) / 1000) + 1)
  end
end
return {1, 0, 0}
";

/// A limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    Limited {
        scope: &'static str,
        retry_after: Duration,
    },
}

/// The limits of one configuration.
pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    global: Option<DefaultDirectRateLimiter>,
    per_client: Option<DefaultKeyedRateLimiter<String>>,
    redis: Option<redis::aio::ConnectionManager>,
    script: redis::Script,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn quota(per_sec: f64, burst: u32) -> Option<Quota> {
    if per_sec <= 0.0 {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / per_sec);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).map(|q| q.allow_burst(burst))
}

impl RateLimiter {
    /// The limiter of `config`; Redis is connected lazily, so a Redis down at start is no error.
    pub(crate) fn new(config: &RateLimitConfig) -> Self {
        let redis = if config.redis_url.is_empty() {
            None
        } else {
            let manager = redis::Client::open(config.redis_url.as_str()).and_then(|client| {
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_millis(500)))
                    .set_response_timeout(Some(REDIS_DEADLINE))
                    .set_number_of_retries(1);
                redis::aio::ConnectionManager::new_lazy_with_config(client, cfg)
            });
            match manager {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot use the rate-limit redis; limits stay local");
                    None
                }
            }
        };
        Self {
            config: config.clone(),
            global: quota(config.global_per_sec, config.burst).map(governor::RateLimiter::direct),
            per_client: quota(config.per_client_per_sec, config.burst)
                .map(governor::RateLimiter::keyed),
            redis,
            script: redis::Script::new(GCRA_SCRIPT),
        }
    }

    /// The configuration it was built from.
    pub(crate) fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// True when no limit is configured.
    pub(crate) fn is_off(&self) -> bool {
        self.global.is_none() && self.per_client.is_none()
    }

    /// Takes one request of `client` from the budgets.
    pub(crate) async fn check(&self, client: &str) -> Verdict {
        if self.is_off() {
            return Verdict::Allowed;
        }
        if let Some(redis) = &self.redis {
            match tokio::time::timeout(REDIS_DEADLINE, self.check_redis(redis.clone(), client))
                .await
            {
                Ok(Ok(verdict)) => return verdict,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "rate-limit redis failed; limiting locally");
                }
                Err(_) => tracing::warn!("rate-limit redis too slow; limiting locally"),
            }
        }
        self.check_local(client)
    }

    fn check_local(&self, client: &str) -> Verdict {
        let clock = DefaultClock::default();
        if let Some(global) = &self.global
            && let Err(not_until) = global.check()
        {
            return Verdict::Limited {
                scope: "global",
                retry_after: not_until.wait_time_from(clock.now()),
            };
        }
        if let Some(per_client) = &self.per_client
            && let Err(not_until) = per_client.check_key(&client.to_owned())
        {
            return Verdict::Limited {
                scope: "client",
                retry_after: not_until.wait_time_from(clock.now()),
            };
        }
        Verdict::Allowed
    }

    async fn check_redis(
        &self,
        mut redis: redis::aio::ConnectionManager,
        client: &str,
    ) -> redis::RedisResult<Verdict> {
        let interval = |per_sec: f64| {
            if per_sec > 0.0 {
                (1e6 / per_sec).ceil() as u64
            } else {
                0
            }
        };
        let (allowed, scope, retry_us): (i64, i64, i64) = self
            .script
            .key("emporium:gateway:rate:global")
            .key(format!("emporium:gateway:rate:client:{client}"))
            .arg(interval(self.config.global_per_sec))
            .arg(interval(self.config.per_client_per_sec))
            .arg(self.config.burst.max(1))
            .invoke_async(&mut redis)
            .await?;
        Ok(if allowed == 1 {
            Verdict::Allowed
        } else {
            Verdict::Limited {
                scope: if scope == 1 { "global" } else { "client" },
                retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
            }
        })
    }

    /// Forgets clients not seen lately, so the keyed limiter does not grow without bound.
    pub(crate) fn forget_idle_clients(&self) {
        if let Some(per_client) = &self.per_client {
            per_client.retain_recent();
            per_client.shrink_to_fit();
        }
    }
}

/// The client a request is counted against: its bearer token, else its API key, else its
/// address. Tokens and keys are hashed, so neither Redis nor memory holds them.
pub(crate) fn client_key(headers: &hyper::HeaderMap, peer: std::net::IpAddr) -> String {
    let hashed = |kind: &str, value: &[u8]| {
        let digest = sha2::Sha256::digest(value);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{kind}:{hex}")
    };
    if let Some(token) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    {
        return hashed("token", token.trim().as_bytes());
    }
    if let Some(key) = headers.get("x-api-key") {
        return hashed("key", key.as_bytes());
    }
    format!("addr:{peer}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_told_apart_by_token_then_key_then_address() {
        let peer: std::net::IpAddr = [10, 0, 0, 1].into();
        let mut h = hyper::HeaderMap::new();
        assert_eq!(client_key(&h, peer), "addr:10.0.0.1");
        h.insert("x-api-key", "k1".parse().expect("header"));
        let by_key = client_key(&h, peer);
        assert!(by_key.starts_with("key:") && !by_key.contains("k1"));
        h.insert("authorization", "Bearer secret".parse().expect("header"));
        let by_token = client_key(&h, peer);
        assert!(by_token.starts_with("token:") && !by_token.contains("secret"));
        assert_ne!(by_token, by_key);
    }

    #[tokio::test]
    async fn a_local_limit_passes_exactly_the_burst() {
        let limiter = RateLimiter::new(&RateLimitConfig {
            per_client_per_sec: 0.01,
            burst: 3,
            ..RateLimitConfig::default()
        });
        let mut passed = 0;
        for _ in 0..6 {
            if limiter.check("a").await == Verdict::Allowed {
                passed += 1;
            }
        }
        assert_eq!(passed, 3);
        assert_eq!(
            limiter.check("b").await,
            Verdict::Allowed,
            "another client has its own budget"
        );
    }
}
