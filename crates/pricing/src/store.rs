//! Pricing's SQL, and nothing else. Rules are rows of `pricing_rules` holding their JSON; coupons
//! have their own table because redeeming one is a conditional update of its counter.

use emporium_db::{Conn, DbError, execute, from_row, run};
use time::OffsetDateTime;
use uuid::Uuid;

/// A `pricing_rules` row.
#[derive(Debug, Clone)]
pub struct RuleRow {
    pub id: Uuid,
    pub kind: String,
    pub unique_key: Option<String>,
    pub body: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

from_row!(RuleRow {
    id,
    kind,
    unique_key,
    body,
    version,
    created_at,
    updated_at,
});

/// A `pricing_coupons` row.
#[derive(Debug, Clone)]
pub struct CouponRow {
    pub id: Uuid,
    pub code: String,
    pub promotion_id: Uuid,
    pub usage_limit: Option<i64>,
    pub per_customer_limit: Option<i64>,
    pub used: i64,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

from_row!(CouponRow {
    id,
    code,
    promotion_id,
    usage_limit,
    per_customer_limit,
    used,
    version,
    created_at,
    updated_at,
});

macro_rules! rule_columns {
    () => {
        "id, kind, unique_key, body, version, created_at, updated_at"
    };
}

macro_rules! coupon_columns {
    () => {
        "id, code, promotion_id, usage_limit, per_customer_limit, used, version, created_at, updated_at"
    };
}

/// Inserts a rule; a duplicate `(kind, unique_key)` is a unique violation.
pub async fn insert_rule<'c>(c: impl Into<Conn<'c>>, row: &RuleRow) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO pricing_rules (",
            rule_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(row.id)
        .bind(&row.kind)
        .bind(&row.unique_key)
        .bind(&row.body)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
    )?;
    Ok(())
}

/// Replaces the body of rule `id` of `kind` if its version is still `version`; returns whether
/// it did. A duplicate `unique_key` is a unique violation.
pub async fn update_rule<'c>(
    c: impl Into<Conn<'c>>,
    row: &RuleRow,
    version: i64,
) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query(
            "UPDATE pricing_rules SET unique_key = $3, body = $4, version = version + 1, \
             updated_at = $5 WHERE id = $1 AND kind = $2 AND version = $6"
        )
        .bind(row.id)
        .bind(&row.kind)
        .bind(&row.unique_key)
        .bind(&row.body)
        .bind(row.updated_at)
        .bind(version)
    )?;
    Ok(n == 1)
}

/// Deletes rule `id` of `kind`; returns whether it existed.
pub async fn delete_rule<'c>(
    c: impl Into<Conn<'c>>,
    kind: &str,
    id: Uuid,
) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query("DELETE FROM pricing_rules WHERE id = $1 AND kind = $2")
            .bind(id)
            .bind(kind)
    )?;
    Ok(n == 1)
}

/// Rule `id` of `kind`, if any.
pub async fn find_rule<'c>(
    c: impl Into<Conn<'c>>,
    kind: &str,
    id: Uuid,
) -> Result<Option<RuleRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        rule_columns!(),
        " FROM pricing_rules WHERE id = $1 AND kind = $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .bind(kind)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Rules of `kind` with an id after `after`, by id, at most `limit`.
pub async fn list_rules<'c>(
    c: impl Into<Conn<'c>>,
    kind: &str,
    after: Uuid,
    limit: i64,
) -> Result<Vec<RuleRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        rule_columns!(),
        " FROM pricing_rules WHERE kind = $1 AND id > $2 ORDER BY id LIMIT $3"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(kind)
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Every rule, of every kind: what a quote reads.
pub async fn all_rules<'c>(c: impl Into<Conn<'c>>) -> Result<Vec<RuleRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        rule_columns!(),
        " FROM pricing_rules ORDER BY id"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Inserts a coupon; a duplicate code is a unique violation.
pub async fn insert_coupon<'c>(c: impl Into<Conn<'c>>, row: &CouponRow) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO pricing_coupons (",
            coupon_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(row.id)
        .bind(&row.code)
        .bind(row.promotion_id)
        .bind(row.usage_limit)
        .bind(row.per_customer_limit)
        .bind(row.used)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
    )?;
    Ok(())
}

