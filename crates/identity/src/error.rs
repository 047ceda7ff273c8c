//! What can go wrong in identity, each with its kind and stable code.

use emporium_db::DbError;
use emporium_kernel::{DomainError, ErrorKind, FieldError};

use crate::password::HashError;
use crate::tokens::KeyringError;

/// An identity failure.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("no customer with this id")]
    CustomerNotFound,
    #[error("no staff user with this id")]
    UserNotFound,
    #[error("no API client with this id")]
    ClientNotFound,
    #[error("the store must keep at least one owner")]
    LastOwner,
    #[error("too many failed sign-in attempts; retry in {retry_after} s")]
    Throttled { retry_after: u64 },
    #[error("storage failure")]
    Storage(#[from] DbError),
    #[error("password hashing failure")]
    Hash(#[from] HashError),
    #[error("signing key failure")]
    Keys(#[from] KeyringError),
}

impl IdentityError {
    /// An insert's failure: a duplicate e-mail address is `EmailTaken`, anything else storage.
    pub fn taken_or_storage(e: DbError) -> Self {
        if e.is_unique_violation() {
            Self::EmailTaken
        } else {
            Self::Storage(e)
        }
    }
}

impl DomainError for IdentityError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Invalid(_) => (ErrorKind::Invalid, "validation_failed"),
            Self::EmailTaken => (ErrorKind::Conflict, "email_taken"),
            Self::CustomerNotFound => (ErrorKind::NotFound, "customer_not_found"),
            Self::UserNotFound => (ErrorKind::NotFound, "user_not_found"),
            Self::ClientNotFound => (ErrorKind::NotFound, "api_client_not_found"),
            Self::LastOwner => (ErrorKind::Conflict, "last_owner"),
            Self::Throttled { .. } => (ErrorKind::RateLimited, "login_throttled"),
            Self::Storage(e) => e.kind_and_code(),
            Self::Hash(_) | Self::Keys(_) => (ErrorKind::Internal, "internal"),
        }
    }

    fn violations(&self) -> &[FieldError] {
        match self {
            Self::Invalid(v) => v,
            _ => &[],
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A token-endpoint failure, answered in the RFC 6749 §5.2 shape.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient { basic: bool },
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("the grant type is not supported")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidScope(String),
    #[error(transparent)]
    Other(#[from] IdentityError),
}

impl OAuthError {
    /// The RFC 6749 `error` code.
    pub fn oauth_code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::Other(_) => "server_error",
        }
    }
}

impl From<DbError> for OAuthError {
    fn from(e: DbError) -> Self {
        Self::Other(e.into())
    }
}
impl From<HashError> for OAuthError {
    fn from(e: HashError) -> Self {
        Self::Other(e.into())
    }
}
impl From<KeyringError> for OAuthError {
    fn from(e: KeyringError) -> Self {
        Self::Other(e.into())
    }
}
