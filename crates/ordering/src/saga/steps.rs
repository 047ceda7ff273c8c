//! The saga's steps, in order: check the cart, reserve, redeem and open the payment, authorise,
//! place the order. Each step's outcome is committed before the next begins.

use emporium_inventory::{InventoryError, ReserveLine};
use emporium_kernel::ids::{CheckoutId, CouponId, OrderId, PaymentId};
use emporium_kernel::token::{new_token, sha256_hex as hash};
use emporium_kernel::{DomainError, Event as _, Money};
use emporium_payments::{OpenedPayment, PaymentError};
use emporium_pricing::{PricingError, ShippingQuote};

use super::api::failure;
use super::{
    CheckoutFailure, CheckoutOutcome, CheckoutRequest, CheckoutService, CheckoutState, PlacedOrder,
    RESERVATION_TTL,
};
use crate::domain::{Order, OrderEvent, OrderLine, OrderPlaced, OrderShipping, OrderStatus};
use crate::error::OrderingError;
use crate::store::{self, CheckoutRow, EventRow, OrderRow};

/// A step's result: what it made, or the answer the checkout fails with.
type Step<T> = Result<Result<T, CheckoutFailure>, OrderingError>;

impl CheckoutService {
    /// Runs the saga for the claimed checkout `row` over `cart` as it was read; any answer
    /// but an order is given after compensating what was done. An `Err` is an unexpected
    /// failure the caller compensates.
    pub(super) async fn run(
        &self,
        row: &mut CheckoutRow,
        cart: emporium_cart::Cart,
        request: &CheckoutRequest,
        customer: Option<&str>,
    ) -> Result<CheckoutOutcome, OrderingError> {
        if let Some(refused) = refusal(&cart) {
            return self.fail(row, refused).await;
        }
        match self.reserve(row, &cart).await? {
            Ok(()) => self.crash.hit("checkout.after_reserve"),
            Err(refused) => return self.fail(row, refused).await,
        }
        let (opened, applied) = match self.redeem_and_open(row, &cart, request, customer).await? {
            Ok(done) => done,
            Err(refused) => return self.fail(row, refused).await,
        };
        self.crash.hit("checkout.after_redeem");
        if let Err(refused) = self.authorise(row, opened, request).await? {
            return self.fail(row, refused).await;
        }
        self.crash.hit("checkout.after_authorize");
        let placed = self.place(row, &cart, &applied).await?;
        self.crash.hit("checkout.after_place");
        // The last step (commit the reservation, close the cart) is the completer's: the order
        // stands, so the shopper has the answer now.
        self.placed.notify_one();
        Ok(CheckoutOutcome::Placed(Box::new(placed)))
    }

