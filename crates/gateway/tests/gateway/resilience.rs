//! Ejection, retries, health checks, the breaker and deadlines.

use emporium_gateway::{Balance, BreakerState};

use crate::support::{
    FAIL_500, FAIL_503, Gateway, HOLD, OK, TestClient, Upstream, config, spread, wait_until,
};

#[tokio::test]
async fn a_killed_instance_is_ejected_with_no_failed_get_and_rejoins_after_health_checks() {
    let metrics = emporium_http::metrics::handle().expect("recorder");
    let (mut a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let mut cfg = config("eject", Balance::RoundRobin, &[&a, &b]);
    cfg.outlier.consecutive_failures = 2;
    cfg.outlier.base_ejection_ms = 60_000;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);
    spread(&client, &url, 10, &[]).await;

    a.kill().await;
    let counts = spread(&client, &url, 50, &[]).await;

    assert_eq!(
        counts.get("b"),
        Some(&50),
        "every GET is answered by b: {counts:?}"
    );
    let status = gw.running.upstream_status("eject");
    let dead = status.iter().find(|s| s.instance.url == a.url()).unwrap();
    assert!(dead.ejected || !dead.healthy, "{dead:?}");
    wait_until("health checks mark the killed instance down", || async {
        let s = gw.running.upstream_status("eject");
        !s.iter()
            .find(|s| s.instance.url == a.url())
            .unwrap()
            .healthy
    })
    .await;
    let rendered = metrics.render();
    assert!(
        rendered.contains("emporium_gateway_ejections_total{group=\"eject\""),
        "no ejection metric in:\n{rendered}"
    );
    let page = client.get(&format!("{}/gateway/metrics", gw.base)).await;
    assert!(
        page.body
            .contains("emporium_gateway_upstream_requests_total")
    );

    a.restart().await;
    let before = a.hits();
    wait_until("the restarted instance takes requests again", || async {
        client.get(&url).await;
        a.hits() > before
    })
    .await;
    let s = gw.running.upstream_status("eject");
    assert!(s.iter().all(|s| s.healthy && !s.ejected), "{s:?}");
}

#[tokio::test]
async fn ejection_never_takes_more_than_the_allowed_share_of_a_group() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    a.set_mode(FAIL_500);
    b.set_mode(FAIL_500);
    let mut cfg = config("eject-share", Balance::RoundRobin, &[&a, &b]);
    cfg.outlier.consecutive_failures = 1;
    cfg.outlier.base_ejection_ms = 60_000;
    cfg.outlier.max_ejection_percent = 50;
    cfg.routes[0].retries = 0;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();

    for _ in 0..10 {
        assert_eq!(client.get(&format!("{}/v1/x", gw.base)).await.status, 500);
    }

    let ejected = gw
        .running
        .upstream_status("eject-share")
        .iter()
        .filter(|s| s.ejected)
        .count();
    assert_eq!(ejected, 1);
}

#[tokio::test]
async fn a_get_answered_503_is_retried_on_the_other_instance_but_a_post_is_not() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let mut cfg = config("retry", Balance::RoundRobin, &[&a, &b]);
    cfg.health.path = String::new();
    cfg.outlier.consecutive_failures = 0;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);
    a.set_mode(FAIL_503);

    let counts = spread(&client, &url, 10, &[]).await;
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");

    let (a_before, b_before) = (a.hits(), b.hits());
    let mut refused = 0;
    for _ in 0..10 {
        let answer = client.send("POST", &url, &[]).await;
        if answer.status == 503 {
            refused += 1;
        }
    }
    // One attempt per POST: the 503s of a reach the client, b never sees a second try.
    assert_eq!(a.hits() - a_before + b.hits() - b_before, 10);
    assert_eq!(refused, a.hits() - a_before);
    assert!(refused > 0);
}

#[tokio::test]
async fn the_breaker_opens_after_failures_fails_fast_and_closes_once_the_instance_heals() {
    let a = Upstream::start("a").await;
    let mut cfg = config("breaker", Balance::RoundRobin, &[&a]);
    cfg.health.path = String::new();
    cfg.outlier.consecutive_failures = 0;
    cfg.breaker.min_requests = 4;
    cfg.breaker.failure_ratio = 0.5;
    cfg.breaker.open_ms = 300;
    cfg.routes[0].retries = 0;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);
    a.set_mode(FAIL_500);

    for _ in 0..4 {
        assert_eq!(client.get(&url).await.status, 500);
    }
    assert_eq!(
        gw.running.upstream_status("breaker")[0].breaker,
        BreakerState::Open
    );
    let metrics = emporium_http::metrics::handle().expect("recorder");
    let gauge = format!(
        "emporium_gateway_breaker_state{{group=\"breaker\",upstream=\"{}\"}} 1",
        a.url()
    );
    assert!(metrics.render().contains(&gauge), "{}", metrics.render());
    let hits = a.hits();
    client
        .get(&url)
        .await
        .assert_problem(502, "upstream_unavailable");
    assert_eq!(
        a.hits(),
        hits,
        "an open breaker fails fast without calling the instance"
    );

    a.set_mode(OK);
    wait_until("the half-open probe succeeds", || async {
        client.get(&url).await.status == 200
    })
    .await;
    assert_eq!(
        gw.running.upstream_status("breaker")[0].breaker,
        BreakerState::Closed
    );
    assert_eq!(client.get(&url).await.status, 200);
}

