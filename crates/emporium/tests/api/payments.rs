//! Payment intents on the real database: every outcome of the test provider, the transitions
//! that are refused, captures and refunds that never exceed the amount under contention, and
//! operations that reach the provider once: a lost race never calls it, a lost answer retried
//! under its key moves the money once.

use std::sync::Arc;

use emporium_kernel::Money;
use emporium_kernel::ids::PaymentId;
use emporium_payments::{
    Authorization, PaymentError, PaymentProvider, PaymentService, PaymentStatus, ProviderError,
};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    the_test_provider_gives_each_outcome_by_token,
    refused_transitions_leave_the_intent_as_it_was,
    concurrent_captures_and_refunds_never_exceed_the_amount,
    a_capture_that_loses_the_race_never_reaches_the_provider,
    an_operation_whose_answer_was_lost_moves_the_money_once_under_its_key,
    a_refused_refund_moves_nothing_and_frees_the_intent,
);

fn eur(amount: i64) -> Money {
    Money {
        amount,
        currency: "EUR".parse().unwrap(),
    }
}

fn payments(app: &TestApp) -> Arc<PaymentService> {
    app.store().payments.clone()
}

async fn the_test_provider_gives_each_outcome_by_token(app: TestApp) {
    let p = payments(&app);

    let ok = p
        .authorize("checkout-1", "test", eur(1_000), Some("tok_success"))
        .await
        .unwrap();
    assert_eq!(ok.status, PaymentStatus::Authorized);
    assert!(ok.provider_reference.is_some());
    // The same reference again is the same intent, not a second authorisation.
    let again = p
        .authorize("checkout-1", "test", eur(1_000), Some("tok_success"))
        .await
        .unwrap();
    assert_eq!(again.id, ok.id);
    assert_eq!(again.version, ok.version);

    let captured = p.capture(ok.id, None, "op-1").await.unwrap();
    assert_eq!(captured.status, PaymentStatus::Captured);
    assert_eq!(captured.captured_amount, 1_000);
    let part = p.refund(ok.id, 300, "op-2").await.unwrap();
    assert_eq!(part.refunded_amount, 300);
    let rest = p.refund(ok.id, 700, "op-3").await.unwrap();
    assert_eq!(rest.refunded_amount, 1_000);
    assert_eq!(rest.status, PaymentStatus::Refunded);
    assert!(matches!(
        p.refund(ok.id, 1, "op-4").await,
        Err(PaymentError::AmountTooLarge(_))
    ));

    for (token, code) in [
        ("tok_decline", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
    ] {
        let reference = format!("checkout-{token}");
        match p.authorize(&reference, "test", eur(500), Some(token)).await {
            Err(PaymentError::Declined(c)) => assert_eq!(c, code),
            other => panic!("{token}: {other:?}"),
        }
        let stored = p.find_by_reference(&reference).await.unwrap().unwrap();
        assert_eq!(stored.status, PaymentStatus::Declined);
        assert_eq!(stored.failure_code.as_deref(), Some(code));
    }

    // A lost answer leaves a failed intent, which compensation voids (twice is harmless).
    let lost = p
        .authorize(
            "checkout-lost",
            "test",
            eur(800),
            Some("tok_error_after_auth"),
        )
        .await;
    assert!(matches!(lost, Err(PaymentError::ProviderUnavailable(_))));
    let failed = p.find_by_reference("checkout-lost").await.unwrap().unwrap();
    assert_eq!(failed.status, PaymentStatus::Failed);
    assert_eq!(
        p.void(failed.id, "op-12").await.unwrap().status,
        PaymentStatus::Voided
    );
    assert_eq!(
        p.void(failed.id, "op-13").await.unwrap().status,
        PaymentStatus::Voided
    );

    // Offline payment: authorised at once, captured when the money arrives.
    let manual = p
        .authorize("checkout-manual", "manual", eur(2_500), None)
        .await
        .unwrap();
    assert_eq!(manual.provider, "manual");
    assert_eq!(
        p.capture(manual.id, Some(2_500), "op-5")
            .await
            .unwrap()
            .status,
        PaymentStatus::Captured
    );
    assert!(matches!(
        p.authorize("checkout-x", "bitcoin", eur(1), None).await,
        Err(PaymentError::UnknownProvider(_))
    ));
}

async fn refused_transitions_leave_the_intent_as_it_was(app: TestApp) {
    let p = payments(&app);
    let _ = p
        .authorize("declined", "test", eur(500), Some("tok_decline"))
        .await;
    let declined = p.find_by_reference("declined").await.unwrap().unwrap();
    assert!(matches!(
        p.capture(declined.id, None, "op-6").await,
        Err(PaymentError::IllegalTransition { .. })
    ));

    let held = p
        .authorize("held", "test", eur(500), Some("tok_success"))
        .await
        .unwrap();
    assert!(matches!(
        p.refund(held.id, 100, "op-7").await,
        Err(PaymentError::IllegalTransition { .. })
    ));
    assert!(matches!(
        p.capture(held.id, Some(501), "op-8").await,
        Err(PaymentError::AmountTooLarge(_))
    ));
    let voided = p.void(held.id, "op-14").await.unwrap();
    assert!(matches!(
        p.capture(voided.id, None, "op-9").await,
        Err(PaymentError::IllegalTransition { .. })
    ));
    let after = p.get(held.id).await.unwrap();
    assert_eq!(after.status, PaymentStatus::Voided);
    assert_eq!(after.captured_amount, 0);
}

async fn concurrent_captures_and_refunds_never_exceed_the_amount(app: TestApp) {
    let p = payments(&app);
    let intent = p
        .authorize("race", "test", eur(1_000), Some("tok_success"))
        .await
        .unwrap();

    let captures = (0..10).map(|_| {
        let p = Arc::clone(&p);
        tokio::spawn(async move {
            p.capture(intent.id, None, &uuid::Uuid::now_v7().to_string())
                .await
        })
    });
    let won = futures_util::future::join_all(captures)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(won, 1);

    // Rounds of concurrent refunds: one operation holds the intent at a time, and those told
    // it is in progress go again in the next round, once this one has finished.
    let mut waiting: Vec<String> = (0..25).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut won = 0;
    while !waiting.is_empty() {
        let round = waiting.drain(..).map(|key| {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                let outcome = p.refund(intent.id, 100, &key).await;
                (key, outcome)
            })
        });
        for joined in futures_util::future::join_all(round).await {
            let (key, outcome) = joined.unwrap();
            match outcome {
                Ok(_) => won += 1,
                Err(PaymentError::OperationInProgress) => waiting.push(key),
                Err(e) => assert!(matches!(e, PaymentError::AmountTooLarge(_)), "{e}"),
            }
        }
    }
    assert_eq!(won, 10);
    let after = p.get(intent.id).await.unwrap();
    assert_eq!(after.refunded_amount, 1_000);
    assert_eq!(after.captured_amount, 1_000);
}

