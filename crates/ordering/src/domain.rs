//! Orders: the events of an order's stream, and the order they fold into. The stream is the
//! truth; the `orders` table is its projection.

use emporium_cart::Address;
use emporium_kernel::Currency;
use emporium_kernel::Event;
use emporium_kernel::ids::{OrderId, PaymentId, ProductId, ShippingOptionId, VariantId};
use emporium_pricing::AppliedDiscount;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, its payment authorised.
    Placed,
    Paid,
    Fulfilled,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
    Returned,
}

impl OrderStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
            Self::Returned => "returned",
        }
    }
}

/// One line of an order, with its figures as quoted at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLine {
    pub variant_id: VariantId,
    pub product_id: ProductId,
    pub sku: String,
    pub product_title: String,
    pub variant_title: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    /// Units fulfilled (packed) so far.
    #[serde(default)]
    pub fulfilled_quantity: i64,
}

/// How an order ships, and what that cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderShipping {
    pub option_id: ShippingOptionId,
    pub name: String,
    pub amount: i64,
    pub discount: i64,
    pub tax: i64,
}

/// An order, as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub id: OrderId,
    pub status: OrderStatus,
    /// The customer (`cus_…`); absent for a guest's order.
    #[schema(required = true)]
    pub customer_id: Option<String>,
    pub email: String,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub shipping_address: Address,
    #[schema(required = true)]
    pub shipping: Option<OrderShipping>,
    pub discounts: Vec<AppliedDiscount>,
    /// Coupon codes redeemed for it.
    pub coupon_codes: Vec<String>,
    pub subtotal: i64,
    pub discount_total: i64,
    pub shipping_total: i64,
    pub tax_total: i64,
    pub tax_inclusive: bool,
    pub total: i64,
    pub payment_id: PaymentId,
    /// Minor units captured and refunded so far.
    #[serde(default)]
    pub captured_amount: i64,
    #[serde(default)]
    pub refunded_amount: i64,
    #[serde(default)]
    #[schema(required = true)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    #[schema(required = true)]
    pub cancel_reason: Option<String>,
    /// A capture, cancellation or refund recorded but not yet settled with the payment: while
    /// it is there the order takes no other action.
    #[serde(default)]
    pub pending_payment: Option<PendingPayment>,
    /// The number of events in the order's stream.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What the payment does for a money action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStep {
    Capture,
    Void,
    Refund,
}

/// The staff action a payment step serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MoneyAction {
    Capture,
    Cancel,
    Refund,
}

/// A money action as recorded before its payment moves: the order's stream says what is
/// about to happen, so a crash or a lost race can always be reconciled with the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingPayment {
    pub action: MoneyAction,
    pub step: PaymentStep,
    /// Minor units the step moves (0 for a void).
    pub amount: i64,
    /// A cancellation's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// The payment operation's idempotency key: the order and the sequence of this request.
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

impl PendingPayment {
    /// The change the order takes once the payment step has succeeded.
    pub fn change(&self) -> Change {
        match self.action {
            MoneyAction::Capture => Change::Paid {
                amount: self.amount,
            },
            MoneyAction::Refund => Change::Refunded {
                amount: self.amount,
            },
            MoneyAction::Cancel => Change::Cancelled {
                reason: self.reason.clone().unwrap_or_default(),
                refunded: if self.step == PaymentStep::Refund {
                    self.amount
                } else {
                    0
                },
            },
        }
    }
}

/// The first event of every order: the order as placed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderPlaced(pub Order);

impl Event for OrderPlaced {
    const TYPE: &'static str = "order.placed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.0.id.to_string()
    }
}

/// A change after placement, as a staff action makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// The payment was captured (`amount` minor units).
    Paid {
        amount: i64,
    },
    /// Units of some lines were fulfilled.
    Fulfilled {
        lines: Vec<(VariantId, i64)>,
    },
    Shipped {
        tracking_number: Option<String>,
    },
    Delivered,
    /// Cancelled before anything was fulfilled; the payment was voided or refunded.
    Cancelled {
        reason: String,
        refunded: i64,
    },
    /// `amount` minor units went back to the shopper.
    Refunded {
        amount: i64,
    },
    Returned,
    /// A money action was recorded; its payment step runs next.
    PaymentRequested {
        pending: PendingPayment,
    },
    /// The pending money action's payment step was refused: nothing moved.
    PaymentFailed {
        code: String,
        detail: String,
    },
}

