//! The quote: a pure function of a cart and the pricing rules that gives every total the
//! storefront shows and the checkout charges. No IO, no clock (the cart carries `now`), so the
//! same cart and rules always give the same quote.
//!
//! The steps, in order:
//! 1. *Unit prices.* Each item's unit price is the lowest of its own price and the prices of
//!    the price lists that apply (in their window, for the shopper's group). The storefront's
//!    calculated prices come from the same step ([`calculated_prices`], one [`PriceBook`] for
//!    both), so a shopper is shown the unit price a cart will charge.
//! 2. *Promotions.* Those that qualify (conditions hold; coupon promotions only through a code
//!    on the cart) are split into exclusive and combinable ones (see [`Stacking`]). Within the
//!    chosen set, item benefits apply first, then order benefits, then free shipping; within
//!    each group by priority (higher first), then id. Each applies to what is left after the
//!    ones before, so no discount exceeds what it applies to.
//! 3. *Shipping*: the chosen option's price for the cart's weight and country.
//! 4. *Tax* per item, on the item's amount after discounts, and on shipping after its
//!    discount, at the rate of the shipping address (a state's own rate over its country's).
//!
//! **Rounding.** Amounts are integers in minor units. A share (`basis_points`) of an amount is
//! rounded half up, once per item (`2.5` cents becomes 3). An order discount is split over the
//! items in proportion to what is left of each, by largest remainder, so the shares add up to
//! the discount exactly. Tax is rounded half up per item and for shipping; the tax total is
//! their sum. Included tax is `amount × rate / (1 + rate)`, rounded the same way.

use std::collections::HashMap;

use emporium_kernel::Currency;
use emporium_kernel::ids::{
    CategoryId, PriceListId, ProductId, PromotionId, ShippingOptionId, TaxRateId, VariantId,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api::{CalculatedPrice, PriceContext, VariantPrice};
use crate::rules::{
    BasisPoints, Benefit, Promotion, Rules, ShippingOption, ShippingRate, Stacking, TaxRate, WHOLE,
};

/// Most units of one item a quote accepts: with prices up to [`MAX_UNIT_PRICE`], no total can
/// overflow.
pub const MAX_QUANTITY: u32 = 1_000_000;
/// Largest unit price, in minor units (ten billion of the major unit).
pub const MAX_UNIT_PRICE: i64 = 1_000_000_000_000;
/// Most items in one cart.
pub const MAX_LINES: usize = 500;

/// A cart as the quote sees it (`QuoteCart` in the OpenAPI document, apart from the store's
/// `Cart`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = QuoteCart)]
pub struct Cart {
    pub currency: Currency,
    pub items: Vec<Item>,
    /// The shopper's customer groups (empty for a guest).
    pub customer_groups: Vec<String>,
    pub shipping_address: Option<Region>,
    pub shipping_option: Option<ShippingOptionId>,
    /// Codes entered, each with the promotion it unlocks (`None`: no such code).
    pub coupons: Vec<CouponCode>,
    /// The moment the quote is for (windows of price lists and promotions).
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
}

/// One item of a cart: a variant, how many, and its own price in the cart's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Item {
    pub variant_id: VariantId,
    pub product_id: ProductId,
    pub category_ids: Vec<CategoryId>,
    pub quantity: u32,
    pub unit_price: i64,
    pub weight_grams: i64,
}

/// A country (ISO 3166-1 alpha-2) and optionally a state within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Region {
    pub country: String,
    pub state: Option<String>,
}

/// A coupon code on the cart and the promotion it unlocks, as the coupon table says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CouponCode {
    pub code: String,
    pub promotion_id: Option<PromotionId>,
}

/// Why a quote cannot be made: the cart breaks a limit the API enforces before quoting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("item {index} has a quantity outside 1..={MAX_QUANTITY}")]
    Quantity { index: usize },
    #[error("item {index} has a unit price outside 0..={MAX_UNIT_PRICE}")]
    UnitPrice { index: usize },
    #[error("item {index} has a negative weight")]
    Weight { index: usize },
    #[error("a cart holds at most {MAX_LINES} items")]
    TooManyItems,
}

