//! What can go wrong with a cart, each with its kind and stable code.

use emporium_catalog::CatalogError;
use emporium_db::DbError;
use emporium_inventory::InventoryError;
use emporium_kernel::ids::VariantId;
use emporium_kernel::{DomainError, ErrorKind, FieldError};
use emporium_pricing::PricingError;

/// A line that asks for more than is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Short {
    pub variant_id: VariantId,
    pub requested: i64,
    pub available: i64,
}

/// A cart failure.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    /// Also when the caller holds neither the cart's token nor its customer's session: a
    /// cart's existence is not told to strangers.
    #[error("no cart with this id (or it is not yours)")]
    CartNotFound,
    #[error("no item with this id in the cart")]
    ItemNotFound,
    #[error("not enough stock for {}", describe(.0))]
    OutOfStock(Vec<Short>),
    #[error("no coupon with this code")]
    CouponNotFound,
    /// The cart kept changing under this request (other requests on it at the same time).
    #[error("the cart changed while this request was applied; send it again")]
    CartChanged,
    /// A checkout holds the cart: it is being, or was, turned into an order.
    #[error("the cart is being checked out (or was): it takes no change; open a new cart")]
    CheckedOut,
    #[error("the coupon does not apply to this cart ({0})")]
    CouponNotApplicable(&'static str),
    #[error("catalog failure: {0}")]
    Catalog(#[from] CatalogError),
    #[error("inventory failure: {0}")]
    Inventory(#[from] InventoryError),
    #[error("pricing failure: {0}")]
    Pricing(#[from] PricingError),
    #[error("stored cart is unreadable: {0}")]
    Corrupt(String),
    #[error("storage failure")]
    Storage(#[from] DbError),
}

fn describe(lines: &[Short]) -> String {
    lines
        .iter()
        .map(|s| {
            format!(
                "{} (requested {}, available {})",
                s.variant_id, s.requested, s.available
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl CartError {
    /// A single field violation at `pointer`.
    pub(crate) fn invalid(pointer: &str, code: &str, detail: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(pointer, code, detail)])
    }
}

impl DomainError for CartError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Invalid(_) => (ErrorKind::Invalid, "validation_failed"),
            Self::CartNotFound => (ErrorKind::NotFound, "cart_not_found"),
            Self::ItemNotFound => (ErrorKind::NotFound, "cart_item_not_found"),
            Self::OutOfStock(_) => (ErrorKind::Conflict, "out_of_stock"),
            Self::CouponNotFound => (ErrorKind::NotFound, "coupon_not_found"),
            Self::CartChanged => (ErrorKind::Conflict, "cart_changed"),
            Self::CheckedOut => (ErrorKind::Conflict, "cart_checked_out"),
            Self::CouponNotApplicable(_) => (ErrorKind::Invalid, "coupon_not_applicable"),
            Self::Catalog(e) => e.kind_and_code(),
            Self::Inventory(e) => e.kind_and_code(),
            Self::Pricing(e) => e.kind_and_code(),
            Self::Corrupt(_) => (ErrorKind::Internal, "internal"),
            Self::Storage(e) => e.kind_and_code(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Catalog(e) => e.retry_after_secs(),
            Self::Inventory(e) => e.retry_after_secs(),
            Self::Pricing(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    fn violations(&self) -> &[FieldError] {
        match self {
            Self::Invalid(v) => v,
            _ => &[],
        }
    }
}
