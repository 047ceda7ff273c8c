//! Routing, the refused paths, the gateway's own endpoints and the headers it rewrites.

use emporium_gateway::Balance;

use crate::support::{Gateway, TestClient, Upstream, config, route};

#[tokio::test]
async fn internal_and_unknown_paths_are_404_problems_that_never_reach_an_upstream() {
    let a = Upstream::start("a").await;
    let mut cfg = config("paths", Balance::RoundRobin, &[&a]);
    cfg.routes.push(route("/", "paths", Balance::RoundRobin));
    cfg.routes.retain(|r| r.prefix != "/v1");
    let gw = Gateway::start(cfg).await;
    let client = TestClient::new();

    for path in [
        "/internal/x",
        "/internal",
        "//internal/x",
        "/%69nternal/x",
        "/x/../internal/y",
        "/gateway/other",
    ] {
        client
            .get(&format!("{}{path}", gw.base))
            .await
            .assert_problem(404, "not_found");
    }
    assert_eq!(a.hits(), 0);
    assert_eq!(
        client.get(&format!("{}/v1/products", gw.base)).await.status,
        200
    );
}

#[tokio::test]
async fn a_path_without_a_route_is_a_404_problem() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(config("unrouted", Balance::RoundRobin, &[&a])).await;
    let client = TestClient::new();
    for path in ["/v2/x", "/v1x", "/"] {
        client
            .get(&format!("{}{path}", gw.base))
            .await
            .assert_problem(404, "not_found");
    }
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn the_gateway_answers_its_own_health_and_metrics() {
    emporium_http::metrics::handle().expect("recorder");
    let a = Upstream::start("a").await;
    let gw = Gateway::start(config("own", Balance::RoundRobin, &[&a])).await;
    let client = TestClient::new();
    client.get(&format!("{}/v1/x", gw.base)).await;

    let health = client.get(&format!("{}/gateway/healthz", gw.base)).await;
    let metrics = client.get(&format!("{}/gateway/metrics", gw.base)).await;

    assert_eq!(health.status, 200);
    assert!(
        metrics.body.contains(
            "emporium_gateway_requests_total{route=\"/v1\",group=\"own\",status=\"200\"}"
        ),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("emporium_gateway_request_duration_seconds")
    );
    assert_eq!(a.hits(), 1, "its own endpoints are not proxied");
}

#[tokio::test]
async fn trace_request_id_and_forwarding_headers_are_set_and_hop_headers_dropped() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(config("headers", Balance::RoundRobin, &[&a])).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x?q=1", gw.base);

    let answer = client
        .send(
            "GET",
            &url,
            &[
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("x-request-id", "req-42"),
                ("x-forwarded-for", "203.0.113.9"),
                ("connection", "x-hop"),
                ("x-hop", "secret"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["x-request-id"], "req-42");
    let seen = a.last_headers.lock().unwrap().clone();
    let traceparent = seen["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{traceparent}"
    );
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "a new span id per hop"
    );
    assert_eq!(seen["x-request-id"], "req-42");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert!(!seen.contains_key("x-hop"));

    client.get(&url).await;
    let seen = a.last_headers.lock().unwrap().clone();
    let traceparent = seen["traceparent"].to_str().unwrap();
    assert_eq!(traceparent.len(), 55, "a trace is started: {traceparent}");
    let request_id = seen["x-request-id"].to_str().unwrap();
    let id = uuid::Uuid::parse_str(request_id).unwrap();
    assert_eq!(id.get_version_num(), 7);
}

#[tokio::test]
async fn http2_without_tls_is_served_too() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(config("h2c", Balance::RoundRobin, &[&a])).await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();

    let response = client
        .get(format!("{}/v1/x", gw.base).parse().unwrap())
        .await
        .unwrap();

    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn a_retryable_request_with_a_body_over_the_buffer_limit_is_a_413_problem() {
    let a = Upstream::start("a").await;
    let mut cfg = config("big-body", Balance::RoundRobin, &[&a]);
    cfg.limits.max_buffered_body_bytes = 16;
    let gw = Gateway::start(cfg).await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let request = hyper::Request::get(format!("{}/v1/x", gw.base))
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            b'x';
            64
        ])))
        .unwrap();

    let response = client.request(request).await.unwrap();

    assert_eq!(response.status(), 413);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], "body_too_large");
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn the_whole_store_document_is_served_from_the_configured_file() {
    let a = Upstream::start("a").await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, r#"{"openapi": "3.1.0", "paths": {"/v1/x": {}}}"#).expect("write");
    let mut cfg = config("docs", Balance::RoundRobin, &[&a]);
    cfg.routes
        .push(route("/openapi.json", "docs", Balance::RoundRobin));
    cfg.openapi_file = Some(file.clone());
    let gw = Gateway::start(cfg.clone()).await;
    let client = TestClient::new();
    let r = client.get(&format!("{}/openapi.json", gw.base)).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.json()["paths"]["/v1/x"], serde_json::json!({}));
    assert_eq!(a.hits(), 0, "the document never reaches an instance");
    // Without the file the route goes to the group as any other.
    cfg.openapi_file = None;
    gw.running.reload(cfg.clone()).await.expect("reload");
    let r = client.get(&format!("{}/openapi.json", gw.base)).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "a"));
    // A file that is not JSON is refused, naming the key.
    std::fs::write(&file, "not json").expect("write");
    cfg.openapi_file = Some(file);
    let err = gw.running.reload(cfg).await.expect_err("refused");
    assert_eq!(err.key, "openapi_file");
}
