//! What can go wrong in inventory, each with its kind and stable code.

use emporium_db::DbError;
use emporium_kernel::{DomainError, ErrorKind, FieldError};

use crate::api::Shortage;

/// An inventory failure.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("no stock location with this id")]
    LocationNotFound,
    #[error("a stock location with this code already exists")]
    LocationCodeTaken,
    #[error("no reservation with this id")]
    ReservationNotFound,
    #[error("not enough stock for {}", describe_shortages(.lines))]
    OutOfStock {
        /// Every line that could not be served.
        lines: Vec<Shortage>,
    },
    #[error("the reservation was committed; it can no longer be released")]
    ReservationCommitted,
    #[error("the reservation was released or has expired; it can no longer be committed")]
    ReservationExpired,
    #[error("the reservation is not committed; only sold units can be restocked")]
    ReservationNotCommitted,
    #[error(
        "{reserved} units are reserved here; the level cannot go below that (asked {requested})"
    )]
    BelowReserved { requested: i64, reserved: i64 },
    #[error(
        "an adjustment of {delta} would leave fewer units than the {reserved} reserved (on hand {on_hand})"
    )]
    InsufficientStock {
        delta: i64,
        on_hand: i64,
        reserved: i64,
    },
    #[error("stored stock is inconsistent: {0}")]
    Inconsistent(&'static str),
    #[error("storage failure")]
    Storage(#[from] DbError),
    /// Inventory runs in another process, and the call to it failed.
    #[error(transparent)]
    Remote(emporium_http::service::CallError),
}

fn describe_shortages(lines: &[Shortage]) -> String {
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

impl InventoryError {
    /// A location write's failure: a duplicate code is `LocationCodeTaken`, anything else storage.
    pub fn code_taken_or_storage(e: DbError) -> Self {
        if e.is_unique_violation() {
            Self::LocationCodeTaken
        } else {
            Self::Storage(e)
        }
    }

    /// A single field violation at `pointer`.
    pub(crate) fn invalid(pointer: &str, code: &str, detail: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(pointer, code, detail)])
    }
}

impl DomainError for InventoryError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Invalid(_) => (ErrorKind::Invalid, "validation_failed"),
            Self::LocationNotFound => (ErrorKind::NotFound, "location_not_found"),
            Self::LocationCodeTaken => (ErrorKind::Conflict, "location_code_taken"),
            Self::ReservationNotFound => (ErrorKind::NotFound, "reservation_not_found"),
            Self::OutOfStock { .. } => (ErrorKind::Conflict, "out_of_stock"),
            Self::ReservationCommitted => (ErrorKind::Conflict, "reservation_committed"),
            Self::ReservationExpired => (ErrorKind::Conflict, "reservation_expired"),
            Self::ReservationNotCommitted => (ErrorKind::Conflict, "reservation_not_committed"),
            Self::BelowReserved { .. } => (ErrorKind::Conflict, "below_reserved"),
            Self::InsufficientStock { .. } => (ErrorKind::Conflict, "insufficient_stock"),
            Self::Inconsistent(_) => (ErrorKind::Internal, "internal"),
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
