//! The test harness: `TestApp` starts the application in-process on `127.0.0.1:0`.

use std::sync::Arc;
use std::time::Duration;

use emporium::config::Config;
use emporium_kernel::SystemClock;
use emporium_kernel::auth::Role;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

/// The password every test account uses.
pub const PASSWORD: &str = "correct horse battery";

/// Which database a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// A running application with a client.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub server: Option<emporium::RunningServer>,
    pub config: Config,
    /// Where `/v1/admin/inventory` is served when inventory runs in another process (what the
    /// gateway's routing does in a cluster).
    pub inventory_base: Option<String>,
    /// Where the catalog's routes are served when the catalog runs in another process.
    pub catalog_base: Option<String>,
    _data: tempfile::TempDir,
    pg_database: Option<(String, String)>,
}

/// Runs a test body against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::TestApp::spawn().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::TestApp::spawn_postgres().await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

/// The PostgreSQL URL of the test server (`EMPORIUM_TEST_POSTGRES_URL`, or a throw-away server
/// for this test binary), or `None` after saying loudly that the PostgreSQL run did not happen.
/// Under CI (`EMPORIUM_TEST_REQUIRE_POSTGRES=1`) a missing PostgreSQL fails the test.
pub fn postgres_url() -> Option<String> {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    emporium_db::testing::postgres_admin_url(&test)
}

/// Creates a fresh database on the server of `admin_url`; returns its URL and name.
pub async fn fresh_postgres_database(admin_url: &str) -> (String, String) {
    use sqlx::Connection;
    let name = format!("emporium_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let (server, _) = base.rsplit_once('/').expect("postgres url has a database");
    (format!("{server}/{name}"), name)
}

/// Drops a test database, disconnecting whoever still uses it.
pub async fn drop_postgres_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// A configuration for a test server with its data in `dir`.
pub fn test_config(dir: &std::path::Path, database_url: Option<String>) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.to_owned(),
        database_url: database_url.map(emporium_kernel::Secret::new),
        ..Config::default()
    };
    config.database.max_connections = 4;
    // Suites run side by side on two cores: a wait for a pooled connection there is the
    // machine being busy, not the failure a test looks for.
    config.database.acquire_timeout_ms = 30_000;
    config.outbox.poll_interval_ms = 200;
    // The suites pay with the test provider (and offline payment), which a real store lacks.
    config.payments.providers = vec!["manual".to_owned(), "test".to_owned()];
    config
}

impl TestApp {
    /// A server on a fresh SQLite database.
    pub async fn spawn() -> Self {
        Self::spawn_with(Backend::Sqlite, |_| {}).await
    }

    /// A server on a fresh PostgreSQL database, or `None` when PostgreSQL is not configured.
    pub async fn spawn_postgres() -> Option<Self> {
        let url = postgres_url()?;
        Some(Self::spawn_with(Backend::Postgres(url), |_| {}).await)
    }