/// Every figure of a cart, in its currency (minor units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Quote {
    pub currency: Currency,
    pub items: Vec<QuotedItem>,
    /// Sum of the items' `subtotal`.
    pub subtotal: i64,
    /// Each promotion applied and what it took off (items, order and shipping together).
    pub discounts: Vec<AppliedDiscount>,
    /// Sum of `discounts`.
    pub discount_total: i64,
    pub shipping: ShippingQuote,
    /// Shipping after its discount (0 when none is chosen or it is unavailable).
    pub shipping_total: i64,
    /// Tax on items and shipping; part of `total` already when `tax_inclusive`.
    pub tax_total: i64,
    pub tax_inclusive: bool,
    #[schema(required = true)]
    pub tax_rate: Option<TaxRateId>,
    /// What the shopper pays: `subtotal - discount_total + shipping before its discount`, plus
    /// `tax_total` when tax comes on top.
    pub total: i64,
    /// What became of each coupon code on the cart, in cart order.
    pub coupons: Vec<CouponOutcome>,
}

/// One item of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuotedItem {
    pub variant_id: VariantId,
    pub quantity: u32,
    /// After price lists.
    pub unit_price: i64,
    /// The item's own price when a price list lowered it.
    #[schema(required = true)]
    pub compare_at_price: Option<i64>,
    #[schema(required = true)]
    pub price_list_id: Option<PriceListId>,
    /// `unit_price × quantity`.
    pub subtotal: i64,
    /// Item and order discounts on this item; never above `subtotal`.
    pub discount: i64,
    pub tax: i64,
    /// `subtotal - discount`, plus `tax` when tax comes on top.
    pub total: i64,
}

/// A promotion that applied, and the amount it took off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedDiscount {
    pub promotion_id: PromotionId,
    pub name: String,
    /// The coupon code that unlocked it.
    #[schema(required = true)]
    pub code: Option<String>,
    pub amount: i64,
}

/// The shipping part of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ShippingQuote {
    /// No option chosen yet.
    NotChosen,
    /// The chosen option does not ship this cart (country, currency or weight): choose again.
    Unavailable { option_id: ShippingOptionId },
    Priced {
        option_id: ShippingOptionId,
        name: String,
        amount: i64,
        discount: i64,
        tax: i64,
    },
}

/// What became of a coupon code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CouponOutcome {
    pub code: String,
    pub applied: bool,
    /// Why it did not apply: `coupon_unknown`, `coupon_not_applicable` (conditions, dates or
    /// currency), `coupon_not_combinable` (an exclusive promotion, or this exclusive one, saved
    /// less than the others).
    #[schema(required = true)]
    pub reason: Option<&'static str>,
}

/// A share of `amount` (≥ 0), rounded half up.
pub fn share(amount: i64, basis_points: BasisPoints) -> i64 {
    let bp = i128::from(basis_points.min(WHOLE));
    let exact = i128::from(amount.max(0)) * bp;
    narrow((exact + i128::from(WHOLE / 2)) / i128::from(WHOLE))
}

/// The tax included in `amount` (≥ 0) at `basis_points`, rounded half up.
pub fn included_tax(amount: i64, basis_points: BasisPoints) -> i64 {
    let bp = i128::from(basis_points);
    let denominator = i128::from(WHOLE) + bp;
    let exact = i128::from(amount.max(0)) * bp;
    narrow((2 * exact + denominator) / (2 * denominator))
}

/// Splits `total` over `weights` in proportion, by largest remainder (ties to the earlier
/// weight): the shares add up to `total` exactly and none exceeds its weight, provided
/// `0 ≤ total ≤ sum(weights)` and every weight is ≥ 0.
pub fn allocate(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if sum <= 0 || total <= 0 {
        return vec![0; weights.len()];
    }
    let total = i128::from(total).min(sum);
    let mut shares: Vec<i128> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = total * i128::from(*w);
        shares.push(exact / sum);
        remainders.push((exact % sum, i));
    }
    let mut left = total - shares.iter().sum::<i128>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left == 0 {
            break;
        }
        if shares[i] < i128::from(weights[i]) {
            shares[i] += 1;
            left -= 1;
        }
    }
    shares.into_iter().map(narrow).collect()
}

