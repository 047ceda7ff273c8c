//! The catalog over HTTP: staff writes with validation and optimistic concurrency, the category
//! tree, and storefront reads (cache, ETag / 304, filters, sorts, cursors).

use emporium_kernel::auth::Role;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, after_delivery, assert_problem, pointers};
use crate::on_both_backends;
use emporium_catalog::{CatalogReads, ReadCacheConfig};

on_both_backends!(
    a_product_goes_from_draft_to_the_storefront_and_back,
    bad_products_are_refused_with_every_field_named,
    handles_and_skus_are_unique,
    stale_writes_get_412_and_concurrent_ones_cannot_both_win,
    variants_are_added_changed_and_removed,
    the_category_tree_moves_renames_and_refuses_cycles,
    the_storefront_list_filters_sorts_and_pages,
    catalog_routes_check_who_is_calling,
);

/// Creates a product as `token` and returns its JSON.
pub async fn create_product(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app
        .post_json("/v1/admin/products", &body, Some(token))
        .await;
    let status = r.status();
    let json: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{json}");
    json
}

/// A published product with one variant priced in EUR (and USD when given).
pub fn simple_product(title: &str, sku: &str, eur: i64, categories: &[&str]) -> Value {
    json!({
        "title": title,
        "status": "published",
        "category_ids": categories,
        "variants": [{"sku": sku, "prices": [{"currency": "EUR", "amount": eur}, {"currency": "USD", "amount": eur + 100}]}],
    })
}

