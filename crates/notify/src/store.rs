//! Notify's SQL and nothing else.

use emporium_db::{Arg, Conn, DbError, Sql, WriteTx, execute, run};
use time::OffsetDateTime;
use uuid::Uuid;

/// A `webhook_endpoints` row.
#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<OffsetDateTime>,
    pub failing_since: Option<OffsetDateTime>,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}
emporium_db::from_row!(EndpointRow {
    id,
    url,
    description,
    event_types,
    enabled,
    disabled_reason,
    secret,
    previous_secret,
    previous_expires_at,
    failing_since,
    version,
    created_at,
    updated_at
});

macro_rules! endpoint_columns {
    () => {
        "id, url, description, event_types, enabled, disabled_reason, secret, previous_secret, \
         previous_expires_at, failing_since, version, created_at, updated_at"
    };
}

/// A `webhook_deliveries` row without its payload.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_id: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: OffsetDateTime,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_status_code: Option<i64>,
    pub last_duration_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_response: Option<String>,
    pub created_at: OffsetDateTime,
}
emporium_db::from_row!(DeliveryRow {
    id,
    endpoint_id,
    event_id,
    event_type,
    aggregate_id,
    status,
    attempts,
    next_attempt_at,
    last_attempt_at,
    last_status_code,
    last_duration_ms,
    last_error,
    last_response,
    created_at
});

macro_rules! delivery_columns {
    () => {
        "id, endpoint_id, event_id, event_type, aggregate_id, status, attempts, next_attempt_at, \
         last_attempt_at, last_status_code, last_duration_ms, last_error, \
         last_response, created_at"
    };
}

/// A delivery a worker took: what it sends.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub attempts: i64,
    pub replayed_after: i64,
}
emporium_db::from_row!(ClaimedRow {
    id,
    endpoint_id,
    event_id,
    attempts,
    replayed_after
});

/// A `webhook_messages` row.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub event_id: Uuid,
    pub payload: String,
}
emporium_db::from_row!(MessageRow { event_id, payload });

/// A `webhook_attempts` row.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at: OffsetDateTime,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
}
emporium_db::from_row!(AttemptRow {
    attempt,
    at,
    status_code,
    duration_ms,
    error,
    response
});

pub async fn insert_endpoint(tx: &mut WriteTx, row: &EndpointRow) -> Result<(), DbError> {
    execute!(
        &mut *tx,
        sqlx::query(concat!(
            "INSERT INTO webhook_endpoints (",
            endpoint_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(row.id)
        .bind(&row.url)
        .bind(&row.description)
        .bind(&row.event_types)
        .bind(row.enabled)
        .bind(&row.disabled_reason)
        .bind(&row.secret)
        .bind(&row.previous_secret)
        .bind(row.previous_expires_at)
        .bind(row.failing_since)
        .bind(row.version)
        .bind(row.created_at)
        .bind(row.updated_at)
    )?;
    Ok(())
}

/// Writes every field of `row` if the stored version is still `row.version - 1`; false when it
/// is not (or the endpoint is gone).
pub async fn update_endpoint(tx: &mut WriteTx, row: &EndpointRow) -> Result<bool, DbError> {
    let n = execute!(
        &mut *tx,
        sqlx::query(
            "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, \
             enabled = $5, disabled_reason = $6, secret = $7, previous_secret = $8, \
             previous_expires_at = $9, failing_since = $10, version = $11, updated_at = $12 \
             WHERE id = $1 AND version = $13"
        )
        .bind(row.id)
        .bind(&row.url)
        .bind(&row.description)
        .bind(&row.event_types)
        .bind(row.enabled)
        .bind(&row.disabled_reason)
        .bind(&row.secret)
        .bind(&row.previous_secret)
        .bind(row.previous_expires_at)
        .bind(row.failing_since)
        .bind(row.version)
        .bind(row.updated_at)
        .bind(row.version - 1)
    )?;
    Ok(n == 1)
}

pub async fn delete_endpoint(tx: &mut WriteTx, id: Uuid) -> Result<bool, DbError> {
    // Attempts and deliveries go with it (ON DELETE CASCADE needs SQLite's foreign keys on,
    // so they are removed explicitly).
    execute!(
        &mut *tx,
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)"
        )
        .bind(id)
    )?;
    execute!(
        &mut *tx,
        sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1").bind(id)
    )?;
    let n = execute!(
        &mut *tx,
        sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id)
    )?;
    Ok(n == 1)
}

