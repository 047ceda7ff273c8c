//! Inventory's events, recorded in the outbox with the change they describe. Payloads never deny
//! unknown fields, so older consumers keep reading newer events.

use emporium_kernel::Event;
use emporium_kernel::ids::{LocationId, ReservationId, VariantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api::ReservationLine;

/// A stock level changed (set, adjusted, reserved, released, committed, expired). The aggregate
/// is the variant; the sequence is the level's version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockChanged {
    pub variant_id: VariantId,
    pub location_id: LocationId,
    pub on_hand: i64,
    pub reserved: i64,
    /// `on_hand - reserved` at this location.
    pub available: i64,
    /// The sum of `available` over every location of the variant: what the storefront shows.
    pub variant_available: i64,
    pub reason: String,
}

impl Event for StockChanged {
    const TYPE: &'static str = "inventory.stock_changed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.variant_id.to_string()
    }
}

/// A stock location was created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocationCreated {
    pub id: LocationId,
    pub code: String,
    pub name: String,
    /// Who created it: a staff subject.
    pub created_by: String,
}

impl Event for LocationCreated {
    const TYPE: &'static str = "inventory.location_created";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}

/// A stock location's code or name changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocationUpdated {
    pub id: LocationId,
    pub code: String,
    pub name: String,
    /// Who changed it: a staff subject.
    pub updated_by: String,
}

impl Event for LocationUpdated {
    const TYPE: &'static str = "inventory.location_updated";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}

/// Declares a reservation event: the reservation's id, reference and lines.
macro_rules! reservation_event {
    ($(#[$meta:meta])* $name:ident, $type:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub struct $name {
            pub id: ReservationId,
            pub reference: String,
            pub lines: Vec<ReservationLine>,
            /// When the reservation stops (or stopped) holding stock.
            #[serde(with = "time::serde::rfc3339")]
            pub expires_at: OffsetDateTime,
        }

        impl Event for $name {
            const TYPE: &'static str = $type;
            const VERSION: i32 = 1;
            fn aggregate_id(&self) -> String {
                self.id.to_string()
            }
        }
    };
}

reservation_event!(
    /// Stock was reserved for a checkout (sequence 1 of the reservation).
    ReservationCreated,
    "inventory.reservation_created"
);
reservation_event!(
    /// A reservation became a sale: its units left the stock.
    ReservationCommitted,
    "inventory.reservation_committed"
);
reservation_event!(
    /// A reservation was given back before its expiry.
    ReservationReleased,
    "inventory.reservation_released"
);
reservation_event!(
    /// A reservation's time ran out and its units were given back.
    ReservationExpired,
    "inventory.reservation_expired"
);
