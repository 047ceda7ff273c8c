//! Groups in processes of their own, and what the rest of the store does when one is gone or
//! sick: carts keep their lines from the last data known of the catalog, marked with its time,
//! through resets, a blackhole (the breaker opens and closes again) and a dead process; a
//! checkout takes that data while it is young and refuses it with a clear 503 once it is not,
//! leaving nothing half-done; the product list outlives search; tokens outlive identity.

use std::sync::Arc;
use std::time::Duration;

use emporium::config::Group;
use serde_json::{Value, json};

use crate::checkout::{available, check_out, ready_cart, shop};
use crate::cluster::{InventoryProcess, Nats, SECRET, breaker_state, start_nats};
use crate::events::free_port;
use crate::helpers::{Backend, TestApp, eventually};
use emporium_faultproxy::{Fault, FaultProxy};

/// How old the last known catalog data may be for a checkout, in this test's store.
const STALE_LIMIT: time::Duration = time::Duration::minutes(1);

/// A process of one group alone, configured (not started) in a folder of its own, with the
/// keyring the store must share.
struct Alone {
    dir: tempfile::TempDir,
    keys: std::path::PathBuf,
    base: String,
    config_file: std::path::PathBuf,
}

impl Alone {
    fn configure(nats: &Nats, group: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys.json");
        let port = free_port();
        let config_file = dir.path().join(format!("{group}.toml"));
        std::fs::write(
            &config_file,
            format!(
                "listen = \"127.0.0.1:{port}\"\n\
                 data_dir = {data:?}\n\
                 services = [\"{group}\"]\n\
                 [auth]\nsigning_keys_file = {keys:?}\n\
                 [outbox]\npoll_interval_ms = 200\n\
                 [cluster]\nnats_url = \"{nats}\"\nservice_secret = \"{SECRET}\"\n",
                data = dir.path().join("data"),
                nats = nats.url,
            ),
        )
        .unwrap();
        Self {
            keys,
            base: format!("http://127.0.0.1:{port}"),
            config_file,
            dir,
        }
    }

    async fn start(&self) -> InventoryProcess {
        InventoryProcess::start(&self.config_file, &self.base).await
    }

