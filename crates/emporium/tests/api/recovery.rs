//! Money and recovery under races and faults: concurrent captures, cancellations and refunds
//! leave an order's figures equal to its payment's; a process killed between an order's
//! payment step and its event is settled at restart; a checkout whose client hangs up still
//! ends (an order, or a free cart); one that nothing drives any more is undone while the store
//! runs, without a restart; and only the payment providers a store enables take payments.

use std::time::Duration;

use emporium_kernel::auth::Role;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::checkout::{Shop, available, check_out, ready_cart, shop};
use crate::helpers::{Backend, TestApp, assert_problem, eventually, pointers};
use crate::on_both_backends;

on_both_backends!(
    concurrent_refunds_keep_the_order_and_its_payment_equal,
    concurrent_captures_cancellations_and_refunds_agree_with_the_payment,
    an_order_action_killed_between_its_steps_is_settled_at_restart,
    a_checkout_whose_client_hangs_up_ends_with_an_order_or_a_free_cart,
    a_provider_that_keeps_failing_is_asked_less_and_less_often,
);

/// A `test` provider whose captures fail as unavailable (the money may have moved) until it
/// is healed, counting every capture it is asked for.
#[derive(Default)]
struct SilentProvider {
    captures: std::sync::atomic::AtomicUsize,
    healed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl emporium_payments::PaymentProvider for SilentProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn authorize(
        &self,
        intent: emporium_kernel::ids::PaymentId,
        _amount: emporium_kernel::Money,
        _token: Option<&str>,
    ) -> Result<emporium_payments::Authorization, emporium_payments::ProviderError> {
        Ok(emporium_payments::Authorization::Approved {
            reference: format!("silent_{}", intent.0.simple()),
        })
    }

    async fn capture(
        &self,
        _reference: &str,
        _amount: emporium_kernel::Money,
        _key: &str,
    ) -> Result<(), emporium_payments::ProviderError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.captures.fetch_add(1, SeqCst);
        if self.healed.load(SeqCst) {
            Ok(())
        } else {
            Err(emporium_payments::ProviderError::Unavailable(
                "no answer".into(),
            ))
        }
    }

    async fn void(
        &self,
        _intent: emporium_kernel::ids::PaymentId,
        _reference: Option<&str>,
        _key: &str,
    ) -> Result<(), emporium_payments::ProviderError> {
        Ok(())
    }

    async fn refund(
        &self,
        _reference: &str,
        _amount: emporium_kernel::Money,
        _key: &str,
    ) -> Result<(), emporium_payments::ProviderError> {
        Ok(())
    }
}

