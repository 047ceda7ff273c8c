//! Reading orders (the projection), and rebuilding the projection from the event streams.

use std::sync::Arc;

use emporium_db::Db;
use emporium_kernel::Clock;
use emporium_kernel::ids::{OrderId, VariantId};
use emporium_payments::PaymentService;

use crate::checkout::projection_of;
use crate::error::OrderingError;
use crate::order::{Change, Order, OrderChanged, OrderEvent, OrderStatus, apply, fold};
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
pub struct OrderService {
    db: Db,
    clock: Arc<dyn Clock>,
    payments: Arc<PaymentService>,
}

impl OrderService {
    pub fn new(db: Db, clock: Arc<dyn Clock>, payments: Arc<PaymentService>) -> Self {
        Self {
            db,
            clock,
            payments,
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
    pub async fn list(
        &self,
        status: Option<OrderStatus>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<emporium_kernel::Page<Order>, OrderingError> {
        let (after, limit) = page_request(cursor, limit)?;
        let mut conn = self.db.read().await?;
        let rows = store::list_orders(&mut conn, status.map(OrderStatus::as_str), after, limit + 1)
            .await?;
        page_of(rows, limit)
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

    /// Carries out a staff action: checks it against the lifecycle, moves the payment when the
    /// action needs it (capture, void, refund), then appends the change to the order's stream
    /// with its projection and its event. `IllegalTransition` (409) when the order's state does
    /// not allow it; `OrderChanged` (409) when another action got there first.
    pub async fn act(&self, id: OrderId, action: Action) -> Result<Order, OrderingError> {
        check_action_text(&action)?;
        let order = self.get_any(id).await?;
        // Whole microseconds: what PostgreSQL keeps of the event's time, from which a rebuild
        // sets `updated_at`.
        let now = self.clock.now();
        let now = now
            .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now);
        // The rules first, with what the payment step would report, so an illegal action
        // never touches the payment.
        let provisional = change_of(&order, &action, order.total - order.refunded_amount);
        apply(&order, &provisional, now).map_err(|e| OrderingError::IllegalTransition(e.0))?;
        let change = match &action {
            Action::Capture => {
                let intent = self.payments.capture(order.payment_id, None).await?;
                Change::Paid {
                    amount: intent.captured_amount,
                }
            }
            Action::Cancel(reason) => {
                let refunded = if order.status == OrderStatus::Placed {
                    self.payments.void(order.payment_id).await?;
                    0
                } else {
                    let left = order.captured_amount - order.refunded_amount;
                    if left > 0 {
                        self.payments.refund(order.payment_id, left).await?;
                    }
                    left
                };
                Change::Cancelled {
                    reason: reason.clone(),
                    refunded,
                }
            }
            Action::Refund(amount) => {
                self.payments.refund(order.payment_id, *amount).await?;
                Change::Refunded { amount: *amount }
            }
            _ => provisional,
        };
        let next =
            apply(&order, &change, now).map_err(|e| OrderingError::IllegalTransition(e.0))?;
        let event = OrderEvent::Changed(change.clone(), now);
        let mut tx = self.db.begin_write().await?;
        let appended = store::append_event(&EventRow {
            order_id: id.0,
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

/// The change an action makes, with `amount` standing for what a payment step reports.
fn change_of(order: &Order, action: &Action, amount: i64) -> Change {
    match action {
        Action::Capture => Change::Paid { amount },
        Action::Fulfill(lines) => Change::Fulfilled {
            lines: lines.clone(),
        },
        Action::Ship(tracking) => Change::Shipped {
            tracking_number: tracking.clone(),
        },
        Action::Deliver => Change::Delivered,
        Action::Cancel(reason) => Change::Cancelled {
            reason: reason.clone(),
            refunded: if order.status == OrderStatus::Placed {
                0
            } else {
                order.captured_amount - order.refunded_amount
            },
        },
        Action::Refund(amount) => Change::Refunded { amount: *amount },
        Action::Return => Change::Returned,
    }
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
