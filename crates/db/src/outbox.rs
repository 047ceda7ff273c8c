//! Reading the outbox for the relay, and the inbox check consumers run in their own transaction.

use emporium_kernel::Envelope;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Db, DbError, WriteTx};

/// A committed outbox row not yet accepted by the bus.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Delivery order.
    pub position: i64,
    /// The event.
    pub envelope: Envelope,
}

/// Reads an [`Envelope`] from a row with the outbox's column names (`event_id`, `event_type`,
/// `version`, `aggregate_id`, `sequence`, `occurred_at`, `trace`, `data` as JSON text). Any table
/// that stores envelopes uses these names.
pub fn envelope_from_row<R>(row: &R) -> Result<Envelope, DbError>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> OffsetDateTime: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let data: String = row.try_get("data")?;
    Ok(Envelope {
        id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        version: row.try_get("version")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        occurred_at: row.try_get("occurred_at")?,
        trace: row.try_get("trace")?,
        data: serde_json::from_str(&data)?,
    })
}

/// The oldest `limit` committed events not yet published, in delivery order.
pub async fn pending_outbox(db: &Db, limit: i64) -> Result<Vec<OutboxRow>, DbError> {
    let mut conn = db.read().await?;
    crate::run!(&mut conn, |c| {
        let rows = sqlx::query(
            "SELECT position, event_id, event_type, version, aggregate_id, sequence, occurred_at, trace, data \
             FROM outbox WHERE published_at IS NULL ORDER BY position LIMIT $1",
        )
        .bind(limit)
        .fetch_all(c)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    position: r.try_get("position")?,
                    envelope: envelope_from_row(r)?,
                })
            })
            .collect()
    })
}

/// How many committed events wait for delivery.
pub async fn count_pending(db: &Db) -> Result<i64, DbError> {
    let mut conn = db.read().await?;
    let n: i64 = crate::run!(&mut conn, |c| sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    )
    .fetch_one(c)
    .await)?;
    Ok(n)
}

/// Marks the rows at `positions` as accepted by the bus.
pub async fn mark_published(
    db: &Db,
    positions: &[i64],
    now: OffsetDateTime,
) -> Result<(), DbError> {
    let mut tx = db.begin_write().await?;
    for position in positions {
        crate::execute!(
            &mut tx,
            sqlx::query("UPDATE outbox SET published_at = $1 WHERE position = $2")
                .bind(now)
                .bind(position)
        )?;
    }
    tx.commit().await
}

/// Records that `consumer` handled `event_id`, in the consumer's transaction.
///
/// Returns `false` when the event was handled before: the caller must then skip its effect (and
/// may roll back), which is what makes redelivery harmless.
pub async fn mark_handled(
    tx: &mut WriteTx,
    consumer: &str,
    event_id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    let done = crate::execute!(
        tx,
        sqlx::query(
            "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, event_id) DO NOTHING"
        )
        .bind(consumer)
        .bind(event_id)
        .bind(now)
    )?;
    Ok(done == 1)
}

/// Deletes outbox rows published before `before`, and inbox records older than it. Returns the
/// outbox rows deleted. Safe once every consumer is past `before`: the relay never redelivers a
/// published row, so old inbox records guard nothing.
pub async fn prune_delivered(db: &Db, before: OffsetDateTime) -> Result<u64, DbError> {
    let mut tx = db.begin_write().await?;
    let deleted = crate::execute!(
        &mut tx,
        sqlx::query("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
            .bind(before)
    )?;
    crate::execute!(
        &mut tx,
        sqlx::query("DELETE FROM inbox WHERE handled_at < $1").bind(before)
    )?;
    tx.commit().await?;
    Ok(deleted)
}