async fn a_provider_that_keeps_failing_is_asked_less_and_less_often(app: TestApp) {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    use emporium_kernel::ids::OrderId;
    use emporium_ordering::{Action, OrderService, SETTLE_RETRY_FIRST};

    let shop = shop(&app, 20, 100).await;
    let order: OrderId = place(&app, &shop, "backoff-1").await.parse().unwrap();
    // The order's payment, as a store whose provider stopped answering sees it, on a clock of
    // the test's own.
    let silent = Arc::new(SilentProvider::default());
    let db = app.store().db.clone();
    let payments = emporium_payments::PaymentService::new(db.clone(), app.store().clock.clone())
        .with_provider(silent.clone())
        .with_enabled(&["test"])
        .unwrap();
    let clock = Arc::new(emporium_kernel::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let orders = OrderService::new(
        db,
        clock.clone(),
        Arc::new(payments),
        emporium_kernel::fault::CrashPoints::default(),
    );
    let second = time::Duration::seconds(1);

    assert!(orders.act(order, Action::Capture).await.is_err());
    assert_eq!(silent.captures.load(SeqCst), 1);
    // Recovery asks again at its next sweep, then waits 10 s, then 20 s: not before.
    let mut asked = vec![];
    for advance in [
        second,
        time::Duration::ZERO,
        SETTLE_RETRY_FIRST - second,
        2 * second,
        SETTLE_RETRY_FIRST,
        SETTLE_RETRY_FIRST + second,
    ] {
        clock.advance(advance);
        assert_eq!(orders.settle_pending(Duration::ZERO).await.unwrap(), 0);
        asked.push(silent.captures.load(SeqCst));
    }
    assert_eq!(asked, [2, 2, 2, 3, 3, 4]);
    let pending = orders.get_any(order).await.unwrap();
    assert!(
        pending.pending_payment.is_some(),
        "the capture is still pending"
    );

    // Once the provider answers, the next due try settles it, and the figures agree.
    silent.healed.store(true, SeqCst);
    clock.advance(SETTLE_RETRY_FIRST * 4);
    assert_eq!(orders.settle_pending(Duration::ZERO).await.unwrap(), 1);
    let settled = orders.get_any(order).await.unwrap();
    assert!(settled.pending_payment.is_none());
    assert_eq!(settled.captured_amount, settled.total);
    assert_eq!(silent.captures.load(SeqCst), 5);
}

/// Places an order of one unit; returns its id.
async fn place(app: &TestApp, shop: &Shop, key: &str) -> String {
    let (cart, token) = ready_cart(app, shop, 1, false).await;
    let r = check_out(app, &cart, &token, key, "tok_success").await;
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().await.unwrap()["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn act(
    app: &TestApp,
    admin: &str,
    order: &str,
    action: &str,
    body: Option<Value>,
) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/v1/admin/orders/{order}/{action}"),
        body.as_ref(),
        Some(admin),
        &[],
    )
    .await
}

/// The order as staff read it, and its payment's `(status, captured, refunded)`.
async fn order_and_payment(app: &TestApp, admin: &str, order: &str) -> (Value, (String, i64, i64)) {
    let order: Value = app
        .get(&format!("/v1/admin/orders/{order}"), Some(admin))
        .await
        .json()
        .await
        .unwrap();
    let payment = app
        .store()
        .payments
        .get(serde_json::from_value(order["payment_id"].clone()).unwrap())
        .await
        .unwrap();
    let status = serde_json::to_value(payment.status).unwrap();
    (
        order,
        (
            status.as_str().unwrap().to_owned(),
            payment.captured_amount,
            payment.refunded_amount,
        ),
    )
}

/// What every interleaving must leave: no pending action, and the order's figures equal to
/// the payment's.
fn assert_agree(order: &Value, payment: &(String, i64, i64)) {
    assert!(order["pending_payment"].is_null(), "{order}");
    assert_eq!(order["captured_amount"], payment.1, "{order} {payment:?}");
    assert_eq!(order["refunded_amount"], payment.2, "{order} {payment:?}");
}

/// A lost race is a 409 that moved nothing.
async fn assert_won_or_lost(r: reqwest::Response) -> bool {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    match status {
        200 => true,
        409 => {
            let code = body["code"].as_str().unwrap();
            assert!(
                [
                    "order_changed",
                    "order_action_pending",
                    "order_transition_illegal"
                ]
                .contains(&code),
                "{body}"
            );
            false
        }
        _ => panic!("unexpected answer {status}: {body}"),
    }
}

