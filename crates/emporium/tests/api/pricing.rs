//! Pricing rules over HTTP: staff write tax rates, shipping options, promotions and coupons, the
//! quote preview applies them; bad bodies are refused field by field; a coupon's limit holds
//! under concurrent redemption.

use std::sync::Arc;

use emporium_kernel::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, pointers};
use crate::on_both_backends;

on_both_backends!(
    rules_are_written_read_replaced_and_deleted_with_etags,
    the_quote_preview_applies_stored_rules_and_coupons,
    bad_rule_bodies_are_refused_with_every_field_at_fault,
    staff_read_pricing_but_only_admins_change_it,
    a_coupon_limited_to_ten_uses_is_redeemed_exactly_ten_times_under_contention,
    a_rule_written_by_another_process_reaches_quotes_within_the_rules_max_age,
    coupon_codes_a_quote_keeps_follow_every_coupon_write_and_use,
);

const VARIANT: &str = "var_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f";
const PRODUCT: &str = "prod_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f";

async fn admin(app: &TestApp) -> String {
    app.staff_token("admin@example.com", Role::Admin).await
}

async fn created(app: &TestApp, path: &str, body: Value, token: &str) -> Value {
    let r = app.post_json(path, &body, Some(token)).await;
    assert_eq!(r.status().as_u16(), 201, "POST {path}");
    r.json().await.unwrap()
}

fn tax_rate(country: &str, basis_points: u32, inclusive: bool) -> Value {
    json!({"name": format!("{country} tax"), "country": country, "basis_points": basis_points,
           "inclusive": inclusive})
}

fn cart(unit_price: i64, quantity: u32, shipping_option: Option<&str>) -> Value {
    json!({
        "currency": "EUR",
        "items": [{"variant_id": VARIANT, "product_id": PRODUCT, "category_ids": [],
                   "quantity": quantity, "unit_price": unit_price, "weight_grams": 400}],
        "customer_groups": [],
        "shipping_address": {"country": "DE", "state": null},
        "shipping_option": shipping_option,
        "coupons": [],
        "now": "2026-11-24T10:00:00Z"
    })
}

