//! Catalog's SQL, and nothing else. Every function takes a connection: the writer's transaction
//! for writes, a reader for reads.

use emporium_db::{
    Arg, Conn, DbError, WriteTx, bind_all, fetch_in, from_row, insert_rows, placeholders, run,
};
use emporium_kernel::Money;
use time::OffsetDateTime;
use uuid::Uuid;

/// A product's own columns.
#[derive(Debug, Clone)]
pub struct ProductRow {
    pub id: Uuid,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub status: String,
    /// JSON array of options.
    pub options: String,
    /// JSON object.
    pub attributes: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub published_at: Option<OffsetDateTime>,
}

/// A variant's own columns.
#[derive(Debug, Clone)]
pub struct VariantRow {
    pub id: Uuid,
    pub sku: String,
    pub title: String,
    /// JSON object, option name → value.
    pub options: String,
    pub weight_grams: i64,
    pub position: i64,
}

/// A category row.
#[derive(Debug, Clone)]
pub struct CategoryRow {
    pub id: Uuid,
    pub handle: String,
    pub name: String,
    pub description: String,
    pub parent_id: Option<Uuid>,
    pub position: i64,
    /// `/<hex>/<hex>/`, root first, itself last.
    pub path: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A collection row.
#[derive(Debug, Clone)]
pub struct CollectionRow {
    pub id: Uuid,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A media row.
#[derive(Debug, Clone)]
pub struct MediaRow {
    pub id: Uuid,
    pub product_id: Uuid,
    pub object_key: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub alt: String,
    pub position: i64,
    pub created_at: OffsetDateTime,
}

from_row!(ProductRow {
    id,
    handle,
    title,
    description,
    status,
    options,
    attributes,
    version,
    created_at,
    updated_at,
    published_at,
});
from_row!(VariantRow {
    id,
    sku,
    title,
    options,
    weight_grams,
    position,
});
from_row!(CategoryRow {
    id,
    handle,
    name,
    description,
    parent_id,
    position,
    path,
    version,
    created_at,
    updated_at,
});
from_row!(CollectionRow {
    id,
    handle,
    title,
    description,
    version,
    created_at,
    updated_at,
});
from_row!(MediaRow {
    id,
    product_id,
    object_key,
    content_type,
    size_bytes,
    alt,
    position,
    created_at,
});
from_row!(DocumentRow {
    id,
    document,
    in_stock,
    title,
    published_at,
    min_amount,
});

// The column lists of the row structs, in field order: macros rather than constants so that
// `concat!` can build each statement into a `&'static str`.

macro_rules! product_columns {
    () => {
        "id, handle, title, description, status, options, attributes, version, created_at, \
         updated_at, published_at"
    };
}

macro_rules! variant_columns {
    () => {
        "id, sku, title, options, weight_grams, position"
    };
}

macro_rules! category_columns {
    () => {
        "id, handle, name, description, parent_id, position, path, version, created_at, updated_at"
    };
}

macro_rules! collection_columns {
    () => {
        "id, handle, title, description, version, created_at, updated_at"
    };
}

macro_rules! media_columns {
    () => {
        "id, product_id, object_key, content_type, size_bytes, alt, position, created_at"
    };
}

// ---------------------------------------------------------------- products

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

// ---------------------------------------------------------------- variants and prices

/// A product's variants in position order.
pub async fn list_variants<'c>(
    c: impl Into<Conn<'c>>,
    product_id: Uuid,
) -> Result<Vec<VariantRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        variant_columns!(),
        " FROM product_variants WHERE product_id = $1 ORDER BY position, id"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(product_id)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Every price of a product's variants, as `(variant, currency, amount)`.
pub async fn list_prices<'c>(
    c: impl Into<Conn<'c>>,
    product_id: Uuid,
) -> Result<Vec<(Uuid, String, i64)>, DbError> {
    run!(c, |c| sqlx::query_as(
        "SELECT p.variant_id, p.currency, p.amount FROM variant_prices p \
         JOIN product_variants v ON v.id = p.variant_id WHERE v.product_id = $1 ORDER BY p.currency"
    )
    .bind(product_id)
    .fetch_all(c)
    .await
    .map_err(DbError::from))
}

/// The variant holding `sku`, other than `except`.
pub async fn sku_in_use<'c>(
    c: impl Into<Conn<'c>>,
    sku: &str,
    except: Uuid,
) -> Result<bool, DbError> {
    let n: i64 = run!(c, |c| sqlx::query_scalar(
        "SELECT count(*) FROM product_variants WHERE sku = $1 AND id <> $2"
    )
    .bind(sku)
    .bind(except)
    .fetch_one(c)
    .await)?;
    Ok(n > 0)
}

