//! The event feed the index is projected from: an ordered, replayable log of every event.
//!
//! The binary implements it over its event journal (and, scaled out, over a JetStream stream);
//! [`MemoryFeed`] keeps the log in memory for tests and tools.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use emporium_kernel::Envelope;
use tokio::sync::Notify;

/// Why the feed could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the event feed failed")]
pub struct FeedError(#[source] Box<dyn std::error::Error + Send + Sync>);

impl FeedError {
    /// Wraps the cause.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(source.into())
    }
}

/// An ordered, replayable log of every event, each at a position that only grows.
#[async_trait]
pub trait EventFeed: Send + Sync {
    /// Up to `limit` events whose position is above `position`, in position order. An empty
    /// answer means nothing newer exists yet.
    async fn read_after(
        &self,
        position: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Envelope)>, FeedError>;

    /// Returns when new events may be available, or after `timeout` at the latest.
    async fn wait(&self, timeout: Duration);
}

/// A feed held in memory; positions start at 1 and follow the order of [`MemoryFeed::push`].
#[derive(Debug, Default)]
pub struct MemoryFeed {
    // Never held across an `.await`.
    events: Mutex<Vec<Envelope>>,
    pushed: Notify,
}

impl MemoryFeed {
    /// An empty feed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event and returns its position.
    pub fn push(&self, event: Envelope) -> i64 {
        let position = {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            events.push(event);
            i64::try_from(events.len()).unwrap_or(i64::MAX)
        };
        self.pushed.notify_waiters();
        position
    }

    /// The position of the last event (0 when empty).
    pub fn last_position(&self) -> i64 {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        i64::try_from(events.len()).unwrap_or(i64::MAX)
    }
}

#[async_trait]
impl EventFeed for MemoryFeed {
    async fn read_after(
        &self,
        position: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Envelope)>, FeedError> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let start = usize::try_from(position.max(0)).unwrap_or(usize::MAX);
        Ok(events
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, e)| (i64::try_from(i + 1).unwrap_or(i64::MAX), e.clone()))
            .collect())
    }

    async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.pushed.notified()).await;
    }
}
