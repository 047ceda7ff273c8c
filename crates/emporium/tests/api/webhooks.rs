//! Webhooks: endpoints staff manage, deliveries signed per Standard Webhooks 1.0 and retried
//! until dead-lettered, replays, receivers that misbehave, and endpoints that keep failing. A
//! receiver of the test's own (axum on loopback) records what arrives; the official
//! `standardwebhooks` library verifies real deliveries (`webhook_receiver.py`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use emporium_kernel::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{create_product, simple_product};
use crate::helpers::{Backend, TestApp, assert_problem, pointers, wait_for};
use crate::on_both_backends;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// What the receiver answers on a path: a status per request in turn (the last one repeats),
/// or a misbehaviour.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Statuses(Vec<u16>),
    /// Never answers.
    Hang,
    /// 200 with an endless body.
    Endless,
    /// 302 to another path.
    Redirect(&'static str),
}

/// A webhook receiver on loopback.
pub(crate) struct Receiver {
    pub base: String,
    got: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let (g, r) = (got.clone(), replies.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (got, replies) = (g.clone(), r.clone());
            async move {
                let path = req.uri().path().to_owned();
                let headers = req.headers().clone();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                let seen = {
                    let mut got = got.lock().unwrap();
                    got.push(Received {
                        path: path.clone(),
                        headers,
                        body,
                    });
                    got.iter().filter(|r| r.path == path).count()
                };
                let reply = replies.lock().unwrap().get(&path).cloned();
                match reply.unwrap_or(Reply::Statuses(vec![204])) {
                    Reply::Statuses(codes) => {
                        let code = codes[(seen - 1).min(codes.len() - 1)];
                        Response::builder()
                            .status(code)
                            .body(Body::from(format!("answer {seen} from {path}")))
                            .unwrap()
                    }
                    Reply::Hang => std::future::pending().await,
                    Reply::Endless => {
                        let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
                        let stream = futures_util::stream::repeat_with(move || {
                            Ok::<_, std::io::Error>(chunk.clone())
                        });
                        Response::new(Body::from_stream(stream))
                    }
                    Reply::Redirect(to) => Response::builder()
                        .status(StatusCode::FOUND)
                        .header("location", to)
                        .body(Body::empty())
                        .unwrap(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, got, replies }
    }

    pub(crate) fn reply(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_owned(), reply);
    }

    pub(crate) fn got(&self, path: &str) -> Vec<Received> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|r| r.path == path).cloned().collect()
    }
}

/// A store that may call receivers on loopback, retrying quickly.
pub(crate) async fn store_calling_loopback(backend: Backend, retries: &[u64]) -> TestApp {
    let retries = retries.to_vec();
    TestApp::spawn_with(backend, move |c| {
        c.notify.webhooks.allowed_networks = vec!["127.0.0.0/8".to_owned()];
        c.notify.webhooks.retry_delays_ms = retries;
    })
    .await
}

