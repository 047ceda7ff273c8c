//! Payments: intents to authorise, capture, void and refund an amount, behind a provider trait
//! with two built-in providers, `manual` (offline payment) and `test` (outcomes chosen by the
//! payment token). See [`provider`] for adding a real one.

mod api;
pub mod events;
pub mod provider;
mod service;

pub use api::PaymentsApi;
pub use provider::{
    Authorization, ManualProvider, PaymentProvider, ProviderError, TEST_TOKENS, TestProvider,
};
pub use service::{
    OpenedPayment, Operation, PaymentError, PaymentIntent, PaymentService, PaymentStatus,
};

/// Payments' schema migrations.
pub const MIGRATIONS: &[emporium_db::Migration] = &[
    emporium_db::Migration {
        version: 20261126000300,
        description: "payments",
        sqlite: include_str!("../migrations/sqlite/20261126000300_payments.sql"),
        postgres: include_str!("../migrations/postgres/20261126000300_payments.sql"),
    },
    emporium_db::Migration {
        version: 20261201000100,
        description: "payment operations",
        sqlite: include_str!("../migrations/sqlite/20261201000100_payment_operations.sql"),
        postgres: include_str!("../migrations/postgres/20261201000100_payment_operations.sql"),
    },
];