async fn create_category(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app
        .post_json("/v1/admin/categories", &body, Some(token))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

fn etag(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().unwrap().to_owned()
}

async fn a_product_goes_from_draft_to_the_storefront_and_back(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let shirts = create_category(&app, &staff, json!({"name": "Shirts"})).await;
    let product = create_product(
        &app,
        &staff,
        json!({
            "title": "Linen Shirt",
            "description": "Cool in summer.",
            "options": [{"name": "Size", "values": ["S", "M"]}],
            "variants": [
                {"sku": "LS-S", "options": {"Size": "S"}, "weight_grams": 200,
                 "prices": [{"currency": "EUR", "amount": 4900}, {"currency": "USD", "amount": 5500}]},
                {"sku": "LS-M", "options": {"Size": "M"}, "prices": [{"currency": "EUR", "amount": 5100}]}
            ],
            "category_ids": [shirts["id"]],
            "attributes": {"material": "linen"}
        }),
    )
    .await;
    let id = product["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("prod_"));
    assert_eq!(product["handle"], "linen-shirt");
    assert_eq!(product["status"], "draft");
    assert_eq!(product["version"], 1);
    assert_eq!(product["variants"][0]["title"], "S");
    assert_eq!(product["categories"][0]["name"], "Shirts");
    assert_eq!(product["variants"][1]["prices"][0]["amount"], 5100);

    // A draft is invisible on the storefront, by id and by handle.
    for key in [id.as_str(), "linen-shirt"] {
        let r = app.get(&format!("/v1/store/products/{key}"), None).await;
        assert_problem(r, 404, "product_not_found").await;
    }

    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/products/{id}"),
            Some(&json!({"status": "published"})),
            Some(&staff),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(etag(&r), "\"2\"");
    let published: Value = r.json().await.unwrap();
    assert!(published["published_at"].is_string());

    // The storefront sees it once the publish event has been delivered.
    let seen = after_delivery(&app, || async {
        app.get("/v1/store/products/linen-shirt", None)
            .await
            .status()
            == StatusCode::OK
    })
    .await;
    assert!(seen, "published product never reached the storefront");
    let r = app.get(&format!("/v1/store/products/{id}"), None).await;
    let tag = etag(&r);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["title"], "Linen Shirt");
    assert_eq!(body["in_stock"], false);
    assert_eq!(body["variants"][0]["available"], 0);

    // A client holding the current copy gets 304; a stale tag gets the body.
    let r = app
        .request(
            Method::GET,
            "/v1/store/products/linen-shirt",
            None,
            None,
            &[("if-none-match", tag.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = app
        .request(
            Method::GET,
            "/v1/store/products/linen-shirt",
            None,
            None,
            &[("if-none-match", "\"stale\"")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // A change reaches the storefront and changes the ETag.
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/products/{id}"),
            Some(&json!({"title": "Linen Shirt II", "handle": "linen-shirt-2"})),
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let renamed = after_delivery(&app, || async {
        let r = app.get(&format!("/v1/store/products/{id}"), None).await;
        r.status() == StatusCode::OK
            && r.json::<Value>().await.unwrap()["title"] == "Linen Shirt II"
    })
    .await;
    assert!(renamed, "the storefront kept serving the old title");
    let r = app.get("/v1/store/products/linen-shirt-2", None).await;
    assert_ne!(etag(&r), tag);
    let r = app.get("/v1/store/products/linen-shirt", None).await;
    assert_problem(r, 404, "product_not_found").await;

    // Archived products leave the storefront; deleted ones leave the admin too.
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/products/{id}"),
            Some(&json!({"status": "archived"})),
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let gone = after_delivery(&app, || async {
        app.get(&format!("/v1/store/products/{id}"), None)
            .await
            .status()
            == StatusCode::NOT_FOUND
    })
    .await;
    assert!(gone, "an archived product stayed on the storefront");
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
    let r = app
        .get(&format!("/v1/admin/products/{id}"), Some(&staff))
        .await;
    assert_problem(r, 404, "product_not_found").await;

    // Every step was an event, in order, carrying the product.
    app.drain_outbox().await;
    let r = app
        .get(
            &format!("/v1/admin/events?aggregate_id={id}"),
            Some(&app.staff_token("own@example.com", Role::Owner).await),
        )
        .await;
    let events: Value = r.json().await.unwrap();
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "product.deleted",
            "product.archived",
            "product.updated",
            "product.published",
            "product.created"
        ]
    );
    assert_eq!(
        events["items"][2]["event"]["data"]["title"],
        "Linen Shirt II"
    );
}

async fn bad_products_are_refused_with_every_field_named(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let body = json!({
        "title": "",
        "handle": "Bad Handle",
        "options": [{"name": "Size", "values": ["S", "S"]}],
        "variants": [
            {"sku": "-bad", "options": {"Size": "XL"}, "prices": [{"currency": "EUR", "amount": -5}]},
            {"sku": "OK-1", "options": {"Size": "S", "Colour": "Red"}},
        ],
        "category_ids": ["pcat_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"],
    });
    let r = app
        .post_json("/v1/admin/products", &body, Some(&staff))
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    let found = pointers(&problem);
    for expected in [
        ("/title", "required"),
        ("/handle", "invalid_format"),
        ("/options/0/values/1", "duplicate"),
        ("/variants/0/sku", "invalid_format"),
        ("/variants/0/options/Size", "unknown_option_value"),
        ("/variants/0/prices/0/amount", "out_of_range"),
        ("/variants/1/options/Colour", "unknown_option"),
    ] {
        assert!(
            found.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} missing from {found:?}"
        );
    }
    // Unknown links are checked once the fields are valid.
    let r = app
        .post_json(
            "/v1/admin/products",
            &json!({"title": "T", "category_ids": ["pcat_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"]}),
            Some(&staff),
        )
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [("/category_ids/0".to_owned(), "unknown_category".to_owned())]
    );
    // A bad currency and an unknown field are caught at the door.
    let r = app
        .post_json("/v1/admin/products", &json!({"title": "T", "variants": [{"sku": "A", "prices": [{"currency": "euro", "amount": 1}]}]}), Some(&staff))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post_json(
            "/v1/admin/products",
            &json!({"title": "T", "colour": "red"}),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing was written.
    let r = app.get("/v1/admin/products", Some(&staff)).await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
}

async fn handles_and_skus_are_unique(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let first = create_product(&app, &staff, simple_product("Mug", "MUG-1", 900, &[])).await;
    // Same title without a handle: a free handle is chosen.
    let second = create_product(&app, &staff, simple_product("Mug", "MUG-2", 900, &[])).await;
    assert_eq!(first["handle"], "mug");
    assert_eq!(second["handle"], "mug-2");
    // An explicit handle that is taken, or a SKU that is taken, is a conflict.
    let mut body = simple_product("Cup", "CUP-1", 900, &[]);
    body["handle"] = json!("mug");
    let r = app
        .post_json("/v1/admin/products", &body, Some(&staff))
        .await;
    assert_problem(r, 409, "handle_taken").await;
    let r = app
        .post_json(
            "/v1/admin/products",
            &simple_product("Cup", "MUG-1", 900, &[]),
            Some(&staff),
        )
        .await;
    assert_problem(r, 409, "sku_taken").await;
    let id = second["id"].as_str().unwrap();
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/products/{id}"),
            Some(&json!({"handle": "mug"})),
            Some(&staff),
            &[],
        )
        .await;
    assert_problem(r, 409, "handle_taken").await;
    // Ten concurrent creations of one SKU: one wins.
    let attempts = (0..10).map(|i| {
        let app = &app;
        let staff = &staff;
        async move {
            app.post_json(
                "/v1/admin/products",
                &simple_product(&format!("Plate {i}"), "PLATE", 500, &[]),
                Some(staff),
            )
            .await
            .status()
        }
    });
    let statuses = join_all(attempts).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
}

async fn stale_writes_get_412_and_concurrent_ones_cannot_both_win(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let product = create_product(&app, &staff, simple_product("Lamp", "LAMP", 2500, &[])).await;
    let id = product["id"].as_str().unwrap();
    let r = app
        .get(&format!("/v1/admin/products/{id}"), Some(&staff))
        .await;
    assert_eq!(etag(&r), "\"1\"");
    let path = format!("/v1/admin/products/{id}");
    let attempts = (0..8).map(|i| {
        let (app, staff, path) = (&app, &staff, &path);
        async move {
            app.request(
                Method::PATCH,
                path,
                Some(&json!({"title": format!("Lamp {i}")})),
                Some(staff),
                &[("if-match", "\"1\"")],
            )
            .await
            .status()
        }
    });
    let statuses = join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count(),
        7,
        "{statuses:?}"
    );
    let r = app
        .request(
            Method::DELETE,
            &path,
            None,
            Some(&staff),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_problem(r, 412, "precondition_failed").await;
    let r = app
        .request(
            Method::PATCH,
            &path,
            Some(&json!({"title": "x"})),
            Some(&staff),
            &[("if-match", "W/\"junk\"")],
        )
        .await;
    assert_problem(r, 412, "precondition_failed").await;
    let r = app.get(&path, Some(&staff)).await;
    assert_eq!(etag(&r), "\"2\"");
}

async fn variants_are_added_changed_and_removed(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let product = create_product(
        &app,
        &staff,
        json!({"title": "Tee", "options": [{"name": "Size", "values": ["S", "M", "L"]}],
               "variants": [{"sku": "TEE-S", "options": {"Size": "S"}, "prices": [{"currency": "EUR", "amount": 1500}]}]}),
    )
    .await;
    let id = product["id"].as_str().unwrap();
    let base = format!("/v1/admin/products/{id}/variants");
    let r = app
        .request(Method::POST, &base, Some(&json!({"sku": "TEE-M", "options": {"Size": "M"}, "prices": [{"currency": "EUR", "amount": 1600}]})), Some(&staff), &[("if-match", "\"1\"")])
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(etag(&r), "\"2\"");
    let medium: Value = r.json().await.unwrap();
    assert_eq!(medium["title"], "M");
    // The same option values twice, or a SKU in use, are refused.
    let r = app
        .post_json(
            &base,
            &json!({"sku": "TEE-M2", "options": {"Size": "M"}}),
            Some(&staff),
        )
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [("/options".to_owned(), "duplicate_variant".to_owned())]
    );
    let r = app
        .post_json(
            &base,
            &json!({"sku": "TEE-S", "options": {"Size": "L"}}),
            Some(&staff),
        )
        .await;
    assert_problem(r, 409, "sku_taken").await;
    let vid = medium["id"].as_str().unwrap();
    let r = app
        .request(Method::PATCH, &format!("{base}/{vid}"), Some(&json!({"prices": [{"currency": "EUR", "amount": 1700}, {"currency": "GBP", "amount": 1400}]})), Some(&staff), &[])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(
        changed["prices"],
        json!([{"amount": 1700, "currency": "EUR"}, {"amount": 1400, "currency": "GBP"}])
    );
    // Options can only change in ways the variants still fit.
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/products/{id}"),
            Some(&json!({"options": [{"name": "Size", "values": ["S"]}]})),
            Some(&staff),
            &[],
        )
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [("/options".to_owned(), "conflicts_with_variants".to_owned())]
    );
    let r = app
        .request(
            Method::DELETE,
            &format!("{base}/{vid}"),
            None,
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.get(&format!("{base}/{vid}"), Some(&staff)).await;
    assert_problem(r, 404, "variant_not_found").await;
    let r = app.get(&base, Some(&staff)).await;
    let variants: Value = r.json().await.unwrap();
    assert_eq!(variants.as_array().unwrap().len(), 1);
}

