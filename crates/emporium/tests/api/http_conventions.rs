//! The HTTP conventions every route shares: problem+json errors, request ids, traceparent,
//! limits, compression, health, metrics and the OpenAPI document.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, pointers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_400_problem() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/v1/auth/register"))
        .header("content-type", "application/json")
        .body(r#"{"email": "#)
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, 400, "malformed_json").await;
    assert_eq!(body["type"], "urn:problem:emporium:malformed_json");
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_a_415_problem() {
    let app = TestApp::spawn().await;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = app
            .client
            .post(app.url("/v1/auth/register"))
            .body("email=a");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        assert_problem(req.send().await.unwrap(), 415, "unsupported_media_type").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_a_413_problem() {
    let app = TestApp::spawn().await;
    let huge =
        json!({"email": "a@example.com", "password": "x".repeat(2 * 1024 * 1024), "name": "n"});
    let r = app.post_json("/v1/auth/register", &huge, None).await;
    assert_problem(r, 413, "body_too_large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_reports_every_bad_field_with_its_pointer() {
    let app = TestApp::spawn().await;
    let r = app
        .post_json(
            "/v1/auth/register",
            &json!({"email": "nope", "password": "short"}),
            None,
        )
        .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&body),
        vec![
            ("/email".into(), "invalid_format".into()),
            ("/name".into(), "required".into()),
            ("/password".into(), "too_short".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_and_unknown_fields_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let r = app
        .post_json(
            "/v1/auth/register",
            &json!({"email": 7, "password": "p", "name": "n"}),
            None,
        )
        .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&body),
        vec![("/email".into(), "invalid_type".into())]
    );

    let r = app
        .post_json(
            "/v1/auth/register",
            &json!({"email": "a@example.com", "password": "p", "name": "n", "is_admin": true}),
            None,
        )
        .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&body),
        vec![("/is_admin".into(), "unknown_field".into())]
    );

    let r = app
        .post_json("/v1/auth/register", &json!([1, 2]), None)
        .await;
    assert_problem(r, 422, "validation_failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/v1/nothing-here", None).await, 404, "not_found").await;
    let r = app
        .client
        .delete(app.url("/v1/auth/register"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 405, "method_not_allowed").await;
    // A path parameter that cannot be an id names no resource.
    let token = app
        .staff_token("owner@example.com", emporium_kernel::auth::Role::Owner)
        .await;
    assert_problem(
        app.get("/v1/admin/customers/not-an-id", Some(&token)).await,
        404,
        "not_found",
    )
    .await;
    let other_kind = "usr_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f";
    assert_problem(
        app.get(&format!("/v1/admin/customers/{other_kind}"), Some(&token))
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_are_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let token = app
        .staff_token("owner@example.com", emporium_kernel::auth::Role::Owner)
        .await;
    let cases = [
        ("/v1/admin/customers?limit=abc", "/limit", "invalid_format"),
        ("/v1/admin/customers?limit=0", "/limit", "too_small"),
        ("/v1/admin/customers?limit=5000", "/limit", "too_large"),
        (
            "/v1/admin/customers?cursor=garbage!",
            "/cursor",
            "invalid_cursor",
        ),
        ("/v1/admin/customers?colour=red", "/colour", "unknown_field"),
        ("/v1/admin/users?limit=-1", "/limit", "invalid_format"),
        ("/v1/admin/events?limit=201", "/limit", "too_large"),
    ];
    for (path, pointer, code) in cases {
        let body =
            assert_problem(app.get(path, Some(&token)).await, 422, "validation_failed").await;
        assert_eq!(
            pointers(&body),
            vec![(pointer.to_owned(), code.to_owned())],
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_is_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = app.get("/healthz", None).await;
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    let r2 = app.get("/healthz", None).await;
    assert_ne!(r2.headers()["x-request-id"].to_str().unwrap(), generated);
    let problem = app
        .client
        .get(app.url("/v1/none"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    let body: Value = problem.json().await.unwrap();
    assert_eq!(body["request_id"], "req-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_traceparent_keeps_its_trace_id() {
    let app = TestApp::spawn().await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("traceparent", incoming)
        .send()
        .await
        .unwrap();
    let out = r.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(
        out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{out}"
    );
    assert_ne!(out, incoming, "the server span gets its own span id");
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("traceparent", "garbage")
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers()["traceparent"]
            .to_str()
            .unwrap()
            .contains("garbage")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "gzip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    let ready: Value = app.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    app.post_json("/v1/auth/register", &json!({"email": "bad"}), None)
        .await;
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("emporium_http_requests_total")
                && l.contains(r#"route="/v1/auth/register""#)
                && l.contains(r#"status="422""#)),
        "{metrics}"
    );
    assert!(metrics.contains("emporium_http_request_duration_seconds_bucket"));
    assert!(metrics.contains(r#"emporium_db_pool_connections{pool="writer",state="idle"}"#));
    assert!(metrics.contains("emporium_outbox_pending_events"));
    // Raw paths never become labels.
    app.get(
        "/v1/admin/customers/cus_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
        None,
    )
    .await;
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(!metrics.contains("cus_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.store().db.close().await;
    assert_problem(app.get("/readyz", None).await, 503, "database_unavailable").await;
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_its_errors() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/auth/register",
        "/v1/auth/token",
        "/v1/auth/logout",
        "/v1/store/me",
        "/.well-known/jwks.json",
        "/v1/admin/customers",
        "/v1/admin/customers/{id}",
        "/v1/admin/users",
        "/v1/admin/users/{id}",
        "/v1/admin/api-clients",
        "/v1/admin/api-clients/{id}",
        "/v1/admin/events",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    let mut policy_rules = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path} lacks 500");
            if op.get("requestBody").is_some() && path != "/v1/auth/token" {
                assert!(responses.contains_key("422"), "{method} {path} lacks 422");
            }
            if matches!(method.as_str(), "post" | "put" | "patch")
                && !matches!(path.as_str(), "/v1/auth/token" | "/v1/auth/logout")
            {
                // A command on the resource its path names takes no body.
                assert!(
                    op.get("requestBody").is_some()
                        || ["/merge", "/capture", "/deliver", "/return", "/replay"]
                            .iter()
                            .any(|command| path.ends_with(command)),
                    "{method} {path} lacks its body schema"
                );
            }
            if path.starts_with("/v1/admin") {
                assert!(responses.contains_key("403"), "{method} {path} lacks 403");
                policy_rules.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    // Every documented admin route has an access rule; a route without one would be refused to all.
    let policy = emporium_http::admin::AdminPolicy::new(emporium::app::ADMIN_RULES.iter().copied());
    for (method, path) in policy_rules {
        assert!(
            policy.access(&method, &path).is_some(),
            "{method} {path} has no access rule"
        );
    }
    let docs = app.get("/docs/", None).await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_produces_a_server_error() {
    let app = TestApp::spawn().await;
    let token = app
        .staff_token("owner@example.com", emporium_kernel::auth::Role::Owner)
        .await;
    let bodies = [
        "",
        "null",
        "[]",
        "{}",
        "\"x\"",
        "{\"email\": null}",
        "{\"email\": {\"$gt\": \"\"}}",
        "{\"name\": \"\\u0000\"}",
        "{\"role\": \"god\"}",
        "{\"scopes\": \"customers:read\"}",
        "\u{0}\u{1}",
        "{\"email\": \"a@b.c\", \"password\": \"\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\", \"name\": \"x\"}",
    ];
    let routes = [
        ("POST", "/v1/auth/register"),
        ("POST", "/v1/admin/users"),
        (
            "PATCH",
            "/v1/admin/users/usr_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
        ),
        ("POST", "/v1/admin/api-clients"),
        ("POST", "/v1/auth/token"),
    ];
    for (method, path) in routes {
        for body in bodies {
            for ct in ["application/json", "application/x-www-form-urlencoded"] {
                let r = app
                    .client
                    .request(method.parse().unwrap(), app.url(path))
                    .bearer_auth(&token)
                    .header("content-type", ct)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    r.status().as_u16() < 500,
                    "{method} {path} {ct} {body:?} -> {}",
                    r.status()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_is_abandoned_with_a_503_problem() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.http.request_timeout_ms = 1
    })
    .await;
    // Hashing a password takes far longer than a millisecond.
    let r = app
        .post_json("/v1/auth/register", &json!({"email": "slow@example.com", "password": crate::helpers::PASSWORD, "name": "Slow"}), None)
        .await;
    assert_problem(r, 503, "request_timeout").await;
    // The abandoned request left nothing behind.
    let id = app.store().identity.clone().expect("identity runs here");
    let page = id.list_customers(Some("slow@"), None, None).await.unwrap();
    assert!(page.items.is_empty());
}
