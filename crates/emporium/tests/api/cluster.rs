//! The scaled-out shape with inventory in a process of its own: the checkout's guarantees hold
//! across the process boundary, events cross through NATS JetStream, internal routes take only
//! a valid service credential, and killing the inventory process mid-load leaves stock,
//! reservations, payments and orders consistent once it is back.
//!
//! Each test starts its own NATS server (so streams and durable consumers are its own) and its
//! own inventory process, from the binary under test; the rest of the store runs in the test
//! process, configured as a cluster member.

use std::process::Stdio;
use std::time::Duration;

use emporium::config::Group;
use emporium_faultproxy::{Fault, FaultProxy};
use reqwest::Method;
use serde_json::{Value, json};

use crate::checkout::{available, check_out, ready_cart, shop};
use crate::events::free_port;
use crate::helpers::{Backend, TestApp, eventually, fresh_postgres_database};

pub(crate) const SECRET: &str = "cluster-test-secret-cluster-test-secret";

/// A NATS server with JetStream of the test's own, stopped when dropped.
pub(crate) struct Nats {
    process: std::process::Child,
    pub(crate) url: String,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    /// Kills the server outright (SIGKILL).
    fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Starts it again on the same port and store.
    async fn restart(&mut self) {
        self.process = spawn_nats(self.port, self.store.path()).unwrap();
        assert!(answers(self.port).await, "nats-server answers again");
    }
}

