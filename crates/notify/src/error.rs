//! What can go wrong in notify, each with its kind and stable code.

use emporium_db::DbError;
use emporium_kernel::{DomainError, ErrorKind, FieldError};

/// A notify failure.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("no webhook endpoint with this id")]
    EndpointNotFound,
    #[error("no delivery with this id for this endpoint")]
    DeliveryNotFound,
    #[error("the endpoint changed since the version given in If-Match")]
    VersionMismatch,
    #[error("a new secret could not be drawn")]
    Random,
    #[error("storage failure")]
    Storage(#[from] DbError),
}

impl NotifyError {
    /// A single field violation at `pointer`.
    pub(crate) fn invalid(mut e: FieldError, pointer: &str) -> Self {
        if e.pointer.is_empty() {
            e.pointer = pointer.to_owned();
        }
        Self::Invalid(vec![e])
    }
}

impl DomainError for NotifyError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Invalid(_) => (ErrorKind::Invalid, "validation_failed"),
            Self::EndpointNotFound => (ErrorKind::NotFound, "webhook_endpoint_not_found"),
            Self::DeliveryNotFound => (ErrorKind::NotFound, "webhook_delivery_not_found"),
            Self::VersionMismatch => (ErrorKind::PreconditionFailed, "precondition_failed"),
            Self::Random => (ErrorKind::Internal, "internal"),
            Self::Storage(e) => e.kind_and_code(),
        }
    }

    fn violations(&self) -> &[FieldError] {
        match self {
            Self::Invalid(v) => v,
            _ => &[],
        }
    }
}
