//! Hardening every route shares: what an unauthenticated client can make the process keep
//! (metric labels), the headers that keep browsers from sniffing, caching or framing, the answers
//! for wrong methods on guarded routes, the characters and shapes input may have, and the modes
//! of the files the server creates.

use std::collections::BTreeSet;

use emporium_kernel::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, pointers};

/// The methods that keep their own label value; every other is `other`.
const STANDARD_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// The values a label takes on the request metrics.
fn label_values(metrics: &str, label: &str) -> BTreeSet<String> {
    let prefix = format!("{label}=\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("emporium_http_request"))
        .filter_map(|l| {
            let start = l.find(&prefix)? + prefix.len();
            let len = l[start..].find('"')?;
            Some(l[start..start + len].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_method_tokens_share_one_metric_label_and_raw_paths_none() {
    let app = TestApp::spawn().await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let paths = [
        format!("/v1/store/products/prod_{marker}"),
        format!("/nowhere/{marker}"),
        "/v1/auth/register".to_owned(),
    ];
    for i in 0..300 {
        let token = format!("M{}", uuid::Uuid::new_v4().simple()).to_ascii_uppercase();
        let method = Method::from_bytes(token.as_bytes()).unwrap();
        let path = &paths[i % paths.len()];
        app.client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
    }

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let methods = label_values(&metrics, "method");
    assert!(methods.contains("other"), "{methods:?}");
    let unexpected: Vec<_> = methods
        .iter()
        .filter(|m| *m != "other" && !STANDARD_METHODS.contains(&m.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "method labels {unexpected:?}");
    assert!(!metrics.contains(&marker), "a raw path became a label");
    for route in label_values(&metrics, "route") {
        assert!(
            route == "unmatched" || route.starts_with('/'),
            "route label {route}"
        );
    }
    for status in label_values(&metrics, "status") {
        assert!(
            status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
            "status label {status}"
        );
    }
}

/// One header of a response, or `""` when absent.
fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_forbids_content_sniffing_errors_included() {
    let app = TestApp::spawn().await;
    let answers = [
        app.get("/healthz", None).await,
        app.get("/openapi.json", None).await,
        app.get("/docs/", None).await,
        app.get("/v1/store/products", None).await,
        app.get("/v1/nothing-here", None).await,
        app.client
            .delete(app.url("/v1/auth/register"))
            .send()
            .await
            .unwrap(),
        app.post_json("/v1/auth/register", &json!({"email": 7}), None)
            .await,
        app.get("/v1/admin/customers", None).await,
    ];
    for r in &answers {
        assert_eq!(
            header(r, "x-content-type-options"),
            "nosniff",
            "{} {}",
            r.url(),
            r.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_answers_are_never_stored_by_caches() {
    let app = TestApp::spawn().await;
    let staff = app.staff_token("owner@example.com", Role::Owner).await;
    let customer = app.customer_token("alice@example.com").await;
    let cart = app
        .post_json("/v1/store/carts", &json!({"currency": "EUR"}), None)
        .await;
    assert_eq!(cart.status(), StatusCode::CREATED);
    let cart_body: Value = cart.json().await.unwrap();
    let cart_path = format!(
        "/v1/store/carts/{}",
        cart_body["cart"]["id"].as_str().unwrap_or("x")
    );
    let answers = [
        app.post_json("/v1/store/carts", &json!({"currency": "EUR"}), None)
            .await,
        app.get(&cart_path, None).await,
        app.get("/v1/store/me", Some(&customer)).await,
        app.get("/v1/store/me", None).await,
        app.get("/v1/store/orders", Some(&customer)).await,
        app.post_json("/v1/auth/register", &json!({"email": 7}), None)
            .await,
        app.token_form(&[("grant_type", "password")]).await,
        app.get("/v1/admin/customers", Some(&staff)).await,
        app.get("/v1/admin/customers", None).await,
        app.get("/v1/admin/products", Some(&staff)).await,
    ];
    for r in &answers {
        assert_eq!(
            header(r, "cache-control"),
            "no-store",
            "{} {}",
            r.url(),
            r.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_catalog_reads_keep_their_caching() {
    let app = TestApp::spawn().await;
    let list = app.get("/v1/store/products", None).await;
    assert_eq!(header(&list, "cache-control"), "public, max-age=5");
    let tree = app.get("/v1/store/categories", None).await;
    assert_eq!(
        header(&tree, "cache-control"),
        "public, max-age=0, must-revalidate"
    );
    let etag = header(&tree, "etag").to_owned();
    assert!(!etag.is_empty());
    let again = app
        .request(
            Method::GET,
            "/v1/store/categories",
            None,
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_docs_page_loads_only_its_own_code_and_refuses_to_be_framed() {
    let app = TestApp::spawn().await;
    for path in [
        "/docs/",
        "/docs/swagger-initializer.js",
        "/docs/swagger-ui.css",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
        let csp = header(&r, "content-security-policy");
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for wanted in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "frame-ancestors 'none'",
        ] {
            assert!(directives.contains(&wanted), "{path}: {csp}");
        }
        assert!(!csp.contains("http"), "no remote source: {csp}");
    }
    // The page itself pulls its scripts and styles from /docs/, which the policy allows.
    let page = app.get("/docs/", None).await.text().await.unwrap();
    assert!(page.contains(r#"src="./swagger-ui-bundle.js""#));
    assert!(!page.contains("<script>"), "no inline script");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_on_an_admin_route_is_405_for_everyone() {
    let app = TestApp::spawn().await;
    let staff = app.staff_token("owner@example.com", Role::Owner).await;
    let capture = "/v1/admin/orders/ord_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f/capture";
    for token in [Some(staff.as_str()), None] {
        let r = app
            .request(Method::PUT, capture, Some(&json!({})), token, &[])
            .await;
        let allow = header(&r, "allow").to_owned();
        assert_problem(r, 405, "method_not_allowed").await;
        assert_eq!(allow, "POST");
        let r = app
            .request(Method::DELETE, "/v1/admin/customers", None, token, &[])
            .await;
        assert_problem(r, 405, "method_not_allowed").await;
    }
    // The route's own method still asks who is calling.
    let r = app
        .request(Method::POST, capture, Some(&json!({})), None, &[])
        .await;
    assert_problem(r, 401, "unauthenticated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_an_admin_read_follows_the_rule_of_get() {
    let app = TestApp::spawn().await;
    let staff = app.staff_token("owner@example.com", Role::Owner).await;
    let r = app
        .request(Method::HEAD, "/v1/admin/customers", None, Some(&staff), &[])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let customer = app.customer_token("alice@example.com").await;
    let r = app
        .request(
            Method::HEAD,
            "/v1/admin/customers",
            None,
            Some(&customer),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .request(Method::HEAD, "/v1/admin/customers", None, None, &[])
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_is_not_taken_for_an_object() {
    let app = TestApp::spawn().await;
    for (path, body) in [
        ("/v1/store/carts", json!(["EUR"])),
        ("/v1/store/carts", json!([])),
        (
            "/v1/auth/register",
            json!(["a@example.com", "correct horse battery", "A"]),
        ),
    ] {
        let r = app.post_json(path, &body, None).await;
        let problem = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(
            pointers(&problem),
            vec![(String::new(), "invalid_type".to_owned())],
            "{path} {body}"
        );
    }
}

/// serde would fill each of these structs from the array's elements in order (before, the cart
/// took the address and the price list was created); a struct refuses an array at any depth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_is_not_taken_for_a_nested_object() {
    let app = TestApp::spawn().await;
    let admin = app.staff_token("owner@example.com", Role::Owner).await;
    let cart = app
        .post_json("/v1/store/carts", &json!({"currency": "EUR"}), None)
        .await;
    let cart: Value = cart.json().await.unwrap();
    let path = format!("/v1/store/carts/{}", cart["cart"]["id"].as_str().unwrap());
    let token = cart["token"].as_str().unwrap().to_owned();
    let address = json!({"shipping_address":
        ["Erika Mustermann", "Heidestraße 17", null, "Köln", "51147", "DE", null]});
    let r = app
        .request(
            Method::PATCH,
            &path,
            Some(&address),
            None,
            &[("x-cart-token", &token)],
        )
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        vec![("/shipping_address".to_owned(), "invalid_type".to_owned())]
    );
    let r = app
        .request(Method::GET, &path, None, None, &[("x-cart-token", &token)])
        .await;
    let cart: Value = r.json().await.unwrap();
    assert_eq!(cart["shipping_address"], Value::Null);

    let list = json!({"name": "Sale", "prices": [
        {"variant_id": "var_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f", "price": [900, "EUR"]}]});
    let r = app
        .post_json("/v1/admin/price-lists", &list, Some(&admin))
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        vec![("/prices/0/price".to_owned(), "invalid_type".to_owned())]
    );
    let list = json!({"name": "Sale", "prices": [["var_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"]]});
    let r = app
        .post_json("/v1/admin/price-lists", &list, Some(&admin))
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        vec![("/prices/0".to_owned(), "invalid_type".to_owned())]
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_data_folder_and_its_database_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |config| {
        config.data_dir = config.data_dir.join("fresh");
    })
    .await;
    // A write, so the write-ahead log has content.
    app.register("alice@example.com").await;
    let mode = |path: std::path::PathBuf| {
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        meta.permissions().mode() & 0o777
    };
    let dir = app.config.data_dir.clone();
    assert_eq!(mode(dir.clone()), 0o700, "data folder");
    for file in ["emporium.db", "emporium.db-wal", "emporium.db-shm"] {
        assert_eq!(mode(dir.join(file)), 0o600, "{file}");
    }
}

/// Asserts a 422 naming `pointer` with `invalid_format`.
async fn assert_invalid_characters(r: reqwest::Response, pointer: &str) {
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert!(
        pointers(&problem).contains(&(pointer.to_owned(), "invalid_format".to_owned())),
        "{pointer} in {problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_and_control_characters_are_refused_in_text_fields() {
    let app = TestApp::spawn().await;
    let admin = app.staff_token("owner@example.com", Role::Owner).await;
    let product = |title: &str, handle: &str, sku: &str, option: &str| {
        json!({"title": title, "handle": handle,
               "options": [{"name": option, "values": ["S"]}],
               "variants": [{"sku": sku, "options": {option: "S"},
                             "prices": [{"currency": "EUR", "amount": 100}]}]})
    };
    let admin_cases = [
        (
            "/v1/admin/products",
            product("Shirt\u{0}", "shirt", "S-1", "Size"),
            "/title",
        ),
        (
            "/v1/admin/products",
            product("Shirt", "shirt\u{7}", "S-1", "Size"),
            "/handle",
        ),
        (
            "/v1/admin/products",
            product("Shirt", "shirt", "S-1\u{1b}", "Size"),
            "/variants/0/sku",
        ),
        (
            "/v1/admin/products",
            product("Shirt", "shirt", "S-1", "Si\nze"),
            "/options/0/name",
        ),
        (
            "/v1/admin/categories",
            json!({"name": "Shirts\u{0}"}),
            "/name",
        ),
        (
            "/v1/admin/shipping-options",
            json!({"name": "DHL\u{8}", "countries": ["DE"],
                   "rate": {"type": "flat", "price": {"amount": 500, "currency": "EUR"}}}),
            "/name",
        ),
        (
            "/v1/admin/promotions",
            json!({"name": "ten\u{0} off", "needs_coupon": true,
                   "benefit": {"type": "order_percent", "basis_points": 1000}}),
            "/name",
        ),
        (
            "/v1/admin/price-lists",
            json!({"name": "Whole\u{0}sale", "customer_groups": ["wholesale"], "prices": []}),
            "/name",
        ),
        (
            "/v1/admin/coupons",
            json!({"code": "SAVE\u{0}10", "promotion_id": "promo_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"}),
            "/code",
        ),
        (
            "/v1/admin/orders/ord_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f/cancel",
            json!({"reason": "fraud\u{0}"}),
            "/reason",
        ),
        (
            "/v1/admin/orders/ord_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f/ship",
            json!({"tracking_number": "1Z\u{1b}[2J"}),
            "/tracking_number",
        ),
    ];
    for (path, body, pointer) in admin_cases {
        let r = app.post_json(path, &body, Some(&admin)).await;
        assert_invalid_characters(r, pointer).await;
    }
    // A description may span lines, but holds no other control character.
    let mut multi_line = product("Shirt", "shirt", "S-1", "Size");
    multi_line["description"] = json!("Linen.\r\n\tSoft.");
    let r = app
        .post_json("/v1/admin/products", &multi_line, Some(&admin))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    multi_line["description"] = json!("Linen.\u{0}");
    multi_line["handle"] = json!("shirt-2");
    multi_line["variants"][0]["sku"] = json!("S-2");
    let r = app
        .post_json("/v1/admin/products", &multi_line, Some(&admin))
        .await;
    assert_invalid_characters(r, "/description").await;

    let cart = app
        .post_json("/v1/store/carts", &json!({"currency": "EUR"}), None)
        .await;
    let cart: Value = cart.json().await.unwrap();
    let path = format!("/v1/store/carts/{}", cart["cart"]["id"].as_str().unwrap());
    let token = cart["token"].as_str().unwrap().to_owned();
    let address = |name: &str, city: &str| {
        json!({"email": "guest@example.com", "shipping_address": {
            "name": name, "line1": "Heidestraße 17", "city": city,
            "postal_code": "51147", "country": "DE"}})
    };
    for (body, pointer) in [
        (address("Erika\u{0}", "Köln"), "/shipping_address/name"),
        (address("Erika", "Kö\u{85}ln"), "/shipping_address/city"),
        (json!({"email": "guest\u{0}@example.com"}), "/email"),
    ] {
        let r = app
            .request(
                Method::PATCH,
                &path,
                Some(&body),
                None,
                &[("x-cart-token", &token)],
            )
            .await;
        assert_invalid_characters(r, pointer).await;
    }
}