pub(crate) async fn create_endpoint(
    app: &TestApp,
    admin: &str,
    url: &str,
    types: &[&str],
) -> Value {
    let r = app
        .post_json(
            "/v1/admin/webhooks",
            &json!({"url": url, "event_types": types, "description": "test"}),
            Some(admin),
        )
        .await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

async fn deliveries(app: &TestApp, admin: &str, endpoint: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/v1/admin/webhooks/{endpoint}/deliveries"),
            Some(admin),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let page: Value = r.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

/// Waits until every delivery of `endpoint` is `status`, and there are `count` of them.
async fn settle(
    app: &TestApp,
    admin: &str,
    endpoint: &str,
    count: usize,
    status: &str,
) -> Vec<Value> {
    wait_for(
        &format!("deliveries of {endpoint} all {status}"),
        || async {
            app.drain_outbox().await;
            deliveries(app, admin, endpoint).await
        },
        |d: &Vec<Value>| d.len() == count && d.iter().all(|d| d["status"] == status),
    )
    .await
}

/// Checks a request's Standard Webhooks signature with `secret`, as the specification defines
/// it (the official library checks the same deliveries in `official_library_verifies`).
pub(crate) fn signed_with(r: &Received, secret: &str) -> bool {
    let header = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let key = emporium_notify::domain::secret_key(secret).unwrap();
    let ts: i64 = header("webhook-timestamp").parse().unwrap();
    let expected = emporium_notify::domain::signature(&key, header("webhook-id"), ts, &r.body);
    header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

on_both_backends!(endpoints_are_managed_with_checks);

async fn endpoints_are_managed_with_checks(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let created = create_endpoint(
        &app,
        &admin,
        "https://hooks.example.com/in",
        &["order.*", "product.created"],
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .unwrap();
    assert_eq!(key.len(), 32);
    let id = created["endpoint"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("whep_"));
    assert_eq!(
        created["endpoint"]["event_types"],
        json!(["order.*", "product.created"])
    );

    // The secret is shown once: never in a read or a list.
    let r = app
        .get(&format!("/v1/admin/webhooks/{id}"), Some(&admin))
        .await;
    assert_eq!(r.headers()["etag"], "\"1\"");
    let read = r.text().await.unwrap();
    assert!(!read.contains(secret) && !read.contains("whsec_"), "{read}");
    let list = app
        .get("/v1/admin/webhooks", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains(&id) && !list.contains("whsec_"));

    // Bad input: every field at fault, nothing written.
    let r = app
        .post_json(
            "/v1/admin/webhooks",
            &json!({"url": "ftp://example.com/", "event_types": ["order.paid"], "description": "a\u{0}b"}),
            Some(&admin),
        )
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    let mut found = pointers(&problem);
    found.sort();
    assert_eq!(
        found,
        vec![
            ("/description".to_owned(), "invalid_format".to_owned()),
            ("/event_types".to_owned(), "unknown_event_type".to_owned()),
            ("/url".to_owned(), "invalid_url".to_owned()),
        ]
    );
    for (url, code) in [
        ("http://10.0.0.7/hook", "destination_not_allowed"),
        ("http://127.0.0.1:9/hook", "destination_not_allowed"),
        ("http://[::1]/hook", "destination_not_allowed"),
        ("http://169.254.169.254/latest", "destination_not_allowed"),
        ("https://user:pw@example.com/", "invalid_url"),
        ("javascript:alert(1)", "invalid_url"),
    ] {
        let r = app
            .post_json(
                "/v1/admin/webhooks",
                &json!({"url": url, "event_types": ["*"]}),
                Some(&admin),
            )
            .await;
        let problem = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(
            pointers(&problem),
            vec![("/url".to_owned(), code.to_owned())],
            "{url}"
        );
    }
    let r = app
        .post_json(
            "/v1/admin/webhooks",
            &json!({"url": "https://a.example/", "event_types": []}),
            Some(&admin),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = app
        .post_json(
            "/v1/admin/webhooks",
            &json!({"url": "https://a.example/", "event_types": ["*"], "secret": "mine"}),
            Some(&admin),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
    let page: Value = app
        .get("/v1/admin/webhooks", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Staff below admin may not see or change endpoints.
    let staff = app.staff_token("staff@example.com", Role::Staff).await;
    assert_problem(
        app.get("/v1/admin/webhooks", Some(&staff)).await,
        403,
        "forbidden",
    )
    .await;

    // Changes: If-Match guards them; a stale version changes nothing.
    let path = format!("/v1/admin/webhooks/{id}");
    let stale = app
        .request(
            Method::PATCH,
            &path,
            Some(&json!({"enabled": false})),
            Some(&admin),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_problem(stale, 412, "precondition_failed").await;
    let r = app
        .request(
            Method::PATCH,
            &path,
            Some(&json!({"enabled": false, "description": "off"})),
            Some(&admin),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(
        (changed["enabled"].clone(), changed["version"].clone()),
        (json!(false), json!(2))
    );

    // Rotation: a new secret, the old one overlapping for the time asked.
    let r = app
        .post_json(
            &format!("{path}/rotate-secret"),
            &json!({"overlap_secs": 999_999}),
            Some(&admin),
        )
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(pointers(&problem)[0].0, "/overlap_secs");
    let r = app
        .post_json(
            &format!("{path}/rotate-secret"),
            &json!({"overlap_secs": 3600}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let rotated: Value = r.json().await.unwrap();
    assert_ne!(rotated["secret"].as_str().unwrap(), secret);
    assert!(rotated["endpoint"]["previous_secret_expires_at"].is_string());

    // Deleted: gone, and so are its deliveries.
    let r = app
        .request(Method::DELETE, &path, None, Some(&admin), &[])
        .await;
    assert_eq!(r.status().as_u16(), 204);
    assert_problem(
        app.get(&path, Some(&admin)).await,
        404,
        "webhook_endpoint_not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}/deliveries"), Some(&admin)).await,
        404,
        "webhook_endpoint_not_found",
    )
    .await;
}

on_both_backends!(failed_deliveries_are_retried_dead_lettered_and_replayed);

async fn failed_deliveries_are_retried_dead_lettered_and_replayed(app: TestApp) {
    let backend = if app.config.database_url.is_some() {
        Backend::Postgres(crate::helpers::postgres_url().unwrap())
    } else {
        Backend::Sqlite
    };
    drop(app);
    let app = store_calling_loopback(backend, &[30, 30]).await;
    let receiver = Receiver::start().await;
    receiver.reply(
        "/in",
        Reply::Statuses(vec![500, 500, 500, 500, 500, 500, 204]),
    );
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let created = create_endpoint(
        &app,
        &admin,
        &format!("{}/in", receiver.base),
        &["product.created"],
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();

    create_product(&app, &admin, simple_product("Kettle", "KET-1", 5_000, &[])).await;
    create_product(&app, &admin, simple_product("Teapot", "TEA-1", 3_000, &[])).await;
    // Three attempts each (the first and two retries), then the dead letter.
    let dead = settle(&app, &admin, &endpoint, 2, "failed").await;
    assert!(
        dead.iter()
            .all(|d| d["attempts"] == 3 && d["last_status_code"] == 500),
        "{dead:#?}"
    );
    let got = receiver.got("/in");
    assert_eq!(got.len(), 6);
    for r in &got {
        assert!(signed_with(r, &secret), "a bad signature on {r:?}");
        assert_eq!(r.headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], "product.created");
        assert!(body["data"]["id"].as_str().unwrap().starts_with("prod_"));
    }
    // Every attempt of a delivery carries its one webhook-id.
    let mut ids: Vec<&str> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2);

    // The staff see each attempt, with the start of the answer.
    let first = dead[1]["id"].as_str().unwrap();
    let detail: Value = app
        .get(
            &format!("/v1/admin/webhooks/{endpoint}/deliveries/{first}"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| a["status_code"] == 500
                && a["response"].as_str().unwrap().starts_with("answer"))
    );
    assert_eq!(detail["payload"]["type"], "product.created");

    // One replayed by id: delivered under the same webhook-id.
    let r = app
        .request(
            Method::POST,
            &format!("/v1/admin/webhooks/{endpoint}/deliveries/{first}/replay"),
            None,
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 202);
    wait_for(
        "the replayed delivery succeeded",
        || deliveries(&app, &admin, &endpoint),
        |d: &Vec<Value>| {
            d.iter()
                .any(|d| d["id"] == first && d["status"] == "succeeded")
        },
    )
    .await;
    assert_eq!(
        receiver.got("/in").last().unwrap().headers["webhook-id"],
        first
    );

    // The rest replayed by time range: only the failed one is queued.
    let r = app
        .post_json(
            &format!("/v1/admin/webhooks/{endpoint}/replay"),
            &json!({"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["queued"], 1);
    settle(&app, &admin, &endpoint, 2, "succeeded").await;
    let r = app
        .post_json(
            &format!("/v1/admin/webhooks/{endpoint}/replay"),
            &json!({"since": "2100-01-01T00:00:00Z", "until": "2000-01-01T00:00:00Z"}),
            Some(&admin),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
}

/// A receiver that never answers, one that answers without end, one that redirects, and a name
/// that resolves to loopback where loopback is not allowed: each fails its attempt, none holds
/// the store, and the redirect is not followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_receivers_cannot_hold_the_store() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.notify.webhooks.allowed_networks = vec!["127.0.0.0/8".to_owned()];
        c.notify.webhooks.retry_delays_ms = vec![];
        c.notify.webhooks.timeout_ms = 500;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.reply("/hang", Reply::Hang);
    receiver.reply("/endless", Reply::Endless);
    receiver.reply("/redirect", Reply::Redirect("/elsewhere"));
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let mut endpoints = Vec::new();
    for path in ["/hang", "/endless", "/redirect"] {
        let e = create_endpoint(
            &app,
            &admin,
            &format!("{}{path}", receiver.base),
            &["product.*"],
        )
        .await;
        endpoints.push((path, e["endpoint"]["id"].as_str().unwrap().to_owned()));
    }
    create_product(&app, &admin, simple_product("Kettle", "KET-1", 5_000, &[])).await;
    for (path, endpoint) in &endpoints {
        let status = if *path == "/endless" {
            "succeeded"
        } else {
            "failed"
        };
        let d = settle(&app, &admin, endpoint, 1, status).await;
        match *path {
            "/hang" => assert_eq!(d[0]["last_error"], "timed out"),
            "/endless" => {
                // The answer was read up to the bound, and only its start kept.
                assert_eq!(d[0]["last_status_code"], 200);
                assert_eq!(d[0]["last_response"].as_str().unwrap().len(), 1024);
            }
            _ => {
                assert_eq!(d[0]["last_status_code"], 302);
                assert!(d[0]["last_error"].as_str().unwrap().contains("redirect"));
            }
        }
    }
    assert!(
        receiver.got("/elsewhere").is_empty(),
        "a redirect was followed"
    );
    // The store still answers at once.
    assert_eq!(app.get("/healthz", None).await.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_for_a_private_address_is_refused_at_delivery() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.notify.webhooks.retry_delays_ms = vec![];
    })
    .await;
    let receiver = Receiver::start().await;
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let port = receiver.base.rsplit(':').next().unwrap();
    // A name passes the check at creation; its addresses are checked when it is resolved.
    let created = create_endpoint(
        &app,
        &admin,
        &format!("http://localhost:{port}/in"),
        &["product.*"],
    )
    .await;
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    create_product(&app, &admin, simple_product("Kettle", "KET-1", 5_000, &[])).await;
    let d = settle(&app, &admin, &endpoint, 1, "failed").await;
    assert_eq!(d[0]["last_error"], "destination not allowed");
    assert!(d[0]["last_status_code"].is_null());
    assert!(
        receiver.got("/in").is_empty(),
        "the store called a loopback receiver"
    );
}

on_both_backends!(an_endpoint_failing_too_long_is_disabled_and_staff_are_told);

async fn an_endpoint_failing_too_long_is_disabled_and_staff_are_told(app: TestApp) {
    let backend = if app.config.database_url.is_some() {
        Backend::Postgres(crate::helpers::postgres_url().unwrap())
    } else {
        Backend::Sqlite
    };
    drop(app);
    let app = TestApp::spawn_with(backend, |c| {
        c.notify.webhooks.allowed_networks = vec!["127.0.0.0/8".to_owned()];
        c.notify.webhooks.retry_delays_ms = vec![20; 50];
        c.notify.webhooks.disable_after_ms = 1;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.reply("/in", Reply::Statuses(vec![503]));
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let created = create_endpoint(
        &app,
        &admin,
        &format!("{}/in", receiver.base),
        &["product.*"],
    )
    .await;
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    create_product(&app, &admin, simple_product("Kettle", "KET-1", 5_000, &[])).await;
    let path = format!("/v1/admin/webhooks/{endpoint}");
    let state: Value = wait_for(
        "the endpoint disabled",
        || async {
            app.drain_outbox().await;
            app.get(&path, Some(&admin)).await.json().await.unwrap()
        },
        |s: &Value| s["enabled"] == false,
    )
    .await;
    assert_eq!(state["disabled_reason"], "failing");
    assert!(state["failing_since"].is_string());
    // Its delivery waits, pending, while it is disabled.
    let attempts_then = receiver.got("/in").len();
    let pending = deliveries(&app, &admin, &endpoint).await;
    assert_eq!(pending[0]["status"], "pending");
    // The staff's trail has it.
    app.drain_outbox().await;
    let events: Value = app
        .get(
            &format!("/v1/admin/events?aggregate_id={endpoint}"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let disabled = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["data"]["action"] == "disabled")
        .expect("a disabled event");
    assert_eq!(disabled["event"]["data"]["by"], "store");

    // Enabled again once the receiver is fixed: the waiting delivery goes through.
    receiver.reply("/in", Reply::Statuses(vec![204]));
    let r = app
        .request(
            Method::PATCH,
            &path,
            Some(&json!({"enabled": true})),
            Some(&admin),
            &[],
        )
        .await;
    let enabled: Value = r.json().await.unwrap();
    assert_eq!(
        (enabled["enabled"].clone(), enabled["failing_since"].clone()),
        (json!(true), Value::Null)
    );
    settle(&app, &admin, &endpoint, 1, "succeeded").await;
    assert!(receiver.got("/in").len() > attempts_then);
}

/// The Python interpreter that has `standardwebhooks` and `aiosmtpd` (`EMPORIUM_TEST_PYTHON`,
/// as `.ci/run` sets it), or `None` after saying loudly that the test did not run.
pub(crate) fn python_tools() -> Option<String> {
    match std::env::var("EMPORIUM_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            assert!(
                std::env::var("EMPORIUM_TEST_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "{test}: EMPORIUM_TEST_PYTHON is not set but EMPORIUM_TEST_REQUIRE_PYTHON=1"
            );
            eprintln!(
                "NOT RUN: {test}: set EMPORIUM_TEST_PYTHON to a Python with standardwebhooks and aiosmtpd"
            );
            None
        }
    }
}

/// A child process whose output lines arrive on a channel; killed when dropped.
pub(crate) struct Child {
    child: tokio::process::Child,
    pub lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Child {
    pub(crate) fn spawn(python: &str, script: &str, args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let path = format!("{}/tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new(python)
            .arg(path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    pub(crate) async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
            .await
            .expect("a line in time")
            .expect("the process still runs")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Real deliveries, verified by the official Standard Webhooks library: with the endpoint's
/// secret; during a rotation's overlap with the old and the new one; after it, with the new
/// one only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_library_verifies_deliveries() {
    let Some(python) = python_tools() else { return };
    let app = store_calling_loopback(Backend::Sqlite, &[50]).await;
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    // The endpoint's secret is known only once it exists: create it, then start the receiver
    // on the port it names.
    let created = create_endpoint(
        &app,
        &admin,
        "http://127.0.0.1:9/placeholder",
        &["product.created"],
    )
    .await;
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    let first = created["secret"].as_str().unwrap().to_owned();
    let path = format!("/v1/admin/webhooks/{endpoint}");
    let rotated: Value = app
        .post_json(
            &format!("{path}/rotate-secret"),
            &json!({"overlap_secs": 3600}),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let second = rotated["secret"].as_str().unwrap().to_owned();
    let mut receiver = Child::spawn(&python, "webhook_receiver.py", &[&first, &second]);
    let port = receiver.line().await;
    let r = app
        .request(
            Method::PATCH,
            &path,
            Some(&json!({"url": format!("http://127.0.0.1:{port}/in")})),
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);

    // In the overlap: signed with both, and the library accepts either.
    create_product(&app, &admin, simple_product("Kettle", "KET-1", 5_000, &[])).await;
    app.drain_outbox().await;
    let seen: Value = serde_json::from_str(&receiver.line().await).unwrap();
    assert_eq!(seen["type"], "product.created");
    assert!(seen["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(seen["verified"], json!([true, true]));

    // A rotation without overlap: only the newest secret verifies.
    let third: Value = app
        .post_json(
            &format!("{path}/rotate-secret"),
            &json!({"overlap_secs": 0}),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let third = third["secret"].as_str().unwrap().to_owned();
    drop(receiver);
    let mut receiver = Child::spawn(&python, "webhook_receiver.py", &[&second, &third]);
    let port = receiver.line().await;
    app.request(
        Method::PATCH,
        &path,
        Some(&json!({"url": format!("http://127.0.0.1:{port}/in")})),
        Some(&admin),
        &[],
    )
    .await;
    create_product(&app, &admin, simple_product("Teapot", "TEA-1", 3_000, &[])).await;
    app.drain_outbox().await;
    let seen: Value = serde_json::from_str(&receiver.line().await).unwrap();
    assert_eq!(seen["verified"], json!([false, true]));
    settle(&app, &admin, &endpoint, 2, "succeeded").await;
}
