//! The event bus: the [`EventBus`] trait, its in-process implementation, the NATS JetStream
//! implementation of the scaled-out shape, and the outbox relay that moves committed outbox rows
//! onto a bus, at least once, in outbox order.
//!
//! Consumers ([`EventHandler`]) record each event id in the inbox in the same transaction as their
//! effect (`emporium_db::mark_all_handled`), so a redelivered event has no second effect.

mod in_process;
mod nats;
mod relay;

use std::error::Error as StdError;

use emporium_kernel::Envelope;

pub use in_process::InProcessBus;
pub use nats::{
    ConsumerMode, DEFAULT_NAMESPACE, NatsError, NatsEvents, StreamSpec, group_streams,
    group_streams_in, subject_for, subject_in,
};
pub use relay::OutboxRelay;

/// A consumer's failure; the event will be delivered again.
pub type HandlerError = Box<dyn StdError + Send + Sync>;

/// Why the bus did not accept an event.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("consumer {consumer} failed to handle event {event_id}")]
    Handler {
        consumer: &'static str,
        event_id: uuid::Uuid,
        #[source]
        source: HandlerError,
    },
    #[error("event {event_id} ({event_type}) was not stored by the broker")]
    Publish {
        event_id: uuid::Uuid,
        event_type: String,
        #[source]
        source: HandlerError,
    },
}

/// Carries events from the outbox relay to consumers.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes one event. `Ok` means every consumer has it; on `Err` the relay retries later.
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError>;

    /// Publishes events in order. `Ok` means every consumer has all of them; on `Err` the relay
    /// delivers the whole batch again later (consumers skip what they already handled).
    async fn publish_batch(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        for envelope in envelopes {
            self.publish(envelope).await?;
        }
        Ok(())
    }
}

/// A consumer of events.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Stable consumer name: the inbox key, so it must never change.
    fn name(&self) -> &'static str;

    /// True when this consumer wants events of `event_type`.
    fn accepts(&self, event_type: &str) -> bool;

    /// Applies the event. Must be idempotent through the inbox: check and record the event id in
    /// the same transaction as the effect.
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError>;

    /// Applies events in order, each one it `accepts`. A consumer that can apply many events in
    /// one transaction overrides it; the effect must be that of [`EventHandler::handle`] on each
    /// event in turn, and a failure must leave every event either applied and recorded in the
    /// inbox, or not applied.
    async fn handle_batch(&self, envelopes: &[&Envelope]) -> Result<(), HandlerError> {
        for envelope in envelopes {
            self.handle(envelope).await?;
        }
        Ok(())
    }
}
