//! Stock locations.

use emporium_db::{Conn, DbError, execute, run};
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use super::LocationRow;

/// Inserts a location; a duplicate code is a unique violation.
pub async fn insert_location<'c>(c: impl Into<Conn<'c>>, row: &LocationRow) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(
            "INSERT INTO stock_locations (id, code, name, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(row.id)
        .bind(&row.code)
        .bind(&row.name)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
    )?;
    Ok(())
}

/// The location with `id`, if any.
pub async fn find_location<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<LocationRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "SELECT id, code, name, version, created_at, updated_at FROM stock_locations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(location_row!(r)),
            None => None,
        })
    })
}

/// Locations whose code sorts after `after`, by code.
pub async fn list_locations<'c>(
    c: impl Into<Conn<'c>>,
    after: &str,
    limit: i64,
) -> Result<Vec<LocationRow>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT id, code, name, version, created_at, updated_at FROM stock_locations \
             WHERE code > $1 ORDER BY code LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await?;
        rows.iter().map(|r| Ok(location_row!(r))).collect()
    })
}

/// Changes a location's code and/or name in one statement (absent values stay); returns the
/// row after the change, or `None` when there is no such location.
pub async fn update_location<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    code: Option<&str>,
    name: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<LocationRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE stock_locations SET code = COALESCE($2, code), name = COALESCE($3, name), \
             version = version + 1, updated_at = $4 WHERE id = $1 \
             RETURNING id, code, name, version, created_at, updated_at",
        )
        .bind(id)
        .bind(code)
        .bind(name)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(location_row!(r)),
            None => None,
        })
    })
}
