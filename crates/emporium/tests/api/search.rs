//! Search through the running server: the index follows catalog and inventory events, survives
//! a restart, and `emporium search reindex` rebuilds it from the journal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_kernel::SystemClock;
use emporium_kernel::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::catalog::create_product;
use crate::helpers::{TestApp, assert_problem, emporium_cli};
use crate::on_both_backends;

on_both_backends!(
    search_follows_creates_updates_unpublishes_and_deletes,
    the_index_survives_a_restart_and_catches_up_from_its_checkpoint,
);

/// How long a change may take to reach search before the test fails: generous, so that a loaded
/// machine does not fail it (it matters only when the change never arrives; speed is measured in
/// `docs/BENCHMARKS.md`, not here).
const DEADLINE: Duration = Duration::from_secs(30);

/// The ids `GET /v1/store/search?{query}` answers with, and the whole answer.
async fn search(app: &TestApp, query: &str) -> (Vec<String>, Value) {
    let r = app.get(&format!("/v1/store/search?{query}"), None).await;
    assert_eq!(r.status(), StatusCode::OK, "search {query}");
    let body: Value = r.json().await.unwrap();
    let ids = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, body)
}

/// Waits until `check` holds for the answer to `query`, re-asking after each index commit, and
/// fails when it does not within [`DEADLINE`] of `since`.
pub(crate) async fn reflects(
    app: &TestApp,
    since: Instant,
    query: &str,
    check: impl Fn(&[String], &Value) -> bool,
) {
    let mut commits = app
        .store()
        .search
        .as_ref()
        .expect("search runs here")
        .watch_checkpoint();
    loop {
        commits.mark_unchanged();
        let (ids, body) = search(app, query).await;
        if check(&ids, &body) {
            return;
        }
        let left = DEADLINE.saturating_sub(since.elapsed());
        let committed = tokio::time::timeout(left, commits.changed()).await;
        assert!(
            committed.is_ok(),
            "search `{query}` did not reflect the change within {DEADLINE:?}: {body}"
        );
    }
}

async fn patch(app: &TestApp, token: &str, id: &str, body: Value) -> Instant {
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/products/{id}"),
            Some(&body),
            Some(token),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    Instant::now()
}

