//! Search's boundary: the plain data a search or a suggestion takes and returns.

use emporium_kernel::ids::{CategoryId, CollectionId, ProductId, VariantId};
use emporium_kernel::{Currency, Money};
use emporium_pricing::CalculatedPrice;
use serde::{Deserialize, Serialize};

/// The longest accepted query text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// The deepest offset a cursor may name; deeper pages are not served.
pub const MAX_OFFSET: usize = 10_000;
/// Price bands of the price facet, in minor units: `[min, max)`, the last one open-ended.
pub const PRICE_BANDS: [(i64, Option<i64>); 6] = [
    (0, Some(1000)),
    (1000, Some(2500)),
    (2500, Some(5000)),
    (5000, Some(10_000)),
    (10_000, Some(25_000)),
    (25_000, None),
];

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchSort {
    /// Best match first (the default when `q` is given).
    Relevance,
    /// Cheapest first in the requested currency; products without a price in it come last.
    PriceAsc,
    /// Dearest first in the requested currency; products without a price in it come last.
    PriceDesc,
    /// Most recently published first (the default when `q` is empty).
    Newest,
    /// Best selling first.
    Popularity,
}

impl SearchSort {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Relevance => "relevance",
            Self::PriceAsc => "price_asc",
            Self::PriceDesc => "price_desc",
            Self::Newest => "newest",
            Self::Popularity => "popularity",
        }
    }
}

/// A storefront search: the query of `GET /v1/store/search`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchRequest {
    /// Words to look for in titles, SKUs, category names and descriptions (at most 200
    /// characters). Each word also matches with a typo; the last one also as a prefix. Empty
    /// lists every published product.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Only products in this category or in one below it.
    #[param(value_type = Option<String>)]
    pub category: Option<CategoryId>,
    /// Only products in this collection.
    #[param(value_type = Option<String>)]
    pub collection: Option<CollectionId>,
    /// Currency of the prices shown, filtered, sorted and banded (default `EUR`). Named, it
    /// also gives each hit its variants' calculated prices.
    #[param(value_type = Option<String>, pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: Option<Currency>,
    /// The shopper's country (ISO 3166-1 alpha-2): calculated prices show its tax. Needs
    /// `currency`.
    #[param(pattern = "^[A-Za-z]{2}$", example = "DE")]
    pub country: Option<String>,
    /// A state or province of `country` (1 to 3 letters or digits) with its own tax rate.
    #[param(pattern = "^[A-Za-z0-9]{1,3}$", example = "CA")]
    pub state: Option<String>,
    /// Only products whose lowest price in `currency` is at least this (minor units).
    #[param(minimum = 0)]
    pub min_price: Option<i64>,
    /// Only products whose lowest price in `currency` is at most this (minor units).
    #[param(minimum = 0)]
    pub max_price: Option<i64>,
    /// Only products that can (`true`) or cannot (`false`) be bought now.
    pub in_stock: Option<bool>,
    /// `relevance` (default with `q`), `price_asc`, `price_desc`, `newest` (default without
    /// `q`) or `popularity`.
    pub sort: Option<SearchSort>,
    /// The `next_cursor` of the previous page of the same search.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One page of results with the facets of the whole result set.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<SearchHit>,
    /// How many products match (all pages).
    pub total: u64,
    /// Pass as `cursor` for the next page; `null` on the last page (or past the depth limit).
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// The order applied.
    pub sort: SearchSort,
    /// The currency of prices and price bands.
    pub currency: Currency,
    pub facets: Facets,
}

/// One matching product.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub id: ProductId,
    pub handle: String,
    pub title: String,
    /// The title and a piece of the description with the matched words in `<em>`…`</em>`;
    /// HTML-escaped, safe to insert as HTML.
    pub highlight: Highlight,
    /// The lowest variant price in the requested currency, if any variant has one.
    #[schema(required = true)]
    pub min_price: Option<Money>,
    /// The highest variant price in the requested currency, if any variant has one.
    #[schema(required = true)]
    pub max_price: Option<Money>,
    /// Whether any variant can be bought now.
    pub in_stock: bool,
    /// The product's own categories.
    pub categories: Vec<HitCategory>,
    /// The relevance score (higher matches better; 0 without `q`).
    pub score: f32,
    /// Each variant with its calculated price, as the product list shows it; only when the
    /// search names a `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<HitVariant>>,
}

/// A variant of a hit, with the price this shopper pays.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HitVariant {
    pub id: VariantId,
    /// Absent for a variant without a price in the requested currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calculated_price: Option<CalculatedPrice>,
    /// The variant's own prices, to calculate from.
    #[serde(skip)]
    pub(crate) prices: Vec<Money>,
}

/// Highlighted text of a hit, HTML-escaped with matches in `<em>`…`</em>`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Highlight {
    /// The whole title.
    pub title: String,
    /// About 200 characters of the description around the first match (`…` marks a cut).
    pub snippet: String,
}

/// A category of a hit.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HitCategory {
    pub id: CategoryId,
    pub name: String,
}

/// Counts over every matching product (not only the page).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Facets {
    /// Matching products per category; a product counts in its categories and their ancestors.
    /// Most populated first, at most 100.
    pub categories: Vec<CategoryFacet>,
    /// Matching products per band of their lowest price in the requested currency (always the
    /// six bands of [`PRICE_BANDS`]; products without a price in it are in none).
    pub price_bands: Vec<PriceBand>,
    pub availability: AvailabilityFacet,
}

/// One category and how many matching products it holds.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryFacet {
    pub id: CategoryId,
    /// Absent when no event named the category yet.
    #[schema(required = true)]
    pub name: Option<String>,
    pub count: u64,
}

/// A price band `[min, max)` in minor units, and how many matching products fall in it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriceBand {
    pub min: i64,
    /// Absent for the last, open-ended band.
    #[schema(required = true)]
    pub max: Option<i64>,
    pub count: u64,
}

/// Matching products that can and cannot be bought now.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AvailabilityFacet {
    pub in_stock: u64,
    pub out_of_stock: u64,
}

/// The query of `GET /v1/store/search/suggest`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SuggestRequest {
    /// What the shopper typed so far (at most 200 characters); the last word is a prefix.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// How many suggestions, 1 to 20 (default 10).
    #[param(minimum = 1, maximum = 20)]
    pub limit: Option<u32>,
}

/// Title completions, most popular first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuggestResponse {
    pub suggestions: Vec<Suggestion>,
}

/// A published product whose title completes the typed text.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub id: ProductId,
    pub handle: String,
    pub title: String,
}
