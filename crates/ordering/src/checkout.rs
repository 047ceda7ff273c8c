//! The checkout saga: reserve stock → redeem coupons → authorise payment → place order →
//! commit reservation. Each step's outcome is committed before the next: the reservation and
//! the payment intent are stored by their own context under the checkout's id as reference
//! (which is how compensation finds them), the coupon redemptions and the order in one
//! transaction with the saga's state. The payment intent is opened (`pending`) in the
//! redemptions' transaction, so it is on record before the provider is asked. Each step has a
//! compensation (release the stock, give back the coupon uses, void the payment).
//! Once the order is placed the shopper has the answer; the last step (commit the
//! reservation, close the cart) is the completer's, which does it for many placed checkouts
//! at once ([`CheckoutService::run_completions`]). A cart is checked out once: a second key
//! for a cart whose checkout has not failed is refused, and from the claim until the checkout
//! fails (or the cart is closed) the cart takes no change (`cart_checked_out`).
//! A failure compensates what was done and records the answer; a process that stops mid-way
//! leaves an unfinished checkout that [`CheckoutService::recover`] finishes (an order placed is
//! completed) or compensates (anything before) at the next start.
//!
//! Every answer is stored with the checkout, keyed by the cart and the `Idempotency-Key`: a
//! retry (also a concurrent one, which waits) gets the first answer, never a second order; the
//! same key with another body is refused.

use std::sync::Arc;
use std::time::Duration;

use emporium_cart::{Access, CartError, CartService};
use emporium_db::Db;
use emporium_inventory::{InventoryApi, InventoryError, ReserveLine};
use emporium_kernel::fault::CrashPoints;
use emporium_kernel::ids::{CartId, CheckoutId, CouponId, OrderId, PaymentId, ReservationId};
use emporium_kernel::token::{new_token, sha256_hex as hash};
use emporium_kernel::{Clock, DomainError, ErrorKind, Event as _, Money};
use emporium_payments::{PaymentError, PaymentService};
use emporium_pricing::{PricingError, PricingService, ShippingQuote};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::OrderingError;
use crate::order::{Order, OrderEvent, OrderLine, OrderPlaced, OrderShipping, OrderStatus};
use crate::store::{self, CheckoutRow, EventRow, OrderRow};

/// How long stock stays held for a checkout that has not finished.
const RESERVATION_TTL: time::Duration = time::Duration::minutes(15);
/// How long a retry waits for a concurrent checkout with the same key to finish.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);
/// Checkouts run at once; the others wait their turn. Each step is a short write, and on
/// SQLite every write takes the one writer: letting hundreds interleave only makes each wait
/// longer for the database (and time out), where a queue serves them in order. Enough run at
/// once for their commits to share SQLite's group commits; each holds at most one pooled
/// connection at a time.
const CONCURRENT_CHECKOUTS: usize = 32;

/// How long an unfinished checkout may stand still before recovery takes it over, by default.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// Placed checkouts completed together at most.
const COMPLETION_BATCH: i64 = 256;
/// How often the completer looks for placed checkouts it was not woken for.
const COMPLETION_SWEEP: Duration = Duration::from_secs(5);

/// How to pay, as the storefront says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentChoice {
    /// `manual` or `test` (or a provider added to the build).
    pub provider: String,
    /// The provider's payment token (for `test`: `tok_success`, `tok_decline`, …).
    #[serde(default)]
    pub token: Option<String>,
}

/// Body of a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub payment: PaymentChoice,
}

/// A placed order and the token with which a guest reads it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlacedOrder {
    /// Send as `X-Order-Token` to read the order without a customer session.
    pub order_token: String,
    pub order: Order,
}

/// Why a checkout failed; stored with the checkout so a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{detail}")]
pub struct CheckoutFailure {
    pub code: String,
    pub detail: String,
}

