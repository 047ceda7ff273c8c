//! Ordering: the checkout saga and orders. An order's truth is its append-only event stream;
//! the `orders` table the API reads is a projection, rebuilt by
//! `emporium orders rebuild-projections`.

pub mod checkout;
pub mod error;
pub mod order;
pub mod orders;
pub mod restock;
pub mod routes;
pub mod store;

pub use checkout::{
    CheckoutFailure, CheckoutOutcome, CheckoutRequest, CheckoutService, PaymentChoice, PlacedOrder,
};
pub use error::OrderingError;
pub use order::{Change, Order, OrderChanged, OrderLine, OrderPlaced, OrderStatus};
pub use orders::{Action, OrderService};
pub use restock::Restocker;
pub use routes::{ADMIN_RULES, ORDER_TOKEN_HEADER, OrderingState, router};

/// Ordering's schema migrations.
pub const MIGRATIONS: &[emporium_db::Migration] = &[
    emporium_db::Migration {
        version: 20261126000500,
        description: "ordering",
        sqlite: include_str!("../migrations/sqlite/20261126000500_ordering.sql"),
        postgres: include_str!("../migrations/postgres/20261126000500_ordering.sql"),
    },
    emporium_db::Migration {
        version: 20261126000600,
        description: "one checkout per cart",
        sqlite: include_str!("../migrations/sqlite/20261126000600_one_checkout_per_cart.sql"),
        postgres: include_str!("../migrations/postgres/20261126000600_one_checkout_per_cart.sql"),
    },
    emporium_db::Migration {
        version: 20261201230000,
        description: "checkouts by order",
        sqlite: include_str!("../migrations/sqlite/20261201230000_checkouts_by_order.sql"),
        postgres: include_str!("../migrations/postgres/20261201230000_checkouts_by_order.sql"),
    },
];
