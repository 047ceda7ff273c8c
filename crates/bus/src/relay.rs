//! The outbox relay: delivers committed outbox rows to the bus at least once, in outbox order.

use std::sync::Arc;
use std::time::Duration;

use emporium_db::{Db, DbError};
use emporium_kernel::Clock;
use emporium_kernel::fault::CrashPoints;
use tokio_util::sync::CancellationToken;

use crate::{BusError, EventBus};

/// Why a relay pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox storage failed")]
    Db(#[from] DbError),
    #[error("bus refused an event")]
    Bus(#[from] BusError),
}

/// Moves committed outbox rows onto the bus.
///
/// A row is marked published only after the bus accepted it, so a crash between the two delivers
/// the event again on restart (consumers de-duplicate through the inbox). A row from a
/// rolled-back transaction never existed, so it is never delivered.
pub struct OutboxRelay {
    db: Db,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    crash: CrashPoints,
    batch: i64,
    retention: Option<time::Duration>,
}

impl OutboxRelay {
    /// A relay from `db`'s outbox to `bus`.
    pub fn new(db: Db, bus: Arc<dyn EventBus>, clock: Arc<dyn Clock>, crash: CrashPoints) -> Self {
        Self {
            db,
            bus,
            clock,
            crash,
            batch: 256,
            retention: None,
        }
    }

    /// Keeps delivered events this long, then deletes them (pruned every ten minutes by
    /// [`OutboxRelay::run`]). Without it, delivered events are kept for ever.
    pub fn with_retention(mut self, retention: time::Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Delivers everything committed so far; returns how many events were delivered.
    ///
    /// Rows go to the bus a batch at a time, in order, and are marked published only when the
    /// bus accepted the whole batch; a refused batch stops the pass, so no later event overtakes
    /// it, and is delivered again whole (consumers skip what they already handled).
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let _turn = self.db.relay_turn().lock().await;
        let mut delivered = 0;
        loop {
            let rows = emporium_db::pending_outbox(&self.db, self.batch).await?;
            if rows.is_empty() {
                return Ok(delivered);
            }
            let (positions, envelopes): (Vec<i64>, Vec<_>) =
                rows.into_iter().map(|r| (r.position, r.envelope)).unzip();
            self.crash.hit("relay.before_publish");
            self.bus.publish_batch(&envelopes).await?;
            self.crash.hit("relay.before_mark_published");
            emporium_db::mark_published(&self.db, &positions, self.clock.now()).await?;
            metrics::counter!("emporium_outbox_published_total").increment(positions.len() as u64);
            delivered += positions.len();
        }
    }

    /// Runs until `cancel` fires: delivers on every commit signal (and every `poll` as a safety
    /// net), backs off after failures, and drains once more before returning.
    pub async fn run(self, poll: Duration, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut pruned_at: Option<tokio::time::Instant> = None;
        loop {
            if let Some(retention) = self.retention
                && pruned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(600))
            {
                pruned_at = Some(tokio::time::Instant::now());
                match emporium_db::prune_delivered(&self.db, self.clock.now() - retention).await {
                    Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned delivered outbox events"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox pruning failed"),
                }
            }
            match self.drain().await {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    metrics::counter!("emporium_outbox_relay_failures_total").increment(1);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay pass failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = cancel.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
            tokio::select! {
                () = self.db.outbox_signal().notified() => {}
                () = tokio::time::sleep(poll) => {}
                () = cancel.cancelled() => break,
            }
        }
        match self.drain().await {
            Ok(n) => tracing::info!(delivered = n, "outbox flushed"),
            Err(e) => {
                tracing::warn!(error = %e, "outbox flush at shutdown failed; the rest is delivered at next start")
            }
        }
    }
}