/// Amounts here are bounded by the cart limits far below `i64::MAX`.
fn narrow(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Quotes `cart` under `rules`.
pub fn quote(cart: &Cart, rules: &Rules) -> Result<Quote, QuoteError> {
    check(cart)?;
    let priced = unit_prices(cart, rules);
    let subtotals: Vec<i64> = priced
        .iter()
        .zip(&cart.items)
        .map(|(p, item)| p.unit_price * i64::from(item.quantity))
        .collect();
    let subtotal: i64 = subtotals.iter().sum();

    let shipping = price_shipping(cart, rules);
    let shipping_amount = match &shipping {
        Priced::Yes { amount, .. } => *amount,
        _ => 0,
    };

    let (chosen, coupons) = choose_promotions(cart, rules, &priced, &subtotals, shipping_amount);
    let applied = apply(
        &chosen.promotions,
        cart,
        &priced,
        &subtotals,
        shipping_amount,
    );

    let rate = tax_rate(cart, rules);
    let (bp, inclusive) = rate.map_or((0, false), |r| (r.basis_points, r.inclusive));
    let tax_of = |amount: i64| {
        if inclusive {
            included_tax(amount, bp)
        } else {
            share_uncapped(amount, bp)
        }
    };
    let mut items = Vec::with_capacity(cart.items.len());
    for (i, item) in cart.items.iter().enumerate() {
        let net = subtotals[i] - applied.item_discounts[i];
        let tax = tax_of(net);
        items.push(QuotedItem {
            variant_id: item.variant_id,
            quantity: item.quantity,
            unit_price: priced[i].unit_price,
            compare_at_price: priced[i].price_list.map(|_| item.unit_price),
            price_list_id: priced[i].price_list,
            subtotal: subtotals[i],
            discount: applied.item_discounts[i],
            tax,
            total: net + if inclusive { 0 } else { tax },
        });
    }
    let shipping_net = shipping_amount - applied.shipping_discount;
    let shipping_tax = tax_of(shipping_net);
    let shipping = match shipping {
        Priced::NotChosen => ShippingQuote::NotChosen,
        Priced::Unavailable(option_id) => ShippingQuote::Unavailable { option_id },
        Priced::Yes { option, amount } => ShippingQuote::Priced {
            option_id: option.id,
            name: option.name.clone(),
            amount,
            discount: applied.shipping_discount,
            tax: shipping_tax,
        },
    };
    let tax_total = items.iter().map(|i| i.tax).sum::<i64>() + shipping_tax;
    let discount_total: i64 = applied.by_promotion.iter().map(|(_, a)| a).sum();
    let discounts = applied
        .by_promotion
        .iter()
        .filter(|(_, amount)| *amount > 0)
        .map(|(p, amount)| AppliedDiscount {
            promotion_id: p.id,
            name: p.name.clone(),
            code: chosen.code_of.get(&p.id).cloned(),
            amount: *amount,
        })
        .collect();
    let total = subtotal - discount_total + shipping_amount + if inclusive { 0 } else { tax_total };
    Ok(Quote {
        currency: cart.currency,
        items,
        subtotal,
        discounts,
        discount_total,
        shipping,
        shipping_total: shipping_net,
        tax_total,
        tax_inclusive: inclusive,
        tax_rate: rate.map(|r| r.id),
        total,
        coupons,
    })
}

/// The shipping options offered to `cart`, each with its price before discounts, in the
/// order of `rules`.
pub fn shipping_options<'r>(cart: &Cart, rules: &'r Rules) -> Vec<(&'r ShippingOption, i64)> {
    let weight = cart_weight(cart);
    rules
        .shipping_options
        .iter()
        .filter_map(|o| offer(o, cart, weight).map(|amount| (o, amount)))
        .collect()
}

