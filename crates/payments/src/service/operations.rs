//! Captures, voids and refunds: each is recorded (`payment_operations`, `pending`) and claims
//! its intent (`payment_intents.operation`) in one transaction before the provider is called,
//! and is settled after the call. The claim is a conditional update, so of two concurrent
//! operations on one intent only one reaches the provider; the other is refused without moving
//! any money. The caller's key goes to the provider as its idempotency key: an operation whose
//! answer was lost (or whose process died) is driven again under the same key, which moves the
//! money once, and a key already settled answers its outcome without a call.

use emporium_db::{Conn, DbError, execute, from_row, run};
use emporium_kernel::ids::PaymentId;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    IntentRow, PaymentError, PaymentIntent, PaymentService, PaymentStatus, find, intent, money_of,
    record, require,
};
use crate::provider::ProviderError;

/// A money movement on an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Take this many minor units of the authorisation (all of it when `None`).
    Capture(Option<i64>),
    /// Release the authorisation (also one whose answer was lost, or never came).
    Void,
    /// Pay back this many minor units of what was captured.
    Refund(i64),
}

/// What a stored operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Capture,
    Void,
    Refund,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }

    fn parse(s: &str) -> Result<Self, PaymentError> {
        Ok(match s {
            "capture" => Self::Capture,
            "void" => Self::Void,
            "refund" => Self::Refund,
            other => return Err(PaymentError::Corrupt(format!("operation kind {other}"))),
        })
    }
}

/// Where a stored operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Recorded; the provider has not answered (or its answer was lost).
    Pending,
    Succeeded,
    Refused,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<Self, PaymentError> {
        Ok(match s {
            "pending" => Self::Pending,
            "succeeded" => Self::Succeeded,
            "refused" => Self::Refused,
            other => return Err(PaymentError::Corrupt(format!("operation status {other}"))),
        })
    }
}

#[derive(Debug, Clone)]
struct OperationRow {
    key: String,
    payment_id: Uuid,
    kind: String,
    amount: i64,
    status: String,
    failure: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

from_row!(OperationRow {
    key,
    payment_id,
    kind,
    amount,
    status,
    failure,
    created_at,
    updated_at,
});

/// What the claim found: an answer already, or an operation to drive.
enum Claim {
    Settled(PaymentIntent),
    Drive(Box<(OperationRow, IntentRow)>),
}

impl PaymentService {
    /// Captures `amount` (all of it when `None`) of an authorised intent, under `key`.
    pub async fn capture(
        &self,
        id: PaymentId,
        amount: Option<i64>,
        key: &str,
    ) -> Result<PaymentIntent, PaymentError> {
        self.operate(id, Operation::Capture(amount), key).await
    }

    /// Releases an authorised intent, or one whose authorisation answer was lost (or never
    /// came), under `key`. Voiding a voided or declined intent changes nothing: compensation
    /// may run twice.
    pub async fn void(&self, id: PaymentId, key: &str) -> Result<PaymentIntent, PaymentError> {
        self.operate(id, Operation::Void, key).await
    }

    /// Pays back `amount` of what was captured, under `key`; several partial refunds may
    /// follow each other up to the captured amount.
    pub async fn refund(
        &self,
        id: PaymentId,
        amount: i64,
        key: &str,
    ) -> Result<PaymentIntent, PaymentError> {
        self.operate(id, Operation::Refund(amount), key).await
    }

    /// Carries out `operation` on intent `id` under `key` (see the module doc). The same key
    /// again answers the first outcome, or drives the operation on when it is still pending.
    /// Fails with `IllegalTransition` or `AmountTooLarge` (nothing recorded, nothing moved),
    /// `OperationInProgress` (another key holds the intent), `ProviderRefused` (settled,
    /// nothing moved) or `ProviderUnavailable` (still pending: call again with the same key).
    pub async fn operate(
        &self,
        id: PaymentId,
        operation: Operation,
        key: &str,
    ) -> Result<PaymentIntent, PaymentError> {
        match self.claim(id, operation, key).await? {
            Claim::Settled(intent) => Ok(intent),
            Claim::Drive(pair) => {
                let (op, row) = *pair;
                self.drive(op, row).await
            }
        }
    }

