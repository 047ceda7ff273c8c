//! Reading the outbox for the relay, and the inbox check consumers run in their own transaction.

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

/// Records that `consumer` handled each of `event_ids`, in the consumer's transaction, in two
/// statements per [`IN_CHUNK`] events: [`mark_handled`] for a batch. Returns, for each id in
/// order, whether it is new; an event handled before must have no second effect.
///
/// Another process handling the same events at the same moment makes it fail (the caller's
/// transaction rolls back, and the batch comes again), never apply an event twice.
pub async fn mark_all_handled(
    tx: &mut WriteTx,
    consumer: &str,
    event_ids: &[Uuid],
    now: OffsetDateTime,
) -> Result<Vec<bool>, DbError> {
    let mut seen = std::collections::HashSet::new();
    for chunk in event_ids.chunks(IN_CHUNK) {
        let mut sql = Sql::default();
        sql.push("SELECT event_id FROM inbox WHERE consumer = ")
            .bind(Arg::Text(consumer.to_owned()))
            .push(" AND event_id IN (")
            .bind_in(chunk.iter().map(|id| Arg::Uuid(*id)))
            .push(")");
        let rows: Vec<(Uuid,)> = sql.fetch_all(&mut *tx).await?;
        seen.extend(rows.into_iter().map(|(id,)| id));
    }
    let mut fresh = Vec::with_capacity(event_ids.len());
    let mut rows = Vec::new();
    for id in event_ids {
        // An id twice in one batch is new only the first time.
        let new = seen.insert(*id);
        fresh.push(new);
        if new {
            rows.push(vec![
                Arg::Text(consumer.to_owned()),
                Arg::Uuid(*id),
                Arg::Time(now),
            ]);
        }
    }
    let recorded = rows.len() as u64;
    let written = crate::insert_rows(
        tx,
        "INSERT INTO inbox (consumer, event_id, handled_at) VALUES",
        "ON CONFLICT (consumer, event_id) DO NOTHING",
        rows,
    )
    .await?;
    if written != recorded {
        return Err(DbError::Bulk(
            "another consumer recorded some of these events meanwhile",
        ));
    }
    Ok(fresh)
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
