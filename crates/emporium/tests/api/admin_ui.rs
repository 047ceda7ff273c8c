//! The staff web UI at `/admin`, driven over HTTP like a browser (a cookie jar, forms, no
//! redirects followed): sign-in, the session cookie, CSRF and origin checks, the security
//! headers, the API's permissions showing through, escaping.

use emporium_kernel::auth::Role;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::checkout::{check_out, ready_cart, shop};
use crate::helpers::{PASSWORD, TestApp};

/// The hostile title of the escaping test.
const XSS: &str = r#"<script>alert(1)</script>"'><img src=x onerror=alert(1)>"#;

/// A browser: a cookie jar, no redirects followed, `Origin` sent on forms as browsers do.
pub(crate) struct Browser {
    client: Client,
    base: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            client: Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn get_html(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in through the form; panics unless it leads to the dashboard.
    async fn sign_in(&self, email: &str, password: &str) {
        let r = self.sign_in_answer(email, password).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "sign-in of {email}");
        assert_eq!(r.headers()[LOCATION], "/admin");
    }

    async fn sign_in_answer(&self, email: &str, password: &str) -> Response {
        let page = self.get_html("/admin/login").await;
        let token = csrf_of(&page);
        self.post(
            "/admin/login",
            &[("_csrf", &token), ("email", email), ("password", password)],
        )
        .await
    }
}

