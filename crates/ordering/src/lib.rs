//! Ordering: the checkout saga and orders. An order's truth is its append-only event stream;
//! the `orders` table the API reads is a projection, rebuilt by
//! `emporium orders rebuild-projections`.

mod domain;
mod error;
mod restock;
mod routes;
mod saga;
mod service;
mod store;

pub use domain::{
    Change, MoneyAction, Order, OrderChanged, OrderEvent, OrderLine, OrderPlaced, OrderShipping,
    OrderStatus, PaymentStep, PendingPayment, apply, fold,
};
pub use error::OrderingError;
pub use restock::Restocker;
pub use routes::{ADMIN_RULES, ORDER_TOKEN_HEADER, OrderingState, router};
pub use saga::{
    CheckoutFailure, CheckoutOutcome, CheckoutRequest, CheckoutService, CheckoutState,
    PaymentChoice, PlacedOrder,
};
pub use service::{Action, OrderService, OrderSummary, SETTLE_RETRY_FIRST, SETTLE_RETRY_MAX};

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
        version: 20261201000200,
        description: "order payment pending",
        sqlite: include_str!("../migrations/sqlite/20261201000200_order_payment_pending.sql"),
        postgres: include_str!("../migrations/postgres/20261201000200_order_payment_pending.sql"),
    },
    emporium_db::Migration {
        version: 20261201230000,
        description: "checkouts by order",
        sqlite: include_str!("../migrations/sqlite/20261201230000_checkouts_by_order.sql"),
        postgres: include_str!("../migrations/postgres/20261201230000_checkouts_by_order.sql"),
    },
    emporium_db::Migration {
        version: 20261206000100,
        description: "orders status amounts",
        sqlite: include_str!("../migrations/sqlite/20261206000100_orders_status_amounts.sql"),
        postgres: include_str!("../migrations/postgres/20261206000100_orders_status_amounts.sql"),
    },
];
