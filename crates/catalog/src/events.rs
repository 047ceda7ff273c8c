//! Catalog's events, recorded in the outbox with the change they describe. Product events carry
//! the whole product as it is after the change, so a projection never has to ask the catalog.

use emporium_kernel::Event;
use emporium_kernel::ids::{CategoryId, CollectionId, ProductId};
use serde::{Deserialize, Serialize};

use crate::api::{Category, Collection, Product};

macro_rules! product_event {
    ($(#[$meta:meta])* $name:ident, $type:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Product);

        impl Event for $name {
            const TYPE: &'static str = $type;
            const VERSION: i32 = 1;
            fn aggregate_id(&self) -> String {
                self.0.id.to_string()
            }
        }
    };
}

product_event!(
    /// A product was created (in any status).
    ProductCreated,
    "product.created"
);
product_event!(
    /// A product's fields, variants, prices, links or media changed, its status did not.
    ProductUpdated,
    "product.updated"
);
product_event!(
    /// A product went on the storefront.
    ProductPublished,
    "product.published"
);
product_event!(
    /// A product went back to draft.
    ProductUnpublished,
    "product.unpublished"
);
product_event!(
    /// A product was archived.
    ProductArchived,
    "product.archived"
);

/// A product was deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductDeleted {
    pub id: ProductId,
    pub handle: String,
}

impl Event for ProductDeleted {
    const TYPE: &'static str = "product.deleted";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}

macro_rules! category_event {
    ($(#[$meta:meta])* $name:ident, $type:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Category);

        impl Event for $name {
            const TYPE: &'static str = $type;
            const VERSION: i32 = 1;
            fn aggregate_id(&self) -> String {
                self.0.id.to_string()
            }
        }
    };
}

category_event!(
    /// A category was created.
    CategoryCreated,
    "category.created"
);
category_event!(
    /// A category was renamed or moved (a move re-emits this for every descendant).
    CategoryUpdated,
    "category.updated"
);

/// A category was deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CategoryDeleted {
    pub id: CategoryId,
}

impl Event for CategoryDeleted {
    const TYPE: &'static str = "category.deleted";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}

macro_rules! collection_event {
    ($(#[$meta:meta])* $name:ident, $type:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Collection);

        impl Event for $name {
            const TYPE: &'static str = $type;
            const VERSION: i32 = 1;
            fn aggregate_id(&self) -> String {
                self.0.id.to_string()
            }
        }
    };
}

collection_event!(
    /// A collection was created.
    CollectionCreated,
    "collection.created"
);
collection_event!(
    /// A collection's fields changed.
    CollectionUpdated,
    "collection.updated"
);

/// A collection was deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionDeleted {
    pub id: CollectionId,
}

impl Event for CollectionDeleted {
    const TYPE: &'static str = "collection.deleted";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}