/// Inserts a variant.
pub async fn insert_variant<'c>(
    c: impl Into<Conn<'c>>,
    product_id: Uuid,
    row: &VariantRow,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "INSERT INTO product_variants (id, product_id, sku, title, options, weight_grams, position, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
        )
        .bind(row.id)
        .bind(product_id)
        .bind(&row.sku)
        .bind(&row.title)
        .bind(&row.options)
        .bind(row.weight_grams)
        .bind(row.position)
        .bind(now)
    )?;
    Ok(())
}

/// Rewrites a variant's columns.
pub async fn update_variant<'c>(
    c: impl Into<Conn<'c>>,
    row: &VariantRow,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "UPDATE product_variants SET sku = $2, title = $3, options = $4, weight_grams = $5, position = $6, updated_at = $7 \
             WHERE id = $1"
        )
        .bind(row.id)
        .bind(&row.sku)
        .bind(&row.title)
        .bind(&row.options)
        .bind(row.weight_grams)
        .bind(row.position)
        .bind(now)
    )?;
    Ok(())
}

/// Deletes a variant (its prices go with it).
pub async fn delete_variant<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query("DELETE FROM product_variants WHERE id = $1").bind(id)
    )?;
    Ok(())
}

/// Replaces a variant's prices.
pub async fn set_prices(
    tx: &mut emporium_db::WriteTx,
    variant_id: Uuid,
    prices: &[Money],
) -> Result<(), DbError> {
    emporium_db::execute!(
        &mut *tx,
        sqlx::query("DELETE FROM variant_prices WHERE variant_id = $1").bind(variant_id)
    )?;
    for price in prices {
        emporium_db::execute!(
            &mut *tx,
            sqlx::query(
                "INSERT INTO variant_prices (variant_id, currency, amount) VALUES ($1, $2, $3)"
            )
            .bind(variant_id)
            .bind(price.currency.as_str())
            .bind(price.amount)
        )?;
    }
    Ok(())
}

/// Recomputes the product's price range per currency from its variants.
pub async fn refresh_product_prices(
    tx: &mut emporium_db::WriteTx,
    product_id: Uuid,
) -> Result<(), DbError> {
    emporium_db::execute!(
        &mut *tx,
        sqlx::query("DELETE FROM product_prices WHERE product_id = $1").bind(product_id)
    )?;
    emporium_db::execute!(
        &mut *tx,
        sqlx::query(
            "INSERT INTO product_prices (product_id, currency, min_amount, max_amount) \
             SELECT v.product_id, p.currency, MIN(p.amount), MAX(p.amount) FROM variant_prices p \
             JOIN product_variants v ON v.id = p.variant_id WHERE v.product_id = $1 \
             GROUP BY v.product_id, p.currency"
        )
        .bind(product_id)
    )?;
    Ok(())
}

/// Sets each of `product_ids`' `in_stock` from its variants' availability, writing only the
/// rows whose flag changes.
pub async fn refresh_in_stock<'c>(
    c: impl Into<Conn<'c>>,
    product_ids: &[Uuid],
) -> Result<(), DbError> {
    if product_ids.is_empty() {
        return Ok(());
    }
    let mut sql = emporium_db::Sql::default();
    sql.push("UPDATE products SET in_stock = NOT in_stock WHERE id IN (")
        .bind_in(product_ids.iter().map(|id| Arg::Uuid(*id)))
        .push(
            ") AND in_stock <> EXISTS (SELECT 1 FROM product_variants v \
         JOIN catalog_variant_stock s ON s.variant_id = v.id \
         WHERE v.product_id = products.id AND s.available > 0)",
        );
    sql.execute(c).await?;
    Ok(())
}

/// Records the availability of each variant as inventory last reported it, one statement per
/// 256 variants.
pub async fn upsert_variant_stock(
    tx: &mut emporium_db::WriteTx,
    available: &[(Uuid, i64)],
    now: OffsetDateTime,
) -> Result<(), DbError> {
    let rows: Vec<Vec<Arg>> = available
        .iter()
        .map(|(variant, n)| vec![Arg::Uuid(*variant), Arg::Int(*n), Arg::Time(now)])
        .collect();
    emporium_db::insert_rows(
        tx,
        "INSERT INTO catalog_variant_stock (variant_id, available, updated_at) VALUES",
        "ON CONFLICT (variant_id) DO UPDATE SET available = excluded.available, \
         updated_at = excluded.updated_at",
        rows,
    )
    .await?;
    Ok(())
}