pub async fn find_endpoint<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<EndpointRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE id = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// Endpoints by id after `after`.
pub async fn list_endpoints<'c>(
    c: impl Into<Conn<'c>>,
    after: Uuid,
    limit: i64,
) -> Result<Vec<EndpointRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE id > $1 ORDER BY id LIMIT $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// Every enabled endpoint with its subscriptions.
pub async fn enabled_endpoints<'c>(c: impl Into<Conn<'c>>) -> Result<Vec<(Uuid, String)>, DbError> {
    run!(c, |c| sqlx::query_as(
        "SELECT id, event_types FROM webhook_endpoints WHERE enabled = $1"
    )
    .bind(true)
    .fetch_all(c)
    .await
    .map_err(DbError::from))
}

/// Inserts the bodies of events (`event_id, payload, now`), once each.
pub async fn insert_messages(tx: &mut WriteTx, rows: Vec<Vec<Arg>>) -> Result<u64, DbError> {
    emporium_db::insert_rows(
        tx,
        "INSERT INTO webhook_messages (event_id, payload, created_at) VALUES",
        " ON CONFLICT (event_id) DO NOTHING",
        rows,
    )
    .await
}

/// Inserts deliveries (`id, endpoint_id, event_id, event_type, aggregate_id, 'pending', 0, 0,
/// now, lease_until, now`), skipping any an endpoint already has for its event.
pub async fn insert_deliveries(tx: &mut WriteTx, rows: Vec<Vec<Arg>>) -> Result<u64, DbError> {
    emporium_db::insert_rows(
        tx,
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, aggregate_id, \
         status, attempts, replayed_after, next_attempt_at, lease_until, created_at) VALUES",
        " ON CONFLICT (endpoint_id, event_id) DO NOTHING",
        rows,
    )
    .await
}

/// The bodies of the events `ids`.
pub async fn messages(tx: &mut WriteTx, ids: &[Uuid]) -> Result<Vec<MessageRow>, DbError> {
    let ids: Vec<Arg> = ids.iter().map(|id| Arg::Uuid(*id)).collect();
    emporium_db::fetch_in(
        tx,
        "SELECT event_id, payload FROM webhook_messages WHERE event_id IN (",
        &ids,
        "",
    )
    .await
}

/// Takes up to `limit` due deliveries of enabled endpoints until `lease_until`, oldest due first.
/// A delivery another worker holds is skipped; the outer conditions make a concurrent claim
/// of the same row lose on PostgreSQL too (the row is re-checked after the other's update).
pub async fn claim_due<'c>(
    c: impl Into<Conn<'c>>,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: i64,
) -> Result<Vec<ClaimedRow>, DbError> {
    const SQL: &str = "UPDATE webhook_deliveries SET lease_until = $1 \
        WHERE id IN (SELECT d.id FROM webhook_deliveries d \
            JOIN webhook_endpoints e ON e.id = d.endpoint_id \
            WHERE d.status = 'pending' AND d.next_attempt_at <= $2 \
            AND (d.lease_until IS NULL OR d.lease_until <= $2) AND e.enabled = $3 \
            ORDER BY d.next_attempt_at, d.id LIMIT $4) \
        AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $2) \
        RETURNING id, endpoint_id, event_id, attempts, replayed_after";
    run!(c, |c| sqlx::query_as(SQL)
        .bind(lease_until)
        .bind(now)
        .bind(true)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// When the next delivery of an enabled endpoint is due, if any is pending.
pub async fn next_due<'c>(c: impl Into<Conn<'c>>) -> Result<Option<OffsetDateTime>, DbError> {
    run!(c, |c| sqlx::query_scalar(
        "SELECT MIN(CASE WHEN d.lease_until IS NOT NULL AND d.lease_until > d.next_attempt_at \
         THEN d.lease_until ELSE d.next_attempt_at END) FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.status = 'pending' AND e.enabled = $1"
    )
    .bind(true)
    .fetch_one(c)
    .await
    .map_err(DbError::from))
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub attempt: i64,
    pub at: OffsetDateTime,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
    /// `pending` (retry at `next_attempt_at`), `succeeded` or `failed`.
    pub status: &'static str,
    pub next_attempt_at: OffsetDateTime,
}

/// Writes attempts' outcomes onto their deliveries, a statement per 64, and the failed ones
/// into the attempts.
pub async fn record_outcomes(tx: &mut WriteTx, outcomes: &[Outcome]) -> Result<(), DbError> {
    for chunk in outcomes.chunks(64) {
        let mut sql = Sql::default();
        sql.push(
            "UPDATE webhook_deliveries SET status = v.column2, attempts = v.column3, \
             next_attempt_at = v.column4, lease_until = NULL, last_attempt_at = v.column5, \
             last_status_code = v.column6, last_duration_ms = v.column7, last_error = v.column8, \
             last_response = v.column9 FROM (VALUES ",
        );
        for (i, o) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            for (j, arg) in [
                Arg::Uuid(o.delivery_id),
                Arg::Text(o.status.to_owned()),
                Arg::Int(o.attempt),
                Arg::Time(o.next_attempt_at),
                Arg::Time(o.at),
                Arg::OptInt(o.status_code),
                Arg::Int(o.duration_ms),
                Arg::OptText(o.error.clone()),
                Arg::OptText(o.response.clone()),
            ]
            .into_iter()
            .enumerate()
            {
                if j > 0 {
                    sql.push(", ");
                }
                sql.bind(arg);
            }
            sql.push(")");
        }
        sql.push(") AS v WHERE webhook_deliveries.id = v.column1");
        sql.execute(&mut *tx).await?;
    }
    let failed: Vec<Vec<Arg>> = outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| {
            vec![
                Arg::Uuid(o.delivery_id),
                Arg::Int(o.attempt),
                Arg::Time(o.at),
                Arg::OptInt(o.status_code),
                Arg::Int(o.duration_ms),
                Arg::OptText(o.error.clone()),
                Arg::OptText(o.response.clone()),
            ]
        })
        .collect();
    emporium_db::insert_rows(
        tx,
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, \
         error, response) VALUES",
        " ON CONFLICT (delivery_id, attempt) DO NOTHING",
        failed,
    )
    .await?;
    Ok(())
}

