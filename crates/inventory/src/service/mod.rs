//! Inventory's use cases: validate, run one transaction (stock change, ledger row and outbox
//! events together), return plain data.
//!
//! Lock order: a transaction that changes stock takes its variants' locks in variant id order
//! (`store::lock_variant` one by one, or `store::lock_variants` all at once), and one that ends a reservation first claims the reservation row
//! (`store::end_reservation`) and only then takes variant locks. No transaction holds a variant
//! lock while waiting for a reservation row, so none waits in a cycle.

mod reservations;
mod stock;

use std::sync::Arc;

use emporium_db::{Db, WriteTx};
use emporium_kernel::ids::{LocationId, ReservationId, VariantId};
use emporium_kernel::{Clock, Cursor};
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::api::{
    Availability, InventoryApi, LedgerEntry, Location, Page, Reservation, ReservationLine,
    ReservationStatus, ReserveLine, StockLevel,
};
use crate::domain::LedgerEntryId;
use crate::error::InventoryError;
use crate::events;
use crate::expiry::ExpirySweeps;
use crate::store::{self, LedgerRow, LevelRow, LineRow, LocationRow, ReservationRow};

/// The largest page a list returns.
pub const MAX_PAGE: u32 = 200;

/// The most variants one availability question may name.
pub const MAX_AVAILABILITY_VARIANTS: usize = 1000;

/// The actor of changes nobody asked for (expiry).
pub const SYSTEM_ACTOR: &str = "system";

/// The ledger reason of a level set without one.
pub const DEFAULT_SET_REASON: &str = "set";

/// Create a stock location.
#[derive(Debug, Clone)]
pub struct CreateLocation {
    pub code: String,
    pub name: String,
}

/// Change a stock location; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UpdateLocation {
    pub code: Option<String>,
    pub name: Option<String>,
}

/// Set the absolute level of a variant at a location.
#[derive(Debug, Clone)]
pub struct SetLevel {
    /// Units physically there; not below what is reserved.
    pub on_hand: i64,
    /// Why, for the ledger; `set` when absent.
    pub reason: Option<String>,
}

/// Add to or take from the level of a variant at a location.
#[derive(Debug, Clone)]
pub struct AdjustLevel {
    /// Units added (positive) or removed (negative); never zero.
    pub delta: i64,
    /// Why, for the ledger.
    pub reason: String,
}

/// The inventory service: every use case of the context.
pub struct InventoryService {
    db: Db,
    clock: Arc<dyn Clock>,
    // Published by the expiry loop (`crate::expiry::run_expiry`) after each pass.
    expiry_sweeps: watch::Sender<ExpirySweeps>,
}

/// One change of one stock level, for the ledger and the `inventory.stock_changed` event.
struct StockMove<'a> {
    level: &'a LevelRow,
    delta_on_hand: i64,
    delta_reserved: i64,
    reason: &'a str,
    actor: &'a str,
    reservation: Option<Uuid>,
    /// The variant's `(on_hand, reserved)` after the move, when the statement that made it
    /// returned them.
    totals_after: Option<(i64, i64)>,
}

/// Units of one reservation sold at a level, as one part of a set-wise commit.
struct Sale<'a> {
    reservation: Uuid,
    actor: &'a str,
    quantity: i64,
}