impl Change {
    /// The event type the change is stored and published as.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Paid { .. } => "order.paid",
            Self::Fulfilled { .. } => "order.fulfilled",
            Self::Shipped { .. } => "order.shipped",
            Self::Delivered => "order.delivered",
            Self::Cancelled { .. } => "order.cancelled",
            Self::Refunded { .. } => "order.refunded",
            Self::Returned => "order.returned",
            Self::PaymentRequested { .. } => "order.payment_requested",
            Self::PaymentFailed { .. } => "order.payment_failed",
        }
    }
}

/// Why a change cannot apply to an order as it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Illegal(pub String);

/// The order after `change`, or why the change is illegal now. The one place the lifecycle
/// rules live: placed → paid → fulfilled (by parts) → shipped → delivered → returned;
/// cancelled from placed or paid while nothing is fulfilled; refunds (by parts) once paid, up to
/// what was captured. A capture, cancellation or refund is first requested (the order then
/// takes nothing but that change or the payment's failure), then made.
pub fn apply(order: &Order, change: &Change, at: OffsetDateTime) -> Result<Order, Illegal> {
    let mut next = match (&order.pending_payment, change) {
        (None, Change::PaymentRequested { pending }) => {
            apply_now(order, &pending.change())?;
            let mut next = order.clone();
            next.pending_payment = Some(pending.clone());
            next
        }
        (None, Change::PaymentFailed { .. }) => {
            return Err(Illegal("no payment action is pending".to_owned()));
        }
        (None, change) => apply_now(order, change)?,
        (Some(_), Change::PaymentFailed { .. }) => {
            let mut next = order.clone();
            next.pending_payment = None;
            next
        }
        (Some(pending), change) if *change == pending.change() => {
            let mut next = apply_now(order, change)?;
            next.pending_payment = None;
            next
        }
        (Some(_), _) => {
            return Err(Illegal(
                "a capture, cancellation or refund of this order is in progress".to_owned(),
            ));
        }
    };
    next.version += 1;
    next.updated_at = at;
    Ok(next)
}

