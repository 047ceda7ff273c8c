//! The category tree.

use emporium_db::{Conn, DbError, run};
use uuid::Uuid;

use super::*;

/// Every category, parents before children, siblings by position.
pub async fn list_categories<'c>(c: impl Into<Conn<'c>>) -> Result<Vec<CategoryRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        category_columns!(),
        " FROM categories ORDER BY length(path), position, name, id"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// The category with `id`.
pub async fn get_category<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<CategoryRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        category_columns!(),
        " FROM categories WHERE id = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// The categories whose path starts with `path_prefix` (a category and its descendants).
pub async fn categories_in_subtree<'c>(
    c: impl Into<Conn<'c>>,
    path_prefix: &str,
) -> Result<Vec<CategoryRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        category_columns!(),
        " FROM categories WHERE path LIKE $1 ORDER BY length(path), id"
    );
    let pattern = format!("{path_prefix}%");
    run!(c, |c| sqlx::query_as(SQL)
        .bind(pattern)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Inserts a category.
pub async fn insert_category<'c>(c: impl Into<Conn<'c>>, row: &CategoryRow) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO categories (",
            category_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(row.id)
        .bind(&row.handle)
        .bind(&row.name)
        .bind(&row.description)
        .bind(row.parent_id)
        .bind(row.position)
        .bind(&row.path)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
    )?;
    Ok(())
}

/// Rewrites a category's columns.
pub async fn update_category<'c>(c: impl Into<Conn<'c>>, row: &CategoryRow) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "UPDATE categories SET handle = $2, name = $3, description = $4, parent_id = $5, position = $6, \
             path = $7, version = $8, updated_at = $9 WHERE id = $1"
        )
        .bind(row.id)
        .bind(&row.handle)
        .bind(&row.name)
        .bind(&row.description)
        .bind(row.parent_id)
        .bind(row.position)
        .bind(&row.path)
        .bind(row.version)
        .bind(row.updated_at)
    )?;
    Ok(())
}

/// Deletes a category and unlinks its products.
pub async fn delete_category(tx: &mut emporium_db::WriteTx, id: Uuid) -> Result<(), DbError> {
    emporium_db::execute!(
        &mut *tx,
        sqlx::query("DELETE FROM product_categories WHERE category_id = $1").bind(id)
    )?;
    emporium_db::execute!(
        &mut *tx,
        sqlx::query("DELETE FROM categories WHERE id = $1").bind(id)
    )?;
    Ok(())
}

/// How many categories have `id` as parent.
pub async fn count_children<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<i64, DbError> {
    run!(c, |c| sqlx::query_scalar(
        "SELECT count(*) FROM categories WHERE parent_id = $1"
    )
    .bind(id)
    .fetch_one(c)
    .await
    .map_err(DbError::from))
}
