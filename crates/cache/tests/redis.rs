//! The Redis second level against a real Redis: shared entries between two caches (as two
//! processes would hold), invalidation across them, remembered absences, and a Redis that dies
//! and comes back or stops answering. Needs `EMPORIUM_TEST_REDIS_URL`; the fault tests start their
//! own `redis-server` (and put a fault proxy in front of it).
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use emporium_cache::{Cache, CacheConfig, RedisLevel, RedisOptions, SecondLevel};
use emporium_faultproxy::{Fault, FaultProxy};

/// The shared Redis, or `None` (after saying so) when the suite is not to run here.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("EMPORIUM_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("EMPORIUM_TEST_REQUIRE_REDIS").as_deref() != Ok("1"),
                "{test} needs EMPORIUM_TEST_REDIS_URL (EMPORIUM_TEST_REQUIRE_REDIS=1)"
            );
            eprintln!("NOT RUN: {test} (set EMPORIUM_TEST_REDIS_URL)");
            None
        }
    }
}

/// Options with a prefix of this run's own, so that runs sharing a Redis never meet.
fn options(cool_down: Duration) -> RedisOptions {
    RedisOptions {
        prefix: format!("emporium-test-{}-{}", std::process::id(), fastrand::u64(..)),
        // Generous: a loaded test machine must not turn a healthy Redis into a failure.
        deadline: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        cool_down,
        ..RedisOptions::default()
    }
}

/// A cache over `level` whose loader answers `value` and counts its calls.
struct Node {
    cache: Cache<String, String>,
    loads: Arc<AtomicUsize>,
}

impl Node {
    fn new(level: &RedisLevel) -> Self {
        let level: Arc<dyn SecondLevel> = Arc::new(level.clone());
        Self {
            cache: Cache::new(CacheConfig::new("product")).with_second_level(level),
            loads: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn read(&self, key: &str, value: Option<&str>) -> Option<String> {
        let loads = Arc::clone(&self.loads);
        let value = value.map(str::to_owned);
        self.cache
            .get_or_load(&key.to_owned(), || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(value)
            })
            .await
            .unwrap()
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

/// Two processes' worth of caches: separate levels (connections, back-off) over one Redis.
fn two_nodes(url: &str) -> (Node, Node) {
    let options = options(Duration::from_secs(1));
    let a = RedisLevel::open(url, "product", options.clone()).unwrap();
    let b = RedisLevel::open(url, "product", options).unwrap();
    (Node::new(&a), Node::new(&b))
}

#[tokio::test]
async fn a_value_loaded_by_one_cache_is_served_to_the_other_from_redis() {
    let Some(url) = redis_url("a_value_loaded_by_one_cache_is_served_to_the_other_from_redis")
    else {
        return;
    };
    let (a, b) = two_nodes(&url);

    assert_eq!(a.read("7", Some("mug")).await.as_deref(), Some("mug"));
    assert_eq!(b.read("7", Some("other")).await.as_deref(), Some("mug"));

    assert_eq!((a.loads(), b.loads()), (1, 0));
    assert_eq!(b.cache.stats().second_level_hits, 1);
}

#[tokio::test]
async fn an_invalidation_in_one_cache_makes_the_other_load_afresh() {
    let Some(url) = redis_url("an_invalidation_in_one_cache_makes_the_other_load_afresh") else {
        return;
    };
    let (a, b) = two_nodes(&url);
    a.read("7", Some("mug")).await;

    a.cache.invalidate(&"7".to_owned()).await;

    assert_eq!(
        b.read("7", Some("new mug")).await.as_deref(),
        Some("new mug")
    );
    assert_eq!(b.loads(), 1);
    // And what b loaded is what a finds now.
    assert_eq!(a.read("7", Some("stale")).await.as_deref(), Some("new mug"));
    assert_eq!(a.loads(), 1);
}

#[tokio::test]
async fn an_absence_is_shared_as_an_absence() {
    let Some(url) = redis_url("an_absence_is_shared_as_an_absence") else {
        return;
    };
    let (a, b) = two_nodes(&url);

    assert_eq!(a.read("404", None).await, None);
    assert_eq!(b.read("404", Some("found")).await, None);

    assert_eq!((a.loads(), b.loads()), (1, 0));
}

#[tokio::test]
async fn an_undecodable_entry_counts_as_a_miss() {
    let Some(url) = redis_url("an_undecodable_entry_counts_as_a_miss") else {
        return;
    };
    let (a, _) = two_nodes(&url);
    let level = RedisLevel::open(&url, "product", options(Duration::from_secs(1))).unwrap();
    let a = Node {
        cache: Cache::new(CacheConfig::new("product"))
            .with_second_level(Arc::new(level.clone()) as Arc<dyn SecondLevel>),
        ..a
    };
    level
        .put("product:9", b"not json", Duration::from_secs(60))
        .await;

    assert_eq!(a.read("9", Some("mug")).await.as_deref(), Some("mug"));
    assert_eq!(a.loads(), 1);
    // The load replaced the bad bytes.
    assert!(
        level
            .get("product:9")
            .await
            .is_some_and(|b| b != b"not json")
    );
}

/// A `redis-server` of the test's own, listening once `start` returns, killed by its PID when
/// dropped.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 25 ms until it holds; fails after ten seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn reads_answer_from_the_loader_while_redis_is_down_and_use_it_again_once_back() {
    if redis_url("reads_answer_from_the_loader_while_redis_is_down_and_use_it_again_once_back")
        .is_none()
    {
        return;
    }
    let mut redis = OwnRedis::start(free_port());
    let options = options(Duration::from_millis(100));
    let level_a = RedisLevel::open(&redis.url(), "product", options.clone()).unwrap();
    let level_b = RedisLevel::open(&redis.url(), "product", options).unwrap();
    let (a, b) = (Node::new(&level_a), Node::new(&level_b));
    // Up: a's load reaches b through Redis.
    eventually("the own redis answering", || async {
        level_a
            .put("product:up", b"x", Duration::from_secs(60))
            .await;
        level_a.get("product:up").await.is_some()
    })
    .await;
    a.read("1", Some("one")).await;
    assert_eq!(b.read("1", Some("one")).await.as_deref(), Some("one"));
    assert_eq!(b.loads(), 0);

    redis.stop();

    // Down: every read still answers, from the loader, and the levels say why.
    for key in ["2", "3", "4"] {
        assert_eq!(a.read(key, Some("v")).await.as_deref(), Some("v"));
        assert_eq!(b.read(key, Some("v")).await.as_deref(), Some("v"));
    }
    assert_eq!((a.loads(), b.loads()), (4, 3));
    assert!(!level_a.is_available() && !level_b.is_available());
    assert!(level_a.failures() >= 1 && level_b.failures() >= 1);
    // An invalidation made now returns too (the removal is kept for later).
    a.cache.invalidate(&"1".to_owned()).await;

    let _redis = OwnRedis::start(redis.port);

    // Back: after a cool-down, a's loads reach b through Redis again.
    let mut round = 0;
    eventually("the second level being used again", || {
        round += 1;
        let key = format!("back-{round}");
        let (a, b) = (&a, &b);
        async move {
            a.read(&key, Some("back")).await;
            let before = b.loads();
            b.read(&key, Some("back")).await;
            b.loads() == before
        }
    })
    .await;
    assert!(level_a.is_available());
}

#[tokio::test]
async fn a_redis_that_stops_answering_costs_one_deadline_per_cool_down_not_one_per_read() {
    if redis_url("a_redis_that_stops_answering_costs_one_deadline_per_cool_down_not_one_per_read")
        .is_none()
    {
        return;
    }
    let redis = OwnRedis::start(free_port());
    let upstream = format!("127.0.0.1:{}", redis.port).parse().unwrap();
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), upstream)
        .await
        .unwrap();
    let through_proxy = format!("redis://{}", proxy.local_addr());
    let slow = RedisOptions {
        // Long enough that a busy machine does not miss it while Redis answers.
        deadline: Duration::from_secs(1),
        // Longer than the test: no probe happens while it runs.
        cool_down: Duration::from_secs(600),
        ..options(Duration::ZERO)
    };
    let level = RedisLevel::open(&through_proxy, "product", slow.clone()).unwrap();
    let node = Node::new(&level);
    eventually("the own redis answering", || async {
        level.put("product:up", b"x", Duration::from_secs(60)).await;
        level.get("product:up").await.is_some()
    })
    .await;
    let failures_before = level.failures();

