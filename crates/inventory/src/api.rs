//! Inventory's boundary: the plain data it hands out and the trait other contexts call.

use emporium_kernel::ids::{LocationId, ReservationId, VariantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::LedgerEntryId;
use crate::error::InventoryError;

/// One line of a reservation request: how many units of a variant to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveLine {
    pub variant_id: VariantId,
    /// Units to hold; at least 1.
    pub quantity: i64,
}

/// Where a reservation stands. Only `active` holds stock; the other states are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Holding stock until it is committed, released or expires.
    Active,
    /// Turned into a sale: the units left the stock (`on_hand` went down).
    Committed,
    /// Given back before its expiry.
    Released,
    /// Given back because its time ran out.
    Expired,
}

impl ReservationStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "committed" => Some(Self::Committed),
            "released" => Some(Self::Released),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// One line of a reservation: the units of a variant held at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReservationLine {
    pub variant_id: VariantId,
    pub location_id: LocationId,
    pub quantity: i64,
}

/// A hold on stock for a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reservation {
    pub id: ReservationId,
    pub status: ReservationStatus,
    /// What the hold is for, e.g. a cart or order id.
    pub reference: String,
    /// One line per variant, in variant id order.
    pub lines: Vec<ReservationLine>,
    /// When an active reservation stops holding stock (whole seconds).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// A line a reservation could not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    pub variant_id: VariantId,
    /// Units asked for (lines of the same variant merged).
    pub requested: i64,
    /// The most units one line of this variant could hold right now: the largest availability at
    /// a single location, since a line is served from one location.
    pub available: i64,
}

/// Stock of a variant summed over every location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Availability {
    pub variant_id: VariantId,
    pub on_hand: i64,
    pub reserved: i64,
    /// `on_hand - reserved`: what can still be sold.
    pub available: i64,
}

/// A place stock is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    pub id: LocationId,
    /// Short unique name: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
    pub code: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// Stock of one variant at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockLevel {
    pub variant_id: VariantId,
    pub location_id: LocationId,
    /// Units physically there.
    pub on_hand: i64,
    /// Units held by active reservations.
    pub reserved: i64,
    /// `on_hand - reserved`.
    pub available: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// Stock of one variant: the totals and the level at each location that has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VariantStock {
    pub variant_id: VariantId,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    /// One entry per location holding a level for the variant, by location id.
    pub locations: Vec<StockLevel>,
}

/// One change of a stock level, as kept in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub id: LedgerEntryId,
    pub variant_id: VariantId,
    pub location_id: LocationId,
    pub delta_on_hand: i64,
    pub delta_reserved: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    /// Why: the staff's reason, or `reserved`, `released`, `committed`, `expired`.
    pub reason: String,
    /// Who: a staff subject (`usr_…`), an API client, `system`, or a reservation's reference.
    pub actor: String,
    /// The reservation behind the change, if any.
    #[schema(required = true)]
    pub reservation_id: Option<ReservationId>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// One page of a list, with the cursor of the next page: the kernel's, so the OpenAPI document
/// has one `Page` schema.
pub use emporium_kernel::Page;

/// What other contexts may ask of inventory.
#[async_trait::async_trait]
pub trait InventoryApi: Send + Sync {
    /// Holds every line or none, each line from one location with enough available stock, for
    /// `ttl`. Fails with `OutOfStock` listing every line that cannot be served, or `Invalid`
    /// (pointers `/lines/{i}/quantity`, `/lines`, `/reference`, `/ttl`).
    async fn reserve(
        &self,
        lines: &[ReserveLine],
        ttl: time::Duration,
        reference: &str,
    ) -> Result<Reservation, InventoryError>;

    /// Gives the held units back. Releasing a released or expired reservation changes nothing;
    /// a committed one is `ReservationCommitted`.
    async fn release(&self, id: ReservationId) -> Result<Reservation, InventoryError>;

    /// Turns the hold into a sale: `on_hand` and `reserved` both go down. Committing twice
    /// changes nothing; a released or expired reservation (also one whose time ran out but was
    /// not swept yet) is `ReservationExpired`.
    async fn commit(&self, id: ReservationId) -> Result<Reservation, InventoryError>;

    /// Commits each of `ids` as [`InventoryApi::commit`] does, together: the outcome of each,
    /// in order. `Err` (a storage failure) means none was committed.
    async fn commit_all(
        &self,
        ids: &[ReservationId],
    ) -> Result<Vec<Result<Reservation, InventoryError>>, InventoryError>;

    /// Puts the units of committed reservation `id` back on hand where they were taken from
    /// (its order was cancelled), with `reason` in the ledger. Restocking twice changes nothing
    /// (`Ok(false)`); a reservation not committed is `ReservationNotCommitted`.
    async fn restock(&self, id: ReservationId, reason: &str) -> Result<bool, InventoryError>;

    /// Every reservation made for `reference`, oldest first (what a resumed checkout uses to
    /// find a hold it made but could not record).
    async fn reservations_for(&self, reference: &str) -> Result<Vec<Reservation>, InventoryError>;

    /// The reservation with `id`, or `ReservationNotFound`.
    async fn get_reservation(&self, id: ReservationId) -> Result<Reservation, InventoryError>;

    /// Stock of each variant summed over every location, in the order asked; a variant without
    /// stock anywhere has zeros.
    async fn availability(
        &self,
        variant_ids: &[VariantId],
    ) -> Result<Vec<Availability>, InventoryError>;

    /// Expires every active reservation whose time is up at `now`, giving its stock back.
    /// Returns how many were expired.
    async fn release_expired(&self, now: OffsetDateTime) -> Result<u64, InventoryError>;
}

/// What a bulk import of products asks of inventory: the location it stocks (made when
/// missing) and many levels at once. Implemented by the service and by its network client, so
/// an import or the demo data work wherever inventory runs.
#[async_trait::async_trait]
pub trait StockImport: Send + Sync {
    /// The id of the location with `code`, created with `name` (by `by`) when there is none.
    async fn ensure_location(
        &self,
        code: &str,
        name: &str,
        by: &str,
    ) -> Result<LocationId, InventoryError>;

    /// Sets `on_hand` of each `(variant, units)` at `location`: per item, `Ok(true)` when the
    /// level changed, `Ok(false)` when it already had that value, or why it could not be set.
    /// `Err` (a storage failure, an unknown location) means none was set.
    async fn set_levels(
        &self,
        location: LocationId,
        items: &[(VariantId, i64)],
        reason: &str,
        by: &str,
    ) -> Result<Vec<Result<bool, InventoryError>>, InventoryError>;
}
