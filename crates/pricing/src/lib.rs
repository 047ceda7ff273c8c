//! Pricing: price lists, promotions with their conditions and coupon codes, tax rates by region
//! and shipping options, and the quote that turns a cart and these rules into every total.
//!
//! [`quote::quote`] is a pure function: the same cart and rules always give the same figures,
//! and its laws (totals never negative, no discount above what it applies to, shares that add
//! up) are property-tested. Rounding and stacking are documented on the [`quote`] module. The
//! storefront's calculated prices ([`PriceCalculator`], [`ShopperPrices`]) reuse the quote's
//! first step.

mod api;
mod error;
pub mod events;
mod internal;
pub mod quote;
mod routes;
mod rules;
mod service;
mod store;
mod storefront;

pub use api::{
    CalculatedPrice, CustomerGroups, PriceCalculator, PriceContext, PricingApi, VariantPrice,
};
pub use error::PricingError;
pub use internal::{PricingClient, internal_router};
pub use quote::{
    AppliedDiscount, Cart, CouponCode, CouponOutcome, Item, PriceBook, Quote, QuoteError,
    QuotedItem, Region, ShippingQuote, calculated_prices, quote, shipping_options,
};
pub use routes::{ADMIN_RULES, router};
pub use rules::{
    BasisPoints, Benefit, Conditions, ListPrice, PriceList, Promotion, Rules, ShippingOption,
    ShippingRate, Stacking, Target, TaxRate, WeightTier, Window,
};
pub use service::{Coupon, CreateCoupon, PricingService, RULES_MAX_AGE, Rule, Stored};
pub use storefront::{RulesCalculator, ShopperPrices, parse_region};

/// Pricing's schema migrations.
pub const MIGRATIONS: &[emporium_db::Migration] = &[emporium_db::Migration {
    version: 20261126000100,
    description: "pricing",
    sqlite: include_str!("../migrations/sqlite/20261126000100_pricing.sql"),
    postgres: include_str!("../migrations/postgres/20261126000100_pricing.sql"),
}];
