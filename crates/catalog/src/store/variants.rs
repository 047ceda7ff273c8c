//! Variants, their prices and stock flags.

use emporium_db::{Arg, Conn, DbError, bind_all, placeholders, run};
use emporium_kernel::Money;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

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
