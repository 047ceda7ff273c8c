//! Ending a principal's tokens before they expire: a password change, a demotion, disabling or
//! deleting a staff user, and the revocation of an API client end its login sessions (refresh tokens
//! answer `invalid_grant`) and its access tokens (401 `token_revoked`) at once, in this process
//! and, within seconds, in every other process over the same database.

use std::time::Duration;

use emporium_kernel::SystemClock;
use emporium_kernel::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    self, PASSWORD, TestApp, assert_problem, drop_postgres_database, eventually,
    fresh_postgres_database, pointers,
};
use crate::on_both_backends;

on_both_backends!(
    a_staff_password_change_ends_the_users_sessions_and_access_tokens,
    a_demoted_admins_old_token_cannot_create_an_api_client,
    a_deleted_staff_users_tokens_get_401_and_its_sessions_end,
    a_disabled_staff_user_is_refused_until_enabled_again,
    a_revoked_api_clients_token_stops_working_at_once,
    a_customer_password_change_ends_every_session_and_answers_with_a_new_one,
    a_customer_password_change_needs_the_current_password_and_a_good_new_one,
    a_revocation_written_by_another_process_reaches_the_verifier_within_seconds,
);

/// A new password that passes the policy.
const NEW_PASSWORD: &str = "purple monkey dishwasher";