/// A provider that keeps what it moved by idempotency key, as a real one does, and can be told
/// to lose its next answers (having acted) or to refuse.
#[derive(Default)]
struct LedgerProvider {
    /// Money moved, by idempotency key: a key moves money once, however often it is sent.
    moved: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    calls: std::sync::atomic::AtomicUsize,
    lose_answers: std::sync::atomic::AtomicUsize,
    refuse: std::sync::atomic::AtomicBool,
}

impl LedgerProvider {
    fn act(&self, key: &str, amount: i64) -> Result<(), ProviderError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.calls.fetch_add(1, SeqCst);
        if self.refuse.load(SeqCst) {
            return Err(ProviderError::Refused("not today".into()));
        }
        self.moved
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_insert(amount);
        let lose = self
            .lose_answers
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lose {
            return Err(ProviderError::Unavailable("answer lost".into()));
        }
        Ok(())
    }

    fn total(&self) -> i64 {
        self.moved.lock().unwrap().values().sum()
    }
}

#[async_trait::async_trait]
impl PaymentProvider for LedgerProvider {
    fn name(&self) -> &'static str {
        "ledger"
    }

    async fn authorize(
        &self,
        intent: PaymentId,
        _amount: Money,
        _token: Option<&str>,
    ) -> Result<Authorization, ProviderError> {
        Ok(Authorization::Approved {
            reference: format!("ledger_{}", intent.0.simple()),
        })
    }

    async fn capture(
        &self,
        _reference: &str,
        amount: Money,
        key: &str,
    ) -> Result<(), ProviderError> {
        // Give a racing capture the chance to run while this one is at the provider.
        tokio::task::yield_now().await;
        self.act(key, amount.amount)
    }

    async fn void(
        &self,
        _intent: PaymentId,
        _reference: Option<&str>,
        key: &str,
    ) -> Result<(), ProviderError> {
        self.act(key, 0)
    }

    async fn refund(
        &self,
        _reference: &str,
        amount: Money,
        key: &str,
    ) -> Result<(), ProviderError> {
        self.act(key, -amount.amount)
    }
}

