//! Indexes synthetic products through the projector and prints how long typical queries take.
//!
//! `cargo run --release -p emporium-search --example latency [products]` (default 10 000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_kernel::Envelope;
use emporium_kernel::ids::{CategoryId, ProductId, VariantId};
use emporium_search::{
    EventFeed, MemoryFeed, SearchIndex, SearchProjector, SearchRequest, SearchSort,
};
use serde_json::json;

const WORDS: [&str; 24] = [
    "linen", "cotton", "wool", "silk", "shirt", "trousers", "scarf", "hat", "jacket", "dress",
    "blue", "red", "green", "black", "white", "summer", "winter", "classic", "slim", "relaxed",
    "organic", "soft", "light", "warm",
];

fn envelope(event_type: &str, aggregate_id: String, data: serde_json::Value) -> Envelope {
    Envelope {
        id: uuid::Uuid::now_v7(),
        event_type: event_type.into(),
        version: 1,
        aggregate_id,
        sequence: 1,
        occurred_at: time::OffsetDateTime::UNIX_EPOCH,
        trace: None,
        data,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let products: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let feed = Arc::new(MemoryFeed::new());
    let roots: Vec<CategoryId> = (0..5).map(|_| CategoryId::generate()).collect();
    let mut categories = Vec::new();
    for (r, root) in roots.iter().enumerate() {
        feed.push(envelope(
            "category.created",
            root.to_string(),
            json!({"id": root, "handle": format!("root-{r}"), "name": format!("Department {r}"), "parent_id": null, "path": [root], "position": r}),
        ));
        for c in 0..8 {
            let id = CategoryId::generate();
            let name = format!("{} {}", WORDS[(r * 8 + c) % WORDS.len()], c);
            feed.push(envelope(
                "category.created",
                id.to_string(),
                json!({"id": id, "handle": format!("c-{r}-{c}"), "name": name, "parent_id": root, "path": [root, id], "position": c}),
            ));
            categories.push((id, name, vec![*root, id]));
        }
    }
    let mut seed: u64 = 42;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(seed >> 33).unwrap_or(0) % n
    };
    for i in 0..products {
        let id = ProductId::generate();
        let title = format!(
            "{} {} {}",
            WORDS[next(WORDS.len())],
            WORDS[next(WORDS.len())],
            WORDS[4 + next(6)]
        );
        let description = (0..30)
            .map(|_| WORDS[next(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        let (cat_id, cat_name, path) = &categories[next(categories.len())];
        let variants: Vec<_> = (0..3)
            .map(|v| {
                let vid = VariantId::generate();
                json!({"id": vid, "sku": format!("SKU-{i}-{v}"), "title": "M", "options": {}, "weight_grams": 100,
                       "prices": [{"currency": "EUR", "amount": 500 + next(30_000)}, {"currency": "USD", "amount": 600 + next(30_000)}],
                       "position": v})
            })
            .collect();
        let created = format!("2026-01-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60);
        let data = json!({
            "id": id, "handle": format!("p-{i}"), "title": title, "description": description,
            "status": "published", "options": [], "variants": variants,
            "categories": [{"id": cat_id, "handle": "c", "name": cat_name, "path": path}],
            "collections": [], "attributes": {}, "media": [],
            "created_at": created, "updated_at": created, "published_at": created, "version": 1,
        });
        feed.push(envelope("product.published", id.to_string(), data.clone()));
        if next(3) > 0 {
            let vid = data["variants"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            feed.push(envelope(
                "inventory.stock_changed",
                vid.clone(),
                json!({"variant_id": vid, "location_id": "sloc_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f", "on_hand": 5, "reserved": 0, "available": 5, "variant_available": 5, "reason": "restock"}),
            ));
        }
    }

    let dir = tempfile::tempdir()?;
    let index = Arc::new(SearchIndex::open(dir.path())?);
    let projector = SearchProjector::new(index.clone());
    let started = Instant::now();
    loop {
        let batch = feed.read_after(projector.checkpoint(), 1000).await?;
        if batch.is_empty() {
            break;
        }
        projector.apply(batch).await?;
    }
    println!(
        "indexed {products} products ({} events) in {:.1?}",
        feed.last_position(),
        started.elapsed()
    );

    let cases: Vec<(&str, SearchRequest)> = vec![
        ("q=linen shirt", query("linen shirt", |_| {})),
        ("q=linnen (typo)", query("linnen", |_| {})),
        ("q=lin (prefix)", query("lin", |_| {})),
        ("q=SKU-1234-1", query("SKU-1234-1", |_| {})),
        ("empty q, newest", query("", |_| {})),
        (
            "q=wool + category + price range + in_stock",
            query("wool", |r| {
                r.category = Some(categories[3].0);
                r.min_price = Some(1000);
                r.max_price = Some(20_000);
                r.in_stock = Some(true);
            }),
        ),
        (
            "q=summer, price_asc USD",
            query("summer", |r| {
                r.sort = Some(SearchSort::PriceAsc);
                r.currency = "USD".parse().ok();
            }),
        ),
    ];
    for (name, request) in &cases {
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..50 {
            let t = Instant::now();
            total = index.search(request)?.total;
            times.push(t.elapsed());
        }
        report(name, total, &mut times);
    }
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        index.suggest("lin", None)?;
        times.push(t.elapsed());
    }
    report("suggest lin", 0, &mut times);
    Ok(())
}

fn query(q: &str, tweak: impl FnOnce(&mut SearchRequest)) -> SearchRequest {
    let mut r = SearchRequest {
        q: Some(q.into()),
        ..SearchRequest::default()
    };
    tweak(&mut r);
    r
}

fn report(name: &str, total: u64, times: &mut [Duration]) {
    times.sort();
    let p50 = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    println!("{name:<45} total {total:>6}  p50 {p50:>10.2?}  p95 {p95:>10.2?}");
}
