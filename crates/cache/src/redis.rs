//! Redis as the shared second level: what every instance of a service reads before its loader.
//!
//! A [`RedisLevel`] never fails or holds up a read. Every call waits at most
//! [`RedisOptions::deadline`]; a call that fails or runs late makes the level stand aside for
//! [`RedisOptions::cool_down`], during which calls skip Redis at no cost, and then one call probes
//! it again. Removals that could not be sent meanwhile are remembered (up to
//! [`RedisOptions::pending_removals`]) and sent before anything else once Redis answers, so an
//! invalidation made during an outage still reaches the shared entry.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use crate::second_level::SecondLevel;

/// How a [`RedisLevel`] waits for Redis and backs off from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// The first part of every key: an entry of cache `product` for key `7` is stored under
    /// `"{prefix}:product:7"`.
    pub prefix: String,
    /// The longest a get, put or remove waits for Redis before it counts as a failure.
    pub deadline: Duration,
    /// The longest opening a connection may take (at most one call at a time opens one, and
    /// only when none is open).
    pub connect_timeout: Duration,
    /// After a failure, how long every call skips Redis before one call probes it again.
    pub cool_down: Duration,
    /// How many removals that could not be sent are kept to be sent later. Past it, further ones
    /// are dropped (and logged): their entries then live until they expire.
    pub pending_removals: usize,
}

impl Default for RedisOptions {
    /// Prefix `emporium`, a 25 ms deadline, 100 ms to connect, a one-second cool-down, and up to
    /// 10 000 pending removals.
    fn default() -> Self {
        Self {
            prefix: "emporium".to_owned(),
            deadline: Duration::from_millis(25),
            connect_timeout: Duration::from_millis(100),
            cool_down: Duration::from_secs(1),
            pending_removals: 10_000,
        }
    }
}

/// A Redis URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisLevelError {
    /// The URL does not parse, or names a scheme other than `redis://` and `rediss://`.
    #[error("invalid redis url: {0}")]
    InvalidUrl(String),
}

/// A [`SecondLevel`] in Redis, shared by every cache and process that points at the same server.
///
/// Cloning is cheap; clones (and levels made by [`for_cache`](Self::for_cache)) share one
/// connection and one view of whether Redis answers.
#[derive(Clone)]
pub struct RedisLevel {
    inner: Arc<Inner>,
    /// The `cache` label of the error metric.
    cache: &'static str,
}

struct Inner {
    client: Client,
    options: RedisOptions,
    state: Mutex<State>,
    failures: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The open connection; `None` before the first call and after a failure.
    connection: Option<MultiplexedConnection>,
    /// Set while one call opens a connection; others skip Redis meanwhile rather than wait.
    connecting: bool,
    /// While set, calls before this instant skip Redis; the first call after it probes.
    skip_until: Option<Instant>,
    /// Whether the last outcome was a failure, so that each change is logged once.
    down: bool,
    /// Keys whose removal could not be sent yet.
    pending: HashSet<String>,
    /// Whether a removal was dropped because `pending` was full (logged once per outage).
    overflowed: bool,
}

/// What a call may do with Redis right now.
enum Access {
    Skip,
    Use(MultiplexedConnection),
    Connect,
}

