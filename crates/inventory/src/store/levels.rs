//! Stock levels, their conditional updates, the per-variant lock and the ledger.

use emporium_db::{Arg, Backend, Conn, DbError, Sql, WriteTx, fetch_in, insert_rows, run};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{LedgerRow, LevelRow};

/// Namespace of inventory's advisory locks (the first key of the two-key form).
const VARIANT_LOCK_SPACE: i32 = 0x1_57_0c;

/// Serialises the stock changes of one variant until the transaction ends.
///
/// The conditional updates alone keep stock right; this lock keeps the `variant_available` of
/// consecutive events right: without it two transactions changing two locations of one variant
/// could each sum the other's old level, and the last event would show a stale figure. SQLite
/// has one writer, so it needs nothing. Callers taking several variants take them in variant id
/// order, so two transactions never wait on each other in a cycle.
pub async fn lock_variant<'c>(c: impl Into<Conn<'c>>, variant: Uuid) -> Result<(), DbError> {
    match c.into() {
        Conn::Sqlite(_) => Ok(()),
        Conn::Postgres(c) => {
            sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(VARIANT_LOCK_SPACE)
                .bind(lock_key(variant))
                .execute(c)
                .await?;
            Ok(())
        }
    }
}

/// [`lock_variant`] for each of `variants`, in one statement, in variant id order (the order
/// every caller takes them in, so no two transactions wait on each other in a cycle).
pub async fn lock_variants(tx: &mut WriteTx, variants: &[Uuid]) -> Result<(), DbError> {
    if tx.backend() == Backend::Sqlite || variants.is_empty() {
        return Ok(());
    }
    let mut sorted = variants.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut sql = Sql::default();
    sql.push("SELECT pg_advisory_xact_lock(")
        .bind(Arg::Int32(VARIANT_LOCK_SPACE))
        .push(", k) FROM unnest(ARRAY[")
        .bind_in(sorted.into_iter().map(|v| Arg::Int32(lock_key(v))))
        .push("]) WITH ORDINALITY AS locks (k, n) ORDER BY n");
    sql.execute(&mut *tx).await?;
    Ok(())
}

/// A 32-bit key for a variant; two variants sharing one only wait on each other.
fn lock_key(variant: Uuid) -> i32 {
    let b = variant.as_bytes();
    let fold = |i: usize| i32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    fold(0) ^ fold(4) ^ fold(8) ^ fold(12)
}

// The column lists of the row structs, in field order: macros rather than constants so that
// `concat!` can build each statement into a `&'static str`.

macro_rules! level_columns {
    () => {
        "variant_id, location_id, on_hand, reserved, version, updated_at"
    };
}

macro_rules! ledger_columns {
    () => {
        "id, variant_id, location_id, delta_on_hand, delta_reserved, on_hand_after, \
         reserved_after, reason, actor, reservation_id, created_at"
    };
}

/// The level of `variant` at `location`, if any.
pub async fn find_level<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
) -> Result<Option<LevelRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        level_columns!(),
        " FROM stock_levels WHERE variant_id = $1 AND location_id = $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(variant)
        .bind(location)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Every level of `variant`, by location id.
pub async fn levels_of_variant<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
) -> Result<Vec<LevelRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        level_columns!(),
        " FROM stock_levels WHERE variant_id = $1 ORDER BY location_id"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(variant)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Variants whose units available over all locations are below `below`, fewest first, after
