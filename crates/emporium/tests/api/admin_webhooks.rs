//! The webhook pages of the admin UI, driven over HTTP like a browser against a real receiver:
//! an endpoint created through the form shows its secret once and that secret signs the real
//! deliveries; bad input is shown beside its field and stores nothing; a dead-lettered delivery
//! shows its attempts and is replayed alone, then a range is replayed; the secret is rotated;
//! stale edits are refused; a staff role is refused; the endpoint is deleted.

use emporium_kernel::auth::Role;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;

use crate::admin_ui::{csrf_of, signed_in};
use crate::catalog::{create_product, simple_product};
use crate::helpers::{Backend, TestApp, wait_for};
use crate::webhooks::{Receiver, Reply, signed_with, store_calling_loopback};

/// The text after the first `start` up to the next `end`.
fn between<'h>(html: &'h str, start: &str, end: &str) -> &'h str {
    let at = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {html}"))
        + start.len();
    let rest = &html[at..];
    &rest[..rest
        .find(end)
        .unwrap_or_else(|| panic!("{end} after {start}"))]
}

/// The deliveries of `endpoint` as the API lists them, once `done` holds.
async fn deliveries_when(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    what: &str,
    done: impl Fn(&Vec<Value>) -> bool,
) -> Vec<Value> {
    wait_for(
        what,
        || async {
            app.drain_outbox().await;
            let r = app
                .get(
                    &format!("/v1/admin/webhooks/{endpoint}/deliveries"),
                    Some(token),
                )
                .await;
            let page: Value = r.json().await.unwrap();
            page["items"].as_array().cloned().unwrap_or_default()
        },
        done,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_are_managed_and_replayed_from_their_pages() {
    // Two attempts, then the dead letter.
    let app = store_calling_loopback(Backend::Sqlite, &[20]).await;
    let receiver = Receiver::start().await;
    receiver.reply("/in", Reply::Statuses(vec![500, 500, 204]));
    let owner = app.staff_token("owner@example.com", Role::Owner).await;
    let browser = signed_in(&app, "admin@example.com", Role::Admin).await;

    let page = browser.get_html("/admin/webhooks").await;
    assert!(page.contains("No webhook endpoints yet."));
    assert!(page.contains(r#"href="/admin/webhooks" aria-current="page""#));
    let csrf = csrf_of(&page);

    // Bad input: shown beside its fields, the form refilled, nothing stored.
    let r = browser
        .post(
            "/admin/webhooks",
            &[
                ("_csrf", &csrf),
                ("url", "ftp://example.com/hook"),
                ("description", "Bad"),
                ("event_types", "product.created, no.such"),
                ("enabled", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="f-url-error""#), "{html}");
    assert!(html.contains(r#"id="f-event_types-error""#), "{html}");
    assert!(html.contains(r#"value="product.created, no.such""#));
    let listed: Value = app
        .get("/v1/admin/webhooks", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], serde_json::json!([]));

    // Created: the secret is on the answer's page, and only there.
    let url = format!("{}/in", receiver.base);
    let r = browser
        .post(
            "/admin/webhooks",
            &[
                ("_csrf", &csrf),
                ("url", &url),
                ("description", "ERP <b>sync</b>"),
                ("event_types", "product.created"),
                ("enabled", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let secret = between(&html, r#"id="webhook-secret">"#, "<").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let endpoint = between(&html, r#"href="/admin/webhooks/"#, "\"").to_owned();
    assert!(endpoint.starts_with("whep_"), "{endpoint}");
    let base = format!("/admin/webhooks/{endpoint}");
    let page = browser.get_html(&base).await;
    assert!(!page.contains(&secret));
    assert!(!browser.get_html("/admin/webhooks").await.contains(&secret));
    assert!(
        page.contains(r#"value="ERP &lt;b&gt;sync&lt;/b&gt;""#),
        "{page}"
    );
    assert!(!page.contains("<b>sync"));

    // A delivery fails twice and lands in the dead letter; its page shows both attempts.
    create_product(&app, &owner, simple_product("Kettle", "KET-1", 5_000, &[])).await;
    let dead = deliveries_when(&app, &owner, &endpoint, "a dead letter", |d| {
        d.len() == 1 && d[0]["status"] == "failed"
    })
    .await;
    let delivery = dead[0]["id"].as_str().unwrap().to_owned();
    let page = browser.get_html(&format!("{base}?status=failed")).await;
    assert!(
        page.contains(&delivery) && page.contains(">500 in "),
        "{page}"
    );
    let none = browser.get_html(&format!("{base}?status=succeeded")).await;
    assert!(!none.contains(&delivery) && none.contains("No deliveries."));
    let detail = browser
        .get_html(&format!("{base}/deliveries/{delivery}"))
        .await;
    assert!(
        detail.contains(r#"id="delivery-status">failed<"#),
        "{detail}"
    );
    assert_eq!(
        detail.matches(r#"data-label="Status code">500<"#).count(),
        2
    );
    assert!(detail.contains("answer 1 from /in") && detail.contains("answer 2 from /in"));
    assert!(
        detail.contains("&quot;product.created&quot;"),
        "the body as sent"
    );
    let got = receiver.got("/in");
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| signed_with(r, &secret)));

    // Sent again from its page: the third answer is a success.
    let r = browser
        .post(
            &format!("{base}/deliveries/{delivery}/replay"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION],
        format!("{base}/deliveries/{delivery}?done=replayed").as_str()
    );
    deliveries_when(&app, &owner, &endpoint, "the replay to succeed", |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    })
    .await;
    let detail = browser
        .get_html(&format!("{base}/deliveries/{delivery}"))
        .await;
    assert!(detail.contains(r#"id="delivery-status">succeeded<"#));
    assert_eq!(
        receiver.got("/in")[2].headers["webhook-id"],
        delivery.as_str()
    );

    // A range: bad times are refused beside their fields; then every succeeded delivery of
    // the range is sent again.
    let r = browser
        .post(
            &format!("{base}/replay"),
            &[
                ("_csrf", &csrf),
                ("since", "yesterday"),
                ("until", "2100-01-01T00:00"),
                ("replay_status", "succeeded"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="f-since-error""#) && !html.contains(r#"id="f-until-error""#));
    let r = browser
        .post(
            &format!("{base}/replay"),
            &[
                ("_csrf", &csrf),
                ("since", "2100-01-01T00:00"),
                ("until", "2000-01-01T00:00"),
                ("replay_status", "succeeded"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains(r#"id="f-until-error""#));
    create_product(&app, &owner, simple_product("Teapot", "TEA-1", 3_000, &[])).await;
    deliveries_when(&app, &owner, &endpoint, "two succeeded", |d| {
        d.len() == 2 && d.iter().all(|d| d["status"] == "succeeded")
    })
    .await;
    let before = receiver.got("/in").len();
    let r = browser
        .post(
            &format!("{base}/replay"),
            &[
                ("_csrf", &csrf),
                ("since", "2000-01-01T00:00"),
                ("until", "2100-01-01T00:00"),
                ("replay_status", "succeeded"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(to, format!("{base}?queued=2#deliveries"));
    assert!(
        browser
            .get_html(&format!("{base}?queued=2"))
            .await
            .contains("2 deliveries queued to be sent again.")
    );
    wait_for(
        "the range sent again",
        || async {
            app.drain_outbox().await;
            receiver.got("/in").len()
        },
        |n| *n == before + 2,
    )
    .await;

    // Rotation: a new secret shown once, the old one signing for the overlap.
    let r = browser
        .post(
            &format!("{base}/rotate"),
            &[("_csrf", &csrf), ("overlap_secs", "3600")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let rotated = between(&html, r#"id="webhook-secret">"#, "<").to_owned();
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    assert!(html.contains("The previous secret also signs every delivery until"));
    let page = browser.get_html(&base).await;
    assert!(!page.contains(&rotated) && page.contains("signs until"));

    // An edit against an old version is refused and keeps what was typed; a current one saves.
    let version = between(&page, r#"name="version" value=""#, "\"").to_owned();
    let stale = (version.parse::<i64>().unwrap() - 1).to_string();
    let r = browser
        .post(
            &base,
            &[
                ("_csrf", &csrf),
                ("version", &stale),
                ("url", &url),
                ("description", "typed"),
                ("event_types", "product.*"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("Someone changed this endpoint") && html.contains(r#"value="typed""#));
    let r = browser
        .post(
            &base,
            &[
                ("_csrf", &csrf),
                ("version", &version),
                ("url", &url),
                ("description", "typed"),
                ("event_types", "product.*"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let stored: Value = app
        .get(&format!("/v1/admin/webhooks/{endpoint}"), Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["enabled"], false, "an unticked box disables");
    assert_eq!(stored["event_types"], serde_json::json!(["product.*"]));
    assert!(
        browser
            .get_html(&base)
            .await
            .contains(r#"id="endpoint-state">disabled<"#)
    );

    // The staff role: no link, and the API's refusal shows.
    let staff = signed_in(&app, "staff@example.com", Role::Staff).await;
    assert!(
        !staff
            .get_html("/admin")
            .await
            .contains(r#"href="/admin/webhooks""#)
    );
    assert_eq!(staff.get(&base).await.status(), StatusCode::FORBIDDEN);
    let token = csrf_of(&staff.get_html("/admin").await);
    let r = staff
        .post(&format!("{base}/delete"), &[("_csrf", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = browser
        .post(&format!("{base}/delete"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(r.headers()[LOCATION], "/admin/webhooks?done=deleted");
    let r = app
        .get(&format!("/v1/admin/webhooks/{endpoint}"), Some(&owner))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