/// The order after a lifecycle change, its version and time untouched.
fn apply_now(order: &Order, change: &Change) -> Result<Order, Illegal> {
    use OrderStatus as S;
    let mut next = order.clone();
    let illegal = |what: &str| {
        Err(Illegal(format!(
            "a {} order cannot be {what}",
            order.status.as_str()
        )))
    };
    let nothing_fulfilled = order.lines.iter().all(|l| l.fulfilled_quantity == 0);
    match change {
        Change::Paid { amount } => {
            if order.status != S::Placed {
                return illegal("captured");
            }
            if !(0..=order.total).contains(amount) {
                return Err(Illegal(format!(
                    "a capture of {amount} is outside 0..={}",
                    order.total
                )));
            }
            next.status = S::Paid;
            next.captured_amount = *amount;
        }
        Change::Fulfilled { lines } => {
            if order.status != S::Paid {
                return illegal("fulfilled");
            }
            if lines.is_empty() {
                return Err(Illegal("name at least one line to fulfil".to_owned()));
            }
            for (variant, quantity) in lines {
                let Some(line) = next.lines.iter_mut().find(|l| l.variant_id == *variant) else {
                    return Err(Illegal(format!("the order has no line for {variant}")));
                };
                let within = line
                    .fulfilled_quantity
                    .checked_add(*quantity)
                    .is_some_and(|total| total <= line.quantity);
                if *quantity < 1 || !within {
                    return Err(Illegal(format!(
                        "{variant}: {} of {} units are fulfilled; {quantity} more is too many",
                        line.fulfilled_quantity, line.quantity
                    )));
                }
                line.fulfilled_quantity += *quantity;
            }
            if next
                .lines
                .iter()
                .all(|l| l.fulfilled_quantity == l.quantity)
            {
                next.status = S::Fulfilled;
            }
        }
        Change::Shipped { tracking_number } => {
            if order.status != S::Fulfilled {
                return illegal("shipped");
            }
            next.status = S::Shipped;
            next.tracking_number.clone_from(tracking_number);
        }
        Change::Delivered => {
            if order.status != S::Shipped {
                return illegal("delivered");
            }
            next.status = S::Delivered;
        }
        Change::Cancelled { reason, refunded } => {
            if !matches!(order.status, S::Placed | S::Paid) || !nothing_fulfilled {
                return illegal("cancelled");
            }
            let within = order
                .refunded_amount
                .checked_add(*refunded)
                .is_some_and(|total| total <= order.captured_amount);
            if *refunded < 0 || !within {
                return Err(Illegal(format!(
                    "a cancellation cannot refund {refunded} of {} captured",
                    order.captured_amount
                )));
            }
            next.status = S::Cancelled;
            next.cancel_reason = Some(reason.clone());
            next.refunded_amount += refunded;
        }
        Change::Refunded { amount } => {
            if matches!(order.status, S::Placed | S::Cancelled) {
                return illegal("refunded");
            }
            let within = order
                .refunded_amount
                .checked_add(*amount)
                .is_some_and(|total| total <= order.captured_amount);
            if *amount < 1 || !within {
                return Err(Illegal(format!(
                    "{} of {} captured is refunded already; {amount} more is too much",
                    order.refunded_amount, order.captured_amount
                )));
            }
            next.refunded_amount += amount;
            if next.refunded_amount == next.captured_amount {
                next.status = S::Refunded;
            }
        }
        Change::Returned => {
            if order.status != S::Delivered {
                return illegal("returned");
            }
            next.status = S::Returned;
        }
        Change::PaymentRequested { .. } | Change::PaymentFailed { .. } => {
            return Err(Illegal(
                "a payment step is not a lifecycle change".to_owned(),
            ));
        }
    }
    Ok(next)
}

/// An event of an order's stream, as stored.
#[derive(Debug, Clone)]
pub enum OrderEvent {
    Placed(Box<Order>),
    Changed(Change, OffsetDateTime),
}

/// A change as published: the change and the order after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderChanged {
    pub change: Change,
    pub order: Order,
}

impl Event for OrderChanged {
    const TYPE: &'static str = "order.changed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.order.id.to_string()
    }
}

impl OrderEvent {
    /// The stored type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Placed(_) => OrderPlaced::TYPE,
            Self::Changed(change, _) => change.type_name(),
        }
    }

    /// Reads a stored event.
    pub fn parse(event_type: &str, data: &str, at: OffsetDateTime) -> Result<Self, String> {
        if event_type == OrderPlaced::TYPE {
            return serde_json::from_str(data)
                .map(|o| Self::Placed(Box::new(o)))
                .map_err(|e| e.to_string());
        }
        serde_json::from_str::<Change>(data)
            .map(|c| Self::Changed(c, at))
            .map_err(|e| format!("{event_type}: {e}"))
    }

    /// The stored payload.
    pub fn data(&self) -> Result<String, serde_json::Error> {
        match self {
            Self::Placed(order) => serde_json::to_string(order),
            Self::Changed(change, _) => serde_json::to_string(change),
        }
    }
}

/// Folds a stream into the order it describes; `None` for an empty stream, one that does not
/// begin with `order.placed`, or one holding a change its order could not take.
pub fn fold(events: impl IntoIterator<Item = OrderEvent>) -> Option<Order> {
    let mut order: Option<Order> = None;
    for event in events {
        order = match (order, event) {
            (None, OrderEvent::Placed(placed)) => Some(*placed),
            (Some(current), OrderEvent::Changed(change, at)) => {
                Some(apply(&current, &change, at).ok()?)
            }
            _ => return None,
        };
    }
    order
}
