//! Identity over HTTP: registration, the token endpoint's three grants, logout, roles, API
//! clients and throttling, with their bad inputs. Storage-touching suites run on both backends.

use base64::Engine;
use emporium_kernel::auth::Role;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem, pointers};
use crate::on_both_backends;

on_both_backends!(
    registration_normalises_the_email_and_refuses_duplicates,
    the_password_policy_is_enforced,
    a_password_grant_gives_tokens_that_open_the_customer_profile,
    wrong_credentials_get_the_same_answer_whether_or_not_the_account_exists,
    refresh_tokens_rotate_and_reuse_revokes_the_family,
    logout_revokes_the_refresh_family,
    api_clients_get_scoped_tokens_with_client_credentials,
    admin_routes_check_the_role_in_one_place,
    the_last_owner_cannot_be_demoted_or_removed,
    customers_are_listed_with_a_cursor_and_searched_by_email,
    concurrent_registrations_of_one_email_create_one_account,
    a_refresh_token_raced_by_many_requests_is_honoured_at_most_once,
);

async fn registration_normalises_the_email_and_refuses_duplicates(app: TestApp) {
    let created = app.register("  Ada.Lovelace@Example.COM ").await;
    assert_eq!(created["email"], "ada.lovelace@example.com");
    assert!(created["id"].as_str().unwrap().starts_with("cus_"));
    assert!(created.get("password_hash").is_none());
    let r = app
        .post_json(
            "/v1/auth/register",
            &json!({"email": "ADA.lovelace@example.com", "password": PASSWORD, "name": "Other"}),
            None,
        )
        .await;
    assert_problem(r, 409, "email_taken").await;
}

async fn the_password_policy_is_enforced(app: TestApp) {
    let cases = [
        ("short", "too_short"),
        ("aaaaaaaaaaaaaa", "too_common"),
        ("password123", "too_common"),
        ("pat@example.com", "matches_email"),
    ];
    for (password, code) in cases {
        let r = app
            .post_json(
                "/v1/auth/register",
                &json!({"email": "pat@example.com", "password": password, "name": "Pat"}),
                None,
            )
            .await;
        let body = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(
            pointers(&body),
            vec![("/password".to_owned(), code.to_owned())],
            "{password}"
        );
    }
    let r = app
        .post_json(
            "/v1/auth/register",
            &json!({"email": "pat@example.com", "password": "x".repeat(129), "name": "Pat"}),
            None,
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
    // Nothing was half-written: the address is still free.
    app.register("pat@example.com").await;
}

fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap()
}