/// An endpoint's failure record after an attempt: a success clears it, a failure starts it
/// when it is not already running.
pub async fn mark_endpoint_health(
    tx: &mut WriteTx,
    endpoint_id: Uuid,
    succeeded: bool,
    at: OffsetDateTime,
) -> Result<(), DbError> {
    if succeeded {
        execute!(
            &mut *tx,
            sqlx::query(
                "UPDATE webhook_endpoints SET failing_since = NULL \
                 WHERE id = $1 AND failing_since IS NOT NULL"
            )
            .bind(endpoint_id)
        )?;
    } else {
        execute!(
            &mut *tx,
            sqlx::query(
                "UPDATE webhook_endpoints SET failing_since = $2 \
                 WHERE id = $1 AND failing_since IS NULL"
            )
            .bind(endpoint_id)
            .bind(at)
        )?;
    }
    Ok(())
}

/// Deliveries of an endpoint, newest first, before `before` (a delivery id), optionally of one
/// status.
pub async fn list_deliveries<'c>(
    c: impl Into<Conn<'c>>,
    endpoint_id: Uuid,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_deliveries WHERE endpoint_id = $1 AND ($2 IS NULL OR status = $2) \
         AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(endpoint_id)
        .bind(status)
        .bind(before)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// A delivery of an endpoint.
pub async fn find_delivery<'c>(
    c: impl Into<Conn<'c>>,
    endpoint_id: Uuid,
    id: Uuid,
) -> Result<Option<DeliveryRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_deliveries WHERE endpoint_id = $1 AND id = $2"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(endpoint_id)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// The body a delivery sends.
pub async fn payload_of<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<String, DbError> {
    run!(c, |c| sqlx::query_scalar(
        "SELECT m.payload FROM webhook_messages m JOIN webhook_deliveries d \
         ON d.event_id = m.event_id WHERE d.id = $1"
    )
    .bind(id)
    .fetch_one(c)
    .await
    .map_err(DbError::from))
}

pub async fn attempts_of<'c>(
    c: impl Into<Conn<'c>>,
    delivery_id: Uuid,
) -> Result<Vec<AttemptRow>, DbError> {
    run!(c, |c| sqlx::query_as(
        "SELECT attempt, at, status_code, duration_ms, error, response FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY attempt"
    )
    .bind(delivery_id)
    .fetch_all(c)
    .await
    .map_err(DbError::from))
}

/// Queues one delivery again at `now`, its retry schedule starting over; false when the
/// endpoint has no such delivery.
pub async fn replay_one(
    tx: &mut WriteTx,
    endpoint_id: Uuid,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    let n = execute!(
        &mut *tx,
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
             lease_until = NULL, replayed_after = attempts WHERE endpoint_id = $1 AND id = $2"
        )
        .bind(endpoint_id)
        .bind(id)
        .bind(now)
    )?;
    Ok(n == 1)
}

