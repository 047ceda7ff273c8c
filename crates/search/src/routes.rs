//! The storefront search routes: `GET /v1/store/search` and `GET /v1/store/search/suggest`.
//! Searches run on blocking threads, at most one per core at a time.

use std::sync::Arc;

use axum::extract::State;
use emporium_http::{ApiError, Query};
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

/// The search routes, with their OpenAPI description, answering from `index`.
pub fn router(index: Arc<SearchIndex>) -> OpenApiRouter {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(suggest))
        .with_state(Searches {
            index,
            permits: Arc::new(Semaphore::new(cores)),
        })
}

/// Searches published products.
///
/// Words match titles (strongest), SKUs, category names and descriptions, each also with one
/// typo (two from 8 letters) and the last also as a prefix. Filters narrow the result set;
/// facets count every match, not only the page. Price bands are `[0, 1000)`, `[1000, 2500)`,
/// `[2500, 5000)`, `[5000, 10000)`, `[10000, 25000)` and `25000` up, in minor units of the
/// requested currency.
#[utoipa::path(get, path = "/v1/store/search", operation_id = "searchStoreProducts", tag = "store", params(SearchRequest),
    responses(
        (status = 200, description = "A page of matching products and the facets of all matches", body = SearchResponse),
        (status = 422, description = "Invalid parameters (`validation_failed`): `/q` too long, `/limit` out of 1 to 100, `/min_price` above `max_price`, an unknown `/sort`, or a `/cursor` of another search (`invalid_cursor`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The search index failed (`search_index_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn search(
    State(searches): State<Searches>,
    Query(request): Query<SearchRequest>,
) -> Result<axum::Json<SearchResponse>, ApiError> {
    let response = searches.run(move |index| index.search(&request)).await?;
    Ok(axum::Json(response))
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