async fn rules_are_written_read_replaced_and_deleted_with_etags(app: TestApp) {
    let token = admin(&app).await;
    let rate = created(
        &app,
        "/v1/admin/tax-rates",
        tax_rate("DE", 1_900, true),
        &token,
    )
    .await;
    let id = rate["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("txr_"), "{rate}");
    assert_eq!(rate["version"], 1);

    // One rate per region.
    let again = app
        .post_json(
            "/v1/admin/tax-rates",
            &tax_rate("DE", 700, true),
            Some(&token),
        )
        .await;
    assert_problem(again, 409, "tax_region_taken").await;

    let path = format!("/v1/admin/tax-rates/{id}");
    let read = app.get(&path, Some(&token)).await;
    assert_eq!(read.headers()["etag"], "\"1\"");

    let body = tax_rate("DE", 700, true);
    let replaced = app
        .request(
            Method::PUT,
            &path,
            Some(&body),
            Some(&token),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(replaced.status().as_u16(), 200);
    assert_eq!(replaced.headers()["etag"], "\"2\"");
    let stale = app
        .request(
            Method::PUT,
            &path,
            Some(&body),
            Some(&token),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_problem(stale, 412, "precondition_failed").await;

    let page: Value = app
        .get("/v1/admin/tax-rates", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["basis_points"], 700);

    let gone = app
        .request(Method::DELETE, &path, None, Some(&token), &[])
        .await;
    assert_eq!(gone.status().as_u16(), 204);
    assert_problem(
        app.get(&path, Some(&token)).await,
        404,
        "pricing_rule_not_found",
    )
    .await;
    // A promotion id names no tax rate.
    let other = app
        .get(
            "/v1/admin/tax-rates/promo_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
            Some(&token),
        )
        .await;
    assert_eq!(other.status().as_u16(), 404);
}

async fn the_quote_preview_applies_stored_rules_and_coupons(app: TestApp) {
    let token = admin(&app).await;
    created(
        &app,
        "/v1/admin/tax-rates",
        tax_rate("DE", 1_900, true),
        &token,
    )
    .await;
    let ship = created(
        &app,
        "/v1/admin/shipping-options",
        json!({"name": "standard", "countries": ["DE"],
               "rate": {"type": "flat", "price": {"amount": 490, "currency": "EUR"}}}),
        &token,
    )
    .await;
    let promo = created(
        &app,
        "/v1/admin/promotions",
        json!({"name": "ten off", "needs_coupon": true,
               "benefit": {"type": "order_percent", "basis_points": 1000}}),
        &token,
    )
    .await;
    let coupon = created(
        &app,
        "/v1/admin/coupons",
        json!({"code": "save10", "promotion_id": promo["id"], "usage_limit": 5}),
        &token,
    )
    .await;
    assert_eq!(coupon["code"], "SAVE10");
    let taken = app
        .post_json(
            "/v1/admin/coupons",
            &json!({"code": "Save10", "promotion_id": promo["id"]}),
            Some(&token),
        )
        .await;
    assert_problem(taken, 409, "coupon_code_taken").await;

    let body = json!({"cart": cart(11_900, 2, ship["id"].as_str()),
                      "coupon_codes": ["save10", "NOSUCH"]});
    let r = app
        .post_json("/v1/admin/pricing/quote", &body, Some(&token))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let q: Value = r.json().await.unwrap();
    // 2 × 119.00 = 238.00; 10 % off = 23.80; shipping 4.90; VAT 19 % included.
    assert_eq!(q["subtotal"], 23_800);
    assert_eq!(q["discount_total"], 2_380);
    assert_eq!(q["shipping_total"], 490);
    assert_eq!(q["total"], 23_800 - 2_380 + 490);
    assert_eq!(q["tax_inclusive"], true);
    // 214.20 holds 34.20 of VAT, 4.90 holds 0.78.
    assert_eq!(q["tax_total"], 3_420 + 78);
    assert_eq!(q["coupons"][0]["applied"], true);
    assert_eq!(q["coupons"][1]["reason"], "coupon_unknown");
    assert_eq!(q["discounts"][0]["code"], "save10");

    // A quantity of zero is refused with its pointer.
    let bad = json!({"cart": cart(100, 0, None)});
    let p = assert_problem(
        app.post_json("/v1/admin/pricing/quote", &bad, Some(&token))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        pointers(&p),
        vec![(
            "/cart/items/0/quantity".to_owned(),
            "out_of_range".to_owned()
        )]
    );
}

async fn bad_rule_bodies_are_refused_with_every_field_at_fault(app: TestApp) {
    let token = admin(&app).await;
    let check = |body: Value, path: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let r = app.post_json(path, &body, Some(&token)).await;
            pointers(&assert_problem(r, 422, "validation_failed").await)
        }
    };
    let p = check(
        json!({"name": " ", "benefit": {"type": "buy_x_get_y", "buy": 0, "get": 1,
               "basis_points": 20000, "target": {}},
               "conditions": {"window": {"starts_at": "2026-12-01T00:00:00Z",
                                         "ends_at": "2026-11-01T00:00:00Z"}}}),
        "/v1/admin/promotions",
    )
    .await;
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "/benefit/basis_points",
            "/benefit/buy",
            "/conditions/window",
            "/name"
        ]
    );

    let p = check(
        json!({"name": "x", "country": "germany", "state": "new york", "basis_points": 900000,
               "inclusive": false}),
        "/v1/admin/tax-rates",
    )
    .await;
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, vec!["/basis_points", "/country", "/state"]);

    let p = check(
        json!({"name": "by weight", "rate": {"type": "by_weight", "currency": "EUR",
               "tiers": [{"up_to_grams": 0, "amount": -1}]}}),
        "/v1/admin/shipping-options",
    )
    .await;
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec!["/rate/tiers/0/amount", "/rate/tiers/0/up_to_grams"]
    );

    // The store gives ids; unknown fields are refused.
    let p = check(
        json!({"id": "txr_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f", "name": "x", "country": "FR",
               "basis_points": 2000, "inclusive": true}),
        "/v1/admin/tax-rates",
    )
    .await;
    assert_eq!(p, vec![("/id".to_owned(), "read_only".to_owned())]);
    let r = app
        .post_json(
            "/v1/admin/tax-rates",
            &json!({"name": "x", "country": "FR", "basis_points": 2000, "inclusive": true,
                    "colour": "red"}),
            Some(&token),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;

    // A coupon for no promotion, with a bad code and a negative limit.
    let p = check(
        json!({"code": "a!", "promotion_id": "promo_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
               "usage_limit": -1}),
        "/v1/admin/coupons",
    )
    .await;
    assert_eq!(
        p,
        vec![
            ("/code".to_owned(), "invalid_format".to_owned()),
            ("/usage_limit".to_owned(), "too_small".to_owned())
        ]
    );
    let p = check(
        json!({"code": "WELCOME", "promotion_id": "promo_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"}),
        "/v1/admin/coupons",
    )
    .await;
    assert_eq!(
        p,
        vec![("/promotion_id".to_owned(), "not_found".to_owned())]
    );

    // Nothing was written.
    for path in [
        "/v1/admin/promotions",
        "/v1/admin/tax-rates",
        "/v1/admin/coupons",
    ] {
        let page: Value = app.get(path, Some(&token)).await.json().await.unwrap();
        assert_eq!(page["items"], json!([]), "{path}");
    }
}

