//! Behaviour of the cache: hits, single loading, negative caching, errors, invalidation (including
//! the race with a running load), the second level and jitter.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, oneshot};

use crate::expiry::Lifetimes;
use crate::{Cache, CacheConfig, SecondLevel, jittered};

type Answer = Result<Option<String>, Arc<String>>;

fn config(name: &'static str) -> CacheConfig {
    CacheConfig {
        name,
        max_entries: 1_000,
        ttl: Duration::from_secs(60),
        ttl_jitter: 0.1,
        negative_ttl: Duration::from_secs(60),
    }
}

fn product_cache() -> Cache<u32, String> {
    Cache::new(config("product"))
}

/// A loader that counts its calls and answers `value`.
async fn load(calls: Arc<AtomicU64>, value: Option<&str>) -> Result<Option<String>, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(value.map(str::to_owned))
}

/// A loader that counts its calls and fails.
async fn fail(calls: Arc<AtomicU64>) -> Result<Option<String>, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    Err("database unreachable".to_owned())
}

fn count(calls: &AtomicU64) -> u64 {
    calls.load(Ordering::SeqCst)
}

/// A second level in memory; it records the lifetime each entry was given but never expires one.
#[derive(Default)]
struct MemoryLevel {
    entries: Mutex<HashMap<String, (Vec<u8>, Duration)>>,
    gets: AtomicU64,
}

impl MemoryLevel {
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.entries.lock().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn ttl_of(&self, key: &str) -> Option<Duration> {
        self.entries.lock().unwrap().get(key).map(|(_, ttl)| *ttl)
    }

    fn set_raw(&self, key: &str, bytes: &[u8]) {
        self.entries
            .lock()
            .unwrap()
            .insert(key.to_owned(), (bytes.to_vec(), Duration::from_secs(60)));
    }
}

#[async_trait]
impl SecondLevel for MemoryLevel {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.entries
            .lock()
            .unwrap()
            .get(key)
            .map(|(bytes, _)| bytes.clone())
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        self.entries
            .lock()
            .unwrap()
            .insert(key.to_owned(), (value.to_vec(), ttl));
    }

    async fn remove(&self, key: &str) {
        self.entries.lock().unwrap().remove(key);
    }
}

