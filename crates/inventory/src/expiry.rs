//! The expiry sweeper: a loop that gives back the stock of reservations whose time is up.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::service::InventoryService;

/// The shortest period the sweeper accepts; a shorter one is raised to it.
pub const MIN_EXPIRY_PERIOD: Duration = Duration::from_millis(10);

/// What the sweeper has done so far, published after every finished pass: see
/// [`InventoryService::expiry_sweeps`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpirySweeps {
    /// Passes finished, failed ones included (a pass cut short by stopping is not counted).
    pub completed: u64,
    /// Passes that failed.
    pub failed: u64,
    /// Reservations the latest finished pass expired; 0 when it failed.
    pub last_expired: u64,
}

impl ExpirySweeps {
    /// Counts a finished pass that expired `expired` reservations, or failed (`None`).
    pub(crate) fn record_pass(&mut self, expired: Option<u64>) {
        self.completed += 1;
        self.failed += u64::from(expired.is_none());
        self.last_expired = expired.unwrap_or(0);
    }
}

/// Runs [`InventoryService::release_expired`] now and then every `every` until `stop` is
/// cancelled. A failed sweep is logged and retried at the next tick. Stopping mid-sweep is safe:
/// each reservation expires in its own transaction. Every finished pass is published to the
/// watchers of [`InventoryService::expiry_sweeps`].
pub async fn run_expiry(service: Arc<InventoryService>, every: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(every.max(MIN_EXPIRY_PERIOD));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = service.clock().now();
        tokio::select! {
            () = stop.cancelled() => return,
            swept = service.release_expired(now) => {
                match &swept {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "released expired reservations"),
                    Err(e) => tracing::warn!(error = %e, "reservation expiry sweep failed"),
                }
                service.publish_expiry_pass(swept.ok());
            }
        }
    }
}
