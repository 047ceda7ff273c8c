//! Payment intents: each state is committed before the provider is called and its answer is
//! committed after, never with a transaction open across the call. Transitions are conditional
//! updates on the current status, so two staff clicks or a retried saga step cannot capture or
//! refund twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use emporium_db::{Arg, Conn, Db, DbError, Sql, WriteTx, from_row, run};
use emporium_kernel::breaker::Breaker;
use emporium_kernel::ids::PaymentId;
use emporium_kernel::{Clock, Currency, DomainError, ErrorKind, Money};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::events::PaymentChanged;
use crate::provider::{
    Authorization, ManualProvider, PaymentProvider, ProviderError, TestProvider,
};

mod operations;

pub use operations::Operation;

/// Where an intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Recorded; the provider has not answered yet (or the process stopped before it did).
    Pending,
    Authorized,
    Declined,
    /// The provider's answer was lost: the money may be held, so compensation voids it.
    Failed,
    Captured,
    Voided,
    /// Part or all of the captured amount went back (see `refunded_amount`).
    Refunded,
}

impl PaymentStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Authorized => "authorized",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::Captured => "captured",
            Self::Voided => "voided",
            Self::Refunded => "refunded",
        }
    }

    fn parse(s: &str) -> Result<Self, PaymentError> {
        Ok(match s {
            "pending" => Self::Pending,
            "authorized" => Self::Authorized,
            "declined" => Self::Declined,
            "failed" => Self::Failed,
            "captured" => Self::Captured,
            "voided" => Self::Voided,
            "refunded" => Self::Refunded,
            other => return Err(PaymentError::Corrupt(format!("status {other}"))),
        })
    }
}

