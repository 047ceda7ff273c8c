//! Catalog's SQL, and nothing else. Every function takes a connection: the writer's transaction
//! for writes, a reader for reads.

use emporium_db::from_row;
use time::OffsetDateTime;
use uuid::Uuid;

/// A product's own columns.
#[derive(Debug, Clone)]
pub struct ProductRow {
    pub id: Uuid,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub status: String,
    /// JSON array of options.
    pub options: String,
    /// JSON object.
    pub attributes: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub published_at: Option<OffsetDateTime>,
}

/// A variant's own columns.
#[derive(Debug, Clone)]
pub struct VariantRow {
    pub id: Uuid,
    pub sku: String,
    pub title: String,
    /// JSON object, option name → value.
    pub options: String,
    pub weight_grams: i64,
    pub position: i64,
}

/// A category row.
#[derive(Debug, Clone)]
pub struct CategoryRow {
    pub id: Uuid,
    pub handle: String,
    pub name: String,
    pub description: String,
    pub parent_id: Option<Uuid>,
    pub position: i64,
    /// `/<hex>/<hex>/`, root first, itself last.
    pub path: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A collection row.
#[derive(Debug, Clone)]
pub struct CollectionRow {
    pub id: Uuid,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A media row.
#[derive(Debug, Clone)]
pub struct MediaRow {
    pub id: Uuid,
    pub product_id: Uuid,
    pub object_key: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub alt: String,
    pub position: i64,
    pub created_at: OffsetDateTime,
}

from_row!(ProductRow {
    id,
    handle,
    title,
    description,
    status,
    options,
    attributes,
    version,
    created_at,
    updated_at,
    published_at,
});
from_row!(VariantRow {
    id,
    sku,
    title,
    options,
    weight_grams,
    position,
});
from_row!(CategoryRow {
    id,
    handle,
    name,
    description,
    parent_id,
    position,
    path,
    version,
    created_at,
    updated_at,
});
from_row!(CollectionRow {
    id,
    handle,
    title,
    description,
    version,
    created_at,
    updated_at,
});
from_row!(MediaRow {
    id,
    product_id,
    object_key,
    content_type,
    size_bytes,
    alt,
    position,
    created_at,
});
from_row!(DocumentRow {
    id,
    document,
    in_stock,
    title,
    published_at,
    min_amount,
});

// The column lists of the row structs, in field order: macros rather than constants so that
// `concat!` can build each statement into a `&'static str`.

macro_rules! product_columns {
    () => {
        "id, handle, title, description, status, options, attributes, version, created_at, \
         updated_at, published_at"
    };
}

macro_rules! variant_columns {
    () => {
        "id, sku, title, options, weight_grams, position"
    };
}

macro_rules! category_columns {
    () => {
        "id, handle, name, description, parent_id, position, path, version, created_at, updated_at"
    };
}

macro_rules! collection_columns {
    () => {
        "id, handle, title, description, version, created_at, updated_at"
    };
}

macro_rules! media_columns {
    () => {
        "id, product_id, object_key, content_type, size_bytes, alt, position, created_at"
    };
}

// The statements, by subject (after the column macros, which they use).
mod bulk;
mod categories;
mod collections;
mod links;
mod products;
mod variants;

pub use bulk::*;
pub use categories::*;
pub use collections::*;
pub use links::*;
pub use products::*;
pub use variants::*;
