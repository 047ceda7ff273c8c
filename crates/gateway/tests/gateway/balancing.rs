//! Round robin, consistent hashing and power of two choices, measured by counts.

use std::sync::atomic::Ordering;

use emporium_gateway::Balance;

use crate::support::{Gateway, HOLD, TestClient, Upstream, config, spread, wait_until};

#[tokio::test]
async fn round_robin_spreads_a_hundred_requests_evenly_over_two_instances() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let gw = Gateway::start(config("rr", Balance::RoundRobin, &[&a, &b])).await;

    let counts = spread(&TestClient::new(), &format!("{}/v1/x", gw.base), 100, &[]).await;

    assert_eq!(counts.get("a"), Some(&50), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&50), "{counts:?}");
}

#[tokio::test]
async fn hashing_sends_one_key_to_one_instance_and_many_keys_to_both() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let mut cfg = config("hash", Balance::Hash, &[&a, &b]);
    cfg.routes[0].hash_on = Some("x-cart-token".to_owned());
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/carts", gw.base);

    for key in ["cart-1", "cart-2", "cart-3"] {
        let counts = spread(&client, &url, 20, &[("x-cart-token", key)]).await;
        assert_eq!(counts.len(), 1, "{key} went to {counts:?}");
    }
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let key = format!("cart-{i}");
        let counts = spread(&client, &url, 1, &[("x-cart-token", key.as_str())]).await;
        seen.extend(counts.into_keys());
    }
    assert_eq!(
        seen.len(),
        2,
        "forty keys should reach both instances: {seen:?}"
    );
}

#[tokio::test]
async fn hashing_on_a_cookie_keeps_affinity() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let mut cfg = config("hashcookie", Balance::Hash, &[&a, &b]);
    cfg.routes[0].hash_on = Some("cookie:sid".to_owned());
    let gw = Gateway::start(cfg).await;
    let counts = spread(
        &TestClient::new(),
        &format!("{}/v1/x", gw.base),
        20,
        &[("cookie", "theme=dark; sid=abc123")],
    )
    .await;
    assert_eq!(counts.len(), 1, "{counts:?}");
}

#[tokio::test]
async fn least_outstanding_avoids_the_instance_that_holds_a_request() {
    let (slow, fast) = (Upstream::start("slow").await, Upstream::start("fast").await);
    slow.set_mode(HOLD);
    let gw = Gateway::start(config("p2c", Balance::LeastOutstanding, &[&slow, &fast])).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);

    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut pending = Vec::new();
    for i in 1..=40 {
        let (client, url, finished) = (client.clone(), url.clone(), done.clone());
        pending.push(tokio::spawn(async move {
            let answer = client.get(&url).await;
            finished.fetch_add(1, Ordering::SeqCst);
            answer
        }));
        // Each request is either held by the slow instance or answered before the next one
        // is sent, so the gateway's counts are settled when it picks again.
        wait_until("the request settled", || async {
            let fast_idle = gw
                .running
                .upstream_status("p2c")
                .iter()
                .all(|s| s.instance.url != fast.url() || s.outstanding == 0);
            fast_idle && done.load(Ordering::SeqCst) + slow.held.load(Ordering::SeqCst) == i
        })
        .await;
    }

    // Round robin would have sent 20 to the slow one; with one held there, every later request
    // sees it busier than the idle one.
    assert!(slow.hits() <= 1, "slow got {}", slow.hits());
    assert_eq!(fast.hits(), 40 - slow.hits());
    slow.release.notify_waiters();
    for p in pending {
        assert_eq!(p.await.unwrap().status, 200);
    }
    assert_eq!(slow.held.load(Ordering::SeqCst), 0);
}
