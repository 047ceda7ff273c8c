//! Statements assembled at run time from constant fragments: bind values of mixed types, `IN`
//! lists, and multi-row inserts that write a whole batch in a few statements.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{DbError, WriteTx};

/// Bind values per statement of [`insert_rows`]: well under SQLite's 32,766 and PostgreSQL's
/// 65,535, so a statement stays a size both engines plan quickly.
const MAX_BINDS: usize = 16_000;

/// A bind value of a statement assembled from constant fragments. Its Rust type must be the one
/// other statements bind to the same column: a connection caches each statement text with the
/// parameter types it was first prepared with.
#[derive(Debug, Clone)]
pub enum Arg {
    Uuid(Uuid),
    OptUuid(Option<Uuid>),
    Text(String),
    OptText(Option<String>),
    Int(i64),
    /// For `INTEGER` columns on PostgreSQL.
    Int32(i32),
    Bool(bool),
    Time(OffsetDateTime),
    OptTime(Option<OffsetDateTime>),
}

/// Binds a slice of [`Arg`] in order to a query, on whichever engine the query is for.
#[macro_export]
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for arg in $args {
            q = match arg {
                $crate::Arg::Uuid(v) => q.bind(*v),
                $crate::Arg::OptUuid(v) => q.bind(*v),
                $crate::Arg::Text(v) => q.bind(v.clone()),
                $crate::Arg::OptText(v) => q.bind(v.clone()),
                $crate::Arg::Int(v) => q.bind(*v),
                $crate::Arg::Int32(v) => q.bind(*v),
                $crate::Arg::Bool(v) => q.bind(*v),
                $crate::Arg::Time(v) => q.bind(*v),
                $crate::Arg::OptTime(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Values per `IN (…)` list of [`fetch_in`].
pub const IN_CHUNK: usize = 5_000;

/// Runs `head` (a `SELECT … IN (` whose own placeholders `$1…` are bound to `fixed`) with the
/// list of `values`, then `)` and `tail`, in chunks of [`IN_CHUNK`] values, and gathers every
/// row. Rows of different chunks come in chunk order, so an `ORDER BY` in `tail` orders each
/// chunk only.
pub async fn fetch_in<R>(
    tx: &mut WriteTx,
    head: &str,
    fixed: &[Arg],
    values: &[Arg],
    tail: &str,
) -> Result<Vec<R>, DbError>
where
    R: Send + Unpin,
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let mut out = Vec::new();
    for chunk in values.chunks(IN_CHUNK) {
        let sql = format!(
            "{head}{}){tail}",
            placeholders(fixed.len() + 1, chunk.len())
        );
        let rows: Vec<R> = crate::run!(&mut *tx, |c| {
            let args = fixed.iter().chain(chunk);
            crate::bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())), args)
                .fetch_all(c)
                .await
                .map_err(DbError::from)
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// `$start, $start+1, …` for an `IN (…)` list of `n` values.
pub fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts `rows` with `head` (`INSERT INTO t (a, b, c) VALUES`), as few multi-row statements
/// as the bind limit allows; `tail` follows each (`ON CONFLICT … DO NOTHING`, or empty). Every
/// row must have as many values as `head` names columns. Returns the rows written.
pub async fn insert_rows(
    tx: &mut WriteTx,
    head: &'static str,
    tail: &'static str,
    rows: &[Vec<Arg>],
) -> Result<u64, DbError> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(0);
    };
    if width == 0 || rows.iter().any(|r| r.len() != width) {
        return Err(DbError::Bulk("rows of one insert differ in width"));
    }
    let mut written = 0;
    for chunk in rows.chunks((MAX_BINDS / width).max(1)) {
        let mut sql = String::with_capacity(head.len() + tail.len() + chunk.len() * width * 6);
        sql.push_str(head);
        for (i, _) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { " (" } else { ", (" });
            sql.push_str(&placeholders(i * width + 1, width));
            sql.push(')');
        }
        if !tail.is_empty() {
            sql.push(' ');
            sql.push_str(tail);
        }
        let args = chunk.iter().flatten();
        written += crate::execute!(
            &mut *tx,
            crate::bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), args.clone())
        )?;
    }
    Ok(written)
}