#[tokio::test]
async fn a_failed_probe_reopens_the_breaker() {
    let a = Upstream::start("a").await;
    let mut cfg = config("breaker-probe", Balance::RoundRobin, &[&a]);
    cfg.health.path = String::new();
    cfg.outlier.consecutive_failures = 0;
    cfg.breaker.min_requests = 2;
    cfg.breaker.open_ms = 100;
    cfg.routes[0].retries = 0;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);
    a.set_mode(FAIL_500);
    for _ in 0..2 {
        client.get(&url).await;
    }
    let hits = a.hits();
    wait_until("a probe goes through", || async {
        client.get(&url).await;
        a.hits() > hits
    })
    .await;
    assert_eq!(a.hits(), hits + 1, "exactly one probe");
    assert_eq!(
        gw.running.upstream_status("breaker-probe")[0].breaker,
        BreakerState::Open
    );
}

#[tokio::test]
async fn a_slow_upstream_is_answered_504_at_the_route_deadline() {
    let a = Upstream::start("a").await;
    a.set_mode(HOLD);
    let mut cfg = config("deadline", Balance::RoundRobin, &[&a]);
    cfg.routes[0].timeout_ms = 200;
    let gw = Gateway::start(cfg).await;

    let answer = TestClient::new().get(&format!("{}/v1/x", gw.base)).await;

    answer.assert_problem(504, "upstream_timeout");
    a.release.notify_waiters();
}

#[tokio::test]
async fn no_healthy_instance_is_a_502_problem() {
    let a = Upstream::start("a").await;
    a.set_mode(FAIL_503);
    let gw = Gateway::start(config("allbad", Balance::RoundRobin, &[&a])).await;
    wait_until("health checks mark the instance down", || async {
        !gw.running.upstream_status("allbad")[0].healthy
    })
    .await;
    let hits = a.hits();
    TestClient::new()
        .get(&format!("{}/v1/x", gw.base))
        .await
        .assert_problem(502, "upstream_unavailable");
    assert_eq!(a.hits(), hits);
}

#[tokio::test]
async fn a_503_with_no_other_instance_to_retry_on_reaches_the_client_as_is() {
    let a = Upstream::start("a").await;
    a.set_mode(FAIL_503);
    let mut cfg = config("single503", Balance::RoundRobin, &[&a]);
    cfg.health.path = String::new();
    let gw = Gateway::start(cfg).await;

    let answer = TestClient::new().get(&format!("{}/v1/x", gw.base)).await;

    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.body, "a",
        "the upstream's own answer, not a gateway problem"
    );
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn a_group_that_stops_answering_is_served_from_its_last_answers_marked_stale() {
    let mut a = Upstream::start("a").await;
    let mut cfg = config("stale", Balance::RoundRobin, &[&a]);
    cfg.routes[0].stale_if_error_secs = 60;
    cfg.routes[0].retries = 0;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/products/1?currency=EUR", gw.base);
    let fresh = client.get(&url).await;
    assert_eq!((fresh.status.as_u16(), fresh.body.as_str()), (200, "a"));
    assert!(fresh.headers.get("cache-status").is_none());
    // A signed-in shopper's answer may be theirs alone: never kept.
    let private = format!("{}/v1/products/2", gw.base);
    let r = client
        .send("GET", &private, &[("authorization", "Bearer x")])
        .await;
    assert_eq!(r.status.as_u16(), 200);

    // The group answers 503: the last answer instead, marked stale.
    a.set_mode(FAIL_503);
    let stale = client.get(&url).await;
    assert_eq!((stale.status.as_u16(), stale.body.as_str()), (200, "a"));
    let status = stale.headers["cache-status"].to_str().unwrap();
    assert!(status.starts_with("emporium-gateway; hit"), "{status}");
    assert!(stale.headers.contains_key("age"));

    // The group is gone: still the last answer; what was never kept, or is private, is an
    // error as before.
    a.kill().await;
    let stale = client.get(&url).await;
    assert_eq!((stale.status.as_u16(), stale.body.as_str()), (200, "a"));
    client
        .get(&format!("{}/v1/products/3", gw.base))
        .await
        .assert_problem(502, "upstream_unavailable");
    client
        .send("GET", &private, &[("authorization", "Bearer x")])
        .await
        .assert_problem(502, "upstream_unavailable");
    // Another query is another answer.
    client
        .get(&format!("{}/v1/products/1?currency=USD", gw.base))
        .await
        .assert_problem(502, "upstream_unavailable");
}