    /// Makes `config` the rest of the store: every group but this one's, on the same NATS,
    /// keyring and service secret.
    fn rest(&self, nats: &Nats, config: &mut emporium::config::Config) {
        let group = self.config_file.file_stem().and_then(|s| s.to_str());
        config.services = Group::ALL
            .into_iter()
            .filter(|g| Some(g.name()) != group)
            .collect();
        config.auth.signing_keys_file = Some(self.keys.clone());
        config.cluster.nats_url = Some(nats.url.clone());
        config.cluster.service_secret = Some(emporium_kernel::Secret::new(SECRET.to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_catalog_carts_show_the_last_known_data_and_checkout_takes_it_while_young() {
    let test = "degradation::without_the_catalog_carts_show_the_last_known_data_and_checkout_takes_it_while_young";
    let Some(nats) = start_nats(test).await else {
        return;
    };
    let alone = Alone::configure(&nats, "catalog");
    let catalog_base = alone.base.clone();
    // The rest of the store, on a clock of the test's own: the catalog data's age is told on it.
    let clock = Arc::new(emporium_kernel::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let mut app = TestApp::spawn_with_clock(Backend::Sqlite, clock.clone(), |config| {
        alone.rest(&nats, config);
        config
            .cluster
            .upstreams
            .insert(Group::Catalog, vec![catalog_base.clone()]);
        config.cluster.call_timeout_ms = 1_000;
        config.cluster.catalog_stale_limit_ms = STALE_LIMIT.whole_milliseconds() as u64;
    })
    .await;
    // The catalog process starts once the store's keyring exists, and finds pricing and
    // identity in the registry.
    let mut catalog = alone.start().await;
    app.catalog_base = Some(catalog_base.clone());

    // Across the boundary: products are created in the catalog process, carts read them over
    // the network, and a checkout places an order.
    let shop = shop(&app, 10, 100).await;
    let (first, first_token) = ready_cart(&app, &shop, 1, false).await;
    let r = check_out(&app, &first, &first_token, "fresh", "tok_success").await;
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    // The catalog's storefront prices come from pricing, in the other process: VAT of DE.
    let product = app
        .get("/v1/store/products?currency=EUR&country=DE&limit=1", None)
        .await;
    assert_eq!(product.status().as_u16(), 200);
    let page: Value = product.json().await.unwrap();
    let price = &page["items"][0]["variants"][0]["calculated_price"];
    assert!(price["tax_rate_id"].is_string(), "{page}");
    assert_eq!(price["tax_inclusive"], true, "{page}");
    assert!(
        price["amount_without_tax"].as_i64() < price["calculated_amount"].as_i64(),
        "{page}"
    );

    // Two more carts while the catalog answers, then the catalog goes away.
    let (young, young_token) = ready_cart(&app, &shop, 1, false).await;
    let (old, old_token) = ready_cart(&app, &shop, 2, false).await;
    let fresh: Value = cart_of(&app, &old, &old_token).await;
    assert!(fresh.get("catalog_as_of").is_none(), "{fresh}");
    catalog.kill().await;

    // The cart still shows its lines and totals, from the last known data, with its time.
    let stale: Value = cart_of(&app, &old, &old_token).await;
    assert!(stale["catalog_as_of"].is_string(), "{stale}");
    assert_eq!(stale["items"], fresh["items"]);
    assert_eq!(stale["totals"], fresh["totals"]);

    // Young enough: the checkout takes it.
    let r = check_out(&app, &young, &young_token, "young", "tok_success").await;
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let stock_before = available(&app, &shop).await;

    // Too old: a clear 503 before anything is recorded; the cart stays open, nothing is held.
    clock.advance(STALE_LIMIT + time::Duration::seconds(1));
    let r = check_out(&app, &old, &old_token, "old", "tok_success").await;
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "catalog_unavailable", "{problem}");
    assert_eq!(available(&app, &shop).await, stock_before);
    let cart: Value = cart_of(&app, &old, &old_token).await;
    assert!(cart.get("checkout_id").is_none(), "{cart}");

    // Back: fresh data again, and the same cart checks out.
    catalog.restart().await;
    let back = eventually(Duration::from_secs(20), || async {
        let cart: Value = cart_of(&app, &old, &old_token).await;
        cart.get("catalog_as_of").is_none()
    })
    .await;
    assert!(back, "the cart reads fresh catalog data again");
    let r = check_out(&app, &old, &old_token, "old-again", "tok_success").await;
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    assert_eq!(available(&app, &shop).await, stock_before - 2);
    drop(nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_apart_follows_the_catalog_and_the_product_list_outlives_it() {
    let test = "degradation::search_apart_follows_the_catalog_and_the_product_list_outlives_it";
    let Some(nats) = start_nats(test).await else {
        return;
    };
    let alone = Alone::configure(&nats, "search");
    let search_base = alone.base.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        alone.rest(&nats, config);
        config.outbox.poll_interval_ms = 100;
    })
    .await;
    let mut search = alone.start().await;
    let client = reqwest::Client::new();
    let hits = |query: &'static str| {
        let (client, base) = (client.clone(), search_base.clone());
        async move {
            let Ok(answer) = client
                .get(format!("{base}/v1/store/search?{query}"))
                .send()
                .await
            else {
                return None;
            };
            if !answer.status().is_success() {
                return None;
            }
            answer.json::<Value>().await.ok()
        }
    };

    // A product created in the store reaches the search process's index through NATS, and
    // its calculated price comes from pricing in the store.
    let shop = shop(&app, 5, 10).await;
    let found = eventually(Duration::from_secs(30), || async {
        hits("q=kettle&currency=EUR&country=DE")
            .await
            .is_some_and(|page| page["total"] == 1)
    })
    .await;
    assert!(found, "the product is found in the search process");
    let page = hits("q=kettle&currency=EUR&country=DE").await.unwrap();
    let variant = &page["hits"][0]["variants"][0];
    assert_eq!(variant["id"], shop.variant.as_str(), "{page}");
    assert!(
        variant["calculated_price"]["tax_rate_id"].is_string(),
        "{page}"
    );

    // Search down: the storefront's product list is the catalog's, from the database.
    search.kill().await;
    let list = app.get("/v1/store/products?limit=5", None).await;
    assert_eq!(list.status().as_u16(), 200);
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    // A product created while search is down is found once it is back: the events waited in
    // NATS for its consumer.
    let admin = crate::cluster::admin(&app).await;
    crate::catalog::create_product(
        &app,
        &admin,
        crate::catalog::simple_product("Teapot", "TEA-1", 2_500, &[]),
    )
    .await;
    search.restart().await;
    let caught_up = eventually(Duration::from_secs(30), || async {
        hits("q=teapot")
            .await
            .is_some_and(|page| page["total"] == 1)
            && hits("q=kettle")
                .await
                .is_some_and(|page| page["total"] == 1)
    })
    .await;
    assert!(caught_up, "both products are found after the restart");
    drop(nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_apart_signs_tokens_the_store_honours_and_revokes_across_processes() {
    let test =
        "degradation::identity_apart_signs_tokens_the_store_honours_and_revokes_across_processes";
    let Some(nats) = start_nats(test).await else {
        return;
    };
    let alone = Alone::configure(&nats, "identity");
    let identity = alone.base.clone();
    // Identity first: it creates the keyring the store then reads. The owner is made by the
    // command line, where identity runs.
    let mut identity_process = alone.start().await;
    let config = alone.config_file.to_str().unwrap();
    let made = crate::cli::emporium(
        alone.dir.path(),
        &[
            "--config",
            config,
            "admin",
            "create",
            "--email",
            "owner@example.com",
            "--role",
            "owner",
        ],
        &[],
        Some("a long owner passphrase\n"),
    );
    assert!(made.status.success(), "{made:?}");
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        alone.rest(&nats, config);
    })
    .await;
    let client = reqwest::Client::new();
    let sign_in = |username: &'static str, password: &'static str, scope: &'static str| {
        let (client, identity) = (client.clone(), identity.clone());
        async move {
            let mut form = vec![
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ];
            if !scope.is_empty() {
                form.push(("scope", scope));
            }
            let r = client
                .post(format!("{identity}/v1/auth/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "sign-in of {username}");
            r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };

    // The owner's token, signed by identity, is honoured by the store's staff routes.
    let owner = sign_in("owner@example.com", "a long owner passphrase", "admin").await;
    let product = crate::catalog::create_product(
        &app,
        &owner,
        crate::catalog::simple_product("Kettle", "KET-1", 5_000, &[]),
    )
    .await;
    let variant = product["variants"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post_json(
            "/v1/admin/inventory/locations",
            &json!({"code": "main", "name": "Main"}),
            Some(&owner),
        )
        .await;
    let location: Value = r.json().await.unwrap();
    let r = app
        .request(
            reqwest::Method::PUT,
            &format!(
                "/v1/admin/inventory/levels/{variant}/{}",
                location["id"].as_str().unwrap()
            ),
            Some(&json!({"on_hand": 5, "reason": "delivery"})),
            Some(&owner),
            &[],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let r = app
        .post_json(
            "/v1/admin/price-lists",
            &json!({"name": "VIP", "customer_groups": ["vip"],
                    "prices": [{"variant_id": variant, "price": {"amount": 4_000, "currency": "EUR"}}]}),
            Some(&owner),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);

    // A customer registered with identity, put in the `vip` group there, gets the group's
    // price in a cart of the store: the store asks identity for the customer's groups.
    let r = client
        .post(format!("{identity}/v1/auth/register"))
        .json(&json!({"email": "ada@example.com", "password": crate::helpers::PASSWORD, "name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let customer = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client
        .put(format!("{identity}/v1/admin/customers/{customer}/groups"))
        .bearer_auth(&owner)
        .json(&json!({"groups": ["vip"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ada = sign_in("ada@example.com", crate::helpers::PASSWORD, "").await;
    let r = app
        .post_json("/v1/store/carts", &json!({"currency": "EUR"}), Some(&ada))
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let cart = r.json::<Value>().await.unwrap()["cart"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post_json(
            &format!("/v1/store/carts/{cart}/items"),
            &json!({"variant_id": variant, "quantity": 1}),
            Some(&ada),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let cart_body: Value = r.json().await.unwrap();
    assert_eq!(cart_body["customer_id"], customer.as_str(), "{cart_body}");
    assert_eq!(cart_body["items"][0]["unit_price"], 4_000, "{cart_body}");

    // A password change at identity ends every token of the customer: the store refuses the
    // old one within a refresh, and takes the new one.
    let r = client
        .post(format!("{identity}/v1/store/me/password"))
        .bearer_auth(&ada)
        .json(&json!({"current_password": crate::helpers::PASSWORD,
                      "new_password": "another long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let fresh = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = eventually(Duration::from_secs(20), || async {
        app.get(&format!("/v1/store/carts/{cart}"), Some(&ada))
            .await
            .status()
            == 401
    })
    .await;
    assert!(refused, "the old token is refused by the store");

    // Identity down: the store still verifies tokens from the keyring it holds, and prices
    // the cart with the customer's last known groups.
    identity_process.kill().await;
    let r = app
        .get(&format!("/v1/store/carts/{cart}"), Some(&fresh))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let cart_body: Value = r.json().await.unwrap();
    assert_eq!(cart_body["items"][0]["unit_price"], 4_000, "{cart_body}");
    drop(nats);
}

/// A cart's answer, read through its token.
async fn cart_of(app: &TestApp, cart: &str, token: &str) -> Value {
    let r = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/store/carts/{cart}"),
            None,
            None,
            &[("x-cart-token", token)],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_and_a_blackhole_before_the_catalog_open_the_breaker_and_carts_stay_readable() {
    let test = "degradation::resets_and_a_blackhole_before_the_catalog_open_the_breaker_and_carts_stay_readable";
    let Some(nats) = start_nats(test).await else {
        return;
    };
    let alone = Alone::configure(&nats, "catalog");
    let catalog_addr = alone.base.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), catalog_addr)
        .await
        .unwrap();
    let upstream = format!("http://{}", proxy.local_addr());
    let through = upstream.clone();
    let mut app = TestApp::spawn_with(Backend::Sqlite, |config| {
        alone.rest(&nats, config);
        config
            .cluster
            .upstreams
            .insert(Group::Catalog, vec![through]);
        config.cluster.call_timeout_ms = 1_000;
        config.cluster.call_retries = 0;
    })
    .await;
    let _catalog = alone.start().await;
    app.catalog_base = Some(alone.base.clone());
    let shop = shop(&app, 10, 100).await;
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    let fresh = cart_of(&app, &cart, &token).await;
    assert!(fresh.get("catalog_as_of").is_none(), "{fresh}");

    // Resets: each call fails at once; the cart answers from the last known data.
    proxy.set(Fault::Reset).await.unwrap();
    let stale = cart_of(&app, &cart, &token).await;
    assert!(stale["catalog_as_of"].is_string(), "{stale}");
    assert_eq!(stale["totals"], fresh["totals"]);

    // A blackhole: calls run into their deadline until failures in a row open the breaker;
    // every cart read still answers, from the last known data.
    proxy.set(Fault::Blackhole).await.unwrap();
    let opened = eventually(Duration::from_secs(30), || async {
        let stale = cart_of(&app, &cart, &token).await;
        assert!(stale["catalog_as_of"].is_string(), "{stale}");
        breaker_state(&app, &upstream).await == Some(1.0)
    })
    .await;
    assert!(opened, "the breaker opens");

    // Healed: the half-open probe gets through, the breaker closes, the data is fresh again.
    proxy.set(Fault::Pass).await.unwrap();
    let healed = eventually(Duration::from_secs(30), || async {
        cart_of(&app, &cart, &token)
            .await
            .get("catalog_as_of")
            .is_none()
    })
    .await;
    assert!(healed, "fresh catalog data once the catalog answers");
    assert_eq!(breaker_state(&app, &upstream).await, Some(0.0), "closed");
    drop(nats);
}
