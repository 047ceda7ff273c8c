//! The expiry sweeper: a loop that gives back the stock of reservations whose time is up.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::service::InventoryService;

/// The shortest period the sweeper accepts; a shorter one is raised to it.
pub const MIN_EXPIRY_PERIOD: Duration = Duration::from_millis(10);

/// Runs [`InventoryService::release_expired`] now and then every `every` until `stop` is
/// cancelled. A failed sweep is logged and retried at the next tick. Stopping mid-sweep is safe:
/// each reservation expires in its own transaction.
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
            swept = service.release_expired(now) => match swept {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "released expired reservations"),
                Err(e) => tracing::warn!(error = %e, "reservation expiry sweep failed"),
            },
        }
    }
}
