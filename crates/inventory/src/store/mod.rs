//! Inventory's SQL, and nothing else. Every function takes a connection: the writer's
//! transaction for writes, a reader for reads. Stock only ever moves by conditional updates whose
//! `WHERE` states the rule (enough available, not below reserved), never by read-then-write.

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

/// How an active reservation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Given back on request, whatever its expiry.
    Release,
    /// Turned into a sale; only while its time is not up at the given whole-second instant.
    Commit { now_floor: OffsetDateTime },
    /// Given back because its time is up at the given whole-second instant.
    Expire { now_floor: OffsetDateTime },
}

macro_rules! location_row {
    ($r:expr) => {
        LocationRow {
            id: $r.try_get("id")?,
            code: $r.try_get("code")?,
            name: $r.try_get("name")?,
            version: $r.try_get("version")?,
            created_at: $r.try_get("created_at")?,
            updated_at: $r.try_get("updated_at")?,
        }
    };
}

macro_rules! level_row {
    ($r:expr) => {
        LevelRow {
            variant_id: $r.try_get("variant_id")?,
            location_id: $r.try_get("location_id")?,
            on_hand: $r.try_get("on_hand")?,
            reserved: $r.try_get("reserved")?,
            version: $r.try_get("version")?,
            updated_at: $r.try_get("updated_at")?,
        }
    };
}

macro_rules! ledger_row {
    ($r:expr) => {
        LedgerRow {
            id: $r.try_get("id")?,
            variant_id: $r.try_get("variant_id")?,
            location_id: $r.try_get("location_id")?,
            delta_on_hand: $r.try_get("delta_on_hand")?,
            delta_reserved: $r.try_get("delta_reserved")?,
            on_hand_after: $r.try_get("on_hand_after")?,
            reserved_after: $r.try_get("reserved_after")?,
            reason: $r.try_get("reason")?,
            actor: $r.try_get("actor")?,
            reservation_id: $r.try_get("reservation_id")?,
            created_at: $r.try_get("created_at")?,
        }
    };
}

macro_rules! reservation_row {
    ($r:expr) => {
        ReservationRow {
            id: $r.try_get("id")?,
            status: $r.try_get("status")?,
            reference: $r.try_get("reference")?,
            version: $r.try_get("version")?,
            expires_at: $r.try_get("expires_at")?,
            created_at: $r.try_get("created_at")?,
            updated_at: $r.try_get("updated_at")?,
        }
    };
}

// The row macros above are in scope in these modules because they are declared after them.
mod levels;
mod locations;
mod reservations;

pub use levels::*;
pub use locations::*;
pub use reservations::*;