/// Tax at `basis_points` on top of `amount`, rounded half up (rates above 100 % allowed).
fn share_uncapped(amount: i64, basis_points: BasisPoints) -> i64 {
    let exact = i128::from(amount.max(0)) * i128::from(basis_points);
    narrow((exact + i128::from(WHOLE / 2)) / i128::from(WHOLE))
}

fn check(cart: &Cart) -> Result<(), QuoteError> {
    if cart.items.len() > MAX_LINES {
        return Err(QuoteError::TooManyItems);
    }
    for (index, item) in cart.items.iter().enumerate() {
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(QuoteError::Quantity { index });
        }
        if !(0..=MAX_UNIT_PRICE).contains(&item.unit_price) {
            return Err(QuoteError::UnitPrice { index });
        }
        if item.weight_grams < 0 {
            return Err(QuoteError::Weight { index });
        }
    }
    Ok(())
}

/// An item's price after price lists.
struct UnitPrice {
    unit_price: i64,
    price_list: Option<PriceListId>,
}

fn unit_prices(cart: &Cart, rules: &Rules) -> Vec<UnitPrice> {
    let book = PriceBook::new(rules);
    cart.items
        .iter()
        .map(|item| {
            let (unit_price, price_list) = book.lowest_price(
                item.variant_id,
                item.unit_price,
                cart.currency,
                &cart.customer_groups,
                cart.now,
            );
            UnitPrice {
                unit_price,
                price_list,
            }
        })
        .collect()
}

/// The prices of every price list, by variant: step 1 of the quote, and the calculated prices
/// the storefront shows, read from one place. Built once per set of rules, so a lookup costs a
/// hash probe and a walk over the few lists that price the variant.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    /// Who each list is for and when, by position in `rules.price_lists`.
    lists: Vec<ListScope>,
    /// Each variant's list prices: (position of the list, price).
    by_variant: HashMap<VariantId, Vec<(usize, emporium_kernel::Money)>>,
}

#[derive(Debug, Clone)]
struct ListScope {
    id: PriceListId,
    customer_groups: Vec<String>,
    window: crate::rules::Window,
}

impl PriceBook {
    /// Indexes the price lists of `rules`.
    pub fn new(rules: &Rules) -> Self {
        let mut by_variant: HashMap<VariantId, Vec<(usize, emporium_kernel::Money)>> =
            HashMap::new();
        let mut lists = Vec::with_capacity(rules.price_lists.len());
        for (position, list) in rules.price_lists.iter().enumerate() {
            lists.push(ListScope {
                id: list.id,
                customer_groups: list.customer_groups.clone(),
                window: list.window,
            });
            for p in &list.prices {
                by_variant
                    .entry(p.variant_id)
                    .or_default()
                    .push((position, p.price));
            }
        }
        Self { lists, by_variant }
    }

    /// The lowest of `own` (the variant's own price) and the prices in `currency` of the lists
    /// that apply to a shopper in `groups` at `now` (a list for no group applies to everyone,
    /// guests included), with the list that gave it; `None` when the own price is lowest. Of
    /// two lists at the same price, the lower id wins.
    pub fn lowest_price(
        &self,
        variant: VariantId,
        own: i64,
        currency: Currency,
        groups: &[String],
        now: OffsetDateTime,
    ) -> (i64, Option<PriceListId>) {
        let mut best: Option<(i64, PriceListId)> = None;
        for (position, price) in self.by_variant.get(&variant).into_iter().flatten() {
            let Some(list) = self.lists.get(*position) else {
                continue;
            };
            let for_shopper = list.customer_groups.is_empty()
                || list.customer_groups.iter().any(|g| groups.contains(g));
            if !for_shopper
                || !list.window.contains(now)
                || price.currency != currency
                || price.amount < 0
            {
                continue;
            }
            let candidate = (price.amount, list.id);
            best = Some(best.map_or(candidate, |b| b.min(candidate)));
        }
        match best {
            Some((amount, list)) if amount < own => (amount, Some(list)),
            _ => (own, None),
        }
    }
}