fn with_ledger(app: &TestApp) -> (Arc<PaymentService>, Arc<LedgerProvider>) {
    let ledger = Arc::new(LedgerProvider::default());
    let service = PaymentService::new(app.store().db.clone(), app.store().clock.clone())
        .with_provider(ledger.clone())
        .with_enabled(&["ledger"])
        .unwrap();
    (Arc::new(service), ledger)
}

async fn a_capture_that_loses_the_race_never_reaches_the_provider(app: TestApp) {
    let (p, ledger) = with_ledger(&app);
    let intent = p
        .authorize("race-ledger", "ledger", eur(1_000), None)
        .await
        .unwrap();

    let captures = (0..10).map(|i| {
        let p = Arc::clone(&p);
        tokio::spawn(async move { p.capture(intent.id, None, &format!("capture-{i}")).await })
    });
    let outcomes = futures_util::future::join_all(captures).await;
    let mut won = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            Ok(_) => won += 1,
            Err(PaymentError::OperationInProgress | PaymentError::IllegalTransition { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        ledger.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one call reached the provider"
    );
    assert_eq!(ledger.total(), 1_000);
    assert_eq!(p.get(intent.id).await.unwrap().captured_amount, 1_000);
}

async fn an_operation_whose_answer_was_lost_moves_the_money_once_under_its_key(app: TestApp) {
    let (p, ledger) = with_ledger(&app);
    let intent = p
        .authorize("lost-ledger", "ledger", eur(1_000), None)
        .await
        .unwrap();
    p.capture(intent.id, None, "capture").await.unwrap();

    ledger
        .lose_answers
        .store(2, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..2 {
        assert!(matches!(
            p.refund(intent.id, 400, "refund-1").await,
            Err(PaymentError::ProviderUnavailable(_))
        ));
        // Pending: the intent takes no other operation meanwhile.
        assert!(matches!(
            p.refund(intent.id, 100, "refund-2").await,
            Err(PaymentError::OperationInProgress)
        ));
    }
    let pending = p
        .pending_operations(time::OffsetDateTime::now_utc() + time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(pending, vec![("refund-1".to_owned(), intent.id)]);
    let settled = p.refund(intent.id, 400, "refund-1").await.unwrap();
    assert_eq!(settled.refunded_amount, 400);
    // Settled: the key answers without a call.
    let calls = ledger.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        p.refund(intent.id, 400, "refund-1")
            .await
            .unwrap()
            .refunded_amount,
        400
    );
    assert_eq!(
        ledger.calls.load(std::sync::atomic::Ordering::SeqCst),
        calls
    );
    assert_eq!(
        ledger.total(),
        1_000 - 400,
        "the provider moved the refund once"
    );
    assert!(
        p.pending_operations(time::OffsetDateTime::now_utc() + time::Duration::seconds(1))
            .await
            .unwrap()
            .is_empty()
    );
    // The same key for another payment is refused.
    let other = p
        .authorize("other-ledger", "ledger", eur(10), None)
        .await
        .unwrap();
    assert!(matches!(
        p.void(other.id, "refund-1").await,
        Err(PaymentError::OperationKeyReused)
    ));
}

async fn a_refused_refund_moves_nothing_and_frees_the_intent(app: TestApp) {
    let (p, ledger) = with_ledger(&app);
    let intent = p
        .authorize("refused-ledger", "ledger", eur(1_000), None)
        .await
        .unwrap();
    p.capture(intent.id, None, "capture").await.unwrap();
    ledger
        .refuse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        p.refund(intent.id, 300, "refund-a").await,
        Err(PaymentError::ProviderRefused(_))
    ));
    // The key keeps its answer; the intent takes the next operation.
    assert!(matches!(
        p.refund(intent.id, 300, "refund-a").await,
        Err(PaymentError::ProviderRefused(_))
    ));
    ledger
        .refuse
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let after = p.refund(intent.id, 300, "refund-b").await.unwrap();
    assert_eq!(after.refunded_amount, 300);
    assert_eq!(ledger.total(), 1_000 - 300);
}
