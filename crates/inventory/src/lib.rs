//! Inventory: stock locations, stock levels per variant and location, reservations with expiry,
//! and the ledger of every stock change.
//!
//! Stock is keyed by the catalog's variant id; inventory never reads catalog tables. Stock moves
//! only by conditional updates (`… WHERE on_hand - reserved >= $qty`), each with a ledger row and
//! an `inventory.stock_changed` event in the same transaction. Other contexts use it through
//! [`InventoryApi`].

mod api;
mod domain;
mod error;
pub mod events;
mod expiry;
mod internal;
mod routes;
mod service;
mod store;

pub use api::{
    Availability, InventoryApi, LedgerEntry, Location, Page, Reservation, ReservationLine,
    ReservationStatus, ReserveLine, Shortage, StockImport, StockLevel, VariantStock,
};
pub use error::InventoryError;
pub use expiry::{ExpirySweeps, run_expiry};
pub use internal::{InventoryClient, internal_router};
pub use routes::{ADMIN_RULES, router};
pub use service::{AdjustLevel, CreateLocation, InventoryService, SetLevel, UpdateLocation};

/// Inventory's schema migrations.
pub const MIGRATIONS: &[emporium_db::Migration] = &[
    emporium_db::Migration {
        version: 20261124000200,
        description: "inventory",
        sqlite: include_str!("../migrations/sqlite/20261124000200_inventory.sql"),
        postgres: include_str!("../migrations/postgres/20261124000200_inventory.sql"),
    },
    emporium_db::Migration {
        version: 20261126000400,
        description: "reservation reference",
        sqlite: include_str!("../migrations/sqlite/20261126000400_reservation_reference.sql"),
        postgres: include_str!("../migrations/postgres/20261126000400_reservation_reference.sql"),
    },
    emporium_db::Migration {
        version: 20261126000700,
        description: "reservation restocks",
        sqlite: include_str!("../migrations/sqlite/20261126000700_reservation_restocks.sql"),
        postgres: include_str!("../migrations/postgres/20261126000700_reservation_restocks.sql"),
    },
];