/// Each variant's calculated price for the shopper of `context`: the lowest of its own price
/// and the price lists that apply (quote step 1), with the tax of the context's region shown as
/// the region displays it (quote step 4 for one unit, no discounts). `book` must be built from
/// `rules`.
pub fn calculated_prices(
    book: &PriceBook,
    rules: &Rules,
    context: &PriceContext,
    variants: &[VariantPrice],
) -> Vec<CalculatedPrice> {
    let rate = region_tax_rate(context.region.as_ref(), rules);
    variants
        .iter()
        .map(|v| {
            let own = v.amount.clamp(0, MAX_UNIT_PRICE);
            let (amount, price_list_id) = book.lowest_price(
                v.variant_id,
                own,
                context.currency,
                &context.customer_groups,
                context.now,
            );
            let (amount_with_tax, amount_without_tax) = match rate {
                Some(r) if r.inclusive => (amount, amount - included_tax(amount, r.basis_points)),
                Some(r) => (amount + share_uncapped(amount, r.basis_points), amount),
                None => (amount, amount),
            };
            CalculatedPrice {
                currency: context.currency,
                original_amount: own,
                calculated_amount: amount,
                price_list_id,
                tax_rate_id: rate.map(|r| r.id),
                tax_inclusive: rate.is_some_and(|r| r.inclusive),
                amount_with_tax,
                amount_without_tax,
            }
        })
        .collect()
}

enum Priced<'r> {
    NotChosen,
    Unavailable(ShippingOptionId),
    Yes {
        option: &'r ShippingOption,
        amount: i64,
    },
}

fn cart_weight(cart: &Cart) -> i64 {
    cart.items
        .iter()
        .map(|i| i.weight_grams.saturating_mul(i64::from(i.quantity)))
        .fold(0i64, i64::saturating_add)
}

/// The price of `option` for `cart`, or `None` when it does not ship it.
fn offer(option: &ShippingOption, cart: &Cart, weight: i64) -> Option<i64> {
    let country = cart.shipping_address.as_ref().map(|a| a.country.as_str());
    if !option.countries.is_empty()
        && !country.is_some_and(|c| option.countries.iter().any(|o| o == c))
    {
        return None;
    }
    match &option.rate {
        ShippingRate::Flat { price } => {
            (price.currency == cart.currency && price.amount >= 0).then_some(price.amount)
        }
        ShippingRate::ByWeight { currency, tiers } => {
            if *currency != cart.currency {
                return None;
            }
            let mut tiers: Vec<_> = tiers.iter().collect();
            tiers.sort_by_key(|t| t.up_to_grams);
            tiers
                .into_iter()
                .find(|t| weight <= t.up_to_grams)
                .map(|t| t.amount.max(0))
        }
    }
}

fn price_shipping<'r>(cart: &Cart, rules: &'r Rules) -> Priced<'r> {
    let Some(id) = cart.shipping_option else {
        return Priced::NotChosen;
    };
    let weight = cart_weight(cart);
    match rules.shipping_options.iter().find(|o| o.id == id) {
        Some(option) => match offer(option, cart, weight) {
            Some(amount) => Priced::Yes { option, amount },
            None => Priced::Unavailable(id),
        },
        None => Priced::Unavailable(id),
    }
}

fn tax_rate<'r>(cart: &Cart, rules: &'r Rules) -> Option<&'r TaxRate> {
    region_tax_rate(cart.shipping_address.as_ref(), rules)
}

/// The tax rate of `region`: its state's own rate, else its country's; none without a region.
fn region_tax_rate<'r>(region: Option<&Region>, rules: &'r Rules) -> Option<&'r TaxRate> {
    let address = region?;
    let in_country = || {
        rules
            .tax_rates
            .iter()
            .filter(|r| r.country == address.country)
    };
    address
        .state
        .as_ref()
        .and_then(|s| in_country().find(|r| r.state.as_ref() == Some(s)))
        .or_else(|| in_country().find(|r| r.state.is_none()))
}

