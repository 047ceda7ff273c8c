//! Reservations and their lines.

use emporium_db::{Arg, Conn, DbError, WriteTx, execute, run};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Ending, LineRow, ReservationRow};

/// The columns of [`ReservationRow`], in field order (a macro, so that `concat!` can use it).
macro_rules! reservation_columns {
    () => {
        "id, status, reference, version, expires_at, created_at, updated_at"
    };
}

/// Inserts a reservation (without its lines).
pub async fn insert_reservation<'c>(
    c: impl Into<Conn<'c>>,
    row: &ReservationRow,
) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(concat!(
            "INSERT INTO reservations (",
            reservation_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(row.id)
        .bind(&row.status)
        .bind(&row.reference)
        .bind(row.version)
        .bind(row.expires_at)
        .bind(row.created_at)
        .bind(row.updated_at)
    )?;
    Ok(())
}

/// Inserts the lines of reservation `id`.
pub async fn insert_reservation_lines(
    tx: &mut WriteTx,
    id: Uuid,
    lines: &[LineRow],
) -> Result<(), DbError> {
    let rows: Vec<Vec<Arg>> = lines
        .iter()
        .map(|l| {
            vec![
                Arg::Uuid(id),
                Arg::Uuid(l.variant_id),
                Arg::Uuid(l.location_id),
                Arg::Int(l.quantity),
            ]
        })
        .collect();
    emporium_db::insert_rows(
        tx,
        "INSERT INTO reservation_lines (reservation_id, variant_id, location_id, quantity) VALUES",
        "",
        &rows,
    )
    .await?;
    Ok(())
}

/// Records that committed reservation `id` was restocked; `false` when it was before.
pub async fn insert_restock<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    reference: &str,
    now: OffsetDateTime,
) -> Result<bool, DbError> {
    let n = execute!(
        c,
        sqlx::query(
            "INSERT INTO reservation_restocks (reservation_id, reference, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (reservation_id) DO NOTHING"
        )
        .bind(id)
        .bind(reference)
        .bind(now)
    )?;
    Ok(n == 1)
}

/// The reservation with `id`, if any.
pub async fn find_reservation<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<ReservationRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE id = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

/// The ids of the reservations made for `reference`, oldest first.
pub async fn reservations_for<'c>(
    c: impl Into<Conn<'c>>,
    reference: &str,
) -> Result<Vec<Uuid>, DbError> {
    let rows: Vec<(Uuid,)> = run!(c, |c| sqlx::query_as(
        "SELECT id FROM reservations WHERE reference = $1 ORDER BY created_at, id"
    )
    .bind(reference)
    .fetch_all(c)
    .await
    .map_err(DbError::from))?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The lines of reservation `id`, by variant id (the lock order).
pub async fn reservation_lines<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Vec<LineRow>, DbError> {
    run!(c, |c| sqlx::query_as(
        "SELECT variant_id, location_id, quantity FROM reservation_lines \
         WHERE reservation_id = $1 ORDER BY variant_id"
    )
    .bind(id)
    .fetch_all(c)
    .await
    .map_err(DbError::from))
}

/// Ends an active reservation, when `ending`'s condition holds; the row after, or `None` when
/// the reservation is missing, no longer active, or the condition fails. Being one conditional
/// update, two concurrent endings of one reservation cannot both apply.
pub async fn end_reservation<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    ending: Ending,
    now: OffsetDateTime,
) -> Result<Option<ReservationRow>, DbError> {
    const RELEASE: &str = concat!(
        "UPDATE reservations SET status = 'released', version = version + 1, updated_at = $2 \
         WHERE id = $1 AND status = 'active' RETURNING ",
        reservation_columns!()
    );
    const COMMIT: &str = concat!(
        "UPDATE reservations SET status = 'committed', version = version + 1, updated_at = $2 \
         WHERE id = $1 AND status = 'active' AND expires_at > $3 RETURNING ",
        reservation_columns!()
    );
    const EXPIRE: &str = concat!(
        "UPDATE reservations SET status = 'expired', version = version + 1, updated_at = $2 \
         WHERE id = $1 AND status = 'active' AND expires_at <= $3 RETURNING ",
        reservation_columns!()
    );
    run!(c, |c| {
        let query = match ending {
            Ending::Release => sqlx::query_as(RELEASE).bind(id).bind(now),
            Ending::Commit { now_floor } => {
                sqlx::query_as(COMMIT).bind(id).bind(now).bind(now_floor)
            }
            Ending::Expire { now_floor } => {
                sqlx::query_as(EXPIRE).bind(id).bind(now).bind(now_floor)
            }
        };
        query.fetch_optional(c).await.map_err(DbError::from)
    })
}

/// Ids of active reservations whose time is up at the whole-second instant `now_floor`, after
/// `after` in id order.
pub async fn expired_reservations<'c>(
    c: impl Into<Conn<'c>>,
    now_floor: OffsetDateTime,
    after: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>, DbError> {
    run!(c, |c| sqlx::query_scalar(
        "SELECT id FROM reservations \
         WHERE status = 'active' AND expires_at <= $1 AND id > $2 ORDER BY id LIMIT $3"
    )
    .bind(now_floor)
    .bind(after)
    .bind(limit)
    .fetch_all(c)
    .await
    .map_err(DbError::from))
}
