//! Storage for every context: connection pools for SQLite (one writer, a pool of readers) and
//! PostgreSQL, forward-only migrations gathered from the contexts, write transactions that carry
//! the transactional outbox, and the consumers' inbox.
//!
//! Each statement is written once, with `$1` placeholders both engines accept; [`run!`] expands it
//! for the engine in use.

mod bulk;
mod error;
mod group;
mod migrate;
mod outbox;
mod pool;
pub mod testing;

pub use bulk::{Arg, IN_CHUNK, Sql, fetch_in, insert_rows, placeholders};
pub use error::DbError;
pub use migrate::Migration;
pub use outbox::{
    OutboxRow, count_pending, envelope_from_row, mark_all_handled, mark_published, pending_outbox,
    prune_delivered,
};
pub use pool::{
    Backend, Conn, Db, DbOptions, GuardedWrite, PoolStats, ReadConn, WriteBatch, WriteTx,
};

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

/// Implements `sqlx::FromRow` for a row struct on both engines, each field read from the column
/// of its name (fields may be `Uuid`, `String`, `i64`, `bool`, `OffsetDateTime`, or options of
/// them).
///
/// ```text
/// db::from_row!(ProductRow { id, handle, title });
/// ```
#[macro_export]
macro_rules! from_row {
    ($row:ident { $($field:ident),+ $(,)? }) => {
        impl<'r, R> $crate::__private::sqlx::FromRow<'r, R> for $row
        where
            R: $crate::__private::sqlx::Row,
            &'static str: $crate::__private::sqlx::ColumnIndex<R>,
            $crate::__private::Uuid: $crate::__private::sqlx::Decode<'r, R::Database>
                + $crate::__private::sqlx::Type<R::Database>,
            String: $crate::__private::sqlx::Decode<'r, R::Database>
                + $crate::__private::sqlx::Type<R::Database>,
            i64: $crate::__private::sqlx::Decode<'r, R::Database>
                + $crate::__private::sqlx::Type<R::Database>,
            bool: $crate::__private::sqlx::Decode<'r, R::Database>
                + $crate::__private::sqlx::Type<R::Database>,
            $crate::__private::OffsetDateTime: $crate::__private::sqlx::Decode<'r, R::Database>
                + $crate::__private::sqlx::Type<R::Database>,
        {
            fn from_row(r: &'r R) -> Result<Self, $crate::__private::sqlx::Error> {
                use $crate::__private::sqlx::Row as _;
                Ok(Self {
                    $($field: r.try_get(stringify!($field))?,)+
                })
            }
        }
    };
}

/// What the exported macros name; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use sqlx;
    pub use time::OffsetDateTime;
    pub use uuid::Uuid;
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
