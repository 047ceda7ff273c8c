//! Bulk import and the demo catalog: upsert by handle and SKU, new products written together and
//! the others one per savepoint, bad rows reported by line, re-running changes nothing; the CLI's
//! exit codes.

use std::process::Command;

use emporium_kernel::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, emporium_cli};
use crate::on_both_backends;

on_both_backends!(
    an_import_upserts_reports_bad_lines_and_is_idempotent,
    the_demo_catalog_seeds_once_and_reseeds_to_no_change,
    an_imported_product_reads_as_one_created_through_the_api,
    a_batch_keeps_the_order_of_its_inputs_for_repeated_handles,
);

const JSONL: &str = r#"{"handle": "linen-shirt", "title": "Linen Shirt", "status": "published", "categories": ["Apparel > Shirts"], "collections": ["Summer"], "options": [{"name": "Size", "values": ["S", "M"]}], "variants": [{"sku": "LS-S", "options": {"Size": "S"}, "prices": [{"currency": "EUR", "amount": 4900}], "stock": 4}, {"sku": "LS-M", "options": {"Size": "M"}, "prices": [{"currency": "EUR", "amount": 4900}]}]}
{"handle": "broken", "title": "Broken", "variants": [{"sku": "B-1", "prices": [{"currency": "EUR", "amount": -1}]}]}
not json at all

{"handle": "mug", "title": "Mug", "status": "published", "categories": ["Home > Kitchen"], "variants": [{"sku": "MUG-1", "prices": [{"currency": "EUR", "amount": 900}, {"currency": "USD", "amount": 1000}], "stock": 12}]}
{"handle": "cup", "title": "Cup", "variants": [{"sku": "MUG-1", "prices": []}]}
"#;

async fn import(app: &TestApp, text: &str) -> emporium::import::Summary {
    let records = emporium::import::read_jsonl(text);
    let bar = indicatif::ProgressBar::hidden();
    emporium::import::run(
        &emporium::import::Target::of(app.store()).unwrap(),
        records,
        &bar,
    )
    .await
    .unwrap()
}

async fn an_import_upserts_reports_bad_lines_and_is_idempotent(app: TestApp) {
    let summary = import(&app, JSONL).await;
    assert_eq!(
        (summary.created, summary.updated, summary.unchanged),
        (2, 0, 0)
    );
    assert_eq!(summary.stock_set, 2);
    let lines: Vec<usize> = summary.failed.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [2, 3, 6], "{:?}", summary.failed);
    assert!(
        summary.failed[0]
            .1
            .contains("/variants/0/prices/0/amount out_of_range"),
        "{:?}",
        summary.failed
    );
    assert!(
        summary.failed[2].1.contains("sku_taken"),
        "{:?}",
        summary.failed
    );

    let staff = app.staff_token("imp@example.com", Role::Staff).await;
    let page: Value = app
        .get("/v1/admin/products", Some(&staff))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        2,
        "a failed product left rows behind"
    );
    let shirt = &page["items"][1];
    assert_eq!(shirt["handle"], "linen-shirt");
    assert_eq!(shirt["categories"][0]["name"], "Shirts");
    assert_eq!(shirt["collections"][0]["title"], "Summer");
    let cats: Value = app
        .get("/v1/admin/categories", Some(&staff))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cats.as_array().unwrap().len(), 4, "{cats}");

    // The same file again: nothing changes, no version moves, no event is written.
    app.drain_outbox().await;
    let before: i64 = pending_and_delivered(&app).await;
    let again = import(&app, JSONL).await;
    assert_eq!(
        (
            again.created,
            again.updated,
            again.unchanged,
            again.stock_set
        ),
        (0, 0, 2, 0)
    );
    assert_eq!(
        pending_and_delivered(&app).await,
        before,
        "a re-run wrote events"
    );
    let same: Value = app
        .get("/v1/admin/products", Some(&staff))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(same["items"][1]["version"], shirt["version"]);

    // A changed file updates in place: variant ids by SKU survive, a dropped SKU goes.
    let changed = JSONL.replace("\"title\": \"Linen Shirt\"", "\"title\": \"Linen Shirt v2\"").replace(
        r#", {"sku": "LS-M", "options": {"Size": "M"}, "prices": [{"currency": "EUR", "amount": 4900}]}"#,
        "",
    );
    let third = import(&app, &changed).await;
    assert_eq!((third.created, third.updated, third.unchanged), (0, 1, 1));
    let id = shirt["id"].as_str().unwrap();
    let p: Value = app
        .get(&format!("/v1/admin/products/{id}"), Some(&staff))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["title"], "Linen Shirt v2");
    assert_eq!(p["variants"].as_array().unwrap().len(), 1);
    assert_eq!(p["variants"][0]["id"], shirt["variants"][0]["id"]);
}

