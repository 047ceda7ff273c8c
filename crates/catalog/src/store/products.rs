//! Products: their rows, documents and lists.

use emporium_db::{Arg, Conn, DbError, bind_all, placeholders, run};
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

/// The product with `id`, locked for the rest of the transaction on PostgreSQL (SQLite's single
/// writer already serialises writes).
pub async fn lock_product<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<ProductRow>, DbError> {
    const SQLITE: &str = concat!(
        "SELECT ",
        product_columns!(),
        " FROM products WHERE id = $1"
    );
    const POSTGRES: &str = concat!(
        "SELECT ",
        product_columns!(),
        " FROM products WHERE id = $1 FOR UPDATE"
    );
    let row = match c.into() {
        Conn::Sqlite(c) => sqlx::query_as(SQLITE).bind(id).fetch_optional(c).await,
        Conn::Postgres(c) => sqlx::query_as(POSTGRES).bind(id).fetch_optional(c).await,
    };
    Ok(row?)
}

/// The id of the product with `handle`.
pub async fn product_id_by_handle<'c>(
    c: impl Into<Conn<'c>>,
    handle: &str,
) -> Result<Option<Uuid>, DbError> {
    run!(c, |c| sqlx::query_scalar(
        "SELECT id FROM products WHERE handle = $1"
    )
    .bind(handle)
    .fetch_optional(c)
    .await
    .map_err(DbError::from))
}

/// A table whose rows are named by a unique `handle`.
#[derive(Debug, Clone, Copy)]
pub enum HandleTable {
    Products,
    Categories,
    Collections,
}

/// True when a row of `table` other than `except` has `handle`.
pub async fn handle_in_use<'c>(
    c: impl Into<Conn<'c>>,
    table: HandleTable,
    handle: &str,
    except: Uuid,
) -> Result<bool, DbError> {
    let sql = match table {
        HandleTable::Products => "SELECT count(*) FROM products WHERE handle = $1 AND id <> $2",
        HandleTable::Categories => "SELECT count(*) FROM categories WHERE handle = $1 AND id <> $2",
        HandleTable::Collections => {
            "SELECT count(*) FROM collections WHERE handle = $1 AND id <> $2"
        }
    };
    let n: i64 = run!(c, |c| sqlx::query_scalar(sql)
        .bind(handle)
        .bind(except)
        .fetch_one(c)
        .await)?;
    Ok(n > 0)
}

/// Inserts a product (its document is written by [`save_product`] afterwards).
pub async fn insert_product<'c>(c: impl Into<Conn<'c>>, row: &ProductRow) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO products (",
            product_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(row.id)
        .bind(&row.handle)
        .bind(&row.title)
        .bind(&row.description)
        .bind(&row.status)
        .bind(&row.options)
        .bind(&row.attributes)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.published_at)
    )?;
    Ok(())
}

/// Writes a product's columns and document at `row.version`, if it is still at
/// `previous_version`. Returns false when another write got there first.
pub async fn save_product<'c>(
    c: impl Into<Conn<'c>>,
    row: &ProductRow,
    document: &str,
    previous_version: i64,
) -> Result<bool, DbError> {
    let n = emporium_db::execute!(
        c,
        sqlx::query(
            "UPDATE products SET handle = $2, title = $3, description = $4, status = $5, options = $6, \
             attributes = $7, version = $8, updated_at = $9, published_at = $10, document = $11 \
             WHERE id = $1 AND version = $12"
        )
        .bind(row.id)
        .bind(&row.handle)
        .bind(&row.title)
        .bind(&row.description)
        .bind(&row.status)
        .bind(&row.options)
        .bind(&row.attributes)
        .bind(row.version)
        .bind(row.updated_at)
        .bind(row.published_at)
        .bind(document)
        .bind(previous_version)
    )?;
    Ok(n == 1)
}

/// Deletes a product and everything hanging off it.
pub async fn delete_product<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<bool, DbError> {
    let n = emporium_db::execute!(
        c,
        sqlx::query("DELETE FROM products WHERE id = $1").bind(id)
    )?;
    Ok(n == 1)
}

/// A product's stored document and projected stock flag, if it exists (and, with
/// `published_only`, is published).
pub async fn read_document<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    published_only: bool,
) -> Result<Option<(String, bool)>, DbError> {
    run!(c, |c| sqlx::query_as(
        "SELECT document, in_stock FROM products \
         WHERE id = $1 AND ($2 = FALSE OR status = 'published')"
    )
    .bind(id)
    .bind(published_only)
    .fetch_optional(c)
    .await
    .map_err(DbError::from))
}

/// Availability of every variant of the given products that inventory has reported.
pub async fn availability_of_products<'c>(
    c: impl Into<Conn<'c>>,
    product_ids: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, DbError> {
    if product_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT s.variant_id, s.available FROM product_variants v \
         JOIN catalog_variant_stock s ON s.variant_id = v.id WHERE v.product_id IN ({})",
        placeholders(1, product_ids.len())
    );
    let args: Vec<Arg> = product_ids.iter().map(|id| Arg::Uuid(*id)).collect();
    run!(c, |c| {
        bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())), &args)
            .fetch_all(c)
            .await
            .map_err(DbError::from)
    })
}

/// Runs a statement assembled from constant fragments and returns `(id, document, in_stock)`
/// of each row, plus the sort key columns named in `keys` as text-free `Arg`s decided by the
/// caller.
pub async fn query_documents<'c>(
    c: impl Into<Conn<'c>>,
    sql: String,
    args: &[Arg],
) -> Result<Vec<DocumentRow>, DbError> {
    run!(c, |c| {
        bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())), args)
            .fetch_all(c)
            .await
            .map_err(DbError::from)
    })
}

/// A row of a product list.
#[derive(Debug, Clone)]
pub struct DocumentRow {
    pub id: Uuid,
    pub document: String,
    pub in_stock: bool,
    pub title: String,
    pub published_at: Option<OffsetDateTime>,
    /// The cheapest variant in the listed currency, when the list is priced.
    pub min_amount: Option<i64>,
}
