//! [`PriceCalculator`] across processes: the internal route a process running pricing serves
//! (`/internal/v1/pricing/…`, service credential required, never routed by the gateway) and
//! [`PricingClient`], the same trait over it for a catalog or search in another process. A
//! page of variants is one call, and the call is idempotent (it reads rules only).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use emporium_http::service::{CallError, Failure, ServiceClient};
use serde::{Deserialize, Serialize};

use crate::api::{CalculatedPrice, PriceCalculator, PriceContext, VariantPrice};
use crate::error::PricingError;

const CALCULATE_PRICES: &str = "/internal/v1/pricing/calculate-prices";

#[derive(Serialize, Deserialize)]
struct CalculateCall {
    context: PriceContext,
    variants: Vec<VariantPrice>,
}

/// The internal routes of a process that runs pricing, over its calculator. The caller mounts
/// them behind the service credential guard.
pub fn internal_router(calculator: Arc<dyn PriceCalculator>) -> Router {
    Router::new()
        .route(CALCULATE_PRICES, post(calculate_prices))
        .with_state(calculator)
}

async fn calculate_prices(
    State(calculator): State<Arc<dyn PriceCalculator>>,
    axum::Json(c): axum::Json<CalculateCall>,
) -> Result<axum::Json<Vec<CalculatedPrice>>, Failure> {
    calculator
        .calculate_prices(&c.context, &c.variants)
        .await
        .map(axum::Json)
        .map_err(|e| Failure::of(&e, serde_json::Value::Null))
}

/// Calculated prices over the network, for a process that does not run pricing.
pub struct PricingClient {
    client: ServiceClient,
}

impl PricingClient {
    /// A client over `client` (whose service is the group that runs pricing).
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl PriceCalculator for PricingClient {
    async fn calculate_prices(
        &self,
        context: &PriceContext,
        variants: &[VariantPrice],
    ) -> Result<Vec<CalculatedPrice>, PricingError> {
        let call = CalculateCall {
            context: context.clone(),
            variants: variants.to_vec(),
        };
        self.client
            .call(CALCULATE_PRICES, &call, true)
            .await
            .map_err(|e: CallError| PricingError::Remote(e))
    }
}
