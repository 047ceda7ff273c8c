//! The payloads of the catalog and inventory events the index is projected from, read
//! leniently: unknown fields are ignored and optional ones may be absent or null.

use emporium_kernel::ids::{CategoryId, CollectionId, ProductId, VariantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Event types with a whole-product snapshot as `data`.
pub(crate) const PRODUCT_DELETED: &str = "product.deleted";
pub(crate) const CATEGORY_CREATED: &str = "category.created";
pub(crate) const CATEGORY_UPDATED: &str = "category.updated";
pub(crate) const CATEGORY_DELETED: &str = "category.deleted";
pub(crate) const STOCK_CHANGED: &str = "inventory.stock_changed";

/// Whether `event_type` carries a product snapshot (`product.*` other than `product.deleted`).
pub(crate) fn is_product_snapshot(event_type: &str) -> bool {
    event_type.starts_with("product.") && event_type != PRODUCT_DELETED
}

/// A product as the catalog publishes it in its events.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProductData {
    pub id: ProductId,
    #[serde(default)]
    pub handle: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub status: String,
    #[serde(default)]
    pub variants: Vec<VariantData>,
    #[serde(default)]
    pub categories: Vec<CategoryRef>,
    #[serde(default)]
    pub collections: Vec<CollectionRef>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
    /// Bumped by the catalog on every change; an older snapshot never replaces a newer one.
    #[serde(default)]
    pub version: i64,
}

/// A purchasable variant inside a product snapshot.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VariantData {
    pub id: VariantId,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub prices: Vec<PriceData>,
}

/// One price of a variant; a currency that is not an ISO code is ignored.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PriceData {
    pub currency: String,
    pub amount: i64,
}

/// A category as embedded in a product snapshot.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CategoryRef {
    pub id: CategoryId,
    #[serde(default)]
    pub handle: String,
    #[serde(default)]
    pub name: String,
    /// Ids from the root down to this category.
    #[serde(default)]
    pub path: Vec<CategoryId>,
}

/// A collection as embedded in a product snapshot.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CollectionRef {
    pub id: CollectionId,
}

/// `data` of `product.deleted`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProductDeleted {
    pub id: ProductId,
}

/// `data` of `category.created` and `category.updated`; also the stored form of a category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CategoryData {
    pub id: CategoryId,
    #[serde(default)]
    pub handle: String,
    #[serde(default)]
    pub name: String,
    /// Ids from the root down to this category.
    #[serde(default)]
    pub path: Vec<CategoryId>,
}

/// `data` of `category.deleted`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CategoryDeleted {
    pub id: CategoryId,
}

/// `data` of `inventory.stock_changed`; only the variant's total matters here.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StockChanged {
    pub variant_id: VariantId,
    pub variant_available: i64,
}
