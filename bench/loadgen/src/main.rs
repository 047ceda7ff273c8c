//! Load generator for the checkout benchmark (`bench/checkout.sh`).
//!
//! It sets up a small shop through the staff API (`--products` products, three by default,
//! with ample stock at a fresh location, German VAT, a flat shipping option, a 10 % coupon limited to one use per
//! shopper), then runs two phases with `--clients` concurrent clients:
//!
//! 1. **carts**: every client fills its own carts the way a storefront does: create a guest
//!    cart, add three lines of different products (with `--products 3` every cart buys the
//!    same three, the contended case of a sale; with more, carts spread over them; each answer carries the full quote: these are the "add item →
//!    totals" latencies), set the address, choose shipping, add the coupon;
//! 2. **checkout**: every client checks out its carts one after another with a fresh
//!    `Idempotency-Key` and the `test` provider's `tok_success`.
//!
//! With `--journeys N` it instead runs one shopper's whole path N times, one journey at a
//! time: the six requests from a new cart to a placed order (create the cart, add an item, set
//! the e-mail and address, list the shipping options, choose one, check out), and reports the
//! latency of the whole journey and of each request.
//!
//! With `--pause-before-checkout` it waits for a line on standard input between the phases, so
//! a script can reset the database's statement counters and count the checkout phase alone.
//!
//! Throughput is successful checkouts divided by the wall time of phase 2; latencies are
//! measured per request on the client. Every answer other than the expected status counts as
//! an error and is reported by status and problem code.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Checkout load generator for Emporium")]
struct Cli {
    /// The store's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// A staff user with at least the admin role (sets up the shop).
    #[arg(long)]
    admin_email: String,
    /// Its password.
    #[arg(long, env = "LOADGEN_ADMIN_PASSWORD")]
    admin_password: String,
    /// Concurrent clients, each with its own carts.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Carts each client fills and checks out.
    #[arg(long, default_value_t = 100)]
    carts_per_client: usize,
    /// Products in the shop (at least 3); each cart holds three of them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..))]
    products: u16,
    /// Run this many single-shopper journeys (six requests each) instead of the two phases.
    #[arg(long)]
    journeys: Option<usize>,
    /// Wait for a line on standard input after the carts are filled, before checking out.
    #[arg(long)]
    pause_before_checkout: bool,
}

/// The shop the run buys from.
#[derive(Clone)]
struct Shop {
    variants: Vec<String>,
    shipping: String,
    coupon: String,
}

/// A cart ready to check out.
struct ReadyCart {
    id: String,
    token: String,
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    add_item: Vec<Duration>,
    checkout: Vec<Duration>,
    placed: usize,
    errors: BTreeMap<String, usize>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let http = Client::builder()
        .pool_max_idle_per_host(cli.clients * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let base = cli.base.trim_end_matches('/').to_owned();
    let admin = admin_token(&http, &base, &cli.admin_email, &cli.admin_password).await?;
    let shop = set_up(&http, &base, &admin, usize::from(cli.products)).await?;
    println!(
        "shop ready: {} variants, coupon {}; {} clients × {} carts",
        shop.variants.len(),
        shop.coupon,
        cli.clients,
        cli.carts_per_client
    );
    if let Some(journeys) = cli.journeys {
        return run_journeys(&http, &base, &shop, journeys).await;
    }

    // Phase 1: fill the carts.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..cli.clients {
        let (http, base, shop) = (http.clone(), base.clone(), shop.clone());
        let n = cli.carts_per_client;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut carts = Vec::with_capacity(n);
            for i in 0..n {
                carts.push(fill_cart(&http, &base, &shop, client, i, &mut tally).await?);
            }
            anyhow::Ok((carts, tally))
        }));
    }
    let mut per_client = Vec::new();
    let mut tally = Tally::default();
    for task in futures_util::future::join_all(tasks).await {
        let (carts, t) = task??;
        per_client.push(carts);
        tally.add_item.extend(t.add_item);
    }
    let fill_time = started.elapsed();
    println!(
        "carts: {} filled in {:.2} s; add item → totals: {}",
        cli.clients * cli.carts_per_client,
        fill_time.as_secs_f64(),
        summary(&mut tally.add_item)
    );

    if cli.pause_before_checkout {
        println!("carts ready; press enter to check out");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
    }

    // Phase 2: check them out.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for carts in per_client {
        let (http, base) = (http.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            for cart in carts {
                check_out(&http, &base, &cart, &mut tally).await?;
            }
            anyhow::Ok(tally)
        }));
    }
    for task in futures_util::future::join_all(tasks).await {
        let t = task??;
        tally.checkout.extend(t.checkout);
        tally.placed += t.placed;
        for (k, v) in t.errors {
            *tally.errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "checkout: {} orders in {:.2} s = {:.0} orders/s; latency {}",
        tally.placed,
        elapsed,
        tally.placed as f64 / elapsed,
        summary(&mut tally.checkout)
    );
    if tally.errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors: {:?}", tally.errors);
        bail!("some checkouts failed");
    }
    Ok(())
}

