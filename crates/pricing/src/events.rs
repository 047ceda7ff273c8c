//! Pricing's events, recorded in the outbox with the change they describe. Payloads never deny
//! unknown fields, so older consumers keep reading newer events.

use emporium_kernel::Event;
use emporium_kernel::ids::{CouponId, PromotionId};
use serde::{Deserialize, Serialize};

/// A price list, promotion, tax rate or shipping option was created, replaced or deleted. A
/// process that keeps the rules in memory reloads them; the sequence is the rule's version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleChanged {
    /// `price_list`, `promotion`, `tax_rate` or `shipping_option`.
    pub kind: String,
    /// The rule's id as the API shows it (`promo_…`).
    pub id: String,
    /// `created`, `updated` or `deleted`.
    pub action: String,
    /// The staff subject who made the change.
    pub by: String,
}

impl Event for RuleChanged {
    const TYPE: &'static str = "pricing.rule_changed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
}

/// A coupon was created or deleted (redemptions are recorded with the order they belong to).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CouponChanged {
    pub id: CouponId,
    pub code: String,
    pub promotion_id: PromotionId,
    /// `created` or `deleted`.
    pub action: String,
    pub by: String,
}

impl Event for CouponChanged {
    const TYPE: &'static str = "pricing.coupon_changed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}
