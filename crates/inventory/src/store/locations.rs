//! Stock locations.

use emporium_db::{Conn, DbError, execute, run};
use time::OffsetDateTime;
use uuid::Uuid;

use super::LocationRow;

/// The columns of [`LocationRow`], in field order (a macro, so that `concat!` can use it).
macro_rules! location_columns {
    () => {
        "id, code, name, version, created_at, updated_at"
    };
}

/// Inserts a location; a duplicate code is a unique violation.
pub async fn insert_location<'c>(c: impl Into<Conn<'c>>, row: &LocationRow) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO stock_locations (",
            location_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)"
        ))
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
    const SQL: &str = concat!(
        "SELECT ",
        location_columns!(),
        " FROM stock_locations WHERE id = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Locations whose code sorts after `after`, by code.
pub async fn list_locations<'c>(
    c: impl Into<Conn<'c>>,
    after: &str,
    limit: i64,
) -> Result<Vec<LocationRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        location_columns!(),
        " FROM stock_locations WHERE code > $1 ORDER BY code LIMIT $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
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
    const SQL: &str = concat!(
        "UPDATE stock_locations SET code = COALESCE($2, code), name = COALESCE($3, name), \
         version = version + 1, updated_at = $4 WHERE id = $1 RETURNING ",
        location_columns!()
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .bind(code)
        .bind(name)
        .bind(now)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}
