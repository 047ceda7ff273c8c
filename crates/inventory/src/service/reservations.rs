//! Reservations: holding stock all-or-nothing, releasing, committing and expiring holds.

use std::collections::HashMap;

use emporium_db::WriteTx;
use emporium_kernel::Violations;
use emporium_kernel::ids::{ReservationId, VariantId};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    InventoryService, MAX_AVAILABILITY_VARIANTS, Moves, SYSTEM_ACTOR, Sale, StockMove, lines_of,
    reservation_of,
};
use crate::api::{Availability, Reservation, ReservationStatus, ReserveLine, Shortage};
use crate::domain;
use crate::error::InventoryError;
use crate::events;
use crate::store::{self, Ending, LineRow, ReservationRow};

/// How many expired reservations the sweeper reads at a time.
const EXPIRY_BATCH: i64 = 200;

/// Gives every unit held by the reservation `row` has just ended back to the available stock
/// (only `reserved` goes down), with a ledger row and an event per line. Returns the lines.
async fn give_back_lines(
    tx: &mut WriteTx,
    moves: &mut Moves,
    row: &ReservationRow,
    reason: &str,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<LineRow>, InventoryError> {
    let lines = store::reservation_lines(&mut *tx, row.id).await?;
    for line in &lines {
        store::lock_variant(&mut *tx, line.variant_id).await?;
        let (variant, location, quantity) = (line.variant_id, line.location_id, line.quantity);
        let level = store::release_at(&mut *tx, variant, location, quantity, now)
            .await?
            .ok_or(InventoryError::Inconsistent(
                "a reservation holds more than its level has reserved",
            ))?;
        let change = StockMove {
            level: &level,
            delta_on_hand: 0,
            delta_reserved: -quantity,
            reason,
            actor,
            totals_after: None,
            reservation: Some(row.id),
        };
        moves.record(tx, change, now).await?;
    }
    Ok(lines)
}

/// Expires reservation `id` when it is active and its time is up at `now`, giving its stock back.
/// Returns whether it did.
async fn expire_in(
    tx: &mut WriteTx,
    moves: &mut Moves,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, InventoryError> {
    let ending = Ending::Expire {
        now_floor: domain::floor_to_second(now),
    };
    let Some(row) = store::end_reservation(&mut *tx, id, ending, now).await? else {
        return Ok(false);
    };
    let lines = give_back_lines(tx, moves, &row, "expired", SYSTEM_ACTOR, now).await?;
    let event = events::ReservationExpired {
        id: ReservationId(row.id),
        reference: row.reference.clone(),
        lines: lines_of(&lines),
        expires_at: row.expires_at,
    };
    tx.record(&event, row.version, now).await?;
    Ok(true)
}

/// Commits the reservations `ids` in `tx` (see
/// [`InventoryApi::commit_all`](crate::InventoryApi::commit_all)); the outcome of each, in
/// order. The active holds are committed set-wise: one update ends them all, one read finds
/// their lines, and each stock level they hold units at changes once, by their sum (a ledger row
/// per line, one `inventory.stock_changed` per level). A hold whose time is up but that the
/// sweeper has not expired yet is expired here (in `tx`, which the caller commits) rather than
/// sold: `ReservationExpired`.
async fn commit_in(
    tx: &mut WriteTx,
    moves: &mut Moves,
    ids: &[ReservationId],
    now: OffsetDateTime,
) -> Result<Vec<Result<Reservation, InventoryError>>, InventoryError> {
    let now_floor = domain::floor_to_second(now);
    let wanted: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    let ended = store::commit_reservations(&mut *tx, &wanted, now, now_floor).await?;
    let ended_ids: Vec<Uuid> = ended.iter().map(|r| r.id).collect();
    let held = store::lines_of_reservations(&mut *tx, &ended_ids).await?;
    let ended: HashMap<Uuid, ReservationRow> = ended.into_iter().map(|r| (r.id, r)).collect();
    let variants: Vec<Uuid> = held.iter().map(|l| l.variant_id).collect();
    store::lock_variants(&mut *tx, &variants).await?;
    // `held` is in variant order, each level's lines together. Each level changes once, by
    // its lines' sum: one statement for the first location of every variant, one more for
    // each further location a variant sells at (a statement takes a variant once).
    let levels: Vec<&[store::HeldLine]> = held
        .chunk_by(|a, b| (a.variant_id, a.location_id) == (b.variant_id, b.location_id))
        .collect();
    let mut rounds: Vec<Vec<(Uuid, Uuid, i64)>> = Vec::new();
    let mut round = 0;
    for (i, lines) in levels.iter().enumerate() {
        let first = lines[0];
        round = match i.checked_sub(1).map(|p| levels[p][0].variant_id) {
            Some(previous) if previous == first.variant_id => round + 1,
            _ => 0,
        };
        if rounds.len() == round {
            rounds.push(Vec::new());
        }
        let quantity = lines.iter().map(|l| l.quantity).sum();
        rounds[round].push((first.variant_id, first.location_id, quantity));
    }
    let mut taken: HashMap<(Uuid, Uuid), store::TakenLevel> = HashMap::new();
    for sales in &rounds {
        let sold = store::sell_all(&mut *tx, sales, now).await?;
        if sold.len() != sales.len() {
            return Err(InventoryError::Inconsistent(
                "reservations hold more than their level has reserved",
            ));
        }
        taken.extend(
            sold.into_iter()
                .map(|t| ((t.level.variant_id, t.level.location_id), t)),
        );
    }
    for level_lines in levels {
        let first = level_lines[0];
        let taken = taken.get(&(first.variant_id, first.location_id)).ok_or(
            InventoryError::Inconsistent("a sold level is not one of the lines"),
        )?;
        let sales: Vec<Sale<'_>> = level_lines
            .iter()
            .map(|l| Sale {
                reservation: l.reservation_id,
                actor: ended
                    .get(&l.reservation_id)
                    .map_or("", |r| r.reference.as_str()),
                quantity: l.quantity,
            })
            .collect();
        moves.record_sales(tx, taken, &sales, now).await?;
    }
    let mut lines_by_reservation: HashMap<Uuid, Vec<LineRow>> = HashMap::new();
    for l in &held {
        lines_by_reservation
            .entry(l.reservation_id)
            .or_default()
            .push(LineRow {
                variant_id: l.variant_id,
                location_id: l.location_id,
                quantity: l.quantity,
            });
    }
    let mut outcomes = Vec::with_capacity(ids.len());
    let mut announced = std::collections::HashSet::new();
    for id in ids {
        let Some(row) = ended.get(&id.0) else {
            match commit_one_not_active(tx, moves, *id, now).await {
                Err(e @ (InventoryError::Storage(_) | InventoryError::Inconsistent(_))) => {
                    return Err(e);
                }
                outcome => outcomes.push(outcome),
            }
            continue;
        };
        let lines = lines_by_reservation
            .get(&id.0)
            .map_or(&[][..], Vec::as_slice);
        if announced.insert(id.0) {
            let event = events::ReservationCommitted {
                id: *id,
                reference: row.reference.clone(),
                lines: lines_of(lines),
                expires_at: row.expires_at,
            };
            tx.record(&event, row.version, now).await?;
        }
        outcomes.push(reservation_of(row, lines));
    }
    Ok(outcomes)
}

/// The outcome of committing reservation `id`, which was not an active hold with time left:
/// committed before (the same answer again), expired now or before, or unknown.
async fn commit_one_not_active(
    tx: &mut WriteTx,
    moves: &mut Moves,
    id: ReservationId,
    now: OffsetDateTime,
) -> Result<Reservation, InventoryError> {
    let row = store::find_reservation(&mut *tx, id.0)
        .await?
        .ok_or(InventoryError::ReservationNotFound)?;
    match ReservationStatus::parse(&row.status) {
        Some(ReservationStatus::Committed) => {
            let lines = store::reservation_lines(&mut *tx, id.0).await?;
            reservation_of(&row, &lines)
        }
        Some(ReservationStatus::Active) => {
            expire_in(tx, moves, id.0, now).await?;
            Err(InventoryError::ReservationExpired)
        }
        _ => Err(InventoryError::ReservationExpired),
    }
}

/// Rolls back a transaction that made no change worth keeping.
async fn abandon(tx: WriteTx) {
    if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "rollback failed; the connection discards the transaction");
    }
}

