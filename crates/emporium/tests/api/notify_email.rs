//! E-mail to customers and staff, delivered to a real SMTP server (`aiosmtpd`, started by the
//! test from `smtp_sink.py`) and read back from what it received.

use std::time::Duration;

use emporium_kernel::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{create_product, simple_product};
use crate::checkout::{check_out, ready_cart, shop};
use crate::helpers::{Backend, TestApp, wait_for};
use crate::webhooks::{Child, Receiver, Reply, create_endpoint, python_tools};

/// A real SMTP server on a free loopback port, ready to receive, and its URL.
async fn smtp_sink(python: &str) -> (Child, String) {
    let port = crate::events::free_port();
    let mut sink = Child::spawn(python, "smtp_sink.py", &[&port.to_string()]);
    assert_eq!(sink.line().await, "ready");
    (sink, format!("smtp://127.0.0.1:{port}"))
}

async fn next_mail(sink: &mut Child) -> Value {
    serde_json::from_str(&sink.line().await).unwrap()
}

/// An order placed, shipped and refunded: the customer hears of each, the staff of the new
/// order and of the stock falling low; every value in the HTML is escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_emails_reach_a_real_smtp_server() {
    let Some(python) = python_tools() else { return };
    let (mut sink, smtp_url) = smtp_sink(&python).await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.notify.email.smtp_url = Some(emporium_kernel::Secret::new(smtp_url));
        c.notify.email.from = "Shop <shop@example.com>".to_owned();
        c.notify.email.staff = vec!["orders@example.com".to_owned()];
        c.notify.email.store_name = "Kettle & <Co>".to_owned();
        c.notify.email.low_stock_threshold = 5;
    })
    .await;
    let shop = shop(&app, 6, 10).await;
    let (cart, token) = ready_cart(&app, &shop, 2, false).await;
    let r = check_out(&app, &cart, &token, "key-1", "tok_success").await;
    assert_eq!(r.status().as_u16(), 201);
    let order: Value = r.json().await.unwrap();
    let id = order["order"]["id"].as_str().unwrap().to_owned();
    app.drain_outbox().await;

    // Placed: the customer's confirmation, the staff's notice, and (6 - 2 < 5) low stock.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_mail(&mut sink).await);
    }
    let of = |to: &str, needle: &str| {
        got.iter()
            .find(|m| m["to"] == json!([to]) && m["subject"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no mail to {to} about {needle}: {got:#?}"))
            .clone()
    };
    let placed = of("guest@example.com", "is placed");
    assert_eq!(placed["from"], "shop@example.com");
    assert!(placed["subject"].as_str().unwrap().contains(&id));
    assert!(placed["text"].as_str().unwrap().contains("Kettle"));
    // The store's name went through the HTML escaped.
    let html = placed["html"].as_str().unwrap();
    assert!(
        html.contains("Kettle &amp; &lt;Co&gt;") && !html.contains("<Co>"),
        "{html}"
    );
    let staff = of("orders@example.com", "new order");
    assert!(
        staff["text"]
            .as_str()
            .unwrap()
            .contains("guest@example.com")
    );
    let low = of("orders@example.com", "low stock");
    assert!(low["text"].as_str().unwrap().contains("4 units"), "{low}");

    // Shipped, with a tracking number that tries to break out of the HTML.
    let admin = app.staff_token("owner@example.com", Role::Owner).await;
    let act = |action: &'static str, body: Value| {
        let (app, admin, id) = (&app, admin.clone(), id.clone());
        async move {
            let r = app
                .request(
                    Method::POST,
                    &format!("/v1/admin/orders/{id}/{action}"),
                    Some(&body),
                    Some(&admin),
                    &[],
                )
                .await;
            assert_eq!(r.status().as_u16(), 200, "{action}");
        }
    };
    act("capture", json!({})).await;
    act(
        "fulfill",
        json!({"lines": [{"variant_id": shop.variant, "quantity": 2}]}),
    )
    .await;
    act(
        "ship",
        json!({"tracking_number": "<img src=x onerror=alert(1)>"}),
    )
    .await;
    app.drain_outbox().await;
    let shipped = next_mail(&mut sink).await;
    assert!(
        shipped["subject"].as_str().unwrap().contains("has shipped"),
        "{shipped}"
    );
    assert!(
        shipped["text"]
            .as_str()
            .unwrap()
            .contains("<img src=x onerror=alert(1)>")
    );
    let html = shipped["html"].as_str().unwrap();
    assert!(
        !html.contains("<img") && html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );

    // Nothing more went out: each e-mail once, however often its event is delivered.
    app.drain_outbox().await;
    let extra = tokio::time::timeout(Duration::from_millis(500), sink.lines.recv()).await;
    assert!(extra.is_err(), "an unexpected e-mail: {extra:?}");
}

/// The state and attempts of every e-mail of the store, by kind.
async fn emails(app: &TestApp) -> Vec<(String, String, i64, Option<String>)> {
    let mut conn = app.store().db.read().await.unwrap();
    emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT kind, status, attempts, last_error FROM email_messages ORDER BY kind"
    )
    .fetch_all(c)
    .await
    .unwrap())
}

