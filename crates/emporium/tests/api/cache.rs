//! The product cache's shared second level across two store processes over one PostgreSQL
//! database and one Redis, as catalog instances of the scaled-out shape are; and what a Redis
//! that dies under reads costs them (no failed read).

use emporium_kernel::Secret;
use emporium_kernel::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::catalog::{create_product, simple_product};
use crate::helpers::{Backend, TestApp, postgres_url};

fn redis_url() -> Option<String> {
    match std::env::var("EMPORIUM_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("EMPORIUM_TEST_REQUIRE_REDIS").as_deref() != Ok("1"),
                "EMPORIUM_TEST_REDIS_URL is not set but EMPORIUM_TEST_REQUIRE_REDIS=1"
            );
            eprintln!(
                "NOT RUN: a_product_loaded_by_one_instance_is_served_by_the_other_from_redis (set EMPORIUM_TEST_REDIS_URL)"
            );
            None
        }
    }
}

async fn read(app: &TestApp, id: &str) -> (String, Value) {
    let r = app.get(&format!("/v1/store/products/{id}"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    (etag, r.json().await.unwrap())
}

/// The product cache's figures of `app`'s catalog.
fn product_stats(app: &TestApp) -> emporium_cache::CacheStats {
    app.store()
        .catalog
        .as_ref()
        .expect("the catalog runs here")
        .reads
        .product_cache_stats()
}

/// Two store instances over one fresh PostgreSQL database, with `redis` as their product
/// cache's second level; `None` when PostgreSQL is not configured.
async fn two_instances(redis: &str) -> Option<(TestApp, TestApp)> {
    let admin = postgres_url()?;
    let with_redis = |c: &mut emporium::config::Config| {
        c.cache.redis_url = Some(Secret::new(redis.to_owned()));
    };
    let a = TestApp::spawn_with(Backend::Postgres(admin.clone()), with_redis).await;
    let shared = a.config.database_url.clone();
    let b = TestApp::spawn_with(Backend::Postgres(admin), |c| {
        with_redis(c);
        c.database_url = shared;
    })
    .await;
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_loaded_by_one_instance_is_served_by_the_other_from_redis() {
    let Some(redis) = redis_url() else {
        return;
    };
    let Some((a, b)) = two_instances(&redis).await else {
        return;
    };
    let staff = a.staff_token("shared-cache@example.com", Role::Staff).await;
    let mug = create_product(&a, &staff, simple_product("Mug", "MUG-1", 900, &[])).await;
    let mug = mug["id"].as_str().unwrap().to_owned();
    a.drain_outbox().await;

    // A loads it from the database; B gets the same answer without a load of its own.
    let (etag_a, body_a) = read(&a, &mug).await;
    let (etag_b, body_b) = read(&b, &mug).await;
    assert_eq!((etag_b, body_b), (etag_a, body_a));
    let stats = product_stats(&b);
    assert_eq!((stats.loads, stats.second_level_hits), (0, 1));

    // A changes another product it has read: its invalidation removes the shared entry, so B,
    // which never read it, loads the new title.
    let cup = create_product(&a, &staff, simple_product("Cup", "CUP-1", 700, &[])).await;
    let cup = cup["id"].as_str().unwrap().to_owned();
    a.drain_outbox().await;
    read(&a, &cup).await;
    let r = a
        .request(
            Method::PATCH,
            &format!("/v1/admin/products/{cup}"),
            Some(&json!({"title": "Tea Cup"})),
            Some(&staff),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    a.drain_outbox().await;
    let (_, body) = read(&b, &cup).await;
    assert_eq!(body["title"], "Tea Cup");
    let stats = product_stats(&b);
    assert_eq!((stats.loads, stats.second_level_hits), (1, 1));
}

/// A `redis-server` of the test's own on `port`, killed when dropped.
async fn own_redis(port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed");
    let listening = crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(listening, "redis-server listens");
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_fail_while_the_shared_redis_is_killed_and_restarted() {
    if redis_url().is_none() {
        return;
    }
    let port = crate::events::free_port();
    let mut redis = own_redis(port).await;
    let Some((a, b)) = two_instances(&format!("redis://127.0.0.1:{port}")).await else {
        return;
    };
    let staff = a.staff_token("redis-down@example.com", Role::Staff).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        let p = create_product(
            &a,
            &staff,
            simple_product(&format!("Jar {n}"), &format!("JAR-{n}"), 900 + n, &[]),
        )
        .await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    a.drain_outbox().await;

    // Each product is read once by each instance, so every read misses the first level and
    // asks Redis; Redis is killed a third of the way through and started again at two thirds.
    let mut answers = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        if n == 10 {
            redis.kill().await.unwrap();
            let _ = redis.wait().await;
        }
        if n == 20 {
            redis = own_redis(port).await;
        }
        for app in [&a, &b] {
            let r = app.get(&format!("/v1/store/products/{id}"), None).await;
            answers.push(r.status().as_u16());
            assert_eq!(
                r.json::<Value>().await.unwrap()["id"],
                id.as_str(),
                "{id} read whole"
            );
        }
    }
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    assert_eq!(answers.len(), 60);
    // Before the kill B found A's loads in Redis; with Redis back it does again.
    let before = product_stats(&b).second_level_hits;
    assert!(before >= 1, "B used Redis before it stopped");
    // Each attempt a new product, which neither instance has in memory: the reconnection
    // waits out the cool-down of the failed connection.
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let shared_again = crate::helpers::eventually(std::time::Duration::from_secs(30), || async {
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = simple_product(&format!("Cup {n}"), &format!("CUP-{n}"), 700, &[]);
        let cup = create_product(&a, &staff, body).await;
        let cup = cup["id"].as_str().unwrap();
        a.drain_outbox().await;
        read(&a, cup).await;
        read(&b, cup).await;
        product_stats(&b).second_level_hits > before
    })
    .await;
    assert!(shared_again, "B reads A's loads from Redis again");
}