impl std::fmt::Debug for RedisLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the options are shown.
        f.debug_struct("RedisLevel")
            .field("cache", &self.cache)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl RedisLevel {
    /// A level for the cache named `cache` over the Redis at `url` (`redis://` or `rediss://`,
    /// with a password and database number if need be). Connects on first use, never here, so a
    /// Redis that is down at start only means misses.
    pub fn open(
        url: &str,
        cache: &'static str,
        options: RedisOptions,
    ) -> Result<Self, RedisLevelError> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(RedisLevelError::InvalidUrl(
                "must start with redis:// or rediss://".to_owned(),
            ));
        }
        // The error may quote the URL, password included: only its kind is kept.
        let client = Client::open(url)
            .map_err(|e| RedisLevelError::InvalidUrl(format!("{:?}", e.kind())))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                options,
                state: Mutex::new(State::default()),
                failures: AtomicU64::new(0),
            }),
            cache,
        })
    }

    /// The same Redis, connection and back-off for another cache (its own metric label).
    #[must_use]
    pub fn for_cache(&self, cache: &'static str) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            cache,
        }
    }

    /// Whether calls use Redis now: `false` from a failure until a probe succeeds.
    pub fn is_available(&self) -> bool {
        !self.inner.lock().down
    }

    /// Calls that failed or ran past the deadline since the level was opened (all caches).
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    fn address(&self, key: &str) -> String {
        format!("{}:{key}", self.inner.options.prefix)
    }

    /// Runs `command` on Redis within the deadline, or skips it; `None` when skipped or failed.
    async fn run<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Option<T> {
        let mut connection = self.connection().await?;
        let deadline = self.inner.options.deadline;
        if !self.flush_pending(&mut connection).await {
            return None;
        }
        match tokio::time::timeout(deadline, command.query_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Some(value)
            }
            Ok(Err(error)) => {
                self.failed(&error.to_string());
                None
            }
            Err(_) => {
                self.failed("no answer within the deadline");
                None
            }
        }
    }

    /// A connection to use now, opening one if none is open; `None` to skip Redis.
    async fn connection(&self) -> Option<MultiplexedConnection> {
        let access = {
            let mut state = self.inner.lock();
            let now = Instant::now();
            match state.skip_until {
                Some(until) if now < until => Access::Skip,
                probe => {
                    if probe.is_some() {
                        // This call is the probe; the others keep skipping until it is done.
                        state.skip_until = Some(now + self.inner.options.cool_down);
                    }
                    match (&state.connection, state.connecting) {
                        (Some(connection), _) => Access::Use(connection.clone()),
                        (None, true) => Access::Skip,
                        (None, false) => {
                            state.connecting = true;
                            Access::Connect
                        }
                    }
                }
            }
        };
        match access {
            Access::Skip => None,
            Access::Use(connection) => Some(connection),
            Access::Connect => self.connect().await,
        }
    }

    async fn connect(&self) -> Option<MultiplexedConnection> {
        let timeout = self.inner.options.connect_timeout;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(self.inner.options.deadline));
        let opened = tokio::time::timeout(
            timeout,
            self.inner
                .client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await;
        let mut state = self.inner.lock();
        state.connecting = false;
        match opened {
            Ok(Ok(connection)) => {
                state.connection = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(error)) => {
                drop(state);
                self.failed(&error.to_string());
                None
            }
            Err(_) => {
                drop(state);
                self.failed("no connection within the connect timeout");
                None
            }
        }
    }

    /// Sends the removals that could not be sent before; `false` (and failed) if they still
    /// cannot be.
    async fn flush_pending(&self, connection: &mut MultiplexedConnection) -> bool {
        let keys: Vec<String> = {
            let mut state = self.inner.lock();
            if state.pending.is_empty() {
                return true;
            }
            state.pending.drain().collect()
        };
        let mut command = redis::cmd("DEL");
        command.arg(&keys);
        let sent = tokio::time::timeout(
            self.inner.options.connect_timeout,
            command.query_async::<u64>(connection),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {
                tracing::info!(
                    cache = self.cache,
                    removed = keys.len(),
                    "second level: removals kept during an outage sent"
                );
                true
            }
            outcome => {
                let mut state = self.inner.lock();
                for key in keys {
                    remember(&mut state, key, self.inner.options.pending_removals);
                }
                drop(state);
                match outcome {
                    Ok(Err(error)) => self.failed(&error.to_string()),
                    _ => self.failed("no answer within the deadline"),
                }
                false
            }
        }
    }

    fn succeeded(&self) {
        let mut state = self.inner.lock();
        state.skip_until = None;
        if state.down {
            state.down = false;
            let overflowed = std::mem::take(&mut state.overflowed);
            drop(state);
            if overflowed {
                tracing::warn!(
                    cache = self.cache,
                    "second level answers again; some removals were dropped during the outage, their entries live until they expire"
                );
            } else {
                tracing::info!(cache = self.cache, "second level answers again");
            }
        }
    }

    fn failed(&self, error: &str) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emporium_cache_second_level_errors_total", "cache" => self.cache)
            .increment(1);
        let cool_down = self.inner.options.cool_down;
        let mut state = self.inner.lock();
        state.connection = None;
        state.skip_until = Some(Instant::now() + cool_down);
        if !state.down {
            state.down = true;
            drop(state);
            tracing::warn!(
                cache = self.cache,
                %error,
                cool_down_ms = u64::try_from(cool_down.as_millis()).unwrap_or(u64::MAX),
                "second level unavailable, reads go to the loader until it answers again"
            );
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps `key` to be removed later, unless `limit` keys are kept already.
fn remember(state: &mut State, key: String, limit: usize) {
    if state.pending.len() < limit || state.pending.contains(&key) {
        state.pending.insert(key);
    } else if !state.overflowed {
        state.overflowed = true;
        tracing::warn!(
            limit,
            "second level: too many removals waiting for redis, further ones are dropped"
        );
    }
}

#[async_trait]
impl SecondLevel for RedisLevel {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut command = redis::cmd("GET");
        command.arg(self.address(key));
        self.run::<Option<Vec<u8>>>(command).await.flatten()
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut command = redis::cmd("SET");
        command
            .arg(self.address(key))
            .arg(value)
            .arg("PX")
            .arg(millis);
        let _: Option<()> = self.run(command).await;
    }

    async fn remove(&self, key: &str) {
        let address = self.address(key);
        let mut command = redis::cmd("DEL");
        command.arg(&address);
        if self.run::<u64>(command).await.is_none() {
            // Skipped or failed: sent with the next call that reaches Redis.
            let limit = self.inner.options.pending_removals;
            remember(&mut self.inner.lock(), address, limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_other_than_redis_are_refused() {
        for url in ["http://127.0.0.1:6379", "127.0.0.1:6379", "", "redis:/x"] {
            let error = RedisLevel::open(url, "product", RedisOptions::default())
                .expect_err("not a redis url");
            assert!(error.to_string().contains("redis"), "{url}: {error}");
        }
        assert!(
            RedisLevel::open(
                "redis://127.0.0.1:6379/0",
                "product",
                RedisOptions::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn a_full_pending_set_drops_new_keys_and_says_so() {
        let mut state = State::default();
        for key in ["a", "b", "a"] {
            remember(&mut state, key.to_owned(), 2);
        }
        assert!(!state.overflowed);
        remember(&mut state, "c".to_owned(), 2);
        assert_eq!(state.pending.len(), 2);
        assert!(state.overflowed);
        assert!(!state.pending.contains("c"));
    }
}
