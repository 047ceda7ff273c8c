//! The outbox, relay and inbox: committed events are delivered at least once and have one effect;
//! rolled-back ones never leave; a crash between commit and delivery loses nothing.

use std::process::Stdio;
use std::time::Duration;

use emporium_db::{execute, run};
use emporium_kernel::Event;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Row;

use crate::helpers::{
    PASSWORD, TestApp, drop_postgres_database, eventually, fresh_postgres_database, postgres_url,
};
use crate::on_both_backends;

on_both_backends!(
    a_registration_is_delivered_to_the_journal_once,
    an_event_of_a_rolled_back_transaction_is_never_delivered,
    a_redelivered_event_has_no_second_effect,
);

async fn journal_count(app: &TestApp, aggregate: &str) -> i64 {
    let mut conn = app.store().db.read().await.unwrap();
    run!(&mut conn, |c| sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM event_journal WHERE aggregate_id = $1"
    )
    .bind(aggregate)
    .fetch_one(c)
    .await)
    .unwrap()
}

async fn a_registration_is_delivered_to_the_journal_once(app: TestApp) {
    let customer = app.register("eve@example.com").await;
    let id = customer["id"].as_str().unwrap().to_owned();
    // The relay is woken by the commit; wait for it rather than sleeping.
    assert!(
        eventually(Duration::from_secs(10), || async {
            journal_count(&app, &id).await == 1
        })
        .await
    );
    let admin = app
        .staff_token("admin@example.com", emporium_kernel::auth::Role::Admin)
        .await;
    let page: Value = app
        .get(
            &format!("/v1/admin/events?type=customer.registered&aggregate_id={id}"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let event = &items[0]["event"];
    assert_eq!(event["type"], "customer.registered");
    assert_eq!(event["version"], 1);
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["data"]["email"], "eve@example.com");
    assert!(
        event["trace"]
            .as_str()
            .is_some_and(|t| t.starts_with("00-")),
        "events carry the request's traceparent"
    );
    // A failed registration records nothing.
    let dup = app
        .post_json(
            "/v1/auth/register",
            &serde_json::json!({"email": "eve@example.com", "password": PASSWORD, "name": "Eve"}),
            None,
        )
        .await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    app.drain_outbox().await;
    let page: Value = app
        .get("/v1/admin/events?type=customer.registered", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[derive(serde::Serialize)]
struct Probe {
    id: String,
}

impl Event for Probe {
    const TYPE: &'static str = "probe.recorded";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
}

async fn an_event_of_a_rolled_back_transaction_is_never_delivered(app: TestApp) {
    let db = &app.store().db;
    let now = time::OffsetDateTime::now_utc();
    let mut tx = db.begin_write().await.unwrap();
    tx.record(
        &Probe {
            id: "probe-rolled-back".into(),
        },
        1,
        now,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = db.begin_write().await.unwrap();
    tx.record(
        &Probe {
            id: "probe-dropped".into(),
        },
        1,
        now,
    )
    .await
    .unwrap();
    drop(tx);
    let mut tx = db.begin_write().await.unwrap();
    tx.record(
        &Probe {
            id: "probe-committed".into(),
        },
        1,
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.drain_outbox().await;
    assert_eq!(journal_count(&app, "probe-committed").await, 1);
    assert_eq!(journal_count(&app, "probe-rolled-back").await, 0);
    assert_eq!(journal_count(&app, "probe-dropped").await, 0);
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), 0);
}

async fn a_redelivered_event_has_no_second_effect(app: TestApp) {
    let customer = app.register("red@example.com").await;
    let id = customer["id"].as_str().unwrap().to_owned();
    app.drain_outbox().await;
    assert_eq!(journal_count(&app, &id).await, 1);
    // Make the relay believe it never published (as after a crash before marking).
    let db = &app.store().db;
    let mut tx = db.begin_write().await.unwrap();
    let n = execute!(
        &mut tx,
        sqlx::query("UPDATE outbox SET published_at = NULL WHERE aggregate_id = $1").bind(&id)
    )
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 1);
    // Either this drain or the background relay delivers it again; the row ends published.
    app.drain_outbox().await;
    assert_eq!(
        emporium_db::count_pending(db).await.unwrap(),
        0,
        "the event was delivered again"
    );
    assert_eq!(journal_count(&app, &id).await, 1, "but recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_events_are_pruned_after_their_retention_and_pending_ones_never() {
    let app = TestApp::spawn().await;
    let db = &app.store().db;
    let delivered = app.register("old@example.com").await;
    app.drain_outbox().await;
    let now = time::OffsetDateTime::now_utc();
    let mut tx = db.begin_write().await.unwrap();
    tx.record(
        &Probe {
            id: "probe-pending".into(),
        },
        1,
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let pruned = emporium_db::prune_delivered(db, now + time::Duration::seconds(1))
        .await
        .unwrap();
    assert!(pruned >= 1);
    let mut conn = db.read().await.unwrap();
    let left: Vec<String> = run!(&mut conn, |c| sqlx::query(
        "SELECT aggregate_id FROM outbox"
    )
    .fetch_all(c)
    .await
    .map(|rows| rows
        .iter()
        .map(|r| r.get::<String, _>("aggregate_id"))
        .collect()))
    .unwrap();
    drop(conn);
    assert!(!left.contains(&delivered["id"].as_str().unwrap().to_owned()));
    // The probe was either still pending (and kept) or already delivered: never lost.
    app.drain_outbox().await;
    assert_eq!(journal_count(&app, "probe-pending").await, 1);
    assert_eq!(
        journal_count(&app, delivered["id"].as_str().unwrap()).await,
        1,
        "the journal keeps its copy"
    );
}

/// A free loopback port for a child process.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Child {
    pub(crate) process: tokio::process::Child,
    pub(crate) base: String,
}

/// Starts the binary on `data` with crash point `point` enabled (through `data/crash.toml`).
pub(crate) async fn start_binary_crashing_at(
    data: &std::path::Path,
    database_url: Option<&str>,
    point: &str,
) -> Child {
    let crash_file = data.join("crash.toml");
    std::fs::write(&crash_file, format!("crash_points = [\"{point}\"]\n")).unwrap();
    start_binary(data, database_url, Some(&crash_file)).await
}

pub(crate) async fn start_binary(
    data: &std::path::Path,
    database_url: Option<&str>,
    config_file: Option<&std::path::Path>,
) -> Child {
    let port = free_port();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"));
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .env_remove("EMPORIUM_CONFIG")
        .env("EMPORIUM_PAYMENTS__PROVIDERS", "[manual, test]")
        .current_dir(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = database_url {
        cmd.arg("--database-url").arg(url);
    }
    if let Some(file) = config_file {
        cmd.arg("--config").arg(file);
    }
    let process = cmd.spawn().expect("emporium starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = eventually(Duration::from_secs(30), || async {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "the server became ready");
    Child { process, base }
}

pub(crate) async fn wait_exit(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the process exited within 30 s")
        .unwrap()
}

async fn crash_then_restart(database_url: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let crashing = data.path().join("crash.toml");
    std::fs::write(&crashing, "crash_points = [\"relay.before_publish\"]\n").unwrap();
    let mut child = start_binary(data.path(), database_url.as_deref(), Some(&crashing)).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/auth/register", child.base))
        .json(&serde_json::json!({"email": "phoenix@example.com", "password": PASSWORD, "name": "Phoenix"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "the registration was acknowledged before the crash"
    );
    let status = wait_exit(&mut child.process).await;
    assert!(
        !status.success(),
        "the process died at the crash point: {status:?}"
    );

    // Before restart: committed, not delivered.
    let mut config = crate::helpers::test_config(data.path(), database_url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let db = emporium::app::open_database(&config).await.unwrap();
    let pending = emporium_db::count_pending(&db).await.unwrap();
    assert_eq!(pending, 1, "the event waits in the outbox");
    db.close().await;

    let mut child = start_binary(data.path(), database_url.as_deref(), None).await;
    let db = emporium::app::open_database(&config).await.unwrap();
    let delivered = eventually(Duration::from_secs(15), || async {
        let mut conn = db.read().await.unwrap();
        let rows: Vec<String> = run!(&mut conn, |c| sqlx::query(
            "SELECT event_type FROM event_journal"
        )
        .fetch_all(c)
        .await
        .map(|rows| rows
            .iter()
            .map(|r| r.get::<String, _>("event_type"))
            .collect()))
        .unwrap();
        rows == ["customer.registered"]
    })
    .await;
    assert!(
        delivered,
        "the event committed before the crash was delivered after restart"
    );
    db.close().await;

    // SIGTERM: a graceful stop with exit code 0.
    let pid = child.process.id().expect("still running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child.process).await;
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_crash_is_delivered_after_restart_sqlite() {
    crash_then_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_crash_is_delivered_after_restart_postgres() {
    let Some(admin) = postgres_url() else { return };
    let (url, name) = fresh_postgres_database(&admin).await;
    crash_then_restart(Some(url)).await;
    drop_postgres_database(&admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_flushes_their_events() {
    let data = tempfile::tempdir().unwrap();
    let mut child = start_binary(data.path(), None, None).await;
    let client = reqwest::Client::new();
    // Each registration hashes a password (tens of milliseconds on two threads), so most of
    // these are still in flight when the first answer arrives.
    let mut requests: futures_util::stream::FuturesUnordered<_> = (0..12)
        .map(|i| {
            let request = client
                .post(format!("{}/v1/auth/register", child.base))
                .json(&serde_json::json!({"email": format!("late{i}@example.com"), "password": PASSWORD, "name": "Late"}))
                .send();
            tokio::spawn(request)
        })
        .collect();
    use futures_util::StreamExt;
    let first = requests.next().await.unwrap().unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let pid = child.process.id().expect("still running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    while let Some(answer) = requests.next().await {
        let answer = answer
            .unwrap()
            .expect("an in-flight request is answered, not cut off");
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
    assert_eq!(wait_exit(&mut child.process).await.code(), Some(0));

    // Every event was delivered before exit: nothing waits in the outbox.
    let config = crate::helpers::test_config(data.path(), None);
    let db = emporium::app::open_database(&config).await.unwrap();
    assert_eq!(emporium_db::count_pending(&db).await.unwrap(), 0);
    let mut conn = db.read().await.unwrap();
    let journaled: i64 = run!(&mut conn, |c| sqlx::query_scalar(
        "SELECT count(*) FROM event_journal WHERE event_type = 'customer.registered'"
    )
    .fetch_one(c)
    .await)
    .unwrap();
    assert_eq!(journaled, 12);
    drop(conn);
    db.close().await;
}