/// Queues again every delivery of an endpoint created in `[since, until)` with `status`.
pub async fn replay_range(
    tx: &mut WriteTx,
    endpoint_id: Uuid,
    since: OffsetDateTime,
    until: OffsetDateTime,
    status: &str,
    now: OffsetDateTime,
) -> Result<u64, DbError> {
    Ok(execute!(
        &mut *tx,
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $5, \
             lease_until = NULL, replayed_after = attempts WHERE endpoint_id = $1 \
             AND created_at >= $2 AND created_at < $3 AND status = $4"
        )
        .bind(endpoint_id)
        .bind(since)
        .bind(until)
        .bind(status)
        .bind(now)
    )?)
}

/// Inserts composed e-mails (`id, event_id, kind, recipient, subject, text, html, now, now`),
/// skipping any already composed for the same event, kind and recipient.
pub async fn insert_emails(tx: &mut WriteTx, rows: Vec<Vec<Arg>>) -> Result<u64, DbError> {
    emporium_db::insert_rows(
        tx,
        "INSERT INTO email_messages (id, event_id, kind, recipient, subject, text_body, \
         html_body, status, attempts, next_attempt_at, created_at) VALUES",
        " ON CONFLICT (event_id, kind, recipient) DO NOTHING",
        rows,
    )
    .await
}

/// An e-mail a mailer took.
#[derive(Debug, Clone)]
pub struct EmailRow {
    pub id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub attempts: i64,
}
emporium_db::from_row!(EmailRow {
    id,
    kind,
    recipient,
    subject,
    text_body,
    html_body,
    attempts
});

/// Takes up to `limit` due e-mails until `lease_until` (as [`claim_due`] does deliveries).
pub async fn claim_emails<'c>(
    c: impl Into<Conn<'c>>,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: i64,
) -> Result<Vec<EmailRow>, DbError> {
    const SQL: &str = "UPDATE email_messages SET lease_until = $1 \
        WHERE id IN (SELECT id FROM email_messages WHERE status = 'pending' \
            AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
            ORDER BY next_attempt_at, id LIMIT $3) \
        AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $2) \
        RETURNING id, kind, recipient, subject, text_body, html_body, attempts";
    run!(c, |c| sqlx::query_as(SQL)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::from))
}

/// When the next pending e-mail is due.
pub async fn next_email_due<'c>(c: impl Into<Conn<'c>>) -> Result<Option<OffsetDateTime>, DbError> {
    run!(c, |c| sqlx::query_scalar(
        "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
         THEN lease_until ELSE next_attempt_at END) FROM email_messages WHERE status = 'pending'"
    )
    .fetch_one(c)
    .await
    .map_err(DbError::from))
}

/// Writes a send's outcome: `sent`, `pending` again at `next_attempt_at`, or `failed`.
pub async fn record_email(
    tx: &mut WriteTx,
    id: Uuid,
    status: &str,
    attempts: i64,
    next_attempt_at: OffsetDateTime,
    error: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    execute!(
        &mut *tx,
        sqlx::query(
            "UPDATE email_messages SET status = $2, attempts = $3, next_attempt_at = $4, \
             lease_until = NULL, last_error = $5, \
             sent_at = CASE WHEN $2 = 'sent' THEN $6 ELSE sent_at END WHERE id = $1"
        )
        .bind(id)
        .bind(status)
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(error)
        .bind(now)
    )?;
    Ok(())
}

/// Marks a variant low on stock; false when it was already.
pub async fn mark_low_stock(
    tx: &mut WriteTx,
    variant_id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    let n = execute!(
        &mut *tx,
        sqlx::query(
            "INSERT INTO notify_low_stock (variant_id, since) VALUES ($1, $2) \
             ON CONFLICT (variant_id) DO NOTHING"
        )
        .bind(variant_id)
        .bind(now)
    )?;
    Ok(n == 1)
}

/// Forgets that a variant was low on stock.
pub async fn clear_low_stock(tx: &mut WriteTx, variant_id: Uuid) -> Result<(), DbError> {
    execute!(
        &mut *tx,
        sqlx::query("DELETE FROM notify_low_stock WHERE variant_id = $1").bind(variant_id)
    )?;
    Ok(())
}
