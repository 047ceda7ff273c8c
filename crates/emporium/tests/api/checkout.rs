//! The checkout saga over HTTP: a guest checks out and reads the order; retries with the same
//! key never make a second order; failures give back stock, coupon uses and the payment; under
//! contention stock and coupon limits hold exactly.

use std::str::FromStr;

use emporium_cart::{Access, Address};
use emporium_kernel::auth::Role;
use emporium_kernel::ids::{CartId, ShippingOptionId, VariantId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{create_product, simple_product};
use crate::helpers::{TestApp, assert_problem, pointers};
use crate::on_both_backends;

on_both_backends!(
    a_guest_checks_out_once_and_reads_the_order,
    a_failed_checkout_gives_back_stock_coupons_and_payment,
    two_hundred_checkouts_for_fifty_units_make_exactly_fifty_orders,
    a_coupon_limited_to_ten_uses_serves_ten_of_a_hundred_checkouts,
    concurrent_retries_with_one_key_make_one_order,
    a_cart_checked_out_under_many_keys_at_once_makes_one_order,
    a_checkout_killed_at_each_step_is_finished_or_undone_at_restart,
    a_customer_pages_through_their_own_orders,
    staff_move_an_order_through_its_lifecycle_and_illegal_moves_get_409,
    a_cart_a_checkout_holds_takes_no_change_until_the_checkout_fails,
);

/// A shop: one product with `stock` units, VAT, a flat shipping option, and a coupon
/// (`SAVE10`, 10 % off) limited to `coupon_uses`.
pub(crate) struct Shop {
    pub(crate) variant: String,
    pub(crate) shipping: String,
}

pub(crate) async fn shop(app: &TestApp, stock: i64, coupon_uses: i64) -> Shop {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let product = create_product(app, &admin, simple_product("Kettle", "KET-9", 5_000, &[])).await;
    let variant = product["variants"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": "main", "name": "Main"}),
            Some(&admin),
        )
        .await;
    let location: Value = r.json().await.unwrap();
    let r = app
        .request(
            Method::PUT,
            &format!(
                "/v1/admin/inventory/levels/{variant}/{}",
                location["id"].as_str().unwrap()
            ),
            Some(&json!({"on_hand": stock, "reason": "delivery"})),
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    for (path, body) in [
        (
            "/v1/admin/tax-rates",
            json!({"name": "VAT", "country": "DE", "basis_points": 1900, "inclusive": true}),
        ),
        (
            "/v1/admin/promotions",
            json!({"name": "ten off", "needs_coupon": true,
                   "benefit": {"type": "order_percent", "basis_points": 1000}}),
        ),
    ] {
        let r = app.post_json(path, &body, Some(&admin)).await;
        assert_eq!(r.status().as_u16(), 201, "{path}");
        if path.ends_with("promotions") {
            let promo: Value = r.json().await.unwrap();
            let r = app
                .post_json(
                    "/v1/admin/coupons",
                    &json!({"code": "SAVE10", "promotion_id": promo["id"],
                            "usage_limit": coupon_uses}),
                    Some(&admin),
                )
                .await;
            assert_eq!(r.status().as_u16(), 201);
        }
    }
    let r = app
        .post_json(
            "/v1/admin/shipping-options",
            &json!({"name": "DHL", "countries": ["DE"],
                    "rate": {"type": "flat", "price": {"amount": 500, "currency": "EUR"}}}),
            Some(&admin),
        )
        .await;
    let shipping: Value = r.json().await.unwrap();
    Shop {
        variant,
        shipping: shipping["id"].as_str().unwrap().to_owned(),
    }
}

/// A guest cart ready to check out: `quantity` units, address, shipping, and the coupon when
/// asked. Built through the service (as the HTTP routes would) to keep large tests quick.
pub(crate) async fn ready_cart(
    app: &TestApp,
    shop: &Shop,
    quantity: i64,
    coupon: bool,
) -> (String, String) {
    ready_cart_of(app, shop, quantity, coupon, None).await
}

/// [`ready_cart`] for customer `customer` (a `cus_…` id), or a guest.
async fn ready_cart_of(
    app: &TestApp,
    shop: &Shop,
    quantity: i64,
    coupon: bool,
    customer: Option<&str>,
) -> (String, String) {
    let carts = &app.store().cart;
    let (cart, token) = carts
        .create("EUR", Some("guest@example.com".to_owned()), customer)
        .await
        .unwrap();
    let access = Access {
        token: Some(&token),
        customer: None,
    };
    let variant = VariantId::from_str(&shop.variant).unwrap();
    carts
        .add_item(cart.id, access, variant, quantity)
        .await
        .unwrap();
    let address = Address {
        name: "Erika Mustermann".into(),
        line1: "Heidestraße 17".into(),
        line2: None,
        city: "Köln".into(),
        postal_code: "51147".into(),
        country: "DE".into(),
        state: None,
    };
    carts
        .update_details(cart.id, access, None, Some(address))
        .await
        .unwrap();
    carts
        .choose_shipping(
            cart.id,
            access,
            ShippingOptionId::from_str(&shop.shipping).unwrap(),
        )
        .await
        .unwrap();
    if coupon {
        carts.add_coupon(cart.id, access, "save10").await.unwrap();
    }
    (cart.id.to_string(), token)
}

pub(crate) async fn check_out(
    app: &TestApp,
    cart: &str,
    token: &str,
    key: &str,
    payment_token: &str,
) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/v1/store/carts/{cart}/checkout"),
        Some(&json!({"payment": {"provider": "test", "token": payment_token}})),
        None,
        &[("x-cart-token", token), ("idempotency-key", key)],
    )
    .await
}

