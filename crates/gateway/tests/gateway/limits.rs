//! Rate limits (local and shared through Redis) and load shedding.

use emporium_gateway::Balance;

use crate::support::{Gateway, HOLD, OK, TestClient, Upstream, config, wait_until};

#[tokio::test]
async fn a_client_gets_exactly_the_burst_then_429_with_retry_after() {
    let a = Upstream::start("a").await;
    let mut cfg = config("rate", Balance::RoundRobin, &[&a]);
    cfg.rate_limit.per_client_per_sec = 0.01;
    cfg.rate_limit.burst = 5;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);

    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            client
                .send("GET", &url, &[("authorization", "Bearer alice")])
                .await,
        );
    }

    assert!(statuses[..5].iter().all(|a| a.status == 200));
    for limited in &statuses[5..] {
        limited.assert_problem(429, "rate_limited");
        let retry_after: u64 = limited.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1);
    }
    assert_eq!(a.hits(), 5);
    let other = client
        .send("GET", &url, &[("authorization", "Bearer bob")])
        .await;
    assert_eq!(other.status, 200, "another token has its own budget");
}

#[tokio::test]
async fn a_global_limit_counts_every_client() {
    let a = Upstream::start("a").await;
    let mut cfg = config("rate-global", Balance::RoundRobin, &[&a]);
    cfg.rate_limit.global_per_sec = 0.01;
    cfg.rate_limit.burst = 3;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);
    let mut passed = 0;
    for i in 0..6 {
        let token = format!("Bearer t{i}");
        if client
            .send("GET", &url, &[("authorization", token.as_str())])
            .await
            .status
            == 200
        {
            passed += 1;
        }
    }
    assert_eq!(passed, 3);
}

#[tokio::test]
async fn requests_beyond_max_in_flight_are_shed_with_503_overloaded() {
    let slow = Upstream::start("slow").await;
    slow.set_mode(HOLD);
    let mut cfg = config("shed", Balance::RoundRobin, &[&slow]);
    cfg.limits.max_in_flight = 2;
    cfg.limits.max_queue_ms = 50;
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);

    let held: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    wait_until("two requests are held upstream", || async {
        slow.hits() == 2
    })
    .await;
    let shed = futures_join(&client, &url, 3).await;

    for answer in &shed {
        answer.assert_problem(503, "overloaded");
        assert!(answer.headers.contains_key("retry-after"));
    }
    assert_eq!(slow.hits(), 2);
    slow.set_mode(OK);
    slow.release.notify_waiters();
    for h in held {
        assert_eq!(h.await.unwrap().status, 200);
    }
    assert_eq!(client.get(&url).await.status, 200, "capacity is back");
}

async fn futures_join(client: &TestClient, url: &str, n: usize) -> Vec<crate::support::Answer> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

fn redis_url(test: &str) -> Option<String> {
    match std::env::var("EMPORIUM_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("EMPORIUM_TEST_REQUIRE_REDIS").as_deref() != Ok("1"),
                "{test} needs EMPORIUM_TEST_REDIS_URL"
            );
            eprintln!("NOT RUN: {test} (set EMPORIUM_TEST_REDIS_URL)");
            None
        }
    }
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_one_client_budget() {
    let Some(redis) = redis_url("two_gateways_on_one_redis_share_one_client_budget") else {
        return;
    };
    let a = Upstream::start("a").await;
    let mut cfg = config("rate-redis", Balance::RoundRobin, &[&a]);
    cfg.rate_limit.per_client_per_sec = 0.01;
    cfg.rate_limit.burst = 4;
    cfg.rate_limit.redis_url = redis;
    let (one, two) = (Gateway::start(cfg.clone()).await, Gateway::start(cfg).await);
    let client = TestClient::new();
    // A token of this run only, so earlier runs' budgets in Redis do not count.
    let token = format!("Bearer {}", uuid::Uuid::now_v7());

    let mut passed = 0;
    for gw in [&one, &two, &one, &two, &one, &two, &one, &two] {
        let answer = client
            .send(
                "GET",
                &format!("{}/v1/x", gw.base),
                &[("authorization", token.as_str())],
            )
            .await;
        match answer.status.as_u16() {
            200 => passed += 1,
            _ => answer.assert_problem(429, "rate_limited"),
        }
    }

    assert_eq!(passed, 4);
    assert_eq!(a.hits(), 4);
}

#[tokio::test]
async fn a_redis_that_is_down_falls_back_to_the_local_limit_without_errors() {
    let a = Upstream::start("a").await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = config("rate-redis-down", Balance::RoundRobin, &[&a]);
    cfg.rate_limit.per_client_per_sec = 0.01;
    cfg.rate_limit.burst = 2;
    cfg.rate_limit.redis_url = format!("redis://{closed}");
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);

    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.get(&url).await.status.as_u16());
    }

    assert_eq!(statuses, [200, 200, 429, 429]);
}
