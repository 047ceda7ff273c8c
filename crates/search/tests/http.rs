//! The HTTP surface: parameters, problem responses, and the OpenAPI description.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Product, Store};
use serde_json::Value;
use tower::ServiceExt;

async fn get(store: &Store, uri: &str) -> (StatusCode, Value) {
    let (router, _) = emporium_search::router(store.index.clone(), None).split_for_parts();
    let response = router
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).expect("json body"))
}

/// Asserts a 422 naming `pointer` with `code`.
fn assert_invalid(answer: &(StatusCode, Value), pointer: &str, code: &str) {
    assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.1);
    assert_eq!(answer.1["code"], "validation_failed");
    let errors = answer.1["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e["pointer"] == pointer && e["code"] == code),
        "{pointer} {code} not in {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_answers_hits_facets_and_a_cursor() {
    let store = Store::new();
    for title in ["Linen shirt", "Linen trousers", "Linen hat"] {
        let mut p = Product::new(title).prices(&[("EUR", 1999), ("USD", 2599)]);
        store.feed(p.live()).await;
    }
    let (status, body) = get(&store, "/v1/store/search?q=linnen&currency=USD&limit=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(body["hits"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["hits"][0]["min_price"]["currency"], "USD");
    assert_eq!(body["hits"][0]["min_price"]["amount"], 2599);
    assert_eq!(body["sort"], "relevance");
    assert_eq!(body["facets"]["price_bands"][2]["count"], 3);
    let cursor = body["next_cursor"].as_str().expect("cursor").to_owned();

    let (status, next) = get(
        &store,
        &format!("/v1/store/search?q=linnen&currency=USD&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(next["hits"].as_array().map(Vec::len), Some(1));
    assert!(next["next_cursor"].is_null());

    let foreign = get(&store, &format!("/v1/store/search?q=hat&cursor={cursor}")).await;
    assert_invalid(&foreign, "/cursor", "invalid_cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_problems_naming_the_parameter() {
    let store = Store::new();
    let long = "a".repeat(201);
    for (uri, pointer, code) in [
        ("/v1/store/search?sort=cheapest", "/sort", "invalid_value"),
        (
            "/v1/store/search?min_price=500&max_price=100",
            "/min_price",
            "invalid_range",
        ),
        (&format!("/v1/store/search?q={long}"), "/q", "too_long"),
        ("/v1/store/search?limit=0", "/limit", "too_small"),
        ("/v1/store/search?limit=101", "/limit", "too_large"),
        ("/v1/store/search?min_price=-1", "/min_price", "too_small"),
        (
            "/v1/store/search?currency=eur",
            "/currency",
            "invalid_format",
        ),
        (
            "/v1/store/search?category=prod_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
            "/category",
            "invalid_format",
        ),
        (
            "/v1/store/search?in_stock=maybe",
            "/in_stock",
            "invalid_format",
        ),
        ("/v1/store/search?colour=red", "/colour", "unknown_field"),
        ("/v1/store/search?cursor=xyz", "/cursor", "invalid_cursor"),
        (
            "/v1/store/search/suggest?q=lin&limit=21",
            "/limit",
            "too_large",
        ),
        (
            &format!("/v1/store/search/suggest?q={long}"),
            "/q",
            "too_long",
        ),
    ] {
        let answer = get(&store, uri).await;
        assert_invalid(&answer, pointer, code);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggest_answers_completions() {
    let store = Store::new();
    let mut p = Product::new("Linen shirt");
    store.feed(p.live()).await;
    let (status, body) = get(&store, "/v1/store/search/suggest?q=lin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["suggestions"][0]["title"], "Linen shirt");
    assert_eq!(body["suggestions"][0]["handle"], "linen-shirt");
    assert_eq!(body["suggestions"][0]["id"], p.id.to_string());
}

#[test]
fn both_routes_are_documented_under_store() {
    let store = Store::new();
    let (_, doc) = emporium_search::router(store.index.clone(), None).split_for_parts();
    let json = serde_json::to_value(&doc).expect("openapi");
    for path in ["/v1/store/search", "/v1/store/search/suggest"] {
        let op = &json["paths"][path]["get"];
        assert_eq!(op["tags"][0], "store", "{path}");
        assert!(op["parameters"].as_array().is_some_and(|p| !p.is_empty()));
    }
    assert!(json["components"]["schemas"]["SearchResponse"].is_object());
}