/// One shopper's six requests, `count` times in a row: the latency of each journey and of
/// each of its requests. The cart is created with the e-mail, as a storefront that knows it
/// does; the address goes in with a `PATCH` as a checkout form sends it.
async fn run_journeys(http: &Client, base: &str, shop: &Shop, count: usize) -> Result<()> {
    const STEPS: [&str; 6] = [
        "create cart",
        "add item",
        "set address",
        "list shipping",
        "choose shipping",
        "check out",
    ];
    let mut whole = Vec::with_capacity(count);
    let mut steps: Vec<Vec<Duration>> = vec![Vec::with_capacity(count); STEPS.len()];
    for n in 0..count {
        let started = Instant::now();
        let mut lap = Instant::now();
        let mut split = |steps: &mut Vec<Vec<Duration>>, i: usize| {
            steps[i].push(lap.elapsed());
            lap = Instant::now();
        };
        let created = shopper(
            http,
            format!("{base}/v1/store/carts"),
            Method::POST,
            None,
            json!({"currency": "EUR"}),
            StatusCode::CREATED,
        )
        .await?;
        split(&mut steps, 0);
        let id = created["cart"]["id"].as_str().context("cart id")?;
        let token = created["token"].as_str().context("cart token")?;
        let cart = format!("{base}/v1/store/carts/{id}");
        let variant = &shop.variants[n % shop.variants.len()];
        shopper(
            http,
            format!("{cart}/items"),
            Method::POST,
            Some(token),
            json!({"variant_id": variant, "quantity": 1}),
            StatusCode::OK,
        )
        .await?;
        split(&mut steps, 1);
        shopper(
            http,
            cart.clone(),
            Method::PATCH,
            Some(token),
            json!({"email": format!("journey-{n}@bench.example"),
                   "shipping_address": {"name": "Erika Mustermann", "line1": "Heidestraße 17",
                   "city": "Köln", "postal_code": "51147", "country": "DE"}}),
            StatusCode::OK,
        )
        .await?;
        split(&mut steps, 2);
        let r = http
            .get(format!("{cart}/shipping-options"))
            .header("x-cart-token", token)
            .send()
            .await?;
        let options = expect(r, StatusCode::OK).await?;
        split(&mut steps, 3);
        let option = options
            .as_array()
            .or_else(|| options["items"].as_array())
            .and_then(|o| o.first())
            .and_then(|o| o["id"].as_str().or_else(|| o["option_id"].as_str()))
            .unwrap_or(&shop.shipping)
            .to_owned();
        shopper(
            http,
            format!("{cart}/shipping-option"),
            Method::PUT,
            Some(token),
            json!({"option_id": option}),
            StatusCode::OK,
        )
        .await?;
        split(&mut steps, 4);
        let r = http
            .post(format!("{cart}/checkout"))
            .header("x-cart-token", token)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"payment": {"provider": "test", "token": "tok_success"}}))
            .send()
            .await?;
        let placed = expect(r, StatusCode::CREATED).await.context("checkout")?;
        ensure!(placed["order"]["id"].is_string(), "no order: {placed}");
        split(&mut steps, 5);
        whole.push(started.elapsed());
    }
    println!("journey (six requests): {}", summary(&mut whole));
    for (name, samples) in STEPS.iter().zip(steps.iter_mut()) {
        println!("  {name}: {}", summary(samples));
    }
    Ok(())
}