/// `(sku, variant id)` of the variants holding any of `skus`.
pub async fn variants_by_sku<'c>(
    c: impl Into<Conn<'c>>,
    skus: &[String],
) -> Result<Vec<(String, Uuid)>, DbError> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT sku, id FROM product_variants WHERE sku IN ({})",
        placeholders(1, skus.len())
    );
    let args: Vec<Arg> = skus.iter().map(|s| Arg::Text(s.clone())).collect();
    run!(c, |c| {
        bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())), &args)
            .fetch_all(c)
            .await
            .map_err(DbError::from)
    })
}

/// The product of variant `variant_id`.
pub async fn product_of_variant<'c>(
    c: impl Into<Conn<'c>>,
    variant_id: Uuid,
) -> Result<Option<Uuid>, DbError> {
    run!(c, |c| sqlx::query_scalar(
        "SELECT product_id FROM product_variants WHERE id = $1"
    )
    .bind(variant_id)
    .fetch_optional(c)
    .await
    .map_err(DbError::from))
}

/// `(variant id, product id)` of each of `variant_ids` that exists.
pub async fn variant_products<'c>(
    c: impl Into<Conn<'c>>,
    variant_ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid)>, DbError> {
    if variant_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = emporium_db::Sql::default();
    sql.push("SELECT id, product_id FROM product_variants WHERE id IN (")
        .bind_in(variant_ids.iter().map(|id| Arg::Uuid(*id)))
        .push(")");
    sql.fetch_all(c).await
}

