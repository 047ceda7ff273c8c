//! The last step, behind the answer: placed checkouts commit their stock and close their carts,
//! many at once.

use std::sync::Arc;
use std::time::Duration;

use emporium_kernel::ids::{CartId, ReservationId};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{COMPLETION_BATCH, COMPLETION_SWEEP, CheckoutService};
use crate::error::OrderingError;
use crate::store::{self, CheckoutRow};

impl CheckoutService {
    /// The last step of placed checkouts, together: their stock leaves, their carts close,
    /// they are completed. Each part is idempotent, so a batch that fails half-way is simply
    /// done again.
    pub(super) async fn complete_all(&self, rows: &[CheckoutRow]) -> Result<(), OrderingError> {
        let reservations: Vec<ReservationId> = rows
            .iter()
            .filter_map(|r| r.reservation_id.map(ReservationId))
            .collect();
        let outcomes = self.inventory.commit_all(&reservations).await?;
        for (id, outcome) in reservations.iter().zip(outcomes) {
            if let Err(e) = outcome {
                // Only a hold left uncommitted past its expiry (the store was down for that
                // long): its units went back on sale. The order stands; staff must check the
                // stock it needs.
                metrics::counter!("emporium_checkout_lapsed_holds_total").increment(1);
                tracing::error!(reservation = %id, error = %e, "a placed order's stock hold lapsed before it was committed");
            }
        }
        let carts: Vec<CartId> = rows.iter().map(|r| CartId(r.cart_id)).collect();
        self.carts.close_all(&carts).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut tx = self.db.begin_write().await?;
        store::complete_checkouts(&mut tx, &ids, self.clock.now()).await?;
        tx.commit().await?;
        // `send_modify` counts also while nobody watches.
        self.completed
            .send_modify(|n| *n += u64::try_from(ids.len()).unwrap_or(u64::MAX));
        Ok(())
    }

    /// Watches how many checkouts this service has completed: a caller can await the
    /// completer's work instead of polling for it.
    pub fn completions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.completed.subscribe()
    }

    /// Completes every placed checkout, a batch at a time; returns how many.
    pub async fn complete_placed(&self) -> Result<usize, OrderingError> {
        let mut done = 0;
        loop {
            let mut conn = self.db.read().await?;
            let rows = store::placed_checkouts(&mut conn, COMPLETION_BATCH).await?;
            drop(conn);
            if rows.is_empty() {
                return Ok(done);
            }
            self.complete_all(&rows).await?;
            done += rows.len();
        }
    }

    /// The completer: completes placed checkouts as they come (and every few seconds, for
    /// any a failed pass left), until `stop` fires; then once more.
    pub async fn run_completions(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.complete_placed().await {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "completing placed checkouts failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            tokio::select! {
                () = self.placed.notified() => {}
                () = tokio::time::sleep(COMPLETION_SWEEP) => {}
                () = stop.cancelled() => break,
            }
        }
        if let Err(e) = self.complete_placed().await {
            tracing::warn!(error = %e, "placed checkouts left to complete at the next start");
        }
    }
}
