//! Queries: matching, ranking, filters, sorts, facets, pagination, highlighting, suggestions.

mod common;

use std::collections::HashSet;

use common::{Category, Product, Store, sorted, stock, titles};
use emporium_kernel::ids::CollectionId;
use emporium_search::{SearchError, SearchRequest, SearchSort};

fn request(q: &str) -> SearchRequest {
    SearchRequest {
        q: Some(q.into()),
        ..SearchRequest::default()
    }
}

async fn clothing_store() -> Store {
    let store = Store::new();
    for (title, description) in [
        ("Linen shirt", "A breezy shirt for summer."),
        ("Linen trousers", "Wide legs, light fabric."),
        ("Cotton shirt", "Soft and warm; a linen blend collar."),
        ("Wool scarf", "Knitted by hand."),
    ] {
        let mut p = Product::new(title).description(description);
        store.feed(p.live()).await;
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_with_a_typo_still_match() {
    let store = clothing_store().await;
    assert_eq!(
        sorted(store.titles("linnen")),
        ["Cotton shirt", "Linen shirt", "Linen trousers"]
    );
    assert_eq!(
        sorted(store.titles("shrit")),
        ["Cotton shirt", "Linen shirt"]
    );
    assert_eq!(store.titles("linnen shrit")[0], "Linen shirt");
    // Too far from any word.
    assert!(store.titles("lxnxn").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_word_matches_as_a_prefix() {
    let store = clothing_store().await;
    assert_eq!(
        sorted(store.titles("lin")),
        ["Cotton shirt", "Linen shirt", "Linen trousers"]
    );
    assert_eq!(store.titles("linen tro"), ["Linen trousers"]);
    // Only the last word is a prefix.
    assert!(store.titles("tro linen").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_match_outranks_a_description_match_and_an_exact_word_a_typo() {
    let store = clothing_store().await;
    let linen = store.titles("linen");
    assert_eq!(linen.len(), 3);
    assert_eq!(
        linen[2], "Cotton shirt",
        "description-only match last: {linen:?}"
    );

    let store = Store::new();
    let mut exact = Product::new("Silk scarf");
    let mut typo = Product::new("Silky scarf");
    store.feed(typo.live()).await;
    store.feed(exact.live()).await;
    let hits = store.q("silk").hits;
    assert_eq!(hits[0].title, "Silk scarf");
    assert!(hits[0].score > hits[1].score);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_sku_is_the_best_match() {
    let store = Store::new();
    let mut a = Product::new("Trail shoe ab").sku("TS-100");
    let mut b = Product::new("Trail shoe ts").sku("TS-1000");
    store.feed(a.live()).await;
    store.feed(b.live()).await;
    assert_eq!(store.titles("TS-1000")[0], "Trail shoe ts");
    assert_eq!(store.titles("ts-100")[0], "Trail shoe ab");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_filter_matches_the_products_of_its_descendants() {
    let store = Store::new();
    let clothing = Category::root("Clothing");
    let shirts = clothing.child("Shirts");
    let linen_shirts = shirts.child("Linen shirts");
    let toys = Category::root("Toys");
    store
        .feed([
            clothing.created(),
            shirts.created(),
            linen_shirts.created(),
            toys.created(),
        ])
        .await;
    let mut deep = Product::new("Linen shirt").in_category(&linen_shirts);
    let mut mid = Product::new("Oxford shirt").in_category(&shirts);
    let mut other = Product::new("Teddy bear").in_category(&toys);
    for p in [&mut deep, &mut mid, &mut other] {
        store.feed(p.live()).await;
    }
    let under = |c: &Category| {
        sorted(titles(&store.search(SearchRequest {
            category: Some(c.id),
            ..SearchRequest::default()
        })))
    };
    assert_eq!(under(&clothing), ["Linen shirt", "Oxford shirt"]);
    assert_eq!(under(&shirts), ["Linen shirt", "Oxford shirt"]);
    assert_eq!(under(&linen_shirts), ["Linen shirt"]);
    assert_eq!(under(&toys), ["Teddy bear"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_filter_keeps_its_products() {
    let store = Store::new();
    let summer = CollectionId::generate();
    let mut a = Product::new("Straw hat").in_collection(summer);
    let mut b = Product::new("Wool hat");
    store.feed(a.live()).await;
    store.feed(b.live()).await;
    let r = store.search(SearchRequest {
        q: Some("hat".into()),
        collection: Some(summer),
        ..SearchRequest::default()
    });
    assert_eq!(titles(&r), ["Straw hat"]);
}

async fn priced_store() -> Store {
    let store = Store::new();
    for (title, prices) in [
        ("Cheap mug", &[("EUR", 500), ("USD", 900)][..]),
        ("Fair mug", &[("EUR", 1500), ("USD", 400)][..]),
        ("Dear mug", &[("EUR", 9000)][..]),
        ("Free mug", &[][..]),
    ] {
        let mut p = Product::new(title).prices(prices);
        store.feed(p.live()).await;
    }
    // A second variant: the product's price is its cheapest variant.
    let mut two = Product::new("Duo mug")
        .prices(&[("EUR", 30_000)])
        .variant("DUO-2", &[("EUR", 2600), ("USD", 2000)]);
    store.feed(two.live()).await;
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_filter_and_sort_in_the_requested_currency() {
    let store = priced_store().await;
    let run = |currency: &str, sort, min, max| {
        titles(&store.search(SearchRequest {
            q: Some("mug".into()),
            currency: Some(currency.parse().expect("currency")),
            sort: Some(sort),
            min_price: min,
            max_price: max,
            ..SearchRequest::default()
        }))
    };
    assert_eq!(
        run("EUR", SearchSort::PriceAsc, None, None),
        ["Cheap mug", "Fair mug", "Duo mug", "Dear mug", "Free mug"]
    );
    assert_eq!(
        run("EUR", SearchSort::PriceDesc, None, None),
        ["Dear mug", "Duo mug", "Fair mug", "Cheap mug", "Free mug"]
    );
    assert_eq!(
        run("USD", SearchSort::PriceAsc, None, None)[..3],
        ["Fair mug", "Cheap mug", "Duo mug"]
    );
    assert_eq!(
        sorted(run("USD", SearchSort::PriceAsc, None, None)[3..].to_vec()),
        ["Dear mug", "Free mug"]
    );
    assert_eq!(
        run("EUR", SearchSort::PriceAsc, Some(1000), Some(9000)),
        ["Fair mug", "Duo mug", "Dear mug"]
    );
    assert_eq!(
        run("USD", SearchSort::PriceAsc, Some(500), None),
        ["Cheap mug", "Duo mug"]
    );
    assert_eq!(
        run("USD", SearchSort::PriceDesc, None, Some(900)),
        ["Cheap mug", "Fair mug"]
    );

    let hit = store
        .search(SearchRequest {
            q: Some("duo".into()),
            currency: Some("EUR".parse().expect("currency")),
            ..SearchRequest::default()
        })
        .hits
        .remove(0);
    assert_eq!(hit.min_price.map(|m| m.amount), Some(2600));
    assert_eq!(hit.max_price.map(|m| m.amount), Some(30_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_is_the_default_order_without_words() {
    let store = Store::new();
    for (i, title) in ["Old lamp", "Mid lamp", "New lamp"].iter().enumerate() {
        let mut p = Product::new(title).created_at(common::at(i64::try_from(i).expect("small")));
        store.feed(p.live()).await;
    }
    let r = store.search(SearchRequest::default());
    assert_eq!(r.sort, SearchSort::Newest);
    assert_eq!(titles(&r), ["New lamp", "Mid lamp", "Old lamp"]);
    assert_eq!(store.q("lamp").sort, SearchSort::Relevance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facets_count_every_match_before_pagination() {
    let store = Store::new();
    let clothing = Category::root("Clothing");
    let shirts = clothing.child("Shirts");
    let hats = clothing.child("Hats");
    store
        .feed([clothing.created(), shirts.created(), hats.created()])
        .await;
    let mut items = vec![
        Product::new("Linen shirt")
            .in_category(&shirts)
            .prices(&[("EUR", 900)]),
        Product::new("Linen tunic")
            .in_category(&shirts)
            .prices(&[("EUR", 2500)]),
        Product::new("Linen hat")
            .in_category(&hats)
            .prices(&[("EUR", 30_000)]),
        Product::new("Linen bag").prices(&[("USD", 100)]),
        Product::new("Wool hat")
            .in_category(&hats)
            .prices(&[("EUR", 900)]),
    ];
    for p in &mut items {
        store.feed(p.live()).await;
    }
    store
        .feed([
            stock(items[0].variant_id(), 5),
            stock(items[2].variant_id(), 1),
        ])
        .await;

    let r = store.search(SearchRequest {
        q: Some("linen".into()),
        limit: Some(1),
        ..SearchRequest::default()
    });
    assert_eq!(r.hits.len(), 1);
    assert_eq!(r.total, 4);
    let cats: Vec<_> = r
        .facets
        .categories
        .iter()
        .map(|c| (c.name.clone().unwrap_or_default(), c.count))
        .collect();
    assert_eq!(
        cats,
        [
            ("Clothing".to_owned(), 3),
            ("Shirts".to_owned(), 2),
            ("Hats".to_owned(), 1)
        ]
    );
    let bands: Vec<_> = r
        .facets
        .price_bands
        .iter()
        .map(|b| (b.min, b.count))
        .collect();
    assert_eq!(
        bands,
        [
            (0, 1),
            (1000, 0),
            (2500, 1),
            (5000, 0),
            (10_000, 0),
            (25_000, 1)
        ]
    );
    assert_eq!(r.facets.price_bands[5].max, None);
    assert_eq!(r.facets.availability.in_stock, 2);
    assert_eq!(r.facets.availability.out_of_stock, 2);

    // Facets follow the filters.
    let shirts_only = store.search(SearchRequest {
        q: Some("linen".into()),
        category: Some(shirts.id),
        in_stock: Some(true),
        ..SearchRequest::default()
    });
    assert_eq!(titles(&shirts_only), ["Linen shirt"]);
    assert_eq!(shirts_only.facets.availability.in_stock, 1);
    assert_eq!(shirts_only.facets.availability.out_of_stock, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_each_other_without_duplicates_or_gaps() {
    let store = Store::new();
    for i in 0..23 {
        // Equal relevance for most, so ties must be broken the same way on every page.
        let mut p = Product::new(&format!("Ceramic bowl {i}")).created_at(common::at(i % 3));
        store.push(p.live());
    }
    store.sync().await;
    for sort in [
        SearchSort::Relevance,
        SearchSort::Newest,
        SearchSort::PriceAsc,
    ] {
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let r = store.search(SearchRequest {
                q: Some("bowl".into()),
                sort: Some(sort),
                limit: Some(5),
                cursor: cursor.take(),
                ..SearchRequest::default()
            });
            assert_eq!(r.total, 23);
            seen.extend(r.hits.iter().map(|h| h.id));
            pages += 1;
            match r.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        assert_eq!(seen.len(), 23);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23, "{sort:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_another_search_is_rejected() {
    let store = clothing_store().await;
    let first = store.search(SearchRequest {
        q: Some("linen".into()),
        limit: Some(1),
        ..SearchRequest::default()
    });
    let cursor = first.next_cursor.expect("more pages");
    for bad in [
        SearchRequest {
            q: Some("shirt".into()),
            limit: Some(1),
            cursor: Some(cursor.clone()),
            ..SearchRequest::default()
        },
        SearchRequest {
            q: Some("linen".into()),
            sort: Some(SearchSort::PriceDesc),
            cursor: Some(cursor.clone()),
            ..SearchRequest::default()
        },
        SearchRequest {
            cursor: Some("bm90IGEgY3Vyc29y".into()),
            ..request("linen")
        },
    ] {
        let Err(SearchError::Invalid(errors)) = store.index.search(&bad) else {
            panic!("a bad cursor was accepted: {bad:?}");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pointer, "/cursor");
        assert_eq!(errors[0].code, "invalid_cursor");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlights_mark_matches_and_escape_html() {
    let store = Store::new();
    let mut p = Product::new("Linen <b>shirt</b>")
        .description("<script>alert('linen')</script> A shirt & more.");
    store.feed(p.live()).await;
    let hit = store.q("linen").hits.remove(0);
    assert_eq!(hit.title, "Linen <b>shirt</b>");
    assert_eq!(
        hit.highlight.title,
        "<em>Linen</em> &lt;b&gt;shirt&lt;/b&gt;"
    );
    assert_eq!(
        hit.highlight.snippet,
        "&lt;script&gt;alert(&#39;<em>linen</em>&#39;)&lt;/script&gt; A shirt &amp; more."
    );
    assert!(!hit.highlight.snippet.contains("<script"));
    // A typo is highlighted too.
    let typo = store.q("shrit").hits.remove(0);
    assert!(typo.highlight.snippet.contains("<em>shirt</em>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_complete_titles_of_published_products() {
    let store = clothing_store().await;
    let mut draft = Product::new("Linen draft");
    store.feed([draft.created()]).await;
    let titles: Vec<_> = store
        .suggest("lin")
        .suggestions
        .into_iter()
        .map(|s| s.title)
        .collect();
    // Shortest first among equals; descriptions are not suggested.
    assert_eq!(titles, ["Linen shirt", "Linen trousers"]);
    let s = store.suggest("linen tr").suggestions;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].handle, "linen-trousers");
    assert!(store.suggest("").suggestions.is_empty());
    assert!(store.suggest("zzz").suggestions.is_empty());
    let one = store.index.suggest("l", Some(1)).expect("suggest");
    assert_eq!(one.suggestions.len(), 1);
    let Err(SearchError::Invalid(errors)) = store.index.suggest("lin", Some(21)) else {
        panic!("limit 21 accepted");
    };
    assert_eq!(errors[0].pointer, "/limit");
}
