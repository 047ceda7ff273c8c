//! The catalog: products, variants, options, prices, categories, collections and media, with the
//! staff API that changes them and the storefront API that reads them through a cache.

pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod listing;
pub mod media;
pub mod pages;
pub mod projection;
pub mod reads;
pub mod routes;
pub mod service;
pub mod store;

pub use api::{
    CatalogApi, Category, CategoryNode, CategoryTree, Collection, Product, ProductStatus,
    Purchasable, Variant,
};
pub use error::CatalogError;
pub use media::{MediaS3Config, MediaStore};
pub use reads::CatalogReads;
pub use routes::{ADMIN_RULES, CatalogState, router};
pub use service::CatalogService;

/// The catalog's schema.
pub const MIGRATIONS: &[emporium_db::Migration] = &[emporium_db::Migration {
    version: 20261124000100,
    description: "catalog",
    sqlite: include_str!("../migrations/sqlite/20261124000100_catalog.sql"),
    postgres: include_str!("../migrations/postgres/20261124000100_catalog.sql"),
}];