/// The value of the first `_csrf` field of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="_csrf" value=""#).expect("a CSRF field");
    let rest = &html[at + r#"name="_csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A staff user of `role` signed in through the UI.
pub(crate) async fn signed_in(app: &TestApp, email: &str, role: Role) -> Browser {
    app.staff_token(email, role).await;
    let browser = Browser::new(app);
    browser.sign_in(email, PASSWORD).await;
    browser
}

async fn products_titled(app: &TestApp, token: &str, title: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/v1/admin/products?q={}", urlencode(title)),
            Some(token),
        )
        .await;
    let page: Value = r.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_shows_an_error_and_starts_no_session() {
    let app = TestApp::spawn().await;
    app.staff_token("owner@example.com", Role::Owner).await;
    let browser = Browser::new(&app);

    let r = browser
        .sign_in_answer("owner@example.com", "not the password")
        .await;

    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()
            .get_all(SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("emporium_admin="))
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("Wrong e-mail address or password"), "{html}");
    assert!(
        html.contains(r#"value="owner@example.com""#),
        "the form is refilled"
    );
    let r = browser.get("/admin").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_without_a_session_send_the_browser_to_sign_in() {
    let app = TestApp::spawn().await;
    let browser = Browser::new(&app);
    for path in ["/admin", "/admin/products", "/admin/orders", "/admin/users"] {
        let r = browser.get(path).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[LOCATION], "/admin/login", "{path}");
    }
    let r = browser
        .post("/admin/products", &[("title", "Sneaky")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_the_right_csrf_token_or_origin_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let browser = signed_in(&app, "owner@example.com", Role::Owner).await;
    let token = csrf_of(&browser.get_html("/admin/products/new").await);
    let api = app.login("owner@example.com", Some("admin")).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let without = browser
        .post(
            "/admin/products",
            &[("title", "Forged one"), ("status", "draft")],
        )
        .await;
    let wrong = browser
        .post(
            "/admin/products",
            &[
                ("_csrf", "x".repeat(token.len()).as_str()),
                ("title", "Forged two"),
                ("status", "draft"),
            ],
        )
        .await;
    let cross_origin = browser
        .client
        .post(format!("{}/admin/products", app.base))
        .header("origin", "http://evil.example")
        .form(&[
            ("_csrf", token.as_str()),
            ("title", "Forged three"),
            ("status", "draft"),
        ])
        .send()
        .await
        .unwrap();
    let login_forged = Browser::new(&app)
        .post(
            "/admin/login",
            &[("email", "owner@example.com"), ("password", PASSWORD)],
        )
        .await;

    for r in [without, wrong, cross_origin, login_forged] {
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().contains_key(CONTENT_SECURITY_POLICY));
        assert!(r.text().await.unwrap().contains("This form was refused"));
    }
    assert!(products_titled(&app, &api, "Forged").await.is_empty());
    // The right token from the same origin goes through.
    let r = browser
        .post(
            "/admin/products",
            &[
                ("_csrf", token.as_str()),
                ("title", "Forged not"),
                ("status", "draft"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(products_titled(&app, &api, "Forged not").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_under_admin_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let anonymous = Browser::new(&app);
    let browser = signed_in(&app, "owner@example.com", Role::Owner).await;
    let html = browser.get_html("/admin").await;
    let css = html
        .split('"')
        .find(|s| s.starts_with("/admin/assets/") && s.ends_with(".css"))
        .expect("a stylesheet link")
        .to_owned();

    let mut answers = Vec::new();
    for path in [
        "/admin",
        "/admin/products",
        "/admin/products/new",
        "/admin/orders",
        "/admin/customers",
        "/admin/promotions",
        "/admin/coupons",
        "/admin/price-lists",
        "/admin/users",
        "/admin/no-such-page",
        "/admin/products/prod_00000000-0000-0000-0000-000000000000",
    ] {
        answers.push((path.to_owned(), browser.get(path).await));
    }
    answers.push(("login".to_owned(), anonymous.get("/admin/login").await));
    answers.push(("anonymous".to_owned(), anonymous.get("/admin").await));
    answers.push((css.clone(), browser.get(&css).await));

    for (path, r) in answers {
        let h = r.headers();
        assert_eq!(
            h[CONTENT_SECURITY_POLICY],
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'",
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        let cache = h["cache-control"].to_str().unwrap();
        if path.starts_with("/admin/assets/") {
            assert!(cache.contains("max-age=31536000"), "{path}: {cache}");
        } else {
            assert_eq!(cache, "no-store", "{path}");
        }
        assert!(r.status() != StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_http_only_strict_and_scoped_to_admin() {
    let app = TestApp::spawn().await;
    app.staff_token("owner@example.com", Role::Owner).await;
    let browser = Browser::new(&app);

    let r = browser.sign_in_answer("owner@example.com", PASSWORD).await;

    let cookie = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("emporium_admin="))
        .expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    // Behind a TLS proxy the cookie is Secure.
    let r = browser
        .client
        .get(format!("{}/admin/login", app.base))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let login_cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_role_gets_the_may_not_page_where_the_api_forbids() {
    let app = TestApp::spawn().await;
    let browser = signed_in(&app, "staff@example.com", Role::Staff).await;

    let r = browser.get("/admin/users").await;

    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = r.text().await.unwrap();
    assert!(html.contains("You may not do this"), "{html}");
    // The navigation does not offer what the role may not open.
    let dashboard = browser.get_html("/admin").await;
    assert!(!dashboard.contains(r#"href="/admin/users""#));
    // What the role may do still works.
    browser.get_html("/admin/orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_created_through_the_form_is_found_through_the_api() {
    let app = TestApp::spawn().await;
    let browser = signed_in(&app, "owner@example.com", Role::Owner).await;
    let admin = app.login("owner@example.com", Some("admin")).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": "main", "name": "Main"}),
            Some(&admin),
        )
        .await;
    let location: Value = r.json().await.unwrap();
    let page = browser.get_html("/admin/products/new").await;
    let token = csrf_of(&page);

    let r = browser
        .post(
            "/admin/products",
            &[
                ("_csrf", token.as_str()),
                ("title", "Enamel mug"),
                ("description", "Holds tea."),
                ("status", "published"),
                ("options", "Colour: Blue, Red"),
                ("sku", "MUG-BLUE"),
                ("variant_options", "Colour=Blue"),
                ("price", "12.50"),
                ("currency", "EUR"),
                ("on_hand", "7"),
                ("location_id", location["id"].as_str().unwrap()),
            ],
        )
        .await;

    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let found = products_titled(&app, &admin, "Enamel mug").await;
    assert_eq!(found.len(), 1);
    let product = &found[0];
    assert!(to.starts_with(&format!(
        "/admin/products/{}",
        product["id"].as_str().unwrap()
    )));
    assert_eq!(product["status"], "published");
    let variant = &product["variants"][0];
    assert_eq!(variant["sku"], "MUG-BLUE");
    assert_eq!(
        variant["prices"],
        json!([{"amount": 1250, "currency": "EUR"}])
    );
    let r = app
        .get(
            &format!(
                "/v1/admin/inventory/levels?variant_id={}",
                variant["id"].as_str().unwrap()
            ),
            Some(&admin),
        )
        .await;
    let stock: Value = r.json().await.unwrap();
    assert_eq!(stock["on_hand"], 7);
    let html = browser.get_html(&to).await;
    assert!(html.contains("Created."));
    assert!(html.contains("MUG-BLUE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_shown_beside_its_field_with_the_form_refilled() {
    let app = TestApp::spawn().await;
    let browser = signed_in(&app, "owner@example.com", Role::Owner).await;
    let token = csrf_of(&browser.get_html("/admin/products/new").await);

    let r = browser
        .post(
            "/admin/products",
            &[
                ("_csrf", token.as_str()),
                ("title", ""),
                ("handle", "Not A Handle"),
                ("description", "kept"),
                ("status", "draft"),
            ],
        )
        .await;

    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="f-title-error""#), "{html}");
    assert!(html.contains(r#"id="f-handle-error""#), "{html}");
    assert!(html.contains(r#"value="Not A Handle""#));
    assert!(html.contains(">kept</textarea>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_product_title_is_escaped_on_every_page() {
    let app = TestApp::spawn().await;
    let browser = signed_in(&app, "owner@example.com", Role::Owner).await;
    let token = csrf_of(&browser.get_html("/admin/products/new").await);
    let r = browser
        .post(
            "/admin/products",
            &[
                ("_csrf", token.as_str()),
                ("title", XSS),
                ("description", XSS),
                ("status", "draft"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let product_page = r.headers()[LOCATION].to_str().unwrap().to_owned();

    for path in [product_page.as_str(), "/admin/products"] {
        let html = browser.get_html(path).await;
        assert!(!html.contains(XSS), "{path} holds the raw title");
        assert!(!html.contains("<script>alert"), "{path}");
        assert!(!html.contains("<img src=x"), "{path}");
        assert!(
            html.contains(
                "&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&gt;&lt;img src=x onerror=alert(1)&gt;"
            ),
            "{path} lacks the escaped title"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_of_a_stale_session_refresh_it_once() {
    // A 60 s access token is always within the refresh margin: every request refreshes.
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.auth.access_token_ttl_secs = 60;
    })
    .await;
    let browser = signed_in(&app, "owner@example.com", Role::Owner).await;

    let answers =
        futures_util::future::join_all((0..6).map(|_| browser.get("/admin/orders"))).await;

    let mut cookies = Vec::new();
    for r in answers {
        assert_eq!(r.status(), StatusCode::OK);
        let cookie = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with("emporium_admin="))
            .expect("a renewed cookie");
        cookies.push(cookie);
    }
    cookies.dedup();
    assert_eq!(cookies.len(), 1, "every racer got the same new tokens");
    // The session survived: no refresh token was used twice.
    assert_eq!(browser.get("/admin/orders").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_at_the_api() {
    let app = TestApp::spawn().await;
    let browser = signed_in(&app, "owner@example.com", Role::Owner).await;
    let token = csrf_of(&browser.get_html("/admin").await);

    let r = browser
        .post("/admin/logout", &[("_csrf", token.as_str())])
        .await;

    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/admin/login");
    assert_eq!(browser.get("/admin").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_capture_and_ship_an_order_from_its_page() {
    let app = TestApp::spawn().await;
    let shop = shop(&app, 5, 10).await;
    let (cart, cart_token) = ready_cart(&app, &shop, 1, false).await;
    let placed: Value = check_out(&app, &cart, &cart_token, "k1", "tok_success")
        .await
        .json()
        .await
        .unwrap();
    let order = placed["order"]["id"].as_str().unwrap().to_owned();
    app.drain_outbox().await;
    let browser = signed_in(&app, "staff@example.com", Role::Staff).await;
    let today = time::OffsetDateTime::now_utc().date();
    let list = browser
        .get_html(&format!(
            "/admin/orders?from={today}&to={today}&status=placed"
        ))
        .await;
    assert!(list.contains(&order), "today's placed orders hold it");
    let list = browser
        .get_html("/admin/orders?from=2000-01-01&to=2000-01-31")
        .await;
    assert!(!list.contains(&order) && list.contains("No orders."));
    let page = browser.get_html(&format!("/admin/orders/{order}")).await;
    // The journal is for admins: a staff user sees the order without its history.
    assert!(page.contains("The event history is not available to your role."));
    let token = csrf_of(&page);

    for (action, fields) in [
        ("capture", vec![]),
        ("fulfill", vec![]),
        ("ship", vec![("tracking_number", "TRACK-1")]),
    ] {
        let mut form = vec![("_csrf", token.as_str())];
        form.extend(fields);
        let r = browser
            .post(&format!("/admin/orders/{order}/{action}"), &form)
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{action}");
    }
    // Refunds are for admins: the API refuses a staff user, and the UI says so.
    let r = browser
        .post(
            &format!("/admin/orders/{order}/refund"),
            &[("_csrf", token.as_str()), ("amount", "1.00")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let html = browser.get_html(&format!("/admin/orders/{order}")).await;
    assert!(
        html.contains(r#"<span class="status" id="order-status">shipped</span>"#),
        "{html}"
    );
    assert!(html.contains("TRACK-1"));
    app.drain_outbox().await;
    let admin = signed_in(&app, "admin2@example.com", Role::Admin).await;
    let html = admin.get_html(&format!("/admin/orders/{order}")).await;
    for event in [
        "order.placed",
        "order.changed</code> (paid)",
        "order.changed</code> (shipped)",
    ] {
        assert!(html.contains(event), "the history shows {event}");
    }
}

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_uploaded_through_the_form_is_attached_only_with_the_csrf_token() {
    let app = TestApp::spawn().await;
    let browser = signed_in(&app, "owner@example.com", Role::Owner).await;
    let token = csrf_of(&browser.get_html("/admin/products/new").await);
    let r = browser
        .post(
            "/admin/products",
            &[
                ("_csrf", token.as_str()),
                ("title", "Framed print"),
                ("status", "draft"),
            ],
        )
        .await;
    let page = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let path = page.split('?').next().unwrap().to_owned();
    let upload = |csrf: String| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(PNG.to_vec())
                    .file_name("dot.png")
                    .mime_str("image/png")
                    .unwrap(),
            )
            .text("alt", "A red dot");
        browser
            .client
            .post(format!("{}{path}/media?_csrf={csrf}", app.base))
            .header("origin", &app.base)
            .multipart(form)
            .send()
    };

    let forged = upload("wrong".to_owned()).await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let r = upload(token.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let html = browser.get_html(&path).await;
    assert!(html.contains(r#"alt="A red dot""#), "{html}");
    assert_eq!(
        html.matches("<figure").count(),
        1,
        "one image, the forged one refused"
    );
}
