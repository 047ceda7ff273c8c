//! Storefront list pages and calculated prices: a cached list shows every change to a listed
//! product on the next read after the change's events are delivered, and with a `currency` the
//! list, the product and the search answers carry the shopper's calculated prices.

use std::time::Instant;

use emporium_kernel::auth::Role;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::catalog::{create_product, simple_product};
use crate::helpers::{TestApp, after_delivery, assert_problem, pointers};
use crate::on_both_backends;

on_both_backends!(
    a_change_to_a_listed_product_shows_on_the_next_list_read,
    a_groups_price_list_lowers_prices_only_for_its_customers_inside_its_window,
    tax_is_shown_as_the_region_displays_it,
    bad_price_parameters_are_named,
);

async fn ok(r: Response) -> Value {
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The titles of `GET path`.
async fn titles(app: &TestApp, path: &str) -> Vec<String> {
    let page = ok(app.get(path, None).await).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn patch(app: &TestApp, token: &str, path: &str, body: Value) {
    let r = app
        .request(Method::PATCH, path, Some(&body), Some(token), &[])
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

/// Creates a stock location; returns its id.
async fn location(app: &TestApp, token: &str) -> String {
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": "main", "name": "Main"}),
            Some(token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location: Value = r.json().await.unwrap();
    location["id"].as_str().unwrap().to_owned()
}

/// Sets the units of `variant` on hand at `location`.
async fn stock(app: &TestApp, token: &str, variant: &str, location: &str, on_hand: i64) {
    let r = app
        .request(
            Method::PUT,
            &format!("/v1/admin/inventory/levels/{variant}/{location}"),
            Some(&json!({"on_hand": on_hand, "reason": "count"})),
            Some(token),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn a_change_to_a_listed_product_shows_on_the_next_list_read(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let kettle = create_product(&app, &staff, simple_product("Kettle", "KET-1", 3900, &[])).await;
    let pid = kettle["id"].as_str().unwrap().to_owned();
    let vid = kettle["variants"][0]["id"].as_str().unwrap().to_owned();
    let lid = location(&app, &staff).await;
    stock(&app, &staff, &vid, &lid, 3).await;
    app.drain_outbox().await;
    let list = "/v1/store/products";
    let in_stock = "/v1/store/products?in_stock=true";
    let priced = "/v1/store/products?currency=EUR&sort=price_asc";
    // Read twice: the second answer comes from the cache.
    for _ in 0..2 {
        assert_eq!(titles(&app, list).await, ["Kettle"]);
        assert_eq!(titles(&app, in_stock).await, ["Kettle"]);
    }
    let page = ok(app.get(priced, None).await).await;
    assert_eq!(
        page["items"][0]["variants"][0]["calculated_price"]["calculated_amount"],
        3900
    );

    // The title.
    patch(
        &app,
        &staff,
        &format!("/v1/admin/products/{pid}"),
        json!({"title": "Tea kettle"}),
    )
    .await;
    let renamed = after_delivery(&app, || async {
        titles(&app, list).await == ["Tea kettle"]
    })
    .await;
    assert!(renamed, "the new title did not reach the list");

    // The price.
    let variant = format!("/v1/admin/products/{pid}/variants/{vid}");
    patch(
        &app,
        &staff,
        &variant,
        json!({"prices": [{"currency": "EUR", "amount": 2500}]}),
    )
    .await;
    let repriced = after_delivery(&app, || async {
        let page = ok(app.get(priced, None).await).await;
        let variant = &page["items"][0]["variants"][0];
        variant["prices"][0]["amount"] == 2500
            && variant["calculated_price"]["calculated_amount"] == 2500
    })
    .await;
    assert!(repriced, "the new price did not reach the list");

    // Stock going to zero leaves the in-stock list.
    stock(&app, &staff, &vid, &lid, 0).await;
    let sold_out = after_delivery(&app, || async { titles(&app, in_stock).await.is_empty() }).await;
    assert!(
        sold_out,
        "a product without stock stayed in the in-stock list"
    );
    assert_eq!(titles(&app, list).await, ["Tea kettle"]);

    // Publication.
    patch(
        &app,
        &staff,
        &format!("/v1/admin/products/{pid}"),
        json!({"status": "draft"}),
    )
    .await;
    let hidden = after_delivery(&app, || async { titles(&app, list).await.is_empty() }).await;
    assert!(hidden, "an unpublished product stayed in the list");
    patch(
        &app,
        &staff,
        &format!("/v1/admin/products/{pid}"),
        json!({"status": "published"}),
    )
    .await;
    let shown = after_delivery(&app, || async {
        titles(&app, list).await == ["Tea kettle"]
    })
    .await;
    assert!(shown, "a published product did not come back to the list");
}

/// The calculated price of the first variant of the first item of `GET path` as `token`, with
/// the answer's `Cache-Control` and ETag.
async fn listed_price(app: &TestApp, path: &str, token: Option<&str>) -> (Value, String, String) {
    let r = app.get(path, token).await;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (cache, etag) = (header("cache-control"), header("etag"));
    let page = ok(r).await;
    let item = if page["items"].is_array() {
        &page["items"][0]
    } else {
        &page
    };
    (item["variants"][0]["calculated_price"].clone(), cache, etag)
}

async fn a_groups_price_list_lowers_prices_only_for_its_customers_inside_its_window(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let kettle = create_product(&app, &admin, simple_product("Kettle", "KET-1", 1000, &[])).await;
    let (pid, vid) = (
        kettle["id"].as_str().unwrap().to_owned(),
        kettle["variants"][0]["id"].as_str().unwrap().to_owned(),
    );
    let price =
        |amount: i64| json!([{"variant_id": vid, "price": {"amount": amount, "currency": "EUR"}}]);
    let lists = [
        json!({"name": "Wholesale", "customer_groups": ["wholesale"], "prices": price(800)}),
        json!({"name": "Last year", "prices": price(500),
               "window": {"starts_at": "2020-01-01T00:00:00Z", "ends_at": "2021-01-01T00:00:00Z"}}),
        json!({"name": "Next century", "prices": price(400),
               "window": {"starts_at": "2100-01-01T00:00:00Z"}}),
        json!({"name": "Dollars", "prices": [{"variant_id": vid, "price": {"amount": 10, "currency": "USD"}}]}),
    ];
    let mut ids = Vec::new();
    for list in lists {
        let r = app
            .post_json("/v1/admin/price-lists", &list, Some(&admin))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(r.json::<Value>().await.unwrap()["id"].clone());
    }
    let alice_id = app.register("alice@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"groups": ["wholesale"]});
    let r = app
        .request(
            Method::PUT,
            &format!("/v1/admin/customers/{alice_id}/groups"),
            Some(&body),
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let alice = app.login("alice@example.com", None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = app.customer_token("bob@example.com").await;
    app.drain_outbox().await;
    let since = Instant::now();

    let list = "/v1/store/products?currency=EUR";
    let (guest, guest_cache, guest_etag) = listed_price(&app, list, None).await;
    assert_eq!(
        guest,
        json!({"currency": "EUR", "original_amount": 1000, "calculated_amount": 1000,
               "price_list_id": null, "tax_rate_id": null, "tax_inclusive": false,
               "amount_with_tax": 1000, "amount_without_tax": 1000})
    );
    assert!(guest_cache.starts_with("public"), "{guest_cache}");
    let (for_bob, bob_cache, bob_etag) = listed_price(&app, list, Some(&bob)).await;
    assert_eq!(for_bob, guest, "bob is in no group");
    assert!(bob_cache.starts_with("private"), "{bob_cache}");
    assert_eq!(bob_etag, guest_etag, "the same prices, the same answer");
    let (for_alice, alice_cache, alice_etag) = listed_price(&app, list, Some(&alice)).await;
    assert_eq!(for_alice["calculated_amount"], 800);
    assert_eq!(for_alice["original_amount"], 1000);
    assert_eq!(for_alice["price_list_id"], ids[0]);
    assert!(alice_cache.starts_with("private"), "{alice_cache}");
    assert_ne!(
        alice_etag, guest_etag,
        "the ETag follows the calculated prices"
    );

    // The product and the search answers carry the same figures.
    let product = format!("/v1/store/products/{pid}?currency=EUR");
    assert_eq!(
        listed_price(&app, &product, Some(&alice)).await.0,
        for_alice
    );
    assert_eq!(listed_price(&app, &product, None).await.0, guest);
    let wanted = for_alice.clone();
    crate::search::reflects(&app, since, "q=kettle&currency=EUR", |ids, _| {
        ids.len() == 1
    })
    .await;
    let r = app
        .get("/v1/store/search?q=kettle&currency=EUR", Some(&alice))
        .await;
    let hits = ok(r).await;
    assert_eq!(hits["hits"][0]["variants"][0]["id"], vid.as_str());
    assert_eq!(hits["hits"][0]["variants"][0]["calculated_price"], wanted);
    let r = app
        .get("/v1/store/search?q=kettle&currency=EUR", None)
        .await;
    assert_eq!(
        ok(r).await["hits"][0]["variants"][0]["calculated_price"],
        guest
    );

    // Without a currency, no calculated prices anywhere.
    let page = ok(app.get("/v1/store/products", Some(&alice)).await).await;
    assert!(
        page["items"][0]["variants"][0]
            .get("calculated_price")
            .is_none(),
        "{page}"
    );
    let read = ok(app
        .get(&format!("/v1/store/products/{pid}"), Some(&alice))
        .await)
    .await;
    assert!(
        read["variants"][0].get("calculated_price").is_none(),
        "{read}"
    );
    let found = ok(app.get("/v1/store/search?q=kettle", Some(&alice)).await).await;
    assert!(found["hits"][0].get("variants").is_none(), "{found}");

    // A bad token is refused, as on every route.
    let r = app.get(list, Some("not-a-token")).await;
    assert_problem(r, 401, "token_invalid").await;
}

async fn tax_is_shown_as_the_region_displays_it(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let product = create_product(&app, &admin, simple_product("Lamp", "LAMP-1", 1190, &[])).await;
    let pid = product["id"].as_str().unwrap().to_owned();
    let mut rates = Vec::new();
    for rate in [
        json!({"name": "VAT", "country": "DE", "basis_points": 1900, "inclusive": true}),
        json!({"name": "Sales tax", "country": "US", "basis_points": 500, "inclusive": false}),
        json!({"name": "California", "country": "US", "state": "CA", "basis_points": 725, "inclusive": false}),
    ] {
        let r = app
            .post_json("/v1/admin/tax-rates", &rate, Some(&admin))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        rates.push(r.json::<Value>().await.unwrap()["id"].clone());
    }
    app.drain_outbox().await;
    let check = async |query: &str, rate: &Value, inclusive: bool, with: i64, without: i64| {
        for path in [
            format!("/v1/store/products?{query}"),
            format!("/v1/store/products/{pid}?{query}"),
        ] {
            let (price, _, _) = listed_price(&app, &path, None).await;
            assert_eq!(&price["tax_rate_id"], rate, "{path}");
            assert_eq!(price["tax_inclusive"], inclusive, "{path}");
            assert_eq!(price["calculated_amount"], 1190, "{path}");
            assert_eq!(price["amount_with_tax"], with, "{path}");
            assert_eq!(price["amount_without_tax"], without, "{path}");
        }
    };
    // 1190 includes 19 % VAT: 190 of it. On top, 5 % is 59.5 (60), 7.25 % is 86.275 (86).
    check("currency=EUR&country=DE", &rates[0], true, 1190, 1000).await;
    check("currency=EUR&country=de", &rates[0], true, 1190, 1000).await;
    check("currency=EUR&country=US", &rates[1], false, 1250, 1190).await;
    check(
        "currency=EUR&country=US&state=CA",
        &rates[2],
        false,
        1276,
        1190,
    )
    .await;
    check(
        "currency=EUR&country=US&state=NY",
        &rates[1],
        false,
        1250,
        1190,
    )
    .await;
    check("currency=EUR&country=FR", &Value::Null, false, 1190, 1190).await;
    check("currency=EUR", &Value::Null, false, 1190, 1190).await;
    // A currency the product has no price in: no calculated price.
    let (price, _, _) = listed_price(
        &app,
        &format!("/v1/store/products/{pid}?currency=GBP"),
        None,
    )
    .await;
    assert!(price.is_null(), "{price}");
}

async fn bad_price_parameters_are_named(app: TestApp) {
    let staff = app.staff_token("cat@example.com", Role::Staff).await;
    let product = create_product(&app, &staff, simple_product("Lamp", "LAMP-1", 1190, &[])).await;
    let pid = product["id"].as_str().unwrap().to_owned();
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("currency=euro", &[("/currency", "invalid_format")]),
        (
            "currency=EUR&country=DEU",
            &[("/country", "invalid_format")],
        ),
        ("currency=EUR&country=1", &[("/country", "invalid_format")]),
        ("country=DE", &[("/currency", "required")]),
        ("currency=EUR&state=CA", &[("/country", "required")]),
        (
            "currency=EUR&country=US&state=CALI",
            &[("/state", "invalid_format")],
        ),
    ];
    for (query, expected) in cases {
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
            .collect();
        for path in [
            format!("/v1/store/products?{query}"),
            format!("/v1/store/products/{pid}?{query}"),
            format!("/v1/store/search?{query}"),
        ] {
            let problem =
                assert_problem(app.get(&path, None).await, 422, "validation_failed").await;
            assert_eq!(pointers(&problem), expected, "{path}");
        }
    }
}