impl DomainError for CheckoutFailure {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self.code.as_str() {
            "out_of_stock" => (ErrorKind::Conflict, "out_of_stock"),
            "coupon_not_applicable" => (ErrorKind::Invalid, "coupon_not_applicable"),
            "payment_declined" => (ErrorKind::PaymentRequired, "payment_declined"),
            "payment_provider_unavailable" => {
                (ErrorKind::Unavailable, "payment_provider_unavailable")
            }
            "payment_provider_unknown" => (ErrorKind::Invalid, "payment_provider_unknown"),
            "checkout_incomplete" => (ErrorKind::Invalid, "checkout_incomplete"),
            "cart_empty" => (ErrorKind::Invalid, "cart_empty"),
            "checkout_interrupted" => (ErrorKind::Unavailable, "checkout_interrupted"),
            _ => (ErrorKind::Internal, "internal"),
        }
    }
}

/// What a checkout answers: the order, or why not.
#[derive(Debug)]
pub enum CheckoutOutcome {
    Placed(Box<PlacedOrder>),
    Failed(CheckoutFailure),
}

/// What went wrong outside the saga's own answers.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Ordering(#[from] OrderingError),
    #[error(transparent)]
    Cart(#[from] CartError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Pricing(#[from] PricingError),
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Storage(#[from] emporium_db::DbError),
}

impl DomainError for CheckoutError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::Ordering(e) => e.kind_and_code(),
            Self::Cart(e) => e.kind_and_code(),
            Self::Inventory(e) => e.kind_and_code(),
            Self::Pricing(e) => e.kind_and_code(),
            Self::Payment(e) => e.kind_and_code(),
            Self::Storage(e) => e.kind_and_code(),
        }
    }

    fn violations(&self) -> &[emporium_kernel::FieldError] {
        match self {
            Self::Ordering(e) => e.violations(),
            Self::Cart(e) => e.violations(),
            _ => &[],
        }
    }
}

/// The saga, over the contexts it drives.
pub struct CheckoutService {
    db: Db,
    clock: Arc<dyn Clock>,
    carts: Arc<CartService>,
    inventory: Arc<dyn InventoryApi>,
    pricing: Arc<PricingService>,
    payments: Arc<PaymentService>,
    crash: CrashPoints,
    turns: Arc<tokio::sync::Semaphore>,
    /// Checkouts this process is running now: recovery leaves them alone. A std mutex, never
    /// held across an await.
    running: std::sync::Mutex<std::collections::HashSet<Uuid>>,
    /// The tasks that run checkouts, apart from the requests that asked for them.
    tasks: tokio_util::task::TaskTracker,
    /// How long an unfinished checkout may stand still before recovery takes it over.
    abandoned_after: Duration,
    /// Woken by each order placed, for the completer.
    placed: tokio::sync::Notify,
    /// Checkouts completed so far by this service.
    completed: tokio::sync::watch::Sender<u64>,
}

/// Where a checkout stands, in order; stored by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutState {
    /// Claimed: the cart is held; stock may be reserved (found by reference).
    Started,
    /// Coupons redeemed and the payment intent opened, in one transaction.
    Redeemed,
    /// The order is placed and answered; the completer takes it to `Completed`.
    Placed,
    Completed,
    /// Compensated, with its answer.
    Failed,
}

impl CheckoutState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Redeemed => "redeemed",
            Self::Placed => "placed",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The state a stored name names.
    pub fn parse(s: &str) -> Result<Self, OrderingError> {
        Ok(match s {
            "started" => Self::Started,
            "redeemed" => Self::Redeemed,
            "placed" => Self::Placed,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            other => return Err(OrderingError::Corrupt(format!("checkout state {other}"))),
        })
    }
}

/// Removes a checkout from the running set when its task ends, however it ends.
struct Running<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<Uuid>>,
    id: Uuid,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // Held for an insert or a remove, never across an await.
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