    /// Records the operation and claims the intent, or finds what `key` did already.
    async fn claim(
        &self,
        id: PaymentId,
        operation: Operation,
        key: &str,
    ) -> Result<Claim, PaymentError> {
        let mut tx = self.db.begin_write().await?;
        if let Some(op) = find_operation(&mut tx, key).await? {
            drop(tx);
            if op.payment_id != id.0 {
                return Err(PaymentError::OperationKeyReused);
            }
            let row = self.find(id).await?;
            return match Stage::parse(&op.status)? {
                Stage::Succeeded => Ok(Claim::Settled(intent(row)?)),
                Stage::Refused => Err(PaymentError::ProviderRefused(
                    op.failure.unwrap_or_default(),
                )),
                Stage::Pending => Ok(Claim::Drive(Box::new((op, row)))),
            };
        }
        let row = find(&mut tx, id.0)
            .await?
            .ok_or(PaymentError::PaymentNotFound)?;
        let (kind, amount) = match operation {
            Operation::Capture(amount) => {
                require(&row, &[PaymentStatus::Authorized], "captured")?;
                let take = amount.unwrap_or(row.amount);
                if take <= 0 || take > row.amount {
                    return Err(PaymentError::AmountTooLarge("captured"));
                }
                (Kind::Capture, take)
            }
            Operation::Void => {
                let status = PaymentStatus::parse(&row.status)?;
                if matches!(status, PaymentStatus::Voided | PaymentStatus::Declined) {
                    return Ok(Claim::Settled(intent(row)?));
                }
                let from = [
                    PaymentStatus::Authorized,
                    PaymentStatus::Failed,
                    PaymentStatus::Pending,
                ];
                require(&row, &from, "voided")?;
                (Kind::Void, 0)
            }
            Operation::Refund(amount) => {
                require(
                    &row,
                    &[PaymentStatus::Captured, PaymentStatus::Refunded],
                    "refunded",
                )?;
                let within = row
                    .refunded_amount
                    .checked_add(amount)
                    .is_some_and(|total| total <= row.captured_amount);
                if amount <= 0 || !within {
                    return Err(PaymentError::AmountTooLarge("refunded"));
                }
                (Kind::Refund, amount)
            }
        };
        if row.operation.is_some() {
            return Err(PaymentError::OperationInProgress);
        }
        let now = self.clock.now();
        // The claim holds only if nobody moved the intent since it was read.
        let claimed = execute!(
            &mut tx,
            sqlx::query(
                "UPDATE payment_intents SET operation = $3 \
                 WHERE id = $1 AND version = $2 AND operation IS NULL"
            )
            .bind(row.id)
            .bind(row.version)
            .bind(key)
        )
        .map_err(DbError::from)?;
        if claimed != 1 {
            return Err(PaymentError::OperationInProgress);
        }
        let op = OperationRow {
            key: key.to_owned(),
            payment_id: row.id,
            kind: kind.as_str().to_owned(),
            amount,
            status: Stage::Pending.as_str().to_owned(),
            failure: None,
            created_at: now,
            updated_at: now,
        };
        insert_operation(&mut tx, &op).await?;
        tx.commit().await?;
        Ok(Claim::Drive(Box::new((op, row))))
    }

    /// Asks the provider to carry out `op` and settles it with the answer; an answer that
    /// does not come leaves it pending.
    async fn drive(&self, op: OperationRow, row: IntentRow) -> Result<PaymentIntent, PaymentError> {
        let handler = self.provider_of(&row)?;
        let money = money_of(&row, op.amount)?;
        let reference = row.provider_reference.as_deref();
        let answer = match Kind::parse(&op.kind)? {
            Kind::Capture => {
                handler
                    .capture(reference.unwrap_or_default(), money, &op.key)
                    .await
            }
            Kind::Void => handler.void(PaymentId(row.id), reference, &op.key).await,
            Kind::Refund => {
                handler
                    .refund(reference.unwrap_or_default(), money, &op.key)
                    .await
            }
        };
        match answer {
            Ok(()) => self.settle(&op, Stage::Succeeded, None).await,
            Err(ProviderError::Refused(why)) => {
                self.settle(&op, Stage::Refused, Some(&why)).await?;
                Err(PaymentError::ProviderRefused(why))
            }
            Err(e @ ProviderError::Unavailable(_)) => {
                metrics::counter!("emporium_payment_operations_unsettled_total", "kind" => Kind::parse(&op.kind)?.as_str())
                    .increment(1);
                tracing::warn!(payment = %PaymentId(row.id), key = %op.key, error = %e, "payment operation left pending");
                Err(PaymentError::ProviderUnavailable(e))
            }
        }
    }

