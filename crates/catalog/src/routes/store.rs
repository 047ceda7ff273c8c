//! Storefront routes: published products and the category tree, cached, with ETag / 304.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emporium_http::conditional::none_match;
use emporium_http::{ApiError, Path, Query};
use emporium_kernel::Page;
use emporium_kernel::ids::{CategoryId, CollectionId};
use serde::Deserialize;

use super::CatalogState;
use crate::api::{CategoryTree, Product};
use crate::listing::Sort;
use crate::reads::{CachedBody, StoreListQuery};

/// Query of the storefront product list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Only products in this category or its descendants.
    pub category: Option<CategoryId>,
    /// Only products in this collection.
    pub collection: Option<CollectionId>,
    /// Currency of the price filter and sort (ISO 4217, e.g. `EUR`).
    #[param(value_type = Option<String>)]
    pub currency: Option<emporium_kernel::Currency>,
    /// Cheapest variant at least this much (minor units).
    pub min_price: Option<i64>,
    /// Cheapest variant at most this much (minor units).
    pub max_price: Option<i64>,
    /// Only products with (`true`) or without (`false`) stock available.
    pub in_stock: Option<bool>,
    /// `newest` (default), `price_asc`, `price_desc` or `title`.
    #[param(inline)]
    pub sort: Option<Sort>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 24).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Published products, newest first unless sorted otherwise.
#[utoipa::path(get, path = "/v1/store/products", operation_id = "listStoreProducts", tag = "store", params(ProductListQuery),
    responses(
        (status = 200, description = "A page of products", body = Page<Product>),
        (status = 422, description = "`validation_failed`, e.g. a price filter without `currency`, a bad `cursor` or `limit`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_products(
    State(state): State<CatalogState>,
    Query(q): Query<ProductListQuery>,
) -> Result<Response, ApiError> {
    let page = state
        .reads
        .list(StoreListQuery {
            category: q.category,
            collection: q.collection,
            currency: q.currency,
            min_price: q.min_price,
            max_price: q.max_price,
            in_stock: q.in_stock,
            sort: q.sort,
            cursor: q.cursor,
            limit: q.limit,
        })
        .await?;
    Ok((
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=5"),
        )],
        axum::Json(page),
    )
        .into_response())
}

/// One published product, by id (`prod_…`) or handle. Answers `If-None-Match` with 304.
#[utoipa::path(get, path = "/v1/store/products/{key}", operation_id = "getStoreProduct", tag = "store",
    params(("key" = String, Path, description = "Product id (`prod_…`) or handle")),
    responses(
        (status = 200, description = "The product, with availability", body = Product,
            headers(("ETag" = String, description = "Changes whenever the answer changes"))),
        (status = 304, description = "The copy named by `If-None-Match` is current"),
        (status = 404, description = "No published product with this id or handle (`product_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_product(
    State(state): State<CatalogState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let body = state.reads.product(&key).await?;
    cached_json(&headers, &body)
}

/// The category tree.
#[utoipa::path(get, path = "/v1/store/categories", operation_id = "getStoreCategoryTree", tag = "store",
    responses(
        (status = 200, description = "The roots in order, each with its children", body = CategoryTree),
        (status = 304, description = "The copy named by `If-None-Match` is current"),
    ))]
pub async fn category_tree(
    State(state): State<CatalogState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let body = state.reads.category_tree().await?;
    cached_json(&headers, &body)
}

/// A cached JSON body with its ETag, or 304 when the client already has it.
fn cached_json(headers: &HeaderMap, body: &CachedBody) -> Result<Response, ApiError> {
    let tag = body.etag();
    let etag = HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\""));
    let cache = HeaderValue::from_static("public, max-age=0, must-revalidate");
    if none_match(headers, &tag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        body.body()?,
    )
        .into_response())
}
