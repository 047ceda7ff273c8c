//! The catalog: products, variants, options, prices, categories, collections and media, with the
//! staff API that changes them and the storefront API that reads them through a cache.

mod api;
mod domain;
mod error;
pub mod events;
mod internal;
mod listing;
mod media;
mod pages;
mod projection;
mod reads;
mod routes;
mod service;
mod store;

pub use api::{
    AdminListQuery, CatalogApi, Category, CategoryNode, CategoryTree, Collection, CollectionInput,
    NewCategory, NewProduct, NewVariant, Product, ProductOption, ProductStatus, Purchasable,
    Variant,
};
pub use domain::slugify;
pub use error::CatalogError;
pub use internal::{CatalogClient, internal_router};
pub use media::{MediaS3Config, MediaStore};
pub use projection::{CacheInvalidator, StockProjection};
pub use reads::{CatalogReads, ReadCacheConfig};
pub use routes::{ADMIN_RULES, CatalogState, router};
pub use service::{CatalogService, Upserted};

/// The catalog's schema.
pub const MIGRATIONS: &[emporium_db::Migration] = &[emporium_db::Migration {
    version: 20261124000100,
    description: "catalog",
    sqlite: include_str!("../migrations/sqlite/20261124000100_catalog.sql"),
    postgres: include_str!("../migrations/postgres/20261124000100_catalog.sql"),
}];
