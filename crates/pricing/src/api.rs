//! What other contexts call: [`PricingApi`], implemented by [`PricingService`], and the
//! storefront's [`PriceCalculator`] with its plain data ([`PriceContext`], [`VariantPrice`],
//! [`CalculatedPrice`]). Coupon uses are taken and given back inside the caller's transaction:
//! pricing shares its database with the ordering group (cart, pricing, payments, ordering),
//! which runs as one service. The calculator takes a whole page of variants in one call, so a
//! catalog in a process of its own pays one round trip per page.

use emporium_db::WriteTx;
use emporium_kernel::Currency;
use emporium_kernel::ids::{CouponId, PriceListId, TaxRateId, VariantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::PricingError;
use crate::quote::Region;
use crate::service::PricingService;

/// Whose prices a storefront answer shows: the currency, the shopper's customer groups (none
/// for a guest), the region whose tax is shown, and the moment (price list windows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceContext {
    pub currency: Currency,
    pub customer_groups: Vec<String>,
    /// `None`: no tax is shown (`tax_rate_id` is null, both amounts equal).
    pub region: Option<Region>,
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
}

/// A variant and its own price in the context's currency (minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantPrice {
    pub variant_id: VariantId,
    pub amount: i64,
}

/// A variant's price for one shopper: its own price, the lowest price list under it, and the
/// tax of the shopper's region, as the region displays it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CalculatedPrice {
    pub currency: Currency,
    /// The variant's own price in `currency` (minor units, at least 0).
    #[schema(minimum = 0)]
    pub original_amount: i64,
    /// What the shopper pays per unit before promotions: the lowest of `original_amount` and
    /// the prices of the price lists that apply now to the shopper's groups. Includes tax when
    /// `tax_inclusive`.
    #[schema(minimum = 0)]
    pub calculated_amount: i64,
    /// The price list that gave `calculated_amount`; null when it is the own price.
    #[schema(required = true)]
    pub price_list_id: Option<PriceListId>,
    /// The tax rate of the requested `country` (and `state`); null without a region or when
    /// the region has no rate.
    #[schema(required = true)]
    pub tax_rate_id: Option<TaxRateId>,
    /// Whether `calculated_amount` already includes the tax (as in the EU); false when tax
    /// comes on top (as in the US) or no rate applies.
    pub tax_inclusive: bool,
    /// `calculated_amount` with the tax: itself when `tax_inclusive`, else plus the tax.
    #[schema(minimum = 0)]
    pub amount_with_tax: i64,
    /// `calculated_amount` without the tax: less the included tax when `tax_inclusive`, else
    /// itself.
    #[schema(minimum = 0)]
    pub amount_without_tax: i64,
}

/// Calculates the prices a storefront shows, a page at a time. Implemented in process by
/// [`crate::RulesCalculator`], and across processes by [`crate::PricingClient`].
#[async_trait::async_trait]
pub trait PriceCalculator: Send + Sync {
    /// Each variant's calculated price under `context`, in the order given. Fails only when
    /// the rules cannot be read (`Storage`, `Corrupt`).
    async fn calculate_prices(
        &self,
        context: &PriceContext,
        variants: &[VariantPrice],
    ) -> Result<Vec<CalculatedPrice>, PricingError>;
}

/// Where pricing learns a customer's groups (identity, in the all-in-one binary).
#[async_trait::async_trait]
pub trait CustomerGroups: Send + Sync {
    /// The groups of customer `customer` (`cus_…`); none for a customer that does not exist.
    async fn groups_of(&self, customer: &str) -> Result<Vec<String>, PricingError>;
}

/// Coupon redemptions as the checkout uses them.
#[async_trait::async_trait]
pub trait PricingApi: Send + Sync {
    /// Takes one use of coupon `code` for `reference` (a checkout), in `tx`, checking the
    /// global and per-customer limits (`CouponExhausted`, `CouponCustomerLimit`,
    /// `CouponNotFound`); a retry for the same reference finds its first use.
    async fn redeem_in(
        &self,
        tx: &mut WriteTx,
        code: &str,
        reference: &str,
        customer_key: &str,
    ) -> Result<CouponId, PricingError>;

    /// Gives back the use `reference` took of coupon `id`, in `tx`; twice changes nothing.
    async fn return_in(
        &self,
        tx: &mut WriteTx,
        id: CouponId,
        reference: &str,
    ) -> Result<(), PricingError>;
}

#[async_trait::async_trait]
impl PricingApi for PricingService {
    async fn redeem_in(
        &self,
        tx: &mut WriteTx,
        code: &str,
        reference: &str,
        customer_key: &str,
    ) -> Result<CouponId, PricingError> {
        PricingService::redeem_in(self, tx, code, reference, customer_key).await
    }

    async fn return_in(
        &self,
        tx: &mut WriteTx,
        id: CouponId,
        reference: &str,
    ) -> Result<(), PricingError> {
        PricingService::return_in(self, tx, id, reference).await
    }
}