/// An SMTP server that is down when the order is placed: the e-mail waits, is retried, and
/// arrives once the server is up, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_retried_until_the_smtp_server_answers() {
    let Some(python) = python_tools() else { return };
    let port = crate::events::free_port();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.notify.email.smtp_url = Some(emporium_kernel::Secret::new(format!(
            "smtp://127.0.0.1:{port}"
        )));
        c.notify.email.retry_delays_ms = vec![100; 1000];
        c.notify.email.low_stock_threshold = 0;
    })
    .await;
    let shop = shop(&app, 10, 10).await;
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    let r = check_out(&app, &cart, &token, "key-1", "tok_success").await;
    assert_eq!(r.status().as_u16(), 201);
    app.drain_outbox().await;

    // Nothing listens: attempts fail and the message stays pending.
    wait_for(
        "a failed attempt recorded",
        || emails(&app),
        |now| {
            now.iter().any(|(_, status, attempts, error)| {
                status == "pending" && *attempts >= 2 && error.is_some()
            })
        },
    )
    .await;

    // The server comes up: the message goes out, once.
    let mut sink = Child::spawn(&python, "smtp_sink.py", &[&port.to_string()]);
    assert_eq!(sink.line().await, "ready");
    let mail = next_mail(&mut sink).await;
    assert!(
        mail["subject"].as_str().unwrap().contains("is placed"),
        "{mail}"
    );
    wait_for(
        "the message marked sent",
        || emails(&app),
        |now| now.iter().all(|(_, status, _, _)| status == "sent"),
    )
    .await;
    let extra = tokio::time::timeout(Duration::from_millis(500), sink.lines.recv()).await;
    assert!(extra.is_err(), "sent twice: {extra:?}");
}

/// An endpoint the store disables for failing: the staff get an e-mail naming it, with its URL
/// escaped in the HTML part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_are_emailed_when_the_store_disables_a_failing_endpoint() {
    let Some(python) = python_tools() else { return };
    let (mut sink, smtp_url) = smtp_sink(&python).await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.notify.email.smtp_url = Some(emporium_kernel::Secret::new(smtp_url));
        c.notify.email.staff = vec!["ops@example.com".to_owned()];
        c.notify.webhooks.allowed_networks = vec!["127.0.0.0/8".to_owned()];
        c.notify.webhooks.retry_delays_ms = vec![20; 50];
        c.notify.webhooks.disable_after_ms = 1;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.reply("/in", Reply::Statuses(vec![503]));
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let url = format!("{}/in?a=1&b=<x>", receiver.base);
    let created = create_endpoint(&app, &admin, &url, &["product.*"]).await;
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    create_product(&app, &admin, simple_product("Kettle", "KET-1", 5_000, &[])).await;

    // Mail arrives as the store makes it; the outbox is drained between reads.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mail = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no e-mail of the disabled endpoint"
        );
        app.drain_outbox().await;
        let Ok(line) = tokio::time::timeout(Duration::from_millis(250), sink.line()).await else {
            continue;
        };
        let mail: Value = serde_json::from_str(&line).unwrap();
        if mail["subject"]
            .as_str()
            .unwrap_or_default()
            .contains("disabled")
        {
            break mail;
        }
    };
    assert_eq!(mail["to"], json!(["ops@example.com"]));
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains(&endpoint), "{text}");
    let html = mail["html"].as_str().unwrap();
    assert!(html.contains(&endpoint) && !html.contains("<x>"), "{html}");
    let state: Value = app
        .get(&format!("/v1/admin/webhooks/{endpoint}"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(state["disabled_reason"], "failing");
}