    /// Records the provider's answer to `op`: the intent's figures move (on success) and its
    /// claim ends, together with the operation's status and the intent's event. Settling an
    /// operation settled already changes nothing.
    async fn settle(
        &self,
        op: &OperationRow,
        stage: Stage,
        failure: Option<&str>,
    ) -> Result<PaymentIntent, PaymentError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let first = execute!(
            &mut tx,
            sqlx::query(
                "UPDATE payment_operations SET status = $2, failure = $3, updated_at = $4 \
                 WHERE key = $1 AND status = 'pending'"
            )
            .bind(&op.key)
            .bind(stage.as_str())
            .bind(failure)
            .bind(now)
        )
        .map_err(DbError::from)?;
        if first == 1 {
            let moved = match (stage, Kind::parse(&op.kind)?) {
                (Stage::Succeeded, Kind::Capture) => execute!(
                    &mut tx,
                    sqlx::query(
                        "UPDATE payment_intents SET status = 'captured', captured_amount = $3, \
                         operation = NULL, version = version + 1, updated_at = $4 \
                         WHERE id = $1 AND operation = $2"
                    )
                    .bind(op.payment_id)
                    .bind(&op.key)
                    .bind(op.amount)
                    .bind(now)
                ),
                (Stage::Succeeded, Kind::Refund) => execute!(
                    &mut tx,
                    sqlx::query(
                        "UPDATE payment_intents SET status = 'refunded', \
                         refunded_amount = refunded_amount + $3, operation = NULL, \
                         version = version + 1, updated_at = $4 \
                         WHERE id = $1 AND operation = $2"
                    )
                    .bind(op.payment_id)
                    .bind(&op.key)
                    .bind(op.amount)
                    .bind(now)
                ),
                (Stage::Succeeded, Kind::Void) => execute!(
                    &mut tx,
                    sqlx::query(
                        "UPDATE payment_intents SET status = 'voided', operation = NULL, \
                         version = version + 1, updated_at = $3 \
                         WHERE id = $1 AND operation = $2"
                    )
                    .bind(op.payment_id)
                    .bind(&op.key)
                    .bind(now)
                ),
                // Refused: nothing moved, the claim ends.
                _ => execute!(
                    &mut tx,
                    sqlx::query(
                        "UPDATE payment_intents SET operation = NULL \
                         WHERE id = $1 AND operation = $2"
                    )
                    .bind(op.payment_id)
                    .bind(&op.key)
                ),
            }
            .map_err(DbError::from)?;
            if moved != 1 {
                return Err(PaymentError::Corrupt(format!(
                    "operation {} does not hold its payment",
                    op.key
                )));
            }
        }
        let row = find(&mut tx, op.payment_id)
            .await?
            .ok_or(PaymentError::PaymentNotFound)?;
        if first == 1 && stage == Stage::Succeeded {
            record(&mut tx, &row, now).await?;
        }
        tx.commit().await?;
        intent(row)
    }

    /// Keys of the operations still pending that were recorded before `before`, oldest
    /// first, with their payments: what a crash or a lost answer left to drive again.
    pub async fn pending_operations(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<(String, PaymentId)>, PaymentError> {
        let mut conn = self.db.read().await?;
        let rows: Vec<(String, Uuid)> = run!(&mut conn, |c| sqlx::query_as(
            "SELECT key, payment_id FROM payment_operations \
             WHERE status = 'pending' AND created_at < $1 ORDER BY created_at"
        )
        .bind(before)
        .fetch_all(c)
        .await
        .map_err(DbError::from))?;
        Ok(rows
            .into_iter()
            .map(|(key, id)| (key, PaymentId(id)))
            .collect())
    }
}

async fn find_operation<'c>(
    c: impl Into<Conn<'c>>,
    key: &str,
) -> Result<Option<OperationRow>, DbError> {
    run!(c, |c| sqlx::query_as(
        "SELECT key, payment_id, kind, amount, status, failure, created_at, updated_at \
         FROM payment_operations WHERE key = $1"
    )
    .bind(key)
    .fetch_optional(c)
    .await
    .map_err(DbError::from))
}

async fn insert_operation<'c>(c: impl Into<Conn<'c>>, op: &OperationRow) -> Result<(), DbError> {
    execute!(
        c,
        sqlx::query(
            "INSERT INTO payment_operations (key, payment_id, kind, amount, status, failure, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )
        .bind(&op.key)
        .bind(op.payment_id)
        .bind(&op.kind)
        .bind(op.amount)
        .bind(&op.status)
        .bind(&op.failure)
        .bind(op.created_at)
        .bind(op.updated_at)
    )?;
    Ok(())
}
