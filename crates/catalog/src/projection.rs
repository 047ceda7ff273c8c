//! The catalog's consumers: availability projected from inventory events, and the storefront
//! caches (products, list pages, the category tree) invalidated by the catalog's own events.

use std::collections::BTreeMap;
use std::sync::Arc;

use emporium_bus::{EventHandler, HandlerError};
use emporium_db::Db;
use emporium_kernel::ids::VariantId;
use emporium_kernel::{Clock, Envelope};
use serde::Deserialize;

use crate::reads::CatalogReads;
use crate::store;

/// Inbox name of the availability projection; never change it.
const STOCK_CONSUMER: &str = "catalog_stock";

/// The fields of `inventory.stock_changed` the catalog needs.
#[derive(Debug, Deserialize)]
struct StockChanged {
    variant_id: VariantId,
    variant_available: i64,
}

/// Keeps `catalog_variant_stock` and each product's `in_stock` flag in step with inventory.
pub struct StockProjection {
    db: Db,
    reads: Arc<CatalogReads>,
    clock: Arc<dyn Clock>,
}

impl StockProjection {
    /// A projection writing to `db` and invalidating `reads`.
    pub fn new(db: Db, reads: Arc<CatalogReads>, clock: Arc<dyn Clock>) -> Self {
        Self { db, reads, clock }
    }
}

#[async_trait::async_trait]
impl EventHandler for StockProjection {
    fn name(&self) -> &'static str {
        STOCK_CONSUMER
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type == "inventory.stock_changed"
    }

    async fn handle(&self, e: &Envelope) -> Result<(), HandlerError> {
        self.handle_batch(&[e]).await
    }

    /// Applies the batch in one transaction, then drops the products it changed from the cache.
    /// Events come in order, so a variant's last event in the batch says its availability: a
    /// few statements per batch, whatever its size.
    async fn handle_batch(&self, events: &[&Envelope]) -> Result<(), HandlerError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        let fresh = emporium_db::mark_all_handled(&mut tx, STOCK_CONSUMER, &ids, now).await?;
        let mut latest = BTreeMap::new();
        // Handled before: a redelivery has no second effect.
        for (e, _) in events.iter().zip(fresh).filter(|(_, new)| *new) {
            let change: StockChanged = serde_json::from_value(e.data.clone())?;
            latest.insert(change.variant_id.0, change.variant_available);
        }
        let available: Vec<(uuid::Uuid, i64)> = latest.into_iter().collect();
        store::upsert_variant_stock(&mut tx, &available, now).await?;
        let variants: Vec<uuid::Uuid> = available.iter().map(|(v, _)| *v).collect();
        let changed = store::products_of_variants(&mut tx, &variants).await?;
        store::refresh_in_stock(&mut tx, &changed).await?;
        tx.commit().await?;
        // Only what shows availability: a cart's view of the product stays.
        for product in changed {
            self.reads.invalidate_availability(product).await;
        }
        Ok(())
    }
}

/// The fields of a product event the cache needs.
#[derive(Debug, Deserialize)]
struct ProductKeys {
    id: emporium_kernel::ids::ProductId,
    handle: String,
}

/// Drops storefront cache entries the catalog's events made stale. Invalidation is idempotent,
/// so it needs no inbox.
pub struct CacheInvalidator {
    reads: Arc<CatalogReads>,
}

impl CacheInvalidator {
    /// An invalidator for `reads`.
    pub fn new(reads: Arc<CatalogReads>) -> Self {
        Self { reads }
    }
}

#[async_trait::async_trait]
impl EventHandler for CacheInvalidator {
    fn name(&self) -> &'static str {
        "catalog_cache"
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type.starts_with("product.")
            || event_type.starts_with("category.")
            || event_type.starts_with("collection.")
    }

    async fn handle(&self, e: &Envelope) -> Result<(), HandlerError> {
        if e.event_type.starts_with("category.") {
            self.reads.invalidate_tree().await;
            return Ok(());
        }
        if e.event_type.starts_with("collection.") {
            // What a collection filter selects may have changed.
            self.reads.invalidate_lists();
            return Ok(());
        }
        let keys: ProductKeys = serde_json::from_value(e.data.clone())?;
        self.reads.invalidate_product(keys.id.0).await;
        self.reads.invalidate_handle(&keys.handle).await;
        Ok(())
    }
}