    proxy.set(Fault::Blackhole).await.unwrap();

    for key in 0..20 {
        let key = format!("dark-{key}");
        assert_eq!(node.read(&key, Some("v")).await.as_deref(), Some("v"));
    }
    assert_eq!(node.loads(), 20);
    // The first read waited for the deadline; the others skipped Redis.
    assert_eq!(level.failures(), failures_before + 1);
    assert!(!level.is_available());
}

#[tokio::test]
async fn an_invalidation_made_while_redis_is_unreachable_reaches_it_once_it_answers() {
    if redis_url("an_invalidation_made_while_redis_is_unreachable_reaches_it_once_it_answers")
        .is_none()
    {
        return;
    }
    let redis = OwnRedis::start(free_port());
    let upstream = format!("127.0.0.1:{}", redis.port).parse().unwrap();
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), upstream)
        .await
        .unwrap();
    let options = options(Duration::from_millis(100));
    let through_proxy = RedisLevel::open(
        &format!("redis://{}", proxy.local_addr()),
        "product",
        options.clone(),
    )
    .unwrap();
    let direct = RedisLevel::open(&redis.url(), "product", options).unwrap();
    let node = Node::new(&through_proxy);
    eventually("the value reaching redis", || async {
        node.cache.invalidate(&"1".to_owned()).await;
        node.read("1", Some("old")).await;
        direct.get("product:1").await.is_some()
    })
    .await;

    proxy.set(Fault::Reset).await.unwrap();
    node.cache.invalidate(&"1".to_owned()).await;
    // Redis itself still holds the entry: the removal did not get through.
    assert!(direct.get("product:1").await.is_some());
    assert!(!through_proxy.is_available());

    proxy.set(Fault::Pass).await.unwrap();

    let mut round = 0;
    eventually("the kept removal reaching redis", || {
        round += 1;
        let key = format!("after-{round}");
        let (node, direct) = (&node, &direct);
        async move {
            node.read(&key, Some("v")).await;
            direct.get("product:1").await.is_none()
        }
    })
    .await;
    assert!(through_proxy.is_available());
}
