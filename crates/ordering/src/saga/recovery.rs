//! Compensation, and the recovery of checkouts a crash, a dropped request or a failed
//! compensation left unfinished: at start and continuously while serving.

use emporium_kernel::ids::{CartId, CheckoutId, CouponId, PaymentId};
use emporium_payments::Operation;

use super::api::{answer_of, failure, status_of};
use super::{CheckoutFailure, CheckoutOutcome, CheckoutService, CheckoutState};
use crate::error::OrderingError;
use crate::store::{self, CheckoutRow};

impl CheckoutService {
    /// Undoes every step done (and any a crash left unrecorded), records `failure` as the
    /// answer, and returns it.
    pub(super) async fn fail(
        &self,
        row: &mut CheckoutRow,
        failure: CheckoutFailure,
    ) -> Result<CheckoutOutcome, OrderingError> {
        self.compensate(row).await?;
        row.state = CheckoutState::Failed.as_str().to_owned();
        row.response_status = Some(i64::from(status_of(&failure)));
        row.response_body = Some(
            serde_json::to_string(&failure).map_err(|e| OrderingError::Corrupt(e.to_string()))?,
        );
        row.updated_at = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        // The cart takes changes again: the shopper may fix it and check out anew.
        self.carts
            .release_in(&mut tx, CartId(row.cart_id), row.id)
            .await?;
        tx.write_at_commit(store::update_checkout(row));
        tx.commit().await?;
        Ok(CheckoutOutcome::Failed(failure))
    }

    /// Void the payment, give back the coupon uses, release the stock: each idempotent, each
    /// also for a step whose result a crash kept from being recorded (found by reference).
    pub(super) async fn compensate(&self, row: &CheckoutRow) -> Result<(), OrderingError> {
        let reference = CheckoutId(row.id).to_string();
        let payment = match row.payment_id {
            Some(id) => Some(PaymentId(id)),
            None => self
                .payments
                .find_by_reference(&reference)
                .await?
                .map(|p| p.id),
        };
        if let Some(id) = payment {
            self.payments
                .operate(id, Operation::Void, &format!("{reference}:void"))
                .await?;
        }
        let coupons: Vec<CouponId> = serde_json::from_str(&row.coupon_ids)
            .map_err(|e| OrderingError::Corrupt(e.to_string()))?;
        if !coupons.is_empty() {
            let mut tx = self.db.begin_write().await?;
            for id in coupons {
                self.pricing.return_in(&mut tx, id, &reference).await?;
            }
            tx.commit().await?;
        }
        for reservation in self.inventory.reservations_for(&reference).await? {
            if reservation.status == emporium_inventory::ReservationStatus::Active {
                self.inventory.release(reservation.id).await?;
            }
        }
        Ok(())
    }

    /// Finishes or compensates every checkout a stopped process left unfinished: one whose
    /// order was placed is completed; any other is compensated and answers
    /// `checkout_interrupted`. Returns how many it handled. Run at start, before serving.
    pub async fn recover(&self) -> Result<usize, OrderingError> {
        self.recover_idle(std::time::Duration::ZERO).await
    }

    /// Finishes or compensates every unfinished checkout that this process is not running and
    /// that has not moved for `idle` (its process died, its task failed, or its compensation
    /// did): what keeps a cart, stock or a payment from staying held until a restart. A
    /// checkout that cannot be compensated now is logged, counted and tried again at the
    /// next pass. Returns how many it settled.
    pub async fn recover_idle(&self, idle: std::time::Duration) -> Result<usize, OrderingError> {
        let before = self.clock.now() - idle;
        let mut conn = self.db.read().await?;
        let rows = store::idle_checkouts(&mut conn, before).await?;
        drop(conn);
        let mut settled = 0;
        let mut placed = false;
        for mut row in rows.into_iter().filter(|r| !self.is_running(r.id)) {
            if CheckoutState::parse(&row.state)? == CheckoutState::Placed {
                placed = true;
                settled += 1;
                continue;
            }
            match self.recover_one(&mut row).await {
                Ok(_) => settled += 1,
                Err(e) => {
                    metrics::counter!("emporium_checkout_compensation_failures_total").increment(1);
                    tracing::error!(checkout = %CheckoutId(row.id), error = %e, "compensating an abandoned checkout failed; retried at the next pass");
                }
            }
        }
        if placed {
            self.complete_placed().await?;
        }
        if settled > 0 {
            metrics::counter!("emporium_checkout_recovered_total")
                .increment(u64::try_from(settled).unwrap_or(u64::MAX));
        }
        Ok(settled)
    }

    /// Whether no process drives checkout `row` any more: unfinished, not run here, and idle
    /// past the recovery bound.
    pub(super) fn is_abandoned(&self, row: &CheckoutRow) -> bool {
        row.response_body.is_none()
            && !self.is_running(row.id)
            && self.clock.now() - row.updated_at > self.abandoned_after()
    }

    /// How long an unfinished checkout may stand still before recovery takes it over: longer
    /// than any of its steps takes (each is bounded by its own timeouts).
    pub(super) fn abandoned_after(&self) -> time::Duration {
        time::Duration::try_from(self.abandoned_after).unwrap_or(time::Duration::MINUTE)
    }

    /// Compensates an abandoned checkout that placed no order, with the answer
    /// `checkout_interrupted`; a placed one is left to the completer. Returns the stored
    /// answer.
    pub(super) async fn recover_one(
        &self,
        row: &mut CheckoutRow,
    ) -> Result<Option<CheckoutOutcome>, OrderingError> {
        if CheckoutState::parse(&row.state)? == CheckoutState::Placed {
            return answer_of(row);
        }
        let failure = failure(
            "checkout_interrupted",
            "the checkout was interrupted; nothing was charged or kept, try again",
        );
        self.fail(row, failure).await.map(Some)
    }
}
