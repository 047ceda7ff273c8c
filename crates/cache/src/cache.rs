//! The read-through cache: lookup order, single loading per key, invalidation and metrics.

use std::fmt::{self, Display};
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Serialize, de::DeserializeOwned};

use crate::config::CacheConfig;
use crate::expiry::Lifetimes;
use crate::second_level::{Attached, SecondLevel};

/// How many generation counters keys are spread over. Invalidating a key also stops the in-flight
/// loads of the other keys sharing its counter from being cached: harmless, and rare enough.
const GENERATION_STRIPES: usize = 64;

/// A read-through cache of `V` by `K`, with an optional [`SecondLevel`].
///
/// Cloning is cheap and every clone shares the same entries, counters and second level.
pub struct Cache<K, V> {
    /// The in-process level; `None` is a remembered absence.
    pub(crate) local: moka::future::Cache<K, Option<V>>,
    shared: Arc<Shared>,
    second: Option<Arc<Attached<V>>>,
}

/// What every clone of one cache shares besides the entries.
struct Shared {
    name: &'static str,
    lifetimes: Lifetimes,
    counters: Counters,
    /// Bumped by every invalidation of a key in the stripe (and by `invalidate_all`), so that a load
    /// can tell whether an invalidation happened while it ran.
    generations: [AtomicU64; GENERATION_STRIPES],
    stripe_hasher: RandomState,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    negative_hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    load_errors: AtomicU64,
    second_level_hits: AtomicU64,
}

/// Plain counters since the cache was built, shared by all its clones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered with a present value from the in-process level.
    pub hits: u64,
    /// Reads answered with a remembered absence from the in-process level.
    pub negative_hits: u64,
    /// Reads that did not find the key in the in-process level (including those that then waited
    /// for another caller's load or found it in the second level).
    pub misses: u64,
    /// Times a loader ran.
    pub loads: u64,
    /// Times a loader returned an error.
    pub load_errors: u64,
    /// Misses answered by the second level without running the loader.
    pub second_level_hits: u64,
    /// Entries in the in-process level. Approximate: the count catches up with recent writes in
    /// batches.
    pub entries: u64,
}

/// Why a load's result is not to be cached; shared by every caller waiting for that load.
enum Interrupted<E, V> {
    /// The loader failed: every waiting caller gets this error and nothing is cached.
    Failed(Arc<E>),
    /// The key was invalidated while the load ran: its callers get the value, the cache does not.
    Superseded(Option<V>),
}

