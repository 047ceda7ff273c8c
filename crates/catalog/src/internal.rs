//! [`CatalogApi`] across processes: the internal route a catalog process serves
//! (`/internal/v1/catalog/…`, service credential required, never routed by the gateway) and
//! [`CatalogClient`], the same trait over it for carts in another process.
//!
//! The client remembers the last answer for each variant it was asked about. When the catalog
//! does not answer (every instance down, slow past the deadline, or behind an open breaker),
//! [`CatalogApi::purchasable_or_known`] serves those last answers with the time they were
//! read, so a cart still shows its lines; the checkout decides how old is too old.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use emporium_http::service::{CallError, Failure, ServiceClient};
use emporium_kernel::Clock;
use emporium_kernel::ids::VariantId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::{CatalogApi, Purchasable};
use crate::error::CatalogError;
use crate::reads::CatalogReads;

const PURCHASABLE: &str = "/internal/v1/catalog/purchasable";

/// Variants whose last answer a client keeps (a few hundred bytes each).
const KNOWN_CAPACITY: u64 = 100_000;

/// How long a last answer is kept once read: past it, a cart of the variant fails rather than
/// showing data that old.
const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);

#[derive(Serialize, Deserialize)]
struct ByVariants {
    variant_ids: Vec<VariantId>,
}

/// The internal routes of a catalog process. The caller mounts them behind the service
/// credential guard.
pub fn internal_router(reads: Arc<CatalogReads>) -> Router {
    Router::new()
        .route(PURCHASABLE, post(purchasable))
        .with_state(reads)
}

async fn purchasable(
    State(reads): State<Arc<CatalogReads>>,
    axum::Json(c): axum::Json<ByVariants>,
) -> Result<axum::Json<Vec<Option<Purchasable>>>, Failure> {
    reads
        .purchasable(&c.variant_ids)
        .await
        .map(axum::Json)
        .map_err(|e| Failure::of(&e, serde_json::Value::Null))
}

/// [`CatalogApi`] over the network, for a process that does not run the catalog.
pub struct CatalogClient {
    client: ServiceClient,
    clock: Arc<dyn Clock>,
    /// The last answer for each variant, and when it was read.
    known: moka::sync::Cache<Uuid, (Option<Purchasable>, OffsetDateTime)>,
}

impl CatalogClient {
    /// A client over `client` (whose service is `catalog`).
    pub fn new(client: ServiceClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            clock,
            known: moka::sync::Cache::builder()
                .max_capacity(KNOWN_CAPACITY)
                .time_to_live(KNOWN_FOR)
                .build(),
        }
    }

    /// The last answers for `variants`, with the oldest one's time; `None` when one of them
    /// was never asked about.
    fn last_known(
        &self,
        variants: &[VariantId],
    ) -> Option<(Vec<Option<Purchasable>>, OffsetDateTime)> {
        let mut oldest: Option<OffsetDateTime> = None;
        let mut items = Vec::with_capacity(variants.len());
        for variant in variants {
            let (item, at) = self.known.get(&variant.0)?;
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
            items.push(item);
        }
        Some((items, oldest.unwrap_or_else(|| self.clock.now())))
    }
}

#[async_trait::async_trait]
impl CatalogApi for CatalogClient {
    async fn purchasable(
        &self,
        variants: &[VariantId],
    ) -> Result<Vec<Option<Purchasable>>, CatalogError> {
        let call = ByVariants {
            variant_ids: variants.to_vec(),
        };
        let items: Vec<Option<Purchasable>> = self
            .client
            .call(PURCHASABLE, &call, true)
            .await
            .map_err(CatalogError::Remote)?;
        if items.len() != variants.len() {
            return Err(CatalogError::Corrupt(format!(
                "the catalog answered {} variants for {}",
                items.len(),
                variants.len()
            )));
        }
        let now = self.clock.now();
        for (variant, item) in variants.iter().zip(&items) {
            self.known.insert(variant.0, (item.clone(), now));
        }
        Ok(items)
    }

    async fn purchasable_or_known(
        &self,
        variants: &[VariantId],
    ) -> Result<(Vec<Option<Purchasable>>, Option<OffsetDateTime>), CatalogError> {
        match self.purchasable(variants).await {
            Ok(items) => Ok((items, None)),
            Err(CatalogError::Remote(e @ CallError::Unavailable { .. })) => {
                match self.last_known(variants) {
                    Some((items, at)) => {
                        metrics::counter!("emporium_catalog_stale_answers_total").increment(1);
                        tracing::warn!(error = %e, "the catalog does not answer; serving the last known data");
                        Ok((items, Some(at)))
                    }
                    None => Err(CatalogError::Remote(e)),
                }
            }
            Err(e) => Err(e),
        }
    }
}
