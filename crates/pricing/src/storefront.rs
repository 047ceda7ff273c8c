//! Calculated prices for storefront reads: [`RulesCalculator`] implements [`PriceCalculator`]
//! over the service's rules, and [`ShopperPrices`] is what the catalog and search hold: it turns
//! a shopper (a customer id or a guest), a currency and a region into a [`PriceContext`] and
//! asks the calculator for a page of variants at once.

use std::sync::{Arc, PoisonError, RwLock};

use emporium_kernel::{Clock, Currency, Violations};

use crate::api::{CalculatedPrice, CustomerGroups, PriceCalculator, PriceContext, VariantPrice};
use crate::error::PricingError;
use crate::quote::{PriceBook, Region, calculated_prices};
use crate::rules::Rules;
use crate::service::PricingService;

/// [`PriceCalculator`] over the rules [`PricingService`] keeps in memory. The price lists are
/// indexed by variant once per set of rules, so a page costs a hash probe per variant.
pub struct RulesCalculator {
    service: Arc<PricingService>,
    /// The rules last indexed and their index. A std lock, never held across an await.
    book: RwLock<Option<(Arc<Rules>, Arc<PriceBook>)>>,
}

impl RulesCalculator {
    /// A calculator reading the rules of `service`.
    pub fn new(service: Arc<PricingService>) -> Self {
        Self {
            service,
            book: RwLock::new(None),
        }
    }

    /// The index of `rules`, built once per set of rules (the service hands out the same
    /// `Arc` until it loads them again).
    fn book_of(&self, rules: &Arc<Rules>) -> Arc<PriceBook> {
        if let Some((indexed, book)) = &*self.book.read().unwrap_or_else(PoisonError::into_inner)
            && Arc::ptr_eq(indexed, rules)
        {
            return Arc::clone(book);
        }
        let book = Arc::new(PriceBook::new(rules));
        *self.book.write().unwrap_or_else(PoisonError::into_inner) =
            Some((Arc::clone(rules), Arc::clone(&book)));
        book
    }
}

#[async_trait::async_trait]
impl PriceCalculator for RulesCalculator {
    async fn calculate_prices(
        &self,
        context: &PriceContext,
        variants: &[VariantPrice],
    ) -> Result<Vec<CalculatedPrice>, PricingError> {
        let rules = self.service.rules().await?;
        let book = self.book_of(&rules);
        Ok(calculated_prices(&book, &rules, context, variants))
    }
}

/// The storefront's way to calculated prices: who the shopper is (their groups), what time it
/// is, and one calculator call per page.
pub struct ShopperPrices {
    calculator: Arc<dyn PriceCalculator>,
    /// Without it every shopper is in no group.
    groups: Option<Arc<dyn CustomerGroups>>,
    clock: Arc<dyn Clock>,
}

impl ShopperPrices {
    /// Prices from `calculator` at the time `clock` tells; every shopper in no group until
    /// [`Self::with_customer_groups`].
    pub fn new(calculator: Arc<dyn PriceCalculator>, clock: Arc<dyn Clock>) -> Self {
        Self {
            calculator,
            groups: None,
            clock,
        }
    }

    /// Learns customers' groups from `groups`.
    #[must_use]
    pub fn with_customer_groups(mut self, groups: Arc<dyn CustomerGroups>) -> Self {
        self.groups = Some(groups);
        self
    }

    /// The context of a shopper: `customer` (`cus_…`, `None` for a guest), `currency` and the
    /// region whose tax is shown, now.
    pub async fn context(
        &self,
        currency: Currency,
        customer: Option<&str>,
        region: Option<Region>,
    ) -> Result<PriceContext, PricingError> {
        let customer_groups = match (customer, &self.groups) {
            (Some(customer), Some(groups)) => groups.groups_of(customer).await?,
            _ => Vec::new(),
        };
        Ok(PriceContext {
            currency,
            customer_groups,
            region,
            now: self.clock.now(),
        })
    }

    /// Each variant's calculated price under `context`, in the order given (one call).
    pub async fn calculate(
        &self,
        context: &PriceContext,
        variants: &[VariantPrice],
    ) -> Result<Vec<CalculatedPrice>, PricingError> {
        if variants.is_empty() {
            return Ok(Vec::new());
        }
        self.calculator.calculate_prices(context, variants).await
    }
}

