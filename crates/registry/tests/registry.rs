//! The registry against a real NATS server: registrations appear in a watcher, leave on
//! deregistration or when their heartbeat stops, update in place, and survive a server restart.
//!
//! The server's URL comes from `EMPORIUM_TEST_NATS_URL`; each test uses a bucket of its own.
//! The restart test starts (and kills) a `nats-server` of its own on a free loopback port.

// Test code may panic on the unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use emporium_registry::{Directory, Instance, Registry, RegistryError};
use tokio::sync::watch;

/// The shared server's URL, or `None` after saying the test did not run.
fn nats_url(test: &str) -> Option<String> {
    match std::env::var("EMPORIUM_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("EMPORIUM_TEST_REQUIRE_NATS").as_deref() != Ok("1"),
                "EMPORIUM_TEST_NATS_URL is not set but EMPORIUM_TEST_REQUIRE_NATS=1"
            );
            eprintln!("NOT RUN: {test} (set EMPORIUM_TEST_NATS_URL)");
            None
        }
    }
}

fn bucket() -> String {
    format!("test_{}", uuid_like())
}

/// A unique enough token without another dependency: the process id and a counter.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        nanos
    )
}

fn instance(group: &str, id: &str, version: &str, weight: u32) -> Instance {
    Instance {
        group: group.to_owned(),
        id: id.to_owned(),
        url: format!("http://127.0.0.1:80/{id}"),
        version: version.to_owned(),
        weight,
        zone: "z1".to_owned(),
    }
}

/// Removes the bucket's stream.
async fn remove_bucket(url: &str, bucket: &str) {
    let client = async_nats::connect(url).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream(format!("KV_{bucket}"))
        .await
        .unwrap();
}

/// Waits until the directory satisfies `condition`; fails after `limit`.
async fn wait_for(
    rx: &mut watch::Receiver<Directory>,
    what: &str,
    limit: Duration,
    condition: impl Fn(&Directory) -> bool,
) {
    let waited = tokio::time::timeout(limit, rx.wait_for(|d| condition(d)))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(
        waited,
        "timed out waiting until {what}; directory: {:?}",
        *rx.borrow()
    );
}

