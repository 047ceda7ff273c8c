//! Reading orders (the projection), and rebuilding the projection from the event streams.

use std::collections::HashMap;
use std::sync::Arc;

use emporium_db::Db;
use emporium_kernel::Clock;
use emporium_kernel::DomainError as _;
use emporium_kernel::fault::CrashPoints;
use emporium_kernel::ids::{OrderId, VariantId};
use emporium_payments::{Operation, PaymentError, PaymentsApi};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    Change, MoneyAction, Order, OrderChanged, OrderEvent, OrderStatus, PaymentStep, PendingPayment,
    apply, fold,
};
use crate::error::OrderingError;
use crate::saga::projection_of;
use crate::store::{self, EventRow};
use emporium_kernel::token::sha256_hex as hash;

/// A staff action on an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Capture the authorised payment.
    Capture,
    /// Mark units of lines fulfilled (packed); partial fulfilment is allowed.
    Fulfill(Vec<(VariantId, i64)>),
    Ship(Option<String>),
    Deliver,
    /// Cancel before anything is fulfilled: the payment is voided, or refunded once captured.
    Cancel(String),
    /// Refund `amount` minor units (by parts, up to what was captured).
    Refund(i64),
    Return,
}

/// Orders over one database, with the payments their actions move.
/// Orders placed since a moment, and what they brought in (`GET /v1/admin/orders/summary`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrderSummary {
    /// The moment counted from.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
    /// Orders placed at or after `since`, in any status.
    pub orders: i64,
    /// Per currency (by code): the totals of those orders not cancelled, less refunds.
    pub revenue: Vec<emporium_kernel::Money>,
}

pub struct OrderService {
    db: Db,
    clock: Arc<dyn Clock>,
    payments: Arc<dyn PaymentsApi>,
    crash: CrashPoints,
    /// Orders whose payment step recovery could not settle: how often it tried, and when it
    /// may try again, so a provider that keeps failing is asked less and less often. Kept in
    /// memory: a restart tries each once more. A std mutex, never held across an await.
    retries: std::sync::Mutex<HashMap<Uuid, (u32, OffsetDateTime)>>,
}

/// How long recovery waits before it asks a failing provider again about an order, the first
/// time; each failure doubles it, up to [`SETTLE_RETRY_MAX`].
pub const SETTLE_RETRY_FIRST: time::Duration = time::Duration::seconds(10);
/// The longest wait between two of recovery's tries for one order.
pub const SETTLE_RETRY_MAX: time::Duration = time::Duration::minutes(15);

