//! Collections, and which linked ids exist.

use emporium_db::{Arg, Conn, DbError, bind_all, placeholders, run};
use uuid::Uuid;

use super::*;

/// Collections after `after` in id order (newest last), at most `limit`.
pub async fn list_collections<'c>(
    c: impl Into<Conn<'c>>,
    after: Uuid,
    limit: i64,
) -> Result<Vec<CollectionRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        collection_columns!(),
        " FROM collections WHERE id > $1 ORDER BY id LIMIT $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// The collection with `id`.
pub async fn get_collection<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<CollectionRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        collection_columns!(),
        " FROM collections WHERE id = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Inserts or rewrites a collection.
pub async fn upsert_collection<'c>(
    c: impl Into<Conn<'c>>,
    row: &CollectionRow,
) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO collections (",
            collection_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET handle = excluded.handle, \
             title = excluded.title, description = excluded.description, version = excluded.version, \
             updated_at = excluded.updated_at"
        ))
        .bind(row.id)
        .bind(&row.handle)
        .bind(&row.title)
        .bind(&row.description)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
    )?;
    Ok(())
}

/// Deletes a collection (its product links go with it).
pub async fn delete_collection<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<bool, DbError> {
    let n = emporium_db::execute!(
        c,
        sqlx::query("DELETE FROM collections WHERE id = $1").bind(id)
    )?;
    Ok(n == 1)
}

/// Which of `ids` exist in `table` (`categories` or `collections`).
pub async fn existing_ids<'c>(
    c: impl Into<Conn<'c>>,
    table: LinkTable,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id FROM {} WHERE id IN ({})",
        table.name(),
        placeholders(1, ids.len())
    );
    let args: Vec<Arg> = ids.iter().map(|id| Arg::Uuid(*id)).collect();
    run!(c, |c| {
        bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())), &args)
            .fetch_all(c)
            .await
            .map_err(DbError::from)
    })
}

/// A table products link to.
#[derive(Debug, Clone, Copy)]
pub enum LinkTable {
    Categories,
    Collections,
}

impl LinkTable {
    fn name(self) -> &'static str {
        match self {
            Self::Categories => "categories",
            Self::Collections => "collections",
        }
    }
}
