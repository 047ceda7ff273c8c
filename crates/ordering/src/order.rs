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
    pub customer_id: Option<String>,
    pub email: String,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub shipping_address: Address,
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
    /// The number of events in the order's stream.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
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

/// An event of an order's stream, as stored.
#[derive(Debug, Clone)]
pub enum OrderEvent {
    Placed(Order),
}

impl OrderEvent {
    /// The stored type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Placed(_) => OrderPlaced::TYPE,
        }
    }

    /// Reads a stored event.
    pub fn parse(event_type: &str, data: &str) -> Result<Self, String> {
        match event_type {
            OrderPlaced::TYPE => serde_json::from_str(data)
                .map(Self::Placed)
                .map_err(|e| e.to_string()),
            other => Err(format!("unknown order event {other}")),
        }
    }

    /// The stored payload.
    pub fn data(&self) -> Result<String, serde_json::Error> {
        match self {
            Self::Placed(order) => serde_json::to_string(order),
        }
    }
}

/// Folds a stream into the order it describes; `None` for an empty stream or one that does
/// not begin with `order.placed`.
pub fn fold(events: impl IntoIterator<Item = OrderEvent>) -> Option<Order> {
    let mut order: Option<Order> = None;
    for (n, event) in events.into_iter().enumerate() {
        match event {
            OrderEvent::Placed(placed) if n == 0 => order = Some(placed),
            OrderEvent::Placed(_) => return None,
        }
    }
    order
}