enum Lookup {
    Hit,
    NegativeHit,
    Miss,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            local: self.local.clone(),
            shared: Arc::clone(&self.shared),
            second: self.second.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.shared.name)
            .field("second_level", &self.second.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache with only the in-process level, holding up to `config.max_entries`.
    pub fn new(config: CacheConfig) -> Self {
        let builder = moka::future::Cache::builder().max_capacity(config.max_entries);
        Self::build(&config, builder)
    }

    /// An empty cache with only the in-process level, holding entries up to a total weight of
    /// `max_weight` (in place of `config.max_entries`), each weighing `weigh(key, value)`: with
    /// the bytes an entry holds as its weight, the cache stays within a memory budget however
    /// large its values are. A remembered absence weighs the key's share only (`weigh` is not
    /// asked), counted as 1.
    pub fn weighed(
        config: CacheConfig,
        max_weight: u64,
        weigh: impl Fn(&K, &V) -> u32 + Send + Sync + 'static,
    ) -> Self {
        Self::weighed_with_departures(config, max_weight, weigh, |_, _| {})
    }

    /// A [`weighed`](Self::weighed) cache that calls `departed(key, value)` whenever a present
    /// value leaves the in-process level (evicted for room, expired or invalidated), but not when
    /// a newer value for the same key replaces it. It runs on whichever task is doing the
    /// cache's housekeeping, so it must be quick and must not wait on the cache. Keeping an index
    /// beside the cache in step with it is what it is for.
    pub fn weighed_with_departures(
        config: CacheConfig,
        max_weight: u64,
        weigh: impl Fn(&K, &V) -> u32 + Send + Sync + 'static,
        departed: impl Fn(&K, &V) + Send + Sync + 'static,
    ) -> Self {
        let builder = moka::future::Cache::builder()
            .max_capacity(max_weight)
            .weigher(move |k: &K, v: &Option<V>| v.as_ref().map_or(1, |v| weigh(k, v)))
            .eviction_listener(move |k: Arc<K>, v: Option<V>, cause| {
                if cause != moka::notification::RemovalCause::Replaced
                    && let Some(v) = &v
                {
                    departed(&k, v);
                }
            });
        Self::build(&config, builder)
    }

    fn build(
        config: &CacheConfig,
        builder: moka::future::CacheBuilder<K, Option<V>, moka::future::Cache<K, Option<V>>>,
    ) -> Self {
        let lifetimes = Lifetimes {
            ttl: config.ttl,
            negative_ttl: config.negative_ttl,
            jitter: config.ttl_jitter,
        };
        let local = builder.name(config.name).expire_after(lifetimes).build();
        Self {
            local,
            shared: Arc::new(Shared {
                name: config.name,
                lifetimes,
                counters: Counters::default(),
                generations: std::array::from_fn(|_| AtomicU64::new(0)),
                stripe_hasher: RandomState::new(),
            }),
            second: None,
        }
    }

    /// Adds `level` between the in-process level and the loader, storing values as JSON under
    /// `"{name}:{key}"`.
    ///
    /// Lookups then go in-process level, second level (a hit fills the in-process level), loader
    /// (fills both); invalidation removes from both. Call it while building: clones made before do
    /// not see the second level.
    pub fn with_second_level(mut self, level: Arc<dyn SecondLevel>) -> Self
    where
        V: Serialize + DeserializeOwned,
    {
        self.second = Some(Arc::new(Attached::json(level)));
        self
    }

    /// The name given in the [`CacheConfig`].
    pub fn name(&self) -> &'static str {
        self.shared.name
    }

    /// The value for `key`, from the cache or else from `load`.
    ///
    /// A hit returns at once. On a miss `load` runs at most once per key however many callers miss
    /// together: the others wait for its result. `Ok(None)` (absent) is cached for the negative time
    /// to live. An `Err` is not cached and is returned to every caller that waited for that load.
    /// A load during which the key was invalidated answers its callers but is not cached.
    pub async fn get_or_load<E, F, Fut>(&self, key: &K, load: F) -> Result<Option<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>> + Send,
        E: Send + Sync + 'static,
    {
        if let Some(value) = self.local.get(key).await {
            self.shared.record_request(if value.is_some() {
                Lookup::Hit
            } else {
                Lookup::NegativeHit
            });
            return Ok(value);
        }
        self.shared.record_request(Lookup::Miss);

        // Set by `fill` in the one caller whose fill runs, to the generation it started under.
        let mut started_under = None;
        let fill = self.fill(key, load, &mut started_under);
        match self.local.try_get_with_by_ref(key, fill).await {
            Ok(value) => {
                if let Some(generation) = started_under
                    && self.shared.generation(key) != generation
                {
                    // An invalidation slipped in between the check at the end of `fill` and the
                    // insert that followed it: take the value out again.
                    self.local.invalidate(key).await;
                }
                Ok(value)
            }
            Err(interrupted) => match &*interrupted {
                Interrupted::Failed(error) => Err(Arc::clone(error)),
                Interrupted::Superseded(value) => Ok(value.clone()),
            },
        }
    }

    /// Forgets `key` in both levels. A load of `key` already running will not be cached.
    pub async fn invalidate(&self, key: &K) {
        // Bump first: a load that checks after this sees it, a load that checked before has already
        // written, and the removals below come after that write.
        self.shared.bump(key);
        self.local.invalidate(key).await;
        if let Some(second) = &self.second {
            second.level.remove(&self.second_level_key(key)).await;
        }
    }

    /// Forgets every key in the in-process level. Loads already running will not be cached.
    ///
    /// The second level cannot be listed, so its entries stay until they expire or are invalidated
    /// by key.
    pub fn invalidate_all(&self) {
        self.shared.bump_all();
        self.local.invalidate_all();
    }

    /// Does the housekeeping the in-process level defers (evictions for room, entry counts), so
    /// that what follows sees it done.
    pub async fn settle(&self) {
        self.local.run_pending_tasks().await;
    }

    /// The counters since the cache was built.
    pub fn stats(&self) -> CacheStats {
        let counters = &self.shared.counters;
        CacheStats {
            hits: counters.hits.load(Ordering::Relaxed),
            negative_hits: counters.negative_hits.load(Ordering::Relaxed),
            misses: counters.misses.load(Ordering::Relaxed),
            loads: counters.loads.load(Ordering::Relaxed),
            load_errors: counters.load_errors.load(Ordering::Relaxed),
            second_level_hits: counters.second_level_hits.load(Ordering::Relaxed),
            entries: self.local.entry_count(),
        }
    }

    /// Sets the gauge `emporium_cache_entries{cache}` to the in-process entry count; called by the
    /// metrics endpoint before it renders.
    pub fn publish_gauges(&self) {
        // Precision loss above 2^53 entries is irrelevant for a gauge.
        let entries = self.local.entry_count() as f64;
        metrics::gauge!("emporium_cache_entries", "cache" => self.shared.name).set(entries);
    }

    /// Fills a missing key from the second level or else the loader, refusing to cache what an
    /// invalidation overtook.
    async fn fill<E, F, Fut>(
        &self,
        key: &K,
        load: F,
        started_under: &mut Option<u64>,
    ) -> Result<Option<V>, Interrupted<E, V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let generation = self.shared.generation(key);
        *started_under = Some(generation);

        if let Some(value) = self.read_second_level(key).await {
            if self.shared.generation(key) != generation {
                return Err(Interrupted::Superseded(value));
            }
            return Ok(value);
        }

        self.shared.counters.loads.fetch_add(1, Ordering::Relaxed);
        let value = match load().await {
            Ok(value) => {
                self.shared.record_load("ok");
                value
            }
            Err(error) => {
                self.shared
                    .counters
                    .load_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.record_load("error");
                return Err(Interrupted::Failed(Arc::new(error)));
            }
        };
        if self.shared.generation(key) != generation {
            tracing::debug!(cache = self.shared.name, %key, "load overtaken by an invalidation, not cached");
            return Err(Interrupted::Superseded(value));
        }

        if let Some(second) = &self.second {
            let address = self.second_level_key(key);
            match (second.encode)(&value) {
                Ok(bytes) => {
                    let ttl = self.shared.lifetimes.pick(value.is_some());
                    second.level.put(&address, &bytes, ttl).await;
                }
                Err(error) => {
                    tracing::warn!(cache = self.shared.name, %key, %error, "value not encodable for the second level");
                }
            }
            // Same check again: an invalidation during the put may have removed before we wrote.
            if self.shared.generation(key) != generation {
                second.level.remove(&address).await;
                return Err(Interrupted::Superseded(value));
            }
        }
        Ok(value)
    }

    /// The second level's entry for `key`: `Some(None)` is a remembered absence; `None` means no
    /// second level, a miss there, or bytes that no longer decode (treated as a miss).
    async fn read_second_level(&self, key: &K) -> Option<Option<V>> {
        let second = self.second.as_ref()?;
        let Some(bytes) = second.level.get(&self.second_level_key(key)).await else {
            self.shared.record_second_level("miss");
            return None;
        };
        match (second.decode)(&bytes) {
            Ok(value) => {
                self.shared
                    .counters
                    .second_level_hits
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.record_second_level("hit");
                Some(value)
            }
            Err(error) => {
                // Likely written by an older version of the value type; the load overwrites it.
                tracing::warn!(cache = self.shared.name, %key, %error, "undecodable second-level entry ignored");
                self.shared.record_second_level("undecodable");
                None
            }
        }
    }

    fn second_level_key(&self, key: &K) -> String {
        format!("{}:{key}", self.shared.name)
    }
}