/// `(available, variant)` when given: `(variant, on_hand, reserved)` rows.
pub async fn low_stock<'c>(
    c: impl Into<Conn<'c>>,
    below: i64,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<(Uuid, i64, i64)>, DbError> {
    // The sums are cast: PostgreSQL sums a BIGINT column as NUMERIC.
    const SQL: &str = "SELECT variant_id, on_hand, reserved FROM ( \
           SELECT variant_id, CAST(SUM(on_hand) AS BIGINT) AS on_hand, \
                  CAST(SUM(reserved) AS BIGINT) AS reserved \
           FROM stock_levels GROUP BY variant_id) AS totals \
         WHERE on_hand - reserved < $1 \
         AND ($2 IS NULL OR on_hand - reserved > $2 \
              OR (on_hand - reserved = $2 AND variant_id > $3)) \
         ORDER BY on_hand - reserved, variant_id LIMIT $4";
    let (available, variant) = after.map_or((None, None), |(a, v)| (Some(a), Some(v)));
    run!(c, |c| sqlx::query_as(SQL)
        .bind(below)
        .bind(available)
        .bind(variant)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Runs `sql`, a statement writing the level of `variant` (`$1`) at `location` (`$2`) with
/// `amount` (`$3`) at `now` (`$4`) and returning the level's columns: the row after, or `None`
/// when it wrote nothing.
async fn write_level<'c>(
    c: impl Into<Conn<'c>>,
    sql: &'static str,
    variant: Uuid,
    location: Uuid,
    amount: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    run!(c, |c| sqlx::query_as(sql)
        .bind(variant)
        .bind(location)
        .bind(amount)
        .bind(now)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Creates the level of `variant` at `location` with `on_hand` units and none reserved; `None`
/// when it exists already.
pub async fn insert_level<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
    on_hand: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    const SQL: &str = concat!(
        "INSERT INTO stock_levels (",
        level_columns!(),
        ") VALUES ($1, $2, $3, 0, 1, $4) ON CONFLICT (variant_id, location_id) DO NOTHING \
         RETURNING ",
        level_columns!()
    );
    write_level(c, SQL, variant, location, on_hand, now).await
}

/// Sets `on_hand` when it is not below what is reserved; the row after, or `None` when the
/// level is missing or the condition fails.
pub async fn set_on_hand<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
    on_hand: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    const SQL: &str = concat!(
        "UPDATE stock_levels SET on_hand = $3, version = version + 1, updated_at = $4 \
         WHERE variant_id = $1 AND location_id = $2 AND reserved <= $3 RETURNING ",
        level_columns!()
    );
    write_level(c, SQL, variant, location, on_hand, now).await
}

/// Adds `delta` to `on_hand` when the result stays at or above what is reserved (so never
/// below zero); the row after, or `None` when the level is missing or the condition fails.
pub async fn adjust_on_hand<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
    delta: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    const SQL: &str = concat!(
        "UPDATE stock_levels SET on_hand = on_hand + $3, version = version + 1, updated_at = $4 \
         WHERE variant_id = $1 AND location_id = $2 AND on_hand + $3 >= reserved RETURNING ",
        level_columns!()
    );
    write_level(c, SQL, variant, location, delta, now).await
}

/// A level just changed, with what the variant's other locations hold: the variant's totals
/// without a second statement.
#[derive(Debug, Clone)]
pub struct TakenLevel {
    pub level: LevelRow,
    pub others_on_hand: i64,
    pub others_reserved: i64,
}

impl<'r, R> sqlx::FromRow<'r, R> for TakenLevel
where
    R: sqlx::Row,
    LevelRow: sqlx::FromRow<'r, R>,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            level: LevelRow::from_row(r)?,
            others_on_hand: r.try_get("others_on_hand")?,
            others_reserved: r.try_get("others_reserved")?,
        })
    }
}

impl TakenLevel {
    /// The variant's `(on_hand, reserved)` over every location, this change included.
    pub fn variant_totals(&self) -> (i64, i64) {
        (
            self.level.on_hand + self.others_on_hand,
            self.level.reserved + self.others_reserved,
        )
    }
}

/// What a statement changing one level also returns: the sums of the variant's other
/// locations (a macro, so that `concat!` can use it).
macro_rules! others_columns {
    () => {
        ", (SELECT CAST(COALESCE(SUM(o.on_hand), 0) AS BIGINT) FROM stock_levels o \
         WHERE o.variant_id = stock_levels.variant_id AND o.location_id <> stock_levels.location_id) \
         AS others_on_hand, \
         (SELECT CAST(COALESCE(SUM(o.reserved), 0) AS BIGINT) FROM stock_levels o \
         WHERE o.variant_id = stock_levels.variant_id AND o.location_id <> stock_levels.location_id) \
         AS others_reserved"
    };
}

/// Holds each `(variant, quantity)` of `lines` (variants distinct) at the variant's location
/// with the most available (the lowest location id among equals), all in one statement; the
/// levels taken, in no particular order. A line no single location can serve takes nothing
/// and has no row: the caller compares counts and rolls back on a shortfall. The caller holds
/// the variants' locks, so the other locations' sums are exact.
pub async fn reserve_best(
    tx: &mut WriteTx,
    lines: &[(Uuid, i64)],
    now: OffsetDateTime,
) -> Result<Vec<TakenLevel>, DbError> {
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let postgres = tx.backend() == Backend::Postgres;
    let mut sql = Sql::default();
    sql.push("WITH wanted (variant_id, quantity) AS (VALUES ");
    for (i, (variant, quantity)) in lines.iter().enumerate() {
        push_values_row(&mut sql, i == 0, postgres, &[*variant], *quantity);
    }
    sql.push(
        ") UPDATE stock_levels SET reserved = reserved + wanted.quantity, \
         version = version + 1, updated_at = ",
    )
    .bind(Arg::Time(now))
    .push(concat!(
        " FROM wanted WHERE stock_levels.variant_id = wanted.variant_id \
         AND stock_levels.on_hand - stock_levels.reserved >= wanted.quantity \
         AND stock_levels.location_id = (SELECT b.location_id FROM stock_levels b \
         WHERE b.variant_id = wanted.variant_id AND b.on_hand - b.reserved >= wanted.quantity \
         ORDER BY b.on_hand - b.reserved DESC, b.location_id LIMIT 1) RETURNING ",
        "stock_levels.variant_id, stock_levels.location_id, stock_levels.on_hand, \
         stock_levels.reserved, stock_levels.version, stock_levels.updated_at",
        others_columns!()
    ));
    sql.fetch_all(&mut *tx).await
}