async fn the_category_tree_moves_renames_and_refuses_cycles(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let apparel = create_category(&app, &staff, json!({"name": "Apparel"})).await;
    let shirts = create_category(
        &app,
        &staff,
        json!({"name": "Shirts", "parent_id": apparel["id"]}),
    )
    .await;
    let home = create_category(&app, &staff, json!({"name": "Home", "position": 1})).await;
    assert_eq!(shirts["path"], json!([apparel["id"], shirts["id"]]));
    let product = create_product(
        &app,
        &staff,
        simple_product("Oxford", "OX-1", 3000, &[shirts["id"].as_str().unwrap()]),
    )
    .await;

    let tree = category_tree(&app).await;
    assert_eq!(tree["items"][0]["name"], "Apparel");
    assert_eq!(tree["items"][0]["children"][0]["name"], "Shirts");
    assert_eq!(tree["items"][1]["name"], "Home");

    // A category cannot move under itself or its descendants.
    let aid = apparel["id"].as_str().unwrap();
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/categories/{aid}"),
            Some(&json!({"parent_id": shirts["id"]})),
            Some(&staff),
            &[],
        )
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [("/parent_id".to_owned(), "category_cycle".to_owned())]
    );
    // A parent with children cannot be deleted.
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/admin/categories/{aid}"),
            None,
            Some(&staff),
            &[],
        )
        .await;
    assert_problem(r, 409, "category_has_children").await;

    // Moving Shirts under Home and renaming it rewrites the product and the tree.
    let sid = shirts["id"].as_str().unwrap();
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/categories/{sid}"),
            Some(&json!({"parent_id": home["id"], "name": "Linen"})),
            Some(&staff),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let moved: Value = r.json().await.unwrap();
    assert_eq!(moved["path"], json!([home["id"], shirts["id"]]));
    let pid = product["id"].as_str().unwrap();
    let r = app
        .get(&format!("/v1/admin/products/{pid}"), Some(&staff))
        .await;
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["categories"][0]["name"], "Linen");
    assert_eq!(
        p["categories"][0]["path"],
        json!([home["id"], shirts["id"]])
    );
    let moved_in_tree = after_delivery(&app, || async {
        let tree = category_tree(&app).await;
        tree["items"][1]["children"][0]["name"] == "Linen"
            && tree["items"][0]["children"]
                .as_array()
                .is_some_and(Vec::is_empty)
    })
    .await;
    assert!(moved_in_tree, "the cached tree was not refreshed");
    // The storefront filter on the new parent finds the product; the old parent does not.
    let hid = home["id"].as_str().unwrap();
    let r = app
        .get(&format!("/v1/store/products?category={hid}"), None)
        .await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"][0]["id"], product["id"]);
    let r = app
        .get(&format!("/v1/store/products?category={aid}"), None)
        .await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
}

