//! Ordering's SQL, and nothing else.

use emporium_db::{Arg, Conn, DbError, Sql, WriteTx, execute, from_row, run};
use time::OffsetDateTime;
use uuid::Uuid;

/// A `checkouts` row.
#[derive(Debug, Clone)]
pub struct CheckoutRow {
    pub id: Uuid,
    pub cart_id: Uuid,
    pub idempotency_key: String,
    pub request_hash: String,
    pub caller: String,
    pub state: String,
    pub reservation_id: Option<Uuid>,
    pub coupon_ids: String,
    pub payment_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

from_row!(CheckoutRow {
    id,
    cart_id,
    idempotency_key,
    request_hash,
    caller,
    state,
    reservation_id,
    coupon_ids,
    payment_id,
    order_id,
    response_status,
    response_body,
    created_at,
    updated_at,
});

/// An `orders` row.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub id: Uuid,
    pub customer_id: Option<String>,
    pub status: String,
    pub document: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When its pending money action was requested, if one is.
    pub payment_pending_since: Option<OffsetDateTime>,
    /// The document's currency and total net of refunds, for the summary of a period.
    pub currency: String,
    pub net_total: i64,
}

from_row!(OrderRow {
    id,
    customer_id,
    status,
    document,
    version,
    created_at,
    updated_at,
    payment_pending_since,
    currency,
    net_total,
});

/// An `order_events` row.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub order_id: Uuid,
    pub sequence: i64,
    pub event_type: String,
    pub data: String,
    pub occurred_at: OffsetDateTime,
}

from_row!(EventRow {
    order_id,
    sequence,
    event_type,
    data,
    occurred_at,
});

macro_rules! checkout_columns {
    () => {
        "id, cart_id, idempotency_key, request_hash, caller, state, reservation_id, coupon_ids, \
         payment_id, order_id, response_status, response_body, created_at, updated_at"
    };
}

macro_rules! order_columns {
    () => {
        "id, customer_id, status, document, version, created_at, updated_at, \
         payment_pending_since, currency, net_total"
    };
}

/// The head and values of a new checkout's insert, for a guarded write
/// (`Db::guarded_write`); a duplicate (its cart has a checkout under the same key, or one under
/// another key that has not failed) fails it with a unique violation.
pub fn checkout_insert(row: &CheckoutRow) -> (&'static str, Vec<Arg>) {
    (
        concat!("INSERT INTO checkouts (", checkout_columns!(), ")"),
        vec![
            Arg::Uuid(row.id),
            Arg::Uuid(row.cart_id),
            Arg::Text(row.idempotency_key.clone()),
            Arg::Text(row.request_hash.clone()),
            Arg::Text(row.caller.clone()),
            Arg::Text(row.state.clone()),
            Arg::OptUuid(row.reservation_id),
            Arg::Text(row.coupon_ids.clone()),
            Arg::OptUuid(row.payment_id),
            Arg::OptUuid(row.order_id),
            Arg::OptInt(row.response_status),
            Arg::OptText(row.response_body.clone()),
            Arg::Time(row.created_at),
            Arg::Time(row.updated_at),
        ],
    )
}

/// Whether cart `cart` has a checkout that has not failed (at most one has).
pub async fn cart_has_checkout<'c>(c: impl Into<Conn<'c>>, cart: Uuid) -> Result<bool, DbError> {
    run!(c, |c| sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM checkouts WHERE cart_id = $1 AND state <> 'failed'"
    )
    .bind(cart)
    .fetch_one(c)
    .await
    .map(|n| n > 0)
    .map_err(DbError::from))
}

/// Writes the saga's progress back.
pub fn update_checkout(row: &CheckoutRow) -> Sql {
    Sql::statement(
        "UPDATE checkouts SET state = $2, reservation_id = $3, coupon_ids = $4, \
         payment_id = $5, order_id = $6, response_status = $7, response_body = $8, \
         updated_at = $9 WHERE id = $1",
        vec![
            Arg::Uuid(row.id),
            Arg::Text(row.state.clone()),
            Arg::OptUuid(row.reservation_id),
            Arg::Text(row.coupon_ids.clone()),
            Arg::OptUuid(row.payment_id),
            Arg::OptUuid(row.order_id),
            Arg::OptInt(row.response_status),
            Arg::OptText(row.response_body.clone()),
            Arg::Time(row.updated_at),
        ],
    )
}

/// The checkout of `cart` with `key`, if any.
pub async fn find_checkout<'c>(
    c: impl Into<Conn<'c>>,
    cart: Uuid,
    key: &str,
) -> Result<Option<CheckoutRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        checkout_columns!(),
        " FROM checkouts WHERE cart_id = $1 AND idempotency_key = $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(cart)
        .bind(key)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Checkouts that have not reached `completed` or `failed` and have not moved since
