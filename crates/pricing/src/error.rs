//! What can go wrong in pricing, each with its kind and stable code.

use emporium_db::DbError;
use emporium_kernel::{DomainError, ErrorKind, FieldError};

/// A pricing failure.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("no {0} with this id")]
    RuleNotFound(&'static str),
    #[error("a tax rate for this region already exists")]
    TaxRegionTaken,
    #[error("a coupon with this code already exists")]
    CouponCodeTaken,
    #[error("no coupon with this id")]
    CouponNotFound,
    #[error("the coupon has no uses left")]
    CouponExhausted,
    #[error("this customer has used the coupon as often as allowed")]
    CouponCustomerLimit,
    #[error("the resource changed since it was read (If-Match does not match)")]
    VersionMismatch,
    #[error("stored pricing rules are unreadable: {0}")]
    Corrupt(String),
    #[error("storage failure")]
    Storage(#[from] DbError),
    /// Pricing runs in another process, which did not answer.
    #[error(transparent)]
    Remote(emporium_http::service::CallError),
}

impl PricingError {
    /// A single field violation at `pointer`.
    pub(crate) fn invalid(pointer: &str, code: &str, detail: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(pointer, code, detail)])
    }
}

impl DomainError for PricingError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Invalid(_) => (ErrorKind::Invalid, "validation_failed"),
            Self::RuleNotFound(_) => (ErrorKind::NotFound, "pricing_rule_not_found"),
            Self::TaxRegionTaken => (ErrorKind::Conflict, "tax_region_taken"),
            Self::CouponCodeTaken => (ErrorKind::Conflict, "coupon_code_taken"),
            Self::CouponNotFound => (ErrorKind::NotFound, "coupon_not_found"),
            Self::CouponExhausted => (ErrorKind::Conflict, "coupon_exhausted"),
            Self::CouponCustomerLimit => (ErrorKind::Conflict, "coupon_customer_limit"),
            Self::VersionMismatch => (ErrorKind::PreconditionFailed, "precondition_failed"),
            Self::Corrupt(_) => (ErrorKind::Internal, "internal"),
            Self::Storage(e) => e.kind_and_code(),
            Self::Remote(e) => e.kind_and_code(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Remote(e) => e.retry_after_secs(),
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