async fn staff_read_pricing_but_only_admins_change_it(app: TestApp) {
    let staff = app.staff_token("staff@example.com", Role::Staff).await;
    let r = app
        .post_json(
            "/v1/admin/tax-rates",
            &tax_rate("FR", 2_000, true),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    let r = app.get("/v1/admin/tax-rates", Some(&staff)).await;
    assert_eq!(r.status().as_u16(), 200);
    let r = app.get("/v1/admin/tax-rates", None).await;
    assert_eq!(r.status().as_u16(), 401);
}

async fn a_coupon_limited_to_ten_uses_is_redeemed_exactly_ten_times_under_contention(app: TestApp) {
    let token = admin(&app).await;
    let promo = created(
        &app,
        "/v1/admin/promotions",
        json!({"name": "launch", "needs_coupon": true,
               "benefit": {"type": "order_fixed", "amount": {"amount": 500, "currency": "EUR"}}}),
        &token,
    )
    .await;
    let coupon = created(
        &app,
        "/v1/admin/coupons",
        json!({"code": "LAUNCH", "promotion_id": promo["id"], "usage_limit": 10,
               "per_customer_limit": 1}),
        &token,
    )
    .await;
    let pricing = app.store().pricing.clone();

    let attempts = (0..100).map(|i| {
        let pricing = Arc::clone(&pricing);
        tokio::spawn(async move {
            let mut tx = pricing.begin_write().await?;
            let outcome = pricing
                .redeem_in(
                    &mut tx,
                    "launch",
                    &format!("checkout-{i}"),
                    &format!("cus-{i}"),
                )
                .await;
            if outcome.is_ok() {
                tx.commit().await?;
            }
            outcome
        })
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let mut won = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert!(
                matches!(e, emporium_pricing::PricingError::CouponExhausted),
                "{e}"
            ),
        }
    }
    assert_eq!(won, 10);
    let read: Value = app
        .get(
            &format!("/v1/admin/coupons/{}", coupon["id"].as_str().unwrap()),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["used"], 10);

    // A redemption given back frees a use; the same customer cannot use it twice.
    let id = emporium_kernel::ids::CouponId(read["id"].as_str().unwrap()[4..].parse().unwrap());
    let mut tx = pricing.begin_write().await.unwrap();
    let winner = (0..100)
        .map(|i| format!("checkout-{i}"))
        .collect::<Vec<_>>();
    for reference in &winner {
        pricing.return_in(&mut tx, id, reference).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = pricing.begin_write().await.unwrap();
    pricing
        .redeem_in(&mut tx, "LAUNCH", "checkout-a", "cus-x")
        .await
        .unwrap();
    // The same checkout again is no second use, even at the customer's limit.
    pricing
        .redeem_in(&mut tx, "LAUNCH", "checkout-a", "cus-x")
        .await
        .unwrap();
    let twice = pricing
        .redeem_in(&mut tx, "LAUNCH", "checkout-b", "cus-x")
        .await;
    assert!(matches!(
        twice,
        Err(emporium_pricing::PricingError::CouponCustomerLimit)
    ));
}

async fn a_rule_written_by_another_process_reaches_quotes_within_the_rules_max_age(app: TestApp) {
    // A second service over the same database stands for another process of the store; with
    // no age allowed, its rules are due for a reload at every read.
    let other = emporium_pricing::PricingService::new(
        app.store().db.clone(),
        Arc::new(emporium_kernel::SystemClock),
    )
    .with_rules_max_age(std::time::Duration::ZERO);
    assert!(other.rules().await.unwrap().tax_rates.is_empty());
    let token = admin(&app).await;
    created(
        &app,
        "/v1/admin/tax-rates",
        tax_rate("AT", 2000, true),
        &token,
    )
    .await;
    // The writing process forgets its rules at once...
    let local = app.store().pricing.rules().await.unwrap();
    assert_eq!(local.tax_rates.len(), 1);
    // ...the other loads them again once they are past their age.
    let rules = other.rules().await.unwrap();
    assert_eq!(rules.tax_rates.len(), 1);
    assert_eq!(rules.tax_rates[0].country.as_str(), "AT");
}

/// Whether each of `codes` applies to a quote of a plain cart, in order.
async fn applied(app: &TestApp, token: &str, codes: &[&str]) -> Vec<bool> {
    let body = json!({"cart": cart(10_000, 1, None), "coupon_codes": codes});
    let r = app
        .post_json("/v1/admin/pricing/quote", &body, Some(token))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let q: Value = r.json().await.unwrap();
    q["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["applied"] == true)
        .collect()
}

async fn coupon_codes_a_quote_keeps_follow_every_coupon_write_and_use(app: TestApp) {
    let token = admin(&app).await;
    let promo = created(
        &app,
        "/v1/admin/promotions",
        json!({"name": "kept", "needs_coupon": true,
               "benefit": {"type": "order_percent", "basis_points": 500}}),
        &token,
    )
    .await;
    let coupon = |code: &str, limit: Option<i64>| json!({"code": code, "promotion_id": promo["id"], "usage_limit": limit});
    let kept = created(&app, "/v1/admin/coupons", coupon("KEPT", None), &token).await;
    created(&app, "/v1/admin/coupons", coupon("ONCE", Some(1)), &token).await;
    // Read (and kept, for the unlimited code and the unknown one) by a first quote each (one
    // promotion applies once per cart, so each code goes alone).
    assert_eq!(applied(&app, &token, &["KEPT"]).await, [true]);
    assert_eq!(applied(&app, &token, &["ONCE"]).await, [true]);
    assert_eq!(applied(&app, &token, &["LATER"]).await, [false]);

    // A code created after a quote found none applies at once.
    created(&app, "/v1/admin/coupons", coupon("LATER", None), &token).await;
    assert_eq!(applied(&app, &token, &["LATER"]).await, [true]);

    // A deleted code stops applying at once.
    let id = kept["id"].as_str().unwrap();
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/admin/coupons/{id}"),
            None,
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(applied(&app, &token, &["KEPT"]).await, [false]);

    // A limited code is read every time: once used up, it no longer applies.
    let pricing = app.store().pricing.clone();
    let mut tx = pricing.begin_write().await.unwrap();
    pricing
        .redeem_in(&mut tx, "ONCE", "checkout-once", "cus-once")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(applied(&app, &token, &["ONCE"]).await, [false]);
}