pub(crate) async fn available(app: &TestApp, shop: &Shop) -> i64 {
    let variant = VariantId::from_str(&shop.variant).unwrap();
    app.store()
        .inventory_api
        .availability(&[variant])
        .await
        .unwrap()[0]
        .available
}

async fn coupon_used(app: &TestApp) -> i64 {
    let page = app.store().pricing.list_coupons(None, None).await.unwrap();
    page.items[0].used
}

async fn orders(app: &TestApp) -> i64 {
    app.store().orders.count().await.unwrap()
}

async fn a_guest_checks_out_once_and_reads_the_order(app: TestApp) {
    let shop = shop(&app, 5, 100).await;
    let (cart, token) = ready_cart(&app, &shop, 2, true).await;
    let quoted = app
        .store()
        .cart
        .get(
            CartId::from_str(&cart).unwrap(),
            Access {
                token: Some(&token),
                customer: None,
            },
        )
        .await
        .unwrap();

    let missing = app
        .request(
            Method::POST,
            &format!("/v1/store/carts/{cart}/checkout"),
            Some(&json!({"payment": {"provider": "test"}})),
            None,
            &[("x-cart-token", &token)],
        )
        .await;
    assert_problem(missing, 400, "idempotency_key_missing").await;

    let r = check_out(&app, &cart, &token, "key-1", "tok_success").await;
    assert_eq!(r.status().as_u16(), 201);
    let placed: Value = r.json().await.unwrap();
    let order = &placed["order"];
    assert_eq!(order["status"], "placed");
    assert_eq!(order["total"], quoted.totals.total);
    // 2 × 50.00 = 100.00, 10 % off, shipping 5.00.
    assert_eq!(order["total"], 10_000 - 1_000 + 500);
    assert_eq!(order["coupon_codes"], json!(["save10"]));

    // The same key again: the same order, nothing new.
    let again = check_out(&app, &cart, &token, "key-1", "tok_success").await;
    assert_eq!(again.status().as_u16(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["order"]["id"], order["id"]);
    let other_body = check_out(&app, &cart, &token, "key-1", "tok_decline").await;
    assert_problem(other_body, 422, "idempotency_key_reused").await;
    assert_eq!(orders(&app).await, 1);
    assert_eq!(available(&app, &shop).await, 3);
    assert_eq!(coupon_used(&app).await, 1);

    // The guest reads the order with its token; nobody else can.
    let path = format!("/v1/store/orders/{}", order["id"].as_str().unwrap());
    let read = app
        .request(
            Method::GET,
            &path,
            None,
            None,
            &[("x-order-token", placed["order_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(read.status().as_u16(), 200);
    let read: Value = read.json().await.unwrap();
    assert_eq!(&read, order);
    assert_problem(app.get(&path, None).await, 404, "order_not_found").await;

    // The completer, behind the answer, commits the stock and closes the cart.
    let mut completions = app.store().checkout.completions();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        completions.wait_for(|n| *n >= 1),
    )
    .await
    .expect("the completer completes the checkout")
    .unwrap();
    let gone = app
        .request(
            Method::GET,
            &format!("/v1/store/carts/{cart}"),
            None,
            None,
            &[("x-cart-token", &token)],
        )
        .await;
    assert_problem(gone, 404, "cart_not_found").await;
    // A retry after the cart closed still gets the first answer; another body is still refused.
    let late = check_out(&app, &cart, &token, "key-1", "tok_success").await;
    assert_eq!(late.status().as_u16(), 201);
    let late: Value = late.json().await.unwrap();
    assert_eq!(late["order"]["id"], order["id"]);
    assert_eq!(late["order_token"], placed["order_token"]);
    let other_body = check_out(&app, &cart, &token, "key-1", "tok_decline").await;
    assert_problem(other_body, 422, "idempotency_key_reused").await;
    let new_key = check_out(&app, &cart, &token, "key-2", "tok_success").await;
    assert_problem(new_key, 404, "cart_not_found").await;
    assert_eq!(orders(&app).await, 1);
    let mut conn = app.store().db.read().await.unwrap();
    let stock: (i64, i64) = emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT on_hand, reserved FROM stock_levels"
    )
    .fetch_one(c)
    .await)
    .unwrap();
    drop(conn);
    assert_eq!(stock, (3, 0), "the two units left the stock");
    // The projection rebuilds from the event stream to the same order.
    assert_eq!(app.store().orders.rebuild_projections().await.unwrap(), 1);
    let rebuilt = app
        .request(
            Method::GET,
            &path,
            None,
            None,
            &[("x-order-token", placed["order_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(rebuilt.json::<Value>().await.unwrap(), read);
}

async fn a_failed_checkout_gives_back_stock_coupons_and_payment(app: TestApp) {
    let shop = shop(&app, 5, 100).await;

    let (cart, token) = ready_cart(&app, &shop, 2, true).await;
    let declined = check_out(&app, &cart, &token, "k1", "tok_decline").await;
    assert_problem(declined, 402, "payment_declined").await;
    let lost = check_out(&app, &cart, &token, "k2", "tok_error_after_auth").await;
    assert_problem(lost, 503, "payment_provider_unavailable").await;
    assert_eq!(available(&app, &shop).await, 5);
    assert_eq!(coupon_used(&app).await, 0);
    assert_eq!(orders(&app).await, 0);
    // The declined intent stays declined; the lost authorisation was voided.
    let mut conn = app.store().db.read().await.unwrap();
    let statuses: Vec<(String,)> = emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT status FROM payment_intents ORDER BY created_at, id"
    )
    .fetch_all(c)
    .await)
    .unwrap();
    drop(conn);
    let statuses: Vec<&str> = statuses.iter().map(|(s,)| s.as_str()).collect();
    assert_eq!(statuses, ["declined", "voided"]);

    // The same cart, paid properly, then goes through.
    let ok = check_out(&app, &cart, &token, "k3", "tok_success").await;
    assert_eq!(ok.status().as_u16(), 201);
    assert_eq!(available(&app, &shop).await, 3);

    // Stock taken meanwhile: the checkout says which line is short, and keeps nothing.
    let (cart, token) = ready_cart(&app, &shop, 3, false).await;
    let (other, other_token) = ready_cart(&app, &shop, 1, false).await;
    let r = check_out(&app, &other, &other_token, "k4", "tok_success").await;
    assert_eq!(r.status().as_u16(), 201);
    let short = check_out(&app, &cart, &token, "k5", "tok_success").await;
    let problem = assert_problem(short, 409, "out_of_stock").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("requested 3"),
        "{problem}"
    );
    assert_eq!(available(&app, &shop).await, 2);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for outcome in ["placed", "payment_declined", "out_of_stock"] {
        assert!(
            metrics.contains(&format!(
                "emporium_checkout_outcomes_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome} missing from /metrics"
        );
    }

    // An incomplete cart is refused before anything is reserved.
    let carts = &app.store().cart;
    let (bare, bare_token) = carts.create("EUR", None, None).await.unwrap();
    carts
        .add_item(
            bare.id,
            Access {
                token: Some(&bare_token),
                customer: None,
            },
            VariantId::from_str(&shop.variant).unwrap(),
            1,
        )
        .await
        .unwrap();
    let r = check_out(&app, &bare.id.to_string(), &bare_token, "k6", "tok_success").await;
    let problem = assert_problem(r, 422, "checkout_incomplete").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("e-mail"),
        "{problem}"
    );
    assert_eq!(available(&app, &shop).await, 2);
}

async fn two_hundred_checkouts_for_fifty_units_make_exactly_fifty_orders(app: TestApp) {
    let shop = shop(&app, 50, 100).await;
    let mut carts = Vec::new();
    for _ in 0..200 {
        carts.push(ready_cart(&app, &shop, 1, false).await);
    }
    let attempts = carts.iter().enumerate().map(|(n, (cart, token))| {
        let app = &app;
        async move {
            check_out(app, cart, token, &format!("key-{n}"), "tok_success")
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let placed = statuses.iter().filter(|s| **s == 201).count();
    let short = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!(placed, 50, "{statuses:?}");
    assert_eq!(short, 150, "{statuses:?}");
    assert_eq!(orders(&app).await, 50);
    assert_eq!(available(&app, &shop).await, 0);
}

async fn a_coupon_limited_to_ten_uses_serves_ten_of_a_hundred_checkouts(app: TestApp) {
    let shop = shop(&app, 1_000, 10).await;
    let mut carts = Vec::new();
    for _ in 0..100 {
        carts.push(ready_cart(&app, &shop, 1, true).await);
    }
    let attempts = carts.iter().enumerate().map(|(n, (cart, token))| {
        let app = &app;
        async move {
            check_out(app, cart, token, &format!("key-{n}"), "tok_success")
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 422).count(),
        90,
        "{statuses:?}"
    );
    assert_eq!(coupon_used(&app).await, 10);
    assert_eq!(orders(&app).await, 10);
    assert_eq!(available(&app, &shop).await, 990);
}

async fn concurrent_retries_with_one_key_make_one_order(app: TestApp) {
    let shop = shop(&app, 10, 100).await;
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    let attempts = (0..8).map(|_| {
        let (app, cart, token) = (&app, &cart, &token);
        async move {
            let r = check_out(app, cart, token, "one-key", "tok_success").await;
            assert_eq!(r.status().as_u16(), 201);
            r.json::<Value>().await.unwrap()["order"]["id"].clone()
        }
    });
    let ids = futures_util::future::join_all(attempts).await;
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(orders(&app).await, 1);
    assert_eq!(available(&app, &shop).await, 9);
}

async fn a_cart_checked_out_under_many_keys_at_once_makes_one_order(app: TestApp) {
    let shop = shop(&app, 10, 100).await;
    let (cart, token) = ready_cart(&app, &shop, 2, false).await;
    // A storefront that makes a new key per click, clicked eight times at once.
    let attempts = (0..8).map(|i| {
        let (app, cart, token) = (&app, &cart, &token);
        async move {
            let r = check_out(app, cart, token, &format!("click-{i}"), "tok_success").await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let placed = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(placed, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        // Refused while the first runs, or (once it finished and closed the cart) not found.
        assert!(
            (*status == 409 && body["code"] == "cart_checked_out")
                || (*status == 404 && body["code"] == "cart_not_found"),
            "{status} {body}"
        );
    }
    assert_eq!(orders(&app).await, 1);
    assert_eq!(available(&app, &shop).await, 8);
    let mut conn = app.store().db.read().await.unwrap();
    let (payments,): (i64,) = emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT COUNT(*) FROM payment_intents"
    )
    .fetch_one(c)
    .await)
    .unwrap();
    drop(conn);
    assert_eq!(payments, 1, "one payment authorised, no other attempted");

    // A cart whose checkout failed can be checked out again under a new key.
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    let declined = check_out(&app, &cart, &token, "first", "tok_decline").await;
    assert_eq!(declined.status().as_u16(), 402);
    let again = check_out(&app, &cart, &token, "second", "tok_success").await;
    assert_eq!(again.status().as_u16(), 201);
    assert_eq!(orders(&app).await, 2);
    assert_eq!(available(&app, &shop).await, 7);
}

async fn a_customer_pages_through_their_own_orders(app: TestApp) {
    let shop = shop(&app, 10, 100).await;
    let alice = app.register("alice@example.com").await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let alice_token = app.login("alice@example.com", None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = app.customer_token("bob@example.com").await;
    let mut placed = Vec::new();
    for i in 0..3 {
        let (cart, token) = ready_cart_of(&app, &shop, 1, false, Some(&alice_id)).await;
        let r = check_out(&app, &cart, &token, &format!("alice-{i}"), "tok_success").await;
        assert_eq!(r.status().as_u16(), 201);
        placed.push(r.json::<Value>().await.unwrap()["order"]["id"].clone());
    }
    // A guest's order is nobody's to list.
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    assert_eq!(
        check_out(&app, &cart, &token, "guest", "tok_success")
            .await
            .status()
            .as_u16(),
        201
    );

    let first: Value = app
        .get("/v1/store/orders?limit=2", Some(&alice_token))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&Value> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["id"])
        .collect();
    assert_eq!(ids, [&placed[2], &placed[1]], "newest first");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get(
            &format!("/v1/store/orders?limit=2&cursor={cursor}"),
            Some(&alice_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["id"], placed[0]);
    assert!(second["next_cursor"].is_null());

    // Another customer sees none of them; no session, no list; bad paging is a 422.
    let theirs: Value = app
        .get("/v1/store/orders", Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"], json!([]));
    assert_eq!(
        app.get("/v1/store/orders", None).await.status().as_u16(),
        401
    );
    let bad = assert_problem(
        app.get(
            "/v1/store/orders?limit=0&cursor=nonsense",
            Some(&alice_token),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let mut at: Vec<String> = pointers(&bad).into_iter().map(|(p, _)| p).collect();
    at.sort();
    assert_eq!(at, ["/cursor", "/limit"]);
}

/// One row of figures read straight from the database.
pub(crate) async fn figures(
    config: &emporium::Config,
) -> (i64, i64, i64, i64, Vec<String>, Vec<String>) {
    let db = emporium::app::open_database(config).await.unwrap();
    let mut conn = db.read().await.unwrap();
    let (on_hand, reserved): (i64, i64) = emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT on_hand, reserved FROM stock_levels"
    )
    .fetch_one(c)
    .await)
    .unwrap();
    let (used,): (i64,) = emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT used FROM pricing_coupons"
    )
    .fetch_one(c)
    .await)
    .unwrap();
    let (orders,): (i64,) =
        emporium_db::run!(&mut conn, |c| sqlx::query_as("SELECT COUNT(*) FROM orders")
            .fetch_one(c)
            .await)
        .unwrap();
    let payments: Vec<(String,)> = emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT status FROM payment_intents ORDER BY created_at, id"
    )
    .fetch_all(c)
    .await)
    .unwrap();
    let checkouts: Vec<(String,)> = emporium_db::run!(&mut conn, |c| sqlx::query_as(
        "SELECT state FROM checkouts ORDER BY created_at, id"
    )
    .fetch_all(c)
    .await)
    .unwrap();
    drop(conn);
    db.close().await;
    (
        on_hand,
        reserved,
        used,
        orders,
        payments.into_iter().map(|(s,)| s).collect(),
        checkouts.into_iter().map(|(s,)| s).collect(),
    )
}

async fn a_checkout_killed_at_each_step_is_finished_or_undone_at_restart(mut app: TestApp) {
    let shop = shop(&app, 20, 100).await;
    let points = [
        "checkout.after_reserve",
        "checkout.after_redeem",
        "checkout.after_authorize",
        "checkout.after_place",
    ];
    let mut carts = Vec::new();
    for _ in points {
        carts.push(ready_cart(&app, &shop, 1, true).await);
    }
    app.stop().await;
    let data = app.config.data_dir.clone();
    let url = app
        .config
        .database_url
        .as_ref()
        .map(|u| u.expose().to_owned());
    let client = reqwest::Client::new();
    let checkout = |base: String, cart: String, token: String| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/v1/store/carts/{cart}/checkout"))
                .header("x-cart-token", token)
                .header("idempotency-key", "crash-key")
                .json(&json!({"payment": {"provider": "test", "token": "tok_success"}}))
                .send()
                .await
        }
    };

    let mut expected_payments: Vec<&str> = Vec::new();
    let mut expected_checkouts: Vec<&str> = Vec::new();
    for (point, (cart, token)) in points.iter().zip(&carts) {
        let mut child = crate::events::start_binary_crashing_at(&data, url.as_deref(), point).await;
        let answer = checkout(child.base.clone(), cart.clone(), token.clone()).await;
        assert!(
            answer.is_err() || !answer.unwrap().status().is_success(),
            "{point}: no answer before the crash"
        );
        let status = crate::events::wait_exit(&mut child.process).await;
        assert!(!status.success(), "{point}: the process died there");

        // Restarted without the crash point: recovery runs before the server is ready.
        let child = crate::events::start_binary(&data, url.as_deref(), None).await;
        let placed = *point == "checkout.after_place";
        let retry = checkout(child.base.clone(), cart.clone(), token.clone())
            .await
            .unwrap();
        if placed {
            assert_eq!(retry.status().as_u16(), 201, "{point}: the order stands");
        } else {
            assert_problem(retry, 503, "checkout_interrupted").await;
        }
        drop(child);

        // The intent is opened (pending) with the coupon redemptions, so from there on
        // one exists, and recovery voids it unless the order was placed.
        if matches!(
            *point,
            "checkout.after_redeem" | "checkout.after_authorize" | "checkout.after_place"
        ) {
            expected_payments.push(if placed { "authorized" } else { "voided" });
        }
        expected_checkouts.push(if placed { "completed" } else { "failed" });
        let (on_hand, reserved, used, orders, payments, checkouts) = figures(&app.config).await;
        assert_eq!(reserved, 0, "{point}: no stock left held");
        assert_eq!(on_hand, if placed { 19 } else { 20 }, "{point}: stock");
        assert_eq!(used, i64::from(placed), "{point}: coupon uses");
        assert_eq!(orders, i64::from(placed), "{point}: orders");
        assert_eq!(payments, expected_payments, "{point}: payments");
        assert_eq!(checkouts, expected_checkouts, "{point}: checkouts");
    }

    // The projection rebuilds from the streams: the one order placed.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"));
    cmd.args(["orders", "rebuild-projections", "--data-dir"])
        .arg(&data)
        .env_remove("EMPORIUM_CONFIG");
    if let Some(url) = &url {
        cmd.args(["--database-url", url]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "rebuilt 1 orders from their event streams"
    );
}

async fn staff_move_an_order_through_its_lifecycle_and_illegal_moves_get_409(app: TestApp) {
    let shop = shop(&app, 10, 100).await;
    let admin = app.staff_token("boss@example.com", Role::Admin).await;
    let place = |quantity: i64, key: &'static str| {
        let (app, shop) = (&app, &shop);
        async move {
            let (cart, token) = ready_cart(app, shop, quantity, false).await;
            let r = check_out(app, &cart, &token, key, "tok_success").await;
            assert_eq!(r.status().as_u16(), 201);
            r.json::<Value>().await.unwrap()["order"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let order = place(3, "life").await;
    let base = format!("/v1/admin/orders/{order}");
    let post = |action: &'static str, body: Option<Value>| {
        let (app, base, admin) = (&app, base.clone(), admin.clone());
        async move {
            app.request(
                Method::POST,
                &format!("{base}/{action}"),
                body.as_ref(),
                Some(&admin),
                &[],
            )
            .await
        }
    };
    let ok = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    };

    // Shipping before payment and fulfilment is refused, and changes nothing.
    let early = post("ship", Some(json!({}))).await;
    assert_problem(early, 409, "order_transition_illegal").await;
    let paid = ok(post("capture", None).await).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["captured_amount"], 3 * 5_000 + 500);
    let again = post("capture", None).await;
    assert_problem(again, 409, "order_transition_illegal").await;

    // Partial fulfilment, then the rest; too many units are refused.
    let variant = shop.variant.clone();
    let part = ok(post(
        "fulfill",
        Some(json!({"lines": [{"variant_id": variant, "quantity": 2}]})),
    )
    .await)
    .await;
    assert_eq!(part["status"], "paid");
    assert_eq!(part["lines"][0]["fulfilled_quantity"], 2);
    // Bad quantities are faults of their field (checked, never wrapped), and change nothing.
    for (lines, at) in [
        (
            json!([{"variant_id": variant, "quantity": 2}]),
            "/lines/0/quantity",
        ),
        (
            json!([{"variant_id": variant, "quantity": 0}]),
            "/lines/0/quantity",
        ),
        (
            json!([{"variant_id": variant, "quantity": -3}]),
            "/lines/0/quantity",
        ),
        (
            json!([{"variant_id": variant, "quantity": i64::MAX}]),
            "/lines/0/quantity",
        ),
        (
            json!([{"variant_id": variant, "quantity": 1}, {"variant_id": variant, "quantity": i64::MAX}]),
            "/lines/1/quantity",
        ),
        (
            json!([{"variant_id": "var_0190c4c0a0007000800000000000dead", "quantity": 1}]),
            "/lines/0/variant_id",
        ),
        (json!([]), "/lines"),
    ] {
        let bad = post("fulfill", Some(json!({ "lines": lines }))).await;
        let problem = assert_problem(bad, 422, "validation_failed").await;
        assert_eq!(pointers(&problem)[0].0, at, "{lines}");
    }
    let cancel_late = post("cancel", Some(json!({"reason": "changed mind"}))).await;
    assert_problem(cancel_late, 409, "order_transition_illegal").await;
    let done = ok(post(
        "fulfill",
        Some(json!({"lines": [{"variant_id": variant, "quantity": 1}]})),
    )
    .await)
    .await;
    assert_eq!(done["status"], "fulfilled");
    let shipped = ok(post("ship", Some(json!({"tracking_number": "1Z999"}))).await).await;
    assert_eq!(shipped["tracking_number"], "1Z999");
    ok(post("deliver", None).await).await;

    // Refunds by parts, never beyond what was captured.
    let refunded = ok(post("refund", Some(json!({"amount": 5_000}))).await).await;
    assert_eq!(refunded["refunded_amount"], 5_000);
    assert_eq!(refunded["status"], "delivered");
    for amount in [json!(20_000), json!(0), json!(-5), json!(i64::MAX)] {
        let bad = post("refund", Some(json!({ "amount": amount }))).await;
        let problem = assert_problem(bad, 422, "validation_failed").await;
        assert_eq!(
            pointers(&problem),
            [("/amount".to_owned(), "out_of_range".to_owned())]
        );
    }
    let returned = ok(post("return", None).await).await;
    assert_eq!(returned["status"], "returned");
    assert_eq!(returned["refunded_amount"], 5_000);
    // A money action is two events (requested, then settled): placed, capture (2), fulfil
    // (2), ship, deliver, refund (2), return.
    assert_eq!(returned["version"], 10);

    // A placed order cancelled: its payment is voided and its stock comes back; the returned
    // order's stock stays out (it comes back by an adjustment once inspected).
    let before = available(&app, &shop).await;
    let other = place(1, "cancel-me").await;
    assert_eq!(available(&app, &shop).await, before - 1);
    let r = app
        .request(
            Method::POST,
            &format!("/v1/admin/orders/{other}/cancel"),
            Some(&json!({"reason": "out of paper"})),
            Some(&admin),
            &[],
        )
        .await;
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let payment = app
        .store()
        .payments
        .get(serde_json::from_value(cancelled["payment_id"].clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(payment.status, emporium_payments::PaymentStatus::Voided);
    app.drain_outbox().await;
    assert_eq!(available(&app, &shop).await, before);
    let mut conn = app.store().db.read().await.unwrap();
    let (restocked,): (i64,) = emporium_db::run!(&mut conn, |c| {
        sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(delta_on_hand), 0) AS BIGINT) FROM stock_ledger \
         WHERE reason = 'order_cancelled'",
        )
        .fetch_one(c)
        .await
    })
    .unwrap();
    drop(conn);
    assert_eq!(restocked, 1, "one unit back on hand, once");

    // The staff list pages newest first and filters by status; the projection rebuilds to the
    // same orders.
    let page: Value = app
        .get("/v1/admin/orders?status=returned", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], order.as_str());
    let first: Value = app
        .get("/v1/admin/orders?limit=1", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"][0]["id"], other.as_str());
    let next = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get(
            &format!("/v1/admin/orders?limit=1&cursor={next}"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"][0]["id"], order.as_str());
    let before = app
        .get(&base, Some(&admin))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(app.store().orders.rebuild_projections().await.unwrap(), 2);
    let after = app
        .get(&base, Some(&admin))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(before, after);
}

async fn a_cart_a_checkout_holds_takes_no_change_until_the_checkout_fails(app: TestApp) {
    let shop = shop(&app, 5, 100).await;
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    let path = format!("/v1/store/carts/{cart}");
    let change = |email: &str| json!({ "email": email });
    let patch = async |body: Value| {
        app.request(
            Method::PATCH,
            &path,
            Some(&body),
            None,
            &[("x-cart-token", &token)],
        )
        .await
    };
    let carts = &app.store().cart;
    let id = CartId::from_str(&cart).unwrap();
    let access = Access {
        token: Some(&token),
        customer: None,
    };
    let version = carts.get(id, access).await.unwrap().version;

    // A hold is taken only on the cart as the checkout read it.
    let checkout = uuid::Uuid::now_v7();
    let mut tx = app.store().db.begin_write().await.unwrap();
    assert!(
        !carts
            .hold_in(&mut tx, id, version - 1, checkout)
            .await
            .unwrap()
    );
    assert!(carts.hold_in(&mut tx, id, version, checkout).await.unwrap());
    tx.commit().await.unwrap();

    // Held: every change is refused, reads still work.
    assert_problem(
        patch(change("new@example.com")).await,
        409,
        "cart_checked_out",
    )
    .await;
    let items = format!("{path}/items");
    let add = json!({"variant_id": shop.variant, "quantity": 1});
    let r = app
        .request(
            Method::POST,
            &items,
            Some(&add),
            None,
            &[("x-cart-token", &token)],
        )
        .await;
    assert_problem(r, 409, "cart_checked_out").await;
    let r = app
        .request(
            Method::DELETE,
            &format!("{path}/coupons/save10"),
            None,
            None,
            &[("x-cart-token", &token)],
        )
        .await;
    assert_problem(r, 409, "cart_checked_out").await;
    let read = app
        .request(Method::GET, &path, None, None, &[("x-cart-token", &token)])
        .await;
    assert_eq!(read.status().as_u16(), 200);
    let held: Value = read.json().await.unwrap();
    assert_eq!(held["email"], "guest@example.com", "nothing changed");
    assert_eq!(
        held["checkout_id"],
        emporium_kernel::ids::CheckoutId(checkout).to_string(),
        "the cart says which checkout holds it"
    );
    // Nor is it merged into a customer's cart at sign-in.
    let customer = app.customer_token("held@example.com").await;
    let r = app
        .request(
            Method::POST,
            &format!("{path}/merge"),
            None,
            Some(&customer),
            &[("x-cart-token", &token)],
        )
        .await;
    assert_problem(r, 409, "cart_checked_out").await;

    // Released (its checkout failed): changes land again.
    let mut tx = app.store().db.begin_write().await.unwrap();
    carts.release_in(&mut tx, id, checkout).await.unwrap();
    tx.commit().await.unwrap();
    let read = app
        .request(Method::GET, &path, None, None, &[("x-cart-token", &token)])
        .await;
    let open: Value = read.json().await.unwrap();
    assert!(open.get("checkout_id").is_none(), "{open}");
    assert_eq!(
        patch(change("new@example.com")).await.status().as_u16(),
        200
    );

    // Through the API: a declined checkout lets go of the cart...
    let declined = check_out(&app, &cart, &token, "k1", "tok_decline").await;
    assert_problem(declined, 402, "payment_declined").await;
    assert_eq!(
        patch(change("again@example.com")).await.status().as_u16(),
        200
    );
    // ...a placed one keeps it until the cart is closed: never a change after the order.
    let placed = check_out(&app, &cart, &token, "k2", "tok_success").await;
    assert_eq!(placed.status().as_u16(), 201);
    let placed: Value = placed.json().await.unwrap();
    assert_eq!(placed["order"]["email"], "again@example.com");
    let after = patch(change("late@example.com")).await;
    let status = after.status().as_u16();
    let problem: Value = after.json().await.unwrap();
    assert!(
        (status == 409 && problem["code"] == "cart_checked_out")
            || (status == 404 && problem["code"] == "cart_not_found"),
        "{status} {problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_opens_its_breaker_and_a_probe_closes_it() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.payments.breaker_failures = 3;
        c.payments.breaker_open_ms = 1_000;
    })
    .await;
    let shop = shop(&app, 10, 100).await;
    // Three authorisations in a row whose answers are lost.
    for n in 0..3 {
        let (cart, token) = ready_cart(&app, &shop, 1, false).await;
        let r = check_out(
            &app,
            &cart,
            &token,
            &format!("lost-{n}"),
            "tok_error_after_auth",
        )
        .await;
        assert_problem(r, 503, "payment_provider_unavailable").await;
    }
    // Open: the next checkout fails at once, without asking the provider, and is undone.
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    let r = check_out(&app, &cart, &token, "while-open", "tok_success").await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 503, "payment_unavailable").await;
    let (status, code) = last_intent(&app).await;
    assert_eq!(
        (status.as_str(), code.as_deref()),
        ("voided", Some("payment_unavailable")),
        "the provider was never asked, so nothing is held"
    );
    assert_eq!(available(&app, &shop).await, 10, "no stock stays held");
    // After the open period one probe goes through; its success closes the breaker.
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let placed = crate::helpers::eventually(std::time::Duration::from_secs(20), || async {
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (cart, token) = ready_cart(&app, &shop, 1, false).await;
        check_out(&app, &cart, &token, &format!("probe-{n}"), "tok_success")
            .await
            .status()
            == 201
    })
    .await;
    assert!(
        placed,
        "a checkout succeeds once the breaker lets its probe through"
    );
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    let r = check_out(&app, &cart, &token, "closed", "tok_success").await;
    assert_eq!(r.status().as_u16(), 201, "closed again");
}

/// The status and failure code of the newest payment intent.
async fn last_intent(app: &TestApp) -> (String, Option<String>) {
    use sqlx::Row;
    let mut conn = app.store().db.read().await.unwrap();
    emporium_db::run!(&mut conn, |c| sqlx::query(
        "SELECT status, failure_code FROM payment_intents ORDER BY created_at DESC, id DESC LIMIT 1"
    )
    .fetch_one(c)
    .await
    .map(|r| (
        r.get::<String, _>("status"),
        r.get::<Option<String>, _>("failure_code")
    )))
    .unwrap()
}
