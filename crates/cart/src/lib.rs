//! Carts: a guest's (opened by its token) or a customer's, their items checked against what
//! the catalog sells and inventory has, and their totals from pricing's quote.
//!
//! Cart reads the catalog through [`emporium_catalog::CatalogApi`], stock through
//! [`emporium_inventory::InventoryApi`] and prices through [`emporium_pricing::PricingService`];
//! it owns only its own tables. The checkout calls it through [`CartApi`].

mod api;
mod error;
mod routes;
mod service;
mod store;

pub use api::CartApi;
pub use error::CartError;
pub use routes::{CART_TOKEN_HEADER, router};
pub use service::{Access, Address, Cart, CartItem, CartService, CustomerGroups, OfferedShipping};

/// Cart's schema migrations.
pub const MIGRATIONS: &[emporium_db::Migration] = &[
    emporium_db::Migration {
        version: 20261126000200,
        description: "cart",
        sqlite: include_str!("../migrations/sqlite/20261126000200_cart.sql"),
        postgres: include_str!("../migrations/postgres/20261126000200_cart.sql"),
    },
    emporium_db::Migration {
        version: 20261126000900,
        description: "cart held by its checkout",
        sqlite: include_str!("../migrations/sqlite/20261126000900_cart_checkout.sql"),
        postgres: include_str!("../migrations/postgres/20261126000900_cart_checkout.sql"),
    },
];