async fn category_tree(app: &TestApp) -> Value {
    app.get("/v1/store/categories", None)
        .await
        .json()
        .await
        .unwrap()
}

async fn the_storefront_list_filters_sorts_and_pages(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let kitchen = create_category(&app, &staff, json!({"name": "Kitchen"})).await;
    let kid = kitchen["id"].as_str().unwrap().to_owned();
    let prices = [1200, 300, 900, 4500, 300, 2000, 700];
    for (i, price) in prices.iter().enumerate() {
        let cats: Vec<&str> = if i % 2 == 0 {
            vec![kid.as_str()]
        } else {
            vec![]
        };
        create_product(
            &app,
            &staff,
            simple_product(&format!("Item {i}"), &format!("IT-{i}"), *price, &cats),
        )
        .await;
    }
    let mut draft = simple_product("Hidden", "HID-1", 100, &[]);
    draft["status"] = json!("draft");
    create_product(&app, &staff, draft).await;

    // Price ascending in pages of 2, through the cursor: every published product once, in order.
    let mut seen = Vec::new();
    let mut path = "/v1/store/products?sort=price_asc&currency=EUR&limit=2".to_owned();
    loop {
        let r = app.get(&path, None).await;
        assert_eq!(r.status(), StatusCode::OK);
        let page: Value = r.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["variants"][0]["prices"][0]["amount"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                path = format!("/v1/store/products?sort=price_asc&currency=EUR&limit=2&cursor={c}")
            }
            None => break,
        }
    }
    let mut sorted = prices.to_vec();
    sorted.sort_unstable();
    assert_eq!(seen, sorted);

    // Filters: price range, category, and newest first by default.
    let r = app
        .get(
            "/v1/store/products?currency=EUR&min_price=700&max_price=2000&sort=price_desc",
            None,
        )
        .await;
    let page: Value = r.json().await.unwrap();
    let amounts: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["variants"][0]["prices"][0]["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [2000, 1200, 900, 700]);
    let r = app
        .get(&format!("/v1/store/products?category={kid}"), None)
        .await;
    let page: Value = r.json().await.unwrap();
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Item 6", "Item 4", "Item 2", "Item 0"]);
    let r = app.get("/v1/store/products?sort=title&limit=3", None).await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"][0]["title"], "Item 0");
    assert!(page["next_cursor"].is_string());

    // Bad queries are named.
    let r = app.get("/v1/store/products?sort=price_asc", None).await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [("/currency".to_owned(), "required".to_owned())]
    );
    let r = app
        .get(
            "/v1/store/products?currency=EUR&min_price=10&max_price=5",
            None,
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = app.get("/v1/store/products?sort=cheapest", None).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .get("/v1/store/products?sort=title&cursor=garbage", None)
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [("/cursor".to_owned(), "invalid_cursor".to_owned())]
    );
    let r = app.get("/v1/store/products?limit=0", None).await;
    assert_problem(r, 422, "validation_failed").await;
}