/// p50 / p90 / p99 / max of `samples`, in milliseconds.
fn summary(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "no samples".to_owned();
    }
    samples.sort_unstable();
    let at = |p: f64| {
        let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n = {})",
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0),
        samples.len()
    )
}

async fn admin_token(http: &Client, base: &str, email: &str, password: &str) -> Result<String> {
    let r = http
        .post(format!("{base}/v1/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
            ("scope", "admin"),
        ])
        .send()
        .await?;
    let body = expect(r, StatusCode::OK).await.context("staff sign-in")?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token in the token answer")
}

/// Sends `body` to `path` as `method` with the staff token and expects `status`.
async fn staff(
    http: &Client,
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
    status: StatusCode,
) -> Result<Value> {
    let r = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    expect_one_of(r, &[status])
        .await
        .with_context(|| path.to_owned())
}

async fn expect(r: reqwest::Response, status: StatusCode) -> Result<Value> {
    expect_one_of(r, &[status]).await
}

async fn expect_one_of(r: reqwest::Response, statuses: &[StatusCode]) -> Result<Value> {
    let got = r.status();
    let text = r.text().await?;
    ensure!(
        statuses.contains(&got),
        "expected {statuses:?}, got {got}: {text}"
    );
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn set_up(http: &Client, base: &str, admin: &str, products: usize) -> Result<Shop> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    let location = staff(
        http,
        base,
        admin,
        Method::POST,
        "/v1/admin/inventory/locations",
        json!({"code": format!("bench-{}", run.to_lowercase()), "name": format!("Bench {run}")}),
        StatusCode::CREATED,
    )
    .await?;
    let location = location["id"].as_str().context("location id")?.to_owned();
    let mut variants = Vec::new();
    let kinds = [("Teapot", 3_490), ("Mug", 1_290), ("Tea tin", 890)];
    for i in 0..products {
        let (title, price) = kinds[i % kinds.len()];
        let product = staff(
            http,
            base,
            admin,
            Method::POST,
            "/v1/admin/products",
            json!({
                "title": format!("Bench {title} {i} {run}"),
                "status": "published",
                "variants": [{"sku": format!("BENCH-{run}-{i}"),
                              "weight_grams": 400,
                              "prices": [{"currency": "EUR", "amount": price}]}],
            }),
            StatusCode::CREATED,
        )
        .await?;
        let variant = product["variants"][0]["id"]
            .as_str()
            .context("variant id")?
            .to_owned();
        staff(
            http,
            base,
            admin,
            Method::PUT,
            &format!("/v1/admin/inventory/levels/{variant}/{location}"),
            json!({"on_hand": 10_000_000, "reason": "delivery"}),
            StatusCode::OK,
        )
        .await?;
        variants.push(variant);
    }
    // One rate per region: a second run against the same store finds it there (409).
    let r = http
        .post(format!("{base}/v1/admin/tax-rates"))
        .bearer_auth(admin)
        .json(&json!({"name": "VAT", "country": "DE", "basis_points": 1900, "inclusive": true}))
        .send()
        .await?;
    expect_one_of(r, &[StatusCode::CREATED, StatusCode::CONFLICT])
        .await
        .context("/v1/admin/tax-rates")?;
    let shipping = staff(
        http,
        base,
        admin,
        Method::POST,
        "/v1/admin/shipping-options",
        json!({"name": format!("Parcel {run}"), "countries": ["DE"],
               "rate": {"type": "flat", "price": {"amount": 490, "currency": "EUR"}}}),
        StatusCode::CREATED,
    )
    .await?;
    let promotion = staff(
        http,
        base,
        admin,
        Method::POST,
        "/v1/admin/promotions",
        json!({"name": format!("Ten off {run}"), "needs_coupon": true,
               "benefit": {"type": "order_percent", "basis_points": 1000}}),
        StatusCode::CREATED,
    )
    .await?;
    let coupon = format!("BENCH{run}");
    staff(
        http,
        base,
        admin,
        Method::POST,
        "/v1/admin/coupons",
        json!({"code": coupon, "promotion_id": promotion["id"], "per_customer_limit": 1}),
        StatusCode::CREATED,
    )
    .await?;
    Ok(Shop {
        variants,
        shipping: shipping["id"].as_str().context("shipping id")?.to_owned(),
        coupon,
    })
}

