//! A cancelled order's stock goes back on hand: the consumer of `order.changed` (a change of
//! type `cancelled`) that asks inventory to restock the reservation its checkout committed.

use std::str::FromStr;
use std::sync::Arc;

use emporium_bus::{EventHandler, HandlerError};
use emporium_db::Db;
use emporium_inventory::{InventoryApi, InventoryError};
use emporium_kernel::Envelope;
use emporium_kernel::ids::{OrderId, ReservationId};

use crate::saga::CheckoutService;
use crate::store;

/// Ledger reason of the units a cancelled order gives back.
const REASON: &str = "order_cancelled";

/// Restocks each cancelled order once. Inventory keeps a reservation's restock with the stock
/// change, so a redelivered event changes nothing and this consumer needs no inbox.
///
/// Returned orders are not restocked: returned goods come back through a stock adjustment once
/// someone has seen they can be sold again.
pub struct Restocker {
    db: Db,
    checkout: Arc<CheckoutService>,
    inventory: Arc<dyn InventoryApi>,
}

impl Restocker {
    /// A consumer over ordering's `db`.
    pub fn new(db: Db, checkout: Arc<CheckoutService>, inventory: Arc<dyn InventoryApi>) -> Self {
        Self {
            db,
            checkout,
            inventory,
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for Restocker {
    fn name(&self) -> &'static str {
        "ordering_restock"
    }

    fn accepts(&self, event_type: &str) -> bool {
        event_type == "order.changed"
    }

    async fn handle(&self, e: &Envelope) -> Result<(), HandlerError> {
        if e.data["change"]["type"] != "cancelled" {
            return Ok(());
        }
        let order = OrderId::from_str(&e.aggregate_id)?;
        let mut conn = self.db.read().await?;
        let found = store::checkout_of_order(&mut conn, order.0).await?;
        drop(conn);
        // An order placed other than by a checkout holds no stock of ours.
        let Some(row) = found else {
            return Ok(());
        };
        if crate::saga::CheckoutState::parse(&row.state)? == crate::saga::CheckoutState::Placed {
            // Cancelled before the completer came by: commit its stock first, then give it back.
            self.checkout.complete_placed().await?;
        }
        let Some(reservation) = row.reservation_id else {
            return Ok(());
        };
        match self
            .inventory
            .restock(ReservationId(reservation), REASON)
            .await
        {
            // The hold lapsed before it was committed: its units went back on sale then.
            Ok(_) | Err(InventoryError::ReservationNotCommitted) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
