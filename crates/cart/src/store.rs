//! Cart SQL, and nothing else.

use emporium_db::{Arg, Conn, DbError, Sql, WriteTx, execute, from_row, run};
use time::OffsetDateTime;
use uuid::Uuid;

/// A `carts` row.
#[derive(Debug, Clone)]
pub struct CartRow {
    pub id: Uuid,
    pub token_hash: String,
    pub customer_id: Option<String>,
    pub currency: String,
    pub email: Option<String>,
    pub shipping_address: Option<String>,
    pub shipping_option_id: Option<Uuid>,
    pub coupon_codes: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The checkout holding the cart, if one is running or placed its order.
    pub checkout_id: Option<Uuid>,
}

from_row!(CartRow {
    id,
    token_hash,
    customer_id,
    currency,
    email,
    shipping_address,
    shipping_option_id,
    coupon_codes,
    version,
    created_at,
    updated_at,
    checkout_id,
});

/// A `cart_items` row.
#[derive(Debug, Clone)]
pub struct ItemRow {
    pub id: Uuid,
    pub cart_id: Uuid,
    pub variant_id: Uuid,
    pub quantity: i64,
    pub created_at: OffsetDateTime,
}

from_row!(ItemRow {
    id,
    cart_id,
    variant_id,
    quantity,
    created_at,
});

macro_rules! cart_columns {
    () => {
        "id, token_hash, customer_id, currency, email, shipping_address, shipping_option_id, \
         coupon_codes, version, created_at, updated_at, checkout_id"
    };
}

/// Inserts a cart.
pub async fn insert_cart<'c>(c: impl Into<Conn<'c>>, row: &CartRow) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO carts (",
            cart_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(row.id)
        .bind(&row.token_hash)
        .bind(&row.customer_id)
        .bind(&row.currency)
        .bind(&row.email)
        .bind(&row.shipping_address)
        .bind(row.shipping_option_id)
        .bind(&row.coupon_codes)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.checkout_id)
    )?;
    Ok(())
}

/// Cart `id`, if any.
pub async fn find_cart<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<Option<CartRow>, DbError> {
    const SQL: &str = concat!("SELECT ", cart_columns!(), " FROM carts WHERE id = $1");
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// A cart's row joined with one of its items (none for an empty cart).
struct CartItemRow {
    id: Uuid,
    token_hash: String,
    customer_id: Option<String>,
    currency: String,
    email: Option<String>,
    shipping_address: Option<String>,
    shipping_option_id: Option<Uuid>,
    coupon_codes: String,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    checkout_id: Option<Uuid>,
    item_id: Option<Uuid>,
    item_variant_id: Option<Uuid>,
    item_quantity: Option<i64>,
    item_created_at: Option<OffsetDateTime>,
}

from_row!(CartItemRow {
    id,
    token_hash,
    customer_id,
    currency,
    email,
    shipping_address,
    shipping_option_id,
    coupon_codes,
    version,
    created_at,
    updated_at,
    checkout_id,
    item_id,
    item_variant_id,
    item_quantity,
    item_created_at,
});

/// Cart `id` and its items in order, if the cart exists: one statement, so one snapshot.
pub async fn find_cart_with_items<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<(CartRow, Vec<ItemRow>)>, DbError> {
    const SQL: &str = "SELECT c.id, c.token_hash, c.customer_id, c.currency, c.email, \
         c.shipping_address, c.shipping_option_id, c.coupon_codes, c.version, c.created_at, \
         c.updated_at, c.checkout_id, i.id AS item_id, i.variant_id AS item_variant_id, \
         i.quantity AS item_quantity, i.created_at AS item_created_at \
         FROM carts c LEFT JOIN cart_items i ON i.cart_id = c.id \
         WHERE c.id = $1 ORDER BY i.created_at, i.id";
    let rows: Vec<CartItemRow> = run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_all(c)
        .await
        .map_err(DbError::from))?;
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else {
        return Ok(None);
    };
    let mut items = Vec::new();
    let mut take = |r: &CartItemRow| {
        if let (Some(item), Some(variant), Some(quantity), Some(at)) = (
            r.item_id,
            r.item_variant_id,
            r.item_quantity,
            r.item_created_at,
        ) {
            items.push(ItemRow {
                id: item,
                cart_id: r.id,
                variant_id: variant,
                quantity,
                created_at: at,
            });
        }
    };
    take(&first);
    rows.for_each(|r| take(&r));
    let cart = CartRow {
        id: first.id,
        token_hash: first.token_hash,
        customer_id: first.customer_id,
        currency: first.currency,
        email: first.email,
        shipping_address: first.shipping_address,
        shipping_option_id: first.shipping_option_id,
        coupon_codes: first.coupon_codes,
        version: first.version,
        created_at: first.created_at,
        updated_at: first.updated_at,
        checkout_id: first.checkout_id,
    };
    Ok(Some((cart, items)))
}

/// Lets checkout `checkout` hold cart `id` if the cart is still at `version` and no other
/// checkout holds it; true when it does. Bumps the version.
pub async fn hold_for_checkout<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    version: i64,
    checkout: Uuid,
) -> Result<bool, DbError> {
    Ok(hold_statement(id, version, checkout).execute(c).await? == 1)
}

