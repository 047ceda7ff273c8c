//! What other contexts call: [`PricingApi`], implemented by [`PricingService`]. Coupon uses are
//! taken and given back inside the caller's transaction: pricing shares its database with the
//! ordering group (cart, pricing, payments, ordering), which runs as one service.

use emporium_db::WriteTx;
use emporium_kernel::ids::CouponId;

use crate::error::PricingError;
use crate::service::PricingService;

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
