//! Laws of the order lifecycle over random sequences of staff changes: whatever is asked, the
//! order never fulfils more than was bought, never refunds more than was captured, and a
//! refused change leaves it as it was, amounts at the edge of `i64` are refused rather than
//! wrapped, a pending money action admits only its outcome; folding the accepted changes gives
//! the same order.

use emporium_cart::Address;
use emporium_kernel::ids::{OrderId, PaymentId, ProductId, VariantId};
use emporium_ordering::{
    Change, MoneyAction, OrderEvent, PaymentStep, PendingPayment, apply, fold,
};
use emporium_ordering::{Order, OrderLine, OrderStatus};
use proptest::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

fn at() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
}

fn variant(n: u128) -> VariantId {
    VariantId(Uuid::from_u128(n))
}

fn placed() -> Order {
    let line = |n: u128, quantity: i64| OrderLine {
        variant_id: variant(n),
        product_id: ProductId(Uuid::from_u128(100 + n)),
        sku: format!("SKU-{n}"),
        product_title: "Kettle".into(),
        variant_title: "Default".into(),
        quantity,
        unit_price: 1_000,
        subtotal: 1_000 * quantity,
        discount: 0,
        tax: 0,
        total: 1_000 * quantity,
        fulfilled_quantity: 0,
    };
    Order {
        id: OrderId(Uuid::from_u128(1)),
        status: OrderStatus::Placed,
        customer_id: None,
        email: "a@example.com".into(),
        currency: "EUR".parse().expect("EUR"),
        lines: vec![line(1, 2), line(2, 3)],
        shipping_address: Address {
            name: "A".into(),
            line1: "B".into(),
            line2: None,
            city: "C".into(),
            postal_code: "1".into(),
            country: "DE".into(),
            state: None,
        },
        shipping: None,
        discounts: Vec::new(),
        coupon_codes: Vec::new(),
        subtotal: 5_000,
        discount_total: 0,
        shipping_total: 0,
        tax_total: 0,
        tax_inclusive: true,
        total: 5_000,
        payment_id: PaymentId(Uuid::from_u128(2)),
        captured_amount: 0,
        refunded_amount: 0,
        tracking_number: None,
        cancel_reason: None,
        pending_payment: None,
        version: 1,
        placed_at: at(),
        updated_at: at(),
    }
}

fn arb_change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => arb_lifecycle(),
        // Amounts at the edge of i64: checked, never wrapped.
        1 => Just(Change::Refunded { amount: i64::MAX }),
        1 => Just(Change::Fulfilled { lines: vec![(variant(1), 1), (variant(1), i64::MAX)] }),
        // A money action requested, then settled or failed.
        2 => (0u8..3, 0i64..6_000).prop_map(|(action, amount)| {
            let (action, step) = match action {
                0 => (MoneyAction::Capture, PaymentStep::Capture),
                1 => (MoneyAction::Cancel, PaymentStep::Refund),
                _ => (MoneyAction::Refund, PaymentStep::Refund),
            };
            Change::PaymentRequested {
                pending: PendingPayment {
                    action,
                    step,
                    amount,
                    reason: None,
                    key: "k".into(),
                    requested_at: at(),
                },
            }
        }),
        1 => Just(Change::PaymentFailed { code: "c".into(), detail: "d".into() }),
    ]
}

fn arb_lifecycle() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0i64..6_000).prop_map(|amount| Change::Paid { amount }),
        proptest::collection::vec((1u128..4, -1i64..4), 0..3).prop_map(|l| Change::Fulfilled {
            lines: l.into_iter().map(|(v, q)| (variant(v), q)).collect()
        }),
        Just(Change::Shipped {
            tracking_number: None
        }),
        Just(Change::Delivered),
        (0i64..6_000).prop_map(|refunded| Change::Cancelled {
            reason: "r".into(),
            refunded
        }),
        (-5i64..6_000).prop_map(|amount| Change::Refunded { amount }),
        Just(Change::Returned),
    ]
}

proptest! {
    #[test]
    fn no_sequence_of_changes_breaks_the_order(changes in proptest::collection::vec(arb_change(), 0..12)) {
        let mut order = placed();
        let mut accepted = vec![OrderEvent::Placed(Box::new(order.clone()))];
        for change in changes {
            let settles = order.pending_payment.as_ref().map(PendingPayment::change);
            if let Ok(next) = apply(&order, &change, at()) {
                prop_assert_eq!(next.version, order.version + 1);
                // While a money action is pending only its outcome (or its failure) applies.
                if let Some(expected) = &settles {
                    let failed = matches!(change, Change::PaymentFailed { .. });
                    prop_assert!(failed || change == *expected);
                    prop_assert!(next.pending_payment.is_none());
                }
                order = next;
                accepted.push(OrderEvent::Changed(change, at()));
            }
            for line in &order.lines {
                prop_assert!(line.fulfilled_quantity >= 0 && line.fulfilled_quantity <= line.quantity);
            }
            prop_assert!(order.refunded_amount >= 0);
            prop_assert!(order.refunded_amount <= order.captured_amount);
            prop_assert!(order.captured_amount <= order.total);
            if order.status == OrderStatus::Fulfilled {
                prop_assert!(order.lines.iter().all(|l| l.fulfilled_quantity == l.quantity));
            }
        }
        prop_assert_eq!(fold(accepted), Some(order));
    }
}