/// The promotions a quote applies, and the code that unlocked each coupon promotion.
struct Chosen<'r> {
    promotions: Vec<&'r Promotion>,
    code_of: HashMap<PromotionId, String>,
}

fn qualifies(p: &Promotion, cart: &Cart, subtotal: i64) -> bool {
    let c = &p.conditions;
    let currency_ok = match &p.benefit {
        Benefit::OrderFixed { amount } | Benefit::ItemsFixed { amount, .. } => {
            amount.currency == cart.currency
        }
        _ => true,
    };
    currency_ok
        && c.window.contains(cart.now)
        && c.min_subtotal
            .is_none_or(|m| m.currency == cart.currency && subtotal >= m.amount)
        && (c.categories.is_empty()
            || cart
                .items
                .iter()
                .any(|i| i.category_ids.iter().any(|k| c.categories.contains(k))))
        && (c.customer_groups.is_empty()
            || c.customer_groups
                .iter()
                .any(|g| cart.customer_groups.contains(g)))
}

fn choose_promotions<'r>(
    cart: &Cart,
    rules: &'r Rules,
    priced: &[UnitPrice],
    subtotals: &[i64],
    shipping: i64,
) -> (Chosen<'r>, Vec<CouponOutcome>) {
    let subtotal: i64 = subtotals.iter().sum();
    let by_id: HashMap<PromotionId, &Promotion> =
        rules.promotions.iter().map(|p| (p.id, p)).collect();
    let mut code_of: HashMap<PromotionId, String> = HashMap::new();
    let mut candidates: Vec<&Promotion> = rules
        .promotions
        .iter()
        .filter(|p| !p.needs_coupon && qualifies(p, cart, subtotal))
        .collect();
    let mut outcomes: Vec<CouponOutcome> = Vec::with_capacity(cart.coupons.len());
    for coupon in &cart.coupons {
        let promotion = coupon.promotion_id.and_then(|id| by_id.get(&id).copied());
        let reason = match promotion {
            None => Some("coupon_unknown"),
            Some(p) if !qualifies(p, cart, subtotal) => Some("coupon_not_applicable"),
            Some(p) if code_of.contains_key(&p.id) || candidates.iter().any(|c| c.id == p.id) => {
                // The same promotion twice (two codes, or a code for an automatic one) applies once.
                Some("coupon_not_combinable")
            }
            Some(p) => {
                code_of.insert(p.id, coupon.code.clone());
                candidates.push(p);
                None
            }
        };
        outcomes.push(CouponOutcome {
            code: coupon.code.clone(),
            applied: reason.is_none(),
            reason,
        });
    }
    candidates.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));

    let combinable: Vec<&Promotion> = candidates
        .iter()
        .copied()
        .filter(|p| p.stacking == Stacking::Combinable)
        .collect();
    let value = |set: &[&Promotion]| {
        let a = apply(set, cart, priced, subtotals, shipping);
        a.item_discounts.iter().sum::<i64>() + a.shipping_discount
    };
    let mut best_set = combinable.clone();
    let mut best_value = value(&combinable);
    for p in candidates
        .iter()
        .filter(|p| p.stacking == Stacking::Exclusive)
    {
        let v = value(&[*p]);
        if v > best_value {
            best_value = v;
            best_set = vec![*p];
        }
    }
    for outcome in outcomes.iter_mut().filter(|o| o.applied) {
        let kept = best_set
            .iter()
            .any(|p| code_of.get(&p.id).is_some_and(|c| *c == outcome.code));
        if !kept {
            outcome.applied = false;
            outcome.reason = Some("coupon_not_combinable");
        }
    }
    code_of.retain(|id, _| best_set.iter().any(|p| p.id == *id));
    (
        Chosen {
            promotions: best_set,
            code_of,
        },
        outcomes,
    )
}

/// What a set of promotions takes off.
struct Applied<'r> {
    item_discounts: Vec<i64>,
    shipping_discount: i64,
    /// In the order they applied.
    by_promotion: Vec<(&'r Promotion, i64)>,
}

