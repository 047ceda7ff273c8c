//! The quote: worked examples of each rule, then the laws every quote keeps, over random carts
//! and rules.

use emporium_kernel::ids::{
    CategoryId, PriceListId, ProductId, PromotionId, ShippingOptionId, TaxRateId, VariantId,
};
use emporium_kernel::{Currency, Money};
use emporium_pricing::quote::{allocate, included_tax, share};
use emporium_pricing::{
    Benefit, Cart, Conditions, CouponCode, Item, ListPrice, PriceList, Promotion, Region, Rules,
    ShippingOption, ShippingQuote, ShippingRate, Stacking, Target, TaxRate, WeightTier, Window,
    quote,
};
use proptest::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

fn eur() -> Currency {
    "EUR".parse().expect("EUR")
}

fn money(amount: i64) -> Money {
    Money {
        amount,
        currency: eur(),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn item(n: u128, unit_price: i64, quantity: u32) -> Item {
    Item {
        variant_id: VariantId(id(n)),
        product_id: ProductId(id(1000 + n)),
        category_ids: vec![CategoryId(id(2000 + n % 3))],
        quantity,
        unit_price,
        weight_grams: 500,
    }
}

fn cart(items: Vec<Item>) -> Cart {
    Cart {
        currency: eur(),
        items,
        customer_groups: Vec::new(),
        shipping_address: None,
        shipping_option: None,
        coupons: Vec::new(),
        now: now(),
    }
}

fn promotion(n: u128, benefit: Benefit) -> Promotion {
    Promotion {
        id: PromotionId(id(n)),
        name: format!("promotion {n}"),
        benefit,
        conditions: Conditions::default(),
        needs_coupon: false,
        stacking: Stacking::Combinable,
        priority: 0,
    }
}

fn rules_with(promotions: Vec<Promotion>) -> Rules {
    Rules {
        promotions,
        ..Rules::default()
    }
}

#[test]
fn shares_round_half_up() {
    let cases = [
        (1_000, 1_000, 100),
        (25, 1_000, 3), // 2.5 -> 3
        (24, 1_000, 2), // 2.4 -> 2
        (1_999, 10_000, 1_999),
        (0, 5_000, 0),
        (1, 5_000, 1), // 0.5 -> 1
    ];
    for (amount, bp, want) in cases {
        assert_eq!(share(amount, bp), want, "{bp} bp of {amount}");
    }
}

#[test]
fn included_tax_is_the_part_of_a_gross_amount() {
    // 20 % VAT inside 120.00 is 20.00; inside 9.99 it is 1.665 -> 1.67.
    assert_eq!(included_tax(12_000, 2_000), 2_000);
    assert_eq!(included_tax(999, 2_000), 167);
    assert_eq!(included_tax(0, 2_000), 0);
}

#[test]
fn allocation_favours_the_largest_remainders() {
    assert_eq!(allocate(10, &[5, 5, 5]), vec![4, 3, 3]);
    // Never more than a weight, even when asked for more than all of them.
    assert_eq!(allocate(10, &[1, 1, 1]), vec![1, 1, 1]);
    assert_eq!(allocate(100, &[50, 30, 20]), vec![50, 30, 20]);
    assert_eq!(allocate(5, &[0, 10]), vec![0, 5]);
    assert_eq!(allocate(0, &[3, 4]), vec![0, 0]);
}

#[test]
fn the_lowest_applicable_price_list_price_wins() {
    let sale = PriceList {
        id: PriceListId(id(1)),
        name: "sale".into(),
        customer_groups: Vec::new(),
        window: Window::default(),
        prices: vec![ListPrice {
            variant_id: VariantId(id(1)),
            price: money(800),
        }],
    };
    let vip = PriceList {
        id: PriceListId(id(2)),
        name: "vip".into(),
        customer_groups: vec!["vip".into()],
        window: Window::default(),
        prices: vec![ListPrice {
            variant_id: VariantId(id(1)),
            price: money(700),
        }],
    };
    let ended = PriceList {
        id: PriceListId(id(3)),
        name: "ended".into(),
        customer_groups: Vec::new(),
        window: Window {
            starts_at: None,
            ends_at: Some(now()),
        },
        prices: vec![ListPrice {
            variant_id: VariantId(id(1)),
            price: money(100),
        }],
    };
    let rules = Rules {
        price_lists: vec![sale, vip, ended],
        ..Rules::default()
    };
    let mut c = cart(vec![item(1, 1_000, 2), item(2, 500, 1)]);

    let guest = quote(&c, &rules).expect("quote");
    assert_eq!(guest.items[0].unit_price, 800);
    assert_eq!(guest.items[0].compare_at_price, Some(1_000));
    assert_eq!(guest.items[0].price_list_id, Some(PriceListId(id(1))));
    assert_eq!(guest.items[1].unit_price, 500);
    assert_eq!(guest.items[1].price_list_id, None);
    assert_eq!(guest.subtotal, 2_100);

    c.customer_groups = vec!["vip".into()];
    let vip = quote(&c, &rules).expect("quote");
    assert_eq!(vip.items[0].unit_price, 700);
    assert_eq!(vip.subtotal, 1_900);
}

#[test]
fn item_discounts_apply_before_order_discounts() {
    let rules = rules_with(vec![
        promotion(
            1,
            Benefit::OrderPercent {
                basis_points: 1_000,
            },
        ),
        promotion(
            2,
            Benefit::ItemsPercent {
                basis_points: 5_000,
                target: Target {
                    variants: vec![VariantId(id(1))],
                    ..Target::default()
                },
            },
        ),
    ]);
    let q = quote(&cart(vec![item(1, 1_000, 1), item(2, 1_000, 1)]), &rules).expect("quote");
    // Half off item 1 (500), then 10 % off the 1,500 left (150), spread 50/100.
    assert_eq!(q.items[0].discount, 500 + 50);
    assert_eq!(q.items[1].discount, 100);
    assert_eq!(q.discount_total, 650);
    assert_eq!(q.total, 1_350);
    let amounts: Vec<_> = q.discounts.iter().map(|d| d.amount).collect();
    assert_eq!(amounts, vec![500, 150]);
}

#[test]
fn buy_two_get_one_free_gives_the_cheapest_unit() {
    let rules = rules_with(vec![promotion(
        1,
        Benefit::BuyXGetY {
            buy: 2,
            get: 1,
            basis_points: 10_000,
            target: Target::default(),
        },
    )]);
    let q = quote(&cart(vec![item(1, 3_000, 2), item(2, 1_000, 1)]), &rules).expect("quote");
    assert_eq!(q.items[1].discount, 1_000);
    assert_eq!(q.items[0].discount, 0);
    // Seven units: two groups of three, so two free units, the two cheapest.
    let q = quote(
        &cart(vec![
            item(1, 3_000, 5),
            item(2, 1_000, 1),
            item(3, 2_000, 1),
        ]),
        &rules,
    )
    .expect("quote");
    assert_eq!(q.discount_total, 1_000 + 2_000);
}

#[test]
fn an_exclusive_promotion_applies_alone_when_it_saves_more() {
    let mut big = promotion(
        3,
        Benefit::OrderPercent {
            basis_points: 3_000,
        },
    );
    big.stacking = Stacking::Exclusive;
    big.needs_coupon = true;
    let rules = rules_with(vec![
        promotion(
            1,
            Benefit::OrderPercent {
                basis_points: 1_000,
            },
        ),
        promotion(2, Benefit::OrderFixed { amount: money(100) }),
        big,
    ]);
    let mut c = cart(vec![item(1, 10_000, 1)]);
    let without = quote(&c, &rules).expect("quote");
    // 10 % of 100.00, then 1.00 off: both combinable ones apply.
    assert_eq!(without.discount_total, 1_000 + 100);

    c.coupons = vec![CouponCode {
        code: "BIG30".into(),
        promotion_id: Some(PromotionId(id(3))),
    }];
    let with = quote(&c, &rules).expect("quote");
    assert_eq!(with.discount_total, 3_000);
    assert_eq!(with.discounts.len(), 1);
    assert_eq!(with.discounts[0].code.as_deref(), Some("BIG30"));
    assert!(with.coupons[0].applied);

    // When the combinable ones save more, the exclusive coupon is refused, with the reason.
    let mut small = rules.clone();
    small.promotions[2].benefit = Benefit::OrderPercent { basis_points: 500 };
    let q = quote(&c, &small).expect("quote");
    assert_eq!(q.discount_total, 1_100);
    assert!(!q.coupons[0].applied);
    assert_eq!(q.coupons[0].reason, Some("coupon_not_combinable"));
}

#[test]
fn coupons_that_do_not_qualify_say_why() {
    let mut min = promotion(
        1,
        Benefit::OrderPercent {
            basis_points: 1_000,
        },
    );
    min.needs_coupon = true;
    min.conditions.min_subtotal = Some(money(5_000));
    let rules = rules_with(vec![min]);
    let mut c = cart(vec![item(1, 1_000, 1)]);
    c.coupons = vec![
        CouponCode {
            code: "TEN".into(),
            promotion_id: Some(PromotionId(id(1))),
        },
        CouponCode {
            code: "NOPE".into(),
            promotion_id: None,
        },
    ];
    let q = quote(&c, &rules).expect("quote");
    assert_eq!(q.discount_total, 0);
    let reasons: Vec<_> = q.coupons.iter().map(|o| o.reason).collect();
    assert_eq!(
        reasons,
        vec![Some("coupon_not_applicable"), Some("coupon_unknown")]
    );

    c.items[0].quantity = 5;
    let q = quote(&c, &rules).expect("quote");
    assert_eq!(q.discount_total, 500);
    assert!(q.coupons[0].applied);
}

fn shipping_rules() -> Rules {
    Rules {
        shipping_options: vec![
            ShippingOption {
                id: ShippingOptionId(id(1)),
                name: "standard".into(),
                countries: vec!["DE".into(), "FR".into()],
                rate: ShippingRate::ByWeight {
                    currency: eur(),
                    tiers: vec![
                        WeightTier {
                            up_to_grams: 5_000,
                            amount: 990,
                        },
                        WeightTier {
                            up_to_grams: 1_000,
                            amount: 490,
                        },
                    ],
                },
            },
            ShippingOption {
                id: ShippingOptionId(id(2)),
                name: "express".into(),
                countries: Vec::new(),
                rate: ShippingRate::Flat {
                    price: money(1_500),
                },
            },
        ],
        tax_rates: vec![
            TaxRate {
                id: TaxRateId(id(1)),
                name: "DE VAT".into(),
                country: "DE".into(),
                state: None,
                basis_points: 1_900,
                inclusive: true,
            },
            TaxRate {
                id: TaxRateId(id(2)),
                name: "US sales tax".into(),
                country: "US".into(),
                state: None,
                basis_points: 500,
                inclusive: false,
            },
            TaxRate {
                id: TaxRateId(id(3)),
                name: "NY sales tax".into(),
                country: "US".into(),
                state: Some("NY".into()),
                basis_points: 800,
                inclusive: false,
            },
        ],
        ..Rules::default()
    }
}

#[test]
fn shipping_is_priced_by_weight_tier_and_country() {
    let rules = shipping_rules();
    let mut c = cart(vec![item(1, 1_000, 2)]); // 1,000 g
    c.shipping_address = Some(Region {
        country: "DE".into(),
        state: None,
    });
    c.shipping_option = Some(ShippingOptionId(id(1)));
    let q = quote(&c, &rules).expect("quote");
    assert!(matches!(
        q.shipping,
        ShippingQuote::Priced { amount: 490, .. }
    ));

    c.items[0].quantity = 4; // 2,000 g
    let q = quote(&c, &rules).expect("quote");
    assert!(matches!(
        q.shipping,
        ShippingQuote::Priced { amount: 990, .. }
    ));

    c.items[0].quantity = 11; // 5,500 g: over the last tier
    let q = quote(&c, &rules).expect("quote");
    assert!(matches!(q.shipping, ShippingQuote::Unavailable { .. }));
    assert_eq!(q.shipping_total, 0);

    c.items[0].quantity = 1;
    c.shipping_address = Some(Region {
        country: "US".into(),
        state: None,
    });
    let q = quote(&c, &rules).expect("quote");
    assert!(matches!(q.shipping, ShippingQuote::Unavailable { .. }));
    let offered: Vec<_> = emporium_pricing::shipping_options(&c, &rules)
        .into_iter()
        .map(|(o, amount)| (o.name.clone(), amount))
        .collect();
    assert_eq!(offered, vec![("express".to_owned(), 1_500)]);
}

#[test]
fn tax_is_included_or_added_by_region_and_a_state_rate_wins() {
    let rules = shipping_rules();
    let mut c = cart(vec![item(1, 11_900, 1)]);
    c.shipping_address = Some(Region {
        country: "DE".into(),
        state: None,
    });
    let de = quote(&c, &rules).expect("quote");
    assert!(de.tax_inclusive);
    assert_eq!(de.tax_total, 1_900);
    assert_eq!(de.total, 11_900);

    c.shipping_address = Some(Region {
        country: "US".into(),
        state: Some("NY".into()),
    });
    let ny = quote(&c, &rules).expect("quote");
    assert_eq!(ny.tax_rate, Some(TaxRateId(id(3))));
    assert_eq!(ny.tax_total, 952);
    assert_eq!(ny.total, 11_900 + 952);

    c.shipping_address = Some(Region {
        country: "US".into(),
        state: Some("OR".into()),
    });
    let us = quote(&c, &rules).expect("quote");
    assert_eq!(us.tax_rate, Some(TaxRateId(id(2))));
    assert_eq!(us.tax_total, 595);
}

#[test]
fn free_shipping_takes_off_the_shipping_and_nothing_else() {
    let mut rules = shipping_rules();
    rules.promotions = vec![promotion(1, Benefit::FreeShipping)];
    let mut c = cart(vec![item(1, 1_000, 1)]);
    c.shipping_address = Some(Region {
        country: "FR".into(),
        state: None,
    });
    c.shipping_option = Some(ShippingOptionId(id(2)));
    let q = quote(&c, &rules).expect("quote");
    assert!(matches!(
        q.shipping,
        ShippingQuote::Priced {
            amount: 1_500,
            discount: 1_500,
            ..
        }
    ));
    assert_eq!(q.shipping_total, 0);
    assert_eq!(q.discount_total, 1_500);
    assert_eq!(q.total, 1_000);
}

#[test]
fn carts_outside_the_limits_are_refused() {
    let rules = Rules::default();
    let mut c = cart(vec![item(1, 100, 0)]);
    assert!(matches!(
        quote(&c, &rules),
        Err(emporium_pricing::QuoteError::Quantity { index: 0 })
    ));
    c.items[0].quantity = 1;
    c.items[0].unit_price = -1;
    assert!(matches!(
        quote(&c, &rules),
        Err(emporium_pricing::QuoteError::UnitPrice { index: 0 })
    ));
}

// Laws over random carts and rules.

fn arb_target() -> impl Strategy<Value = Target> {
    (
        proptest::collection::vec(0u128..6, 0..2),
        proptest::collection::vec(0u128..3, 0..2),
    )
        .prop_map(|(variants, categories)| Target {
            products: Vec::new(),
            variants: variants.into_iter().map(|n| VariantId(id(n))).collect(),
            categories: categories
                .into_iter()
                .map(|n| CategoryId(id(2000 + n)))
                .collect(),
        })
}

fn arb_benefit() -> impl Strategy<Value = Benefit> {
    prop_oneof![
        (0u32..=10_000).prop_map(|basis_points| Benefit::OrderPercent { basis_points }),
        (0i64..200_000).prop_map(|a| Benefit::OrderFixed { amount: money(a) }),
        (0u32..=10_000, arb_target()).prop_map(|(basis_points, target)| Benefit::ItemsPercent {
            basis_points,
            target
        }),
        (0i64..50_000, arb_target()).prop_map(|(a, target)| Benefit::ItemsFixed {
            amount: money(a),
            target
        }),
        (0u32..4, 0u32..3, 0u32..=10_000, arb_target()).prop_map(
            |(buy, get, basis_points, target)| Benefit::BuyXGetY {
                buy,
                get,
                basis_points,
                target
            }
        ),
        Just(Benefit::FreeShipping),
    ]
}

fn arb_promotion() -> impl Strategy<Value = Promotion> {
    (
        0u128..8,
        arb_benefit(),
        any::<bool>(),
        any::<bool>(),
        -2i32..3,
        0i64..100_000,
    )
        .prop_map(
            |(n, benefit, exclusive, needs_coupon, priority, min)| Promotion {
                id: PromotionId(id(n)),
                name: format!("p{n}"),
                benefit,
                conditions: Conditions {
                    min_subtotal: (min > 50_000).then(|| money(min)),
                    ..Conditions::default()
                },
                needs_coupon,
                stacking: if exclusive {
                    Stacking::Exclusive
                } else {
                    Stacking::Combinable
                },
                priority,
            },
        )
}

fn arb_case() -> impl Strategy<Value = (Cart, Rules)> {
    let items = proptest::collection::vec((0u128..6, 0i64..100_000, 1u32..20), 0..8);
    let promotions = proptest::collection::vec(arb_promotion(), 0..6);
    let coupons = proptest::collection::vec(0u128..10, 0..3);
    (
        items,
        promotions,
        coupons,
        0usize..4,
        proptest::option::of(prop_oneof![Just(1u128), Just(2u128)]),
    )
        .prop_map(|(items, promotions, coupons, place, option)| {
            let mut c = cart(
                items
                    .into_iter()
                    .map(|(n, price, qty)| item(n, price, qty))
                    .collect(),
            );
            c.coupons = coupons
                .into_iter()
                .map(|n| CouponCode {
                    code: format!("C{n}"),
                    promotion_id: (n < 8).then(|| PromotionId(id(n))),
                })
                .collect();
            c.shipping_address =
                [None, Some("DE"), Some("US"), Some("FR")][place].map(|country| Region {
                    country: country.into(),
                    state: Some("NY".into()),
                });
            c.shipping_option = option.map(|n| ShippingOptionId(id(n)));
            let mut rules = shipping_rules();
            // Promotion ids are unique in a store.
            let mut seen = std::collections::HashSet::new();
            rules.promotions = promotions
                .into_iter()
                .filter(|p| seen.insert(p.id))
                .collect();
            (c, rules)
        })
}

proptest! {
    #[test]
    fn totals_are_never_negative((c, rules) in arb_case()) {
        let q = quote(&c, &rules).expect("quote");
        prop_assert!(q.subtotal >= 0 && q.discount_total >= 0 && q.tax_total >= 0);
        prop_assert!(q.shipping_total >= 0 && q.total >= 0);
        for i in &q.items {
            prop_assert!(i.subtotal >= 0 && i.discount >= 0 && i.tax >= 0 && i.total >= 0);
        }
    }

    #[test]
    fn discounts_never_exceed_what_they_apply_to((c, rules) in arb_case()) {
        let q = quote(&c, &rules).expect("quote");
        for i in &q.items {
            prop_assert!(i.discount <= i.subtotal, "item discount {} over {}", i.discount, i.subtotal);
        }
        if let ShippingQuote::Priced { amount, discount, .. } = q.shipping {
            prop_assert!(discount <= amount);
        }
        let shipping = match q.shipping { ShippingQuote::Priced { amount, .. } => amount, _ => 0 };
        prop_assert!(q.discount_total <= q.subtotal + shipping);
    }

    #[test]
    fn totals_add_up((c, rules) in arb_case()) {
        let q = quote(&c, &rules).expect("quote");
        let (shipping, shipping_discount, shipping_tax) = match q.shipping {
            ShippingQuote::Priced { amount, discount, tax, .. } => (amount, discount, tax),
            _ => (0, 0, 0),
        };
        prop_assert_eq!(q.subtotal, q.items.iter().map(|i| i.subtotal).sum::<i64>());
        prop_assert_eq!(q.discount_total, q.discounts.iter().map(|d| d.amount).sum::<i64>());
        prop_assert_eq!(
            q.discount_total,
            q.items.iter().map(|i| i.discount).sum::<i64>() + shipping_discount
        );
        prop_assert_eq!(q.tax_total, q.items.iter().map(|i| i.tax).sum::<i64>() + shipping_tax);
        prop_assert_eq!(q.shipping_total, shipping - shipping_discount);
        let tax_on_top = if q.tax_inclusive { 0 } else { q.tax_total };
        prop_assert_eq!(q.total, q.subtotal - q.discount_total + shipping + tax_on_top);
        prop_assert_eq!(
            q.total,
            q.items.iter().map(|i| i.total).sum::<i64>() + q.shipping_total
                + if q.tax_inclusive { 0 } else { shipping_tax }
        );
        if q.tax_inclusive {
            prop_assert!(q.tax_total <= q.total);
        }
    }

    #[test]
    fn the_order_of_the_rules_does_not_change_the_quote((c, rules) in arb_case()) {
        let mut reversed = rules.clone();
        reversed.promotions.reverse();
        reversed.tax_rates.reverse();
        prop_assert_eq!(quote(&c, &rules).expect("quote"), quote(&c, &reversed).expect("quote"));
    }

    #[test]
    fn a_coupon_never_lowers_the_discount((c, rules) in arb_case()) {
        let mut without = c.clone();
        without.coupons.clear();
        let with = quote(&c, &rules).expect("quote");
        let without = quote(&without, &rules).expect("quote");
        prop_assert!(with.discount_total >= without.discount_total);
    }

    #[test]
    fn allocation_adds_up_and_never_exceeds_a_weight(
        weights in proptest::collection::vec(0i64..1_000_000, 0..12),
        fraction in 0u32..=10_000,
    ) {
        let sum: i64 = weights.iter().sum();
        let total = share(sum, fraction);
        let shares = allocate(total, &weights);
        prop_assert_eq!(shares.iter().sum::<i64>(), if sum > 0 { total } else { 0 });
        for (s, w) in shares.iter().zip(&weights) {
            prop_assert!(*s >= 0 && s <= w);
        }
    }

    #[test]
    fn included_tax_never_exceeds_the_amount(amount in 0i64..1_000_000_000_000, bp in 0u32..50_000) {
        let tax = included_tax(amount, bp);
        prop_assert!(tax >= 0 && tax <= amount);
    }
}