/// A payment intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PaymentIntent {
    pub id: PaymentId,
    /// What it pays for (a checkout); one intent per reference.
    pub reference: String,
    pub provider: String,
    pub amount: Money,
    pub status: PaymentStatus,
    pub provider_reference: Option<String>,
    /// Why it was declined (`card_declined`, `insufficient_funds`).
    pub failure_code: Option<String>,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A payment failure.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("no payment provider named {0}")]
    UnknownProvider(String),
    #[error("the payment provider {0} is not enabled for this store")]
    ProviderNotEnabled(String),
    #[error("another capture, void or refund of this payment is in progress; try again")]
    OperationInProgress,
    #[error("this operation key was used for another payment")]
    OperationKeyReused,
    #[error("no payment with this id")]
    PaymentNotFound,
    #[error("the payment was declined ({0})")]
    Declined(String),
    #[error("the payment provider did not answer; try again")]
    ProviderUnavailable(#[source] ProviderError),
    #[error("payment provider {0} keeps failing; its payments are paused")]
    CircuitOpen(String),
    #[error("the provider refused: {0}")]
    ProviderRefused(String),
    #[error("a {status} payment cannot be {action}")]
    IllegalTransition {
        status: &'static str,
        action: &'static str,
    },
    #[error("the amount is more than can be {0}")]
    AmountTooLarge(&'static str),
    #[error("stored payment is unreadable: {0}")]
    Corrupt(String),
    #[error("storage failure")]
    Storage(#[from] DbError),
}

impl DomainError for PaymentError {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self {
            Self::UnknownProvider(_) => (ErrorKind::Invalid, "payment_provider_unknown"),
            Self::ProviderNotEnabled(_) => (ErrorKind::Invalid, "payment_provider_not_enabled"),
            Self::OperationInProgress => (ErrorKind::Conflict, "payment_operation_in_progress"),
            Self::OperationKeyReused => (ErrorKind::Conflict, "payment_operation_key_reused"),
            Self::PaymentNotFound => (ErrorKind::NotFound, "payment_not_found"),
            Self::Declined(_) => (ErrorKind::PaymentRequired, "payment_declined"),
            Self::CircuitOpen(_) => (ErrorKind::Unavailable, "payment_unavailable"),
            Self::ProviderUnavailable(_) => {
                (ErrorKind::Unavailable, "payment_provider_unavailable")
            }
            Self::ProviderRefused(_) => (ErrorKind::Conflict, "payment_provider_refused"),
            Self::IllegalTransition { .. } => (ErrorKind::Conflict, "payment_state_conflict"),
            Self::AmountTooLarge(_) => (ErrorKind::Invalid, "payment_amount_too_large"),
            Self::Corrupt(_) => (ErrorKind::Internal, "internal"),
            Self::Storage(e) => e.kind_and_code(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::CircuitOpen(_) => Some(BREAKER_OPEN.as_secs()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct IntentRow {
    id: Uuid,
    reference: String,
    provider: String,
    amount: i64,
    currency: String,
    status: String,
    provider_reference: Option<String>,
    failure_code: Option<String>,
    captured_amount: i64,
    refunded_amount: i64,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    /// The key of the capture, void or refund in flight.
    operation: Option<String>,
}

from_row!(IntentRow {
    id,
    reference,
    provider,
    amount,
    currency,
    status,
    provider_reference,
    failure_code,
    captured_amount,
    refunded_amount,
    version,
    created_at,
    updated_at,
    operation,
});

macro_rules! intent_columns {
    () => {
        "id, reference, provider, amount, currency, status, provider_reference, failure_code, \
         captured_amount, refunded_amount, version, created_at, updated_at, operation"
    };
}

/// A `pending` intent recorded by [`PaymentService::open_in`], to authorise once committed.
pub struct OpenedPayment {
    row: IntentRow,
    handler: Arc<dyn PaymentProvider>,
    amount: Money,
}

/// Failed authorisations in a row that open a provider's breaker, by default.
pub const BREAKER_FAILURES: u32 = 5;
/// How long an open breaker keeps a provider's authorisations paused, by default.
pub const BREAKER_OPEN: std::time::Duration = std::time::Duration::from_secs(10);

/// Payment intents over one database and a set of providers.
pub struct PaymentService {
    db: Db,
    clock: Arc<dyn Clock>,
    providers: HashMap<&'static str, Arc<dyn PaymentProvider>>,
    /// The providers new payments may use; the others still move the money of the intents
    /// they hold.
    enabled: HashSet<String>,
    /// A breaker per provider over its authorisations: a provider that keeps failing is not
    /// asked again until its open period is over (then one probe), and a checkout meanwhile
    /// fails at once with `payment_unavailable`.
    breakers: HashMap<&'static str, Breaker>,
}

impl PaymentService {
    /// A service with the built-in `manual` and `test` providers, none of them enabled for new
    /// payments (see [`Self::with_enabled`]).
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            providers: HashMap::new(),
            enabled: HashSet::new(),
            breakers: HashMap::new(),
        }
        .with_provider(Arc::new(ManualProvider))
        .with_provider(Arc::new(TestProvider))
    }

    /// Adds (or replaces) a provider, by its name, with a breaker that opens after
    /// [`BREAKER_FAILURES`] failed authorisations in a row for [`BREAKER_OPEN`].
    pub fn with_provider(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.breakers.insert(
            provider.name(),
            Breaker::new(BREAKER_FAILURES, BREAKER_OPEN),
        );
        self.providers.insert(provider.name(), provider);
        self
    }

    /// Sets every provider's breaker: open after `failures` failed authorisations in a row,
    /// for `open_for`.
    pub fn with_breakers(mut self, failures: u32, open_for: std::time::Duration) -> Self {
        for breaker in self.breakers.values_mut() {
            *breaker = Breaker::new(failures, open_for);
        }
        self
    }

    /// Enables `names` for new payments; `UnknownProvider` names one that is not registered.
    pub fn with_enabled<S: AsRef<str>>(mut self, names: &[S]) -> Result<Self, PaymentError> {
        for name in names {
            let name = name.as_ref();
            if !self.providers.contains_key(name) {
                return Err(PaymentError::UnknownProvider(name.to_owned()));
            }
            self.enabled.insert(name.to_owned());
        }
        Ok(self)
    }

    /// The providers new payments may use, by name.
    pub fn enabled_providers(&self) -> Vec<String> {
        let mut names: Vec<String> = self.enabled.iter().cloned().collect();
        names.sort();
        names
    }

    /// Whether a new payment may use `provider`: `UnknownProvider` for a name no provider has,
    /// `ProviderNotEnabled` for one this store has not enabled.
    pub fn check_enabled(&self, provider: &str) -> Result<(), PaymentError> {
        if !self.providers.contains_key(provider) {
            return Err(PaymentError::UnknownProvider(provider.to_owned()));
        }
        if !self.enabled.contains(provider) {
            return Err(PaymentError::ProviderNotEnabled(provider.to_owned()));
        }
        Ok(())
    }

    /// Authorises `amount` for `reference` with `provider`. The intent is committed as
    /// `pending` first; a second call for the same reference returns the first intent as it
    /// stands (calling the provider again only when it never answered). Fails with `Declined`
    /// (the intent stays, `declined`) or `ProviderUnavailable` (the intent stays, `failed`: the
    /// money may be held, so the caller voids it when it gives up).
    pub async fn authorize(
        &self,
        reference: &str,
        provider: &str,
        amount: Money,
        token: Option<&str>,
    ) -> Result<PaymentIntent, PaymentError> {
        let mut tx = self.db.begin_write().await?;
        let opened = self.open_in(&mut tx, reference, provider, amount).await?;
        tx.commit().await?;
        self.authorize_opened(opened, token).await
    }

    /// The first half of [`Self::authorize`]: records the `pending` intent for `reference` in
    /// `tx` (or finds the reference's first one), for a caller that commits it with its own
    /// changes and then calls [`Self::authorize_opened`].
    pub async fn open_in(
        &self,
        tx: &mut WriteTx,
        reference: &str,
        provider: &str,
        amount: Money,
    ) -> Result<OpenedPayment, PaymentError> {
        let (row, handler) = self.new_intent(reference, provider, amount)?;
        // The intent is new (the common case, one statement) or the reference's first one.
        let row = if insert_statement(&row, INSERT_OR_KEEP)
            .execute(&mut *tx)
            .await?
            == 1
        {
            record(tx, &row, row.created_at).await?;
            row
        } else {
            find_by_reference(&mut *tx, reference)
                .await?
                .ok_or(PaymentError::PaymentNotFound)?
        };
        Ok(OpenedPayment {
            row,
            handler,
            amount,
        })
    }

    /// As [`Self::open_in`], for a `reference` that has no intent yet (a checkout's own id):
    /// the intent is written with `tx`'s commit, without a statement of its own, and a
    /// reference that has one already fails the commit (a unique violation).
    pub async fn open_new_in(
        &self,
        tx: &mut WriteTx,
        reference: &str,
        provider: &str,
        amount: Money,
    ) -> Result<OpenedPayment, PaymentError> {
        let (row, handler) = self.new_intent(reference, provider, amount)?;
        tx.write_at_commit(insert_statement(&row, INSERT_NEW));
        record(tx, &row, row.created_at).await?;
        Ok(OpenedPayment {
            row,
            handler,
            amount,
        })
    }

    /// A `pending` intent for `reference`, not yet stored, and its provider.
    fn new_intent(
        &self,
        reference: &str,
        provider: &str,
        amount: Money,
    ) -> Result<(IntentRow, Arc<dyn PaymentProvider>), PaymentError> {
        self.check_enabled(provider)?;
        let handler = self
            .providers
            .get(provider)
            .cloned()
            .ok_or_else(|| PaymentError::UnknownProvider(provider.to_owned()))?;
        let now = self.clock.now();
        let row = IntentRow {
            id: Uuid::now_v7(),
            reference: reference.to_owned(),
            provider: handler.name().to_owned(),
            amount: amount.amount,
            currency: amount.currency.to_string(),
            status: PaymentStatus::Pending.as_str().to_owned(),
            provider_reference: None,
            failure_code: None,
            captured_amount: 0,
            refunded_amount: 0,
            version: 1,
            created_at: now,
            updated_at: now,
            operation: None,
        };
        Ok((row, handler))
    }

    /// The second half of [`Self::authorize`], once the intent `open_in` recorded is committed:
    /// asks the provider (unless the intent has its answer already) and records the outcome.
    pub async fn authorize_opened(
        &self,
        opened: OpenedPayment,
        token: Option<&str>,
    ) -> Result<PaymentIntent, PaymentError> {
        let OpenedPayment {
            row,
            handler,
            amount,
        } = opened;
        let status = PaymentStatus::parse(&row.status)?;
        match status {
            PaymentStatus::Pending => {}
            PaymentStatus::Declined => {
                return Err(PaymentError::Declined(
                    row.failure_code
                        .unwrap_or_else(|| "card_declined".to_owned()),
                ));
            }
            _ => return intent(row),
        }
        let id = PaymentId(row.id);
        let breaker = self.breakers.get(handler.name());
        if breaker.is_some_and(|b| !b.allow()) {
            // The provider was never asked, so nothing is held: the intent ends voided.
            self.transition_from(
                row,
                &[PaymentStatus::Pending],
                PaymentStatus::Voided,
                |r| r.failure_code = Some("payment_unavailable".to_owned()),
                "voided",
            )
            .await?;
            return Err(PaymentError::CircuitOpen(handler.name().to_owned()));
        }
        let outcome = handler.authorize(id, amount, token).await;
        if let Some(breaker) = breaker {
            match &outcome {
                Ok(_) => breaker.succeeded(),
                Err(_) => breaker.failed(),
            }
            metrics::gauge!("emporium_payment_breaker_state", "provider" => handler.name())
                .set(breaker.state().gauge());
        }
        let (status, provider_reference, failure) = match &outcome {
            Ok(Authorization::Approved { reference }) => {
                (PaymentStatus::Authorized, Some(reference.clone()), None)
            }
            Ok(Authorization::Declined { code }) => {
                (PaymentStatus::Declined, None, Some((*code).to_owned()))
            }
            Err(_) => (PaymentStatus::Failed, None, None),
        };
        let row = self
            .transition_from(
                row,
                &[PaymentStatus::Pending],
                status,
                |r| {
                    r.provider_reference = provider_reference.clone();
                    r.failure_code = failure.clone();
                },
                "authorized",
            )
            .await?;
        match outcome {
            Ok(Authorization::Approved { .. }) => intent(row),
            Ok(Authorization::Declined { code }) => Err(PaymentError::Declined(code.to_owned())),
            Err(e) => Err(PaymentError::ProviderUnavailable(e)),
        }
    }

    /// The intent `id`.
    pub async fn get(&self, id: PaymentId) -> Result<PaymentIntent, PaymentError> {
        intent(self.find(id).await?)
    }

    /// The intent for `reference`, if any.
    pub async fn find_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<PaymentIntent>, PaymentError> {
        let mut conn = self.db.read().await?;
        find_by_reference(&mut conn, reference)
            .await?
            .map(intent)
            .transpose()
    }

    async fn find(&self, id: PaymentId) -> Result<IntentRow, PaymentError> {
        let mut conn = self.db.read().await?;
        find(&mut conn, id.0)
            .await?
            .ok_or(PaymentError::PaymentNotFound)
    }

    fn provider_of(&self, row: &IntentRow) -> Result<Arc<dyn PaymentProvider>, PaymentError> {
        self.providers
            .get(row.provider.as_str())
            .cloned()
            .ok_or_else(|| PaymentError::UnknownProvider(row.provider.clone()))
    }

    /// Moves intent `row` (as the caller read it) from one of `from` to `to`, applying
    /// `change`, with its event; fails with `IllegalTransition` when another caller moved it
    /// first (the update applies only to the version read).
    async fn transition_from(
        &self,
        mut row: IntentRow,
        from: &[PaymentStatus],
        to: PaymentStatus,
        change: impl FnOnce(&mut IntentRow),
        action: &'static str,
    ) -> Result<IntentRow, PaymentError> {
        let now = self.clock.now();
        let id = row.id;
        require(&row, from, action)?;
        change(&mut row);
        let mut moved = row.clone();
        moved.status = to.as_str().to_owned();
        moved.version += 1;
        moved.updated_at = now;
        // The update applies only to the version read, and its event goes with it: on
        // PostgreSQL one statement.
        let mut write = self.db.guarded_write(Sql::statement(
            "UPDATE payment_intents SET status = $3, provider_reference = $4, \
             failure_code = $5, captured_amount = $6, version = version + 1, updated_at = $7 \
             WHERE id = $1 AND version = $2",
            vec![
                Arg::Uuid(id),
                Arg::Int(row.version),
                Arg::Text(moved.status.clone()),
                Arg::OptText(moved.provider_reference.clone()),
                Arg::OptText(moved.failure_code.clone()),
                Arg::Int(moved.captured_amount),
                Arg::Time(now),
            ],
        ));
        write.record(&changed(&moved), moved.version, now)?;
        if !write.commit().await? {
            return Err(PaymentError::IllegalTransition {
                status: "changed",
                action,
            });
        }
        let row = moved;
        Ok(row)
    }
}

fn require(
    row: &IntentRow,
    from: &[PaymentStatus],
    action: &'static str,
) -> Result<(), PaymentError> {
    let status = PaymentStatus::parse(&row.status)?;
    if from.contains(&status) {
        Ok(())
    } else {
        Err(PaymentError::IllegalTransition {
            status: status.as_str(),
            action,
        })
    }
}

fn money_of(row: &IntentRow, amount: i64) -> Result<Money, PaymentError> {
    let currency: Currency = row
        .currency
        .parse()
        .map_err(|_| PaymentError::Corrupt(format!("currency {}", row.currency)))?;
    Ok(Money { amount, currency })
}

fn intent(row: IntentRow) -> Result<PaymentIntent, PaymentError> {
    Ok(PaymentIntent {
        id: PaymentId(row.id),
        amount: money_of(&row, row.amount)?,
        status: PaymentStatus::parse(&row.status)?,
        reference: row.reference,
        provider: row.provider,
        provider_reference: row.provider_reference,
        failure_code: row.failure_code,
        captured_amount: row.captured_amount,
        refunded_amount: row.refunded_amount,
        version: row.version,
        created_at: row.created_at,
    })
}

/// Inserts the intent unless its reference has one; returns whether it did.
/// An intent's insert, its values in the order of [`insert_statement`].
macro_rules! intent_insert {
    () => {
        "INSERT INTO payment_intents (id, reference, provider, amount, currency, status, \
         provider_reference, failure_code, captured_amount, refunded_amount, version, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    };
}

/// An intent's insert that keeps the reference's first intent (inserting nothing).
const INSERT_OR_KEEP: &str = concat!(intent_insert!(), " ON CONFLICT (reference) DO NOTHING");
/// An intent's insert that fails when the reference has one.
const INSERT_NEW: &str = intent_insert!();

/// `row`'s insert, as `text` ([`INSERT_OR_KEEP`] or [`INSERT_NEW`]) writes it.
fn insert_statement(row: &IntentRow, text: &'static str) -> Sql {
    Sql::statement(
        text,
        vec![
            Arg::Uuid(row.id),
            Arg::Text(row.reference.clone()),
            Arg::Text(row.provider.clone()),
            Arg::Int(row.amount),
            Arg::Text(row.currency.clone()),
            Arg::Text(row.status.clone()),
            Arg::OptText(row.provider_reference.clone()),
            Arg::OptText(row.failure_code.clone()),
            Arg::Int(row.captured_amount),
            Arg::Int(row.refunded_amount),
            Arg::Int(row.version),
            Arg::Time(row.created_at),
            Arg::Time(row.updated_at),
        ],
    )
}

async fn find<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<Option<IntentRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        intent_columns!(),
        " FROM payment_intents WHERE id = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

async fn find_by_reference<'c>(
    c: impl Into<Conn<'c>>,
    reference: &str,
) -> Result<Option<IntentRow>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        intent_columns!(),
        " FROM payment_intents WHERE reference = $1"
    );
    run!(c, |c| sqlx::query_as(SQL)
        .bind(reference)
        .fetch_optional(c)
        .await
        .map_err(DbError::from))
}

async fn record(
    tx: &mut emporium_db::WriteTx,
    row: &IntentRow,
    now: OffsetDateTime,
) -> Result<(), PaymentError> {
    tx.record(&changed(row), row.version, now).await?;
    Ok(())
}

/// The `payment.changed` event of the intent as `row` has it.
fn changed(row: &IntentRow) -> PaymentChanged {
    PaymentChanged {
        id: PaymentId(row.id),
        reference: row.reference.clone(),
        provider: row.provider.clone(),
        status: row.status.clone(),
        amount: row.amount,
        currency: row.currency.clone(),
        captured_amount: row.captured_amount,
        refunded_amount: row.refunded_amount,
        failure_code: row.failure_code.clone(),
    }
}
