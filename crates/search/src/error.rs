//! What can go wrong in search, each with its kind and stable code.

use emporium_kernel::{DomainError, ErrorKind, FieldError};

use crate::feed::FeedError;

/// A search failure.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The request has invalid fields (each with its JSON Pointer).
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    /// The index could not be read or written.
    #[error("search index failure")]
    Index(#[from] tantivy::TantivyError),
    /// The index folder could not be opened.
    #[error("search index folder failure")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    /// A file-system failure around the index.
    #[error("search index i/o failure")]
    Io(#[from] std::io::Error),
    /// A stored document could not be read back.
    #[error("a stored search document is unreadable: {0}")]
    Corrupt(String),
    /// A background task running index work failed.
    #[error("a search task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The event feed could not be read.
    #[error("the event feed is unavailable")]
    Feed(#[from] FeedError),
    /// Calculated prices could not be had.
    #[error("calculated prices failed")]
    Pricing(#[from] emporium_pricing::PricingError),
}

impl DomainError for SearchError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Invalid(_) => (ErrorKind::Invalid, "validation_failed"),
            Self::Index(_)
            | Self::Directory(_)
            | Self::Io(_)
            | Self::Corrupt(_)
            | Self::Task(_) => (ErrorKind::Internal, "search_index_failed"),
            Self::Feed(_) => (ErrorKind::Unavailable, "search_feed_unavailable"),
            Self::Pricing(e) => e.kind_and_code(),
        }
    }

    fn violations(&self) -> &[FieldError] {
        match self {
            Self::Invalid(v) => v,
            _ => &[],
        }
    }
}
