//! Catalog's boundary: the plain data it hands out, which is also the payload of its events.

use std::collections::BTreeMap;

use emporium_kernel::Money;
use emporium_kernel::ids::{CategoryId, CollectionId, MediaId, ProductId, VariantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a product is in its life: only `published` products are on the storefront.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Draft,
    Published,
    Archived,
}

impl ProductStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
            Self::Archived => "archived",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Self::Draft),
            "published" => Some(Self::Published),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// An axis along which a product varies (e.g. `Size` with `S`, `M`, `L`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductOption {
    pub name: String,
    pub values: Vec<String>,
}

/// A purchasable variant: one value for each of the product's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Variant {
    pub id: VariantId,
    /// Stock keeping unit, unique in the store.
    pub sku: String,
    pub title: String,
    /// Option name → value.
    pub options: BTreeMap<String, String>,
    pub weight_grams: i64,
    /// One price per currency, in minor units.
    pub prices: Vec<Money>,
    pub position: i64,
    /// Units that can be sold now (on hand minus reserved, all locations). Filled in on reads;
    /// absent from events (inventory owns it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// The price this shopper pays, in the requested currency and with the requested region's
    /// tax. Only on storefront reads that name a `currency`, for a variant priced in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calculated_price: Option<emporium_pricing::CalculatedPrice>,
}

/// A category a product belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryRef {
    pub id: CategoryId,
    pub handle: String,
    pub name: String,
    /// Ids from the root down to this category.
    pub path: Vec<CategoryId>,
}

/// A collection a product belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionRef {
    pub id: CollectionId,
    pub handle: String,
    pub title: String,
}

/// A file attached to a product, served under `/media/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Media {
    pub id: MediaId,
    pub url: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub alt: String,
    pub position: i64,
}

/// A product with everything that hangs off it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    pub id: ProductId,
    /// URL slug, unique.
    pub handle: String,
    pub title: String,
    pub description: String,
    pub status: ProductStatus,
    pub options: Vec<ProductOption>,
    pub variants: Vec<Variant>,
    pub categories: Vec<CategoryRef>,
    pub collections: Vec<CollectionRef>,
    /// Free-form attributes (material, brand, …).
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub media: Vec<Media>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub published_at: Option<OffsetDateTime>,
    /// Bumped by every change; the product's ETag.
    pub version: i64,
    /// Some variant can be sold now. Filled in on reads; absent from events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_stock: Option<bool>,
}

/// A node of the category tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Category {
    pub id: CategoryId,
    pub handle: String,
    pub name: String,
    pub description: String,
    #[schema(required = true)]
    pub parent_id: Option<CategoryId>,
    /// Order among its siblings.
    pub position: i64,
    /// Ids from the root down to this category.
    pub path: Vec<CategoryId>,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// The category tree as the storefront shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryNode {
    pub id: CategoryId,
    pub handle: String,
    pub name: String,
    pub description: String,
    #[schema(no_recursion)]
    pub children: Vec<CategoryNode>,
}

/// The storefront's category tree: the roots in order, each with its children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryTree {
    pub items: Vec<CategoryNode>,
}

/// A hand-picked group of products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Collection {
    pub id: CollectionId,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// A variant as a cart sees it: what it is, what it costs and what it weighs, from a published
/// product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Purchasable {
    pub variant_id: VariantId,
    pub product_id: ProductId,
    pub product_title: String,
    pub product_handle: String,
    pub variant_title: String,
    pub sku: String,
    /// One price per currency, in minor units.
    pub prices: Vec<Money>,
    pub weight_grams: i64,
    /// The product's categories and every ancestor of them (a promotion on `Apparel` also
    /// targets `Apparel > Shirts`).
    pub category_ids: Vec<CategoryId>,
}

/// What other contexts may ask of the catalog.
#[async_trait::async_trait]
pub trait CatalogApi: Send + Sync {
    /// Each variant, in the order asked, when it belongs to a published product; `None` for an
    /// unknown variant or one of a draft or archived product.
    async fn purchasable(
        &self,
        variants: &[VariantId],
    ) -> Result<Vec<Option<Purchasable>>, crate::CatalogError>;

    /// As [`Self::purchasable`]; when the catalog cannot be asked (it runs in another process
    /// that does not answer), the last answer known for each variant instead, with the time
    /// the oldest of them was read. `None`: the answer is fresh.
    async fn purchasable_or_known(
        &self,
        variants: &[VariantId],
    ) -> Result<(Vec<Option<Purchasable>>, Option<OffsetDateTime>), crate::CatalogError> {
        Ok((self.purchasable(variants).await?, None))
    }
}

/// Body of `POST /v1/admin/products`. Absent text reads as empty so one answer lists every
/// missing field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// URL slug; made from the title when absent.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 50000)]
    pub description: String,
    /// `draft` when absent.
    pub status: Option<ProductStatus>,
    #[serde(default)]
    #[schema(max_items = 5)]
    pub options: Vec<ProductOption>,
    #[serde(default)]
    pub variants: Vec<NewVariant>,
    #[serde(default)]
    pub category_ids: Vec<CategoryId>,
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// A variant to add.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    #[serde(default)]
    #[schema(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        max_length = 100,
        min_length = 1
    )]
    pub sku: String,
    /// Made from the option values when absent.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub weight_grams: i64,
    #[serde(default)]
    pub prices: Vec<Money>,
}

/// Body of `PATCH /v1/admin/products/{id}`: absent fields stay as they are; lists replace.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[schema(min_length = 1, max_length = 500)]
    pub title: Option<String>,
    #[schema(max_length = 50000)]
    pub description: Option<String>,
    pub status: Option<ProductStatus>,
    #[schema(max_items = 5)]
    pub options: Option<Vec<ProductOption>>,
    pub category_ids: Option<Vec<CategoryId>>,
    pub collection_ids: Option<Vec<CollectionId>>,
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH …/variants/{variant_id}`: absent fields stay as they are; `prices` replaces.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantPatch {
    #[schema(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        max_length = 100,
        min_length = 1
    )]
    pub sku: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    pub options: Option<BTreeMap<String, String>>,
    pub weight_grams: Option<i64>,
    pub prices: Option<Vec<Money>>,
    pub position: Option<i64>,
}

/// Body of `POST /v1/admin/categories`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: String,
    pub parent_id: Option<CategoryId>,
    #[serde(default)]
    pub position: i64,
}

/// Body of `PATCH /v1/admin/categories/{id}`. `parent_id: null` moves it to the root.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<CategoryId>)]
    pub parent_id: Option<Option<CategoryId>>,
    pub position: Option<i64>,
}

/// Body of `POST /v1/admin/collections` and of its `PATCH` (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionInput {
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Admin product list filters.
#[derive(Debug, Clone, Default)]
pub struct AdminListQuery {
    pub status: Option<ProductStatus>,
    pub q: Option<String>,
    pub category: Option<CategoryId>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}