impl InventoryService {
    // ---- Reservations ------------------------------------------------------------------------

    /// See [`InventoryApi::reserve`].
    pub async fn reserve(
        &self,
        lines: &[ReserveLine],
        ttl: time::Duration,
        reference: &str,
    ) -> Result<Reservation, InventoryError> {
        let mut v = Violations::new();
        let merged = domain::merge_reserve_lines(lines, &mut v);
        let ttl = v.check("/ttl", domain::parse_ttl(ttl));
        let reference = v.check("/reference", domain::parse_text(reference));
        v.finish().map_err(InventoryError::Invalid)?;
        let (Some(ttl), Some(reference)) = (ttl, reference) else {
            return Err(InventoryError::Invalid(Vec::new()));
        };
        let now = self.clock.now();
        let row = ReservationRow {
            id: ReservationId::generate().0,
            status: ReservationStatus::Active.as_str().to_owned(),
            reference,
            version: 1,
            expires_at: domain::expiry_of(now, ttl),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin_write().await?;
        let variants: Vec<Uuid> = merged.keys().map(|v| v.0).collect();
        store::lock_variants(&mut tx, &variants).await?;
        let wanted: Vec<(Uuid, i64)> = merged.iter().map(|(v, q)| (v.0, *q)).collect();
        let held = store::reserve_best(&mut tx, &wanted, now).await?;
        let mut moves = Moves::default();
        let mut taken = Vec::with_capacity(merged.len());
        let mut shortages = Vec::new();
        if held.len() == merged.len() {
            // `merged` iterates in variant id order: the order of the lines and ledger rows.
            let mut held: HashMap<Uuid, store::TakenLevel> =
                held.into_iter().map(|t| (t.level.variant_id, t)).collect();
            for (&variant, &quantity) in &merged {
                let held = held.remove(&variant.0).ok_or(InventoryError::Inconsistent(
                    "a reserved level is not one of the lines",
                ))?;
                let level = &held.level;
                let change = StockMove {
                    level,
                    delta_on_hand: 0,
                    delta_reserved: quantity,
                    reason: "reserved",
                    actor: &row.reference,
                    reservation: Some(row.id),
                    totals_after: Some(held.variant_totals()),
                };
                moves.record(&mut tx, change, now).await?;
                taken.push(LineRow {
                    variant_id: variant.0,
                    location_id: level.location_id,
                    quantity,
                });
            }
        } else {
            // Some line found no location: name every short one (the update is rolled back).
            for (&variant, &quantity) in &merged {
                if held.iter().any(|t| t.level.variant_id == variant.0) {
                    continue;
                }
                let available = store::max_available(&mut tx, variant.0).await?;
                shortages.push(Shortage {
                    variant_id: variant,
                    requested: quantity,
                    available,
                });
            }
        }
        if !shortages.is_empty() {
            abandon(tx).await;
            return Err(InventoryError::OutOfStock { lines: shortages });
        }
        store::insert_reservation(&mut tx, &row, &taken)?;
        moves.write(&mut tx)?;
        let reservation = reservation_of(&row, &taken)?;
        let event = events::ReservationCreated {
            id: reservation.id,
            reference: row.reference.clone(),
            lines: reservation.lines.clone(),
            expires_at: row.expires_at,
        };
        tx.record(&event, row.version, now).await?;
        tx.commit().await?;
        Ok(reservation)
    }

    /// See [`InventoryApi::release`].
    pub async fn release(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        if let Some(row) = store::end_reservation(&mut tx, id.0, Ending::Release, now).await? {
            let reference = row.reference.clone();
            let mut moves = Moves::default();
            let lines =
                give_back_lines(&mut tx, &mut moves, &row, "released", &reference, now).await?;
            let event = events::ReservationReleased {
                id,
                reference,
                lines: lines_of(&lines),
                expires_at: row.expires_at,
            };
            tx.record(&event, row.version, now).await?;
            moves.write(&mut tx)?;
            tx.commit().await?;
            return reservation_of(&row, &lines);
        }
        let row = store::find_reservation(&mut tx, id.0)
            .await?
            .ok_or(InventoryError::ReservationNotFound)?;
        let lines = store::reservation_lines(&mut tx, id.0).await?;
        abandon(tx).await;
        match ReservationStatus::parse(&row.status) {
            Some(ReservationStatus::Released | ReservationStatus::Expired) => {
                reservation_of(&row, &lines)
            }
            Some(ReservationStatus::Committed) => Err(InventoryError::ReservationCommitted),
            _ => Err(InventoryError::Inconsistent(
                "an active reservation could not be released",
            )),
        }
    }

    /// See [`InventoryApi::commit`].
    pub async fn commit(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        self.commit_all(&[id])
            .await?
            .pop()
            .unwrap_or(Err(InventoryError::ReservationNotFound))
    }

    /// See [`InventoryApi::commit_all`].
    pub async fn commit_all(
        &self,
        ids: &[ReservationId],
    ) -> Result<Vec<Result<Reservation, InventoryError>>, InventoryError> {
        let mut tx = self.db.begin_write().await?;
        let mut moves = Moves::default();
        // A storage failure half-way keeps nothing (the transaction is dropped). Every other
        // outcome is kept, also `ReservationExpired`: expiring a hold whose time was up.
        let outcomes = commit_in(&mut tx, &mut moves, ids, self.clock.now()).await?;
        moves.write(&mut tx)?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// See [`InventoryApi::restock`].
    pub async fn restock(&self, id: ReservationId, reason: &str) -> Result<bool, InventoryError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = store::find_reservation(&mut tx, id.0)
            .await?
            .ok_or(InventoryError::ReservationNotFound)?;
        if ReservationStatus::parse(&row.status) != Some(ReservationStatus::Committed) {
            abandon(tx).await;
            return Err(InventoryError::ReservationNotCommitted);
        }
        if !store::insert_restock(&mut tx, id.0, &row.reference, now).await? {
            abandon(tx).await;
            return Ok(false);
        }
        let mut moves = Moves::default();
        // In variant id order: the lock order.
        for line in store::reservation_lines(&mut tx, id.0).await? {
            store::lock_variant(&mut tx, line.variant_id).await?;
            let level = store::restock_at(
                &mut tx,
                line.variant_id,
                line.location_id,
                line.quantity,
                now,
            )
            .await?
            .ok_or(InventoryError::Inconsistent(
                "the stock level a reservation took from is gone",
            ))?;
            let change = StockMove {
                level: &level,
                delta_on_hand: line.quantity,
                delta_reserved: 0,
                reason,
                actor: &row.reference,
                totals_after: None,
                reservation: Some(row.id),
            };
            moves.record(&mut tx, change, now).await?;
        }
        moves.write(&mut tx)?;
        tx.commit().await?;
        Ok(true)
    }

    /// See [`InventoryApi::get_reservation`].
    pub async fn get_reservation(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        let mut conn = self.db.read().await?;
        let row = store::find_reservation(&mut conn, id.0)
            .await?
            .ok_or(InventoryError::ReservationNotFound)?;
        let lines = store::reservation_lines(&mut conn, id.0).await?;
        reservation_of(&row, &lines)
    }

    /// See [`InventoryApi::reservations_for`].
    pub async fn reservations_for(
        &self,
        reference: &str,
    ) -> Result<Vec<Reservation>, InventoryError> {
        let mut conn = self.db.read().await?;
        let mut out = Vec::new();
        for id in store::reservations_for(&mut conn, reference).await? {
            if let Some(row) = store::find_reservation(&mut conn, id).await? {
                let lines = store::reservation_lines(&mut conn, id).await?;
                out.push(reservation_of(&row, &lines)?);
            }
        }
        Ok(out)
    }

    /// See [`InventoryApi::availability`].
    pub async fn availability(
        &self,
        variant_ids: &[VariantId],
    ) -> Result<Vec<Availability>, InventoryError> {
        if variant_ids.len() > MAX_AVAILABILITY_VARIANTS {
            return Err(InventoryError::invalid(
                "/variant_ids",
                "too_long",
                format!("at most {MAX_AVAILABILITY_VARIANTS} variants"),
            ));
        }
        let mut conn = self.db.read().await?;
        let mut out = Vec::with_capacity(variant_ids.len());
        for &variant_id in variant_ids {
            let (on_hand, reserved) = store::variant_totals(&mut conn, variant_id.0).await?;
            out.push(Availability {
                variant_id,
                on_hand,
                reserved,
                available: on_hand - reserved,
            });
        }
        Ok(out)
    }

    /// See [`InventoryApi::release_expired`]. Each reservation ends in its own transaction, so
    /// a sweep interrupted half-way leaves every reservation either expired or untouched.
    pub async fn release_expired(&self, now: OffsetDateTime) -> Result<u64, InventoryError> {
        let now_floor = domain::floor_to_second(now);
        let mut after = Uuid::nil();
        let mut expired = 0;
        loop {
            let ids = {
                let mut conn = self.db.read().await?;
                store::expired_reservations(&mut conn, now_floor, after, EXPIRY_BATCH).await?
            };
            for &id in &ids {
                let mut tx = self.db.begin_write().await?;
                let mut moves = Moves::default();
                if expire_in(&mut tx, &mut moves, id, now).await? {
                    moves.write(&mut tx)?;
                    tx.commit().await?;
                    expired += 1;
                } else {
                    // Committed or released meanwhile.
                    abandon(tx).await;
                }
            }
            match ids.last() {
                Some(&last) if usize::try_from(EXPIRY_BATCH).is_ok_and(|b| ids.len() == b) => {
                    after = last;
                }
                _ => break,
            }
        }
        Ok(expired)
    }
}