/// Sends a storefront request with the cart token and expects `status`.
async fn shopper(
    http: &Client,
    url: String,
    method: Method,
    token: Option<&str>,
    body: Value,
    status: StatusCode,
) -> Result<Value> {
    let mut request = http.request(method, &url).json(&body);
    if let Some(token) = token {
        request = request.header("x-cart-token", token);
    }
    expect(request.send().await?, status)
        .await
        .with_context(|| url.clone())
}

async fn fill_cart(
    http: &Client,
    base: &str,
    shop: &Shop,
    client: usize,
    n: usize,
    tally: &mut Tally,
) -> Result<ReadyCart> {
    let created = shopper(
        http,
        format!("{base}/v1/store/carts"),
        Method::POST,
        None,
        json!({"currency": "EUR", "email": format!("shopper-{client}-{n}@bench.example")}),
        StatusCode::CREATED,
    )
    .await?;
    let id = created["cart"]["id"]
        .as_str()
        .context("cart id")?
        .to_owned();
    let token = created["token"].as_str().context("cart token")?.to_owned();
    let cart = format!("{base}/v1/store/carts/{id}");
    // Three different products, a different three for each cart when there are more.
    let first = (client * 7919 + n * 3) % shop.variants.len();
    for i in 0..3 {
        let variant = &shop.variants[(first + i) % shop.variants.len()];
        let started = Instant::now();
        let body = shopper(
            http,
            format!("{cart}/items"),
            Method::POST,
            Some(&token),
            json!({"variant_id": variant, "quantity": i + 1}),
            StatusCode::OK,
        )
        .await?;
        tally.add_item.push(started.elapsed());
        ensure!(
            body["totals"]["total"].as_i64().unwrap_or(0) > 0,
            "an add-item answer without totals: {body}"
        );
    }
    shopper(
        http,
        cart.clone(),
        Method::PATCH,
        Some(&token),
        json!({"shipping_address": {"name": "Erika Mustermann", "line1": "Heidestraße 17",
               "city": "Köln", "postal_code": "51147", "country": "DE"}}),
        StatusCode::OK,
    )
    .await?;
    shopper(
        http,
        format!("{cart}/shipping-option"),
        Method::PUT,
        Some(&token),
        json!({"option_id": shop.shipping}),
        StatusCode::OK,
    )
    .await?;
    shopper(
        http,
        format!("{cart}/coupons"),
        Method::POST,
        Some(&token),
        json!({"code": shop.coupon}),
        StatusCode::OK,
    )
    .await?;
    Ok(ReadyCart { id, token })
}

async fn check_out(http: &Client, base: &str, cart: &ReadyCart, tally: &mut Tally) -> Result<()> {
    let started = Instant::now();
    let r = http
        .post(format!("{base}/v1/store/carts/{}/checkout", cart.id))
        .header("x-cart-token", &cart.token)
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"payment": {"provider": "test", "token": "tok_success"}}))
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    tally.checkout.push(started.elapsed());
    if status == StatusCode::CREATED && body["order"]["id"].is_string() {
        tally.placed += 1;
    } else {
        let code = body["code"].as_str().unwrap_or("-");
        *tally
            .errors
            .entry(format!("{} {code}", status.as_u16()))
            .or_default() += 1;
    }
    Ok(())
}