async fn assert_refresh_is_dead(app: &TestApp, refresh_token: &str) {
    let r = app
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

async fn create_user(app: &TestApp, owner: &str, email: &str, role: &str) -> String {
    let r = app
        .post_json(
            "/v1/admin/users",
            &json!({"email": email, "password": PASSWORD, "name": "Someone", "role": role}),
            Some(owner),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn patch_user(app: &TestApp, owner: &str, id: &str, body: Value) -> Value {
    let r = app
        .send_json(
            Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            &body,
            Some(owner),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

fn refresh(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().unwrap()
}

async fn a_staff_password_change_ends_the_users_sessions_and_access_tokens(app: TestApp) {
    let owner = app.staff_token("owner@example.com", Role::Owner).await;
    let id = create_user(&app, &owner, "clerk@example.com", "staff").await;
    let before = app.login("clerk@example.com", Some("admin")).await;
    assert_eq!(
        app.get("/v1/admin/customers", Some(access(&before)))
            .await
            .status(),
        StatusCode::OK
    );

    patch_user(&app, &owner, &id, json!({"password": NEW_PASSWORD})).await;

    assert_problem(
        app.get("/v1/admin/customers", Some(access(&before))).await,
        401,
        "token_revoked",
    )
    .await;
    assert_refresh_is_dead(&app, refresh(&before)).await;
    // A sign-in with the new password right after (most likely in the same second) works.
    let r = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "clerk@example.com"),
            ("password", NEW_PASSWORD),
            ("scope", "admin"),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let after: Value = r.json().await.unwrap();
    assert_eq!(
        app.get("/v1/admin/customers", Some(access(&after)))
            .await
            .status(),
        StatusCode::OK
    );
    // The owner's own tokens were not touched.
    assert_eq!(
        app.get("/v1/admin/users", Some(&owner)).await.status(),
        StatusCode::OK
    );
}

async fn a_demoted_admins_old_token_cannot_create_an_api_client(app: TestApp) {
    let owner = app.staff_token("owner@example.com", Role::Owner).await;
    let id = create_user(&app, &owner, "deputy@example.com", "admin").await;
    let before = app.login("deputy@example.com", Some("admin")).await;
    let client = json!({"name": "ERP sync", "scopes": ["customers:read"]});

    patch_user(&app, &owner, &id, json!({"role": "staff"})).await;

    assert_problem(
        app.post_json("/v1/admin/api-clients", &client, Some(access(&before)))
            .await,
        401,
        "token_revoked",
    )
    .await;
    assert_refresh_is_dead(&app, refresh(&before)).await;
    // Signed in again, the user has the new role, and its limits.
    let after = app.login("deputy@example.com", Some("admin")).await;
    assert_problem(
        app.post_json("/v1/admin/api-clients", &client, Some(access(&after)))
            .await,
        403,
        "forbidden",
    )
    .await;
    let listed: Value = app
        .get("/v1/admin/api-clients", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]), "no client was created");
}

async fn a_deleted_staff_users_tokens_get_401_and_its_sessions_end(app: TestApp) {
    let owner = app.staff_token("owner@example.com", Role::Owner).await;
    let id = create_user(&app, &owner, "leaver@example.com", "admin").await;
    let before = app.login("leaver@example.com", Some("admin")).await;

    let r = app
        .client
        .delete(app.url(&format!("/v1/admin/users/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    for path in ["/v1/admin/users", "/v1/admin/customers"] {
        let body = assert_problem(
            app.get(path, Some(access(&before))).await,
            401,
            "token_revoked",
        )
        .await;
        assert!(body["detail"].as_str().is_some(), "{body}");
    }
    // Refused on every authenticated route, not only the back office.
    let r = app
        .client
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(access(&before))
        .send()
        .await
        .unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_problem(r, 401, "token_revoked").await;
    assert_refresh_is_dead(&app, refresh(&before)).await;
}

async fn a_disabled_staff_user_is_refused_until_enabled_again(app: TestApp) {
    let owner = app.staff_token("owner@example.com", Role::Owner).await;
    let id = create_user(&app, &owner, "away@example.com", "admin").await;
    let before = app.login("away@example.com", Some("admin")).await;
    let sign_in = [
        ("grant_type", "password"),
        ("username", "away@example.com"),
        ("password", PASSWORD),
        ("scope", "admin"),
    ];

    let user = patch_user(&app, &owner, &id, json!({"disabled": true})).await;
    assert!(user["disabled_at"].is_string(), "{user}");

    assert_problem(
        app.get("/v1/admin/users", Some(access(&before))).await,
        401,
        "token_revoked",
    )
    .await;
    assert_refresh_is_dead(&app, refresh(&before)).await;
    // The same answer as a wrong password: nothing says the account exists.
    let r = app.token_form(&sign_in).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    let user = patch_user(&app, &owner, &id, json!({"disabled": false})).await;
    assert!(user["disabled_at"].is_null(), "{user}");
    assert_problem(
        app.get("/v1/admin/users", Some(access(&before))).await,
        401,
        "token_revoked",
    )
    .await;
    let r = app.token_form(&sign_in).await;
    assert_eq!(r.status(), StatusCode::OK);
    let after: Value = r.json().await.unwrap();
    assert_eq!(
        app.get("/v1/admin/users", Some(access(&after)))
            .await
            .status(),
        StatusCode::OK
    );

    // The only owner who is not disabled cannot be disabled.
    let users: Value = app
        .get("/v1/admin/users", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    let owner_id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "owner@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .send_json(
            Method::PATCH,
            &format!("/v1/admin/users/{owner_id}"),
            &json!({"disabled": true}),
            Some(&owner),
        )
        .await;
    assert_problem(r, 409, "last_owner").await;
    assert_eq!(
        app.get("/v1/admin/users", Some(&owner)).await.status(),
        StatusCode::OK
    );
}

async fn a_revoked_api_clients_token_stops_working_at_once(app: TestApp) {
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
    let credentials = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let token: Value = app.token_form(&credentials).await.json().await.unwrap();
    assert_eq!(
        app.get("/v1/admin/customers", Some(access(&token)))
            .await
            .status(),
        StatusCode::OK
    );

    let r = app
        .client
        .delete(app.url(&format!("/v1/admin/api-clients/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    assert_problem(
        app.get("/v1/admin/customers", Some(access(&token))).await,
        401,
        "token_revoked",
    )
    .await;
    let r = app.token_form(&credentials).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    // Revoking again changes nothing and still answers 204.
    let r = app
        .client
        .delete(app.url(&format!("/v1/admin/api-clients/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.post_json(
        "/v1/store/me/password",
        &json!({"current_password": current, "new_password": new}),
        Some(token),
    )
    .await
}

async fn a_customer_password_change_ends_every_session_and_answers_with_a_new_one(app: TestApp) {
    app.register("kim@example.com").await;
    let phone = app.login("kim@example.com", None).await;
    let laptop = app.login("kim@example.com", None).await;

    let r = change_password(&app, access(&phone), PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers().get("cache-control").unwrap().to_str().unwrap(),
        "no-store"
    );
    let renewed: Value = r.json().await.unwrap();
    assert_eq!(renewed["token_type"], "Bearer");
    assert_eq!(renewed["scope"], "store");

    // Every earlier session ended, the one that made the change too: its answer replaces it.
    for old in [&phone, &laptop] {
        assert_problem(
            app.get("/v1/store/me", Some(access(old))).await,
            401,
            "token_revoked",
        )
        .await;
        assert_refresh_is_dead(&app, refresh(old)).await;
    }
    let me = app.get("/v1/store/me", Some(access(&renewed))).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        me.json::<Value>().await.unwrap()["email"],
        "kim@example.com"
    );
    let r = app
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh(&renewed)),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK, "the new session refreshes");

    // The old password no longer signs in; the new one does.
    let r = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "kim@example.com"),
            ("password", PASSWORD),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .token_form(&[
            ("grant_type", "password"),
            ("username", "kim@example.com"),
            ("password", NEW_PASSWORD),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn a_customer_password_change_needs_the_current_password_and_a_good_new_one(app: TestApp) {
    let token = app.customer_token("max@example.com").await;

    let r = change_password(&app, &token, "not my password", "short").await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&body),
        vec![
            ("/current_password".to_owned(), "incorrect".to_owned()),
            ("/new_password".to_owned(), "too_short".to_owned()),
        ]
    );
    let r = change_password(&app, &token, PASSWORD, "max@example.com").await;
    let body = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&body),
        vec![("/new_password".to_owned(), "matches_email".to_owned())]
    );
    let r = app
        .post_json(
            "/v1/store/me/password",
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "x": 1}),
            Some(&token),
        )
        .await;
    assert_problem(r, 422, "validation_failed").await;
    // Nothing changed: the token still works and the password still signs in.
    assert_eq!(
        app.get("/v1/store/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    app.login("max@example.com", None).await;

    // Customers only: a staff token is refused, and so is no token.
    let staff = app.staff_token("staff@example.com", Role::Staff).await;
    assert_problem(
        change_password(&app, &staff, PASSWORD, NEW_PASSWORD).await,
        403,
        "customer_token_required",
    )
    .await;
    let r = app
        .post_json(
            "/v1/store/me/password",
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_problem(r, 401, "unauthenticated").await;
}

/// Another process's change is simulated by writing the database beside the server: the
/// verifier learns of it only by its periodic read.
async fn a_revocation_written_by_another_process_reaches_the_verifier_within_seconds(app: TestApp) {
    let owner = app.staff_token("owner@example.com", Role::Owner).await;
    let id = create_user(&app, &owner, "remote@example.com", "admin").await;
    let before = app.login("remote@example.com", Some("admin")).await;
    assert_eq!(
        app.get("/v1/admin/users", Some(access(&before)))
            .await
            .status(),
        StatusCode::OK
    );

    let db = &app.store().db;
    let mut tx = db.begin_write().await.unwrap();
    let generation =
        emporium_identity::bump_token_generation(&mut tx, &id, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(generation, 1);

    let refused = eventually(Duration::from_secs(15), || async {
        app.get("/v1/admin/users", Some(access(&before)))
            .await
            .status()
            == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "the verifier never read the revocation");
    assert_problem(
        app.get("/v1/admin/users", Some(access(&before))).await,
        401,
        "token_revoked",
    )
    .await;
    // Only the generation moved, as when a sign-in opened its session while a change committed:
    // the session is older than the generation, so its refresh token is refused all the same.
    assert_refresh_is_dead(&app, refresh(&before)).await;
    // A sign-in now gets the new generation, and works.
    let after = app.login("remote@example.com", Some("admin")).await;
    assert_eq!(
        app.get("/v1/admin/users", Some(access(&after)))
            .await
            .status(),
        StatusCode::OK
    );
}

/// Two servers over one PostgreSQL database, as the scaled-out shape runs them: a demotion
/// through one is refused by the other within seconds, and a restarted server refuses it from
/// its first request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_through_one_server_is_refused_by_another_over_the_same_database() {
    let Some(admin_url) = helpers::postgres_url() else {
        return;
    };
    let (url, name) = fresh_postgres_database(&admin_url).await;
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let first = helpers::test_config(first_dir.path(), Some(url.clone()));
    let mut second = helpers::test_config(second_dir.path(), Some(url));
    // One keyring for both, as processes of one store share it.
    second.auth.signing_keys_file = Some(first.signing_keys_file());
    let a = TestApp::spawn_with(helpers::Backend::Sqlite, |c| *c = first.clone()).await;
    let b = emporium::start(&second, std::sync::Arc::new(SystemClock))
        .await
        .unwrap();
    let b_url = |path: &str| format!("http://{}{path}", b.local_addr);

    let owner = a.staff_token("owner@example.com", Role::Owner).await;
    let id = create_user(&a, &owner, "deputy@example.com", "admin").await;
    let before = a.login("deputy@example.com", Some("admin")).await;
    let on_b = |token: String| {
        let client = a.client.clone();
        let url = b_url("/v1/admin/users");
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(on_b(access(&before).to_owned()).await, StatusCode::OK);

    patch_user(&a, &owner, &id, json!({"role": "staff"})).await;

    let refused = eventually(Duration::from_secs(15), || {
        let status = on_b(access(&before).to_owned());
        async move { status.await == StatusCode::UNAUTHORIZED }
    })
    .await;
    assert!(refused, "the second server never learnt of the demotion");
    b.shutdown().await;

    // Started after the change, a server refuses the token from the first request.
    let b = emporium::start(&second, std::sync::Arc::new(SystemClock))
        .await
        .unwrap();
    let r = a
        .client
        .get(format!("http://{}/v1/admin/users", b.local_addr))
        .bearer_auth(access(&before))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "token_revoked").await;
    b.shutdown().await;
    drop(a);
    drop_postgres_database(&admin_url, &name).await;
}