/// `before`, oldest first (at most 500: a pass takes the rest at its next turn).
pub async fn idle_checkouts<'c>(
    c: impl Into<Conn<'c>>,
    before: OffsetDateTime,
) -> Result<Vec<CheckoutRow>, DbError> {
    // The first condition is the partial index's.
    const SQL: &str = concat!(
        "SELECT ",
        checkout_columns!(),
        " FROM checkouts WHERE state NOT IN ('completed', 'failed') AND updated_at <= $1 \
         ORDER BY created_at, id LIMIT 500"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(before)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// The checkout that placed order `order`, if one did.
pub async fn checkout_of_order<'c>(
    c: impl Into<Conn<'c>>,
    order: Uuid,
) -> Result<Option<CheckoutRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        checkout_columns!(),
        " FROM checkouts WHERE order_id = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(order)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Up to `limit` placed checkouts waiting for their last step, oldest first.
pub async fn placed_checkouts<'c>(
    c: impl Into<Conn<'c>>,
    limit: i64,
) -> Result<Vec<CheckoutRow>, DbError> {
    // The first condition is the partial index's.
    const SQL: &str = concat!(
        "SELECT ",
        checkout_columns!(),
        " FROM checkouts WHERE state NOT IN ('completed', 'failed') AND state = 'placed' \
         ORDER BY created_at, id LIMIT $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Marks the placed checkouts `ids` completed.
pub async fn complete_checkouts(
    tx: &mut WriteTx,
    ids: &[Uuid],
    now: OffsetDateTime,
) -> Result<(), DbError> {
    for chunk in ids.chunks(emporium_db::IN_CHUNK) {
        let mut sql = emporium_db::Sql::default();
        sql.push("UPDATE checkouts SET state = 'completed', updated_at = ")
            .bind(emporium_db::Arg::Time(now))
            .push(" WHERE state = 'placed' AND id IN (")
            .bind_in(chunk.iter().map(|id| emporium_db::Arg::Uuid(*id)))
            .push(")");
        sql.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Appends an event to an order's stream; a sequence taken already is a unique violation.
pub fn append_event(row: &EventRow) -> Sql {
    Sql::statement(
        "INSERT INTO order_events (order_id, sequence, event_type, data, occurred_at) \
         VALUES ($1, $2, $3, $4, $5)",
        vec![
            Arg::Uuid(row.order_id),
            Arg::Int(row.sequence),
            Arg::Text(row.event_type.clone()),
            Arg::Text(row.data.clone()),
            Arg::Time(row.occurred_at),
        ],
    )
}

/// Every event of every order, by order and sequence: what a rebuild folds.
pub async fn all_events<'c>(c: impl Into<Conn<'c>>) -> Result<Vec<EventRow>, DbError> {
    run!(c, |c| sqlx::query_as(
        "SELECT order_id, sequence, event_type, data, occurred_at FROM order_events \
         ORDER BY order_id, sequence"
    )
    .fetch_all(c)
    .await
    .map_err(DbError::from))
}

/// Writes an order's projection (insert or replace).
pub fn upsert_order(row: &OrderRow) -> Sql {
    Sql::statement(
        concat!(
            "INSERT INTO orders (",
            order_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
             status = excluded.status, document = excluded.document, \
             version = excluded.version, updated_at = excluded.updated_at, \
             payment_pending_since = excluded.payment_pending_since, \
             currency = excluded.currency, net_total = excluded.net_total"
        ),
        vec![
            Arg::Uuid(row.id),
            Arg::OptText(row.customer_id.clone()),
            Arg::Text(row.status.clone()),
            Arg::Text(row.document.clone()),
            Arg::Int(row.version),
            Arg::Time(row.created_at),
            Arg::Time(row.updated_at),
            Arg::OptTime(row.payment_pending_since),
            Arg::Text(row.currency.clone()),
            Arg::Int(row.net_total),
        ],
    )
}

/// Orders whose money action was requested before `before` and is not settled, oldest first.
pub async fn orders_pending_payment<'c>(
    c: impl Into<Conn<'c>>,
    before: OffsetDateTime,
) -> Result<Vec<Uuid>, DbError> {
    let rows: Vec<(Uuid,)> = run!(c, |c| sqlx::query_as(
        "SELECT id FROM orders WHERE payment_pending_since IS NOT NULL \
         AND payment_pending_since < $1 ORDER BY payment_pending_since LIMIT 500"
    )
    .bind(before)
    .fetch_all(c)
    .await
    .map_err(DbError::from))?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Order `id`'s projection, if any.
pub async fn find_order<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<Option<OrderRow>, DbError> {
    const SQL: &str = concat!("SELECT ", order_columns!(), " FROM orders WHERE id = $1");
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// A page of customer `customer`'s orders, newest first, after `after` (`(created_at, id)`).
pub async fn orders_of<'c>(
    c: impl Into<Conn<'c>>,
    customer: &str,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<OrderRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE customer_id = $1 \
         AND ($2 IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let (at, id) = after.map_or((None, None), |(t, i)| (Some(t), Some(i)));
    run!(c, |c| sqlx::query_as(SQL)
        .bind(customer)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Counts the orders (a test and operations figure).
pub async fn count_orders<'c>(c: impl Into<Conn<'c>>) -> Result<i64, DbError> {
    let (n,): (i64,) = run!(c, |c| sqlx::query_as("SELECT COUNT(*) FROM orders")
        .fetch_one(c)
        .await
        .map_err(DbError::from))?;
    Ok(n)
}

/// Deletes every order projection (before a rebuild).
pub async fn clear_orders<'c>(c: impl Into<Conn<'c>>) -> Result<(), DbError> {
    execute!(c, sqlx::query("DELETE FROM orders"))?;
    Ok(())
}

/// Records the hash of order `id`'s token.
pub fn insert_access(id: Uuid, token_hash: &str) -> Sql {
    Sql::statement(
        "INSERT INTO order_access (order_id, token_hash) VALUES ($1, $2)",
        vec![Arg::Uuid(id), Arg::Text(token_hash.to_owned())],
    )
}

/// The hash of order `id`'s token, if any.
pub async fn access_hash<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<Option<String>, DbError> {
    let row: Option<(String,)> = run!(c, |c| sqlx::query_as(
        "SELECT token_hash FROM order_access WHERE order_id = $1"
    )
    .bind(id)
    .fetch_optional(c)
    .await
    .map_err(DbError::from))?;
    Ok(row.map(|(h,)| h))
}

/// Per currency, the orders placed at or after `since` (the summary's input, read from the
/// `orders_summary` index alone).
pub async fn orders_since<'c>(
    c: impl Into<Conn<'c>>,
    since: OffsetDateTime,
) -> Result<Vec<SummaryRow>, DbError> {
    // Summed by the database from `orders_summary` alone: no document is read.
    const SQL: &str = "SELECT currency, COUNT(*) AS orders, \
        CAST(SUM(CASE WHEN status <> 'cancelled' THEN 1 ELSE 0 END) AS BIGINT) AS counted, \
        CAST(SUM(CASE WHEN status <> 'cancelled' THEN net_total ELSE 0 END) AS BIGINT) AS revenue \
        FROM orders WHERE created_at >= $1 GROUP BY currency";
    run!(c, |c| sqlx::query_as(SQL).bind(since).fetch_all(c).await).map_err(DbError::from)
}

/// The orders placed since a moment in one currency: all of them, those not cancelled, and
/// what those took net of refunds.
#[derive(Debug)]
pub struct SummaryRow {
    pub currency: String,
    pub orders: i64,
    pub counted: i64,
    pub revenue: i64,
}
from_row!(SummaryRow {
    currency,
    orders,
    counted,
    revenue
});

/// Orders newest first, of `status` when given, placed in `placed` (`[since, before)`, each
/// bound when given), after `(created_at, id)` when given.
pub async fn list_orders<'c>(
    c: impl Into<Conn<'c>>,
    status: Option<&str>,
    placed: (Option<OffsetDateTime>, Option<OffsetDateTime>),
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<OrderRow>, DbError> {
    // With a status, `orders_status` yields that status's orders newest first; without one,
    // `orders_created` yields every order newest first. (One statement with `$1 IS NULL OR
    // status = $1` would walk every order by date until enough of a rare status turned up.)
    const ANY: &str = concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE $1 IS NULL \
         AND ($2 IS NULL OR (created_at, id) < ($2, $3)) \
         AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    const OF_STATUS: &str = concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE status = $1 \
         AND ($2 IS NULL OR (created_at, id) < ($2, $3)) \
         AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
         ORDER BY status DESC, created_at DESC, id DESC LIMIT $4"
    );
    let sql = if status.is_some() { OF_STATUS } else { ANY };
    let (at, id) = after.map_or((None, None), |(t, i)| (Some(t), Some(i)));
    run!(c, |c| sqlx::query_as(sql)
        .bind(status)
        .bind(at)
        .bind(id)
        .bind(limit)
        .bind(placed.0)
        .bind(placed.1)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}