async fn a_password_grant_gives_tokens_that_open_the_customer_profile(app: TestApp) {
    let customer = app.register("kim@example.com").await;
    let r = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "KIM@example.com"),
            ("password", PASSWORD),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "store");
    assert_eq!(tokens["expires_in"], 900);
    assert!(
        tokens["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 43)
    );
    let access = tokens["access_token"].as_str().unwrap();
    let header = jwt_header(access);
    assert_eq!(header["alg"], "EdDSA");
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .any(|k| k["kid"] == header["kid"] && k["crv"] == "Ed25519" && k["kty"] == "OKP")
    );
    let me: Value = app
        .get("/v1/store/me", Some(access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], customer["id"]);
    assert_eq!(me["email"], "kim@example.com");

    // No token, a forged one, a malformed header.
    let r = app.get("/v1/store/me", None).await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_problem(r, 401, "unauthenticated").await;
    let mut forged = access.to_owned();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let r = app.get("/v1/store/me", Some(&forged)).await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_problem(r, 401, "token_invalid").await;
    let r = app
        .client
        .get(app.url("/v1/store/me"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthenticated").await;
    // A staff token is not a customer.
    let staff = app.staff_token("clerk@example.com", Role::Staff).await;
    assert_problem(
        app.get("/v1/store/me", Some(&staff)).await,
        403,
        "customer_token_required",
    )
    .await;
}

async fn oauth_error(r: reqwest::Response, status: u16, error: &str) {
    assert_eq!(r.status().as_u16(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

async fn wrong_credentials_get_the_same_answer_whether_or_not_the_account_exists(app: TestApp) {
    app.register("lee@example.com").await;
    let wrong = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "lee@example.com"),
            ("password", "not the password"),
        ])
        .await;
    let absent = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "nobody@example.com"),
            ("password", "not the password"),
        ])
        .await;
    assert_eq!(wrong.status(), absent.status());
    let (wrong, absent): (Value, Value) =
        (wrong.json().await.unwrap(), absent.json().await.unwrap());
    assert_eq!(wrong, absent);
    assert_eq!(wrong["error"], "invalid_grant");
    // A customer cannot sign in to the back office.
    oauth_error(
        app.token_form(&[
            ("grant_type", "password"),
            ("username", "lee@example.com"),
            ("password", PASSWORD),
            ("scope", "admin"),
        ])
        .await,
        400,
        "invalid_grant",
    )
    .await;
    // Bad requests to the token endpoint.
    oauth_error(
        app.token_form(&[("username", "lee@example.com")]).await,
        400,
        "invalid_request",
    )
    .await;
    oauth_error(
        app.token_form(&[("grant_type", "authorization_code")])
            .await,
        400,
        "unsupported_grant_type",
    )
    .await;
    oauth_error(
        app.token_form(&[("grant_type", "password"), ("username", "lee@example.com")])
            .await,
        400,
        "invalid_request",
    )
    .await;
    oauth_error(
        app.token_form(&[
            ("grant_type", "password"),
            ("username", "lee@example.com"),
            ("password", PASSWORD),
            ("scope", "store root"),
        ])
        .await,
        400,
        "invalid_scope",
    )
    .await;
    oauth_error(
        app.token_form(&[("grant_type", "password"), ("grant_type", "password")])
            .await,
        400,
        "invalid_request",
    )
    .await;
    let r = app
        .post_json("/v1/auth/token", &json!({"grant_type": "password"}), None)
        .await;
    oauth_error(r, 400, "invalid_request").await;
    oauth_error(
        app.token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "made-up"),
        ])
        .await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_family(app: TestApp) {
    app.register("ray@example.com").await;
    let first = app.login("ray@example.com", None).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let second: Value = app
        .token_form(&[("grant_type", "refresh_token"), ("refresh_token", r1)])
        .await
        .json()
        .await
        .unwrap();
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(
        app.get("/v1/store/me", second["access_token"].as_str())
            .await
            .status(),
        StatusCode::OK
    );
    // Widening the scope on refresh is refused, and the refused request changes nothing.
    oauth_error(
        app.token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r2),
            ("scope", "admin"),
        ])
        .await,
        400,
        "invalid_scope",
    )
    .await;
    let third: Value = app
        .token_form(&[("grant_type", "refresh_token"), ("refresh_token", &r2)])
        .await
        .json()
        .await
        .unwrap();
    let r3 = third["refresh_token"]
        .as_str()
        .expect("r2 still worked once")
        .to_owned();
    // Replaying a used token (stolen?) kills the family: the newest token dies too.
    oauth_error(
        app.token_form(&[("grant_type", "refresh_token"), ("refresh_token", r1)])
            .await,
        400,
        "invalid_grant",
    )
    .await;
    oauth_error(
        app.token_form(&[("grant_type", "refresh_token"), ("refresh_token", &r3)])
            .await,
        400,
        "invalid_grant",
    )
    .await;
    // Other sessions live on.
    let other = app.login("ray@example.com", None).await;
    let r = app
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", other["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn logout_revokes_the_refresh_family(app: TestApp) {
    app.register("liv@example.com").await;
    let tokens = app.login("liv@example.com", None).await;
    let access = tokens["access_token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    oauth_error(
        app.token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await,
        400,
        "invalid_grant",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthenticated").await;
}

async fn api_clients_get_scoped_tokens_with_client_credentials(app: TestApp) {
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let r = app
        .post_json(
            "/v1/admin/api-clients",
            &json!({"name": "ERP sync", "scopes": ["customers:read"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cli_") && secret.starts_with("sec_"));
    let listed: Value = app
        .get("/v1/admin/api-clients", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once only"
    );

    // HTTP Basic and form credentials both work; no refresh token.
    let basic = app
        .client
        .post(app.url("/v1/auth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
    let token: Value = basic.json().await.unwrap();
    assert!(token.get("refresh_token").is_none());
    assert_eq!(token["scope"], "customers:read");
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let client_token = token["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/admin/customers", Some(client_token))
            .await
            .status(),
        StatusCode::OK
    );
    assert_problem(
        app.get("/v1/admin/users", Some(client_token)).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get("/v1/admin/events", Some(client_token)).await,
        403,
        "forbidden",
    )
    .await;

    // Wrong secret, unknown client, scope beyond the grant, both credential forms at once.
    let r = app
        .client
        .post(app.url("/v1/auth/token"))
        .basic_auth(&id, Some("sec_wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    oauth_error(r, 401, "invalid_client").await;
    oauth_error(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cli_nope"),
            ("client_secret", "x"),
        ])
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        app.token_form(&[("grant_type", "client_credentials")])
            .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "events:read"),
        ])
        .await,
        400,
        "invalid_scope",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/auth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request").await;

    // Bad client definitions.
    let r = app
        .post_json(
            "/v1/admin/api-clients",
            &json!({"name": "", "scopes": ["root"]}),
            Some(&admin),
        )
        .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&body),
        vec![
            ("/name".into(), "required".into()),
            ("/scopes".into(), "invalid_value".into())
        ]
    );
    let r = app
        .post_json(
            "/v1/admin/api-clients",
            &json!({"name": "x", "scopes": []}),
            Some(&admin),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;

    // Revocation: no new tokens; revoking twice is fine; an unknown client is 404.
    let r = app
        .client
        .delete(app.url(&format!("/v1/admin/api-clients/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .client
        .delete(app.url(&format!("/v1/admin/api-clients/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    oauth_error(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .await,
        401,
        "invalid_client",
    )
    .await;
    let r = app
        .client
        .delete(app.url("/v1/admin/api-clients/cli_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "api_client_not_found").await;
}

async fn admin_routes_check_the_role_in_one_place(app: TestApp) {
    let customer = app.customer_token("cat@example.com").await;
    let staff = app.staff_token("staff@example.com", Role::Staff).await;
    let admin = app.staff_token("admin@example.com", Role::Admin).await;
    let owner = app.staff_token("owner@example.com", Role::Owner).await;

    let r = app.get("/v1/admin/customers", None).await;
    assert!(r.headers().contains_key("www-authenticate"));
    assert_problem(r, 401, "unauthenticated").await;
    assert_problem(
        app.get("/v1/admin/customers", Some(&customer)).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.get("/v1/admin/customers", Some(&staff)).await.status(),
        StatusCode::OK
    );
    assert_problem(
        app.get("/v1/admin/users", Some(&staff)).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.get("/v1/admin/users", Some(&admin)).await.status(),
        StatusCode::OK
    );
    let new_user =
        json!({"email": "new@example.com", "password": PASSWORD, "name": "New", "role": "staff"});
    assert_problem(
        app.post_json("/v1/admin/users", &new_user, Some(&admin))
            .await,
        403,
        "forbidden",
    )
    .await;
    let r = app
        .post_json("/v1/admin/users", &new_user, Some(&owner))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["role"], "staff");
    assert_problem(
        app.post_json("/v1/admin/users", &new_user, Some(&owner))
            .await,
        409,
        "email_taken",
    )
    .await;
    let r = app
        .post_json(
            "/v1/admin/users",
            &json!({"email": "x@example.com", "password": PASSWORD, "name": "X", "role": "god"}),
            Some(&owner),
        )
        .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&body),
        vec![("/role".into(), "invalid_value".into())]
    );

    // The new staff user signs in to the back office; promoting them takes effect on refresh.
    let tokens = app.login("new@example.com", Some("admin")).await;
    let id = created["id"].as_str().unwrap();
    let r = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            &json!({"role": "admin"}),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed: Value = app
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.get("/v1/admin/users", refreshed["access_token"].as_str())
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .get(&format!("/v1/admin/users/{id}"), Some(&admin))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "admin");
    assert_problem(
        app.get(
            "/v1/admin/users/usr_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
            Some(&admin),
        )
        .await,
        404,
        "user_not_found",
    )
    .await;
}

async fn the_last_owner_cannot_be_demoted_or_removed(app: TestApp) {
    let owner = app.staff_token("boss@example.com", Role::Owner).await;
    let users: Value = app
        .get("/v1/admin/users", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    let id = users["items"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            &json!({"role": "admin"}),
            Some(&owner),
        )
        .await;
    assert_problem(r, 409, "last_owner").await;
    let r = app
        .client
        .delete(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_problem(r, 409, "last_owner").await;
    let r = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            &json!({"name": "", "password": "short"}),
            Some(&owner),
        )
        .await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&body),
        vec![
            ("/name".into(), "required".into()),
            ("/password".into(), "too_short".into())
        ]
    );
    let r = app
        .client
        .delete(app.url("/v1/admin/users/usr_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "user_not_found").await;
    let r = app
        .send_json(
            reqwest::Method::PATCH,
            "/v1/admin/users/usr_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
            &json!({"name": "X"}),
            Some(&owner),
        )
        .await;
    assert_problem(r, 404, "user_not_found").await;
    // With a second owner, the first may step down.
    let second =
        json!({"email": "boss2@example.com", "password": PASSWORD, "name": "Two", "role": "owner"});
    assert_eq!(
        app.post_json("/v1/admin/users", &second, Some(&owner))
            .await
            .status(),
        StatusCode::CREATED
    );
    let r = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            &json!({"role": "admin"}),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn customers_are_listed_with_a_cursor_and_searched_by_email(app: TestApp) {
    for i in 0..5 {
        app.register(&format!("shopper{i}@example.com")).await;
    }
    app.register("other_100%@example.org").await;
    let staff = app.staff_token("staff@example.com", Role::Staff).await;
    let mut seen = Vec::new();
    let mut path = "/v1/admin/customers?limit=2&email=shopper".to_owned();
    loop {
        let page: Value = app.get(&path, Some(&staff)).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|c| c["email"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/admin/customers?limit=2&email=shopper&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5)
            .rev()
            .map(|i| format!("shopper{i}@example.com"))
            .collect::<Vec<_>>()
    );
    // LIKE wildcards in the search are literal.
    for search in ["100%25", "%25", "_"] {
        let page: Value = app
            .get(&format!("/v1/admin/customers?email={search}"), Some(&staff))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{search}");
    }
    let one = &app
        .get("/v1/admin/customers?limit=1", Some(&staff))
        .await
        .json::<Value>()
        .await
        .unwrap()["items"][0];
    let got: Value = app
        .get(
            &format!("/v1/admin/customers/{}", one["id"].as_str().unwrap()),
            Some(&staff),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(&got, one);
    assert_problem(
        app.get(
            "/v1/admin/customers/cus_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
            Some(&staff),
        )
        .await,
        404,
        "customer_not_found",
    )
    .await;
}

async fn concurrent_registrations_of_one_email_create_one_account(app: TestApp) {
    let body = json!({"email": "race@example.com", "password": PASSWORD, "name": "Racer"});
    let answers = join_all((0..10).map(|_| app.post_json("/v1/auth/register", &body, None))).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    let staff = app.staff_token("staff@example.com", Role::Staff).await;
    let page: Value = app
        .get("/v1/admin/customers?email=race@", Some(&staff))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

async fn a_refresh_token_raced_by_many_requests_is_honoured_at_most_once(app: TestApp) {
    app.register("twin@example.com").await;
    let tokens = app.login("twin@example.com", None).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let answers = join_all((0..8).map(|_| app.token_form(&form))).await;
    let mut issued = Vec::new();
    for r in answers {
        if r.status() == StatusCode::OK {
            issued.push(
                r.json::<Value>().await.unwrap()["refresh_token"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
    }
    assert!(
        issued.len() <= 1,
        "one refresh token was honoured {} times",
        issued.len()
    );
    // Any reuse revoked the family: the winner's new token is dead too.
    for t in issued {
        oauth_error(
            app.token_form(&[("grant_type", "refresh_token"), ("refresh_token", &t)])
                .await,
            400,
            "invalid_grant",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_per_account_without_revealing_it_exists() {
    let app = TestApp::spawn().await;
    app.register("tia@example.com").await;
    for account in ["tia@example.com", "ghost@example.com"] {
        for _ in 0..5 {
            let r = app
                .token_form(&[
                    ("grant_type", "password"),
                    ("username", account),
                    ("password", "wrong password!"),
                ])
                .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{account}");
        }
        let r = app
            .token_form(&[
                ("grant_type", "password"),
                ("username", account),
                ("password", "wrong password!"),
            ])
            .await;
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert_problem(r, 429, "login_throttled").await;
    }
    // Blocked means blocked: the right password waits too.
    let r = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "tia@example.com"),
            ("password", PASSWORD),
        ])
        .await;
    assert_problem(r, 429, "login_throttled").await;
    // Another account from the same address is not yet blocked.
    app.register("uma@example.com").await;
    app.login("uma@example.com", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_per_client_address() {
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.auth.login_failures_per_address = 4
    })
    .await;
    app.register("val@example.com").await;
    for i in 0..4 {
        let r = app
            .token_form(&[
                ("grant_type", "password"),
                ("username", &format!("u{i}@example.com")),
                ("password", "wrong password!"),
            ])
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let r = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "u9@example.com"),
            ("password", "wrong password!"),
        ])
        .await;
    assert_problem(r, 429, "login_throttled").await;
    let r = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "val@example.com"),
            ("password", PASSWORD),
        ])
        .await;
    assert_problem(r, 429, "login_throttled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_is_throttled_on_its_own() {
    let fail = |app: &TestApp, user: String, from: &'static str| {
        let request = app
            .client
            .post(app.url("/v1/auth/token"))
            .header("x-forwarded-for", from)
            .form(&[
                ("grant_type", "password"),
                ("username", user.as_str()),
                ("password", "wrong password!"),
            ])
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    let behind_proxy = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.auth.login_failures_per_address = 3;
        c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    for i in 0..3 {
        assert_eq!(
            fail(&behind_proxy, format!("a{i}@example.com"), "198.51.100.1").await,
            400
        );
    }
    assert_eq!(
        fail(&behind_proxy, "a9@example.com".into(), "198.51.100.1").await,
        429
    );
    assert_eq!(
        fail(&behind_proxy, "b0@example.com".into(), "198.51.100.2").await,
        400,
        "another client is not blocked"
    );

    // Without trust, the header is ignored: a client cannot dodge the limit by inventing addresses.
    let direct = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.auth.login_failures_per_address = 3
    })
    .await;
    for (i, from) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(fail(&direct, format!("c{i}@example.com"), from).await, 400);
    }
    assert_eq!(
        fail(&direct, "c9@example.com".into(), "198.51.100.4").await,
        429
    );
}