fn spawn_nats(port: u16, store: &std::path::Path) -> std::io::Result<std::process::Child> {
    std::process::Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

async fn answers(port: u16) -> bool {
    eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts `nats-server`, or says loudly that the test did not run (and fails under
/// `EMPORIUM_TEST_REQUIRE_NATS=1`).
pub(crate) async fn start_nats(test: &str) -> Option<Nats> {
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let process = match spawn_nats(port, store.path()) {
        Ok(p) => p,
        Err(e) => {
            assert!(
                std::env::var("EMPORIUM_TEST_REQUIRE_NATS").as_deref() != Ok("1"),
                "{test}: nats-server cannot start ({e}) and EMPORIUM_TEST_REQUIRE_NATS=1"
            );
            eprintln!("NOT RUN: {test} (nats-server cannot start: {e})");
            return None;
        }
    };
    assert!(answers(port).await, "nats-server answers");
    Some(Nats {
        process,
        url: format!("nats://127.0.0.1:{port}"),
        port,
        store,
    })
}

/// A process of the binary under test, serving with a configuration file (the inventory
/// group alone, or another set of groups).
pub(crate) struct InventoryProcess {
    process: tokio::process::Child,
    config_file: std::path::PathBuf,
    base: String,
}

impl InventoryProcess {
    pub(crate) async fn start(config_file: &std::path::Path, base: &str) -> Self {
        // Its log goes beside its configuration, and is shown if it does not become ready.
        let log_file = config_file.with_extension("log");
        let log = std::fs::File::create(&log_file).unwrap();
        let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
            .arg("--config")
            .arg(config_file)
            .arg("serve")
            .env_remove("EMPORIUM_CONFIG")
            .env("EMPORIUM_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the process starts");
        let client = reqwest::Client::new();
        let up = eventually(Duration::from_secs(60), || async {
            client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(
            up,
            "{} did not become ready; its log:\n{}",
            config_file.display(),
            std::fs::read_to_string(&log_file).unwrap_or_default()
        );
        Self {
            process,
            config_file: config_file.to_owned(),
            base: base.to_owned(),
        }
    }

    /// Kills the process outright (SIGKILL), as a crash would.
    pub(crate) async fn kill(&mut self) {
        self.process.kill().await.unwrap();
        let _ = self.process.wait().await;
    }

    pub(crate) async fn restart(&mut self) {
        *self = Self::start(&self.config_file, &self.base).await;
    }
}

/// The store with inventory apart.
struct Split {
    app: TestApp,
    inventory: InventoryProcess,
    nats: Nats,
    proxy: Option<FaultProxy>,
    _inventory_data: tempfile::TempDir,
}

async fn split(backend: Backend, test: &str) -> Option<Split> {
    split_with(backend, test, "", false).await
}

/// [`split`], with `extra` added to the `[cluster]` table of the inventory process. The two
/// processes find each other in the registry, unless `proxied`: then the store reaches
/// inventory through a fault proxy, configured as its one upstream.
async fn split_with(backend: Backend, test: &str, extra: &str, proxied: bool) -> Option<Split> {
    let nats = start_nats(test).await?;
    let inventory_data = tempfile::tempdir().unwrap();
    let keys = inventory_data.path().join("keys.json");
    let (inventory_port, store_port) = (free_port(), free_port());
    let inventory_base = format!("http://127.0.0.1:{inventory_port}");
    let inventory_db = match &backend {
        Backend::Sqlite => None,
        Backend::Postgres(admin) => Some(fresh_postgres_database(admin).await.0),
    };
    let config_file = inventory_data.path().join("inventory.toml");
    let mut toml = format!(
        "listen = \"127.0.0.1:{inventory_port}\"\n\
         data_dir = {data:?}\n\
         services = [\"inventory\"]\n\
         [auth]\nsigning_keys_file = {keys:?}\n\
         [outbox]\npoll_interval_ms = 200\n\
         [cluster]\nnats_url = \"{nats}\"\nservice_secret = \"{SECRET}\"\n{extra}\n",
        data = inventory_data.path().join("data"),
        nats = nats.url,
    );
    if let Some(url) = &inventory_db {
        toml = format!("database_url = \"{url}\"\n{toml}");
    }
    std::fs::write(&config_file, toml).unwrap();
    let inventory = InventoryProcess::start(&config_file, &inventory_base).await;
    let proxy = if proxied {
        let upstream = format!("127.0.0.1:{inventory_port}").parse().unwrap();
        let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), upstream)
            .await
            .unwrap();
        Some(proxy)
    } else {
        None
    };
    let proxy_url = proxy.as_ref().map(|p| format!("http://{}", p.local_addr()));
    let nats_url = nats.url.clone();
    let mut app = TestApp::spawn_with(backend, |config| {
        config.listen = format!("127.0.0.1:{store_port}").parse().unwrap();
        config.services = vec![
            Group::Identity,
            Group::Catalog,
            Group::Search,
            Group::Ordering,
        ];
        config.auth.signing_keys_file = Some(keys);
        config.cluster.nats_url = Some(nats_url);
        config.cluster.service_secret = Some(emporium_kernel::Secret::new(SECRET.to_owned()));
        if let Some(url) = proxy_url {
            config.cluster.upstreams.insert(Group::Inventory, vec![url]);
            config.cluster.call_timeout_ms = 1_000;
            config.cluster.call_retries = 0;
        }
        // A checkout whose step failed is compensated soon, not after a minute.
        config.recovery.idle_after_ms = 500;
        config.recovery.sweep_interval_ms = 200;
    })
    .await;
    app.inventory_base = Some(inventory_base);
    Some(Split {
        app,
        inventory,
        nats,
        proxy,
        _inventory_data: inventory_data,
    })
}

macro_rules! on_both_backends_split {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let test = concat!(module_path!(), "::sqlite");
                    if let Some(split) = super::split($crate::helpers::Backend::Sqlite, test).await {
                        super::$name(split).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let test = concat!(module_path!(), "::postgres");
                    let Some(admin) = $crate::helpers::postgres_url() else { return };
                    let backend = $crate::helpers::Backend::Postgres(admin);
                    if let Some(split) = super::split(backend, test).await {
                        super::$name(split).await;
                    }
                }
            }
        )*
    };
}

on_both_backends_split!(
    two_hundred_checkouts_for_fifty_units_make_fifty_orders_across_processes,
    events_written_while_nats_is_down_are_delivered_once_it_is_back,
    stock_set_in_the_inventory_process_reaches_the_catalog_through_nats,
    killing_the_inventory_process_mid_load_leaves_everything_consistent,
);

