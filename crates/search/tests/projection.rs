//! The projection: events in, documents out, checkpoint committed with them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Category, Product, Store, envelope, sorted, stock, titles};
use emporium_search::{EventFeed, MemoryFeed, SearchIndex, SearchProjector, SearchRequest};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_product_is_found_by_title_sku_and_category_name() {
    let store = Store::new();
    let shirts = Category::root("Shirts");
    let mut shirt = Product::new("Linen shirt").sku("LS-S").in_category(&shirts);
    store.feed([shirts.created()]).await;
    store.feed(shirt.live()).await;

    assert_eq!(store.titles("linen"), ["Linen shirt"]);
    assert_eq!(store.titles("LS-S"), ["Linen shirt"]);
    assert_eq!(store.titles("shirts"), ["Linen shirt"]);
    let hit = &store.q("linen").hits[0];
    assert_eq!(hit.id, shirt.id);
    assert_eq!(hit.handle, "linen-shirt");
    assert_eq!(hit.categories[0].name, "Shirts");
    assert_eq!(hit.min_price.map(|m| m.amount), Some(1999));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_published_products_are_ever_returned() {
    let store = Store::new();
    let mut draft = Product::new("Linen draft");
    let mut unpublished = Product::new("Linen unpublished");
    let mut archived = Product::new("Linen archived");
    let mut deleted = Product::new("Linen deleted");
    let mut live = Product::new("Linen live");
    store.feed([draft.created()]).await;
    store.feed(unpublished.live()).await;
    store.feed([unpublished.unpublished()]).await;
    store.feed(archived.live()).await;
    store.feed([archived.archived()]).await;
    store.feed(deleted.live()).await;
    store.feed([deleted.deleted()]).await;
    store.feed(live.live()).await;

    assert_eq!(store.titles("linen"), ["Linen live"]);
    let all = store.search(SearchRequest::default());
    assert_eq!(titles(&all), ["Linen live"]);
    assert_eq!(all.total, 1);
    assert!(
        store
            .suggest("lin")
            .suggestions
            .iter()
            .all(|s| s.title == "Linen live")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_events_toggle_in_stock_even_when_they_come_before_the_product() {
    let store = Store::new();
    let mut early = Product::new("Early bird");
    let mut late = Product::new("Late comer");
    // The stock of `early` is known before its product exists; in the same batch and in an
    // earlier one.
    store.feed([stock(early.variant_id(), 4)]).await;
    store.push(early.live());
    store.push([stock(late.variant_id(), 2)]);
    store.push(late.live());
    store.sync().await;

    let in_stock = |store: &Store, v: bool| {
        sorted(titles(&store.search(SearchRequest {
            in_stock: Some(v),
            ..SearchRequest::default()
        })))
    };
    assert_eq!(in_stock(&store, true), ["Early bird", "Late comer"]);
    assert!(in_stock(&store, false).is_empty());

    store.feed([stock(early.variant_id(), 0)]).await;
    assert_eq!(in_stock(&store, true), ["Late comer"]);
    assert_eq!(in_stock(&store, false), ["Early bird"]);
    assert!(!store.q("early").hits[0].in_stock);

    // A product update keeps the availability it had.
    store.feed([late.updated()]).await;
    assert!(store.q("late").hits[0].in_stock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_rename_move_and_deletion_reach_the_products() {
    let store = Store::new();
    let clothing = Category::root("Clothing");
    let sale = Category::root("Sale");
    let mut shirts = clothing.child("Shirts");
    let mut shirt = Product::new("Linen blouse").in_category(&shirts);
    store
        .feed([clothing.created(), sale.created(), shirts.created()])
        .await;
    store.feed(shirt.live()).await;
    let under = |store: &Store, c: &Category| {
        titles(&store.search(SearchRequest {
            category: Some(c.id),
            ..SearchRequest::default()
        }))
    };
    assert_eq!(under(&store, &clothing), ["Linen blouse"]);
    assert_eq!(store.titles("clothing"), ["Linen blouse"]);

    shirts.name = "Tops".into();
    shirts.path = vec![sale.id, shirts.id];
    store.feed([shirts.updated()]).await;
    assert_eq!(store.titles("tops"), ["Linen blouse"]);
    assert!(store.titles("shirts").is_empty());
    assert!(under(&store, &clothing).is_empty());
    assert_eq!(under(&store, &sale), ["Linen blouse"]);
    assert_eq!(store.q("linen").hits[0].categories[0].name, "Tops");

    store.feed([shirts.deleted()]).await;
    assert!(under(&store, &shirts).is_empty());
    assert!(under(&store, &sale).is_empty());
    let hit = &store.q("linen").hits[0];
    assert!(hit.categories.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_survives_a_reopen_and_only_newer_events_are_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let feed = MemoryFeed::new();
    let mut shirt = Product::new("Linen shirt");
    for e in shirt.live() {
        feed.push(e);
    }
    {
        let index = Arc::new(SearchIndex::open(dir.path()).expect("opens"));
        let projector = SearchProjector::new(index.clone());
        let events = feed.read_after(0, 1000).await.expect("feed");
        assert_eq!(projector.apply(events).await.expect("applies"), 2);
    }

    let index = Arc::new(SearchIndex::open(dir.path()).expect("reopens"));
    assert_eq!(index.checkpoint(), 2);
    let projector = SearchProjector::new(index.clone());
    let mut trousers = Product::new("Linen trousers");
    for e in trousers.live() {
        feed.push(e);
    }
    let newer = feed
        .read_after(index.checkpoint(), 1000)
        .await
        .expect("feed");
    assert_eq!(newer.len(), 2);
    assert_eq!(projector.apply(newer).await.expect("applies"), 4);
    // A batch already applied is skipped.
    let replay = feed.read_after(0, 1000).await.expect("feed");
    assert_eq!(projector.apply(replay).await.expect("applies"), 4);

    let found = index
        .search(&SearchRequest {
            q: Some("linen".into()),
            ..SearchRequest::default()
        })
        .expect("search");
    assert_eq!(sorted(titles(&found)), ["Linen shirt", "Linen trousers"]);
    assert_eq!(found.total, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_from_the_start_gives_the_same_results() {
    let store = Store::new();
    let clothing = Category::root("Clothing");
    let shirts = clothing.child("Shirts");
    store.feed([clothing.created(), shirts.created()]).await;
    let mut products: Vec<Product> = (0..12)
        .map(|i| {
            Product::new(&format!("Linen item {i}"))
                .prices(&[("EUR", 1000 + i * 100)])
                .in_category(&shirts)
                .created_at(common::at(i))
        })
        .collect();
    for p in &mut products {
        store.push(p.live());
        store.push([stock(p.variant_id(), i64::from(p.title.len() % 2 == 0))]);
    }
    store
        .feed([products[3].deleted(), products[5].archived()])
        .await;
    let request = SearchRequest {
        q: Some("linen".into()),
        limit: Some(100),
        ..SearchRequest::default()
    };
    let before = store.search(request.clone());

    let last = store
        .projector
        .rebuild(&*store.feed)
        .await
        .expect("rebuilds");
    assert_eq!(last, store.feed.last_position());
    let after = store.search(request);
    assert_eq!(titles(&after), titles(&before));
    assert_eq!(after.total, 10);
    assert_eq!(
        serde_json::to_value(&after.facets).expect("json"),
        serde_json::to_value(&before.facets).expect("json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_events_are_skipped_and_the_checkpoint_moves_on() {
    let store = Store::new();
    let mut shirt = Product::new("Linen shirt");
    store
        .feed([
            envelope("order.placed", "ord_1".into(), json!({"lines": []})),
            envelope(
                "product.updated",
                "prod_x".into(),
                json!({"title": "no id"}),
            ),
            envelope(
                "inventory.stock_changed",
                "var_x".into(),
                json!({"oops": 1}),
            ),
        ])
        .await;
    store.feed(shirt.live()).await;
    assert_eq!(store.projector.checkpoint(), 5);
    assert_eq!(store.titles("linen"), ["Linen shirt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_snapshot_never_replaces_a_newer_one() {
    let store = Store::new();
    let mut shirt = Product::new("Linen shirt");
    let [created, published] = shirt.live();
    store.feed([published.clone(), created.clone()]).await;
    assert_eq!(store.titles("linen"), ["Linen shirt"]);
    // Also when the newer one is already committed.
    store.feed([created]).await;
    assert_eq!(store.titles("linen"), ["Linen shirt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_loop_follows_the_feed_until_stopped() {
    let store = Store::new();
    let stop = CancellationToken::new();
    let feed: Arc<dyn EventFeed> = store.feed.clone();
    let task = tokio::spawn(store.projector.clone().run(feed, stop.clone()));

    let mut shirt = Product::new("Linen shirt");
    store.push(shirt.live());
    reaches(&store.index, 2).await;
    assert_eq!(store.titles("linen"), ["Linen shirt"]);

    store.push([stock(shirt.variant_id(), 3)]);
    reaches(&store.index, 3).await;
    assert!(store.q("linen").hits[0].in_stock);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the loop stops")
        .expect("the loop does not panic");
}

/// Awaits the commit of `position`; the deadline only matters when the test fails.
async fn reaches(index: &SearchIndex, position: i64) {
    let mut checkpoint = index.watch_checkpoint();
    tokio::time::timeout(
        Duration::from_secs(10),
        checkpoint.wait_for(|p| *p >= position),
    )
    .await
    .expect("the projector catches up in time")
    .expect("the index is alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_another_format_is_replaced_by_an_empty_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        use tantivy::schema::{STORED, Schema, TEXT};
        let mut b = Schema::builder();
        b.add_text_field("old", TEXT | STORED);
        tantivy::Index::create_in_dir(dir.path(), b.build()).expect("old index");
    }
    let index = SearchIndex::open(dir.path()).expect("opens");
    assert_eq!(index.checkpoint(), 0);
    let all = index.search(&SearchRequest::default()).expect("search");
    assert_eq!(all.total, 0);
}