async fn concurrent_refunds_keep_the_order_and_its_payment_equal(app: TestApp) {
    let shop = shop(&app, 20, 100).await;
    let admin = app.staff_token("boss@example.com", Role::Admin).await;
    let order = place(&app, &shop, "refunds").await;
    let paid: Value = act(&app, &admin, &order, "capture", None)
        .await
        .json()
        .await
        .unwrap();
    let total = paid["captured_amount"].as_i64().unwrap();
    assert!(total > 20 * 200);

    let refunds =
        (0..20).map(|_| act(&app, &admin, &order, "refund", Some(json!({"amount": 200}))));
    let mut won = 0;
    for r in join_all(refunds).await {
        won += i64::from(assert_won_or_lost(r).await);
    }
    assert!(won >= 1);
    let (after, payment) = order_and_payment(&app, &admin, &order).await;
    assert_agree(&after, &payment);
    assert_eq!(payment.2, 200 * won);

    // Not stuck: what the order says is left can be refunded.
    let left = total - 200 * won;
    let r = act(
        &app,
        &admin,
        &order,
        "refund",
        Some(json!({ "amount": left })),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let (after, payment) = order_and_payment(&app, &admin, &order).await;
    assert_agree(&after, &payment);
    assert_eq!(after["status"], "refunded");
    assert_eq!(payment, ("refunded".to_owned(), total, total));
}

async fn concurrent_captures_cancellations_and_refunds_agree_with_the_payment(app: TestApp) {
    let shop = shop(&app, 20, 100).await;
    let admin = app.staff_token("boss@example.com", Role::Admin).await;

    // A placed order: captures race cancellations.
    let placed = place(&app, &shop, "race-placed").await;
    let answers = (0..10).map(|i| {
        if i % 2 == 0 {
            act(&app, &admin, &placed, "capture", None)
        } else {
            act(
                &app,
                &admin,
                &placed,
                "cancel",
                Some(json!({"reason": "race"})),
            )
        }
    });
    let mut won = 0;
    for r in join_all(answers).await {
        won += i64::from(assert_won_or_lost(r).await);
    }
    assert!(won >= 1);
    let (after, payment) = order_and_payment(&app, &admin, &placed).await;
    assert_agree(&after, &payment);
    match after["status"].as_str().unwrap() {
        "paid" => assert_eq!(payment.0, "captured"),
        // Cancelled at once (voided), or after a capture (refunded in full).
        "cancelled" => assert!(
            payment.0 == "voided" || (payment.0 == "refunded" && payment.1 == payment.2),
            "{payment:?}"
        ),
        other => panic!("unexpected status {other}"),
    }

    // A captured order: refunds race cancellations.
    let captured = place(&app, &shop, "race-captured").await;
    assert_eq!(
        act(&app, &admin, &captured, "capture", None)
            .await
            .status()
            .as_u16(),
        200
    );
    let answers = (0..10).map(|i| {
        if i % 2 == 0 {
            act(
                &app,
                &admin,
                &captured,
                "refund",
                Some(json!({"amount": 100})),
            )
        } else {
            act(
                &app,
                &admin,
                &captured,
                "cancel",
                Some(json!({"reason": "race"})),
            )
        }
    });
    for r in join_all(answers).await {
        assert_won_or_lost(r).await;
    }
    let (after, payment) = order_and_payment(&app, &admin, &captured).await;
    assert_agree(&after, &payment);
}

async fn an_order_action_killed_between_its_steps_is_settled_at_restart(mut app: TestApp) {
    let shop = shop(&app, 20, 100).await;
    let admin = app.staff_token("boss@example.com", Role::Admin).await;
    // Each case: the crash point, the action, and the order it runs on.
    let mut cases = Vec::new();
    for (point, action) in [
        ("order.after_payment_request", "capture"),
        ("order.after_payment", "capture"),
        ("order.after_payment_request", "refund"),
        ("order.after_payment", "refund"),
        ("order.after_payment", "cancel"),
    ] {
        let order = place(&app, &shop, &format!("{point}-{action}")).await;
        if action == "refund" {
            assert_eq!(
                act(&app, &admin, &order, "capture", None)
                    .await
                    .status()
                    .as_u16(),
                200
            );
        }
        cases.push((point, action, order));
    }
    app.stop().await;
    let data = app.config.data_dir.clone();
    let url = app
        .config
        .database_url
        .as_ref()
        .map(|u| u.expose().to_owned());
    let client = reqwest::Client::new();
    for (point, action, order) in &cases {
        let mut child = crate::events::start_binary_crashing_at(&data, url.as_deref(), point).await;
        let body = match *action {
            "refund" => json!({"amount": 250}),
            "cancel" => json!({"reason": "crash"}),
            _ => json!({}),
        };
        let answer = client
            .post(format!("{}/v1/admin/orders/{order}/{action}", child.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await;
        assert!(
            answer.is_err(),
            "{point} {action}: no answer before the crash"
        );
        let status = crate::events::wait_exit(&mut child.process).await;
        assert!(
            !status.success(),
            "{point} {action}: the process died there"
        );

        // Restarted without the crash point: pending money actions are settled before serving.
        let child = crate::events::start_binary(&data, url.as_deref(), None).await;
        let after: Value = client
            .get(format!("{}/v1/admin/orders/{order}", child.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        drop(child);
        assert!(
            after["pending_payment"].is_null(),
            "{point} {action}: {after}"
        );
        let expected = match *action {
            "capture" => "paid",
            "refund" => "paid",
            _ => "cancelled",
        };
        assert_eq!(after["status"], expected, "{point} {action}");
        if *action == "refund" {
            assert_eq!(after["refunded_amount"], 250, "{point} {action}");
        }
        let db = emporium::app::open_database(&app.config).await.unwrap();
        let mut conn = db.read().await.unwrap();
        let id: uuid::Uuid =
            serde_json::from_value::<emporium_kernel::ids::PaymentId>(after["payment_id"].clone())
                .unwrap()
                .0;
        let (status, captured, refunded): (String, i64, i64) = emporium_db::run!(&mut conn, |c| {
            sqlx::query_as(
                "SELECT status, captured_amount, refunded_amount FROM payment_intents WHERE id = $1",
            )
            .bind(id)
            .fetch_one(c)
            .await
        })
        .unwrap();
        drop(conn);
        db.close().await;
        assert_eq!(
            after["captured_amount"], captured,
            "{point} {action}: {status}"
        );
        assert_eq!(
            after["refunded_amount"], refunded,
            "{point} {action}: {status}"
        );
    }
}

async fn a_checkout_whose_client_hangs_up_ends_with_an_order_or_a_free_cart(app: TestApp) {
    let stock = 30;
    let shop = shop(&app, stock, 100).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut carts = Vec::new();
    for i in 0..12u64 {
        let (cart, token) = ready_cart(&app, &shop, 1, false).await;
        let body = json!({"payment": {"provider": "test", "token": "tok_success"}}).to_string();
        let request = format!(
            "POST /v1/store/carts/{cart}/checkout HTTP/1.1\r\nhost: {address}\r\n\
             content-type: application/json\r\nx-cart-token: {token}\r\n\
             idempotency-key: hang-up\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        // The fault itself: the client goes away 1 to 10 ms after sending.
        tokio::time::sleep(Duration::from_millis(1 + i % 10)).await;
        drop(socket);
        carts.push((cart, token));
    }

    // Without a restart, each checkout ends: its retry answers at once with the order or the
    // checkout's failure, and a cart without an order takes changes again.
    let mut placed = 0;
    for (cart, token) in &carts {
        let retry = check_out(&app, cart, token, "hang-up", "tok_success").await;
        match retry.status().as_u16() {
            201 => placed += 1,
            404 => {} // The claim never landed: the cart was never held.
            status => {
                let body: Value = retry.json().await.unwrap();
                panic!("unexpected retry answer {status}: {body}");
            }
        }
    }
    let orders = app.store().orders.count().await.unwrap();
    assert_eq!(orders, placed);
    let settled = eventually(Duration::from_secs(30), || async {
        available(&app, &shop).await == stock - placed
    })
    .await;
    assert!(settled, "no unit stays held");
}

/// A server whose recovery takes over checkouts idle for 300 ms, looking every `sweep`.
async fn app_recovering(backend: Backend, sweep: Duration) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.recovery.idle_after_ms = 300;
        c.recovery.sweep_interval_ms = u64::try_from(sweep.as_millis()).unwrap();
    })
    .await
}

/// Leaves checkout `key` of a ready cart as a process that died mid-way would: claimed, the
/// cart held, the stock reserved; nothing drives it. Returns the cart and its token.
async fn abandon_checkout(app: &TestApp, shop: &Shop, key: &str) -> (String, String) {
    use std::str::FromStr;
    let (cart, token) = ready_cart(app, shop, 2, false).await;
    let store = app.store();
    let id = emporium_kernel::ids::CartId::from_str(&cart).unwrap();
    let access = emporium_cart::Access {
        token: Some(&token),
        customer: None,
    };
    let view = store.cart.get(id, access).await.unwrap();
    let checkout = uuid::Uuid::now_v7();
    let reference = emporium_kernel::ids::CheckoutId(checkout).to_string();
    let lines = [emporium_inventory::ReserveLine {
        variant_id: emporium_kernel::ids::VariantId::from_str(&shop.variant).unwrap(),
        quantity: 2,
    }];
    let reservation = emporium_inventory::InventoryApi::reserve(
        store.inventory_api.as_ref(),
        &lines,
        time::Duration::minutes(15),
        &reference,
    )
    .await
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let request_hash = emporium_kernel::token::sha256_hex(
        &json!({"payment": {"provider": "test", "token": "tok_success"}}).to_string(),
    );
    let mut tx = store.db.begin_write().await.unwrap();
    let inserted = emporium_db::execute!(
        &mut tx,
        sqlx::query(
            "INSERT INTO checkouts (id, cart_id, idempotency_key, request_hash, caller, state, \
             reservation_id, coupon_ids, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'started', $6, '[]', $7, $7)"
        )
        .bind(checkout)
        .bind(id.0)
        .bind(key)
        .bind(request_hash)
        .bind(emporium_kernel::token::sha256_hex(&token))
        .bind(reservation.id.0)
        .bind(now)
    )
    .unwrap();
    assert_eq!(inserted, 1);
    assert!(
        store
            .cart
            .hold_in(&mut tx, id, view.version, checkout)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    (cart, token)
}

async fn cart_takes_changes(app: &TestApp, cart: &str, token: &str) -> bool {
    app.request(
        Method::PATCH,
        &format!("/v1/store/carts/{cart}"),
        Some(&json!({"email": "back@example.com"})),
        None,
        &[("x-cart-token", token)],
    )
    .await
    .status()
    .as_u16()
        == 200
}

async fn an_abandoned_checkout_is_undone_while_the_store_runs(backend: Backend) {
    let app = app_recovering(backend, Duration::from_millis(100)).await;
    let shop = shop(&app, 10, 100).await;
    let (cart, token) = abandon_checkout(&app, &shop, "abandoned").await;
    assert_eq!(available(&app, &shop).await, 8);
    assert!(
        !cart_takes_changes(&app, &cart, &token).await,
        "held while claimed"
    );

    // No request and no restart: the recovery loop undoes it once idle.
    let undone = eventually(Duration::from_secs(30), || async {
        available(&app, &shop).await == 10 && cart_takes_changes(&app, &cart, &token).await
    })
    .await;
    assert!(undone, "the cart and its stock come back without a restart");
    let retry = check_out(&app, &cart, &token, "abandoned", "tok_success").await;
    assert_problem(retry, 503, "checkout_interrupted").await;
    let fresh = check_out(&app, &cart, &token, "again", "tok_success").await;
    assert_eq!(fresh.status().as_u16(), 201);
}

async fn a_retry_of_an_abandoned_checkout_is_answered_at_once(backend: Backend) {
    // Recovery would look only after an hour: the retry itself takes the checkout over.
    let app = app_recovering(backend, Duration::from_secs(3600)).await;
    let shop = shop(&app, 10, 100).await;
    let (cart, token) = abandon_checkout(&app, &shop, "abandoned").await;
    let settled = eventually(Duration::from_secs(30), || async {
        let retry = check_out(&app, &cart, &token, "abandoned", "tok_success").await;
        let status = retry.status().as_u16();
        if status == 409 {
            // Not idle long enough yet: still someone's, by the bound.
            assert_problem(retry, 409, "checkout_in_progress").await;
            return false;
        }
        assert_problem(retry, 503, "checkout_interrupted").await;
        true
    })
    .await;
    assert!(settled);
    assert_eq!(available(&app, &shop).await, 10);
    assert!(cart_takes_changes(&app, &cart, &token).await);
}

async fn a_store_takes_only_the_payment_providers_it_enables(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.payments.providers = vec!["manual".to_owned()]
    })
    .await;
    let shop = shop(&app, 10, 100).await;
    let (cart, token) = ready_cart(&app, &shop, 1, false).await;
    for (provider, code) in [("test", "not_enabled"), ("bitcoin", "invalid_value")] {
        let r = app
            .request(
                Method::POST,
                &format!("/v1/store/carts/{cart}/checkout"),
                Some(&json!({"payment": {"provider": provider, "token": "tok_success"}})),
                None,
                &[("x-cart-token", &token), ("idempotency-key", provider)],
            )
            .await;
        let problem = assert_problem(r, 422, "validation_failed").await;
        assert_eq!(
            pointers(&problem),
            [("/payment/provider".to_owned(), code.to_owned())]
        );
    }
    // Nothing was reserved or held: the cart takes changes and checks out with `manual`.
    assert_eq!(available(&app, &shop).await, 10);
    assert!(cart_takes_changes(&app, &cart, &token).await);
    let r = app
        .request(
            Method::POST,
            &format!("/v1/store/carts/{cart}/checkout"),
            Some(&json!({"payment": {"provider": "manual"}})),
            None,
            &[("x-cart-token", &token), ("idempotency-key", "manual")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);
}

async fn checkouts_cut_short_by_the_request_timeout_still_end(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, |_| {}).await;
    let stock = 100;
    let shop = shop(&app, stock, 100).await;
    let mut carts = Vec::new();
    for _ in 0..40 {
        carts.push(ready_cart(&app, &shop, 1, false).await);
    }
    // The same store again, now cutting every request at 100 ms.
    app.stop().await;
    app.config.http.request_timeout_ms = 100;
    app.start().await;
    // Forty at once on two cores: many answers are the timeout's 503.
    let first = carts
        .iter()
        .map(|(cart, token)| check_out(&app, cart, token, "timed", "tok_success"));
    let answers = join_all(first).await;
    let timed_out = answers
        .iter()
        .filter(|r| r.status().as_u16() == 503)
        .count();
    eprintln!("{timed_out} of 40 checkouts answered by the request timeout");

    // Each ends anyway: its retry finds the order (or its answer), no cart stays held.
    let placed = eventually(Duration::from_secs(60), || async {
        let mut placed = 0;
        for (cart, token) in &carts {
            match check_out(&app, cart, token, "timed", "tok_success")
                .await
                .status()
                .as_u16()
            {
                201 => placed += 1,
                503 => return false,
                status => panic!("unexpected retry answer {status}"),
            }
        }
        placed == carts.len()
    })
    .await;
    assert!(placed, "every checkout placed its order");
    assert_eq!(app.store().orders.count().await.unwrap(), 40);
    let settled = eventually(Duration::from_secs(30), || async {
        available(&app, &shop).await == stock - 40
    })
    .await;
    assert!(settled);
}

/// Tests that need their own configuration, on both backends.
macro_rules! configured_on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(url) = $crate::helpers::postgres_url() {
                        super::$name($crate::helpers::Backend::Postgres(url)).await;
                    }
                }
            }
        )*
    };
}

configured_on_both_backends!(
    checkouts_cut_short_by_the_request_timeout_still_end,
    an_abandoned_checkout_is_undone_while_the_store_runs,
    a_retry_of_an_abandoned_checkout_is_answered_at_once,
    a_store_takes_only_the_payment_providers_it_enables,
);