async fn two_hundred_checkouts_for_fifty_units_make_fifty_orders_across_processes(split: Split) {
    let app = &split.app;
    let shop = shop(app, 50, 100).await;
    let mut carts = Vec::new();
    for _ in 0..200 {
        carts.push(ready_cart(app, &shop, 1, false).await);
    }
    let attempts = carts
        .iter()
        .enumerate()
        .map(|(n, (cart, token))| async move {
            check_out(app, cart, token, &format!("key-{n}"), "tok_success")
                .await
                .status()
                .as_u16()
        });
    let statuses = futures_util::future::join_all(attempts).await;
    let placed = statuses.iter().filter(|s| **s == 201).count();
    let short = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!(placed, 50, "{statuses:?}");
    assert_eq!(short, 150, "{statuses:?}");
    assert_eq!(figures(app).await.orders, 50);
    assert_eq!(available(app, &shop).await, 0);
    // The completer commits every hold in the inventory process: 50 sold, none held.
    let token = admin(app).await;
    let settled = eventually(Duration::from_secs(20), || async {
        let stock = stock_of(app, &token, &shop.variant).await;
        stock["on_hand"] == 0 && stock["reserved"] == 0
    })
    .await;
    assert!(settled, "{}", stock_of(app, &token, &shop.variant).await);
}

async fn events_written_while_nats_is_down_are_delivered_once_it_is_back(mut split: Split) {
    let shop = shop(&split.app, 100, 100).await;
    let mut carts = Vec::new();
    for _ in 0..30 {
        carts.push(ready_cart(&split.app, &shop, 1, false).await);
    }
    split.nats.kill();
    let stopped = std::time::Instant::now();
    let app = &split.app;
    // Checkouts go on while NATS is down: inventory is called over HTTP, and each process's
    // events wait in its outbox.
    let attempts = carts
        .iter()
        .enumerate()
        .map(|(n, (cart, token))| async move {
            check_out(app, cart, token, &format!("key-{n}"), "tok_success")
                .await
                .status()
                .as_u16()
        });
    let statuses = futures_util::future::join_all(attempts).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let pending = emporium_db::count_pending(&app.store().db).await.unwrap();
    assert!(pending >= 30, "the events wait in the outbox: {pending}");
    // Down for ten seconds in all.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed())).await;
    split.nats.restart().await;
    let app = &split.app;
    // Every order's event reaches the journal once, the outbox empties, and the catalog's
    // availability follows inventory's (the stock events crossed too, once each).
    let delivered = eventually(Duration::from_secs(60), || async {
        let (placed, journal_dups) = journal_figures(app).await;
        let pending = emporium_db::count_pending(&app.store().db).await.unwrap();
        placed == 30 && journal_dups == 0 && pending == 0
    })
    .await;
    assert!(delivered, "{:?}", journal_figures(app).await);
    let product = product_of(app).await;
    let follows = eventually(Duration::from_secs(30), || async {
        let body: Value = app
            .get(&format!("/v1/store/products/{product}"), None)
            .await
            .json()
            .await
            .unwrap();
        body["variants"][0]["available"] == json!(available(app, &shop).await)
    })
    .await;
    assert!(follows, "the catalog's availability follows inventory's");
    assert_eq!(available(app, &shop).await, 70);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("emporium_event_consumer_pending{"),
        "consumer lag is exported"
    );
}

/// `order.placed` events in the journal, and how many inbox rows of the journal's consumer
/// name an event twice (none can: it is the inbox's key; the count guards the query).
async fn journal_figures(app: &TestApp) -> (i64, i64) {
    use sqlx::Row;
    let mut conn = app.store().db.read().await.unwrap();
    emporium_db::run!(&mut conn, |c| sqlx::query(
        "SELECT (SELECT count(*) FROM event_journal WHERE event_type = 'order.placed') AS placed, \
         (SELECT count(*) - count(DISTINCT event_id) FROM event_journal) AS dups"
    )
    .fetch_one(c)
    .await
    .map(|r| (r.get::<i64, _>("placed"), r.get::<i64, _>("dups"))))
    .unwrap()
}