/// The statement of [`hold_for_checkout`]: it changes one row when the hold is taken.
pub fn hold_statement(id: Uuid, version: i64, checkout: Uuid) -> Sql {
    Sql::statement(
        "UPDATE carts SET checkout_id = $3, version = version + 1 \
         WHERE id = $1 AND version = $2 AND checkout_id IS NULL",
        vec![Arg::Uuid(id), Arg::Int(version), Arg::Uuid(checkout)],
    )
}

/// Gives cart `id` back to changes, if checkout `checkout` holds it.
pub async fn release_from_checkout<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    checkout: Uuid,
) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(
            "UPDATE carts SET checkout_id = NULL, version = version + 1 \
             WHERE id = $1 AND checkout_id = $2"
        )
        .bind(id)
        .bind(checkout)
    )?;
    Ok(())
}

/// Writes the cart's own fields back and bumps its version, if the cart is still at
/// `row.version` (the version the change was planned on) and no checkout holds it: on
/// PostgreSQL the update takes the row lock and, if another transaction changed the cart
/// meanwhile, re-checks the version and matches nothing. True when written.
pub async fn update_cart<'c>(c: impl Into<Conn<'c>>, row: &CartRow) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query(
            "UPDATE carts SET email = $2, shipping_address = $3, shipping_option_id = $4, \
             coupon_codes = $5, version = version + 1, updated_at = $6 \
             WHERE id = $1 AND version = $7 AND checkout_id IS NULL"
        )
        .bind(row.id)
        .bind(&row.email)
        .bind(&row.shipping_address)
        .bind(row.shipping_option_id)
        .bind(&row.coupon_codes)
        .bind(row.updated_at)
        .bind(row.version)
    )?;
    Ok(n == 1)
}

/// The cart's items, oldest first.
pub async fn list_items<'c>(c: impl Into<Conn<'c>>, cart: Uuid) -> Result<Vec<ItemRow>, DbError> {
    const SQL: &str = "SELECT id, cart_id, variant_id, quantity, created_at FROM cart_items \
                       WHERE cart_id = $1 ORDER BY created_at, id";
    run!(c, |c| sqlx::query_as(SQL)
        .bind(cart)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Inserts an item.
pub async fn insert_item<'c>(c: impl Into<Conn<'c>>, row: &ItemRow) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(
            "INSERT INTO cart_items (id, cart_id, variant_id, quantity, created_at) \
             VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(row.id)
        .bind(row.cart_id)
        .bind(row.variant_id)
        .bind(row.quantity)
        .bind(row.created_at)
    )?;
    Ok(())
}

/// Sets an item's quantity.
pub async fn set_quantity<'c>(
    c: impl Into<Conn<'c>>,
    item: Uuid,
    quantity: i64,
) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query("UPDATE cart_items SET quantity = $2 WHERE id = $1")
            .bind(item)
            .bind(quantity)
    )?;
    Ok(())
}

/// Deletes an item.
pub async fn delete_item<'c>(c: impl Into<Conn<'c>>, item: Uuid) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query("DELETE FROM cart_items WHERE id = $1").bind(item)
    )?;
    Ok(())
}

/// The customer's most recently changed cart other than `except`, if any.
pub async fn latest_cart_of<'c>(
    c: impl Into<Conn<'c>>,
    customer: &str,
    except: Uuid,
) -> Result<Option<CartRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        cart_columns!(),
        " FROM carts WHERE customer_id = $1 AND id <> $2 AND checkout_id IS NULL \
         ORDER BY updated_at DESC, id DESC LIMIT 1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(customer)
        .bind(except)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Makes cart `id` the customer's, if it is still at `version` and no checkout holds it; true
/// when it does.
pub async fn set_customer<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    version: i64,
    customer: &str,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query(
            "UPDATE carts SET customer_id = $3, version = version + 1, updated_at = $4 \
             WHERE id = $1 AND version = $2 AND checkout_id IS NULL"
        )
        .bind(id)
        .bind(version)
        .bind(customer)
        .bind(now)
    )?;
    Ok(n == 1)
}

/// Deletes cart `id` and its items, if it is still at `version` and no checkout holds it; true
/// when it does.
pub async fn delete_cart<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    version: i64,
) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query("DELETE FROM carts WHERE id = $1 AND version = $2 AND checkout_id IS NULL")
            .bind(id)
            .bind(version)
    )?;
    Ok(n == 1)
}

/// Deletes the carts `ids` (and, by cascade, their items).
pub async fn delete_carts(tx: &mut WriteTx, ids: &[Uuid]) -> Result<(), DbError> {
    for chunk in ids.chunks(emporium_db::IN_CHUNK) {
        let mut sql = emporium_db::Sql::default();
        sql.push("DELETE FROM carts WHERE id IN (")
            .bind_in(chunk.iter().map(|id| emporium_db::Arg::Uuid(*id)))
            .push(")");
        sql.execute(&mut *tx).await?;
    }
    Ok(())
}