/// Appends `(ids…, quantity)` to a `VALUES` list (`first`: without the comma). PostgreSQL types
/// a bare parameter in `VALUES` as text, so there each value says its type.
fn push_values_row(sql: &mut Sql, first: bool, postgres: bool, ids: &[Uuid], quantity: i64) {
    sql.push(if first { "(" } else { ", (" });
    for id in ids {
        if postgres {
            sql.push("CAST(").bind(Arg::Uuid(*id)).push(" AS UUID), ");
        } else {
            sql.bind(Arg::Uuid(*id)).push(", ");
        }
    }
    sql.push("CAST(")
        .bind(Arg::Int(quantity))
        .push(" AS BIGINT))");
}

/// Takes the held units of each `(variant, location, quantity)` of `sales` out of the stock at
/// that location (both `on_hand` and `reserved` go down), in one statement; the levels
/// taken, in no particular order, without those holding fewer than their quantity (the caller
/// compares counts). The variants must be distinct: the other locations' sums are read as they
/// stood before the statement. The caller holds the variants' locks.
pub async fn sell_all(
    tx: &mut WriteTx,
    sales: &[(Uuid, Uuid, i64)],
    now: OffsetDateTime,
) -> Result<Vec<TakenLevel>, DbError> {
    if sales.is_empty() {
        return Ok(Vec::new());
    }
    let postgres = tx.backend() == Backend::Postgres;
    let mut sql = Sql::default();
    sql.push("WITH sold (variant_id, location_id, quantity) AS (VALUES ");
    for (i, (variant, location, quantity)) in sales.iter().enumerate() {
        push_values_row(
            &mut sql,
            i == 0,
            postgres,
            &[*variant, *location],
            *quantity,
        );
    }
    sql.push(
        ") UPDATE stock_levels SET on_hand = on_hand - sold.quantity, \
         reserved = reserved - sold.quantity, version = version + 1, updated_at = ",
    )
    .bind(Arg::Time(now))
    .push(concat!(
        " FROM sold WHERE stock_levels.variant_id = sold.variant_id \
         AND stock_levels.location_id = sold.location_id \
         AND stock_levels.reserved >= sold.quantity RETURNING ",
        "stock_levels.variant_id, stock_levels.location_id, stock_levels.on_hand, \
         stock_levels.reserved, stock_levels.version, stock_levels.updated_at",
        others_columns!()
    ));
    sql.fetch_all(&mut *tx).await
}

/// Puts `quantity` sold units back on hand at one location; `None` when the level is gone.
pub async fn restock_at<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
    quantity: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    const SQL: &str = concat!(
        "UPDATE stock_levels SET on_hand = on_hand + $3, version = version + 1, updated_at = $4 \
         WHERE variant_id = $1 AND location_id = $2 RETURNING ",
        level_columns!()
    );
    write_level(c, SQL, variant, location, quantity, now).await
}

/// Gives back `quantity` held units at one location; `None` when fewer are held there.
pub async fn release_at<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
    quantity: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    const SQL: &str = concat!(
        "UPDATE stock_levels SET reserved = reserved - $3, version = version + 1, updated_at = $4 \
         WHERE variant_id = $1 AND location_id = $2 AND reserved >= $3 RETURNING ",
        level_columns!()
    );
    write_level(c, SQL, variant, location, quantity, now).await
}

/// The largest availability of `variant` at a single location (0 without levels).
pub async fn max_available<'c>(c: impl Into<Conn<'c>>, variant: Uuid) -> Result<i64, DbError> {
    run!(c, |c| {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(on_hand - reserved), 0) AS BIGINT) \
             FROM stock_levels WHERE variant_id = $1",
        )
        .bind(variant)
        .fetch_one(c)
        .await?;
        Ok(n)
    })
}

