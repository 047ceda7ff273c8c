//! The pricing rules a quote reads: price lists, promotions, tax rates and shipping options, as
//! plain data. Where they are stored and how staff edit them is the service's business; the quote
//! only reads them.

use emporium_kernel::Money;
use emporium_kernel::ids::{
    CategoryId, PriceListId, ProductId, PromotionId, ShippingOptionId, TaxRateId, VariantId,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Basis points: hundredths of a percent. 10,000 is 100 %, 2,000 is 20 %, 1 is 0.01 %.
pub type BasisPoints = u32;

/// All of 100 %, in basis points.
pub const WHOLE: BasisPoints = 10_000;

/// Every rule a quote may apply. The order of each list does not matter: the quote orders
/// promotions by priority and id, and picks prices and rates by their own rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rules {
    pub price_lists: Vec<PriceList>,
    pub promotions: Vec<Promotion>,
    pub tax_rates: Vec<TaxRate>,
    pub shipping_options: Vec<ShippingOption>,
}

/// A period or a time window during which a rule applies; both ends optional, the start
/// included and the end excluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
}

impl Window {
    /// Whether `now` falls inside the window.
    pub fn contains(&self, now: OffsetDateTime) -> bool {
        self.starts_at.is_none_or(|s| now >= s) && self.ends_at.is_none_or(|e| now < e)
    }
}

/// Prices over the variants' own: a sale, or a customer group's prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceList {
    /// Given by the store; a request body leaves it out.
    #[serde(default)]
    pub id: PriceListId,
    pub name: String,
    /// The customer groups the list is for; empty means every shopper, guests included.
    #[serde(default)]
    pub customer_groups: Vec<String>,
    #[serde(default)]
    pub window: Window,
    pub prices: Vec<ListPrice>,
}

/// One variant's price in one currency, in a price list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPrice {
    pub variant_id: VariantId,
    pub price: Money,
}

/// What a promotion takes off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Benefit {
    /// A share off the order, after item discounts.
    OrderPercent { basis_points: BasisPoints },
    /// An amount off the order, after item discounts; only for carts in its currency.
    OrderFixed { amount: Money },
    /// A share off each targeted item.
    ItemsPercent {
        basis_points: BasisPoints,
        target: Target,
    },
    /// An amount off each targeted unit; only for carts in its currency.
    ItemsFixed { amount: Money, target: Target },
    /// Of every `buy + get` targeted units, the `get` cheapest are `basis_points` off (10,000:
    /// free).
    BuyXGetY {
        buy: u32,
        get: u32,
        basis_points: BasisPoints,
        target: Target,
    },
    /// The shipping is free.
    FreeShipping,
}

/// The items a benefit applies to: an item is targeted when it matches any listed product,
/// variant or category. All three empty targets every item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub products: Vec<ProductId>,
    #[serde(default)]
    pub variants: Vec<VariantId>,
    #[serde(default)]
    pub categories: Vec<CategoryId>,
}

impl Target {
    /// Whether an item of `product`/`variant` in `categories` is targeted.
    pub fn matches(
        &self,
        product: ProductId,
        variant: VariantId,
        categories: &[CategoryId],
    ) -> bool {
        (self.products.is_empty() && self.variants.is_empty() && self.categories.is_empty())
            || self.products.contains(&product)
            || self.variants.contains(&variant)
            || categories.iter().any(|c| self.categories.contains(c))
    }
}

/// When a promotion may apply. Every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// The cart's subtotal (after price lists, before discounts) is at least this, in this
    /// currency (a cart in another currency does not qualify).
    #[serde(default)]
    pub min_subtotal: Option<Money>,
    /// The cart holds an item in one of these categories.
    #[serde(default)]
    pub categories: Vec<CategoryId>,
    /// The shopper is in one of these customer groups.
    #[serde(default)]
    pub customer_groups: Vec<String>,
    #[serde(default)]
    pub window: Window,
}

/// How a promotion combines with the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stacking {
    /// Applies together with every other combinable promotion.
    #[default]
    Combinable,
    /// Applies alone: the quote takes the one exclusive promotion worth most to the shopper, or
    /// all the combinable ones, whichever saves more (the combinable ones on a tie).
    Exclusive,
}

/// A benefit, its conditions, and whether a coupon code is needed to unlock it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    /// Given by the store; a request body leaves it out.
    #[serde(default)]
    pub id: PromotionId,
    pub name: String,
    pub benefit: Benefit,
    #[serde(default)]
    pub conditions: Conditions,
    /// Applies only through a coupon code; otherwise it applies by itself when it qualifies.
    #[serde(default)]
    pub needs_coupon: bool,
    #[serde(default)]
    pub stacking: Stacking,
    /// Higher goes first; on a tie, the lower id.
    #[serde(default)]
    pub priority: i32,
}

/// A tax rate of a country, or of one state of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxRate {
    /// Given by the store; a request body leaves it out.
    #[serde(default)]
    pub id: TaxRateId,
    pub name: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// A state or province code; `None` for the whole country (a state's own rate wins).
    #[serde(default)]
    pub state: Option<String>,
    pub basis_points: BasisPoints,
    /// Prices already include this tax (as in the EU), or it comes on top (as in the US).
    pub inclusive: bool,
}

/// A way to ship, with its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingOption {
    /// Given by the store; a request body leaves it out.
    #[serde(default)]
    pub id: ShippingOptionId,
    pub name: String,
    /// ISO 3166-1 alpha-2 codes it ships to; empty ships everywhere.
    #[serde(default)]
    pub countries: Vec<String>,
    pub rate: ShippingRate,
}

/// A shipping price, in one currency: the option is offered only for carts in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShippingRate {
    Flat {
        price: Money,
    },
    /// The first tier whose `up_to_grams` holds the cart's weight; heavier than the last tier is
    /// not offered.
    ByWeight {
        currency: emporium_kernel::Currency,
        tiers: Vec<WeightTier>,
    },
}

/// Carts weighing up to `up_to_grams` (included) cost `amount` minor units to ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightTier {
    pub up_to_grams: i64,
    pub amount: i64,
}