impl Shared {
    fn stripe<K: Hash>(&self, key: &K) -> &AtomicU64 {
        // The modulo keeps the index in range, so the truncation to usize is harmless.
        let index = (self.stripe_hasher.hash_one(key) % GENERATION_STRIPES as u64) as usize;
        &self.generations[index]
    }

    // Sequentially consistent: the protocol pairs "bump, then remove" in `invalidate` with
    // "insert, then read" in a load, which needs a single total order of those operations.
    fn generation<K: Hash>(&self, key: &K) -> u64 {
        self.stripe(key).load(Ordering::SeqCst)
    }

    fn bump<K: Hash>(&self, key: &K) {
        self.stripe(key).fetch_add(1, Ordering::SeqCst);
    }

    fn bump_all(&self) {
        for generation in &self.generations {
            generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn record_request(&self, lookup: Lookup) {
        let (counter, result) = match lookup {
            Lookup::Hit => (&self.counters.hits, "hit"),
            Lookup::NegativeHit => (&self.counters.negative_hits, "negative_hit"),
            Lookup::Miss => (&self.counters.misses, "miss"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emporium_cache_requests_total", "cache" => self.name, "result" => result)
            .increment(1);
    }

    fn record_load(&self, outcome: &'static str) {
        metrics::counter!("emporium_cache_loads_total", "cache" => self.name, "outcome" => outcome)
            .increment(1);
    }

    fn record_second_level(&self, result: &'static str) {
        metrics::counter!("emporium_cache_second_level_requests_total", "cache" => self.name, "result" => result)
            .increment(1);
    }
}
