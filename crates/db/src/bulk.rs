//! Statements assembled at run time from constant fragments: bind values of mixed types, `IN`
//! lists, and multi-row inserts that write a whole batch in a few statements.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Backend, Conn, DbError, WriteTx};

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
    OptInt(Option<i64>),
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
                $crate::Arg::OptInt(v) => q.bind(*v),
                $crate::Arg::Int32(v) => q.bind(*v),
                $crate::Arg::Bool(v) => q.bind(*v),
                $crate::Arg::Time(v) => q.bind(*v),
                $crate::Arg::OptTime(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Statements per batch of [`Sql::execute_batches`] at most: a PostgreSQL statement of
/// thousands of `WITH` clauses would cost more to plan than the round trips it saves.
const MAX_BATCH_STATEMENTS: usize = 64;

/// Values per `IN (…)` list of [`fetch_in`].
pub const IN_CHUNK: usize = 5_000;

/// Rows per statement of [`insert_rows`] at most.
const MAX_ROWS: usize = 256;

/// Runs `head` (a `SELECT … IN (` with no placeholder of its own) with the list of `values`,
/// then `)` and `tail`, in chunks of [`IN_CHUNK`] values, and gathers every row. Rows of
/// different chunks come in chunk order, so an `ORDER BY` in `tail` orders each chunk only.
pub async fn fetch_in<R>(
    tx: &mut WriteTx,
    head: &str,
    values: &[Arg],
    tail: &str,
) -> Result<Vec<R>, DbError>
where
    R: Send + Unpin,
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let backend = tx.backend();
    let mut out = Vec::new();
    for chunk in values.chunks(IN_CHUNK) {
        let mut sql = String::from(head);
        push_placeholders(&mut sql, backend, 1, chunk.len());
        sql.push(')');
        sql.push_str(tail);
        let rows: Vec<R> = crate::run!(&mut *tx, |c| {
            crate::bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())), chunk)
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

/// Appends `n` placeholders for the values from `start` on: `$start, …` on PostgreSQL, and
/// anonymous `?` on SQLite, whose binding looks each named parameter up by a linear search
/// (so thousands of `$n` would cost time quadratic in their number).
fn push_placeholders(sql: &mut String, backend: Backend, start: usize, n: usize) {
    use std::fmt::Write as _;
    for i in start..start + n {
        if i > start {
            sql.push_str(", ");
        }
        match backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                let _ = write!(sql, "${i}");
            }
        }
    }
}

/// Inserts `rows` with `head` (`INSERT INTO t (a, b, c) VALUES`) in multi-row statements; `tail`
/// follows each (`ON CONFLICT … DO NOTHING`, or empty). Every row must have as many values as
/// `head` names columns. Statements hold a power of two of rows (at most [`MAX_ROWS`], and
/// within the bind limit), so a few statement shapes serve every batch size and stay in the
/// connection's statement cache instead of being parsed again. Returns the rows written.
///
/// On SQLite the statements run `INSERT OR FAIL`: a statement that fails keeps the rows it
/// wrote before the failing one, so the caller must roll back (the transaction, or to a
/// savepoint) on an error, as returning the error does. In exchange SQLite keeps no statement
/// journal for tables without foreign keys (the outbox, products), a large share of a bulk
/// write's cost.
pub async fn insert_rows(
    tx: &mut WriteTx,
    head: &'static str,
    tail: &'static str,
    rows: Vec<Vec<Arg>>,
) -> Result<u64, DbError> {
    let mut written = 0;
    for statement in insert_statements(tx.backend(), head, tail, rows)? {
        written += statement.execute(&mut *tx).await?;
    }
    Ok(written)
}

/// The statements of [`insert_rows`], to run now or with a commit
/// ([`WriteTx::write_at_commit`]).
pub(crate) fn insert_statements(
    backend: Backend,
    head: &'static str,
    tail: &'static str,
    rows: Vec<Vec<Arg>>,
) -> Result<Vec<Sql>, DbError> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(Vec::new());
    };
    if width == 0 || rows.iter().any(|r| r.len() != width) {
        return Err(DbError::Bulk("rows of one insert differ in width"));
    }
    let most = power_of_two_at_most(MAX_ROWS.min(MAX_BINDS / width).max(1));
    let mut statements = Vec::new();
    let mut rows = rows.into_iter().peekable();
    let mut left = rows.len();
    while rows.peek().is_some() {
        let count = power_of_two_at_most(left.min(most));
        left -= count;
        let mut sql = Sql::default();
        match head.strip_prefix("INSERT INTO ") {
            Some(rest) if backend == Backend::Sqlite => {
                sql.push("INSERT OR FAIL INTO ").push(rest);
            }
            _ => {
                sql.push(head);
            }
        }
        // The values move into the statement: a bulk write's documents are not copied.
        for (i, row) in rows.by_ref().take(count).enumerate() {
            sql.push(if i == 0 { " " } else { ", " });
            sql.binds += row.len();
            sql.parts.push(Part::Row(row));
        }
        if !tail.is_empty() {
            sql.push(" ").push(tail);
        }
        statements.push(sql);
    }
    Ok(statements)
}