/// Reads the `country` and `state` query parameters into a region, recording what is wrong in
/// `v`: `country` must be an ISO 3166-1 alpha-2 code (either case; kept in upper case),
/// `state` a subdivision code of 1 to 3 letters or digits and only with a `country`.
pub fn parse_region(
    v: &mut Violations,
    country: Option<&str>,
    state: Option<&str>,
) -> Option<Region> {
    let country = country.map(|c| {
        let ok = c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic());
        if !ok {
            v.push(
                "/country",
                "invalid_format",
                "an ISO 3166-1 alpha-2 code, e.g. DE",
            );
        }
        (ok, c.to_ascii_uppercase())
    });
    let state = state.map(|s| {
        let ok = (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            v.push(
                "/state",
                "invalid_format",
                "a subdivision code of 1 to 3 letters or digits, e.g. CA",
            );
        }
        (ok, s.to_ascii_uppercase())
    });
    if state.is_some() && country.is_none() {
        v.push("/country", "required", "a state needs its country");
    }
    match (country, state) {
        (Some((true, country)), None) => Some(Region {
            country,
            state: None,
        }),
        (Some((true, country)), Some((true, state))) => Some(Region {
            country,
            state: Some(state),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quote::{Cart, Item, quote};
    use crate::rules::{ListPrice, PriceList, TaxRate, Window};
    use emporium_kernel::Money;
    use emporium_kernel::ids::{PriceListId, ProductId, TaxRateId, VariantId};
    use proptest::prelude::*;
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn eur() -> Currency {
        "EUR"
            .parse()
            .unwrap_or_else(|_| unreachable!("EUR is a currency code"))
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Rules with one list per `(amount, for the group only, window)`: window 0 is open, 1
    /// ended before now, 2 starts after now; and one tax rate for DE.
    fn rules_of(lists: &[(i64, bool, u8)], variant: VariantId, bp: u32, inclusive: bool) -> Rules {
        let price_lists = lists
            .iter()
            .enumerate()
            .map(|(n, (amount, grouped, window))| PriceList {
                id: PriceListId(Uuid::from_u128(n as u128 + 1)),
                name: format!("list {n}"),
                customer_groups: if *grouped { vec!["vip".into()] } else { vec![] },
                window: match window {
                    1 => Window {
                        starts_at: None,
                        ends_at: Some(at(1_000)),
                    },
                    2 => Window {
                        starts_at: Some(at(3_000)),
                        ends_at: None,
                    },
                    _ => Window::default(),
                },
                prices: vec![ListPrice {
                    variant_id: variant,
                    price: Money {
                        amount: *amount,
                        currency: eur(),
                    },
                }],
            })
            .collect();
        Rules {
            price_lists,
            tax_rates: vec![TaxRate {
                id: TaxRateId(Uuid::from_u128(99)),
                name: "VAT".into(),
                country: "DE".into(),
                state: None,
                basis_points: bp,
                inclusive,
            }],
            ..Rules::default()
        }
    }

    proptest! {
        /// The calculated price is what a cart of one unit pays before promotions and shipping:
        /// the same unit price, price list, tax rate and total.
        #[test]
        fn calculated_prices_are_what_a_one_unit_cart_pays(
            own in 0i64..100_000,
            lists in prop::collection::vec((0i64..100_000, any::<bool>(), 0u8..3), 0..4),
            in_group in any::<bool>(),
            bp in 0u32..3_000,
            inclusive in any::<bool>(),
            in_germany in any::<bool>(),
        ) {
            let variant = VariantId(Uuid::from_u128(7));
            let rules = rules_of(&lists, variant, bp, inclusive);
            let groups: Vec<String> = if in_group { vec!["vip".into()] } else { vec![] };
            let region = in_germany.then(|| Region { country: "DE".into(), state: None });
            let context = PriceContext {
                currency: eur(),
                customer_groups: groups.clone(),
                region: region.clone(),
                now: at(2_000),
            };
            let book = PriceBook::new(&rules);
            let asked = [VariantPrice { variant_id: variant, amount: own }];
            let price = calculated_prices(&book, &rules, &context, &asked).remove(0);
            let cart = Cart {
                currency: eur(),
                items: vec![Item {
                    variant_id: variant,
                    product_id: ProductId(Uuid::from_u128(8)),
                    category_ids: vec![],
                    quantity: 1,
                    unit_price: own,
                    weight_grams: 0,
                }],
                customer_groups: groups,
                shipping_address: region,
                shipping_option: None,
                coupons: vec![],
                now: at(2_000),
            };
            let q = quote(&cart, &rules).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(price.original_amount, own);
            prop_assert_eq!(price.calculated_amount, q.items[0].unit_price);
            prop_assert_eq!(price.price_list_id, q.items[0].price_list_id);
            prop_assert_eq!(price.tax_rate_id, q.tax_rate);
            prop_assert_eq!(price.tax_inclusive, q.tax_inclusive);
            prop_assert_eq!(price.amount_with_tax, if q.tax_inclusive { q.total } else { q.subtotal + q.tax_total });
            prop_assert_eq!(price.amount_without_tax, if q.tax_inclusive { q.total - q.tax_total } else { q.subtotal });
            prop_assert!(price.calculated_amount <= own);
        }
    }

    fn check(country: Option<&str>, state: Option<&str>) -> Result<Option<Region>, Vec<String>> {
        let mut v = Violations::new();
        let region = parse_region(&mut v, country, state);
        v.finish().map(|()| region).map_err(|e| {
            e.into_iter()
                .map(|f| format!("{} {}", f.pointer, f.code))
                .collect()
        })
    }

    #[test]
    fn regions_are_read_and_bad_ones_named() {
        let de = |state: Option<&str>| Region {
            country: "DE".into(),
            state: state.map(str::to_owned),
        };
        assert_eq!(check(None, None), Ok(None));
        assert_eq!(check(Some("de"), None), Ok(Some(de(None))));
        assert_eq!(check(Some("DE"), Some("by")), Ok(Some(de(Some("BY")))));
        assert_eq!(
            check(Some("DEU"), None),
            Err(vec!["/country invalid_format".into()])
        );
        assert_eq!(
            check(Some("D1"), None),
            Err(vec!["/country invalid_format".into()])
        );
        assert_eq!(
            check(Some("DE"), Some("")),
            Err(vec!["/state invalid_format".into()])
        );
        assert_eq!(
            check(None, Some("CA")),
            Err(vec!["/country required".into()])
        );
    }
}
