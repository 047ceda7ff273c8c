//! Reading orders (the projection), and rebuilding the projection from the event streams.

use emporium_db::Db;
use emporium_kernel::ids::OrderId;

use crate::checkout::{hash, projection_of};
use crate::error::OrderingError;
use crate::order::{Order, OrderEvent, fold};
use crate::store;

/// Most orders on one page of a customer's list.
const PAGE: i64 = 50;

/// Orders over one database.
pub struct OrderService {
    db: Db,
}

impl OrderService {
    pub fn new(db: Db) -> Self {
        Self { db }
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

    /// The customer's latest orders, newest first.
    pub async fn list_for_customer(&self, customer: &str) -> Result<Vec<Order>, OrderingError> {
        let mut conn = self.db.read().await?;
        store::orders_of(&mut conn, customer, PAGE)
            .await?
            .into_iter()
            .map(|r| {
                serde_json::from_str(&r.document).map_err(|e| OrderingError::Corrupt(e.to_string()))
            })
            .collect()
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
                .map(|e| OrderEvent::parse(&e.event_type, &e.data))
                .collect::<Result<Vec<_>, _>>()
                .map_err(OrderingError::Corrupt)?;
            let order = fold(stream)
                .ok_or_else(|| OrderingError::Corrupt(format!("order {id}: malformed stream")))?;
            store::upsert_order(&mut tx, &projection_of(&order)?).await?;
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