/// Starts a read of `key` whose loader signals when it has begun, then waits for `release` and
/// answers `"old"`; returns the read's handle once the loader is running.
async fn start_slow_load(
    cache: &Cache<u32, String>,
    key: u32,
    release: &Arc<Notify>,
) -> tokio::task::JoinHandle<Answer> {
    let (started_tx, started_rx) = oneshot::channel();
    let cache = cache.clone();
    let release = Arc::clone(release);
    let handle = tokio::spawn(async move {
        cache
            .get_or_load(&key, || async move {
                let _ = started_tx.send(());
                release.notified().await;
                Ok::<_, String>(Some("old".to_owned()))
            })
            .await
    });
    started_rx.await.unwrap();
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_read_is_a_hit_and_does_not_call_the_loader() {
    let cache = product_cache();
    let calls = Arc::new(AtomicU64::new(0));

    let first = cache
        .get_or_load(&1, || load(calls.clone(), Some("mug")))
        .await;
    let second = cache
        .get_or_load(&1, || load(calls.clone(), Some("other")))
        .await;

    assert_eq!(first, Ok(Some("mug".to_owned())));
    assert_eq!(second, Ok(Some("mug".to_owned())));
    assert_eq!(count(&calls), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_on_one_key_run_the_loader_once() {
    let cache = product_cache();
    let calls = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Barrier::new(100));

    let readers: Vec<_> = (0..100)
        .map(|_| {
            let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                cache
                    .get_or_load(&5, || async move {
                        // Yielding keeps the load open while the other readers arrive.
                        for _ in 0..10 {
                            tokio::task::yield_now().await;
                        }
                        load(calls, Some("lamp")).await
                    })
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for reader in readers {
        answers.push(reader.await.unwrap());
    }

    assert!(answers.iter().all(|a| *a == Ok(Some("lamp".to_owned()))));
    assert_eq!(count(&calls), 1);
    let stats = cache.stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.hits + stats.misses, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_key_is_remembered_and_read_again_once_forgotten() {
    let cache = Cache::<u32, String>::new(CacheConfig {
        ttl_jitter: 0.0,
        ..config("product")
    });
    let calls = Arc::new(AtomicU64::new(0));

    let first = cache.get_or_load(&404, || load(calls.clone(), None)).await;
    let second = cache.get_or_load(&404, || load(calls.clone(), None)).await;
    assert_eq!(first, Ok(None));
    assert_eq!(second, Ok(None));
    assert_eq!(count(&calls), 1);
    assert_eq!(cache.stats().negative_hits, 1);

    // What expiry does (moka drops the entry once its lifetime, below, has passed).
    cache.local.invalidate(&404).await;
    let third = cache.get_or_load(&404, || load(calls.clone(), None)).await;
    assert_eq!(third, Ok(None));
    assert_eq!(cache.stats().loads, 2);
}

#[test]
fn an_absence_lives_for_the_negative_ttl_and_a_value_for_the_ttl() {
    use moka::Expiry;
    let lifetimes = crate::expiry::Lifetimes {
        ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(1),
        jitter: 0.0,
    };
    let now = std::time::Instant::now();
    let absent: Option<String> = None;
    let present = Some("kettle".to_owned());

    assert_eq!(
        lifetimes.expire_after_create(&404, &absent, now),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        lifetimes.expire_after_create(&42, &present, now),
        Some(Duration::from_secs(60))
    );
    // A key that turns up (or goes away) takes the lifetime of what it now holds.
    assert_eq!(
        lifetimes.expire_after_update(&404, &present, now, Some(Duration::from_millis(10))),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        lifetimes.expire_after_update(&42, &absent, now, Some(Duration::from_secs(59))),
        Some(Duration::from_secs(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_is_not_cached_and_the_next_read_loads_again() {
    let cache = product_cache();
    let calls = Arc::new(AtomicU64::new(0));

    let failed = cache.get_or_load(&3, || fail(calls.clone())).await;
    let loaded = cache
        .get_or_load(&3, || load(calls.clone(), Some("vase")))
        .await;

    assert_eq!(failed, Err(Arc::new("database unreachable".to_owned())));
    assert_eq!(loaded, Ok(Some("vase".to_owned())));
    assert_eq!(count(&calls), 2);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_of_a_failing_load_all_get_the_error() {
    let cache = product_cache();
    let calls = Arc::new(AtomicU64::new(0));

    let readers: Vec<_> = (0..20)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move { cache.get_or_load(&9, || fail(calls)).await })
        })
        .collect();
    for reader in readers {
        let answer = reader.await.unwrap();
        assert_eq!(answer, Err(Arc::new("database unreachable".to_owned())));
    }

    // Whether callers shared a failing load or ran their own, each error was counted and none cached.
    let stats = cache.stats();
    assert_eq!(stats.load_errors, count(&calls));
    let loaded = cache
        .get_or_load(&9, || load(calls.clone(), Some("bowl")))
        .await;
    assert_eq!(loaded, Ok(Some("bowl".to_owned())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_makes_the_next_read_load_again() {
    let cache = product_cache();
    let calls = Arc::new(AtomicU64::new(0));
    cache
        .get_or_load(&2, || load(calls.clone(), Some("v1")))
        .await
        .unwrap();

    cache.invalidate(&2).await;
    let after = cache
        .get_or_load(&2, || load(calls.clone(), Some("v2")))
        .await;

    assert_eq!(after, Ok(Some("v2".to_owned())));
    assert_eq!(count(&calls), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_all_makes_every_next_read_load_again() {
    let cache = product_cache();
    let calls = Arc::new(AtomicU64::new(0));
    for key in 0..3 {
        cache
            .get_or_load(&key, || load(calls.clone(), Some("v1")))
            .await
            .unwrap();
    }

    cache.invalidate_all();
    for key in 0..3 {
        let after = cache
            .get_or_load(&key, || load(calls.clone(), Some("v2")))
            .await;
        assert_eq!(after, Ok(Some("v2".to_owned())));
    }
    assert_eq!(count(&calls), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_overtaken_by_invalidate_answers_its_caller_but_is_not_cached_in_either_level() {
    let level = Arc::new(MemoryLevel::default());
    let cache = product_cache().with_second_level(level.clone());
    let release = Arc::new(Notify::new());

    let slow = start_slow_load(&cache, 7, &release).await;
    cache.invalidate(&7).await;
    release.notify_one();
    let answer = slow.await.unwrap();

    assert_eq!(answer, Ok(Some("old".to_owned())));
    assert!(
        level.keys().is_empty(),
        "stale value left in the second level"
    );
    let calls = Arc::new(AtomicU64::new(0));
    let next = cache
        .get_or_load(&7, || load(calls.clone(), Some("new")))
        .await;
    assert_eq!(next, Ok(Some("new".to_owned())));
    assert_eq!(count(&calls), 1);
    let cached = cache
        .get_or_load(&7, || load(calls.clone(), Some("newer")))
        .await;
    assert_eq!(cached, Ok(Some("new".to_owned())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_overtaken_by_invalidate_all_is_not_cached() {
    let cache = product_cache();
    let release = Arc::new(Notify::new());

    let slow = start_slow_load(&cache, 8, &release).await;
    cache.invalidate_all();
    release.notify_one();
    assert_eq!(slow.await.unwrap(), Ok(Some("old".to_owned())));

    let calls = Arc::new(AtomicU64::new(0));
    let next = cache
        .get_or_load(&8, || load(calls.clone(), Some("new")))
        .await;
    assert_eq!(next, Ok(Some("new".to_owned())));
    assert_eq!(count(&calls), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_not_overtaken_by_an_invalidation_is_cached() {
    let cache = product_cache();
    let release = Arc::new(Notify::new());

    let slow = start_slow_load(&cache, 8, &release).await;
    release.notify_one();
    assert_eq!(slow.await.unwrap(), Ok(Some("old".to_owned())));

    let calls = Arc::new(AtomicU64::new(0));
    let next = cache
        .get_or_load(&8, || load(calls.clone(), Some("new")))
        .await;
    assert_eq!(next, Ok(Some("old".to_owned())));
    assert_eq!(count(&calls), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_level_hit_fills_the_first_level_without_calling_the_loader() {
    let level = Arc::new(MemoryLevel::default());
    // Two caches sharing one second level stand for two instances of the service.
    let first = product_cache().with_second_level(level.clone());
    let second = product_cache().with_second_level(level.clone());
    let calls = Arc::new(AtomicU64::new(0));

    let loaded = first
        .get_or_load(&42, || load(calls.clone(), Some("chair")))
        .await;
    assert_eq!(level.keys(), vec!["product:42".to_owned()]);
    let ttl = level.ttl_of("product:42").unwrap();
    assert!(
        ttl >= Duration::from_secs(54) && ttl <= Duration::from_secs(66),
        "{ttl:?}"
    );

    let shared = second
        .get_or_load(&42, || load(calls.clone(), Some("other")))
        .await;
    let gets_after_fill = level.gets.load(Ordering::SeqCst);
    let local = second
        .get_or_load(&42, || load(calls.clone(), Some("other")))
        .await;

    assert_eq!(loaded, Ok(Some("chair".to_owned())));
    assert_eq!(shared, Ok(Some("chair".to_owned())));
    assert_eq!(local, Ok(Some("chair".to_owned())));
    assert_eq!(count(&calls), 1);
    assert_eq!(
        level.gets.load(Ordering::SeqCst),
        gets_after_fill,
        "second read went past the first level"
    );
    let stats = second.stats();
    assert_eq!(
        (stats.second_level_hits, stats.loads, stats.hits),
        (1, 0, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_keys_are_shared_through_the_second_level_too() {
    let level = Arc::new(MemoryLevel::default());
    let first = product_cache().with_second_level(level.clone());
    let second = product_cache().with_second_level(level.clone());
    let calls = Arc::new(AtomicU64::new(0));

    assert_eq!(
        first.get_or_load(&404, || load(calls.clone(), None)).await,
        Ok(None)
    );
    assert_eq!(
        second
            .get_or_load(&404, || load(calls.clone(), Some("x")))
            .await,
        Ok(None)
    );
    assert_eq!(count(&calls), 1);
    let ttl = level.ttl_of("product:404").unwrap();
    assert!(
        ttl >= Duration::from_secs(54) && ttl <= Duration::from_secs(66),
        "{ttl:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_removes_the_key_from_both_levels() {
    let level = Arc::new(MemoryLevel::default());
    let cache = product_cache().with_second_level(level.clone());
    let calls = Arc::new(AtomicU64::new(0));
    cache
        .get_or_load(&42, || load(calls.clone(), Some("v1")))
        .await
        .unwrap();
    cache
        .get_or_load(&43, || load(calls.clone(), Some("v1")))
        .await
        .unwrap();

    cache.invalidate(&42).await;

    assert_eq!(level.keys(), vec!["product:43".to_owned()]);
    let after = cache
        .get_or_load(&42, || load(calls.clone(), Some("v2")))
        .await;
    assert_eq!(after, Ok(Some("v2".to_owned())));
    assert_eq!(count(&calls), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_second_level_entry_counts_as_a_miss_and_is_replaced() {
    let level = Arc::new(MemoryLevel::default());
    level.set_raw("product:42", b"not json");
    let cache = product_cache().with_second_level(level.clone());
    let calls = Arc::new(AtomicU64::new(0));

    let answer = cache
        .get_or_load(&42, || load(calls.clone(), Some("desk")))
        .await;

    assert_eq!(answer, Ok(Some("desk".to_owned())));
    assert_eq!(count(&calls), 1);
    let fresh = product_cache().with_second_level(level.clone());
    let shared = fresh
        .get_or_load(&42, || load(calls.clone(), Some("other")))
        .await;
    assert_eq!(shared, Ok(Some("desk".to_owned())));
    assert_eq!(count(&calls), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_entries_of_the_first_level() {
    let cache = product_cache();
    let calls = Arc::new(AtomicU64::new(0));
    for key in 0..4 {
        cache
            .get_or_load(&key, || load(calls.clone(), Some("v")))
            .await
            .unwrap();
    }
    cache
        .get_or_load(&99, || load(calls.clone(), None))
        .await
        .unwrap();

    cache.local.run_pending_tasks().await;

    assert_eq!(cache.stats().entries, 5);
    cache.publish_gauges();
}

#[tokio::test]
async fn a_weighed_cache_keeps_its_values_within_the_weight_budget() {
    // Values of 100 bytes in a budget of 1,000: about ten fit, however many are loaded.
    let cache: Cache<u32, String> =
        Cache::weighed(config("body"), 1_000, |_, v: &String| v.len() as u32);
    let calls = Arc::new(AtomicU64::new(0));
    let big = "x".repeat(100);
    for key in 0..200 {
        let value = cache
            .get_or_load(&key, || load(calls.clone(), Some(&big)))
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some(big.as_str()));
    }
    cache.local.run_pending_tasks().await;
    assert!(
        cache.local.weighted_size() <= 1_000,
        "{}",
        cache.local.weighted_size()
    );
    let entries = cache.stats().entries;
    assert!((1..=10).contains(&entries), "{entries} entries");
    assert_eq!(count(&calls), 200);
}

#[tokio::test]
async fn departures_report_every_value_that_leaves_and_no_absence() {
    let departed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&departed);
    let cache: Cache<u32, String> = Cache::weighed_with_departures(
        config("body"),
        1_000,
        |_, v: &String| v.len() as u32,
        move |k, v| seen.lock().unwrap().push((*k, v.len())),
    );
    let calls = Arc::new(AtomicU64::new(0));
    let big = "x".repeat(100);
    for key in 0..50 {
        cache
            .get_or_load(&key, || load(calls.clone(), Some(&big)))
            .await
            .unwrap();
    }
    // An absence is cached, then invalidated: no value left, so nothing is reported.
    cache
        .get_or_load(&1_000, || load(calls.clone(), None))
        .await
        .unwrap();
    cache.invalidate(&1_000).await;
    cache.local.run_pending_tasks().await;
    let kept: Vec<u32> = (0..50).filter(|k| cache.local.contains_key(k)).collect();
    assert!(!kept.is_empty() && kept.len() <= 10, "{kept:?}");
    let gone = |departed: &[(u32, usize)]| {
        let mut keys: Vec<u32> = departed.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys
    };
    // Each key either stayed or was reported once, with its value.
    let evicted: Vec<u32> = (0..50).filter(|k| !kept.contains(k)).collect();
    assert_eq!(gone(&departed.lock().unwrap()), evicted);
    assert!(departed.lock().unwrap().iter().all(|(_, len)| *len == 100));

    // An invalidated value is reported too.
    cache.invalidate(&kept[0]).await;
    cache.local.run_pending_tasks().await;
    let mut expected = evicted;
    expected.push(kept[0]);
    expected.sort_unstable();
    assert_eq!(gone(&departed.lock().unwrap()), expected);
}

#[test]
fn jittered_stays_within_the_jitter_bounds() {
    let base = Duration::from_secs(100);
    for step in 0..1_000 {
        let unit = f64::from(step) / 1_000.0;
        let lifetime = jittered(base, 0.2, unit);
        assert!(
            lifetime >= Duration::from_secs(80),
            "{lifetime:?} at {unit}"
        );
        assert!(
            lifetime < Duration::from_secs(120),
            "{lifetime:?} at {unit}"
        );
    }
    assert_eq!(jittered(base, 0.2, 0.0), Duration::from_secs(80));
    assert_eq!(jittered(base, 0.2, 0.5), base);
}

#[test]
fn jittered_gives_different_lifetimes_for_different_units() {
    let base = Duration::from_secs(100);
    let low = jittered(base, 0.1, 0.1);
    let high = jittered(base, 0.1, 0.9);
    assert!(low < base && base < high, "{low:?} {high:?}");
}

#[test]
fn jittered_clamps_bad_arguments_instead_of_panicking() {
    let base = Duration::from_secs(100);
    let check = |jitter: f64, unit: f64, low: u64, high: u64| {
        let lifetime = jittered(base, jitter, unit);
        assert!(
            lifetime >= Duration::from_secs(low) && lifetime <= Duration::from_secs(high),
            "jitter {jitter} unit {unit}: {lifetime:?}"
        );
    };
    check(0.0, 0.99, 100, 100);
    check(3.0, 0.0, 50, 50);
    check(-1.0, 0.0, 100, 100);
    check(f64::NAN, 0.0, 100, 100);
    check(0.5, f64::NAN, 100, 100);
    check(0.5, 7.0, 150, 150);
    assert_eq!(jittered(Duration::MAX, 0.5, 0.99), Duration::MAX);
}

#[test]
fn lifetimes_use_the_negative_ttl_for_absent_values() {
    let lifetimes = Lifetimes {
        ttl: Duration::from_secs(300),
        negative_ttl: Duration::from_secs(10),
        jitter: 0.5,
    };
    for _ in 0..100 {
        let present = lifetimes.pick(true);
        let absent = lifetimes.pick(false);
        assert!(present >= Duration::from_secs(150) && present <= Duration::from_secs(450));
        assert!(absent >= Duration::from_secs(5) && absent <= Duration::from_secs(15));
    }
}

/// A recorder that keeps each counter and gauge under `name{label=value,…}`.
#[derive(Default)]
struct Recording {
    values: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Recording {
    fn handle(&self, key: &metrics::Key) -> Arc<AtomicU64> {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.values.lock().unwrap().entry(name).or_default())
    }

    fn counter(&self, name: &str) -> u64 {
        self.values
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |value| value.load(Ordering::SeqCst))
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        let values = self.values.lock().unwrap();
        values
            .get(name)
            .map(|value| f64::from_bits(value.load(Ordering::SeqCst)))
    }
}

impl metrics::Recorder for Recording {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.handle(key))
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[test]
fn reads_loads_and_entries_are_published_as_metrics() {
    let recorder = Recording::default();
    // The local recorder lives on this thread, so the reads run on a runtime driven by it.
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let cache = product_cache();
            let calls = Arc::new(AtomicU64::new(0));
            cache
                .get_or_load(&1, || load(calls.clone(), Some("a")))
                .await
                .unwrap();
            cache
                .get_or_load(&1, || load(calls.clone(), Some("a")))
                .await
                .unwrap();
            cache
                .get_or_load(&2, || load(calls.clone(), None))
                .await
                .unwrap();
            cache
                .get_or_load(&2, || load(calls.clone(), None))
                .await
                .unwrap();
            cache
                .get_or_load(&3, || fail(calls.clone()))
                .await
                .unwrap_err();
            cache.local.run_pending_tasks().await;
            cache.publish_gauges();
        });
    });

    let requests = "emporium_cache_requests_total{cache=product,result=";
    assert_eq!(recorder.counter(&format!("{requests}hit}}")), 1);
    assert_eq!(recorder.counter(&format!("{requests}negative_hit}}")), 1);
    assert_eq!(recorder.counter(&format!("{requests}miss}}")), 3);
    let loads = "emporium_cache_loads_total{cache=product,outcome=";
    assert_eq!(recorder.counter(&format!("{loads}ok}}")), 2);
    assert_eq!(recorder.counter(&format!("{loads}error}}")), 1);
    assert_eq!(
        recorder.gauge("emporium_cache_entries{cache=product}"),
        Some(2.0)
    );
}