/// The products of `variant_ids`, each once.
pub async fn products_of_variants<'c>(
    c: impl Into<Conn<'c>>,
    variant_ids: &[Uuid],
) -> Result<Vec<Uuid>, DbError> {
    if variant_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = emporium_db::Sql::default();
    sql.push("SELECT DISTINCT product_id FROM product_variants WHERE id IN (")
        .bind_in(variant_ids.iter().map(|id| Arg::Uuid(*id)))
        .push(")");
    let rows: Vec<(Uuid,)> = sql.fetch_all(c).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

// ---------------------------------------------------------------- product links

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

// ---------------------------------------------------------------- categories

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

// ---------------------------------------------------------------- collections

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

// ---------------------------------------------------------------- bulk

/// The handles among `handles` that products have.
pub async fn taken_handles(tx: &mut WriteTx, handles: &[String]) -> Result<Vec<String>, DbError> {
    let args: Vec<Arg> = handles.iter().map(|h| Arg::Text(h.clone())).collect();
    let rows: Vec<(String,)> = fetch_in(
        tx,
        "SELECT handle FROM products WHERE handle IN (",
        &args,
        "",
    )
    .await?;
    Ok(rows.into_iter().map(|(h,)| h).collect())
}

/// The SKUs among `skus` that variants have.
pub async fn taken_skus(tx: &mut WriteTx, skus: &[String]) -> Result<Vec<String>, DbError> {
    let args: Vec<Arg> = skus.iter().map(|s| Arg::Text(s.clone())).collect();
    let rows: Vec<(String,)> = fetch_in(
        tx,
        "SELECT sku FROM product_variants WHERE sku IN (",
        &args,
        "",
    )
    .await?;
    Ok(rows.into_iter().map(|(s,)| s).collect())
}

/// The categories with any of `ids`, in the order a product document lists them.
pub async fn categories_by_ids(
    tx: &mut WriteTx,
    ids: &[Uuid],
) -> Result<Vec<CategoryRow>, DbError> {
    let args: Vec<Arg> = ids.iter().map(|id| Arg::Uuid(*id)).collect();
    let mut rows: Vec<CategoryRow> = fetch_in(
        tx,
        concat!(
            "SELECT ",
            category_columns!(),
            " FROM categories WHERE id IN ("
        ),
        &args,
        " ORDER BY name, id",
    )
    .await?;
    if ids.len() > emporium_db::IN_CHUNK {
        rows.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    }
    Ok(rows)
}

/// The collections with any of `ids`, in the order a product document lists them.
pub async fn collections_by_ids(
    tx: &mut WriteTx,
    ids: &[Uuid],
) -> Result<Vec<CollectionRow>, DbError> {
    let args: Vec<Arg> = ids.iter().map(|id| Arg::Uuid(*id)).collect();
    let mut rows: Vec<CollectionRow> = fetch_in(
        tx,
        concat!(
            "SELECT ",
            collection_columns!(),
            " FROM collections WHERE id IN ("
        ),
        &args,
        " ORDER BY title, id",
    )
    .await?;
    if ids.len() > emporium_db::IN_CHUNK {
        rows.sort_by(|a, b| (&a.title, a.id).cmp(&(&b.title, b.id)));
    }
    Ok(rows)
}

/// Inserts new products with their documents.
pub async fn insert_products(
    tx: &mut WriteTx,
    products: &[(&ProductRow, &str)],
) -> Result<u64, DbError> {
    let rows: Vec<Vec<Arg>> = products
        .iter()
        .map(|(p, document)| {
            vec![
                Arg::Uuid(p.id),
                Arg::Text(p.handle.clone()),
                Arg::Text(p.title.clone()),
                Arg::Text(p.description.clone()),
                Arg::Text(p.status.clone()),
                Arg::Text(p.options.clone()),
                Arg::Text(p.attributes.clone()),
                Arg::Int(p.version),
                Arg::Time(p.created_at),
                Arg::Time(p.updated_at),
                Arg::OptTime(p.published_at),
                Arg::Text((*document).to_owned()),
            ]
        })
        .collect();
    insert_rows(
        tx,
        concat!(
            "INSERT INTO products (",
            product_columns!(),
            ", document) VALUES"
        ),
        "",
        rows,
    )
    .await
}

/// Inserts new variants, each `(product id, row)`, created at `now`.
pub async fn insert_variants(
    tx: &mut WriteTx,
    variants: &[(Uuid, &VariantRow)],
    now: OffsetDateTime,
) -> Result<u64, DbError> {
    let rows: Vec<Vec<Arg>> = variants
        .iter()
        .map(|(product, v)| {
            vec![
                Arg::Uuid(v.id),
                Arg::Uuid(*product),
                Arg::Text(v.sku.clone()),
                Arg::Text(v.title.clone()),
                Arg::Text(v.options.clone()),
                Arg::Int(v.weight_grams),
                Arg::Int(v.position),
                Arg::Time(now),
                Arg::Time(now),
            ]
        })
        .collect();
    insert_rows(
        tx,
        "INSERT INTO product_variants (id, product_id, sku, title, options, weight_grams, \
         position, created_at, updated_at) VALUES",
        "",
        rows,
    )
    .await
}

/// Inserts the prices of new variants, each `(variant id, price)`.
pub async fn insert_prices(tx: &mut WriteTx, prices: &[(Uuid, &Money)]) -> Result<u64, DbError> {
    let rows: Vec<Vec<Arg>> = prices
        .iter()
        .map(|(variant, price)| {
            vec![
                Arg::Uuid(*variant),
                Arg::Text(price.currency.as_str().to_owned()),
                Arg::Int(price.amount),
            ]
        })
        .collect();
    insert_rows(
        tx,
        "INSERT INTO variant_prices (variant_id, currency, amount) VALUES",
        "",
        rows,
    )
    .await
}

/// Inserts the price ranges of new products, each `(product id, currency, min, max)`.
pub async fn insert_price_ranges(
    tx: &mut WriteTx,
    ranges: &[(Uuid, String, i64, i64)],
) -> Result<u64, DbError> {
    let rows: Vec<Vec<Arg>> = ranges
        .iter()
        .map(|(product, currency, min, max)| {
            vec![
                Arg::Uuid(*product),
                Arg::Text(currency.clone()),
                Arg::Int(*min),
                Arg::Int(*max),
            ]
        })
        .collect();
    insert_rows(
        tx,
        "INSERT INTO product_prices (product_id, currency, min_amount, max_amount) VALUES",
        "",
        rows,
    )
    .await
}

/// Links new products to categories or collections, each `(product id, linked id)`.
pub async fn insert_links(
    tx: &mut WriteTx,
    table: LinkTable,
    links: &[(Uuid, Uuid)],
) -> Result<u64, DbError> {
    let head = match table {
        LinkTable::Categories => "INSERT INTO product_categories (product_id, category_id) VALUES",
        LinkTable::Collections => {
            "INSERT INTO product_collections (product_id, collection_id) VALUES"
        }
    };
    let rows: Vec<Vec<Arg>> = links
        .iter()
        .map(|(product, linked)| vec![Arg::Uuid(*product), Arg::Uuid(*linked)])
        .collect();
    insert_rows(tx, head, "", rows).await
}
