//! The all-in-one bus: delivery is a direct call to each consumer, awaited, in outbox order; a
//! batch goes to each consumer whole, so it can apply it in one transaction.

use std::sync::{Arc, RwLock};

use emporium_kernel::Envelope;

use crate::{BusError, EventBus, EventHandler};

/// Delivers each event to every subscribed consumer in this process before acknowledging it.
#[derive(Default)]
pub struct InProcessBus {
    // A std lock: held only to clone the list, never across an await.
    handlers: RwLock<Vec<Arc<dyn EventHandler>>>,
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a consumer; it receives every event published from now on.
    pub fn subscribe(&self, handler: Arc<dyn EventHandler>) {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(handler);
    }

    fn handlers(&self) -> Vec<Arc<dyn EventHandler>> {
        self.handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait::async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        let mut first_failure = None;
        for handler in self.handlers() {
            if !handler.accepts(&envelope.event_type) {
                continue;
            }
            // Every consumer gets its chance even when one fails; the ones that succeeded skip
            // the redelivery through their inbox.
            if let Err(source) = handler.handle(envelope).await {
                tracing::warn!(consumer = handler.name(), event_id = %envelope.id, error = %source, "consumer failed");
                first_failure.get_or_insert(BusError::Handler {
                    consumer: handler.name(),
                    event_id: envelope.id,
                    source,
                });
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    async fn publish_batch(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        let mut first_failure = None;
        for handler in self.handlers() {
            let accepted: Vec<&Envelope> = envelopes
                .iter()
                .filter(|e| handler.accepts(&e.event_type))
                .collect();
            if accepted.is_empty() {
                continue;
            }
            if let Err(source) = handler.handle_batch(&accepted).await {
                tracing::warn!(consumer = handler.name(), events = accepted.len(), error = %source, "consumer failed on a batch");
                first_failure.get_or_insert(BusError::Handler {
                    consumer: handler.name(),
                    event_id: accepted[0].id,
                    source,
                });
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}
