//! The command line: configuration layering and errors, `migrate`, `admin create`, `keys rotate`.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, eventually};

pub(crate) fn emporium(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emporium"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("EMPORIUM_CONFIG")
        .env_remove("EMPORIUM_DATABASE_URL")
        .env_remove("EMPORIUM_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("emporium runs");
    if let Some(input) = stdin {
        // The command may exit before reading its input (a rejected flag): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_layers_defaults_file_environment_and_flags_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("emporium.toml"), "listen = \"127.0.0.1:9000\"\n[http]\nbody_limit_bytes = 2048\n[auth]\naccess_token_ttl_secs = 600\n").unwrap();
    let out = emporium(
        dir.path(),
        &["config", "--data-dir", "/srv/shop"],
        &[
            ("EMPORIUM_HTTP__BODY_LIMIT_BYTES", "4096"),
            (
                "EMPORIUM_DATABASE_URL",
                "postgres://shop:hunter2secret@db.internal/shop",
            ),
            ("EMPORIUM_TEST_POSTGRES_URL", "postgres://ignored"),
            ("EMPORIUM_WORKER_THREADS", "3"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("listen = \"127.0.0.1:9000\""),
        "file beats defaults:\n{printed}"
    );
    assert!(
        printed.contains("body_limit_bytes = 4096"),
        "environment beats file:\n{printed}"
    );
    assert!(printed.contains("access_token_ttl_secs = 600"), "{printed}");
    assert!(printed.contains("worker_threads = 3"), "{printed}");
    assert!(
        printed.contains("data_dir = \"/srv/shop\""),
        "flags beat all:\n{printed}"
    );
    assert!(
        printed.contains("request_timeout_ms = 30000"),
        "defaults fill the rest:\n{printed}"
    );
    assert!(
        !printed.contains("hunter2secret"),
        "secrets are masked:\n{printed}"
    );
    assert!(printed.contains("database_url = \"********\""), "{printed}");
}

#[test]
fn config_shows_the_payment_providers_a_checkout_may_choose() {
    let dir = tempfile::tempdir().unwrap();
    let shown = |env: &[(&str, &str)]| {
        let out = emporium(dir.path(), &["config"], env, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let printed = text(&out.stdout);
        printed
            .lines()
            .find(|l| l.starts_with("providers"))
            .unwrap_or_default()
            .to_owned()
    };
    // None by default: a real store chooses its providers; the test provider never pays.
    assert_eq!(shown(&[]), "providers = []");
    assert_eq!(
        shown(&[("EMPORIUM_DEMO", "true")]),
        "providers = [\"test\"]"
    );
    assert_eq!(
        shown(&[("EMPORIUM_PAYMENTS__PROVIDERS", "[manual]")]),
        "providers = [\"manual\"]"
    );
}

#[test]
fn invalid_configuration_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[("EMPORIUM_HTTP__BODY_LIMIT_BYTES", "lots")],
            "http.body_limit_bytes",
        ),
        (&[("EMPORIUM_LISTEN", "not-an-address")], "listen"),
        (&[("EMPORIUM_DATABASE_URL", "mysql://x")], "database_url"),
        (
            &[("EMPORIUM_AUTH__ACCESS_TOKEN_TTL_SECS", "5")],
            "auth.access_token_ttl_secs",
        ),
        (&[("EMPORIUM_WORKER_THREADS", "5000")], "worker_threads"),
        (
            &[("EMPORIUM_PAYMENTS__PROVIDERS", "[manual, bitcoin]")],
            "payments.providers",
        ),
        (
            &[("EMPORIUM_CACHE__REDIS_URL", "http://:hunter2@cache:6379")],
            "cache.redis_url",
        ),
    ];
    for (env, key) in cases {
        let out = emporium(dir.path(), &["config"], env, None);
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        // Figment names a key from the environment as it was spelled there.
        let err = text(&out.stderr).to_lowercase();
        assert!(err.contains(key), "{env:?}: {err}");
        assert!(!err.contains("hunter2"), "a password in the error: {err}");
    }
    std::fs::write(
        dir.path().join("emporium.toml"),
        "[http]\nbody_limt_bytes = 1\n",
    )
    .unwrap();
    let out = emporium(dir.path(), &["migrate"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("body_limt_bytes"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn migrate_creates_the_database_and_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shop-data");
    let data = data.to_str().unwrap();
    for _ in 0..2 {
        let out = emporium(dir.path(), &["migrate", "--data-dir", data], &[], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert!(dir.path().join("shop-data/emporium.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_owner_is_created_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let create = |role: &str, password: &str| {
        let args = [
            "admin",
            "create",
            "--email",
            "Founder@Example.com",
            "--role",
            role,
            "--data-dir",
            &data,
        ];
        emporium(dir.path(), &args, &[], Some(&format!("{password}\n")))
    };
    let out = create("owner", "short");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("password"),
        "{}",
        text(&out.stderr)
    );
    let out = create("emperor", PASSWORD);
    assert_eq!(out.status.code(), Some(2), "clap rejects an unknown role");
    let out = create("owner", PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("founder@example.com"));

    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
        c.data_dir = dir.path().to_owned()
    })
    .await;
    let tokens = app.login("founder@example.com", Some("admin")).await;
    let users: Value = app
        .get("/v1/admin/users", tokens["access_token"].as_str())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users["items"][0]["role"], "owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_before_a_key_rotation_stay_valid() {
    let app = TestApp::spawn().await;
    let before = app.customer_token("rot@example.com").await;
    let data = app.config.data_dir.to_str().unwrap().to_owned();
    let out = emporium(
        &app.config.data_dir,
        &["keys", "rotate", "--data-dir", &data],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The running server picks up the new key on its own.
    let rotated = eventually(Duration::from_secs(15), || async {
        let jwks: Value = app
            .get("/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        jwks["keys"].as_array().is_some_and(|k| k.len() == 2)
    })
    .await;
    assert!(rotated, "the JWKS publishes both keys");
    let after = app.login("rot@example.com", None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let kid = |t: &str| {
        use base64::Engine;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<Value>(&h).unwrap()["kid"].clone()
    };
    assert_ne!(kid(&before), kid(&after), "new tokens use the new key");
    assert_eq!(
        app.get("/v1/store/me", Some(&before)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/store/me", Some(&after)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_store_can_be_signed_in_to_and_seeding_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, |c| {
            c.data_dir = dir.path().to_owned();
            c.demo = true;
        })
        .await;
        let owner = app
            .token_form(&[
                ("grant_type", "password"),
                ("username", emporium::demo::OWNER_EMAIL),
                ("password", emporium::demo::OWNER_PASSWORD),
                ("scope", "admin"),
            ])
            .await;
        assert_eq!(owner.status(), StatusCode::OK);
        let token = owner.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let users: Value = app
            .get("/v1/admin/users", Some(&token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(users["items"].as_array().unwrap().len(), 1);
        // Pricing for a demo checkout, seeded once.
        for (path, count) in [
            ("/v1/admin/shipping-options", 3),
            ("/v1/admin/tax-rates", 3),
            ("/v1/admin/coupons", 1),
        ] {
            let page: Value = app.get(path, Some(&token)).await.json().await.unwrap();
            assert_eq!(page["items"].as_array().unwrap().len(), count, "{path}");
        }
        let shopper = app
            .token_form(&[
                ("grant_type", "password"),
                ("username", emporium::demo::SHOPPER_EMAIL),
                ("password", emporium::demo::SHOPPER_PASSWORD),
            ])
            .await;
        assert_eq!(shopper.status(), StatusCode::OK);
    }
}