/// A product document without what differs between two products made from one input.
fn shape(mut product: Value) -> Value {
    let object = product.as_object_mut().unwrap();
    for key in ["id", "handle", "created_at", "updated_at", "published_at"] {
        assert!(object.remove(key).is_some(), "{key} missing");
    }
    for variant in object["variants"].as_array_mut().unwrap() {
        let variant = variant.as_object_mut().unwrap();
        variant.remove("id");
        let sku = variant["sku"].as_str().unwrap().replace("API-", "IMP-");
        variant.insert("sku".into(), sku.into());
    }
    product
}

/// The stored document and the event of the product with `handle`.
async fn stored(app: &TestApp, handle: &str) -> (Value, Value) {
    let mut conn = app.store().db.read().await.unwrap();
    let document: String = emporium_db::run!(&mut conn, |c| sqlx::query_scalar(
        "SELECT document FROM products WHERE handle = $1"
    )
    .bind(handle)
    .fetch_one(c)
    .await)
    .unwrap();
    let document: Value = serde_json::from_str(&document).unwrap();
    let id = document["id"].as_str().unwrap().to_owned();
    let events: Vec<String> = emporium_db::run!(&mut conn, |c| sqlx::query_scalar(
        "SELECT data FROM outbox WHERE aggregate_id = $1 AND event_type = 'product.created'"
    )
    .bind(&id)
    .fetch_all(c)
    .await)
    .unwrap();
    assert_eq!(events.len(), 1, "one creation event for {handle}");
    (document, serde_json::from_str(&events[0]).unwrap())
}

async fn an_imported_product_reads_as_one_created_through_the_api(app: TestApp) {
    // Several categories and collections, named out of order, so their order in the document
    // is the store's and not the file's.
    let line = json!({
        "handle": "imported", "title": "  Linen Shirt ", "description": "Cool.", "status": "published",
        "categories": ["Apparel > Shirts", "Summer Picks", "Apparel > Linen"],
        "collections": ["Summer", "Basics"],
        "options": [{"name": "Size", "values": ["S", "M"]}, {"name": "Colour", "values": ["Sand"]}],
        "attributes": {"material": "linen", "care": {"wash": 30}},
        "variants": [
            {"sku": "IMP-S", "options": {"Size": "S", "Colour": "Sand"}, "weight_grams": 180,
             "prices": [{"currency": "USD", "amount": 5200}, {"currency": "EUR", "amount": 4900}]},
            {"sku": "IMP-M", "title": "Medium", "options": {"Size": "M", "Colour": "Sand"},
             "prices": [{"currency": "EUR", "amount": 5100}, {"currency": "USD", "amount": 5400}]}
        ]
    });
    let summary = import(&app, &line.to_string()).await;
    assert_eq!(summary.created, 1, "{:?}", summary.failed);
    let (document, event) = stored(&app, "imported").await;
    assert_eq!(event, document, "the event carries the stored document");

    let mut body = line.clone();
    let object = body.as_object_mut().unwrap();
    object.insert("handle".into(), "created".into());
    object.insert(
        "category_ids".into(),
        document["categories"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|c| c["id"].clone())
            .collect(),
    );
    object.insert(
        "collection_ids".into(),
        document["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect(),
    );
    object.remove("categories");
    object.remove("collections");
    for variant in object["variants"].as_array_mut().unwrap() {
        let sku = variant["sku"].as_str().unwrap().replace("IMP-", "API-");
        variant["sku"] = sku.into();
    }
    let staff = app.staff_token("shape@example.com", Role::Staff).await;
    let created = app
        .post_json("/v1/admin/products", &body, Some(&staff))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let (api_document, api_event) = stored(&app, "created").await;
    assert_eq!(api_event, api_document);

    let names: Vec<&str> = document["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Linen", "Shirts", "Summer Picks"]);
    assert_eq!(shape(document), shape(api_document));

    // Both read the same through the API too.
    let imported: Value = app
        .get("/v1/store/products/imported", None)
        .await
        .json()
        .await
        .unwrap();
    let through_api: Value = app
        .get("/v1/store/products/created", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shape(imported), shape(through_api));
}

