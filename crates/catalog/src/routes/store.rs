//! Storefront routes: published products and the category tree, cached, with ETag / 304. With
//! a `currency`, product answers carry calculated prices for the caller (a customer's bearer
//! token brings their groups), and such an answer for a customer is `Cache-Control: private`.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emporium_http::conditional::none_match;
use emporium_http::{ApiError, Path, Query};
use emporium_kernel::Page;
use emporium_kernel::auth::{Actor, Principal};
use emporium_kernel::ids::{CategoryId, CollectionId};
use serde::Deserialize;

use super::CatalogState;
use crate::api::{CategoryTree, Product};
use crate::listing::Sort;
use crate::reads::{Answer, PriceQuery, StoreListQuery};

/// The customer a store read prices for: the subject of a customer's bearer token (a bad token
/// never gets here: the authentication layer answers it 401). Other tokens price as a guest.
fn customer_of(principal: Option<Extension<Principal>>) -> Option<String> {
    principal
        .filter(|Extension(p)| p.actor == Actor::Customer)
        .map(|Extension(p)| p.subject)
}

/// Query of the storefront product list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Only products in this category or its descendants.
    pub category: Option<CategoryId>,
    /// Only products in this collection.
    pub collection: Option<CollectionId>,
    /// Currency of the price filter and sort, and of each variant's `calculated_price` (ISO
    /// 4217, e.g. `EUR`). Without it, no calculated prices.
    #[param(value_type = Option<String>, pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: Option<emporium_kernel::Currency>,
    /// The shopper's country (ISO 3166-1 alpha-2): calculated prices show its tax. Needs
    /// `currency`.
    #[param(pattern = "^[A-Za-z]{2}$", example = "DE")]
    pub country: Option<String>,
    /// A state or province of `country` (1 to 3 letters or digits) with its own tax rate.
    #[param(pattern = "^[A-Za-z0-9]{1,3}$", example = "CA")]
    pub state: Option<String>,
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
///
/// With `currency`, each variant priced in it carries `calculated_price`: the lowest of its own
/// price and the price lists that apply now to the caller's customer groups (a customer's
/// bearer token; a guest is in none), with the tax of `country`/`state`. Answers
/// `If-None-Match` with 304.
#[utoipa::path(get, path = "/v1/store/products", operation_id = "listStoreProducts", tag = "store", params(ProductListQuery),
    responses(
        (status = 200, description = "A page of products", body = Page<Product>,
            headers(("ETag" = String, description = "Changes whenever the answer changes, calculated prices included"))),
        (status = 304, description = "The copy named by `If-None-Match` is current"),
        (status = 401, description = "The bearer token is invalid or expired (`token_invalid`, `token_revoked`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, e.g. a price filter without `currency`, a bad `currency`, `country` or `state`, a bad `cursor` or `limit`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_products(
    State(state): State<CatalogState>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    Query(q): Query<ProductListQuery>,
) -> Result<Response, ApiError> {
    let customer = customer_of(principal);
    let personal = q.currency.is_some() && customer.is_some();
    let priced = q.currency.is_some();
    let answer = state
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
            country: q.country,
            state: q.state,
            customer,
        })
        .await?;
    let cache = if personal {
        "private, max-age=5"
    } else {
        "public, max-age=5"
    };
    answer_json(&headers, &answer, cache, priced)
}

/// Query of a storefront product read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Currency of each variant's `calculated_price` (ISO 4217, e.g. `EUR`). Without it, no
    /// calculated prices.
    #[param(value_type = Option<String>, pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: Option<emporium_kernel::Currency>,
    /// The shopper's country (ISO 3166-1 alpha-2): calculated prices show its tax. Needs
    /// `currency`.
    #[param(pattern = "^[A-Za-z]{2}$", example = "DE")]
    pub country: Option<String>,
    /// A state or province of `country` (1 to 3 letters or digits) with its own tax rate.
    #[param(pattern = "^[A-Za-z0-9]{1,3}$", example = "CA")]
    pub state: Option<String>,
}

/// One published product, by id (`prod_…`) or handle. Answers `If-None-Match` with 304.
///
/// With `currency`, each variant priced in it carries `calculated_price`, as in the list.
#[utoipa::path(get, path = "/v1/store/products/{key}", operation_id = "getStoreProduct", tag = "store",
    params(("key" = String, Path, description = "Product id (`prod_…`) or handle"), ProductQuery),
    responses(
        (status = 200, description = "The product, with availability", body = Product,
            headers(("ETag" = String, description = "Changes whenever the answer changes, calculated prices included"))),
        (status = 304, description = "The copy named by `If-None-Match` is current"),
        (status = 401, description = "The bearer token is invalid or expired (`token_invalid`, `token_revoked`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No published product with this id or handle (`product_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad `currency`, `country` or `state`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_product(
    State(state): State<CatalogState>,
    Path(key): Path<String>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    Query(q): Query<ProductQuery>,
) -> Result<Response, ApiError> {
    let customer = customer_of(principal);
    let cache = if q.currency.is_some() && customer.is_some() {
        "private, max-age=0, must-revalidate"
    } else {
        "public, max-age=0, must-revalidate"
    };
    let priced = q.currency.is_some();
    let answer = state
        .reads
        .product_answer(
            &key,
            PriceQuery {
                currency: q.currency,
                country: q.country,
                state: q.state,
                customer,
            },
        )
        .await?;
    answer_json(&headers, &answer, cache, priced)
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
    answer_json(
        &headers,
        &Answer::Packed(body),
        "public, max-age=0, must-revalidate",
        false,
    )
}

/// A ready JSON answer with its ETag, or 304 when the client already has it. An answer with
/// calculated prices varies with the caller's token, and says so (`Vary: Authorization`).
fn answer_json(
    headers: &HeaderMap,
    answer: &Answer,
    cache: &'static str,
    priced: bool,
) -> Result<Response, ApiError> {
    let tag = answer.etag();
    let etag = HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\""));
    let mut out = if none_match(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut ok = answer.body()?.into_response();
        ok.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        ok
    };
    let h = out.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if priced {
        h.insert(header::VARY, HeaderValue::from_static("Authorization"));
    }
    Ok(out)
}