/// The id of the store's one product.
async fn product_of(app: &TestApp) -> String {
    app.get("/v1/admin/products?limit=1", Some(&admin(app).await))
        .await
        .json::<Value>()
        .await
        .unwrap()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn stock_set_in_the_inventory_process_reaches_the_catalog_through_nats(split: Split) {
    let app = &split.app;
    let shop = shop(app, 7, 100).await;
    // The stock level was set in the inventory process; its event reaches the catalog's
    // projection in this one only through NATS.
    let product = product_of(app).await;
    let in_stock = eventually(Duration::from_secs(20), || async {
        let body: Value = app
            .get(&format!("/v1/store/products/{product}"), None)
            .await
            .json()
            .await
            .unwrap();
        body["in_stock"] == json!(true) && body["variants"][0]["available"] == json!(7)
    })
    .await;
    assert!(in_stock, "the catalog learnt of the stock through NATS");
    assert_eq!(available(app, &shop).await, 7);
}

async fn killing_the_inventory_process_mid_load_leaves_everything_consistent(mut split: Split) {
    let stock = 40;
    let shop = shop(&split.app, stock, 100).await;
    let mut carts = Vec::new();
    for _ in 0..60 {
        carts.push(ready_cart(&split.app, &shop, 1, false).await);
    }
    let app = &split.app;
    let attempts = carts
        .iter()
        .enumerate()
        .map(|(n, (cart, token))| async move {
            check_out(app, cart, token, &format!("key-{n}"), "tok_success")
                .await
                .status()
                .as_u16()
        });
    let load = futures_util::future::join_all(attempts);
    tokio::pin!(load);
    // Some checkouts go through, then inventory dies under the rest of the load.
    let placed_some = eventually(Duration::from_secs(30), || async {
        figures(app).await.orders >= 5
    });
    tokio::select! {
        _ = placed_some => {}
        _ = &mut load => {}
    }
    split.inventory.kill().await;
    let statuses = load.await;
    split.inventory.restart().await;
    let app = &split.app;
    let token = admin(app).await;
    // Every refusal while inventory was down is a clear 503, never a 500.
    assert!(
        statuses.iter().all(|s| matches!(s, 201 | 409 | 503)),
        "{statuses:?}"
    );
    let placed = statuses.iter().filter(|s| **s == 201).count() as i64;
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    eprintln!(
        "placed {placed}, unavailable {unavailable} of {}",
        statuses.len()
    );
    // Once recovery has run against the restarted inventory: each order holds one sold unit,
    // nothing else is held, each paid order has its authorised payment and no other payment
    // is left authorised.
    let consistent = eventually(Duration::from_secs(60), || async {
        let f = figures(app).await;
        let level = stock_of(app, &token, &shop.variant).await;
        f.orders == placed
            && level["reserved"] == 0
            && level["on_hand"] == json!(stock - placed)
            && f.authorized == placed
            && f.open_checkouts == 0
    })
    .await;
    let f = figures(app).await;
    assert!(
        consistent,
        "placed {placed}, {f:?}, stock {}",
        stock_of(app, &token, &shop.variant).await
    );
}

#[derive(Debug)]
struct Figures {
    orders: i64,
    authorized: i64,
    open_checkouts: i64,
}

/// Orders, authorised payments and checkouts not yet finished, read from the store's database.
async fn figures(app: &TestApp) -> Figures {
    use sqlx::Row;
    let db = &app.store().db;
    let mut conn = db.read().await.unwrap();
    emporium_db::run!(&mut conn, |c| sqlx::query(
        "SELECT (SELECT count(*) FROM orders) AS orders, \
         (SELECT count(*) FROM payment_intents WHERE status = 'authorized') AS authorized, \
         (SELECT count(*) FROM checkouts WHERE state NOT IN ('completed', 'failed')) AS open"
    )
    .fetch_one(c)
    .await
    .map(|r| Figures {
        orders: r.get("orders"),
        authorized: r.get("authorized"),
        open_checkouts: r.get("open"),
    }))
    .unwrap()
}

/// A staff token of the test's own.
pub(crate) async fn admin(app: &TestApp) -> String {
    app.staff_token("ops@example.com", emporium_kernel::auth::Role::Admin)
        .await
}

/// The variant's stock summed over locations, from the inventory process's staff API (through
/// `token`: the process verifies the store's tokens with the shared keyring).
pub(crate) async fn stock_of(app: &TestApp, token: &str, variant: &str) -> Value {
    let r = app
        .request(
            Method::GET,
            &format!("/v1/admin/inventory/levels?variant_id={variant}"),
            None,
            Some(token),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_routes_refuse_a_call_without_a_valid_service_credential() {
    let test = "cluster::internal_routes_refuse_a_call_without_a_valid_service_credential";
    let Some(split) = split(Backend::Sqlite, test).await else {
        return;
    };
    let url = format!(
        "{}/internal/v1/inventory/availability",
        split.inventory.base
    );
    let body = json!({"variant_ids": []});
    let client = reqwest::Client::new();
    for credential in [None, Some("forged.token.value")] {
        let mut request = client.post(&url).json(&body);
        if let Some(c) = credential {
            request = request.header("x-emporium-service", c);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{credential:?}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "service_credential_invalid");
    }
    // Signed with another cluster's secret.
    let theirs = emporium_http::service::ServiceCredentials::new(
        "ordering",
        b"another-cluster-secret-another-cluster",
        None,
    );
    let r = client
        .post(&url)
        .header("x-emporium-service", theirs.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Ours passes.
    let ours = emporium_http::service::ServiceCredentials::new("ordering", SECRET.as_bytes(), None);
    let r = client
        .post(&url)
        .header("x-emporium-service", ours.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
    // An all-in-one store serves no internal route at all.
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/internal/v1/inventory/availability"))
        .header("x-emporium-service", ours.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_instance_leaves_the_registry_then_drains_then_exits() {
    let test = "cluster::a_terminated_instance_leaves_the_registry_then_drains_then_exits";
    // A long TTL: the entry can only vanish within the test by deregistration.
    let extra = "drain_ms = 3000\nregistry_ttl_ms = 60000";
    let Some(mut split) = split_with(Backend::Sqlite, test, extra, false).await else {
        return;
    };
    let registry = emporium_registry::Registry::connect(
        &split.nats.url,
        "emporium-registry",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let mut directory = registry.watch();
    let listed = |d: &emporium_registry::Directory, group: &str| d.get(group).map_or(0, Vec::len);
    let both = tokio::time::timeout(
        Duration::from_secs(10),
        directory.wait_for(|d| listed(d, "inventory") == 1 && listed(d, "ordering") == 1),
    )
    .await
    .map(|r| r.is_ok());
    assert!(
        matches!(both, Ok(true)),
        "both processes registered: {:?}",
        *directory.borrow()
    );
    let base = split.inventory.base.clone();
    let pid = split.inventory.process.id().unwrap();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    // Deregistered at once, long before its TTL.
    let gone = tokio::time::timeout(
        Duration::from_secs(5),
        directory.wait_for(|d| listed(d, "inventory") == 0),
    )
    .await
    .map(|r| r.is_ok());
    assert!(
        matches!(gone, Ok(true)),
        "deregistered: {:?}",
        *directory.borrow()
    );
    // Draining: not ready, yet still serving what balancers still send.
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let problem: Value = ready.json().await.unwrap();
    assert_eq!(problem["code"], "shutting_down");
    let alive = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        alive.status().as_u16(),
        200,
        "requests are still served while draining"
    );
    // Then it stops, cleanly.
    let status = tokio::time::timeout(Duration::from_secs(30), split.inventory.process.wait())
        .await
        .expect("exits after the drain")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        listed(&directory.borrow(), "ordering") == 1,
        "the other stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_data_stocks_the_inventory_process() {
    let test = "cluster::the_demo_data_stocks_the_inventory_process";
    let Some(split) = split(Backend::Sqlite, test).await else {
        return;
    };
    let app = &split.app;
    emporium::demo::seed(app.store()).await.unwrap();
    // The stock went to the inventory process, at its default location.
    let token = admin(app).await;
    let products: Value = app
        .get("/v1/admin/products?limit=5", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let items = products["items"].as_array().unwrap();
    assert!(!items.is_empty(), "the demo catalog was seeded");
    let mut stocked = 0;
    for product in items {
        let variant = product["variants"][0]["id"].as_str().unwrap();
        if stock_of(app, &token, variant).await["on_hand"]
            .as_i64()
            .unwrap()
            > 0
        {
            stocked += 1;
        }
    }
    assert!(stocked > 0, "some demo variants have stock: {products}");
    // Seeding again changes nothing (the location is found, not made twice).
    emporium::demo::seed(app.store()).await.unwrap();
    let locations: Value = app
        .get("/v1/admin/inventory/locations", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        locations["items"].as_array().unwrap().len(),
        1,
        "{locations}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_inventory_trips_the_deadline_and_the_breaker_which_closes_once_it_heals() {
    let test =
        "cluster::a_slow_inventory_trips_the_deadline_and_the_breaker_which_closes_once_it_heals";
    let Some(split) = split_with(Backend::Sqlite, test, "", true).await else {
        return;
    };
    let app = &split.app;
    let proxy = split.proxy.as_ref().unwrap();
    let upstream = format!("http://{}", proxy.local_addr());
    let shop = shop(app, 10, 100).await;
    let (cart, token) = ready_cart(app, &shop, 1, false).await;
    let variant: emporium_kernel::ids::VariantId = shop.variant.parse().unwrap();
    let inventory = &app.store().inventory_api;
    assert!(inventory.availability(&[variant]).await.is_ok());
    // Slower than the call's deadline (1 s): each call fails at its deadline, with the code
    // of an unavailable group, until five in a row open the breaker.
    proxy
        .set(Fault::Latency(Duration::from_secs(3)))
        .await
        .unwrap();
    for _ in 0..5 {
        let e = inventory.availability(&[variant]).await.unwrap_err();
        assert_eq!(
            emporium_kernel::DomainError::kind_and_code(&e).1,
            "inventory_unavailable"
        );
    }
    assert_eq!(breaker_state(app, &upstream).await, Some(1.0), "open");
    // Open: the checkout is refused at once with a clear 503, and nothing is left held.
    let r = check_out(app, &cart, &token, "while-open", "tok_success").await;
    assert_eq!(r.status().as_u16(), 503);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "inventory_unavailable", "{problem}");
    // Healed: once the breaker lets its probe through, calls succeed and it closes.
    proxy.set(Fault::Pass).await.unwrap();
    let healed = eventually(Duration::from_secs(20), || async {
        inventory.availability(&[variant]).await.is_ok()
    })
    .await;
    assert!(healed, "calls succeed again");
    assert_eq!(breaker_state(app, &upstream).await, Some(0.0), "closed");
    // The refused checkout is compensated by recovery; then the cart checks out.
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let placed = eventually(Duration::from_secs(20), || async {
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("after-healing-{n}");
        check_out(app, &cart, &token, &key, "tok_success")
            .await
            .status()
            == 201
    })
    .await;
    assert!(placed, "the cart checks out once inventory is back");
    let token = admin(app).await;
    let settled = eventually(Duration::from_secs(20), || async {
        let level = stock_of(app, &token, &shop.variant).await;
        level["on_hand"] == 9 && level["reserved"] == 0
    })
    .await;
    assert!(settled, "one unit sold, none held");
}

/// The breaker gauge of the store's client for `upstream`, from its `/metrics`.
pub(crate) async fn breaker_state(app: &TestApp, upstream: &str) -> Option<f64> {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let wanted = format!("upstream=\"{upstream}\"");
    text.lines()
        .filter(|l| l.starts_with("emporium_service_breaker_state{") && l.contains(&wanted))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A process of the store under test, from its configuration file.
async fn serve(config_file: &std::path::Path, base: &str) -> InventoryProcess {
    InventoryProcess::start(config_file, base).await
}

/// Count of the gateway's answered requests to `upstream`.
async fn answered_by(client: &reqwest::Client, gateway: &str, upstream: &str) -> u64 {
    let Ok(answer) = client
        .get(format!("{gateway}/gateway/metrics"))
        .send()
        .await
    else {
        return 0;
    };
    let text = answer.text().await.unwrap_or_default();
    let wanted = format!("upstream=\"{upstream}\"");
    text.lines()
        .filter(|l| {
            l.starts_with("emporium_gateway_upstream_requests_total{")
                && l.contains(&wanted)
                && l.contains("outcome=\"success\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Inventory and two core instances sharing one database, all from the binary, registered in
/// a NATS of the test's own, behind `emporium gateway` following the registry.
struct Fleet {
    inventory: InventoryProcess,
    cores: [InventoryProcess; 2],
    core_files: [std::path::PathBuf; 2],
    core_bases: [String; 2],
    gateway: String,
    client: reqwest::Client,
    _gateway: tokio::process::Child,
    _nats: Nats,
    _dir: tempfile::TempDir,
}

impl Fleet {
    /// Starts the fleet (PostgreSQL only: two instances share a database), or `None` after
    /// saying why it did not run. Core instances drain for `drain_ms` at SIGTERM.
    async fn start(test: &str, drain_ms: u64) -> Option<Self> {
        let admin = crate::helpers::postgres_url()?;
        let nats = start_nats(test).await?;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys.json");
        let core_db = fresh_postgres_database(&admin).await.0;
        let inventory_db = fresh_postgres_database(&admin).await.0;
        let config = |name: &str, port: u16, db: &str, services: &str| {
            let file = dir.path().join(format!("{name}.toml"));
            std::fs::write(
                &file,
                format!(
                    "listen = \"127.0.0.1:{port}\"\ndata_dir = {data:?}\ndatabase_url = \"{db}\"\n\
                     services = {services}\n[auth]\nsigning_keys_file = {keys:?}\n\
                     [cluster]\nnats_url = \"{nats}\"\nservice_secret = \"{SECRET}\"\n\
                     registry_ttl_ms = 3000\ndrain_ms = {drain_ms}\n",
                    data = dir.path().join(name),
                    nats = nats.url,
                ),
            )
            .unwrap();
            file
        };
        let core = r#"["identity", "catalog", "search", "ordering"]"#;
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let base = |port: u16| format!("http://127.0.0.1:{port}");
        let inventory_file = config("inventory", ports[0], &inventory_db, r#"["inventory"]"#);
        let core_files = [
            config("core-1", ports[1], &core_db, core),
            config("core-2", ports[2], &core_db, core),
        ];
        let inventory = serve(&inventory_file, &base(ports[0])).await;
        let cores = [
            serve(&core_files[0], &base(ports[1])).await,
            serve(&core_files[1], &base(ports[2])).await,
        ];
        // The gateway finds the core instances in the registry: no static instance.
        let gateway_file = dir.path().join("gateway.toml");
        std::fs::write(
            &gateway_file,
            format!(
                "listen = \"127.0.0.1:{gw}\"\n[[routes]]\nprefix = \"/\"\ngroup = \"catalog\"\n\
                 [health]\npath = \"/readyz\"\ninterval_ms = 200\ntimeout_ms = 500\n\
                 [registry]\nnats_url = \"{nats}\"\nttl_ms = 3000\n",
                gw = ports[3],
                nats = nats.url,
            ),
        )
        .unwrap();
        let gateway_process = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
            .arg("gateway")
            .arg("--config")
            .arg(&gateway_file)
            .env_remove("EMPORIUM_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let gateway = base(ports[3]);
        let client = reqwest::Client::new();
        let up = eventually(Duration::from_secs(20), || async {
            client
                .get(format!("{gateway}/gateway/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "the gateway answers");
        let fleet = Self {
            inventory,
            cores,
            core_files,
            core_bases: [base(ports[1]), base(ports[2])],
            gateway,
            client,
            _gateway: gateway_process,
            _nats: nats,
            _dir: dir,
        };
        // Both instances take requests through the gateway.
        let both = eventually(Duration::from_secs(30), || async {
            for _ in 0..10 {
                let _ = fleet
                    .client
                    .get(format!("{}/healthz", fleet.gateway))
                    .send()
                    .await;
            }
            fleet.answered_by(0).await > 0 && fleet.answered_by(1).await > 0
        })
        .await;
        assert!(both, "the gateway balances over both registered instances");
        Some(fleet)
    }

    /// Requests the gateway had answered by core instance `n`.
    async fn answered_by(&self, n: usize) -> u64 {
        answered_by(&self.client, &self.gateway, &self.core_bases[n]).await
    }

    /// Sends SIGTERM to core instance `n` and waits for it to exit, cleanly.
    async fn terminate_core(&mut self, n: usize) {
        terminate(&mut self.cores[n].process).await;
    }
}

/// SIGTERM, then the exit, which must be clean.
async fn terminate(process: &mut tokio::process::Child) {
    let pid = process.id().unwrap().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let status = tokio::time::timeout(Duration::from_secs(30), process.wait())
        .await
        .expect("exits after its drain")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// Readers that GET `url` in a loop until stopped, counting answers and keeping failures.
struct ReadLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    failures: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    served: std::sync::Arc<std::sync::atomic::AtomicU64>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl ReadLoad {
    fn start(client: &reqwest::Client, url: String, readers: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failures = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let readers = (0..readers)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => {
                                served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok(r) => failures.lock().unwrap().push(r.status().to_string()),
                            Err(e) => failures.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            failures,
            served,
            readers,
        }
    }

    fn count(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until `more` further reads were answered.
    async fn answered(&self, more: u64) -> bool {
        let target = self.count() + more;
        eventually(Duration::from_secs(30), || async { self.count() >= target }).await
    }

    /// Stops the readers; returns the reads answered and the failures.
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in self.readers {
            reader.await.unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (
            self.served.load(std::sync::atomic::Ordering::Relaxed),
            failures,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_ejects_a_killed_instance_without_failing_a_read_and_takes_it_back() {
    let test =
        "cluster::the_gateway_ejects_a_killed_instance_without_failing_a_read_and_takes_it_back";
    let Some(mut fleet) = Fleet::start(test, 0).await else {
        return;
    };
    let product = create_product_through(&fleet.client, &fleet.gateway, &fleet.core_files[0]).await;
    let load = ReadLoad::start(
        &fleet.client,
        format!("{}/v1/store/products/{product}", fleet.gateway),
        4,
    );
    assert!(load.answered(100).await);
    // SIGKILL: no deregistration, no drain; the gateway must find out by itself.
    fleet.cores[1].kill().await;
    let at_kill = load.count();
    assert!(load.answered(300).await);
    // Back on the same port: it registers again and the gateway takes it back.
    let before = fleet.answered_by(1).await;
    fleet.cores[1].restart().await;
    let rejoined = eventually(Duration::from_secs(30), || async {
        fleet.answered_by(1).await > before
    })
    .await;
    let (reads, failures) = load.finish().await;
    assert!(rejoined, "the restarted instance takes requests again");
    eprintln!(
        "reads: {reads} ({} after the kill), failed: {}",
        reads - at_kill,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_instance_under_load_fails_no_request() {
    let test = "cluster::a_rolling_restart_of_every_instance_under_load_fails_no_request";
    let Some(mut fleet) = Fleet::start(test, 1_000).await else {
        return;
    };
    let product = create_product_through(&fleet.client, &fleet.gateway, &fleet.core_files[0]).await;
    let load = ReadLoad::start(
        &fleet.client,
        format!("{}/v1/store/products/{product}", fleet.gateway),
        4,
    );
    assert!(load.answered(100).await);
    // One instance after the other: not ready, deregistered, drained, stopped, started again,
    // and taking requests again before the next one goes.
    for n in 0..2 {
        fleet.terminate_core(n).await;
        assert!(load.answered(100).await, "the other instance serves alone");
        let before = fleet.answered_by(n).await;
        fleet.cores[n].restart().await;
        let rejoined = eventually(Duration::from_secs(30), || async {
            fleet.answered_by(n).await > before
        })
        .await;
        assert!(rejoined, "core-{} takes requests again", n + 1);
    }
    terminate(&mut fleet.inventory.process).await;
    fleet.inventory.restart().await;
    assert!(load.answered(100).await);
    let (reads, failures) = load.finish().await;
    eprintln!("reads: {reads}, failed: {}", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// Creates a published product through the gateway as an owner made with the CLI over
/// `core_file`'s database; returns its id.
async fn create_product_through(
    client: &reqwest::Client,
    gateway: &str,
    core_file: &std::path::Path,
) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .arg("--config")
        .arg(core_file)
        .args([
            "admin",
            "create",
            "--email",
            "owner@example.com",
            "--role",
            "owner",
        ])
        .env_remove("EMPORIUM_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", crate::helpers::PASSWORD).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token: Value = client
        .post(format!("{gateway}/v1/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "owner@example.com"),
            ("password", crate::helpers::PASSWORD),
            ("scope", "admin"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let r = client
        .post(format!("{gateway}/v1/admin/products"))
        .bearer_auth(&token)
        .json(&crate::catalog::simple_product(
            "Kettle",
            "KET-1",
            5_000,
            &[],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}