async fn a_batch_keeps_the_order_of_its_inputs_for_repeated_handles(app: TestApp) {
    // One handle twice (created, then updated by the later line); a SKU claimed by an earlier
    // line of the same batch fails the later one; a new product after them is still written.
    let text = [
        json!({"handle": "twice", "title": "First", "variants": [{"sku": "T-1", "prices": []}]}),
        json!({"handle": "twice", "title": "Second", "options": [{"name": "Size", "values": ["S", "M"]}],
               "variants": [{"sku": "T-1", "options": {"Size": "S"}, "prices": []},
                            {"sku": "T-2", "options": {"Size": "M"}, "prices": []}]}),
        json!({"handle": "thief", "title": "Thief", "variants": [{"sku": "T-2", "prices": []}]}),
        json!({"handle": "after", "title": "After", "variants": [{"sku": "A-1", "prices": []}]}),
    ]
    .map(|l| l.to_string())
    .join("\n");
    let summary = import(&app, &text).await;
    assert_eq!(
        (summary.created, summary.updated),
        (2, 1),
        "{:?}",
        summary.failed
    );
    assert_eq!(summary.failed.len(), 1, "{:?}", summary.failed);
    assert_eq!(summary.failed[0].0, 3);
    assert!(
        summary.failed[0].1.contains("sku_taken"),
        "{:?}",
        summary.failed
    );
    let (twice, _) = stored(&app, "twice").await;
    assert_eq!(twice["title"], "Second");
    assert_eq!(twice["version"], 2);
    assert_eq!(twice["variants"].as_array().unwrap().len(), 2);
    stored(&app, "after").await;
}

async fn pending_and_delivered(app: &TestApp) -> i64 {
    let mut conn = app.store().db.read().await.unwrap();
    emporium_db::run!(&mut conn, |c| sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM outbox"
    )
    .fetch_one(c)
    .await)
    .unwrap()
}

async fn the_demo_catalog_seeds_once_and_reseeds_to_no_change(app: TestApp) {
    let bar = indicatif::ProgressBar::hidden();
    let first = emporium::import::run(
        &emporium::import::Target::of(app.store()).unwrap(),
        emporium::seed::demo_catalog(40),
        &bar,
    )
    .await
    .unwrap();
    assert_eq!(first.created, 40);
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert!(first.stock_set > 30);
    let second = emporium::import::run(
        &emporium::import::Target::of(app.store()).unwrap(),
        emporium::seed::demo_catalog(40),
        &bar,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            second.created,
            second.updated,
            second.unchanged,
            second.stock_set
        ),
        (0, 0, 40, 0)
    );
    // The storefront shows published products with prices in EUR, USD and GBP.
    app.drain_outbox().await;
    let r = app.get("/v1/store/products?limit=100", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page: Value = r.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 38, "two in forty are drafts");
    let currencies: Vec<&str> = items[0]["variants"][0]["prices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["currency"].as_str().unwrap())
        .collect();
    assert_eq!(currencies, ["EUR", "GBP", "USD"]);
    assert!(items.iter().any(|p| p["in_stock"] == json!(true)));
}

#[test]
fn the_import_command_exits_non_zero_when_a_row_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("products.csv");
    std::fs::write(
        &file,
        "handle,title,status,categories,option1_name,option1_value,sku,price_EUR,price_USD,stock\n\
         tee,Tee,published,Apparel > Tees,Size,S,TEE-S,1500,1700,3\n\
         tee,Tee,published,Apparel > Tees,Size,M,TEE-M,1500,1700,0\n\
         bad,Bad,published,,,,BAD-1,abc,,\n\
         lamp,Lamp,draft,Home,,,LAMP-1,4500,,\n",
    )
    .unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_emporium"))
            .args(["import", "products"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("EMPORIUM_DATABASE_URL")
            .env_remove("EMPORIUM_CONFIG")
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("2 created"), "{stdout}");
    assert!(stderr.contains("line 4: price_EUR `abc`"), "{stderr}");
    // Fixing the row and running again adds it and leaves the rest as they are.
    let fixed = std::fs::read_to_string(&file)
        .unwrap()
        .replace("BAD-1,abc", "BAD-1,100");
    std::fs::write(&file, fixed).unwrap();
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 created, 0 updated, 2 unchanged"),
        "{stdout}"
    );
}

#[test]
fn the_demo_catalog_written_to_a_file_imports_as_the_seed_would() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.jsonl");
    let emporium = |args: &[&str]| {
        let (code, stdout, stderr) = emporium_cli(dir.path(), args);
        assert_eq!(code, Some(0), "{args:?}: {stdout}{stderr}");
        stdout
    };
    let written = emporium(&[
        "seed",
        "--products",
        "30",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(written.contains("30 demo products written"), "{written}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 30);
    let imported = emporium(&["import", "products", file.to_str().unwrap()]);
    assert!(
        imported.contains("30 created, 0 updated, 0 unchanged"),
        "{imported}"
    );
    // Seeding the same catalog finds every product already as the file had it.
    let seeded = emporium(&["seed", "--products", "30"]);
    assert!(
        seeded.contains("0 created, 0 updated, 30 unchanged"),
        "{seeded}"
    );
}