/// A statement assembled from constant fragments and bind values, with the placeholders of
/// whichever engine runs it: for a statement whose shape depends on the data (an `IN` list)
/// and which needs bind values around it.
///
/// ```text
/// let mut sql = Sql::default();
/// sql.push("UPDATE outbox SET published_at = ").bind(Arg::Time(now))
///     .push(" WHERE position IN (").bind_in(positions.iter().map(|p| Arg::Int(*p))).push(")");
/// sql.execute(&mut tx).await?;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Sql {
    parts: Vec<Part>,
    binds: usize,
}

#[derive(Debug, Clone)]
enum Part {
    Text(&'static str),
    Bind(Arg),
    /// A whole statement written with `$1, $2, …` and its values, renumbered where it lands.
    Numbered(&'static str, Vec<Arg>),
    /// `(…, …)`: a row of an `INSERT`'s `VALUES`, one placeholder per value.
    Row(Vec<Arg>),
}

impl Sql {
    /// A statement written as for PostgreSQL (`$1`, `$2`, … each standing for that value of
    /// `args`; a number may recur), runnable on either engine and in a batch. Its text must
    /// hold `$` only in placeholders.
    pub fn statement(text: &'static str, args: Vec<Arg>) -> Self {
        let binds = text.matches('$').count();
        Self {
            parts: vec![Part::Numbered(text, args)],
            binds,
        }
    }

    /// Appends `other`, its placeholders numbered after this statement's.
    pub(crate) fn append(&mut self, other: Sql) -> &mut Self {
        self.binds += other.binds;
        self.parts.extend(other.parts);
        self
    }

    /// Appends the rows of a `VALUES` list, comma-separated.
    pub(crate) fn push_rows(&mut self, rows: Vec<Vec<Arg>>) -> &mut Self {
        for (i, row) in rows.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.binds += row.len();
            self.parts.push(Part::Row(row));
        }
        self
    }

    /// Appends SQL text.
    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.parts.push(Part::Text(fragment));
        self
    }

