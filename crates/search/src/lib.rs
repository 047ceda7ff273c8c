//! Product search: a tantivy index projected from catalog and inventory events.
//!
//! The index is a read model. [`SearchProjector`] follows an [`EventFeed`] (every event, in
//! order) and keeps one document per product, committing the feed position with each batch so
//! a restart resumes where it stopped; [`SearchProjector::rebuild`] replays the feed from the
//! start. It never reads another context's tables. [`SearchIndex::search`] and
//! [`SearchIndex::suggest`] answer the storefront, and [`router`] serves them over HTTP.

pub mod api;
mod contract;
mod document;
pub mod error;
mod facets;
pub mod feed;
mod index;
mod projection;
mod query;
mod routes;
mod schema;
mod text;

pub use api::{
    AvailabilityFacet, CategoryFacet, Facets, Highlight, HitCategory, HitVariant, PriceBand,
    SearchHit, SearchRequest, SearchResponse, SearchSort, SuggestRequest, SuggestResponse,
    Suggestion,
};
pub use error::SearchError;
pub use feed::{EventFeed, FeedError, MemoryFeed};
pub use index::SearchIndex;
pub use projection::SearchProjector;
pub use routes::router;