impl OrderService {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        payments: Arc<dyn PaymentsApi>,
        crash: CrashPoints,
    ) -> Self {
        Self {
            db,
            clock,
            payments,
            crash,
            retries: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Order `id` as staff see it.
    pub async fn get_any(&self, id: OrderId) -> Result<Order, OrderingError> {
        let mut conn = self.db.read().await?;
        let row = store::find_order(&mut conn, id.0)
            .await?
            .ok_or(OrderingError::OrderNotFound)?;
        serde_json::from_str(&row.document).map_err(|e| OrderingError::Corrupt(e.to_string()))
    }

    /// Orders newest first, optionally of one status, after the cursor position.
    ///
    /// `placed` narrows to orders placed at or after its first bound and before its second.
    pub async fn list(
        &self,
        status: Option<OrderStatus>,
        placed: (Option<OffsetDateTime>, Option<OffsetDateTime>),
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<emporium_kernel::Page<Order>, OrderingError> {
        let (after, limit) = page_request(cursor, limit)?;
        let mut conn = self.db.read().await?;
        let rows = store::list_orders(
            &mut conn,
            status.map(OrderStatus::as_str),
            placed,
            after,
            limit + 1,
        )
        .await?;
        page_of(rows, limit)
    }

    /// How many orders were placed at or after `since`, and their revenue per currency: the
    /// totals of those not cancelled, less what was refunded.
    pub async fn summary(&self, since: OffsetDateTime) -> Result<OrderSummary, OrderingError> {
        let mut conn = self.db.read().await?;
        let rows = store::orders_since(&mut conn, since).await?;
        let mut revenue = Vec::new();
        for row in rows.iter().filter(|r| r.counted > 0) {
            let currency = row
                .currency
                .parse()
                .map_err(|_| OrderingError::Corrupt(format!("currency {:?}", row.currency)))?;
            revenue.push(emporium_kernel::Money {
                amount: row.revenue,
                currency,
            });
        }
        revenue.sort_by_key(|a| a.currency.to_string());
        Ok(OrderSummary {
            since,
            orders: rows.iter().map(|r| r.orders).sum(),
            revenue,
        })
    }

    /// Customer `customer`'s orders, newest first, after the cursor position.
    pub async fn list_for_customer(
        &self,
        customer: &str,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<emporium_kernel::Page<Order>, OrderingError> {
        let (after, limit) = page_request(cursor, limit)?;
        let mut conn = self.db.read().await?;
        let rows = store::orders_of(&mut conn, customer, after, limit + 1).await?;
        page_of(rows, limit)
    }

    /// Carries out a staff action. One that moves money (capture, cancel, refund) is first
    /// recorded in the order's stream (`order.payment_requested`, which only one of concurrent
    /// actions can append), then the payment moves under the request's key, then the outcome
    /// is appended; a crash or a lost answer in between leaves the request pending, and
    /// [`Self::settle_pending`] finishes it. `Invalid` (422) for a bad amount or line,
    /// `IllegalTransition` (409) when the order's state does not allow it, `ActionPending`
    /// (409) while another money action is unsettled, `OrderChanged` (409) when another
    /// action got there first.
    pub async fn act(&self, id: OrderId, action: Action) -> Result<Order, OrderingError> {
        check_action_text(&action)?;
        let order = self.get_any(id).await?;
        if order.pending_payment.is_some() {
            return Err(OrderingError::ActionPending);
        }
        let now = self.now();
        let (change, step) = plan(&order, &action)?;
        apply(&order, &change, now).map_err(|e| OrderingError::IllegalTransition(e.0))?;
        let Some((money, step, amount)) = step else {
            return self.append(&order, change, now).await;
        };
        let pending = PendingPayment {
            action: money,
            step,
            amount,
            reason: match action {
                Action::Cancel(reason) => Some(reason),
                _ => None,
            },
            key: format!("{}:{}", order.id, order.version + 1),
            requested_at: now,
        };
        let requested = self
            .append(&order, Change::PaymentRequested { pending }, now)
            .await?;
        self.crash.hit("order.after_payment_request");
        self.settle(requested).await
    }

    /// Moves the payment of `order`'s pending action and appends the outcome: the change once
    /// the money moved, `order.payment_failed` when the payment refused (nothing moved). An
    /// answer that does not come leaves the action pending (and the error is returned).
    async fn settle(&self, order: Order) -> Result<Order, OrderingError> {
        let Some(pending) = order.pending_payment.clone() else {
            return Ok(order);
        };
        let operation = match pending.step {
            PaymentStep::Capture => Operation::Capture(Some(pending.amount)),
            PaymentStep::Void => Operation::Void,
            PaymentStep::Refund => Operation::Refund(pending.amount),
        };
        let moved = self
            .payments
            .operate(order.payment_id, operation, &pending.key)
            .await;
        self.crash.hit("order.after_payment");
        let now = self.now();
        match moved {
            Ok(_) => self.append_settled(&order, pending.change(), now).await,
            Err(e) if nothing_moved(&e) => {
                let (_, code) = e.kind_and_code();
                let failed = Change::PaymentFailed {
                    code: code.to_owned(),
                    detail: e.to_string(),
                };
                self.append_settled(&order, failed, now).await?;
                Err(e.into())
            }
            Err(e) => {
                metrics::counter!("emporium_order_payments_unsettled_total").increment(1);
                tracing::warn!(order = %order.id, key = %pending.key, error = %e, "an order's payment step is left pending");
                Err(e.into())
            }
        }
    }

    /// Appends the outcome of `order`'s pending action; when another settler appended it
    /// first, the order as it now stands.
    async fn append_settled(
        &self,
        order: &Order,
        change: Change,
        now: OffsetDateTime,
    ) -> Result<Order, OrderingError> {
        match self.append(order, change, now).await {
            Err(OrderingError::OrderChanged) => self.get_any(order.id).await,
            other => other,
        }
    }

    /// Settles every money action pending since before `idle` ago (a crash, a dropped
    /// request or a provider that did not answer left it); returns how many it settled. One
    /// that still gets no answer stays pending for the next pass.
    pub async fn settle_pending(&self, idle: std::time::Duration) -> Result<usize, OrderingError> {
        let now = self.clock.now();
        let before = now - idle;
        let mut conn = self.db.read().await?;
        let ids = store::orders_pending_payment(&mut conn, before).await?;
        drop(conn);
        let mut settled = 0;
        let mut deferred = 0_u64;
        for id in ids {
            if !self.retry_due(id, now) {
                deferred += 1;
                continue;
            }
            let order = self.get_any(OrderId(id)).await?;
            match self.settle(order).await {
                Ok(_) => {
                    self.forget_retry(id);
                    settled += 1;
                }
                Err(OrderingError::Payment(e)) if nothing_moved(&e) => {
                    self.forget_retry(id);
                    settled += 1;
                }
                Err(e) => {
                    let (attempts, next) = self.schedule_retry(id, now);
                    tracing::warn!(order = %OrderId(id), error = %e, attempts, retry_at = %next, "pending payment not settled; retried later");
                }
            }
        }
        if deferred > 0 {
            metrics::counter!("emporium_order_settlements_deferred_total").increment(deferred);
        }
        Ok(settled)
    }

    /// Whether recovery may try order `id` again at `now`.
    fn retry_due(&self, id: Uuid, now: OffsetDateTime) -> bool {
        self.retries
            .lock()
            .map_or(true, |r| r.get(&id).is_none_or(|(_, next)| *next <= now))
    }

    /// Counts a failed try for order `id` at `now`; returns the tries so far and when the next
    /// one is due.
    fn schedule_retry(&self, id: Uuid, now: OffsetDateTime) -> (u32, OffsetDateTime) {
        let Ok(mut retries) = self.retries.lock() else {
            return (0, now);
        };
        let entry = retries.entry(id).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now + retry_wait(entry.0);
        *entry
    }

    fn forget_retry(&self, id: Uuid) {
        if let Ok(mut retries) = self.retries.lock() {
            retries.remove(&id);
        }
    }

    /// Appends `change` to `order`'s stream at the next sequence, with the projection and the
    /// event; `OrderChanged` when that sequence is taken.
    async fn append(
        &self,
        order: &Order,
        change: Change,
        now: OffsetDateTime,
    ) -> Result<Order, OrderingError> {
        let next = apply(order, &change, now).map_err(|e| OrderingError::IllegalTransition(e.0))?;
        let event = OrderEvent::Changed(change.clone(), now);
        let mut tx = self.db.begin_write().await?;
        let appended = store::append_event(&EventRow {
            order_id: order.id.0,
            sequence: next.version,
            event_type: event.type_name().to_owned(),
            data: event
                .data()
                .map_err(|e| OrderingError::Corrupt(e.to_string()))?,
            occurred_at: now,
        })
        .execute(&mut tx)
        .await;
        match appended {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => return Err(OrderingError::OrderChanged),
            Err(e) => return Err(e.into()),
        }
        tx.write_at_commit(store::upsert_order(&projection_of(&next)?));
        tx.record(
            &OrderChanged {
                change,
                order: next.clone(),
            },
            next.version,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Now, in whole microseconds: what PostgreSQL keeps of an event's time, from which a
    /// rebuild sets `updated_at`.
    fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }

    /// Order `id` for a caller holding its token or the session of its customer;
    /// `OrderNotFound` for anyone else.
    pub async fn get(
        &self,
        id: OrderId,
        token: Option<&str>,
        customer: Option<&str>,
    ) -> Result<Order, OrderingError> {
        let mut conn = self.db.read().await?;
        let row = store::find_order(&mut conn, id.0)
            .await?
            .ok_or(OrderingError::OrderNotFound)?;
        let by_customer = customer.is_some_and(|c| row.customer_id.as_deref() == Some(c));
        let by_token = match token {
            Some(t) => store::access_hash(&mut conn, id.0).await?.as_deref() == Some(&hash(t)),
            None => false,
        };
        if !by_customer && !by_token {
            return Err(OrderingError::OrderNotFound);
        }
        serde_json::from_str(&row.document).map_err(|e| OrderingError::Corrupt(e.to_string()))
    }

    /// Rebuilds every order's projection from its event stream, in one transaction; returns
    /// how many orders it wrote.
    pub async fn rebuild_projections(&self) -> Result<usize, OrderingError> {
        let mut tx = self.db.begin_write().await?;
        let events = store::all_events(&mut tx).await?;
        store::clear_orders(&mut tx).await?;
        let mut written = 0;
        let mut at = 0;
        while at < events.len() {
            let id = events[at].order_id;
            let end = events[at..]
                .iter()
                .position(|e| e.order_id != id)
                .map_or(events.len(), |n| at + n);
            let stream = events[at..end]
                .iter()
                .map(|e| OrderEvent::parse(&e.event_type, &e.data, e.occurred_at))
                .collect::<Result<Vec<_>, _>>()
                .map_err(OrderingError::Corrupt)?;
            let order = fold(stream)
                .ok_or_else(|| OrderingError::Corrupt(format!("order {id}: malformed stream")))?;
            tx.write_at_commit(store::upsert_order(&projection_of(&order)?));
            written += 1;
            at = end;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// How many orders the projection holds.
    pub async fn count(&self) -> Result<i64, OrderingError> {
        let mut conn = self.db.read().await?;
        Ok(store::count_orders(&mut conn).await?)
    }
}

/// Whether a payment failure says for sure that no money moved (the payment refused, or the
/// intent was not in a state to move); otherwise the outcome is unknown and the step is
/// retried under the same key.
/// The wait after the `attempts`-th failed try: [`SETTLE_RETRY_FIRST`], doubled for each try
/// after the first, at most [`SETTLE_RETRY_MAX`].
fn retry_wait(attempts: u32) -> time::Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    (SETTLE_RETRY_FIRST * 2_i32.pow(doublings)).min(SETTLE_RETRY_MAX)
}

fn nothing_moved(e: &PaymentError) -> bool {
    matches!(
        e,
        PaymentError::IllegalTransition { .. }
            | PaymentError::AmountTooLarge(_)
            | PaymentError::ProviderRefused(_)
            | PaymentError::PaymentNotFound
            | PaymentError::UnknownProvider(_)
            | PaymentError::OperationInProgress
            | PaymentError::OperationKeyReused
    )
}

/// A payment step an action needs: the action it serves, the step, and the amount it moves.
type MoneyStep = (MoneyAction, PaymentStep, i64);

/// The change an action makes, and the payment step it needs first (with the action it
/// serves and the amount it moves); amounts and lines are checked here, each fault at its
/// field.
fn plan(order: &Order, action: &Action) -> Result<(Change, Option<MoneyStep>), OrderingError> {
    Ok(match action {
        Action::Capture => (
            Change::Paid {
                amount: order.total,
            },
            Some((MoneyAction::Capture, PaymentStep::Capture, order.total)),
        ),
        Action::Fulfill(lines) => {
            check_fulfilment(order, lines)?;
            (
                Change::Fulfilled {
                    lines: lines.clone(),
                },
                None,
            )
        }
        Action::Ship(tracking) => (
            Change::Shipped {
                tracking_number: tracking.clone(),
            },
            None,
        ),
        Action::Deliver => (Change::Delivered, None),
        Action::Cancel(reason) => {
            let left = order
                .captured_amount
                .checked_sub(order.refunded_amount)
                .filter(|left| *left >= 0)
                .ok_or_else(|| {
                    OrderingError::Corrupt(format!("order {}: refunds exceed captures", order.id))
                })?;
            let step = if order.status == OrderStatus::Placed {
                Some((MoneyAction::Cancel, PaymentStep::Void, 0))
            } else if left > 0 {
                Some((MoneyAction::Cancel, PaymentStep::Refund, left))
            } else {
                None
            };
            let refunded = if order.status == OrderStatus::Placed {
                0
            } else {
                left
            };
            (
                Change::Cancelled {
                    reason: reason.clone(),
                    refunded,
                },
                step,
            )
        }
        Action::Refund(amount) => {
            if *amount < 1 {
                return Err(OrderingError::invalid(
                    "/amount",
                    "out_of_range",
                    "a refund is at least 1 minor unit",
                ));
            }
            let left = order.captured_amount.saturating_sub(order.refunded_amount);
            // A refund the order's state refuses is a 409 (below), not a fault of the amount.
            let refundable = !matches!(order.status, OrderStatus::Placed | OrderStatus::Cancelled);
            if refundable && *amount > left {
                return Err(OrderingError::invalid(
                    "/amount",
                    "out_of_range",
                    format!("at most {left} minor units are left to refund"),
                ));
            }
            (
                Change::Refunded { amount: *amount },
                Some((MoneyAction::Refund, PaymentStep::Refund, *amount)),
            )
        }
        Action::Return => (Change::Returned, None),
    })
}

/// Checks each line of a fulfilment against the order: `/lines/{i}/variant_id` names no line
/// of it, `/lines/{i}/quantity` is not positive or more than is left to fulfil (counting the
/// same line named twice).
fn check_fulfilment(order: &Order, lines: &[(VariantId, i64)]) -> Result<(), OrderingError> {
    let mut v = emporium_kernel::Violations::new();
    if lines.is_empty() {
        v.push("/lines", "required", "name at least one line to fulfil");
    }
    let mut asked: std::collections::HashMap<VariantId, i64> = std::collections::HashMap::new();
    for (i, (variant, quantity)) in lines.iter().enumerate() {
        let Some(line) = order.lines.iter().find(|l| l.variant_id == *variant) else {
            v.push(
                format!("/lines/{i}/variant_id"),
                "not_found",
                format!("the order has no line for {variant}"),
            );
            continue;
        };
        let total = asked.entry(*variant).or_insert(0);
        let left = line.quantity.saturating_sub(line.fulfilled_quantity);
        match total.checked_add(*quantity) {
            Some(sum) if *quantity >= 1 && sum <= left => *total = sum,
            _ => v.push(
                format!("/lines/{i}/quantity"),
                "out_of_range",
                format!(
                    "{} of {} units are fulfilled; {quantity} more is too many",
                    line.fulfilled_quantity, line.quantity
                ),
            ),
        }
    }
    v.finish().map_err(OrderingError::Invalid)
}

/// Refuses control characters in the text an action carries (`/tracking_number`, `/reason`).
fn check_action_text(action: &Action) -> Result<(), OrderingError> {
    let (pointer, text) = match action {
        Action::Ship(Some(tracking)) => ("/tracking_number", tracking),
        Action::Cancel(reason) => ("/reason", reason),
        _ => return Ok(()),
    };
    let mut v = emporium_kernel::Violations::new();
    v.check(pointer, emporium_kernel::text::single_line(text));
    v.finish().map_err(OrderingError::Invalid)
}

/// The position after which a page starts, and its size (`/cursor`, `/limit` at fault).
fn page_request(
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<(Option<(time::OffsetDateTime, uuid::Uuid)>, i64), OrderingError> {
    let mut v = emporium_kernel::Violations::new();
    let limit = v
        .check(
            "/limit",
            emporium_kernel::cursor::page_limit(limit, 50, 200),
        )
        .unwrap_or(50);
    let after = match cursor {
        Some(c) => v.check(
            "/cursor",
            emporium_kernel::Cursor::decode::<(time::OffsetDateTime, uuid::Uuid)>(c),
        ),
        None => None,
    };
    v.finish().map_err(OrderingError::Invalid)?;
    Ok((after, limit))
}

/// A page of `limit` orders from `rows` (read with one more, which says a next page exists).
fn page_of(
    mut rows: Vec<store::OrderRow>,
    limit: i64,
) -> Result<emporium_kernel::Page<Order>, OrderingError> {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|r| emporium_kernel::Cursor::encode(&(r.created_at, r.id)))
        })
        .flatten()
        .map(emporium_kernel::Cursor::into_string);
    let items = rows
        .into_iter()
        .map(|r| {
            serde_json::from_str(&r.document).map_err(|e| OrderingError::Corrupt(e.to_string()))
        })
        .collect::<Result<Vec<Order>, _>>()?;
    Ok(emporium_kernel::Page { items, next_cursor })
}
