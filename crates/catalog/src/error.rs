//! What can go wrong in the catalog, each with its kind and stable code.

use emporium_db::DbError;
use emporium_kernel::{DomainError, ErrorKind, FieldError};

/// A catalog failure.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("no product with this id or handle")]
    ProductNotFound,
    #[error("no variant with this id on this product")]
    VariantNotFound,
    #[error("no category with this id")]
    CategoryNotFound,
    #[error("no collection with this id")]
    CollectionNotFound,
    #[error("no media with this id on this product")]
    MediaNotFound,
    /// Answered 413 by the upload route.
    #[error("the file is larger than {max_bytes} bytes")]
    MediaTooLarge { max_bytes: usize },
    /// Answered 415 by the upload route.
    #[error("the file is not a JPEG, PNG, GIF, WebP or AVIF image")]
    MediaTypeNotAllowed,
    #[error("another product already has the handle `{0}`")]
    HandleTaken(String),
    #[error("another category or collection already has the handle `{0}`")]
    CategoryHandleTaken(String),
    #[error("another variant already has the SKU `{0}`")]
    SkuTaken(String),
    #[error("the category still has child categories")]
    CategoryHasChildren,
    #[error("the resource changed since it was read (its ETag is now {current})")]
    VersionMismatch { current: i64 },
    #[error("storage failure")]
    Storage(#[from] DbError),
    #[error("stored catalog data is unreadable: {0}")]
    Corrupt(String),
    #[error("object storage failure: {0}")]
    ObjectStore(String),
    #[error("calculated prices failed")]
    Pricing(#[from] emporium_pricing::PricingError),
    #[error(transparent)]
    Shared(std::sync::Arc<CatalogError>),
    /// The catalog runs in another process, which did not answer.
    #[error(transparent)]
    Remote(emporium_http::service::CallError),
}

impl CatalogError {
    /// A single invalid field.
    pub fn field(pointer: &str, code: &str, detail: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(pointer, code, detail)])
    }
}

impl From<serde_json::Error> for CatalogError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

impl DomainError for CatalogError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Invalid(_) => (ErrorKind::Invalid, "validation_failed"),
            Self::ProductNotFound => (ErrorKind::NotFound, "product_not_found"),
            Self::VariantNotFound => (ErrorKind::NotFound, "variant_not_found"),
            Self::CategoryNotFound => (ErrorKind::NotFound, "category_not_found"),
            Self::CollectionNotFound => (ErrorKind::NotFound, "collection_not_found"),
            Self::MediaNotFound => (ErrorKind::NotFound, "media_not_found"),
            // The upload route answers these 413 and 415 (see `routes::media`).
            Self::MediaTooLarge { .. } => (ErrorKind::Invalid, "media_too_large"),
            Self::MediaTypeNotAllowed => (ErrorKind::Invalid, "media_type_not_allowed"),
            Self::HandleTaken(_) | Self::CategoryHandleTaken(_) => {
                (ErrorKind::Conflict, "handle_taken")
            }
            Self::SkuTaken(_) => (ErrorKind::Conflict, "sku_taken"),
            Self::CategoryHasChildren => (ErrorKind::Conflict, "category_has_children"),
            Self::VersionMismatch { .. } => (ErrorKind::PreconditionFailed, "precondition_failed"),
            Self::Storage(e) => e.kind_and_code(),
            Self::Corrupt(_) | Self::ObjectStore(_) => (ErrorKind::Internal, "internal"),
            Self::Pricing(e) => e.kind_and_code(),
            Self::Shared(e) => e.kind_and_code(),
            Self::Remote(e) => e.kind_and_code(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Remote(e) => e.retry_after_secs(),
            Self::Shared(e) => e.retry_after_secs(),
            Self::Pricing(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    fn violations(&self) -> &[FieldError] {
        match self {
            Self::Invalid(v) => v,
            Self::Shared(e) => e.violations(),
            Self::Pricing(e) => e.violations(),
            _ => &[],
        }
    }
}
