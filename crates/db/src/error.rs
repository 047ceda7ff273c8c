//! Storage failures, mapped to an error kind so they never leak as anything but 503 or 500.

use emporium_kernel::{DomainError, ErrorKind};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("event payload could not be encoded")]
    Encode(#[from] serde_json::Error),
    #[error("unsupported database url (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    #[error("malformed bulk statement: {0}")]
    Bulk(&'static str),
    /// The physical commit this transaction's changes waited in failed; none of them is kept.
    #[error("{0}")]
    Group(String),
}

impl DbError {
    /// True when the failure is a unique-constraint violation (a duplicate key).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Query(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

impl DomainError for DbError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Query(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => (ErrorKind::Unavailable, "database_unavailable"),
            Self::Group(_) => (ErrorKind::Unavailable, "database_unavailable"),
            Self::Query(sqlx::Error::Database(e)) if e.message().contains("database is locked") => {
                (ErrorKind::Unavailable, "database_busy")
            }
            _ => (ErrorKind::Internal, "internal"),
        }
    }
}