    /// Appends a placeholder bound to `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.parts.push(Part::Bind(arg));
        self.binds += 1;
        self
    }

    /// Appends the comma-separated placeholders of an `IN (…)` list of `args` (at least one).
    /// The list is padded to a power of two by repeating its last value, which changes nothing
    /// an `IN` means and keeps the statement shapes few, so they stay in the connection's
    /// statement cache.
    pub fn bind_in(&mut self, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        let args: Vec<Arg> = args.into_iter().collect();
        let Some(last) = args.last().cloned() else {
            return self;
        };
        let padded = args.len().next_power_of_two();
        for (i, arg) in args
            .into_iter()
            .chain(std::iter::repeat_n(last, padded))
            .take(padded)
            .enumerate()
        {
            if i > 0 {
                self.push(", ");
            }
            self.bind(arg);
        }
        self
    }

    /// The statement's text for `backend`, and its bind values in order.
    fn render(&self, backend: Backend) -> (String, Vec<&Arg>) {
        let mut text = String::new();
        let mut args = Vec::with_capacity(self.binds);
        self.render_into(backend, &mut text, &mut args);
        (text, args)
    }

    /// Appends the statement's text to `text` and its bind values to `args`, numbering its
    /// placeholders after those already there.
    fn render_into<'a>(&'a self, backend: Backend, text: &mut String, args: &mut Vec<&'a Arg>) {
        for part in &self.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Bind(arg) => {
                    args.push(arg);
                    push_placeholders(text, backend, args.len(), 1);
                }
                Part::Row(values) => {
                    text.push('(');
                    push_placeholders(text, backend, args.len() + 1, values.len());
                    args.extend(values);
                    text.push(')');
                }
                Part::Numbered(t, values) => {
                    // Each `$n` becomes a placeholder of its own, bound to the n-th value.
                    let mut rest = *t;
                    while let Some(at) = rest.find('$') {
                        text.push_str(&rest[..at]);
                        let digits = rest[at + 1..]
                            .find(|c: char| !c.is_ascii_digit())
                            .map_or(rest.len() - at - 1, |n| n);
                        let number: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
                        match number.checked_sub(1).and_then(|i| values.get(i)) {
                            Some(arg) => {
                                args.push(arg);
                                push_placeholders(text, backend, args.len(), 1);
                            }
                            // Not a placeholder of ours: left as written, for the engine to refuse.
                            None => text.push_str(&rest[at..at + 1 + digits]),
                        }
                        rest = &rest[at + 1 + digits..];
                    }
                    text.push_str(rest);
                }
            }
        }
    }

    /// Runs `statements` in as few round trips as the bind limit and [`MAX_BATCH_STATEMENTS`]
    /// allow (one, but for bulk writes), in order. See [`Sql::execute_batch`].
    pub(crate) async fn execute_batches(
        statements: &[Sql],
        tx: &mut WriteTx,
    ) -> Result<(), DbError> {
        for batch in Self::batches(statements) {
            Self::execute_batch(batch, &mut *tx).await?;
        }
        Ok(())
    }

    /// Whether `statements` go to the database in one round trip.
    pub(crate) fn fit_one_batch(statements: &[Sql]) -> bool {
        Self::batches(statements).len() <= 1
    }

    /// `statements` cut into the batches [`Sql::execute_batches`] sends, each within the bind
    /// limit and [`MAX_BATCH_STATEMENTS`] (a lone statement over the limit is a batch alone).
    fn batches(statements: &[Sql]) -> Vec<&[Sql]> {
        let mut batches = Vec::new();
        let (mut start, mut binds) = (0, 0);
        for (i, statement) in statements.iter().enumerate() {
            if i > start
                && (binds + statement.binds > MAX_BINDS || i - start == MAX_BATCH_STATEMENTS)
            {
                batches.push(&statements[start..i]);
                (start, binds) = (i, 0);
            }
            binds += statement.binds;
        }
        if start < statements.len() {
            batches.push(&statements[start..]);
        }
        batches
    }

    /// Runs `statements` in one round trip: on SQLite one string of statements, on
    /// PostgreSQL one statement whose first ones are data-modifying `WITH` clauses (so each
    /// sees the database as it was before the batch: no statement of a batch may read what
    /// another writes).
    pub(crate) async fn execute_batch<'c>(
        statements: &[Sql],
        c: impl Into<Conn<'c>>,
    ) -> Result<(), DbError> {
        let c = c.into();
        let backend = c.backend();
        match statements {
            [] => return Ok(()),
            [one] => return one.execute(c).await.map(|_| ()),
            _ => {}
        }
        let mut text = String::new();
        let mut args = Vec::new();
        for (i, statement) in statements.iter().enumerate() {
            match backend {
                Backend::Sqlite => {
                    if i > 0 {
                        text.push_str("; ");
                    }
                    statement.render_into(backend, &mut text, &mut args);
                }
                Backend::Postgres => {
                    use std::fmt::Write as _;
                    if i + 1 == statements.len() {
                        text.push(' ');
                        statement.render_into(backend, &mut text, &mut args);
                    } else {
                        let _ = write!(text, "{} w{i} AS (", if i == 0 { "WITH" } else { "," });
                        statement.render_into(backend, &mut text, &mut args);
                        text.push(')');
                    }
                }
            }
        }
        run_rendered(c, text, &args).await?;
        Ok(())
    }

    /// Runs it; returns the rows affected.
    pub async fn execute<'c>(&self, c: impl Into<Conn<'c>>) -> Result<u64, DbError> {
        let c = c.into();
        let (text, args) = self.render(c.backend());
        run_rendered(c, text, &args).await
    }

    /// Runs it and reads the one number its one row holds (a count).
    pub(crate) async fn fetch_count<'c>(&self, c: impl Into<Conn<'c>>) -> Result<i64, DbError> {
        let c = c.into();
        let (text, args) = self.render(c.backend());
        crate::run!(c, |c| {
            crate::bind_all!(
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(text.clone())),
                args.iter().copied()
            )
            .fetch_one(c)
            .await
            .map_err(DbError::from)
        })
    }

    /// Runs it and reads every row.
    pub async fn fetch_all<'c, R>(&self, c: impl Into<Conn<'c>>) -> Result<Vec<R>, DbError>
    where
        R: Send + Unpin,
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        let c = c.into();
        let (text, args) = self.render(c.backend());
        crate::run!(c, |c| {
            crate::bind_all!(
                sqlx::query_as(sqlx::AssertSqlSafe(text.clone())),
                args.iter().copied()
            )
            .fetch_all(c)
            .await
            .map_err(DbError::from)
        })
    }
}

/// Runs a rendered statement (text and bind values in order); returns the rows affected.
async fn run_rendered(c: Conn<'_>, text: String, args: &[&Arg]) -> Result<u64, DbError> {
    Ok(crate::execute!(
        c,
        crate::bind_all!(sqlx::query(sqlx::AssertSqlSafe(text)), args.iter().copied())
    )?)
}

/// The largest power of two not above `n` (`n` > 0).
fn power_of_two_at_most(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::power_of_two_at_most;

    #[test]
    fn chunk_sizes_are_powers_of_two_not_above_the_count() {
        let got: Vec<usize> = [1, 2, 3, 255, 256, 257].map(power_of_two_at_most).to_vec();
        assert_eq!(got, [1, 2, 2, 128, 256, 256]);
    }
}
