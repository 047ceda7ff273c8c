//! Storage for every context: connection pools for SQLite (one writer, a pool of readers) and
//! PostgreSQL, forward-only migrations gathered from the contexts, write transactions that carry
//! the transactional outbox, and the consumers' inbox.
//!
//! Each statement is written once, with `$1` placeholders both engines accept; [`run!`] expands it
//! for the engine in use.

mod error;
mod migrate;
mod outbox;
mod pool;

pub use error::DbError;
pub use migrate::Migration;
pub use outbox::{
    OutboxRow, count_pending, envelope_from_row, mark_handled, mark_published, pending_outbox,
    prune_delivered,
};
pub use pool::{Backend, Conn, Db, DbOptions, PoolStats, ReadConn, WriteTx};

/// Migrations of the platform tables (outbox, inbox).
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 20261123000000,
    description: "outbox and inbox",
    sqlite: include_str!("../migrations/sqlite/20261123000000_outbox_inbox.sql"),
    postgres: include_str!("../migrations/postgres/20261123000000_outbox_inbox.sql"),
}];

/// Runs one statement on whichever engine `$conn` holds: `$c` is bound to the engine's concrete
/// connection and `$body` is compiled once per engine.
///
/// ```text
/// let n: i64 = db::run!(tx, |c| sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(c).await)?;
/// ```
#[macro_export]
macro_rules! run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match ::core::convert::Into::<$crate::Conn<'_>>::into($conn) {
            $crate::Conn::Sqlite($c) => $body,
            $crate::Conn::Postgres($c) => $body,
        }
    };
}

/// Executes a statement (no rows back) on whichever engine `$conn` holds; yields the number of
/// rows affected.
///
/// ```text
/// let n = db::execute!(&mut tx, sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id))?;
/// ```
#[macro_export]
macro_rules! execute {
    ($conn:expr, $query:expr) => {
        $crate::run!($conn, |c| $query
            .execute(c)
            .await
            .map(|done| done.rows_affected()))
    };
}
