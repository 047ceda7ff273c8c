//! Reading the outbox for the relay, and the inbox check consumers run in their own transaction.

use std::collections::HashSet;

use emporium_kernel::Envelope;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Arg, Db, DbError, IN_CHUNK, Sql, WriteTx};

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
    for chunk in positions.chunks(IN_CHUNK) {
        let mut sql = Sql::default();
        sql.push("UPDATE outbox SET published_at = ")
            .bind(Arg::Time(now))
            .push(" WHERE position IN (")
            .bind_in(chunk.iter().map(|p| Arg::Int(*p)))
            .push(")");
        sql.execute(&mut tx).await?;
    }
    tx.commit().await
}

/// Records that `consumer` handled each of `event_ids`, in the consumer's transaction. Returns,
/// for each id in order, whether it is new: the caller must skip the effect of an event handled
/// before (an id twice in one batch is new only the first time), which is what makes
/// redelivery harmless.
///
/// Each row is inserted unless its `(consumer, event_id)` key exists, and the statement returns
/// the ids it inserted: one statement per 256 events, each id checked on the inbox's key.
/// Another process handling the same events at the same moment waits for it and then finds
/// them handled.
pub async fn mark_all_handled(
    tx: &mut WriteTx,
    consumer: &str,
    event_ids: &[Uuid],
    now: OffsetDateTime,
) -> Result<Vec<bool>, DbError> {
    let mut distinct = HashSet::with_capacity(event_ids.len());
    let rows: Vec<Vec<Arg>> = event_ids
        .iter()
        .filter(|id| distinct.insert(**id))
        .map(|id| {
            vec![
                Arg::Text(consumer.to_owned()),
                Arg::Uuid(*id),
                Arg::Time(now),
            ]
        })
        .collect();
    let mut recorded = HashSet::with_capacity(rows.len());
    for statement in crate::bulk::insert_statements(
        tx.backend(),
        "INSERT INTO inbox (consumer, event_id, handled_at) VALUES",
        "ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id",
        rows,
    )? {
        let ids: Vec<(Uuid,)> = statement.fetch_all(&mut *tx).await?;
        recorded.extend(ids.into_iter().map(|(id,)| id));
    }
    // `remove`: a second occurrence of an id is not new.
    Ok(event_ids.iter().map(|id| recorded.remove(id)).collect())
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
