//! `WebhookFanout`: the consumer that turns each event into a delivery for every enabled
//! endpoint subscribed to its type, in the inbox transaction. It sends nothing itself, so no
//! receiver, however slow, holds up the bus or a checkout.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

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
    /// This process's deliverer, which takes new deliveries in memory.
    handoff: Arc<Handoff>,
}

impl WebhookFanout {
    pub fn new(db: Db, clock: Arc<dyn Clock>, handoff: Arc<Handoff>) -> Self {
        Self { db, clock, handoff }
    }
}

/// How long deliveries handed over in memory are leased to this process: past it, a deliverer
/// takes them from the table (this process stopped before sending them).
const HANDOFF_LEASE: time::Duration = time::Duration::minutes(5);

/// A delivery handed to the deliverer in memory, already leased to it.
#[derive(Debug, Clone)]
pub struct Handed {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub body: Bytes,
}

/// New deliveries on their way from the consumer to this process's deliverer, which then need
/// no claim and no read of their body. Bounded: what does not fit waits in the table.
pub struct Handoff {
    queue: Mutex<VecDeque<Handed>>,
    capacity: usize,
    wake: Arc<Notify>,
}

impl Handoff {
    /// A hand-off of up to `capacity` deliveries, waking the deliverer through `wake`.
    pub fn new(capacity: usize, wake: Arc<Notify>) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            wake,
        }
    }

    fn room(&self) -> usize {
        self.capacity.saturating_sub(self.lock().len())
    }

    fn push(&self, handed: Vec<Handed>) {
        self.lock().extend(handed);
        self.wake.notify_one();
    }

    /// Up to `n` deliveries, oldest first.
    pub(crate) fn take(&self, n: usize) -> Vec<Handed> {
        let mut queue = self.lock();
        let n = n.min(queue.len());
        queue.drain(..n).collect()
    }

    /// Wakes the deliverer (a replay or an endpoint enabled again).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Handed>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
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
        // Only events some endpoint takes leave a trace: the others have no effect to
        // de-duplicate.
        let taken: Vec<&Envelope> = events
            .iter()
            .copied()
            .filter(|e| {
                endpoints
                    .iter()
                    .any(|(_, types)| types.iter().any(|t| domain::matches(t, &e.event_type)))
            })
            .collect();
        if taken.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let room = self.handoff.room();
        let lease_until = now + HANDOFF_LEASE;
        let mut handed = Vec::new();
        let mut tx = self.db.begin_write().await?;
        let ids: Vec<Uuid> = taken.iter().map(|e| e.id).collect();
        let fresh = emporium_db::mark_all_handled(&mut tx, CONSUMER, &ids, now).await?;
        let (mut rows, mut messages) = (Vec::new(), Vec::new());
        for (e, _) in taken.iter().zip(fresh).filter(|(_, new)| *new) {
            let before = rows.len();
            let body = Bytes::from(payload_of(e));
            for (endpoint, types) in &endpoints {
                if !types.iter().any(|t| domain::matches(t, &e.event_type)) {
                    continue;
                }
                let id = DeliveryId::generate().0;
                // Handed to this process's deliverer in memory, under a lease, while it has
                // room; the rest it (or another process) takes from the table.
                let lease = (handed.len() < room).then(|| {
                    handed.push(Handed {
                        id,
                        endpoint_id: *endpoint,
                        event_id: e.id,
                        body: body.clone(),
                    });
                    lease_until
                });
                rows.push(vec![
                    Arg::Uuid(id),
                    Arg::Uuid(*endpoint),
                    Arg::Uuid(e.id),
                    Arg::Text(e.event_type.clone()),
                    Arg::Text(e.aggregate_id.clone()),
                    Arg::Text("pending".to_owned()),
                    Arg::Int(0),
                    Arg::Int(0),
                    Arg::Time(now),
                    Arg::OptTime(lease),
                    Arg::Time(now),
                ]);
            }
            // The body once, however many endpoints take the event.
            if rows.len() > before {
                messages.push(vec![
                    Arg::Uuid(e.id),
                    Arg::Text(String::from_utf8_lossy(&body).into_owned()),
                    Arg::Time(now),
                ]);
            }
        }
        let made = !rows.is_empty();
        store::insert_messages(&mut tx, messages).await?;
        store::insert_deliveries(&mut tx, rows).await?;
        tx.commit().await?;
        if made {
            self.handoff.push(handed);
        }
        Ok(())
    }
}