    /// Step 1: reserves the cart's stock under the checkout's reference. The reservation is
    /// recorded with the redemptions (step 2); until then compensation finds it by reference.
    async fn reserve(&self, row: &mut CheckoutRow, cart: &emporium_cart::Cart) -> Step<()> {
        let lines: Vec<ReserveLine> = cart
            .items
            .iter()
            .map(|i| ReserveLine {
                variant_id: i.variant_id,
                quantity: i.quantity,
            })
            .collect();
        let reference = CheckoutId(row.id).to_string();
        match self
            .inventory
            .reserve(&lines, RESERVATION_TTL, &reference)
            .await
        {
            Ok(reservation) => {
                row.reservation_id = Some(reservation.id.0);
                Ok(Ok(()))
            }
            Err(e @ InventoryError::OutOfStock { .. }) => {
                Ok(Err(failure("out_of_stock", &e.to_string())))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Step 2: redeems the coupons that apply and opens the payment intent (`pending`), in
    /// one transaction with the saga's state. Returns the opened intent and the codes redeemed.
    async fn redeem_and_open(
        &self,
        row: &mut CheckoutRow,
        cart: &emporium_cart::Cart,
        request: &CheckoutRequest,
        customer: Option<&str>,
    ) -> Step<(OpenedPayment, Vec<String>)> {
        let reference = CheckoutId(row.id).to_string();
        let applied: Vec<String> = cart
            .totals
            .coupons
            .iter()
            .filter(|c| c.applied)
            .map(|c| c.code.clone())
            .collect();
        let customer_key = customer
            .map(str::to_owned)
            .or_else(|| cart.email.clone())
            .unwrap_or_default();
        let amount = Money {
            amount: cart.totals.total,
            currency: cart.currency,
        };
        let mut tx = self.db.begin_write().await?;
        let mut coupon_ids: Vec<CouponId> = Vec::new();
        for code in &applied {
            match self
                .pricing
                .redeem_in(&mut tx, code, &reference, &customer_key)
                .await
            {
                Ok(id) => coupon_ids.push(id),
                Err(
                    e @ (PricingError::CouponExhausted
                    | PricingError::CouponCustomerLimit
                    | PricingError::CouponNotFound),
                ) => {
                    let detail = format!("coupon {code}: {e}");
                    return Ok(Err(failure("coupon_not_applicable", &detail)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let opened = match self
            .payments
            .open_new_in(&mut tx, &reference, &request.payment.provider, amount)
            .await
        {
            Ok(opened) => opened,
            Err(e @ (PaymentError::UnknownProvider(_) | PaymentError::ProviderNotEnabled(_))) => {
                return Ok(Err(failure("payment_provider_unknown", &e.to_string())));
            }
            Err(e) => return Err(e.into()),
        };
        row.coupon_ids = to_json(&coupon_ids)?;
        row.state = CheckoutState::Redeemed.as_str().to_owned();
        row.updated_at = self.clock.now();
        tx.write_at_commit(store::update_checkout(row));
        tx.commit().await?;
        Ok(Ok((opened, applied)))
    }

    /// Step 3: asks the provider to authorise the opened intent (no transaction open across
    /// the call). The payment is recorded with the order (step 4); until then compensation
    /// finds it by reference.
    async fn authorise(
        &self,
        row: &mut CheckoutRow,
        opened: OpenedPayment,
        request: &CheckoutRequest,
    ) -> Step<()> {
        match self
            .payments
            .authorize_opened(opened, request.payment.token.as_deref())
            .await
        {
            Ok(intent) => {
                row.payment_id = Some(intent.id.0);
                Ok(Ok(()))
            }
            Err(e) => {
                let (_, code) = e.kind_and_code();
                match code {
                    "payment_declined"
                    | "payment_provider_unavailable"
                    | "payment_unavailable"
                    | "payment_provider_unknown" => Ok(Err(failure(code, &e.to_string()))),
                    _ => Err(e.into()),
                }
            }
        }
    }

    /// Step 4: places the order: its first event, its projection, its token and the saga's
    /// `placed` state with the answer, together.
    async fn place(
        &self,
        row: &mut CheckoutRow,
        cart: &emporium_cart::Cart,
        applied: &[String],
    ) -> Result<PlacedOrder, OrderingError> {
        let order_token = new_token();
        let order = order_of(cart, row, applied, self.clock.now())?;
        let placed = PlacedOrder {
            order_token: order_token.clone(),
            order: order.clone(),
        };
        let body =
            serde_json::to_string(&placed).map_err(|e| OrderingError::Corrupt(e.to_string()))?;
        // Everything serialised before the writer is taken.
        let event = OrderEvent::Placed(Box::new(order.clone()));
        let event = EventRow {
            order_id: order.id.0,
            sequence: 1,
            event_type: event.type_name().to_owned(),
            data: event
                .data()
                .map_err(|e| OrderingError::Corrupt(e.to_string()))?,
            occurred_at: order.placed_at,
        };
        let projection = projection_of(&order)?;
        let token_hash = hash(&order_token);
        let placed_event = OrderPlaced(order.clone());
        let placed_event = (
            placed_event.aggregate_id(),
            1,
            serde_json::to_string(&placed_event)
                .map_err(|e| OrderingError::Corrupt(e.to_string()))?,
        );
        // Writes alone, nothing read: on PostgreSQL one statement, without a transaction's
        // `BEGIN` and `COMMIT` round trips.
        let mut batch = self.db.write_batch();
        batch.write(store::append_event(&event));
        batch.write(store::upsert_order(&projection));
        batch.write(store::insert_access(order.id.0, &token_hash));
        batch.record_serialized::<OrderPlaced>(vec![placed_event], order.placed_at);
        row.order_id = Some(order.id.0);
        row.state = CheckoutState::Placed.as_str().to_owned();
        row.response_status = Some(201);
        row.response_body = Some(body);
        row.updated_at = self.clock.now();
        batch.write(store::update_checkout(row));
        batch.commit().await?;
        Ok(placed)
    }
}

/// Why the cart cannot be checked out as it stands, before anything is reserved: it is empty,
/// lacks what an order needs, or holds a coupon that no longer applies (refused rather than
/// silently charged without its discount).
fn refusal(cart: &emporium_cart::Cart) -> Option<CheckoutFailure> {
    if cart.items.is_empty() {
        return Some(failure("cart_empty", "the cart has no items"));
    }
    let mut missing = Vec::new();
    if cart.items.iter().any(|i| !i.purchasable) {
        missing.push("items that can no longer be bought (remove them)");
    }
    if cart.email.is_none() {
        missing.push("an e-mail address");
    }
    if cart.shipping_address.is_none() {
        missing.push("a shipping address");
    }
    if !matches!(cart.totals.shipping, ShippingQuote::Priced { .. }) {
        missing.push("a shipping option that ships it");
    }
    if !missing.is_empty() {
        let detail = format!("the cart lacks {}", missing.join(", "));
        return Some(failure("checkout_incomplete", &detail));
    }
    let lapsed: Vec<String> = cart
        .totals
        .coupons
        .iter()
        .filter(|c| !c.applied)
        .map(|c| {
            format!(
                "{} ({})",
                c.code,
                c.reason.unwrap_or("coupon_not_applicable")
            )
        })
        .collect();
    if !lapsed.is_empty() {
        let detail = format!(
            "these coupons no longer apply; remove them to pay the full price: {}",
            lapsed.join(", ")
        );
        return Some(failure("coupon_not_applicable", &detail));
    }
    None
}

fn order_of(
    cart: &emporium_cart::Cart,
    row: &CheckoutRow,
    coupon_codes: &[String],
    now: time::OffsetDateTime,
) -> Result<Order, OrderingError> {
    let lines = cart
        .items
        .iter()
        .map(|i| OrderLine {
            variant_id: i.variant_id,
            product_id: i.product_id.unwrap_or_default(),
            sku: i.sku.clone().unwrap_or_default(),
            product_title: i.product_title.clone().unwrap_or_default(),
            variant_title: i.variant_title.clone().unwrap_or_default(),
            quantity: i.quantity,
            unit_price: i.unit_price.unwrap_or_default(),
            subtotal: i.subtotal,
            discount: i.discount,
            tax: i.tax,
            total: i.total,
            fulfilled_quantity: 0,
        })
        .collect();
    let shipping = match &cart.totals.shipping {
        ShippingQuote::Priced {
            option_id,
            name,
            amount,
            discount,
            tax,
        } => Some(OrderShipping {
            option_id: *option_id,
            name: name.clone(),
            amount: *amount,
            discount: *discount,
            tax: *tax,
        }),
        _ => None,
    };
    let t = &cart.totals;
    Ok(Order {
        id: OrderId::generate(),
        status: OrderStatus::Placed,
        customer_id: cart.customer_id.clone(),
        email: cart.email.clone().unwrap_or_default(),
        currency: cart.currency,
        lines,
        shipping_address: cart
            .shipping_address
            .clone()
            .ok_or_else(|| OrderingError::invalid("/shipping_address", "required", "no address"))?,
        shipping,
        discounts: t.discounts.clone(),
        coupon_codes: coupon_codes.to_vec(),
        subtotal: t.subtotal,
        discount_total: t.discount_total,
        shipping_total: t.shipping_total,
        tax_total: t.tax_total,
        tax_inclusive: t.tax_inclusive,
        total: t.total,
        payment_id: PaymentId(row.payment_id.unwrap_or_default()),
        captured_amount: 0,
        refunded_amount: 0,
        tracking_number: None,
        cancel_reason: None,
        pending_payment: None,
        version: 1,
        placed_at: now,
        updated_at: now,
    })
}

/// The `orders` row of an order.
pub(crate) fn projection_of(order: &Order) -> Result<OrderRow, OrderingError> {
    Ok(OrderRow {
        id: order.id.0,
        customer_id: order.customer_id.clone(),
        status: order.status.as_str().to_owned(),
        document: serde_json::to_string(order)
            .map_err(|e| OrderingError::Corrupt(e.to_string()))?,
        version: order.version,
        created_at: order.placed_at,
        updated_at: order.updated_at,
        payment_pending_since: order.pending_payment.as_ref().map(|p| p.requested_at),
        currency: order.currency.to_string(),
        net_total: order.total - order.refunded_amount,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, OrderingError> {
    serde_json::to_string(value).map_err(|e| OrderingError::Corrupt(e.to_string()))
}
