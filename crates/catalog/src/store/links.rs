//! A product's links: categories, collections, media.

use emporium_db::{Conn, DbError, run};
use uuid::Uuid;

use super::*;

/// Replaces a product's categories.
pub async fn set_product_categories(
    tx: &mut emporium_db::WriteTx,
    product_id: Uuid,
    ids: &[Uuid],
) -> Result<(), DbError> {
    emporium_db::execute!(
        &mut *tx,
        sqlx::query("DELETE FROM product_categories WHERE product_id = $1").bind(product_id)
    )?;
    for id in ids {
        emporium_db::execute!(
            &mut *tx,
            sqlx::query("INSERT INTO product_categories (product_id, category_id) VALUES ($1, $2)")
                .bind(product_id)
                .bind(*id)
        )?;
    }
    Ok(())
}

/// Replaces a product's collections.
pub async fn set_product_collections(
    tx: &mut emporium_db::WriteTx,
    product_id: Uuid,
    ids: &[Uuid],
) -> Result<(), DbError> {
    emporium_db::execute!(
        &mut *tx,
        sqlx::query("DELETE FROM product_collections WHERE product_id = $1").bind(product_id)
    )?;
    for id in ids {
        emporium_db::execute!(
            &mut *tx,
            sqlx::query(
                "INSERT INTO product_collections (product_id, collection_id) VALUES ($1, $2)"
            )
            .bind(product_id)
            .bind(*id)
        )?;
    }
    Ok(())
}

/// A product's categories, by name.
pub async fn product_categories<'c>(
    c: impl Into<Conn<'c>>,
    product_id: Uuid,
) -> Result<Vec<CategoryRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        category_columns!(),
        " FROM categories \
         WHERE id IN (SELECT category_id FROM product_categories WHERE product_id = $1) \
         ORDER BY name, id"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(product_id)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// A product's collections, by title.
pub async fn product_collections<'c>(
    c: impl Into<Conn<'c>>,
    product_id: Uuid,
) -> Result<Vec<CollectionRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        collection_columns!(),
        " FROM collections \
         WHERE id IN (SELECT collection_id FROM product_collections WHERE product_id = $1) \
         ORDER BY title, id"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(product_id)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// A product's media in position order.
pub async fn product_media<'c>(
    c: impl Into<Conn<'c>>,
    product_id: Uuid,
) -> Result<Vec<MediaRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        media_columns!(),
        " FROM product_media WHERE product_id = $1 ORDER BY position, id"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(product_id)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Inserts a media row.
pub async fn insert_media<'c>(c: impl Into<Conn<'c>>, row: &MediaRow) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO product_media (",
            media_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(row.id)
        .bind(row.product_id)
        .bind(&row.object_key)
        .bind(&row.content_type)
        .bind(row.size_bytes)
        .bind(&row.alt)
        .bind(row.position)
        .bind(row.created_at)
    )?;
    Ok(())
}

/// Deletes a media row of a product; false when there was none.
pub async fn delete_media<'c>(
    c: impl Into<Conn<'c>>,
    product_id: Uuid,
    id: Uuid,
) -> Result<bool, DbError> {
    let n = emporium_db::execute!(
        c,
        sqlx::query("DELETE FROM product_media WHERE id = $1 AND product_id = $2")
            .bind(id)
            .bind(product_id)
    )?;
    Ok(n == 1)
}

/// The products linked to any category whose path starts with `path_prefix`.
pub async fn products_in_subtree<'c>(
    c: impl Into<Conn<'c>>,
    path_prefix: &str,
) -> Result<Vec<Uuid>, DbError> {
    let pattern = format!("{path_prefix}%");
    run!(c, |c| {
        sqlx::query_scalar(
        "SELECT DISTINCT pc.product_id FROM product_categories pc JOIN categories c ON c.id = pc.category_id \
         WHERE c.path LIKE $1"
    )
    .bind(pattern)
    .fetch_all(c)
    .await
    .map_err(DbError::from)
    })
}

/// The products in a collection.
pub async fn products_in_collection<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Vec<Uuid>, DbError> {
    run!(c, |c| sqlx::query_scalar(
        "SELECT product_id FROM product_collections WHERE collection_id = $1"
    )
    .bind(id)
    .fetch_all(c)
    .await
    .map_err(DbError::from))
}