fn ids(directory: &Directory, group: &str) -> Vec<String> {
    directory
        .get(group)
        .map(|list| list.iter().map(|i| i.id.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_instances_appear_in_a_watcher_by_group() {
    let Some(url) = nats_url("registered_instances_appear_in_a_watcher_by_group") else {
        return;
    };
    let bucket = bucket();
    let registry = Registry::connect(&url, &bucket, Duration::from_secs(2))
        .await
        .unwrap();
    let mut rx = registry.watch();

    let _b = registry
        .register(instance("catalog", "b", "1", 1))
        .await
        .unwrap();
    let _a = registry
        .register(instance("catalog", "a", "1", 1))
        .await
        .unwrap();
    let _s = registry
        .register(instance("search", "s1", "1", 1))
        .await
        .unwrap();

    wait_for(
        &mut rx,
        "three instances show",
        Duration::from_secs(10),
        |d| ids(d, "catalog") == ["a", "b"] && ids(d, "search") == ["s1"],
    )
    .await;
    // A second watcher started later loads what is there.
    let mut late = registry.watch();
    wait_for(
        &mut late,
        "a late watcher loads them",
        Duration::from_secs(10),
        |d| ids(d, "catalog") == ["a", "b"] && ids(d, "search") == ["s1"],
    )
    .await;
    assert_eq!(rx.borrow()["catalog"][0], instance("catalog", "a", "1", 1));
    remove_bucket(&url, &bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deregistered_instance_leaves_at_once_not_at_expiry() {
    let Some(url) = nats_url("a_deregistered_instance_leaves_at_once_not_at_expiry") else {
        return;
    };
    let bucket = bucket();
    // A TTL far longer than the wait below: only the delete can remove the instance in time.
    let registry = Registry::connect(&url, &bucket, Duration::from_secs(60))
        .await
        .unwrap();
    let mut rx = registry.watch();
    let leaving = registry
        .register(instance("catalog", "a", "1", 1))
        .await
        .unwrap();
    let _staying = registry
        .register(instance("catalog", "b", "1", 1))
        .await
        .unwrap();
    wait_for(&mut rx, "both show", Duration::from_secs(10), |d| {
        ids(d, "catalog") == ["a", "b"]
    })
    .await;

    leaving.deregister().await.unwrap();

    wait_for(
        &mut rx,
        "the leaver is gone",
        Duration::from_secs(10),
        |d| ids(d, "catalog") == ["b"],
    )
    .await;
    remove_bucket(&url, &bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_heartbeat_stops_disappears_and_a_beating_one_stays() {
    let Some(url) =
        nats_url("an_instance_whose_heartbeat_stops_disappears_and_a_beating_one_stays")
    else {
        return;
    };
    let bucket = bucket();
    let registry = Registry::connect(&url, &bucket, Duration::from_secs(2))
        .await
        .unwrap();
    let mut rx = registry.watch();
    let alive = registry
        .register(instance("inventory", "alive", "1", 1))
        .await
        .unwrap();
    let dead = registry
        .register(instance("inventory", "dead", "1", 1))
        .await
        .unwrap();
    wait_for(&mut rx, "both show", Duration::from_secs(10), |d| {
        ids(d, "inventory") == ["alive", "dead"]
    })
    .await;

    // A crashed process: no deregistration, the heartbeat just stops.
    drop(dead);

    wait_for(
        &mut rx,
        "the silent one is gone",
        Duration::from_secs(15),
        |d| ids(d, "inventory") == ["alive"],
    )
    .await;
    // Both were put at the same moment and the silent one outlived a TTL before it went, so
    // the one still here was kept by its heartbeat, in the watcher and in the bucket.
    let mut fresh = registry.watch();
    wait_for(
        &mut fresh,
        "a new watcher sees the live one",
        Duration::from_secs(10),
        |d| ids(d, "inventory") == ["alive"],
    )
    .await;
    assert_eq!(alive.instance().id, "alive");
    remove_bucket(&url, &bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_the_same_id_again_updates_version_and_weight() {
    let Some(url) = nats_url("registering_the_same_id_again_updates_version_and_weight") else {
        return;
    };
    let bucket = bucket();
    let registry = Registry::connect(&url, &bucket, Duration::from_secs(2))
        .await
        .unwrap();
    let mut rx = registry.watch();
    let first = registry
        .register(instance("catalog", "a", "1.0.0", 1))
        .await
        .unwrap();
    wait_for(
        &mut rx,
        "the first version shows",
        Duration::from_secs(10),
        |d| {
            d.get("catalog")
                .is_some_and(|l| l.len() == 1 && l[0].version == "1.0.0")
        },
    )
    .await;

    // The restarted instance registers again under its id.
    drop(first);
    let _second = registry
        .register(instance("catalog", "a", "1.1.0", 5))
        .await
        .unwrap();

    wait_for(
        &mut rx,
        "the new version shows",
        Duration::from_secs(10),
        |d| {
            d.get("catalog")
                .is_some_and(|l| l.len() == 1 && l[0].version == "1.1.0" && l[0].weight == 5)
        },
    )
    .await;
    remove_bucket(&url, &bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_make_a_key_is_refused() {
    let Some(url) = nats_url("an_instance_that_cannot_make_a_key_is_refused") else {
        return;
    };
    let bucket = bucket();
    let registry = Registry::connect(&url, &bucket, Duration::from_secs(2))
        .await
        .unwrap();
    for (group, id) in [
        ("cat.alog", "a"),
        ("catalog", "a b"),
        ("catalog", ""),
        ("*", "a"),
    ] {
        let refused = registry.register(instance(group, id, "1", 1)).await;
        assert!(
            matches!(refused, Err(RegistryError::InvalidInstance { .. })),
            "{group:?} {id:?}"
        );
    }
    remove_bucket(&url, &bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_server_fails_within_the_connect_bound() {
    // Needs no server: a closed port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = Registry::connect(
        &format!("nats://127.0.0.1:{port}"),
        "nobody",
        Duration::from_secs(2),
    )
    .await;
    assert!(matches!(refused, Err(RegistryError::Connect { .. })));
}

/// A `nats-server` of the test's own, killed by its PID when dropped.
struct OwnServer {
    child: Child,
}

impl OwnServer {
    fn start(port: u16, store: &std::path::Path) -> Self {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on the PATH");
        Self { child }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_keeps_instances_through_a_server_restart_and_follows_new_ones() {
    if nats_url("the_watcher_keeps_instances_through_a_server_restart_and_follows_new_ones")
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("jetstream");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let server = OwnServer::start(port, &store);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let registry = loop {
        match Registry::connect(&url, "services", Duration::from_secs(2)).await {
            Ok(registry) => break registry,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no server: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut rx = registry.watch();
    let _a = registry
        .register(instance("catalog", "a", "1", 1))
        .await
        .unwrap();
    wait_for(&mut rx, "a shows", Duration::from_secs(10), |d| {
        ids(d, "catalog") == ["a"]
    })
    .await;

    drop(server);
    // The outage lasts two TTLs; nobody is dropped for silence while the server is away.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(ids(&rx.borrow(), "catalog"), ["a"]);

    let _server = OwnServer::start(port, &store);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let _b = loop {
        match registry.register(instance("catalog", "b", "1", 1)).await {
            Ok(registration) => break registration,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no server: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait_for(&mut rx, "a and b show", Duration::from_secs(30), |d| {
        ids(d, "catalog") == ["a", "b"]
    })
    .await;
}
