//! The storefront search routes: `GET /v1/store/search` and `GET /v1/store/search/suggest`.
//! Searches run on blocking threads, at most one per core at a time. With a `currency`, the
//! hits' variants get their calculated prices in one call per page, after the search.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use emporium_http::{ApiError, Query};
use emporium_kernel::Violations;
use emporium_kernel::auth::{Actor, Principal};
use emporium_pricing::{ShopperPrices, VariantPrice};
use tokio::sync::Semaphore;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{SearchRequest, SearchResponse, SuggestRequest, SuggestResponse};
use crate::error::SearchError;
use crate::index::SearchIndex;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Searches {
    index: Arc<SearchIndex>,
    /// Bounds the searches running at once to the cores.
    permits: Arc<Semaphore>,
    /// Without it, hits carry no calculated prices.
    prices: Option<Arc<ShopperPrices>>,
}

impl Searches {
    /// Runs `work` on a blocking thread once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SearchIndex) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        // The semaphore is never closed, so acquiring only waits.
        let permit = self.permits.clone().acquire_owned().await.ok();
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&index)
        })
        .await?
    }
}

/// The search routes, with their OpenAPI description, answering from `index`, with calculated
/// prices from `prices` when a search names a currency.
pub fn router(index: Arc<SearchIndex>, prices: Option<Arc<ShopperPrices>>) -> OpenApiRouter {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(suggest))
        .with_state(Searches {
            index,
            permits: Arc::new(Semaphore::new(cores)),
            prices,
        })
}

/// Searches published products.
///
/// Words match titles (strongest), SKUs, category names and descriptions, each also with one
/// typo (two from 8 letters) and the last also as a prefix. Filters narrow the result set;
/// facets count every match, not only the page. Price bands are `[0, 1000)`, `[1000, 2500)`,
/// `[2500, 5000)`, `[5000, 10000)`, `[10000, 25000)` and `25000` up, in minor units of the
/// requested currency.
///
/// With `currency`, each hit lists its variants with their `calculated_price`, the same figures
/// the product list shows for the caller (a customer's bearer token brings their groups).
#[utoipa::path(get, path = "/v1/store/search", operation_id = "searchStoreProducts", tag = "store", params(SearchRequest),
    responses(
        (status = 200, description = "A page of matching products and the facets of all matches", body = SearchResponse),
        (status = 401, description = "The bearer token is invalid or expired (`token_invalid`, `token_revoked`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters (`validation_failed`): `/q` too long, `/limit` out of 1 to 100, `/min_price` above `max_price`, an unknown `/sort`, a bad `/currency`, `/country` or `/state`, or a `/cursor` of another search (`invalid_cursor`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The search index failed (`search_index_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn search(
    State(searches): State<Searches>,
    principal: Option<Extension<Principal>>,
    Query(request): Query<SearchRequest>,
) -> Result<Response, ApiError> {
    let customer = principal
        .filter(|Extension(p)| p.actor == Actor::Customer)
        .map(|Extension(p)| p.subject);
    let asked = request.currency;
    // Checked already by the search: a bad region never gets this far.
    let region = emporium_pricing::parse_region(
        &mut Violations::new(),
        request.country.as_deref(),
        request.state.as_deref(),
    );
    let mut response = searches.run(move |index| index.search(&request)).await?;
    match (asked, searches.prices.as_deref()) {
        (Some(currency), Some(prices)) => {
            let context = prices
                .context(currency, customer.as_deref(), region)
                .await
                .map_err(SearchError::from)?;
            price_hits(&mut response, prices, &context).await?;
        }
        _ => response.hits.iter_mut().for_each(|h| h.variants = None),
    }
    let mut out = axum::Json(response).into_response();
    if asked.is_some() {
        let h = out.headers_mut();
        let cache = if customer.is_some() {
            "private, no-cache"
        } else {
            "no-cache"
        };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::VARY, HeaderValue::from_static("Authorization"));
    }
    Ok(out)
}

/// Fills in every hit's variants' calculated prices, in one call.
async fn price_hits(
    response: &mut SearchResponse,
    prices: &ShopperPrices,
    context: &emporium_pricing::PriceContext,
) -> Result<(), SearchError> {
    let variants = response
        .hits
        .iter()
        .flat_map(|h| h.variants.iter().flatten());
    let asked: Vec<VariantPrice> = variants
        .filter_map(|v| {
            let own = v.prices.iter().find(|m| m.currency == context.currency)?;
            Some(VariantPrice {
                variant_id: v.id,
                amount: own.amount,
            })
        })
        .collect();
    let mut calculated = prices.calculate(context, &asked).await?.into_iter();
    for variant in response
        .hits
        .iter_mut()
        .flat_map(|h| h.variants.iter_mut().flatten())
    {
        if variant
            .prices
            .iter()
            .any(|m| m.currency == context.currency)
        {
            variant.calculated_price = calculated.next();
        }
    }
    Ok(())
}

/// Completes what a shopper is typing with titles of published products, most popular first.
#[utoipa::path(get, path = "/v1/store/search/suggest", operation_id = "suggestStoreProducts", tag = "store", params(SuggestRequest),
    responses(
        (status = 200, description = "Title completions", body = SuggestResponse),
        (status = 422, description = "Invalid parameters (`validation_failed`): `/q` too long or `/limit` out of 1 to 20", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The search index failed (`search_index_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn suggest(
    State(searches): State<Searches>,
    Query(request): Query<SuggestRequest>,
) -> Result<axum::Json<SuggestResponse>, ApiError> {
    let response = searches
        .run(move |index| index.suggest(request.q.as_deref().unwrap_or_default(), request.limit))
        .await?;
    Ok(axum::Json(response))
}
