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

use emporium_cart::{Access, CartApi, CartError};
use emporium_db::Db;
use emporium_inventory::InventoryApi;
use emporium_kernel::fault::CrashPoints;
use emporium_kernel::ids::{CartId, CheckoutId};
use emporium_kernel::token::sha256_hex as hash;
use emporium_kernel::{Clock, DomainError};
use emporium_payments::{PaymentError, PaymentsApi};
use emporium_pricing::PricingApi;
use uuid::Uuid;

use crate::error::OrderingError;
use crate::store::{self, CheckoutRow};

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

/// The oldest last-known catalog data a checkout takes by default.
const CATALOG_STALE_LIMIT: Duration = Duration::from_secs(300);

/// Placed checkouts completed together at most.
const COMPLETION_BATCH: i64 = 256;
/// How often the completer looks for placed checkouts it was not woken for.
const COMPLETION_SWEEP: Duration = Duration::from_secs(5);

mod api;
mod completion;
mod recovery;
mod steps;

use api::answer_of;
pub use api::{
    CheckoutFailure, CheckoutOutcome, CheckoutRequest, CheckoutState, PaymentChoice, PlacedOrder,
};
pub(crate) use steps::projection_of;

/// The saga, over the contexts it drives.
pub struct CheckoutService {
    db: Db,
    clock: Arc<dyn Clock>,
    carts: Arc<dyn CartApi>,
    inventory: Arc<dyn InventoryApi>,
    pricing: Arc<dyn PricingApi>,
    payments: Arc<dyn PaymentsApi>,
    crash: CrashPoints,
    turns: Arc<tokio::sync::Semaphore>,
    /// Checkouts this process is running now: recovery leaves them alone. A std mutex, never
    /// held across an await.
    running: std::sync::Mutex<std::collections::HashSet<Uuid>>,
    /// The tasks that run checkouts, apart from the requests that asked for them.
    tasks: tokio_util::task::TaskTracker,
    /// How long an unfinished checkout may stand still before recovery takes it over.
    abandoned_after: Duration,
    /// The oldest last-known catalog data a checkout takes when the catalog does not answer.
    catalog_stale_limit: Duration,
    /// Woken by each order placed, for the completer.
    placed: tokio::sync::Notify,
    /// Checkouts completed so far by this service.
    completed: tokio::sync::watch::Sender<u64>,
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
        carts: Arc<dyn CartApi>,
        inventory: Arc<dyn InventoryApi>,
        pricing: Arc<dyn PricingApi>,
        payments: Arc<dyn PaymentsApi>,
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
            catalog_stale_limit: CATALOG_STALE_LIMIT,
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

    /// Takes a cart whose catalog data is the last known (the catalog did not answer) only
    /// while that data is younger than `limit`; past it the checkout is refused before
    /// anything is recorded (503 `catalog_unavailable`).
    pub fn with_catalog_stale_limit(mut self, limit: Duration) -> Self {
        self.catalog_stale_limit = limit;
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
    ) -> Result<CheckoutOutcome, OrderingError> {
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
                    .ok_or(OrderingError::Cart(CartError::CartNotFound));
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.clock.now();
        if let Some(as_of) = view.catalog_as_of {
            let age = Duration::try_from(now - as_of).unwrap_or_default();
            if age > self.catalog_stale_limit {
                return Err(OrderingError::CatalogStale {
                    age_secs: age.as_secs(),
                });
            }
        }
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
                Err(OrderingError::Corrupt(
                    "the checkout's task failed".to_owned(),
                ))
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
    ) -> Result<CheckoutOutcome, OrderingError> {
        let cart = CartId(row.cart_id);
        let key = row.idempotency_key.clone();
        let (request_hash, caller) = (row.request_hash.clone(), row.caller.clone());
        let key = key.as_str();
        // The claim: the cart's hold, applied only to the version read, and the checkout's row
        // with it (on PostgreSQL one statement). Marked running first, so recovery never takes
        // it for abandoned.
        self.running_insert(row.id);
        let _running = Running {
            set: &self.running,
            id: row.id,
        };
        // Relaxed: nothing is acknowledged before the reservation's durable commit, which on
        // the one SQLite file makes the claim durable too.
        let mut claim = self
            .db
            .guarded_write(self.carts.hold_guard(cart, view.version, row.id))
            .relaxed();
        let (head, values) = store::checkout_insert(&row);
        claim.insert(head, values);
        let duplicate = match claim.commit().await {
            Ok(true) => None,
            Ok(false) => Some(false),
            Err(e) if e.is_unique_violation() => Some(true),
            Err(e) => return Err(e.into()),
        };
        if let Some(duplicate) = duplicate {
            // Not claimed: a checkout under this key (a retry, or this one's twin racing it)
            // answers; another checkout of the cart refuses; else the cart changed. Read as the
            // writer sees it: on SQLite the other checkout's row may still wait in a group
            // commit that readers do not see yet.
            let mut tx = self.db.begin_write().await?;
            let same_key = store::find_checkout(&mut tx, cart.0, key).await?.is_some();
            let other =
                !same_key && (duplicate || store::cart_has_checkout(&mut tx, cart.0).await?);
            drop(tx);
            if other {
                return Err(OrderingError::CartCheckedOut);
            }
            if !same_key {
                return Err(CartError::CartChanged.into());
            }
            return self
                .existing(cart, key, &request_hash, &caller, true)
                .await?
                .ok_or(OrderingError::CheckoutInProgress);
        }
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
    ) -> Result<Option<CheckoutOutcome>, OrderingError> {
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
                return Err(OrderingError::IdempotencyKeyReused);
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
                return Err(OrderingError::CheckoutInProgress);
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
}