async fn catalog_routes_check_who_is_calling(app: TestApp) {
    let customer = app.customer_token("shopper@example.com").await;
    let r = app
        .post_json(
            "/v1/admin/products",
            &simple_product("X", "X-1", 1, &[]),
            Some(&customer),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
    let r = app
        .post_json(
            "/v1/admin/products",
            &simple_product("X", "X-1", 1, &[]),
            None,
        )
        .await;
    assert_problem(r, 401, "unauthenticated").await;
    // The storefront needs no token.
    let r = app.get("/v1/store/products", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get("/v1/store/products/no-such-thing", None).await;
    assert_problem(r, 404, "product_not_found").await;
    let r = app
        .get(
            "/v1/store/products/prod_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
            None,
        )
        .await;
    assert_problem(r, 404, "product_not_found").await;
}

on_both_backends!(stock_levels_reach_the_storefront_and_its_in_stock_filter);

async fn stock_levels_reach_the_storefront_and_its_in_stock_filter(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let stocked = create_product(&app, &staff, simple_product("Kettle", "KET-1", 3900, &[])).await;
    let empty = create_product(&app, &staff, simple_product("Toaster", "TOA-1", 2900, &[])).await;
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": "main", "name": "Main warehouse"}),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location: Value = r.json().await.unwrap();
    let (vid, lid) = (
        stocked["variants"][0]["id"].as_str().unwrap(),
        location["id"].as_str().unwrap(),
    );
    let r = app
        .request(
            Method::PUT,
            &format!("/v1/admin/inventory/levels/{vid}/{lid}"),
            Some(&json!({"on_hand": 7, "reason": "delivery"})),
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    let pid = stocked["id"].as_str().unwrap();
    let shown = after_delivery(&app, || async {
        let p: Value = app
            .get(&format!("/v1/store/products/{pid}"), None)
            .await
            .json()
            .await
            .unwrap();
        p["in_stock"] == true && p["variants"][0]["available"] == 7
    })
    .await;
    assert!(shown, "the stock level never reached the storefront");
    let r = app.get("/v1/store/products?in_stock=true", None).await;
    let page: Value = r.json().await.unwrap();
    let ids: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&stocked["id"]]);
    let r = app.get("/v1/store/products?in_stock=false", None).await;
    let page: Value = r.json().await.unwrap();
    let ids: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&empty["id"]]);

    // A reservation lowers what the storefront shows; releasing it gives it back.
    let reservation = app
        .store()
        .inventory_api
        .reserve(
            &[emporium_inventory::ReserveLine {
                variant_id: vid.parse().unwrap(),
                quantity: 5,
            }],
            time::Duration::minutes(10),
            "cart_test",
        )
        .await
        .unwrap();
    let lowered = after_delivery(&app, || async {
        let p: Value = app
            .get(&format!("/v1/store/products/{pid}"), None)
            .await
            .json()
            .await
            .unwrap();
        p["variants"][0]["available"] == 2
    })
    .await;
    assert!(lowered, "the reservation did not lower availability");
    app.store()
        .inventory_api
        .release(reservation.id)
        .await
        .unwrap();
    let restored = after_delivery(&app, || async {
        let p: Value = app
            .get(&format!("/v1/store/products/{pid}"), None)
            .await
            .json()
            .await
            .unwrap();
        p["variants"][0]["available"] == 7
    })
    .await;
    assert!(restored, "the release did not restore availability");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_index_holds_only_handles_of_cached_products() {
    let app = TestApp::spawn().await;
    let staff = app.staff_token("index@example.com", Role::Staff).await;
    let mut handles = Vec::new();
    for n in 0..40 {
        let product = create_product(
            &app,
            &staff,
            json!({"title": format!("Stoneware Mug {n}"), "status": "published",
                   "description": "Hand-thrown stoneware, glazed inside and out. ".repeat(8),
                   "variants": [{"sku": format!("MUG-{n}"), "prices": [{"currency": "EUR", "amount": 1800}]}]}),
        )
        .await;
        handles.push(product["handle"].as_str().unwrap().to_owned());
    }
    // A budget of a dozen or so products.
    let reads = CatalogReads::new(
        app.store().db.clone(),
        &ReadCacheConfig {
            product_bytes: 16_000,
            ..ReadCacheConfig::default()
        },
    );
    for _ in 0..2 {
        for handle in &handles {
            let cached = reads.product(handle).await.unwrap();
            let body: Value = serde_json::from_slice(&cached.body().unwrap()).unwrap();
            assert_eq!(body["handle"], handle.as_str());
        }
        // Every cached product, and only those, can be found by handle without a lookup.
        let (products, indexed) = reads.cached_products().await;
        assert!((1..40).contains(&products), "{products} products cached");
        assert_eq!(indexed as u64, products);
    }
    // A forgotten handle leaves the index; the product is still found, through a lookup.
    let last = handles.last().unwrap();
    let (_, before) = reads.cached_products().await;
    reads.invalidate_handle(last).await;
    assert_eq!(reads.cached_products().await.1, before - 1);
    let cached = reads.product(last).await.unwrap();
    assert_eq!(cached.handle(), last.as_str());
    assert!(matches!(
        reads.product("no-such-mug").await,
        Err(emporium_catalog::CatalogError::ProductNotFound)
    ));
}