fn location_of(row: &LocationRow) -> Location {
    Location {
        id: LocationId(row.id),
        code: row.code.clone(),
        name: row.name.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn level_of(row: &LevelRow) -> StockLevel {
    StockLevel {
        variant_id: VariantId(row.variant_id),
        location_id: LocationId(row.location_id),
        on_hand: row.on_hand,
        reserved: row.reserved,
        available: row.on_hand - row.reserved,
        updated_at: row.updated_at,
    }
}

fn entry_of(row: &LedgerRow) -> LedgerEntry {
    LedgerEntry {
        id: LedgerEntryId(row.id),
        variant_id: VariantId(row.variant_id),
        location_id: LocationId(row.location_id),
        delta_on_hand: row.delta_on_hand,
        delta_reserved: row.delta_reserved,
        on_hand_after: row.on_hand_after,
        reserved_after: row.reserved_after,
        reason: row.reason.clone(),
        actor: row.actor.clone(),
        reservation_id: row.reservation_id.map(ReservationId),
        created_at: row.created_at,
    }
}

fn lines_of(lines: &[LineRow]) -> Vec<ReservationLine> {
    lines
        .iter()
        .map(|l| ReservationLine {
            variant_id: VariantId(l.variant_id),
            location_id: LocationId(l.location_id),
            quantity: l.quantity,
        })
        .collect()
}

fn reservation_of(row: &ReservationRow, lines: &[LineRow]) -> Result<Reservation, InventoryError> {
    let status = ReservationStatus::parse(&row.status)
        .ok_or(InventoryError::Inconsistent("unknown reservation status"))?;
    Ok(Reservation {
        id: ReservationId(row.id),
        status,
        reference: row.reference.clone(),
        lines: lines_of(lines),
        expires_at: row.expires_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn page_limit(limit: Option<u32>) -> Result<i64, InventoryError> {
    emporium_kernel::cursor::page_limit(limit, 50, MAX_PAGE)
        .map_err(|e| InventoryError::Invalid(vec![e]))
}

fn page_of<R, T, K: serde::Serialize>(
    rows: Vec<R>,
    limit: i64,
    key: impl Fn(&R) -> K,
    map: impl Fn(&R) -> T,
) -> Page<T> {
    let full = usize::try_from(limit).is_ok_and(|l| rows.len() == l);
    let next_cursor = if full {
        rows.last().map(|r| Cursor::encode(&key(r)).into_string())
    } else {
        None
    };
    Page {
        items: rows.iter().map(map).collect(),
        next_cursor,
    }
}

/// The stock moves of one transaction: each one's `inventory.stock_changed` event, and its
/// ledger row, kept until [`Moves::write`] appends them all with one statement. Each touched
/// variant's totals are read once: the caller holds the variant's lock for the whole
/// transaction, so only its own moves change them after that read.
#[derive(Default)]
#[must_use = "the ledger rows are written by `Moves::write`"]
struct Moves {
    ledger: Vec<LedgerRow>,
    totals: std::collections::HashMap<Uuid, (i64, i64)>,
}

impl Moves {
    /// Records one level change, made already in `tx`.
    async fn record(
        &mut self,
        tx: &mut WriteTx,
        m: StockMove<'_>,
        now: OffsetDateTime,
    ) -> Result<(), InventoryError> {
        let level = m.level;
        self.ledger.push(LedgerRow {
            id: LedgerEntryId::generate().0,
            variant_id: level.variant_id,
            location_id: level.location_id,
            delta_on_hand: m.delta_on_hand,
            delta_reserved: m.delta_reserved,
            on_hand_after: level.on_hand,
            reserved_after: level.reserved,
            reason: m.reason.to_owned(),
            actor: m.actor.to_owned(),
            reservation_id: m.reservation,
            created_at: now,
        });
        let (on_hand, reserved) = match (m.totals_after, self.totals.get(&level.variant_id)) {
            (Some(after), _) => after,
            (None, Some(&(on_hand, reserved))) => {
                (on_hand + m.delta_on_hand, reserved + m.delta_reserved)
            }
            // Read after the change: it includes this move.
            (None, None) => store::variant_totals(&mut *tx, level.variant_id).await?,
        };
        self.record_level(tx, level, (on_hand, reserved), m.reason, now)
            .await
    }

    /// Records one update of a level that sold several reservations' units at once (`taken`,
    /// after the update, with the variant's other locations): a ledger row per sale, each with
    /// the level as it stood after that sale, and one `inventory.stock_changed` for the level.
    async fn record_sales(
        &mut self,
        tx: &mut WriteTx,
        taken: &store::TakenLevel,
        sales: &[Sale<'_>],
        now: OffsetDateTime,
    ) -> Result<(), InventoryError> {
        let level = &taken.level;
        let sold: i64 = sales.iter().map(|s| s.quantity).sum();
        let (mut on_hand, mut reserved) = (level.on_hand + sold, level.reserved + sold);
        for sale in sales {
            on_hand -= sale.quantity;
            reserved -= sale.quantity;
            self.ledger.push(LedgerRow {
                id: LedgerEntryId::generate().0,
                variant_id: level.variant_id,
                location_id: level.location_id,
                delta_on_hand: -sale.quantity,
                delta_reserved: -sale.quantity,
                on_hand_after: on_hand,
                reserved_after: reserved,
                reason: "committed".to_owned(),
                actor: sale.actor.to_owned(),
                reservation_id: Some(sale.reservation),
                created_at: now,
            });
        }
        self.record_level(tx, level, taken.variant_totals(), "committed", now)
            .await?;
        Ok(())
    }

    /// Keeps the variant's totals after a change of `level` and records its
    /// `inventory.stock_changed`.
    async fn record_level(
        &mut self,
        tx: &mut WriteTx,
        level: &LevelRow,
        (on_hand, reserved): (i64, i64),
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), InventoryError> {
        self.totals.insert(level.variant_id, (on_hand, reserved));
        let event = events::StockChanged {
            variant_id: VariantId(level.variant_id),
            location_id: LocationId(level.location_id),
            on_hand: level.on_hand,
            reserved: level.reserved,
            available: level.on_hand - level.reserved,
            variant_available: on_hand - reserved,
            reason: reason.to_owned(),
        };
        tx.record(&event, level.version, now).await?;
        Ok(())
    }

    /// Appends the ledger rows; call before committing `tx`.
    fn write(self, tx: &mut WriteTx) -> Result<(), InventoryError> {
        store::insert_ledger_rows(tx, &self.ledger)?;
        Ok(())
    }
}

impl InventoryService {
    /// Wires the service.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            expiry_sweeps: watch::Sender::new(ExpirySweeps::default()),
        }
    }

    /// The clock the service reads "now" from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Watches the expiry loop running on this service: the receiver sees the count of its
    /// finished passes change after each one, so a caller can await a pass instead of polling.
    pub fn expiry_sweeps(&self) -> watch::Receiver<ExpirySweeps> {
        self.expiry_sweeps.subscribe()
    }

    /// Publishes a finished expiry pass that expired `expired` reservations, or failed (`None`).
    pub(crate) fn publish_expiry_pass(&self, expired: Option<u64>) {
        // `send_modify` updates the value even while nobody watches.
        self.expiry_sweeps
            .send_modify(|sweeps| sweeps.record_pass(expired));
    }
}

#[async_trait::async_trait]
impl InventoryApi for InventoryService {
    async fn reserve(
        &self,
        lines: &[ReserveLine],
        ttl: time::Duration,
        reference: &str,
    ) -> Result<Reservation, InventoryError> {
        InventoryService::reserve(self, lines, ttl, reference).await
    }

    async fn release(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        InventoryService::release(self, id).await
    }

    async fn commit(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        InventoryService::commit(self, id).await
    }

    async fn commit_all(
        &self,
        ids: &[ReservationId],
    ) -> Result<Vec<Result<Reservation, InventoryError>>, InventoryError> {
        InventoryService::commit_all(self, ids).await
    }

    async fn get_reservation(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        InventoryService::get_reservation(self, id).await
    }

    async fn restock(&self, id: ReservationId, reason: &str) -> Result<bool, InventoryError> {
        InventoryService::restock(self, id, reason).await
    }

    async fn reservations_for(&self, reference: &str) -> Result<Vec<Reservation>, InventoryError> {
        InventoryService::reservations_for(self, reference).await
    }

    async fn availability(
        &self,
        variant_ids: &[VariantId],
    ) -> Result<Vec<Availability>, InventoryError> {
        InventoryService::availability(self, variant_ids).await
    }

    async fn release_expired(&self, now: OffsetDateTime) -> Result<u64, InventoryError> {
        InventoryService::release_expired(self, now).await
    }
}