/// Applies `promotions` (already in priority order): item benefits, then order benefits, then
/// free shipping, each to what is left.
fn apply<'r>(
    promotions: &[&'r Promotion],
    cart: &Cart,
    priced: &[UnitPrice],
    subtotals: &[i64],
    shipping: i64,
) -> Applied<'r> {
    let mut left: Vec<i64> = subtotals.to_vec();
    let mut shipping_left = shipping;
    let mut by_promotion = Vec::new();
    let targeted = |target: &crate::rules::Target| -> Vec<bool> {
        cart.items
            .iter()
            .map(|i| target.matches(i.product_id, i.variant_id, &i.category_ids))
            .collect()
    };
    let stage = |p: &Promotion| match p.benefit {
        Benefit::ItemsPercent { .. } | Benefit::ItemsFixed { .. } | Benefit::BuyXGetY { .. } => 0,
        Benefit::OrderPercent { .. } | Benefit::OrderFixed { .. } => 1,
        Benefit::FreeShipping => 2,
    };
    let mut ordered: Vec<&'r Promotion> = promotions.to_vec();
    // Stable: within a stage the priority order stays.
    ordered.sort_by_key(|p| stage(p));
    for p in ordered {
        let mut taken = 0i64;
        match &p.benefit {
            Benefit::ItemsPercent {
                basis_points,
                target,
            } => {
                for (i, hit) in targeted(target).into_iter().enumerate() {
                    if hit {
                        let d = share(left[i], *basis_points).min(left[i]);
                        left[i] -= d;
                        taken += d;
                    }
                }
            }
            Benefit::ItemsFixed { amount, target } => {
                for (i, hit) in targeted(target).into_iter().enumerate() {
                    if hit {
                        let per_item = amount
                            .amount
                            .max(0)
                            .saturating_mul(i64::from(cart.items[i].quantity));
                        let d = per_item.min(left[i]);
                        left[i] -= d;
                        taken += d;
                    }
                }
            }
            Benefit::BuyXGetY {
                buy,
                get,
                basis_points,
                target,
            } => {
                let group = u64::from(*buy) + u64::from(*get);
                let hits = targeted(target);
                let units: u64 = cart
                    .items
                    .iter()
                    .zip(&hits)
                    .filter(|(_, h)| **h)
                    .map(|(i, _)| u64::from(i.quantity))
                    .sum();
                if group > 0 && *get > 0 {
                    let mut free = units / group * u64::from(*get);
                    // The cheapest targeted units go first; on equal prices, the earlier item.
                    let mut order: Vec<usize> =
                        (0..cart.items.len()).filter(|i| hits[*i]).collect();
                    order.sort_by_key(|i| (priced[*i].unit_price, *i));
                    for i in order {
                        if free == 0 {
                            break;
                        }
                        let n = free.min(u64::from(cart.items[i].quantity));
                        free -= n;
                        let n = i64::try_from(n).unwrap_or(i64::MAX);
                        let d = share(priced[i].unit_price.saturating_mul(n), *basis_points)
                            .min(left[i]);
                        left[i] -= d;
                        taken += d;
                    }
                }
            }
            Benefit::OrderPercent { basis_points } => {
                let base: i64 = left.iter().sum();
                let d = share(base, *basis_points).min(base);
                taken = spread(&mut left, d);
            }
            Benefit::OrderFixed { amount } => {
                let base: i64 = left.iter().sum();
                let d = amount.amount.max(0).min(base);
                taken = spread(&mut left, d);
            }
            Benefit::FreeShipping => {
                taken = shipping_left;
                shipping_left = 0;
            }
        }
        by_promotion.push((p, taken));
    }
    Applied {
        item_discounts: subtotals.iter().zip(&left).map(|(s, l)| s - l).collect(),
        shipping_discount: shipping - shipping_left,
        by_promotion,
    }
}

/// Takes `amount` off `left` in proportion to each part; returns what was taken.
fn spread(left: &mut [i64], amount: i64) -> i64 {
    let shares = allocate(amount, left);
    for (l, s) in left.iter_mut().zip(&shares) {
        *l -= s;
    }
    shares.iter().sum()
}