    /// A server on `backend` with `adjust` applied to its configuration.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with_clock(backend, Arc::new(SystemClock), adjust).await
    }

    /// [`Self::spawn_with`], on `clock`.
    pub async fn spawn_with_clock(
        backend: Backend,
        clock: Arc<dyn emporium_kernel::Clock>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let (database_url, pg_database) = match &backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres(admin) => {
                let (url, name) = fresh_postgres_database(admin).await;
                (Some(url), Some((admin.clone(), name)))
            }
        };
        let mut config = test_config(data.path(), database_url);
        adjust(&mut config);
        let server = emporium::start(&config, clock)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.local_addr);
        Self {
            base,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            server: Some(server),
            config,
            inventory_base: None,
            catalog_base: None,
            _data: data,
            pg_database,
        }
    }

    /// The store behind the server.
    pub fn store(&self) -> &emporium::Store {
        &self.server.as_ref().expect("server running").store
    }

    pub fn url(&self, path: &str) -> String {
        const CATALOG: [&str; 7] = [
            "/v1/admin/products",
            "/v1/admin/categories",
            "/v1/admin/collections",
            "/v1/store/products",
            "/v1/store/categories",
            "/v1/store/collections",
            "/media/",
        ];
        match (&self.inventory_base, &self.catalog_base) {
            (Some(base), _) if path.starts_with("/v1/admin/inventory") => format!("{base}{path}"),
            (_, Some(base)) if CATALOG.iter().any(|p| path.starts_with(p)) => {
                format!("{base}{path}")
            }
            _ => format!("{}{path}", self.base),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// Any request, with extra headers (`If-Match`, `If-None-Match`, …).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        self.send_json(reqwest::Method::POST, path, body, token)
            .await
    }

    pub async fn token_form(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/v1/auth/token"))
            .form(form)
            .send()
            .await
            .expect("request sent")
    }

    /// Registers a customer and returns its JSON.
    pub async fn register(&self, email: &str) -> Value {
        let r = self
            .post_json(
                "/v1/auth/register",
                &json!({"email": email, "password": PASSWORD, "name": "Test Customer"}),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "register {email}");
        r.json().await.expect("json")
    }

    /// Signs in with the password grant and returns the token response.
    pub async fn login(&self, email: &str, scope: Option<&str>) -> Value {
        let mut form = vec![
            ("grant_type", "password"),
            ("username", email),
            ("password", PASSWORD),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let r = self.token_form(&form).await;
        assert_eq!(r.status(), StatusCode::OK, "login {email}");
        r.json().await.expect("json")
    }

    /// A registered customer's access token.
    pub async fn customer_token(&self, email: &str) -> String {
        self.register(email).await;
        self.login(email, None).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// Creates a staff user directly and returns an access token for it.
    pub async fn staff_token(&self, email: &str, role: Role) -> String {
        self.store()
            .identity
            .as_ref()
            .expect("identity runs here")
            .create_staff(
                emporium_identity::CreateStaffUser {
                    email: email.to_owned(),
                    password: PASSWORD.to_owned(),
                    name: "Staff".to_owned(),
                    role,
                },
                "test",
            )
            .await
            .expect("staff created");
        self.login(email, Some("admin")).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// Stops the server (gracefully); its data stays.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Starts the server again on the same data, on a new port.
    pub async fn start(&mut self) {
        assert!(self.server.is_none(), "the server is already running");
        let server = emporium::start(&self.config, Arc::new(SystemClock))
            .await
            .expect("server restarts");
        self.base = format!("http://{}", server.local_addr);
        self.server = Some(server);
    }

    /// Delivers every committed outbox event now.
    pub async fn drain_outbox(&self) {
        self.store().relay().drain().await.expect("outbox drained");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let server = self.server.take();
        let pg = self.pg_database.take();
        // Shut down and drop the PostgreSQL database on a separate runtime: Drop cannot await.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Some(server) = server {
                    // The server's tasks run on the test's runtime, whose workers stay free
                    // while this thread waits (tests use the multi-thread runtime).
                    let _ = tokio::time::timeout(Duration::from_secs(10), server.shutdown()).await;
                }
                if let Some((admin, name)) = pg {
                    drop_postgres_database(&admin, &name).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(ct, "application/problem+json", "content type of {body}");
    assert_eq!(body["code"], code, "code in {body}");
    assert_eq!(body["status"], status, "status in {body}");
    body
}

/// The `pointer`s of a validation problem, sorted.
pub fn pointers(problem: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["pointer"].as_str().unwrap_or_default().to_owned(),
                        e["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Delivers every committed outbox event, then runs `check` once: what those events change is
/// visible by then.
pub async fn after_delivery<F, Fut>(app: &TestApp, check: F) -> bool
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    app.drain_outbox().await;
    check().await
}

/// Polls `check` until it returns true or `deadline` passes (a deadline that matters only on
/// failure).
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Reads with `read` until `done` holds for what it read (polled as [`eventually`] does), and
/// returns that reading; panics with `what` and the last reading after 30 s.
pub async fn wait_for<T, F, Fut>(what: &str, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let last = std::sync::Mutex::new(None);
    let met = eventually(Duration::from_secs(30), || {
        let reading = read();
        let (last, done) = (&last, &done);
        async move {
            let value = reading.await;
            let met = done(&value);
            *last.lock().unwrap() = Some(value);
            met
        }
    })
    .await;
    let value = last.into_inner().unwrap().expect("read at least once");
    assert!(met, "{what}: {value:#?}");
    value
}

/// Runs the `emporium` binary with `args` on the data folder `dir` (SQLite, no configuration
/// file); returns its exit code, standard output and standard error.
pub fn emporium_cli(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("EMPORIUM_DATABASE_URL")
        .env_remove("EMPORIUM_CONFIG")
        .output()
        .expect("emporium runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