async fn search_follows_creates_updates_unpublishes_and_deletes(app: TestApp) {
    let staff = app.staff_token("search@example.com", Role::Staff).await;
    let r = app
        .post_json(
            "/v1/admin/categories",
            &json!({"name": "Outerwear"}),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let category: Value = r.json().await.unwrap();
    let product = create_product(
        &app,
        &staff,
        json!({
            "title": "Alpine Parka",
            "description": "Down filled, for the coldest days.",
            "status": "published",
            "category_ids": [category["id"]],
            "variants": [{"sku": "PARKA-1", "prices": [{"currency": "EUR", "amount": 18900}]}],
        }),
    )
    .await;
    let created = Instant::now();
    let id = product["id"].as_str().unwrap().to_owned();

    // Created: found by title, by SKU and by its category's name, out of stock.
    reflects(&app, created, "q=parka", |ids, body| {
        ids == [id.clone()] && body["hits"][0]["in_stock"] == false
    })
    .await;
    let (ids, body) = search(&app, "q=PARKA-1").await;
    assert_eq!(ids, [id.as_str()]);
    assert_eq!(body["hits"][0]["categories"][0]["name"], "Outerwear");
    let (ids, _) = search(&app, "q=outerwear").await;
    assert_eq!(ids, [id.as_str()]);

    // Stock from inventory reaches the hit and the availability filter.
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": "main", "name": "Main warehouse"}),
            Some(&staff),
        )
        .await;
    let location: Value = r.json().await.unwrap();
    let (vid, lid) = (
        product["variants"][0]["id"].as_str().unwrap(),
        location["id"].as_str().unwrap(),
    );
    let r = app
        .request(
            Method::PUT,
            &format!("/v1/admin/inventory/levels/{vid}/{lid}"),
            Some(&json!({"on_hand": 4, "reason": "delivery"})),
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let stocked = Instant::now();
    reflects(&app, stocked, "q=parka&in_stock=true", |ids, _| {
        ids == [id.clone()]
    })
    .await;

    // Updated: the new title is found, the old word no longer.
    let renamed = patch(&app, &staff, &id, json!({"title": "Glacier Parka"})).await;
    reflects(&app, renamed, "q=glacier", |ids, body| {
        ids == [id.clone()] && body["hits"][0]["title"] == "Glacier Parka"
    })
    .await;
    let (ids, _) = search(&app, "q=alpine").await;
    assert!(ids.is_empty(), "the old title is still found: {ids:?}");

    // Unpublished: gone from search; published again: back.
    let unpublished = patch(&app, &staff, &id, json!({"status": "draft"})).await;
    reflects(&app, unpublished, "q=glacier", |ids, _| ids.is_empty()).await;
    let republished = patch(&app, &staff, &id, json!({"status": "published"})).await;
    reflects(&app, republished, "q=glacier", |ids, _| ids == [id.clone()]).await;
    let r = app.get("/v1/store/search/suggest?q=glac", None).await;
    let suggested: Value = r.json().await.unwrap();
    assert_eq!(
        suggested["suggestions"][0]["id"],
        id.as_str(),
        "{suggested}"
    );

    // Deleted: gone for good.
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/admin/products/{id}"),
            None,
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let deleted = Instant::now();
    reflects(&app, deleted, "q=glacier", |ids, _| ids.is_empty()).await;
    reflects(&app, deleted, "q=PARKA-1", |ids, _| ids.is_empty()).await;

    // Bad input is a problem, not a 500.
    let r = app.get("/v1/store/search?q=parka&limit=0", None).await;
    assert_problem(r, 422, "validation_failed").await;
}

async fn the_index_survives_a_restart_and_catches_up_from_its_checkpoint(mut app: TestApp) {
    let staff = app.staff_token("search@example.com", Role::Staff).await;
    let kept = create_product(
        &app,
        &staff,
        json!({"title": "Wool Scarf", "status": "published",
               "variants": [{"sku": "SCARF-1", "prices": [{"currency": "EUR", "amount": 2900}]}]}),
    )
    .await;
    reflects(&app, Instant::now(), "q=scarf", |ids, _| ids.len() == 1).await;
    let checkpoint = app
        .store()
        .search
        .as_ref()
        .expect("search runs here")
        .checkpoint();
    assert!(checkpoint > 0);

    // Written while no server runs: the events wait in the outbox.
    app.stop().await;
    let offline = {
        let db = emporium::app::open_database(&app.config).await.unwrap();
        let store = emporium::Store::build(&app.config, db.clone(), Arc::new(SystemClock)).unwrap();
        let created = store
            .catalog
            .as_ref()
            .expect("the catalog runs here")
            .service
            .create_product(
                serde_json::from_value(json!({"title": "Wool Mittens", "status": "published",
                    "variants": [{"sku": "MITT-1", "prices": [{"currency": "EUR", "amount": 1900}]}]}))
                .unwrap(),
            )
            .await
            .unwrap();
        db.close().await;
        created
    };
    app.start().await;

    // The restarted index still has what it had, and catches up with what came since.
    assert!(
        app.store()
            .search
            .as_ref()
            .expect("search runs here")
            .checkpoint()
            >= checkpoint
    );
    let (ids, _) = search(&app, "q=scarf").await;
    assert_eq!(ids, [kept["id"].as_str().unwrap()]);
    reflects(&app, Instant::now(), "q=mittens", |ids, _| {
        ids == [offline.id.to_string()]
    })
    .await;
}

#[test]
fn reindex_rebuilds_the_index_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let emporium = |args: &[&str]| emporium_cli(dir.path(), args);
    let (code, stdout, stderr) = emporium(&["seed", "--products", "40"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Every 20th demo product is a draft: 38 of 40 are published.
    let (code, stdout, stderr) = emporium(&["search", "reindex"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(" 38 published products"), "{stdout}");
    // A rebuild of a rebuilt index gives the same index.
    let (code, again, stderr) = emporium(&["search", "reindex"]);
    assert_eq!(code, Some(0), "{again}{stderr}");
    assert!(again.contains(" 38 published products"), "{again}");

    let index = emporium_search::SearchIndex::open(dir.path().join("search")).unwrap();
    assert_eq!(index.published_count().unwrap(), 38);
    let all = index
        .search(&serde_json::from_value(json!({"limit": 100})).unwrap())
        .unwrap();
    assert_eq!(all.total, 38);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_refuses_an_index_a_running_server_holds() {
    let app = TestApp::spawn().await;
    let staff = app.staff_token("search@example.com", Role::Staff).await;
    create_product(
        &app,
        &staff,
        json!({"title": "Wool Scarf", "status": "published",
               "variants": [{"sku": "SCARF-1", "prices": [{"currency": "EUR", "amount": 2900}]}]}),
    )
    .await;
    reflects(&app, Instant::now(), "q=scarf", |ids, _| ids.len() == 1).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(["search", "reindex", "--data-dir"])
        .arg(&app.config.data_dir)
        .env_remove("EMPORIUM_DATABASE_URL")
        .env_remove("EMPORIUM_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is a server using it?"), "{stderr}");
    // The server's index is untouched.
    let (ids, _) = search(&app, "q=scarf").await;
    assert_eq!(ids.len(), 1);
}
