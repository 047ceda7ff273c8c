//! The admin routes a back-office dashboard and its lists read: the order summary since a
//! moment (`GET /v1/admin/orders/summary`), orders placed within a time range, and the variants
//! low on stock (`GET /v1/admin/inventory/low-stock`).

use emporium_kernel::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::checkout::{check_out, ready_cart, shop};
use crate::helpers::{TestApp, assert_problem, pointers};
use crate::on_both_backends;

on_both_backends!(
    the_order_summary_counts_orders_since_a_moment_and_their_revenue,
    staff_list_the_orders_placed_within_a_time_range,
    low_stock_lists_variants_below_the_threshold_fewest_first,
);

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn the_order_summary_counts_orders_since_a_moment_and_their_revenue(app: TestApp) {
    let shop = shop(&app, 10, 10).await;
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let mut totals = 0;
    for (i, quantity) in [1, 2].into_iter().enumerate() {
        let (cart, token) = ready_cart(&app, &shop, quantity, false).await;
        let r = check_out(&app, &cart, &token, &format!("key-{i}"), "tok_success").await;
        let placed: Value = r.json().await.unwrap();
        totals += placed["order"]["total"].as_i64().unwrap();
    }
    let staff = app.staff_token("clerk@example.com", Role::Staff).await;
    let since = before
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();

    let r = app
        .get(
            &format!("/v1/admin/orders/summary?since={}", urlencode(&since)),
            Some(&staff),
        )
        .await;
    assert_eq!(r.status(), 200);
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["orders"], 2);
    assert_eq!(
        summary["revenue"],
        json!([{"amount": totals, "currency": "EUR"}])
    );

    // A cancelled order still counts as placed but takes nothing; a refund takes its amount
    // off the revenue.
    let mut ids = Vec::new();
    for i in 2..4 {
        let (cart, token) = ready_cart(&app, &shop, 1, false).await;
        let r = check_out(&app, &cart, &token, &format!("key-{i}"), "tok_success").await;
        let placed: Value = r.json().await.unwrap();
        ids.push(placed["order"]["id"].as_str().unwrap().to_owned());
        totals += placed["order"]["total"].as_i64().unwrap();
    }
    let admin = app.staff_token("refunds@example.com", Role::Admin).await;
    let cancelled_total = {
        let r = app
            .post_json(
                &format!("/v1/admin/orders/{}/cancel", ids[0]),
                &json!({"reason": "customer asked"}),
                Some(&admin),
            )
            .await;
        assert_eq!(r.status(), 200);
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["status"], "cancelled");
        order["total"].as_i64().unwrap()
    };
    let r = app
        .post_json(
            &format!("/v1/admin/orders/{}/capture", ids[1]),
            &json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_json(
            &format!("/v1/admin/orders/{}/refund", ids[1]),
            &json!({"amount": 150}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .get(
            &format!("/v1/admin/orders/summary?since={}", urlencode(&since)),
            Some(&staff),
        )
        .await;
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["orders"], 4);
    assert_eq!(
        summary["revenue"],
        json!([{"amount": totals - cancelled_total - 150, "currency": "EUR"}])
    );

    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = app
        .get(
            &format!("/v1/admin/orders/summary?since={}", urlencode(&later)),
            Some(&staff),
        )
        .await;
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["orders"], 0);
    assert_eq!(summary["revenue"], json!([]));

    let r = app
        .get("/v1/admin/orders/summary?since=yesterday", Some(&staff))
        .await;
    assert_problem(r, 422, "validation_failed").await;
    let r = app.get("/v1/admin/orders/summary", None).await;
    assert_problem(r, 401, "unauthenticated").await;
}

async fn low_stock_lists_variants_below_the_threshold_fewest_first(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": "main", "name": "Main"}),
            Some(&admin),
        )
        .await;
    let location: Value = r.json().await.unwrap();
    let location = location["id"].as_str().unwrap().to_owned();
    let mut variants = Vec::new();
    for (i, on_hand) in [9, 2, 0, 2, 50].into_iter().enumerate() {
        let product = crate::catalog::create_product(
            &app,
            &admin,
            crate::catalog::simple_product(&format!("Thing {i}"), &format!("TH-{i}"), 100, &[]),
        )
        .await;
        let variant = product["variants"][0]["id"].as_str().unwrap().to_owned();
        let r = app
            .request(
                Method::PUT,
                &format!("/v1/admin/inventory/levels/{variant}/{location}"),
                Some(&json!({"on_hand": on_hand})),
                Some(&admin),
                &[],
            )
            .await;
        assert_eq!(r.status(), 200);
        variants.push(variant);
    }

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = app
            .get(
                &format!("/v1/admin/inventory/low-stock?below=3&limit=1{cursor}"),
                Some(&admin),
            )
            .await;
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push((
                item["variant_id"].as_str().unwrap().to_owned(),
                item["available"].as_i64().unwrap(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let mut twos = [variants[1].clone(), variants[3].clone()];
    twos.sort();
    assert_eq!(
        seen,
        vec![
            (variants[2].clone(), 0),
            (twos[0].clone(), 2),
            (twos[1].clone(), 2)
        ]
    );

    let r = app
        .get(
            "/v1/admin/inventory/low-stock?below=0&limit=0",
            Some(&admin),
        )
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    let at: Vec<String> = pointers(&problem).into_iter().map(|(p, _)| p).collect();
    assert_eq!(at, vec!["/below".to_owned(), "/limit".to_owned()]);
}

async fn staff_list_the_orders_placed_within_a_time_range(app: TestApp) {
    let shop = shop(&app, 10, 10).await;
    let rfc3339 = |t: time::OffsetDateTime| {
        urlencode(
            &t.format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        )
    };
    let before = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::seconds(5));
    for i in 0..2 {
        let (cart, token) = ready_cart(&app, &shop, 1, false).await;
        let r = check_out(&app, &cart, &token, &format!("range-{i}"), "tok_success").await;
        assert_eq!(r.status(), 201);
    }
    let after = rfc3339(time::OffsetDateTime::now_utc() + time::Duration::seconds(5));
    let staff = app.staff_token("clerk@example.com", Role::Staff).await;
    let count = |query: String| {
        let (app, staff) = (&app, &staff);
        async move {
            let r = app
                .get(&format!("/v1/admin/orders?{query}"), Some(staff))
                .await;
            assert_eq!(r.status(), 200, "{query}");
            let page: Value = r.json().await.unwrap();
            page["items"].as_array().unwrap().len()
        }
    };

    assert_eq!(count(format!("placed_since={before}")).await, 2);
    assert_eq!(
        count(format!("placed_since={before}&placed_before={after}")).await,
        2
    );
    assert_eq!(count(format!("placed_before={before}")).await, 0);
    assert_eq!(count(format!("placed_since={after}")).await, 0);
    assert_eq!(count(format!("placed_since={before}&status=paid")).await, 0);
    let r = app
        .get("/v1/admin/orders?placed_since=today", Some(&staff))
        .await;
    assert_problem(r, 422, "validation_failed").await;
}