impl CheckoutService {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        carts: Arc<CartService>,
        inventory: Arc<dyn InventoryApi>,
        pricing: Arc<PricingService>,
        payments: Arc<PaymentService>,
        crash: CrashPoints,
    ) -> Self {
        Self {
            db,
            clock,
            carts,
            inventory,
            pricing,
            payments,
            crash,
            turns: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_CHECKOUTS)),
            running: std::sync::Mutex::new(std::collections::HashSet::new()),
            tasks: tokio_util::task::TaskTracker::new(),
            abandoned_after: ABANDONED_AFTER,
            placed: tokio::sync::Notify::new(),
            completed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Sets how long an unfinished checkout that no task of this process runs may stand still
    /// before recovery compensates it (or completes it, once placed).
    pub fn with_abandoned_after(mut self, idle: Duration) -> Self {
        self.abandoned_after = idle;
        self
    }

    /// Waits (at most `bound`) for the checkouts still running to reach their answer.
    pub async fn drain(&self, bound: Duration) {
        self.tasks.close();
        if tokio::time::timeout(bound, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("checkouts still running at shutdown are recovered at the next start");
        }
    }

    /// Checks out cart `cart` under `key`. See the module doc for the steps and guarantees.
    /// From its claim on, a checkout runs in a task of its own: a caller that goes away (a
    /// closed connection, a request timeout) does not stop it half-way.
    pub async fn checkout(
        self: &Arc<Self>,
        cart: CartId,
        access: Access<'_>,
        key: Option<&str>,
        request: &CheckoutRequest,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        let key = key
            .map(str::trim)
            .filter(|k| (1..=255).contains(&k.len()))
            .ok_or(OrderingError::IdempotencyKeyMissing)?;
        self.check_provider(&request.payment.provider)?;
        let request_hash = hash(
            &serde_json::to_string(request).map_err(|e| OrderingError::Corrupt(e.to_string()))?,
        );
        let caller = match (access.customer, access.token) {
            (Some(c), _) => format!("customer:{c}"),
            (None, Some(t)) => hash(t),
            (None, None) => String::new(),
        };
        // Everything below touches the database, so it waits its turn (a retry too: its
        // lookup is a query like any other). The semaphore is never closed, so waiting for a
        // permit cannot fail.
        let turn = Arc::clone(&self.turns).acquire_owned().await.ok();
        // The cart must open for this caller before anything is recorded. A retry finds the
        // first run's answer: here when that run closed the cart, else at the claim below.
        let view = match self.carts.get(cart, access).await {
            Ok(view) => view,
            Err(CartError::CartNotFound) => {
                return self
                    .existing(cart, key, &request_hash, &caller, false)
                    .await?
                    .ok_or(CheckoutError::Cart(CartError::CartNotFound));
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.clock.now();
        let row = CheckoutRow {
            id: Uuid::now_v7(),
            cart_id: cart.0,
            idempotency_key: key.to_owned(),
            request_hash: request_hash.clone(),
            caller: caller.clone(),
            state: CheckoutState::Started.as_str().to_owned(),
            reservation_id: None,
            coupon_ids: "[]".to_owned(),
            payment_id: None,
            order_id: None,
            response_status: None,
            response_body: None,
            created_at: now,
            updated_at: now,
        };
        let this = Arc::clone(self);
        let request = request.clone();
        let customer = access.customer.map(str::to_owned);
        let task = self.tasks.spawn(async move {
            let _turn = turn;
            this.claim_and_run(row, view, &request, customer).await
        });
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                // A panic in the saga: recovery compensates the checkout once it is idle.
                tracing::error!(error = %e, "a checkout's task failed");
                Err(CheckoutError::Ordering(OrderingError::Corrupt(
                    "the checkout's task failed".to_owned(),
                )))
            }
        }
    }

    /// Whether `provider` may pay for a new checkout: a 422 at `/payment/provider` when this
    /// store has not enabled it (or no provider has the name).
    fn check_provider(&self, provider: &str) -> Result<(), OrderingError> {
        match self.payments.check_enabled(provider) {
            Ok(()) => Ok(()),
            Err(PaymentError::ProviderNotEnabled(name)) => Err(OrderingError::invalid(
                "/payment/provider",
                "not_enabled",
                format!(
                    "this store does not take payments with {name}; it takes: {}",
                    self.payments.enabled_providers().join(", ")
                ),
            )),
            Err(_) => Err(OrderingError::invalid(
                "/payment/provider",
                "invalid_value",
                format!(
                    "no payment provider is named {provider}; this store takes: {}",
                    self.payments.enabled_providers().join(", ")
                ),
            )),
        }
    }

    /// Claims the cart for the checkout `row` and runs the saga to its answer.
    async fn claim_and_run(
        &self,
        mut row: CheckoutRow,
        view: emporium_cart::Cart,
        request: &CheckoutRequest,
        customer: Option<String>,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        let cart = CartId(row.cart_id);
        let key = row.idempotency_key.clone();
        let (request_hash, caller) = (row.request_hash.clone(), row.caller.clone());
        let key = key.as_str();
        let mut tx = self.db.begin_write().await?;
        if store::insert_checkout(&mut tx, &row).await? {
            // The checkout holds the cart as it was read: no change lands between the order
            // and the cart it was made of.
            if !self
                .carts
                .hold_in(&mut tx, cart, view.version, row.id)
                .await?
            {
                drop(tx);
                return Err(CartError::CartChanged.into());
            }
            self.running_insert(row.id);
            tx.commit().await?;
        } else {
            // Taken: by this key (a concurrent retry, whose answer is the one to give) or by
            // another that has not failed (the cart is being, or was, checked out). The write
            // sees a claim still waiting in a group commit, which a reader may not yet.
            let same_key = store::find_checkout(&mut tx, cart.0, key).await?.is_some();
            drop(tx);
            if !same_key {
                return Err(OrderingError::CartCheckedOut.into());
            }
            return self
                .existing(cart, key, &request_hash, &caller, true)
                .await?
                .ok_or(CheckoutError::Ordering(OrderingError::CheckoutInProgress));
        }
        let _running = Running {
            set: &self.running,
            id: row.id,
        };
        let outcome = self.run(&mut row, view, request, customer.as_deref()).await;
        // Saga outcomes by code (a closed set), for the dashboard; replays are not counted.
        let label = match &outcome {
            Ok(CheckoutOutcome::Placed(_)) => "placed",
            Ok(CheckoutOutcome::Failed(f)) => f.kind_and_code().1,
            Err(_) => "checkout_interrupted",
        };
        metrics::counter!("emporium_checkout_outcomes_total", "outcome" => label).increment(1);
        match outcome {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                // An unexpected failure mid-way: undo what was done, record it, and pass the
                // error on (a retry with the same key gets `checkout_interrupted`).
                tracing::warn!(checkout = %CheckoutId(row.id), error = %e, "checkout failed; compensating");
                let failure = CheckoutFailure {
                    code: "checkout_interrupted".to_owned(),
                    detail: "the checkout could not finish; nothing was charged or kept".to_owned(),
                };
                if let Err(undo) = self.fail(&mut row, failure).await {
                    // Left unfinished: recovery compensates it once it is idle.
                    metrics::counter!("emporium_checkout_compensation_failures_total").increment(1);
                    tracing::error!(checkout = %CheckoutId(row.id), error = %undo, "compensating a checkout failed; recovery retries it");
                }
                Err(e)
            }
        }
    }

    /// The stored answer for `(cart, key)`, waiting for a concurrent run to finish; `None`
    /// when there is no such checkout. With `claimed` (the key's row exists, as a unique
    /// violation says) it also waits for the row to be readable: the first run's claim may
    /// still wait in a SQLite group commit, which the writer sees before readers do.
    async fn existing(
        &self,
        cart: CartId,
        key: &str,
        request_hash: &str,
        caller: &str,
        claimed: bool,
    ) -> Result<Option<CheckoutOutcome>, CheckoutError> {
        let started = std::time::Instant::now();
        loop {
            let mut conn = self.db.read().await?;
            let found = store::find_checkout(&mut conn, cart.0, key).await?;
            drop(conn);
            let Some(row) = found else {
                if !claimed || started.elapsed() > WAIT_FOR_FIRST {
                    return Ok(None);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            if row.caller != caller {
                return Err(CartError::CartNotFound.into());
            }
            if row.request_hash != request_hash {
                return Err(OrderingError::IdempotencyKeyReused.into());
            }
            if let Some(outcome) = answer_of(&row)? {
                return Ok(Some(outcome));
            }
            // A first run that no process drives any more (its process died, or it failed
            // to compensate) is finished here rather than waited for.
            if self.is_abandoned(&row) {
                let mut row = row;
                if let Some(outcome) = self.recover_one(&mut row).await? {
                    return Ok(Some(outcome));
                }
                continue;
            }
            if started.elapsed() > WAIT_FOR_FIRST {
                return Err(OrderingError::CheckoutInProgress.into());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn running_insert(&self, id: Uuid) {
        // Held for an insert, never across an await.
        if let Ok(mut set) = self.running.lock() {
            set.insert(id);
        }
    }

    fn is_running(&self, id: Uuid) -> bool {
        self.running.lock().is_ok_and(|set| set.contains(&id))
    }

    async fn run(
        &self,
        row: &mut CheckoutRow,
        cart: emporium_cart::Cart,
        request: &CheckoutRequest,
        customer: Option<&str>,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        // What the cart must hold before anything is reserved.
        if cart.items.is_empty() {
            return self
                .fail(row, failure("cart_empty", "the cart has no items"))
                .await;
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
            return self
                .fail(row, failure("checkout_incomplete", &detail))
                .await;
        }
        // A code the shopper added that no longer applies (its uses ran out, it ended, the
        // cart changed) is refused rather than silently charged without its discount.
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
            return self
                .fail(row, failure("coupon_not_applicable", &detail))
                .await;
        }

        // 1. Reserve stock.
        let lines: Vec<ReserveLine> = cart
            .items
            .iter()
            .map(|i| ReserveLine {
                variant_id: i.variant_id,
                quantity: i.quantity,
            })
            .collect();
        let reference = CheckoutId(row.id).to_string();
        let reservation = match self
            .inventory
            .reserve(&lines, RESERVATION_TTL, &reference)
            .await
        {
            Ok(r) => r,
            Err(e @ InventoryError::OutOfStock { .. }) => {
                return self
                    .fail(row, failure("out_of_stock", &e.to_string()))
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        // Recorded with the redemptions below; until then compensation finds the reservation
        // by its reference.
        row.reservation_id = Some(reservation.id.0);
        self.crash.hit("checkout.after_reserve");

        // 2. Redeem the coupons that apply, in one transaction with the saga's state and the
        // payment intent, `pending` until step 3 authorises it.
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
                    drop(tx);
                    let detail = format!("coupon {code}: {e}");
                    return self
                        .fail(row, failure("coupon_not_applicable", &detail))
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let opened = match self
            .payments
            .open_in(&mut tx, &reference, &request.payment.provider, amount)
            .await
        {
            Ok(opened) => opened,
            Err(e @ PaymentError::UnknownProvider(_)) => {
                drop(tx);
                return self
                    .fail(row, failure("payment_provider_unknown", &e.to_string()))
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        row.coupon_ids = to_json(&coupon_ids)?;
        row.state = CheckoutState::Redeemed.as_str().to_owned();
        row.updated_at = self.clock.now();
        tx.write_at_commit(store::update_checkout(row));
        tx.commit().await?;
        self.crash.hit("checkout.after_redeem");

        // 3. Authorise the payment (no transaction open across the provider call).
        match self
            .payments
            .authorize_opened(opened, request.payment.token.as_deref())
            .await
        {
            Ok(intent) => row.payment_id = Some(intent.id.0),
            Err(e) => {
                let (_, code) = e.kind_and_code();
                let code = match code {
                    "payment_declined"
                    | "payment_provider_unavailable"
                    | "payment_provider_unknown" => code,
                    _ => return Err(e.into()),
                };
                return self.fail(row, failure(code, &e.to_string())).await;
            }
        }
        // Recorded with the order below; until then compensation finds the payment by its
        // reference.
        self.crash.hit("checkout.after_authorize");

        // 4. Place the order: its first event, its projection and the saga state together.
        let order_token = new_token();
        let order = order_of(&cart, row, &applied, self.clock.now())?;
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
        self.crash.hit("checkout.after_place");

        // 5. Commit the reservation and close the cart: the order stands, so the shopper has
        // the answer now, and the completer does this for many checkouts at once.
        self.placed.notify_one();
        Ok(CheckoutOutcome::Placed(Box::new(placed)))
    }

    /// The last step of placed checkouts, together: their stock leaves, their carts close,
    /// they are completed. Each part is idempotent, so a batch that fails half-way is simply
    /// done again.
    async fn complete_all(&self, rows: &[CheckoutRow]) -> Result<(), CheckoutError> {
        let reservations: Vec<ReservationId> = rows
            .iter()
            .filter_map(|r| r.reservation_id.map(ReservationId))
            .collect();
        let outcomes = self.inventory.commit_all(&reservations).await?;
        for (id, outcome) in reservations.iter().zip(outcomes) {
            if let Err(e) = outcome {
                // Only a hold left uncommitted past its expiry (the store was down for that
                // long): its units went back on sale. The order stands; staff must check the
                // stock it needs.
                metrics::counter!("emporium_checkout_lapsed_holds_total").increment(1);
                tracing::error!(reservation = %id, error = %e, "a placed order's stock hold lapsed before it was committed");
            }
        }
        let carts: Vec<CartId> = rows.iter().map(|r| CartId(r.cart_id)).collect();
        self.carts.close_all(&carts).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut tx = self.db.begin_write().await?;
        store::complete_checkouts(&mut tx, &ids, self.clock.now()).await?;
        tx.commit().await?;
        // `send_modify` counts also while nobody watches.
        self.completed
            .send_modify(|n| *n += u64::try_from(ids.len()).unwrap_or(u64::MAX));
        Ok(())
    }

    /// Watches how many checkouts this service has completed: a caller can await the
    /// completer's work instead of polling for it.
    pub fn completions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.completed.subscribe()
    }

    /// Completes every placed checkout, a batch at a time; returns how many.
    pub async fn complete_placed(&self) -> Result<usize, CheckoutError> {
        let mut done = 0;
        loop {
            let mut conn = self.db.read().await?;
            let rows = store::placed_checkouts(&mut conn, COMPLETION_BATCH).await?;
            drop(conn);
            if rows.is_empty() {
                return Ok(done);
            }
            self.complete_all(&rows).await?;
            done += rows.len();
        }
    }

    /// The completer: completes placed checkouts as they come (and every few seconds, for
    /// any a failed pass left), until `stop` fires; then once more.
    pub async fn run_completions(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.complete_placed().await {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "completing placed checkouts failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            tokio::select! {
                () = self.placed.notified() => {}
                () = tokio::time::sleep(COMPLETION_SWEEP) => {}
                () = stop.cancelled() => break,
            }
        }
        if let Err(e) = self.complete_placed().await {
            tracing::warn!(error = %e, "placed checkouts left to complete at the next start");
        }
    }

    /// Undoes every step done (and any a crash left unrecorded), records `failure` as the
    /// answer, and returns it.
    async fn fail(
        &self,
        row: &mut CheckoutRow,
        failure: CheckoutFailure,
    ) -> Result<CheckoutOutcome, CheckoutError> {
        self.compensate(row).await?;
        row.state = CheckoutState::Failed.as_str().to_owned();
        row.response_status = Some(i64::from(status_of(&failure)));
        row.response_body = Some(
            serde_json::to_string(&failure).map_err(|e| OrderingError::Corrupt(e.to_string()))?,
        );
        row.updated_at = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        // The cart takes changes again: the shopper may fix it and check out anew.
        self.carts
            .release_in(&mut tx, CartId(row.cart_id), row.id)
            .await?;
        tx.write_at_commit(store::update_checkout(row));
        tx.commit().await?;
        Ok(CheckoutOutcome::Failed(failure))
    }

    /// Void the payment, give back the coupon uses, release the stock: each idempotent, each
    /// also for a step whose result a crash kept from being recorded (found by reference).
    async fn compensate(&self, row: &CheckoutRow) -> Result<(), CheckoutError> {
        let reference = CheckoutId(row.id).to_string();
        let payment = match row.payment_id {
            Some(id) => Some(PaymentId(id)),
            None => self
                .payments
                .find_by_reference(&reference)
                .await?
                .map(|p| p.id),
        };
        if let Some(id) = payment {
            self.payments.void(id, &format!("{reference}:void")).await?;
        }
        let coupons: Vec<CouponId> = serde_json::from_str(&row.coupon_ids)
            .map_err(|e| OrderingError::Corrupt(e.to_string()))?;
        if !coupons.is_empty() {
            let mut tx = self.db.begin_write().await?;
            for id in coupons {
                self.pricing.return_in(&mut tx, id, &reference).await?;
            }
            tx.commit().await?;
        }
        for reservation in self.inventory.reservations_for(&reference).await? {
            if reservation.status == emporium_inventory::ReservationStatus::Active {
                self.inventory.release(reservation.id).await?;
            }
        }
        Ok(())
    }

    /// Finishes or compensates every checkout a stopped process left unfinished: one whose
    /// order was placed is completed; any other is compensated and answers
    /// `checkout_interrupted`. Returns how many it handled. Run at start, before serving.
    pub async fn recover(&self) -> Result<usize, CheckoutError> {
        self.recover_idle(std::time::Duration::ZERO).await
    }

    /// Finishes or compensates every unfinished checkout that this process is not running and
    /// that has not moved for `idle` (its process died, its task failed, or its compensation
    /// did): what keeps a cart, stock or a payment from staying held until a restart. A
    /// checkout that cannot be compensated now is logged, counted and tried again at the
    /// next pass. Returns how many it settled.
    pub async fn recover_idle(&self, idle: std::time::Duration) -> Result<usize, CheckoutError> {
        let before = self.clock.now() - idle;
        let mut conn = self.db.read().await?;
        let rows = store::idle_checkouts(&mut conn, before).await?;
        drop(conn);
        let mut settled = 0;
        let mut placed = false;
        for mut row in rows.into_iter().filter(|r| !self.is_running(r.id)) {
            if CheckoutState::parse(&row.state)? == CheckoutState::Placed {
                placed = true;
                settled += 1;
                continue;
            }
            match self.recover_one(&mut row).await {
                Ok(_) => settled += 1,
                Err(e) => {
                    metrics::counter!("emporium_checkout_compensation_failures_total").increment(1);
                    tracing::error!(checkout = %CheckoutId(row.id), error = %e, "compensating an abandoned checkout failed; retried at the next pass");
                }
            }
        }
        if placed {
            self.complete_placed().await?;
        }
        if settled > 0 {
            metrics::counter!("emporium_checkout_recovered_total")
                .increment(u64::try_from(settled).unwrap_or(u64::MAX));
        }
        Ok(settled)
    }

    /// Whether no process drives checkout `row` any more: unfinished, not run here, and idle
    /// past the recovery bound.
    fn is_abandoned(&self, row: &CheckoutRow) -> bool {
        row.response_body.is_none()
            && !self.is_running(row.id)
            && self.clock.now() - row.updated_at > self.abandoned_after()
    }

    /// How long an unfinished checkout may stand still before recovery takes it over: longer
    /// than any of its steps takes (each is bounded by its own timeouts).
    fn abandoned_after(&self) -> time::Duration {
        time::Duration::try_from(self.abandoned_after).unwrap_or(time::Duration::MINUTE)
    }

    /// Compensates an abandoned checkout that placed no order, with the answer
    /// `checkout_interrupted`; a placed one is left to the completer. Returns the stored
    /// answer.
    async fn recover_one(
        &self,
        row: &mut CheckoutRow,
    ) -> Result<Option<CheckoutOutcome>, CheckoutError> {
        if CheckoutState::parse(&row.state)? == CheckoutState::Placed {
            return answer_of(row);
        }
        let failure = failure(
            "checkout_interrupted",
            "the checkout was interrupted; nothing was charged or kept, try again",
        );
        self.fail(row, failure).await.map(Some)
    }
}

fn failure(code: &str, detail: &str) -> CheckoutFailure {
    CheckoutFailure {
        code: code.to_owned(),
        detail: detail.to_owned(),
    }
}

fn status_of(failure: &CheckoutFailure) -> u16 {
    emporium_http::status_of(failure.kind_and_code().0).as_u16()
}

/// The stored answer of a finished (or placed) checkout.
fn answer_of(row: &CheckoutRow) -> Result<Option<CheckoutOutcome>, CheckoutError> {
    let Some(body) = &row.response_body else {
        return Ok(None);
    };
    let corrupt = |e: serde_json::Error| OrderingError::Corrupt(e.to_string());
    Ok(Some(if row.response_status == Some(201) {
        CheckoutOutcome::Placed(Box::new(serde_json::from_str(body).map_err(corrupt)?))
    } else {
        CheckoutOutcome::Failed(serde_json::from_str(body).map_err(corrupt)?)
    }))
}

fn order_of(
    cart: &emporium_cart::Cart,
    row: &CheckoutRow,
    coupon_codes: &[String],
    now: time::OffsetDateTime,
) -> Result<Order, CheckoutError> {
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
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<String, CheckoutError> {
    serde_json::to_string(value).map_err(|e| OrderingError::Corrupt(e.to_string()).into())
}
