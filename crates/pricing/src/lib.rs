//! Pricing: price lists, promotions with their conditions and coupon codes, tax rates by region
//! and shipping options, and the quote that turns a cart and these rules into every total.
//!
//! [`quote::quote`] is a pure function: the same cart and rules always give the same figures,
//! and its laws (totals never negative, no discount above what it applies to, shares that add
//! up) are property-tested. Rounding and stacking are documented on the [`quote`] module.

pub mod quote;
pub mod rules;

pub use quote::{
    AppliedDiscount, Cart, CouponCode, CouponOutcome, Item, Quote, QuoteError, QuotedItem, Region,
    ShippingQuote, quote, shipping_options,
};
pub use rules::{
    BasisPoints, Benefit, Conditions, ListPrice, PriceList, Promotion, Rules, ShippingOption,
    ShippingRate, Stacking, Target, TaxRate, WeightTier, Window,
};
