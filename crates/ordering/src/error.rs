//! What can go wrong in a checkout or with an order, each with its kind and stable code: the
//! one error type of the context (a checkout's own answers are `CheckoutFailure`s, stored
//! with it).

use emporium_db::DbError;
use emporium_kernel::{DomainError, ErrorKind, FieldError};

/// An ordering failure.
#[derive(Debug, thiserror::Error)]
pub enum OrderingError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("an Idempotency-Key header (1 to 255 characters) is required")]
    IdempotencyKeyMissing,
    #[error("this Idempotency-Key was used with another request body")]
    IdempotencyKeyReused,
    #[error("a checkout with this Idempotency-Key is still running; retry later")]
    CheckoutInProgress,
    #[error(
        "this cart is being, or has been, checked out under another Idempotency-Key; \
         retry with that key to get its answer"
    )]
    CartCheckedOut,
    #[error("no order with this id (or it is not yours)")]
    OrderNotFound,
    #[error("{0}")]
    IllegalTransition(String),
    #[error("the order changed meanwhile; read it again")]
    OrderChanged,
    #[error(
        "a capture, cancellation or refund of this order is still being settled; retry shortly"
    )]
    ActionPending,
    #[error(transparent)]
    Payment(#[from] emporium_payments::PaymentError),
    #[error(transparent)]
    Cart(#[from] emporium_cart::CartError),
    #[error(transparent)]
    Inventory(#[from] emporium_inventory::InventoryError),
    #[error(transparent)]
    Pricing(#[from] emporium_pricing::PricingError),
    /// The catalog does not answer and what is known of the cart's lines is older than a
    /// checkout may use.
    #[error(
        "the catalog does not answer and its last known data for this cart is {age_secs} s old; retry shortly"
    )]
    CatalogStale { age_secs: u64 },
    #[error("stored order data is unreadable: {0}")]
    Corrupt(String),
    #[error("storage failure")]
    Storage(#[from] DbError),
}

impl OrderingError {
    /// A single field violation at `pointer`.
    pub(crate) fn invalid(pointer: &str, code: &str, detail: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(pointer, code, detail)])
    }
}

impl DomainError for OrderingError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Invalid(_) => (ErrorKind::Invalid, "validation_failed"),
            Self::IdempotencyKeyMissing => (ErrorKind::BadRequest, "idempotency_key_missing"),
            Self::IdempotencyKeyReused => (ErrorKind::Invalid, "idempotency_key_reused"),
            Self::CheckoutInProgress => (ErrorKind::Conflict, "checkout_in_progress"),
            Self::CartCheckedOut => (ErrorKind::Conflict, "cart_checked_out"),
            Self::OrderNotFound => (ErrorKind::NotFound, "order_not_found"),
            Self::IllegalTransition(_) => (ErrorKind::Conflict, "order_transition_illegal"),
            Self::OrderChanged => (ErrorKind::Conflict, "order_changed"),
            Self::ActionPending => (ErrorKind::Conflict, "order_action_pending"),
            Self::Payment(e) => e.kind_and_code(),
            Self::Cart(e) => e.kind_and_code(),
            Self::Inventory(e) => e.kind_and_code(),
            Self::Pricing(e) => e.kind_and_code(),
            Self::CatalogStale { .. } => (ErrorKind::Unavailable, "catalog_unavailable"),
            Self::Corrupt(_) => (ErrorKind::Internal, "internal"),
            Self::Storage(e) => e.kind_and_code(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::CatalogStale { .. } => Some(5),
            Self::Payment(e) => e.retry_after_secs(),
            Self::Cart(e) => e.retry_after_secs(),
            Self::Inventory(e) => e.retry_after_secs(),
            Self::Pricing(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    fn violations(&self) -> &[FieldError] {
        match self {
            Self::Invalid(v) => v,
            Self::Cart(e) => e.violations(),
            _ => &[],
        }
    }
}
