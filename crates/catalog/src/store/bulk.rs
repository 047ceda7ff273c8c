//! Bulk writes of many products at once.

use emporium_db::{Arg, DbError, WriteTx, fetch_in, insert_rows};
use emporium_kernel::Money;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;

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
