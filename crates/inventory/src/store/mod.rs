//! Inventory's SQL, and nothing else. Every function takes a connection: the writer's
//! transaction for writes, a reader for reads. Stock only ever moves by conditional updates whose
//! `WHERE` states the rule (enough available, not below reserved), never by read-then-write.

use emporium_db::from_row;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stock location row.
#[derive(Debug, Clone)]
pub struct LocationRow {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    /// Bumped by every change.
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A stock level row.
#[derive(Debug, Clone)]
pub struct LevelRow {
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
    /// Bumped by every change; the sequence of the level's events.
    pub version: i64,
    pub updated_at: OffsetDateTime,
}

/// A stock ledger row.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub id: Uuid,
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub delta_on_hand: i64,
    pub delta_reserved: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub reason: String,
    pub actor: String,
    pub reservation_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

/// A reservation row.
#[derive(Debug, Clone)]
pub struct ReservationRow {
    pub id: Uuid,
    pub status: String,
    pub reference: String,
    /// Bumped by every change; the sequence of the reservation's events.
    pub version: i64,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A reservation line row.
#[derive(Debug, Clone, Copy)]
pub struct LineRow {
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub quantity: i64,
}

/// A reservation line with its reservation's id.
#[derive(Debug, Clone, Copy)]
pub struct HeldLine {
    pub reservation_id: Uuid,
    pub variant_id: Uuid,
    pub location_id: Uuid,
    pub quantity: i64,
}

/// How an active reservation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Given back on request, whatever its expiry.
    Release,
    /// Given back because its time is up at the given whole-second instant.
    Expire { now_floor: OffsetDateTime },
}

from_row!(LocationRow {
    id,
    code,
    name,
    version,
    created_at,
    updated_at,
});
from_row!(LevelRow {
    variant_id,
    location_id,
    on_hand,
    reserved,
    version,
    updated_at,
});
from_row!(LedgerRow {
    id,
    variant_id,
    location_id,
    delta_on_hand,
    delta_reserved,
    on_hand_after,
    reserved_after,
    reason,
    actor,
    reservation_id,
    created_at,
});
from_row!(ReservationRow {
    id,
    status,
    reference,
    version,
    expires_at,
    created_at,
    updated_at,
});
from_row!(HeldLine {
    reservation_id,
    variant_id,
    location_id,
    quantity,
});
from_row!(LineRow {
    variant_id,
    location_id,
    quantity,
});

mod levels;
mod locations;
mod reservations;

pub use levels::*;
pub use locations::*;
pub use reservations::*;
