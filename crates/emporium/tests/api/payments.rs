//! Payment intents on the real database: every outcome of the test provider, the transitions
//! that are refused, and captures and refunds that never exceed the amount under contention.

use std::sync::Arc;

use emporium_kernel::Money;
use emporium_payments::{PaymentError, PaymentService, PaymentStatus};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    the_test_provider_gives_each_outcome_by_token,
    refused_transitions_leave_the_intent_as_it_was,
    concurrent_captures_and_refunds_never_exceed_the_amount,
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

    let captured = p.capture(ok.id, None).await.unwrap();
    assert_eq!(captured.status, PaymentStatus::Captured);
    assert_eq!(captured.captured_amount, 1_000);
    let part = p.refund(ok.id, 300).await.unwrap();
    assert_eq!(part.refunded_amount, 300);
    let rest = p.refund(ok.id, 700).await.unwrap();
    assert_eq!(rest.refunded_amount, 1_000);
    assert_eq!(rest.status, PaymentStatus::Refunded);
    assert!(matches!(
        p.refund(ok.id, 1).await,
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
        p.void(failed.id).await.unwrap().status,
        PaymentStatus::Voided
    );
    assert_eq!(
        p.void(failed.id).await.unwrap().status,
        PaymentStatus::Voided
    );

    // Offline payment: authorised at once, captured when the money arrives.
    let manual = p
        .authorize("checkout-manual", "manual", eur(2_500), None)
        .await
        .unwrap();
    assert_eq!(manual.provider, "manual");
    assert_eq!(
        p.capture(manual.id, Some(2_500)).await.unwrap().status,
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
        p.capture(declined.id, None).await,
        Err(PaymentError::IllegalTransition { .. })
    ));

    let held = p
        .authorize("held", "test", eur(500), Some("tok_success"))
        .await
        .unwrap();
    assert!(matches!(
        p.refund(held.id, 100).await,
        Err(PaymentError::IllegalTransition { .. })
    ));
    assert!(matches!(
        p.capture(held.id, Some(501)).await,
        Err(PaymentError::AmountTooLarge(_))
    ));
    let voided = p.void(held.id).await.unwrap();
    assert!(matches!(
        p.capture(voided.id, None).await,
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
        tokio::spawn(async move { p.capture(intent.id, None).await })
    });
    let won = futures_util::future::join_all(captures)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(won, 1);

    let refunds = (0..25).map(|_| {
        let p = Arc::clone(&p);
        tokio::spawn(async move { p.refund(intent.id, 100).await })
    });
    let outcomes = futures_util::future::join_all(refunds).await;
    let mut won = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert!(matches!(e, PaymentError::AmountTooLarge(_)), "{e}"),
        }
    }
    assert_eq!(won, 10);
    let after = p.get(intent.id).await.unwrap();
    assert_eq!(after.refunded_amount, 1_000);
    assert_eq!(after.captured_amount, 1_000);
}