/// `on_hand` and `reserved` of `variant` summed over every location (zeros without levels).
pub async fn variant_totals<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
) -> Result<(i64, i64), DbError> {
    run!(c, |c| {
        sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(on_hand), 0) AS BIGINT) AS on_hand, \
             CAST(COALESCE(SUM(reserved), 0) AS BIGINT) AS reserved \
             FROM stock_levels WHERE variant_id = $1",
        )
        .bind(variant)
        .fetch_one(c)
        .await
        .map_err(DbError::from)
    })
}

/// Appends ledger rows with a few multi-row statements, written with `tx`'s commit.
pub fn insert_ledger_rows(tx: &mut WriteTx, rows: &[LedgerRow]) -> Result<(), DbError> {
    let rows: Vec<Vec<Arg>> = rows
        .iter()
        .map(|r| {
            vec![
                Arg::Uuid(r.id),
                Arg::Uuid(r.variant_id),
                Arg::Uuid(r.location_id),
                Arg::Int(r.delta_on_hand),
                Arg::Int(r.delta_reserved),
                Arg::Int(r.on_hand_after),
                Arg::Int(r.reserved_after),
                Arg::Text(r.reason.clone()),
                Arg::Text(r.actor.clone()),
                Arg::OptUuid(r.reservation_id),
                Arg::Time(r.created_at),
            ]
        })
        .collect();
    tx.insert_rows_at_commit(
        concat!("INSERT INTO stock_ledger (", ledger_columns!(), ") VALUES"),
        "",
        rows,
    )
}

/// The levels at `location` of any of `variants`.
pub async fn levels_at(
    tx: &mut WriteTx,
    location: Uuid,
    variants: &[Uuid],
) -> Result<Vec<LevelRow>, DbError> {
    let args: Vec<Arg> = variants.iter().map(|v| Arg::Uuid(*v)).collect();
    let levels: Vec<LevelRow> = fetch_in(
        tx,
        concat!(
            "SELECT ",
            level_columns!(),
            " FROM stock_levels WHERE variant_id IN ("
        ),
        &args,
        "",
    )
    .await?;
    Ok(levels
        .into_iter()
        .filter(|l| l.location_id == location)
        .collect())
}

/// Creates levels that do not exist yet, with a few multi-row statements.
pub async fn insert_levels(tx: &mut WriteTx, levels: &[LevelRow]) -> Result<u64, DbError> {
    let rows: Vec<Vec<Arg>> = levels
        .iter()
        .map(|l| {
            vec![
                Arg::Uuid(l.variant_id),
                Arg::Uuid(l.location_id),
                Arg::Int(l.on_hand),
                Arg::Int(l.reserved),
                Arg::Int(l.version),
                Arg::Time(l.updated_at),
            ]
        })
        .collect();
    insert_rows(
        tx,
        concat!("INSERT INTO stock_levels (", level_columns!(), ") VALUES"),
        "",
        rows,
    )
    .await
}

/// `(variant, on_hand, reserved)` summed over every location, for each of `variants` that has
/// a level.
pub async fn totals_of(
    tx: &mut WriteTx,
    variants: &[Uuid],
) -> Result<Vec<(Uuid, i64, i64)>, DbError> {
    let args: Vec<Arg> = variants.iter().map(|v| Arg::Uuid(*v)).collect();
    fetch_in(
        tx,
        "SELECT variant_id, CAST(SUM(on_hand) AS BIGINT), CAST(SUM(reserved) AS BIGINT) \
         FROM stock_levels WHERE variant_id IN (",
        &args,
        " GROUP BY variant_id",
    )
    .await
}

/// Ledger rows older than `before` (ids are time-ordered), newest first.
pub async fn list_ledger<'c>(
    c: impl Into<Conn<'c>>,
    before: Uuid,
    limit: i64,
) -> Result<Vec<LedgerRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM stock_ledger WHERE id < $1 ORDER BY id DESC LIMIT $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(before)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Ledger rows of `variant` older than `before`, newest first.
pub async fn list_ledger_of_variant<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    before: Uuid,
    limit: i64,
) -> Result<Vec<LedgerRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM stock_ledger WHERE variant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(variant)
        .bind(before)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn lock_keys_depend_on_every_part_of_the_id() {
        let a = uuid::Uuid::from_u128(1);
        let b = uuid::Uuid::from_u128(1 << 100);
        assert_ne!(lock_key(a), lock_key(b));
        assert_eq!(lock_key(a), lock_key(a));
    }
}
