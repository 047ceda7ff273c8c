//! Stock levels, their conditional updates, the per-variant lock and the ledger.

use emporium_db::{Conn, DbError, execute, run};
use sqlx::Row;
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

/// A 32-bit key for a variant; two variants sharing one only wait on each other.
fn lock_key(variant: Uuid) -> i32 {
    let b = variant.as_bytes();
    let fold = |i: usize| i32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    fold(0) ^ fold(4) ^ fold(8) ^ fold(12)
}

/// The level of `variant` at `location`, if any.
pub async fn find_level<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
) -> Result<Option<LevelRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "SELECT variant_id, location_id, on_hand, reserved, version, updated_at \
             FROM stock_levels WHERE variant_id = $1 AND location_id = $2",
        )
        .bind(variant)
        .bind(location)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(level_row!(r)),
            None => None,
        })
    })
}

/// Every level of `variant`, by location id.
pub async fn levels_of_variant<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
) -> Result<Vec<LevelRow>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT variant_id, location_id, on_hand, reserved, version, updated_at \
             FROM stock_levels WHERE variant_id = $1 ORDER BY location_id",
        )
        .bind(variant)
        .fetch_all(c)
        .await?;
        rows.iter().map(|r| Ok(level_row!(r))).collect()
    })
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
    run!(c, |c| {
        let row = sqlx::query(
            "INSERT INTO stock_levels (variant_id, location_id, on_hand, reserved, version, updated_at) \
             VALUES ($1, $2, $3, 0, 1, $4) ON CONFLICT (variant_id, location_id) DO NOTHING \
             RETURNING variant_id, location_id, on_hand, reserved, version, updated_at",
        )
        .bind(variant)
        .bind(location)
        .bind(on_hand)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(level_row!(r)),
            None => None,
        })
    })
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
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE stock_levels SET on_hand = $3, version = version + 1, updated_at = $4 \
             WHERE variant_id = $1 AND location_id = $2 AND reserved <= $3 \
             RETURNING variant_id, location_id, on_hand, reserved, version, updated_at",
        )
        .bind(variant)
        .bind(location)
        .bind(on_hand)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(level_row!(r)),
            None => None,
        })
    })
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
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE stock_levels SET on_hand = on_hand + $3, version = version + 1, updated_at = $4 \
             WHERE variant_id = $1 AND location_id = $2 AND on_hand + $3 >= reserved \
             RETURNING variant_id, location_id, on_hand, reserved, version, updated_at",
        )
        .bind(variant)
        .bind(location)
        .bind(delta)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(level_row!(r)),
            None => None,
        })
    })
}

/// Holds `quantity` units at one location when that many are available there; the row after,
/// or `None` when they are not.
pub async fn reserve_at<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
    quantity: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE stock_levels SET reserved = reserved + $3, version = version + 1, updated_at = $4 \
             WHERE variant_id = $1 AND location_id = $2 AND on_hand - reserved >= $3 \
             RETURNING variant_id, location_id, on_hand, reserved, version, updated_at",
        )
        .bind(variant)
        .bind(location)
        .bind(quantity)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(level_row!(r)),
            None => None,
        })
    })
}

/// Gives back `quantity` held units at one location; `None` when fewer are held there.
pub async fn release_at<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
    quantity: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE stock_levels SET reserved = reserved - $3, version = version + 1, updated_at = $4 \
             WHERE variant_id = $1 AND location_id = $2 AND reserved >= $3 \
             RETURNING variant_id, location_id, on_hand, reserved, version, updated_at",
        )
        .bind(variant)
        .bind(location)
        .bind(quantity)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(level_row!(r)),
            None => None,
        })
    })
}

/// Takes `quantity` held units out of the stock (both `on_hand` and `reserved` go down);
/// `None` when fewer are held there.
pub async fn commit_at<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    location: Uuid,
    quantity: i64,
    now: OffsetDateTime,
) -> Result<Option<LevelRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE stock_levels SET on_hand = on_hand - $3, reserved = reserved - $3, \
             version = version + 1, updated_at = $4 \
             WHERE variant_id = $1 AND location_id = $2 AND reserved >= $3 \
             RETURNING variant_id, location_id, on_hand, reserved, version, updated_at",
        )
        .bind(variant)
        .bind(location)
        .bind(quantity)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(level_row!(r)),
            None => None,
        })
    })
}

/// Locations with at least `quantity` units of `variant` available, most available first.
pub async fn candidate_locations<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    quantity: i64,
) -> Result<Vec<Uuid>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT location_id FROM stock_levels \
             WHERE variant_id = $1 AND on_hand - reserved >= $2 \
             ORDER BY on_hand - reserved DESC, location_id",
        )
        .bind(variant)
        .bind(quantity)
        .fetch_all(c)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("location_id")?)).collect()
    })
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
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(on_hand), 0) AS BIGINT) AS on_hand, \
             CAST(COALESCE(SUM(reserved), 0) AS BIGINT) AS reserved \
             FROM stock_levels WHERE variant_id = $1",
        )
        .bind(variant)
        .fetch_one(c)
        .await?;
        Ok((row.try_get("on_hand")?, row.try_get("reserved")?))
    })
}

/// Appends a ledger row.
pub async fn insert_ledger<'c>(c: impl Into<Conn<'c>>, row: &LedgerRow) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(
            "INSERT INTO stock_ledger (id, variant_id, location_id, delta_on_hand, delta_reserved, \
             on_hand_after, reserved_after, reason, actor, reservation_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
        .bind(row.id)
        .bind(row.variant_id)
        .bind(row.location_id)
        .bind(row.delta_on_hand)
        .bind(row.delta_reserved)
        .bind(row.on_hand_after)
        .bind(row.reserved_after)
        .bind(&row.reason)
        .bind(&row.actor)
        .bind(row.reservation_id)
        .bind(row.created_at)
    )?;
    Ok(())
}

/// Ledger rows older than `before` (ids are time-ordered), newest first.
pub async fn list_ledger<'c>(
    c: impl Into<Conn<'c>>,
    before: Uuid,
    limit: i64,
) -> Result<Vec<LedgerRow>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT id, variant_id, location_id, delta_on_hand, delta_reserved, on_hand_after, \
             reserved_after, reason, actor, reservation_id, created_at FROM stock_ledger \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(c)
        .await?;
        rows.iter().map(|r| Ok(ledger_row!(r))).collect()
    })
}

/// Ledger rows of `variant` older than `before`, newest first.
pub async fn list_ledger_of_variant<'c>(
    c: impl Into<Conn<'c>>,
    variant: Uuid,
    before: Uuid,
    limit: i64,
) -> Result<Vec<LedgerRow>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT id, variant_id, location_id, delta_on_hand, delta_reserved, on_hand_after, \
             reserved_after, reason, actor, reservation_id, created_at FROM stock_ledger \
             WHERE variant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(variant)
        .bind(before)
        .bind(limit)
        .fetch_all(c)
        .await?;
        rows.iter().map(|r| Ok(ledger_row!(r))).collect()
    })
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
