//! `WebhookFanout`: the consumer that turns each event into a delivery for every enabled
//! endpoint subscribed to its type, in the inbox transaction. It sends nothing itself, so no
//! receiver, however slow, holds up the bus or a checkout.

use std::sync::Arc;

use emporium_bus::{EventHandler, HandlerError};
use emporium_db::{Arg, Db};
use emporium_kernel::{Clock, Envelope};
use serde_json::json;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{self, DeliveryId};
use crate::store;

/// Inbox name; never change it.
const CONSUMER: &str = "notify_webhooks";

/// Makes the deliveries of each event.
pub struct WebhookFanout {
    db: Db,
    clock: Arc<dyn Clock>,
    /// Wakes the deliverer of this process when deliveries were made.
    made: Arc<Notify>,
}

impl WebhookFanout {
    pub fn new(db: Db, clock: Arc<dyn Clock>, made: Arc<Notify>) -> Self {
        Self { db, clock, made }
    }
}

/// The body of a delivery: the Standard Webhooks shape (`type`, `timestamp`, `data`) plus the
/// event's id, aggregate, sequence and version, so a receiver can drop duplicates and order
/// changes of one aggregate.
pub fn payload_of(e: &Envelope) -> String {
    json!({
        "type": e.event_type,
        "timestamp": e.occurred_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "event_id": e.id,
        "aggregate_id": e.aggregate_id,
        "sequence": e.sequence,
        "version": e.version,
        "data": e.data,
    })
    .to_string()
}

#[async_trait::async_trait]
impl EventHandler for WebhookFanout {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    fn accepts(&self, event_type: &str) -> bool {
        domain::EVENT_TYPES.contains(&event_type)
    }

    async fn handle(&self, e: &Envelope) -> Result<(), HandlerError> {
        self.handle_batch(&[e]).await
    }

    /// One transaction per batch: the inbox rows and every delivery. With no enabled endpoint
    /// there is nothing to record (an endpoint receives events handled after it exists).
    async fn handle_batch(&self, events: &[&Envelope]) -> Result<(), HandlerError> {
        let endpoints: Vec<(Uuid, Vec<String>)> = {
            let mut conn = self.db.read().await?;
            store::enabled_endpoints(&mut conn)
                .await?
                .into_iter()
                .map(|(id, types)| (id, serde_json::from_str(&types).unwrap_or_default()))
                .collect()
        };
        if endpoints.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let fresh = emporium_db::mark_all_handled(&mut tx, CONSUMER, &ids, now).await?;
        let mut rows = Vec::new();
        for (e, _) in events.iter().zip(fresh).filter(|(_, new)| *new) {
            let mut payload = None;
            for (endpoint, types) in &endpoints {
                if !types.iter().any(|t| domain::matches(t, &e.event_type)) {
                    continue;
                }
                let body = payload.get_or_insert_with(|| payload_of(e)).clone();
                rows.push(vec![
                    Arg::Uuid(DeliveryId::generate().0),
                    Arg::Uuid(*endpoint),
                    Arg::Uuid(e.id),
                    Arg::Text(e.event_type.clone()),
                    Arg::Text(e.aggregate_id.clone()),
                    Arg::Text(body),
                    Arg::Text("pending".to_owned()),
                    Arg::Int(0),
                    Arg::Int(0),
                    Arg::Time(now),
                    Arg::Time(now),
                ]);
            }
        }
        let made = !rows.is_empty();
        store::insert_deliveries(&mut tx, rows).await?;
        tx.commit().await?;
        if made {
            self.made.notify_one();
        }
        Ok(())
    }
}