/// Coupon `id`, if any.
pub async fn find_coupon<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<CouponRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        coupon_columns!(),
        " FROM pricing_coupons WHERE id = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// The coupon with this (upper-case) code, if any.
pub async fn find_coupon_by_code<'c>(
    c: impl Into<Conn<'c>>,
    code: &str,
) -> Result<Option<CouponRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        coupon_columns!(),
        " FROM pricing_coupons WHERE code = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(code)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Coupons with an id after `after`, by id, at most `limit`.
pub async fn list_coupons<'c>(
    c: impl Into<Conn<'c>>,
    after: Uuid,
    limit: i64,
) -> Result<Vec<CouponRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        coupon_columns!(),
        " FROM pricing_coupons WHERE id > $1 ORDER BY id LIMIT $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Deletes coupon `id` and its redemptions; returns whether it existed.
pub async fn delete_coupon<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query("DELETE FROM pricing_coupons WHERE id = $1").bind(id)
    )?;
    Ok(n == 1)
}

/// Takes one use of the coupon with `code` if it has uses left: its id and per-customer limit,
/// or `None` (no such coupon, or no use left). Being one conditional update, concurrent
/// redemptions never take more uses than the limit; on PostgreSQL its row lock orders them.
pub async fn take_coupon_use<'c>(
    c: impl Into<Conn<'c>>,
    code: &str,
    now: OffsetDateTime,
) -> Result<Option<(Uuid, Option<i64>)>, DbError> {
    run!(c, |c| sqlx::query_as(
        "UPDATE pricing_coupons SET used = used + 1, version = version + 1, updated_at = $2 \
         WHERE code = $1 AND (usage_limit IS NULL OR used < usage_limit) \
         RETURNING id, per_customer_limit"
    )
    .bind(code)
    .bind(now)
    .fetch_optional(c)
    .await
    .map_err(DbError::from))
}

/// Gives back one use of coupon `id` (a compensated checkout).
pub async fn return_coupon_use<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(
            "UPDATE pricing_coupons SET used = used - 1, version = version + 1, updated_at = $2 \
             WHERE id = $1 AND used > 0"
        )
        .bind(id)
        .bind(now)
    )?;
    Ok(())
}

/// Whether checkout `reference` redeemed coupon `id`.
pub async fn redeemed_by<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    reference: &str,
) -> Result<bool, DbError> {
    const SQL: &str = "SELECT COUNT(*) FROM pricing_coupon_redemptions \
                       WHERE coupon_id = $1 AND reference = $2";
    let (n,): (i64,) = run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .bind(reference)
        .fetch_one(c)
        .await
        .map_err(DbError::from))?;
    Ok(n > 0)
}

/// Records that checkout `reference` redeemed coupon `id` for `customer_key`, unless that
/// checkout redeemed it already or the customer has `per_customer_limit` redemptions of it
/// (counted in the statement); returns whether it did ([`redeemed_by`] says why not).
pub async fn insert_redemption<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    reference: &str,
    customer_key: &str,
    per_customer_limit: Option<i64>,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query(
            "INSERT INTO pricing_coupon_redemptions (coupon_id, reference, customer_key, created_at) \
             SELECT $1, $2, $3, $4 WHERE CAST($5 AS BIGINT) IS NULL \
             OR (SELECT COUNT(*) FROM pricing_coupon_redemptions \
                 WHERE coupon_id = $1 AND customer_key = $3) < CAST($5 AS BIGINT) \
             ON CONFLICT (coupon_id, reference) DO NOTHING"
        )
        .bind(id)
        .bind(reference)
        .bind(customer_key)
        .bind(now)
        .bind(per_customer_limit)
    )?;
    Ok(n == 1)
}

/// Removes the redemption of coupon `id` by checkout `reference`; returns whether there was one.
pub async fn delete_redemption<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    reference: &str,
) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query(
            "DELETE FROM pricing_coupon_redemptions WHERE coupon_id = $1 AND reference = $2"
        )
        .bind(id)
        .bind(reference)
    )?;
    Ok(n == 1)
}
