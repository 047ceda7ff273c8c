//! Reservations and their lines.

use emporium_db::{Arg, Conn, DbError, Sql, WriteTx, execute, run};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Ending, HeldLine, LineRow, ReservationRow};

/// Ids per statement of the set-wise reads and updates.
const IDS_PER_STATEMENT: usize = 512;

/// The columns of [`ReservationRow`], in field order (a macro, so that `concat!` can use it).
macro_rules! reservation_columns {
    () => {
        "id, status, reference, version, expires_at, created_at, updated_at"
    };
}

/// Inserts a reservation and its lines, with `tx`'s commit.
pub fn insert_reservation(
    tx: &mut WriteTx,
    row: &ReservationRow,
    lines: &[LineRow],
) -> Result<(), DbError> {
    tx.write_at_commit(Sql::statement(
        concat!(
            "INSERT INTO reservations (",
            reservation_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ),
        vec![
            Arg::Uuid(row.id),
            Arg::Text(row.status.clone()),
            Arg::Text(row.reference.clone()),
            Arg::Int(row.version),
            Arg::Time(row.expires_at),
            Arg::Time(row.created_at),
            Arg::Time(row.updated_at),
        ],
    ));
    let rows: Vec<Vec<Arg>> = lines
        .iter()
        .map(|l| {
            vec![
                Arg::Uuid(row.id),
                Arg::Uuid(l.variant_id),
                Arg::Uuid(l.location_id),
                Arg::Int(l.quantity),
            ]
        })
        .collect();
    tx.insert_rows_at_commit(
        "INSERT INTO reservation_lines (reservation_id, variant_id, location_id, quantity) VALUES",
        "",
        rows,
    )
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
    const EXPIRE: &str = concat!(
        "UPDATE reservations SET status = 'expired', version = version + 1, updated_at = $2 \
         WHERE id = $1 AND status = 'active' AND expires_at <= $3 RETURNING ",
        reservation_columns!()
    );
    run!(c, |c| {
        let query = match ending {
            Ending::Release => sqlx::query_as(RELEASE).bind(id).bind(now),
            Ending::Expire { now_floor } => {
                sqlx::query_as(EXPIRE).bind(id).bind(now).bind(now_floor)
            }
        };
        query.fetch_optional(c).await.map_err(DbError::from)
    })
}

/// Commits, set-wise, every reservation of `ids` that is active and whose time is not up at
/// the whole-second instant `now_floor`; the rows after. The others are left as they are.
pub async fn commit_reservations(
    tx: &mut WriteTx,
    ids: &[Uuid],
    now: OffsetDateTime,
    now_floor: OffsetDateTime,
) -> Result<Vec<ReservationRow>, DbError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut sql = Sql::default();
        sql.push(
            "UPDATE reservations SET status = 'committed', version = version + 1, updated_at = ",
        )
        .bind(Arg::Time(now))
        .push(" WHERE status = 'active' AND expires_at > ")
        .bind(Arg::Time(now_floor))
        .push(" AND id IN (")
        .bind_in(chunk.iter().map(|id| Arg::Uuid(*id)))
        .push(concat!(") RETURNING ", reservation_columns!()));
        out.extend(sql.fetch_all::<ReservationRow>(&mut *tx).await?);
    }
    Ok(out)
}

/// The lines of the reservations `ids`, by variant, location and reservation: the lock order,
/// with each level's lines together.
pub async fn lines_of_reservations(
    tx: &mut WriteTx,
    ids: &[Uuid],
) -> Result<Vec<HeldLine>, DbError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut sql = Sql::default();
        sql.push(
            "SELECT reservation_id, variant_id, location_id, quantity FROM reservation_lines \
             WHERE reservation_id IN (",
        )
        .bind_in(chunk.iter().map(|id| Arg::Uuid(*id)))
        .push(")");
        out.extend(sql.fetch_all::<HeldLine>(&mut *tx).await?);
    }
    out.sort_by_key(|l| (l.variant_id, l.location_id, l.reservation_id));
    Ok(out)
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
