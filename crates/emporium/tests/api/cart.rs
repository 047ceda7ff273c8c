//! Carts over HTTP: a guest fills a cart checked against stock and sees its totals; the token
//! or the owning customer opens it, nobody else; shipping and coupons change the totals; bad
//! input is refused field by field.

use emporium_kernel::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::catalog::{create_product, simple_product};
use crate::helpers::{TestApp, assert_problem, pointers};
use crate::on_both_backends;

on_both_backends!(
    a_guest_fills_a_cart_within_stock_and_sees_its_totals,
    only_the_token_or_the_owning_customer_opens_a_cart,
    shipping_and_coupons_change_the_totals,
    bad_cart_input_is_refused_with_the_field_at_fault,
    a_coupon_code_with_a_control_character_is_refused_at_its_field,
    a_guest_cart_merges_into_the_customers_cart_at_sign_in,
    concurrent_adds_to_one_cart_lose_no_unit,
    concurrent_merges_and_adds_into_one_customers_cart_lose_no_unit,
    concurrent_removals_and_adds_on_one_cart_all_succeed,
    a_groups_price_list_prices_the_carts_of_its_customers_only,
    a_stock_change_keeps_the_carts_view_of_a_product_and_a_product_change_renews_it,
);

/// A published product with `on_hand` units at a new location; returns its variant id.
async fn stocked_variant(app: &TestApp, token: &str, sku: &str, eur: i64, on_hand: i64) -> String {
    let product = create_product(app, token, simple_product(sku, sku, eur, &[])).await;
    let variant = product["variants"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": format!("loc-{}", sku.to_lowercase()), "name": "Warehouse"}),
            Some(token),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let location: Value = r.json().await.unwrap();
    let r = app
        .request(
            Method::PUT,
            &format!(
                "/v1/admin/inventory/levels/{variant}/{}",
                location["id"].as_str().unwrap()
            ),
            Some(&json!({"on_hand": on_hand, "reason": "delivery"})),
            Some(token),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    variant
}

/// Opens a guest cart; returns its id and token.
async fn guest_cart(app: &TestApp) -> (String, String) {
    let r = app
        .post_json("/v1/store/carts", &json!({"currency": "EUR"}), None)
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    (
        created["cart"]["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> reqwest::Response {
    app.request(method, path, body, None, &[("x-cart-token", token)])
        .await
}

async fn ok(response: reqwest::Response) -> Value {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn a_guest_fills_a_cart_within_stock_and_sees_its_totals(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let kettle = stocked_variant(&app, &admin, "KET-1", 3_900, 5).await;
    let mug = stocked_variant(&app, &admin, "MUG-1", 1_250, 2).await;
    let (id, token) = guest_cart(&app).await;
    let items = format!("/v1/store/carts/{id}/items");

    let cart = ok(call(
        &app,
        Method::POST,
        &items,
        Some(&json!({"variant_id": kettle, "quantity": 2})),
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["items"][0]["sku"], "KET-1");
    assert_eq!(cart["totals"]["subtotal"], 7_800);

    // Adding the same variant adds to its line; beyond the stock is a 409 naming the line.
    let cart = ok(call(
        &app,
        Method::POST,
        &items,
        Some(&json!({"variant_id": kettle, "quantity": 3})),
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["quantity"], 5);
    let over = call(
        &app,
        Method::POST,
        &items,
        Some(&json!({"variant_id": kettle, "quantity": 1})),
        &token,
    )
    .await;
    let problem = assert_problem(over, 409, "out_of_stock").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("requested 6, available 5"),
        "{problem}"
    );

    let cart = ok(call(
        &app,
        Method::POST,
        &items,
        Some(&json!({"variant_id": mug, "quantity": 2})),
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["totals"]["subtotal"], 5 * 3_900 + 2 * 1_250);
    assert_eq!(cart["totals"]["total"], 5 * 3_900 + 2 * 1_250);

    let mug_line = cart["items"][1]["id"].as_str().unwrap().to_owned();
    let too_many = call(
        &app,
        Method::PATCH,
        &format!("{items}/{mug_line}"),
        Some(&json!({"quantity": 3})),
        &token,
    )
    .await;
    assert_problem(too_many, 409, "out_of_stock").await;
    let cart = ok(call(
        &app,
        Method::PATCH,
        &format!("{items}/{mug_line}"),
        Some(&json!({"quantity": 1})),
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["totals"]["subtotal"], 5 * 3_900 + 1_250);
    let cart = ok(call(
        &app,
        Method::DELETE,
        &format!("{items}/{mug_line}"),
        None,
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    let gone = call(
        &app,
        Method::DELETE,
        &format!("{items}/{mug_line}"),
        None,
        &token,
    )
    .await;
    assert_problem(gone, 404, "cart_item_not_found").await;

    // The cart reads back the same.
    let read = ok(call(
        &app,
        Method::GET,
        &format!("/v1/store/carts/{id}"),
        None,
        &token,
    )
    .await)
    .await;
    assert_eq!(read["totals"], cart["totals"]);
}

async fn only_the_token_or_the_owning_customer_opens_a_cart(app: TestApp) {
    let (id, token) = guest_cart(&app).await;
    let path = format!("/v1/store/carts/{id}");
    ok(call(&app, Method::GET, &path, None, &token).await).await;
    let wrong = call(&app, Method::GET, &path, None, "not-the-token").await;
    assert_problem(wrong, 404, "cart_not_found").await;
    assert_problem(app.get(&path, None).await, 404, "cart_not_found").await;

    let alice = app.customer_token("alice@example.com").await;
    let bob = app.customer_token("bob@example.com").await;
    let r = app
        .post_json("/v1/store/carts", &json!({}), Some(&alice))
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    assert!(
        created["cart"]["customer_id"]
            .as_str()
            .unwrap()
            .starts_with("cus_")
    );
    let path = format!(
        "/v1/store/carts/{}",
        created["cart"]["id"].as_str().unwrap()
    );
    assert_eq!(app.get(&path, Some(&alice)).await.status().as_u16(), 200);
    assert_problem(app.get(&path, Some(&bob)).await, 404, "cart_not_found").await;
    // Alice's cart also opens with its own token, without a session.
    let own = call(
        &app,
        Method::GET,
        &path,
        None,
        created["token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(own.status().as_u16(), 200);
}

async fn shipping_and_coupons_change_the_totals(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let kettle = stocked_variant(&app, &admin, "KET-2", 4_000, 10).await;
    let r = app
        .post_json(
            "/v1/admin/tax-rates",
            &json!({"name": "VAT", "country": "DE", "basis_points": 1900, "inclusive": true}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let r = app
        .post_json(
            "/v1/admin/shipping-options",
            &json!({"name": "DHL", "countries": ["DE"],
                    "rate": {"type": "flat", "price": {"amount": 500, "currency": "EUR"}}}),
            Some(&admin),
        )
        .await;
    let dhl: Value = r.json().await.unwrap();
    let r = app
        .post_json(
            "/v1/admin/promotions",
            &json!({"name": "big spender", "needs_coupon": true,
                    "benefit": {"type": "free_shipping"},
                    "conditions": {"min_subtotal": {"amount": 10000, "currency": "EUR"}}}),
            Some(&admin),
        )
        .await;
    let promo: Value = r.json().await.unwrap();
    let r = app
        .post_json(
            "/v1/admin/coupons",
            &json!({"code": "FREESHIP", "promotion_id": promo["id"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);

    let (id, token) = guest_cart(&app).await;
    let base = format!("/v1/store/carts/{id}");
    ok(call(
        &app,
        Method::POST,
        &format!("{base}/items"),
        Some(&json!({"variant_id": kettle, "quantity": 2})),
        &token,
    )
    .await)
    .await;

    // No address yet: nothing ships it.
    let options = ok(call(
        &app,
        Method::GET,
        &format!("{base}/shipping-options"),
        None,
        &token,
    )
    .await)
    .await;
    assert_eq!(options, json!([]));
    let address = json!({"email": "guest@example.com", "shipping_address": {
        "name": "Erika Mustermann", "line1": "Heidestraße 17", "city": "Köln",
        "postal_code": "51147", "country": "DE"}});
    let cart = ok(call(&app, Method::PATCH, &base, Some(&address), &token).await).await;
    assert_eq!(cart["email"], "guest@example.com");
    assert_eq!(cart["totals"]["tax_inclusive"], true);
    let options = ok(call(
        &app,
        Method::GET,
        &format!("{base}/shipping-options"),
        None,
        &token,
    )
    .await)
    .await;
    assert_eq!(options[0]["amount"], 500);

    let cart = ok(call(
        &app,
        Method::PUT,
        &format!("{base}/shipping-option"),
        Some(&json!({"option_id": dhl["id"]})),
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["totals"]["shipping_total"], 500);
    assert_eq!(cart["totals"]["total"], 8_000 + 500);

    // Under the minimum the coupon is refused; over it, shipping becomes free.
    let refused = call(
        &app,
        Method::POST,
        &format!("{base}/coupons"),
        Some(&json!({"code": "freeship"})),
        &token,
    )
    .await;
    assert_problem(refused, 422, "coupon_not_applicable").await;
    let unknown = call(
        &app,
        Method::POST,
        &format!("{base}/coupons"),
        Some(&json!({"code": "NOPE"})),
        &token,
    )
    .await;
    assert_problem(unknown, 404, "coupon_not_found").await;
    let line = cart["items"][0]["id"].as_str().unwrap().to_owned();
    ok(call(
        &app,
        Method::PATCH,
        &format!("{base}/items/{line}"),
        Some(&json!({"quantity": 3})),
        &token,
    )
    .await)
    .await;
    let cart = ok(call(
        &app,
        Method::POST,
        &format!("{base}/coupons"),
        Some(&json!({"code": "freeship"})),
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["coupon_codes"], json!(["freeship"]));
    assert_eq!(cart["totals"]["shipping_total"], 0);
    assert_eq!(cart["totals"]["discount_total"], 500);
    assert_eq!(cart["totals"]["total"], 12_000);
    // 120.00 gross holds 19.16 of VAT.
    assert_eq!(cart["totals"]["tax_total"], 1_916);

    let cart = ok(call(
        &app,
        Method::DELETE,
        &format!("{base}/coupons/FREESHIP"),
        None,
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["coupon_codes"], json!([]));
    assert_eq!(cart["totals"]["total"], 12_500);
}

async fn bad_cart_input_is_refused_with_the_field_at_fault(app: TestApp) {
    let r = app
        .post_json("/v1/store/carts", &json!({"currency": "euro"}), None)
        .await;
    let p = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&p),
        vec![("/currency".to_owned(), "invalid_format".to_owned())]
    );

    let (id, token) = guest_cart(&app).await;
    let base = format!("/v1/store/carts/{id}");
    let r = call(
        &app,
        Method::POST,
        &format!("{base}/items"),
        Some(&json!({"variant_id": "var_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f", "quantity": 1})),
        &token,
    )
    .await;
    let p = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&p),
        vec![("/variant_id".to_owned(), "not_purchasable".to_owned())]
    );
    let r = call(
        &app,
        Method::POST,
        &format!("{base}/items"),
        Some(&json!({"variant_id": "var_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f", "quantity": 0})),
        &token,
    )
    .await;
    let p = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&p),
        vec![("/quantity".to_owned(), "out_of_range".to_owned())]
    );

    let r = call(
        &app,
        Method::PATCH,
        &base,
        Some(&json!({"email": "not an email", "shipping_address": {
            "name": "", "line1": "x", "city": "y", "postal_code": "1", "country": "Germany"}})),
        &token,
    )
    .await;
    let p = assert_problem(r, 422, "validation_failed").await;
    let found = pointers(&p);
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "/email",
            "/shipping_address/country",
            "/shipping_address/name"
        ]
    );
    let r = call(
        &app,
        Method::PUT,
        &format!("{base}/shipping-option"),
        Some(&json!({"option_id": "ship_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"})),
        &token,
    )
    .await;
    let p = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&p),
        vec![("/option_id".to_owned(), "not_offered".to_owned())]
    );

    // Nothing of it stuck.
    let cart = ok(call(&app, Method::GET, &base, None, &token).await).await;
    assert_eq!(cart["email"], Value::Null);
    assert_eq!(cart["shipping_address"], Value::Null);
    assert_eq!(cart["items"], json!([]));
    assert_eq!(cart["version"], 1);
}

/// A coupon code is one line of text: a NUL, a line break, a tab or a terminal escape anywhere
/// in it is refused before any lookup, and the cart keeps no code.
async fn a_coupon_code_with_a_control_character_is_refused_at_its_field(app: TestApp) {
    let (id, token) = guest_cart(&app).await;
    let path = format!("/v1/store/carts/{id}/coupons");
    for code in [
        "SAVE\u{0}10",
        "SAVE10\n",
        "\tSAVE10",
        "\u{1b}[31mSAVE10",
        "SAVE\u{7f}",
        "SAVE\u{85}10",
    ] {
        let r = call(
            &app,
            Method::POST,
            &path,
            Some(&json!({"code": code})),
            &token,
        )
        .await;
        let p = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(
            pointers(&p),
            vec![("/code".to_owned(), "invalid_format".to_owned())],
            "{code:?}"
        );
    }
    let cart = ok(call(
        &app,
        Method::GET,
        &format!("/v1/store/carts/{id}"),
        None,
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["coupon_codes"], json!([]));
    assert_eq!(cart["version"], 1);
}

async fn a_guest_cart_merges_into_the_customers_cart_at_sign_in(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let kettle = stocked_variant(&app, &admin, "KET-3", 3_000, 10).await;
    let mug = stocked_variant(&app, &admin, "MUG-3", 1_000, 10).await;
    let alice = app.customer_token("alice@example.com").await;

    // A first guest cart becomes Alice's when she has none.
    let (first, first_token) = guest_cart(&app).await;
    ok(call(
        &app,
        Method::POST,
        &format!("/v1/store/carts/{first}/items"),
        Some(&json!({"variant_id": kettle, "quantity": 2})),
        &first_token,
    )
    .await)
    .await;
    let merge = |id: String, token: String| {
        let app = &app;
        let alice = alice.clone();
        async move {
            app.request(
                Method::POST,
                &format!("/v1/store/carts/{id}/merge"),
                None,
                Some(&alice),
                &[("x-cart-token", &token)],
            )
            .await
        }
    };
    let owned = ok(merge(first.clone(), first_token.clone()).await).await;
    assert_eq!(owned["id"], first.as_str());
    assert!(owned["customer_id"].as_str().unwrap().starts_with("cus_"));

    // A later guest cart's lines join hers; the guest cart is gone.
    let (second, second_token) = guest_cart(&app).await;
    for (variant, quantity) in [(&kettle, 1), (&mug, 3)] {
        ok(call(
            &app,
            Method::POST,
            &format!("/v1/store/carts/{second}/items"),
            Some(&json!({"variant_id": variant, "quantity": quantity})),
            &second_token,
        )
        .await)
        .await;
    }
    let merged = ok(merge(second.clone(), second_token.clone()).await).await;
    assert_eq!(merged["id"], first.as_str());
    let lines: Vec<(String, i64)> = merged["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().unwrap().to_owned(),
                i["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![("KET-3".to_owned(), 3), ("MUG-3".to_owned(), 3)]
    );
    assert_eq!(merged["totals"]["subtotal"], 3 * 3_000 + 3 * 1_000);
    let gone = call(
        &app,
        Method::GET,
        &format!("/v1/store/carts/{second}"),
        None,
        &second_token,
    )
    .await;
    assert_problem(gone, 404, "cart_not_found").await;

    // Merging needs the customer's session and the guest cart's token.
    let (third, third_token) = guest_cart(&app).await;
    let anonymous = call(
        &app,
        Method::POST,
        &format!("/v1/store/carts/{third}/merge"),
        None,
        &third_token,
    )
    .await;
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = merge(third.clone(), "not-the-token".to_owned()).await;
    assert_problem(wrong, 404, "cart_not_found").await;
}

/// Twenty concurrent "add one unit" requests on one cart: each is planned on a read of the
/// cart and written only if the cart is still that version, so every request that answers 200
/// is one more unit, and the others answer 409 `cart_changed` having changed nothing.
async fn concurrent_adds_to_one_cart_lose_no_unit(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let variant = stocked_variant(&app, &admin, "MUG-1", 1_200, 1_000).await;
    let (cart, token) = guest_cart(&app).await;
    let path = format!("/v1/store/carts/{cart}/items");
    let body = json!({"variant_id": variant, "quantity": 1});
    let answers = futures_util::future::join_all(
        (0..20).map(|_| call(&app, Method::POST, &path, Some(&body), &token)),
    )
    .await;
    let mut added = 0;
    for r in answers {
        match r.status().as_u16() {
            200 => added += 1,
            _ => {
                assert_problem(r, 409, "cart_changed").await;
            }
        }
    }
    assert!(added >= 1, "no add succeeded");
    let cart = ok(call(
        &app,
        Method::GET,
        &format!("/v1/store/carts/{cart}"),
        None,
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1, "{cart}");
    assert_eq!(cart["items"][0]["quantity"], added, "{cart}");
}

/// Two item removals, a coupon removal and two adds on one cart, all at once. Each is planned
/// on a read and retried when another write got in first; as each of the five writes once, a
/// request meets at most four changes and the service plans five times, so every request
/// answers 200 and the cart ends as if they had run one after another.
async fn concurrent_removals_and_adds_on_one_cart_all_succeed(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let mut variants = Vec::new();
    for sku in ["RM-A", "RM-B", "RM-C", "RM-D"] {
        variants.push(stocked_variant(&app, &admin, sku, 1_000, 100).await);
    }
    let r = app
        .post_json(
            "/v1/admin/promotions",
            &json!({"name": "spring", "needs_coupon": true,
                    "benefit": {"type": "order_percent", "basis_points": 1000}}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let promo: Value = r.json().await.unwrap();
    let r = app
        .post_json(
            "/v1/admin/coupons",
            &json!({"code": "SPRING", "promotion_id": promo["id"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let (id, token) = guest_cart(&app).await;
    let base = format!("/v1/store/carts/{id}");
    let items = format!("{base}/items");
    for variant in &variants[..3] {
        let body = json!({"variant_id": variant, "quantity": 1});
        ok(call(&app, Method::POST, &items, Some(&body), &token).await).await;
    }
    let body = json!({"code": "SPRING"});
    let before = ok(call(
        &app,
        Method::POST,
        &format!("{base}/coupons"),
        Some(&body),
        &token,
    )
    .await)
    .await;
    let line = |at: usize| before["items"][at]["id"].as_str().unwrap().to_owned();
    let (line_a, line_b) = (line(0), line(1));

    let add_c = json!({"variant_id": variants[2], "quantity": 2});
    let add_d = json!({"variant_id": variants[3], "quantity": 1});
    let remove_a = format!("{items}/{line_a}");
    let remove_b = format!("{items}/{line_b}");
    let remove_coupon = format!("{base}/coupons/spring");
    let answers = futures_util::future::join_all([
        call(&app, Method::DELETE, &remove_a, None, &token),
        call(&app, Method::DELETE, &remove_b, None, &token),
        call(&app, Method::DELETE, &remove_coupon, None, &token),
        call(&app, Method::POST, &items, Some(&add_c), &token),
        call(&app, Method::POST, &items, Some(&add_d), &token),
    ])
    .await;
    for r in answers {
        ok(r).await;
    }

    let cart = ok(call(&app, Method::GET, &base, None, &token).await).await;
    let lines: Vec<(Value, Value)> = cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["variant_id"].clone(), i["quantity"].clone()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (json!(variants[2]), json!(3)),
            (json!(variants[3]), json!(1))
        ],
        "{cart}"
    );
    assert_eq!(cart["coupon_codes"], json!([]), "{cart}");
    assert_eq!(cart["totals"]["discount_total"], 0, "{cart}");
    assert_eq!(
        cart["version"],
        before["version"].as_i64().unwrap() + 5,
        "{cart}"
    );
}

/// Six guest carts merge into one customer's cart while four adds land on it, all at once.
/// Each merge and add is planned on a read and written only if both carts are still the
/// versions read, so the outcome is one of the serial ones: every merge that answers 200 moved
/// its units and removed its guest cart, every add that answers 200 added its units, and the
/// others answer 409 `cart_changed` having changed nothing.
async fn concurrent_merges_and_adds_into_one_customers_cart_lose_no_unit(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let mug = stocked_variant(&app, &admin, "MUG-M", 1_000, 1_000).await;
    let alice = app.customer_token("alice@example.com").await;
    let add = |cart: String, token: String, quantity: i64| {
        let app = &app;
        let body = json!({"variant_id": mug, "quantity": quantity});
        async move {
            call(
                app,
                Method::POST,
                &format!("/v1/store/carts/{cart}/items"),
                Some(&body),
                &token,
            )
            .await
        }
    };
    let merge = |cart: String, token: String| {
        let app = &app;
        let alice = alice.clone();
        async move {
            app.request(
                Method::POST,
                &format!("/v1/store/carts/{cart}/merge"),
                None,
                Some(&alice),
                &[("x-cart-token", &token)],
            )
            .await
        }
    };
    // Alice's cart: one mug.
    let (own, own_token) = guest_cart(&app).await;
    ok(add(own.clone(), own_token.clone(), 1).await).await;
    ok(merge(own.clone(), own_token.clone()).await).await;
    // Guest cart `i` holds `i + 1` mugs, so the units tell which merges happened.
    let mut guests = Vec::new();
    for i in 0..6 {
        let (cart, token) = guest_cart(&app).await;
        ok(add(cart.clone(), token.clone(), i + 1).await).await;
        guests.push((cart, token, i + 1));
    }

    let merges = futures_util::future::join_all(
        guests
            .iter()
            .map(|(cart, token, _)| merge(cart.clone(), token.clone())),
    );
    let adds =
        futures_util::future::join_all((0..4).map(|_| add(own.clone(), own_token.clone(), 10)));
    let (merged, added) = tokio::join!(merges, adds);

    let mut expected = 1;
    for ((cart, token, units), answer) in guests.iter().zip(merged) {
        let left = call(
            &app,
            Method::GET,
            &format!("/v1/store/carts/{cart}"),
            None,
            token,
        )
        .await;
        if answer.status().as_u16() == 200 {
            expected += units;
            assert_problem(left, 404, "cart_not_found").await;
        } else {
            assert_problem(answer, 409, "cart_changed").await;
            let left = ok(left).await;
            assert_eq!(left["items"][0]["quantity"], *units, "{left}");
        }
    }
    for answer in added {
        if answer.status().as_u16() == 200 {
            expected += 10;
        } else {
            assert_problem(answer, 409, "cart_changed").await;
        }
    }
    let cart = ok(call(
        &app,
        Method::GET,
        &format!("/v1/store/carts/{own}"),
        None,
        &own_token,
    )
    .await)
    .await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1, "{cart}");
    assert_eq!(cart["items"][0]["quantity"], expected, "{cart}");
}

/// `serve --demo` on a store that has products already (after `emporium seed`, say) still seeds
/// the tax rates, shipping options and coupon a demo checkout needs, once however often it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pricing_is_seeded_on_a_store_that_has_products_once_however_often() {
    let app = TestApp::spawn().await;
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let kettle = stocked_variant(&app, &admin, "KET-D", 2_000, 10).await;

    emporium::demo::seed(app.store())
        .await
        .expect("demo seeded");
    emporium::demo::seed(app.store())
        .await
        .expect("demo seeded again");

    let (cart, token) = guest_cart(&app).await;
    let path = format!("/v1/store/carts/{cart}");
    let item = json!({"variant_id": kettle, "quantity": 1});
    ok(call(
        &app,
        Method::POST,
        &format!("{path}/items"),
        Some(&item),
        &token,
    )
    .await)
    .await;
    let details = json!({"email": "ada@example.com", "shipping_address": {"name": "Ada",
        "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}});
    let taxed = ok(call(&app, Method::PATCH, &path, Some(&details), &token).await).await;
    assert!(
        taxed["totals"]["tax_total"].as_i64().unwrap() > 0,
        "{taxed}"
    );
    let offered = ok(call(
        &app,
        Method::GET,
        &format!("{path}/shipping-options"),
        None,
        &token,
    )
    .await)
    .await;
    let names: Vec<&str> = offered
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Standard (EUR)"], "{offered}");
    let choice = json!({"option_id": offered[0]["id"]});
    ok(call(
        &app,
        Method::PUT,
        &format!("{path}/shipping-option"),
        Some(&choice),
        &token,
    )
    .await)
    .await;
    let coupon = json!({"code": "WELCOME10"});
    let discounted = ok(call(
        &app,
        Method::POST,
        &format!("{path}/coupons"),
        Some(&coupon),
        &token,
    )
    .await)
    .await;
    assert!(
        discounted["totals"]["discount_total"].as_i64().unwrap() > 0,
        "{discounted}"
    );
}

async fn a_groups_price_list_prices_the_carts_of_its_customers_only(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let kettle = stocked_variant(&app, &admin, "KET-G", 1_000, 10).await;
    let list = json!({"name": "Wholesale", "customer_groups": ["wholesale"],
        "prices": [{"variant_id": kettle, "price": {"amount": 800, "currency": "EUR"}}]});
    let r = app
        .post_json("/v1/admin/price-lists", &list, Some(&admin))
        .await;
    assert_eq!(r.status().as_u16(), 201);

    let alice_id = app.register("alice@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = app.login("alice@example.com", None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = app.customer_token("bob@example.com").await;
    // A customer's cart with one kettle; returns its path.
    let cart_of = async |token: &str| {
        let r = app
            .post_json("/v1/store/carts", &json!({}), Some(token))
            .await;
        assert_eq!(r.status().as_u16(), 201);
        let created: Value = r.json().await.unwrap();
        let path = format!(
            "/v1/store/carts/{}",
            created["cart"]["id"].as_str().unwrap()
        );
        let add = json!({"variant_id": kettle, "quantity": 1});
        let items = format!("{path}/items");
        ok(app
            .request(Method::POST, &items, Some(&add), Some(token), &[])
            .await)
        .await;
        path
    };
    let subtotal = async |path: &str, token: &str| {
        ok(app.get(path, Some(token)).await).await["totals"]["subtotal"].clone()
    };
    let alices = cart_of(&alice).await;
    let bobs = cart_of(&bob).await;
    assert_eq!(
        subtotal(&alices, &alice).await,
        1_000,
        "not in the group yet"
    );

    let groups = format!("/v1/admin/customers/{alice_id}/groups");
    let put = async |path: &str, groups: Value, token: &str| {
        let body = json!({ "groups": groups });
        app.request(Method::PUT, path, Some(&body), Some(token), &[])
            .await
    };
    let customer = ok(put(&groups, json!(["wholesale", "vip", "wholesale"]), &admin).await).await;
    assert_eq!(customer["groups"], json!(["vip", "wholesale"]));
    let read = ok(app
        .get(&format!("/v1/admin/customers/{alice_id}"), Some(&admin))
        .await)
    .await;
    assert_eq!(read["groups"], json!(["vip", "wholesale"]));

    // The group's price applies to Alice's cart at once, and to nobody else's.
    assert_eq!(subtotal(&alices, &alice).await, 800);
    assert_eq!(subtotal(&bobs, &bob).await, 1_000);
    let (guest, token) = guest_cart(&app).await;
    let add = json!({"variant_id": kettle, "quantity": 1});
    let cart = ok(call(
        &app,
        Method::POST,
        &format!("/v1/store/carts/{guest}/items"),
        Some(&add),
        &token,
    )
    .await)
    .await;
    assert_eq!(cart["totals"]["subtotal"], 1_000);

    // Bad names, too many groups, an unknown customer, a role below admin.
    let bad = put(&groups, json!(["Whole Sale", "", "x".repeat(65)]), &admin).await;
    let problem = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [
            ("/groups/0".to_owned(), "invalid_format".to_owned()),
            ("/groups/1".to_owned(), "required".to_owned()),
            ("/groups/2".to_owned(), "too_long".to_owned()),
        ]
    );
    let many: Vec<String> = (0..21).map(|i| format!("g{i}")).collect();
    let bad = put(&groups, json!(many), &admin).await;
    let problem = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [("/groups".to_owned(), "too_long".to_owned())]
    );
    let unknown = put(
        "/v1/admin/customers/cus_00000000000000000000000000000000/groups",
        json!(["vip"]),
        &admin,
    )
    .await;
    assert_problem(unknown, 404, "customer_not_found").await;
    let staff = app.staff_token("staff@example.com", Role::Staff).await;
    let refused = put(&groups, json!([]), &staff).await;
    assert_problem(refused, 403, "forbidden").await;
    assert_eq!(
        subtotal(&alices, &alice).await,
        800,
        "refused changes change nothing"
    );

    // Out of the group, back to the variant's own price.
    let r = put(&groups, json!([]), &admin).await;
    assert_eq!(ok(r).await["groups"], json!([]));
    assert_eq!(subtotal(&alices, &alice).await, 1_000);
}

/// Loads of the cart's view of products so far, by this store's catalog (not the process-wide
/// metrics, which other tests running in the process add to).
fn purchasable_loads(app: &TestApp) -> u64 {
    app.store()
        .catalog
        .as_ref()
        .expect("the catalog runs here")
        .reads
        .purchasable_loads()
}

async fn a_stock_change_keeps_the_carts_view_of_a_product_and_a_product_change_renews_it(
    app: TestApp,
) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let kettle = stocked_variant(&app, &admin, "KET-7", 3_900, 5).await;
    app.drain_outbox().await;
    let (id, token) = guest_cart(&app).await;
    let cart = ok(call(
        &app,
        Method::POST,
        &format!("/v1/store/carts/{id}/items"),
        Some(&json!({"variant_id": kettle, "quantity": 1})),
        &token,
    )
    .await)
    .await;
    let product = cart["items"][0]["product_id"].as_str().unwrap().to_owned();
    let loads = purchasable_loads(&app);
    assert!(loads >= 1, "the cart read the product");

    // More stock elsewhere: the storefront shows it, the cart reads nothing again.
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": "annex", "name": "Annex"}),
            Some(&admin),
        )
        .await;
    let annex: Value = r.json().await.unwrap();
    let r = app
        .request(
            Method::PUT,
            &format!(
                "/v1/admin/inventory/levels/{kettle}/{}",
                annex["id"].as_str().unwrap()
            ),
            Some(&json!({"on_hand": 4, "reason": "delivery"})),
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    app.drain_outbox().await;
    let shown: Value = app
        .get(&format!("/v1/store/products/{product}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["variants"][0]["available"], 9);
    let path = format!("/v1/store/carts/{id}");
    let view = async || ok(call(&app, Method::GET, &path, None, &token).await).await;
    let cart = view().await;
    assert_eq!(cart["items"][0]["product_title"], "KET-7");
    assert_eq!(purchasable_loads(&app), loads);

    // A new title: the cart's view is read again.
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/admin/products/{product}"),
            Some(&json!({"title": "Kettle, copper"})),
            Some(&admin),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    app.drain_outbox().await;
    let cart = view().await;
    assert_eq!(cart["items"][0]["product_title"], "Kettle, copper");
    assert!(purchasable_loads(&app) > loads);
}
