//! Reservations: no oversell under concurrency, all-or-nothing lines, release / commit / expiry
//! semantics and their idempotency.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use emporium_inventory::{ExpirySweeps, InventoryError, ReservationStatus, ReserveLine};
use emporium_kernel::ids::{LocationId, ReservationId, VariantId};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::helpers::Harness;
use crate::on_both_backends;

on_both_backends!(
    a_hundred_concurrent_buyers_never_oversell_twenty_units_split_over_two_locations,
    competing_multi_line_reservations_are_all_or_nothing,
    a_failed_reservation_lists_every_short_line_and_changes_nothing,
    a_line_is_served_whole_from_the_location_with_most_available,
    lines_of_one_variant_are_merged,
    release_gives_stock_back_and_releasing_again_changes_nothing,
    commit_takes_units_out_of_stock_and_committing_again_changes_nothing,
    commits_made_together_change_each_level_once_with_a_ledger_row_per_line,
    a_release_and_a_commit_racing_for_one_reservation_have_exactly_one_winner,
    release_expired_ends_only_reservations_whose_time_is_up,
    committing_a_reservation_whose_time_is_up_expires_it_instead,
    the_expiry_loop_sweeps_until_it_is_stopped,
    unknown_reservations_are_not_found,
    reservation_requests_are_validated_with_pointers,
);

fn line(variant_id: VariantId, quantity: i64) -> ReserveLine {
    ReserveLine {
        variant_id,
        quantity,
    }
}

const TTL: time::Duration = time::Duration::minutes(15);

async fn a_hundred_concurrent_buyers_never_oversell_twenty_units_split_over_two_locations(
    h: Harness,
) {
    let variant = VariantId::generate();
    let (a, b) = (h.location("a").await, h.location("b").await);
    h.stock(variant, a, 12).await;
    h.stock(variant, b, 8).await;

    let mut buyers = JoinSet::new();
    for i in 0..100_i64 {
        let service = h.service.clone();
        let quantity = 1 + i % 3;
        buyers.spawn(async move {
            let answer = service
                .reserve(&[line(variant, quantity)], TTL, &format!("cart-{i}"))
                .await;
            (quantity, answer)
        });
    }
    let mut held_at: HashMap<LocationId, i64> = HashMap::new();
    let mut won = 0;
    let mut smallest_refused = i64::MAX;
    while let Some(joined) = buyers.join_next().await {
        match joined.unwrap() {
            (_, Ok(reservation)) => {
                won += 1;
                assert_eq!(reservation.lines.len(), 1);
                let l = reservation.lines[0];
                *held_at.entry(l.location_id).or_default() += l.quantity;
            }
            (quantity, Err(InventoryError::OutOfStock { lines })) => {
                assert_eq!(lines.len(), 1);
                assert_eq!(lines[0].variant_id, variant);
                assert_eq!(lines[0].requested, quantity);
                assert!(lines[0].available < quantity, "{lines:?}");
                smallest_refused = smallest_refused.min(quantity);
            }
            (_, Err(other)) => {
                panic!("a buyer failed with something else than out_of_stock: {other}")
            }
        }
    }

    let held: i64 = held_at.values().sum();
    assert!(held <= 20, "{held} units reserved out of 20");
    let stock = h.stock_of(variant).await;
    assert_eq!(stock.on_hand, 20);
    assert_eq!(stock.reserved, held);
    for level in &stock.locations {
        assert!(level.available >= 0, "{level:?}");
        assert!(level.on_hand - level.reserved >= 0);
        assert_eq!(
            level.reserved,
            held_at.get(&level.location_id).copied().unwrap_or(0)
        );
        // Stock only went down during the race, so nobody was refused what one location still
        // has: every refusal was real.
        assert!(
            level.available < smallest_refused,
            "{level:?} left after refusing {smallest_refused}"
        );
    }
    assert!(won > 0 && won < 100, "{won} winners");
    // Two level sets, then one ledger row and one stock event per winner; none for the losers.
    let ledger = h.count("SELECT count(*) FROM stock_ledger").await;
    assert_eq!(ledger, 2 + won);
    assert_eq!(
        h.events("inventory.stock_changed").await.len() as i64,
        2 + won
    );
    assert_eq!(
        h.events("inventory.reservation_created").await.len() as i64,
        won
    );
    assert_eq!(h.count("SELECT count(*) FROM reservations").await, won);
}

async fn competing_multi_line_reservations_are_all_or_nothing(h: Harness) {
    let shirt = VariantId::generate();
    let socks = VariantId::generate();
    let (a, b) = (h.location("a").await, h.location("b").await);
    h.stock(shirt, a, 7).await;
    h.stock(shirt, b, 5).await;
    h.stock(socks, b, 9).await;

    let mut buyers = JoinSet::new();
    for i in 0..40_i64 {
        let service = h.service.clone();
        let shirts = 1 + i % 2;
        let pairs = 1 + i % 3;
        // Half the buyers name the variants in the other order: the service must lock in one
        // order whatever the request says.
        let lines = if i % 2 == 0 {
            vec![line(shirt, shirts), line(socks, pairs)]
        } else {
            vec![line(socks, pairs), line(shirt, shirts)]
        };
        buyers.spawn(async move {
            let answer = service.reserve(&lines, TTL, &format!("cart-{i}")).await;
            (shirts, pairs, answer)
        });
    }
    let (mut shirts_held, mut pairs_held, mut won) = (0, 0, 0);
    while let Some(joined) = buyers.join_next().await {
        match joined.unwrap() {
            (shirts, pairs, Ok(r)) => {
                won += 1;
                assert_eq!(r.lines.len(), 2, "{r:?}");
                let qty = |v| r.lines.iter().find(|l| l.variant_id == v).unwrap().quantity;
                assert_eq!(qty(shirt), shirts);
                assert_eq!(qty(socks), pairs);
                shirts_held += shirts;
                pairs_held += pairs;
            }
            (_, _, Err(InventoryError::OutOfStock { lines })) => assert!(!lines.is_empty()),
            (_, _, Err(other)) => panic!("unexpected failure: {other}"),
        }
    }
    assert!(won > 0);
    let shirt_stock = h.stock_of(shirt).await;
    let socks_stock = h.stock_of(socks).await;
    assert_eq!(shirt_stock.reserved, shirts_held);
    assert_eq!(socks_stock.reserved, pairs_held);
    assert!(shirt_stock.locations.iter().all(|l| l.available >= 0));
    assert!(socks_stock.available >= 0);
    // A refused reservation left nothing behind: no reservation, line, ledger row or event.
    assert_eq!(h.count("SELECT count(*) FROM reservations").await, won);
    assert_eq!(
        h.count("SELECT count(*) FROM reservation_lines").await,
        2 * won
    );
    assert_eq!(
        h.count("SELECT count(*) FROM stock_ledger").await,
        3 + 2 * won
    );
    assert_eq!(
        h.events("inventory.stock_changed").await.len() as i64,
        3 + 2 * won
    );
}

async fn a_failed_reservation_lists_every_short_line_and_changes_nothing(h: Harness) {
    let mut variants = [
        VariantId::generate(),
        VariantId::generate(),
        VariantId::generate(),
    ];
    variants.sort();
    let [plenty, scarce, none] = variants;
    let loc = h.location("main").await;
    h.stock(plenty, loc, 5).await;
    h.stock(scarce, loc, 1).await;
    let ledger_before = h.count("SELECT count(*) FROM stock_ledger").await;
    let events_before = h.events("inventory.stock_changed").await.len();

    let err = h
        .service
        .reserve(
            &[line(none, 1), line(plenty, 3), line(scarce, 2)],
            TTL,
            "cart-9",
        )
        .await
        .unwrap_err();

    let InventoryError::OutOfStock { lines } = err else {
        panic!("expected out_of_stock, got {err}");
    };
    let short: Vec<_> = lines
        .iter()
        .map(|s| (s.variant_id, s.requested, s.available))
        .collect();
    assert_eq!(short, [(scarce, 2, 1), (none, 1, 0)]);
    assert_eq!(h.level(plenty, loc).await, (5, 0));
    assert_eq!(h.level(scarce, loc).await, (1, 0));
    assert_eq!(
        h.count("SELECT count(*) FROM stock_ledger").await,
        ledger_before
    );
    assert_eq!(
        h.events("inventory.stock_changed").await.len(),
        events_before
    );
    assert_eq!(h.count("SELECT count(*) FROM reservations").await, 0);
}

async fn a_line_is_served_whole_from_the_location_with_most_available(h: Harness) {
    let variant = VariantId::generate();
    let (small, big) = (h.location("small").await, h.location("big").await);
    h.stock(variant, small, 8).await;
    h.stock(variant, big, 12).await;

    // 15 is available in total but not at one location.
    let err = h
        .service
        .reserve(&[line(variant, 15)], TTL, "cart-1")
        .await
        .unwrap_err();
    let InventoryError::OutOfStock { lines } = err else {
        panic!("expected out_of_stock");
    };
    assert_eq!(lines[0].available, 12);

    let first = h.reserve_one(variant, 5).await;
    assert_eq!(first.lines[0].location_id, big);
    // Now `small` has 8 available against `big`'s 7.
    let second = h.reserve_one(variant, 3).await;
    assert_eq!(second.lines[0].location_id, small);
    assert_eq!(h.level(variant, big).await, (12, 5));
    assert_eq!(h.level(variant, small).await, (8, 3));
}

async fn lines_of_one_variant_are_merged(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 10).await;
    let r = h
        .service
        .reserve(&[line(variant, 1), line(variant, 2)], TTL, "cart-1")
        .await
        .unwrap();
    assert_eq!(r.lines.len(), 1);
    assert_eq!(r.lines[0].quantity, 3);
    assert_eq!(r.status, ReservationStatus::Active);
    assert_eq!(r.expires_at, h.now() + TTL);
    assert_eq!(h.level(variant, loc).await, (10, 3));
    assert_eq!(h.service.get_reservation(r.id).await.unwrap(), r);
}

async fn release_gives_stock_back_and_releasing_again_changes_nothing(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 10).await;
    let r = h.reserve_one(variant, 3).await;

    let released = h.service.release(r.id).await.unwrap();
    assert_eq!(released.status, ReservationStatus::Released);
    assert_eq!(h.level(variant, loc).await, (10, 0));
    let ledger = h.count("SELECT count(*) FROM stock_ledger").await;
    assert_eq!(ledger, 3);

    let again = h.service.release(r.id).await.unwrap();
    assert_eq!(again.status, ReservationStatus::Released);
    assert_eq!(h.level(variant, loc).await, (10, 0));
    assert_eq!(h.count("SELECT count(*) FROM stock_ledger").await, ledger);
    assert_eq!(h.events("inventory.reservation_released").await.len(), 1);

    let err = h.service.commit(r.id).await.unwrap_err();
    assert!(matches!(err, InventoryError::ReservationExpired), "{err}");
    assert_eq!(h.level(variant, loc).await, (10, 0));

    let entries = h
        .service
        .list_ledger(Some(variant), None, None)
        .await
        .unwrap();
    let newest = &entries.items[0];
    assert_eq!((newest.delta_on_hand, newest.delta_reserved), (0, -3));
    assert_eq!(newest.reason, "released");
    assert_eq!(newest.actor, "cart-1");
    assert_eq!(newest.reservation_id, Some(r.id));
}

async fn commit_takes_units_out_of_stock_and_committing_again_changes_nothing(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 10).await;
    let r = h.reserve_one(variant, 3).await;

    let committed = h.service.commit(r.id).await.unwrap();
    assert_eq!(committed.status, ReservationStatus::Committed);
    assert_eq!(h.level(variant, loc).await, (7, 0));
    let ledger = h.count("SELECT count(*) FROM stock_ledger").await;

    let again = h.service.commit(r.id).await.unwrap();
    assert_eq!(again.status, ReservationStatus::Committed);
    assert_eq!(h.level(variant, loc).await, (7, 0));
    assert_eq!(h.count("SELECT count(*) FROM stock_ledger").await, ledger);

    let err = h.service.release(r.id).await.unwrap_err();
    assert!(matches!(err, InventoryError::ReservationCommitted), "{err}");
    assert_eq!(h.level(variant, loc).await, (7, 0));

    let events = h.events("inventory.reservation_committed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].aggregate_id, r.id.to_string());
    assert_eq!(events[0].sequence, 2);
    assert_eq!(events[0].data["reference"], "cart-1");
    assert_eq!(events[0].data["lines"][0]["quantity"], 3);
    let stock = h.events("inventory.stock_changed").await;
    let last = &stock.last().unwrap().data;
    assert_eq!(last["reason"], "committed");
    assert_eq!(
        (last["on_hand"].as_i64(), last["reserved"].as_i64()),
        (Some(7), Some(0))
    );
}

async fn commits_made_together_change_each_level_once_with_a_ledger_row_per_line(h: Harness) {
    let (v1, v2) = (VariantId::generate(), VariantId::generate());
    let (a, b) = (h.location("a").await, h.location("b").await);
    h.stock(v1, a, 10).await;
    h.stock(v2, b, 5).await;
    let reserve = async |lines: &[ReserveLine], reference: &str| {
        h.service.reserve(lines, TTL, reference).await.unwrap()
    };
    let r1 = reserve(&[line(v1, 2), line(v2, 1)], "cart-1").await;
    let r2 = reserve(&[line(v1, 3)], "cart-2").await;
    let r3 = reserve(&[line(v2, 4)], "cart-3").await;
    // A variant sold at two locations in one batch: 5 held at b (a has too few), then 3 at a.
    let v3 = VariantId::generate();
    h.stock(v3, a, 4).await;
    h.stock(v3, b, 6).await;
    let r4 = reserve(&[line(v3, 5)], "cart-4").await;
    let r5 = reserve(&[line(v3, 3)], "cart-5").await;
    assert_eq!((r4.lines[0].location_id, r5.lines[0].location_id), (b, a));
    h.service.commit(r3.id).await.unwrap();
    let stock_events = h.events("inventory.stock_changed").await.len();
    let unknown = ReservationId::generate();

    let outcomes = h
        .service
        .commit_all(&[r1.id, unknown, r2.id, r3.id, r1.id, r4.id, r5.id])
        .await
        .unwrap();
    let statuses: Vec<_> = outcomes
        .iter()
        .map(|o| {
            o.as_ref()
                .map(|r| (r.id, r.status))
                .map_err(ToString::to_string)
        })
        .collect();
    let committed = ReservationStatus::Committed;
    assert_eq!(
        statuses,
        vec![
            Ok((r1.id, committed)),
            Err(InventoryError::ReservationNotFound.to_string()),
            Ok((r2.id, committed)),
            Ok((r3.id, committed)),
            Ok((r1.id, committed)),
            Ok((r4.id, committed)),
            Ok((r5.id, committed)),
        ]
    );
    assert_eq!(outcomes[0].as_ref().unwrap().lines.len(), 2);
    assert_eq!(h.level(v1, a).await, (5, 0));
    assert_eq!(h.level(v2, b).await, (0, 0));
    assert_eq!(h.level(v3, a).await, (1, 0));
    assert_eq!(h.level(v3, b).await, (1, 0));

    // One event per level changed (v1 at a, v2 at b, v3 at both), with the level after its
    // sales and the variant's availability over every location.
    let stock = h.events("inventory.stock_changed").await;
    let changed: Vec<_> = stock[stock_events..].iter().map(|e| &e.data).collect();
    assert_eq!(changed.len(), 4, "{changed:?}");
    let of_v3: Vec<_> = changed
        .iter()
        .filter(|d| d["variant_id"] == v3.to_string())
        .collect();
    assert_eq!(of_v3.len(), 2);
    assert!(
        of_v3
            .iter()
            .all(|d| d["on_hand"] == 1 && d["variant_available"] == 2)
    );
    let of_v1 = changed
        .iter()
        .find(|d| d["variant_id"] == v1.to_string())
        .unwrap();
    assert_eq!(of_v1["reason"], "committed");
    assert_eq!(
        (of_v1["on_hand"].as_i64(), of_v1["reserved"].as_i64()),
        (Some(5), Some(0))
    );
    assert_eq!(of_v1["variant_available"], 5);
    // One `reservation_committed` each, the earlier commit's included.
    let ended = h.events("inventory.reservation_committed").await;
    let mut ids: Vec<_> = ended.iter().map(|e| e.aggregate_id.clone()).collect();
    ids.sort();
    let mut want: Vec<_> = [r1.id, r2.id, r3.id, r4.id, r5.id]
        .iter()
        .map(ToString::to_string)
        .collect();
    want.sort();
    assert_eq!(ids, want);

    // The ledger keeps a row per line, each with the level as it stood after that sale.
    let entries = h.service.list_ledger(Some(v1), None, None).await.unwrap();
    let sales: HashMap<_, _> = entries
        .items
        .iter()
        .filter(|e| e.reason == "committed")
        .map(|e| {
            let after = (e.on_hand_after, e.reserved_after);
            (e.reservation_id.unwrap(), (e.delta_on_hand, after))
        })
        .collect();
    assert_eq!(sales.len(), 2);
    let (first, second) = if r1.id.0 < r2.id.0 {
        (r1.id, r2.id)
    } else {
        (r2.id, r1.id)
    };
    let (q_first, q_second) = (-sales[&first].0, -sales[&second].0);
    assert_eq!(q_first + q_second, 5);
    assert_eq!(sales[&first].1, (10 - q_first, 5 - q_first));
    assert_eq!(sales[&second].1, (5, 0));
    assert_eq!(sales[&r1.id].0, -2);
}

async fn a_release_and_a_commit_racing_for_one_reservation_have_exactly_one_winner(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 100).await;
    let mut on_hand = 100;
    for round in 0..10 {
        let r = h.reserve_one(variant, 2).await;
        let (s1, s2) = (h.service.clone(), h.service.clone());
        // Alternate who starts first, so either may win.
        let (release, commit) = if round % 2 == 0 {
            let release = tokio::spawn(async move { s1.release(r.id).await });
            let commit = tokio::spawn(async move { s2.commit(r.id).await });
            (release.await.unwrap(), commit.await.unwrap())
        } else {
            let commit = tokio::spawn(async move { s2.commit(r.id).await });
            let release = tokio::spawn(async move { s1.release(r.id).await });
            (release.await.unwrap(), commit.await.unwrap())
        };
        match (&release, &commit) {
            (Ok(rel), Err(InventoryError::ReservationExpired)) => {
                assert_eq!(rel.status, ReservationStatus::Released);
            }
            (Err(InventoryError::ReservationCommitted), Ok(com)) => {
                assert_eq!(com.status, ReservationStatus::Committed);
                on_hand -= 2;
            }
            other => panic!("not exactly one winner: {other:?}"),
        }
        assert_eq!(h.level(variant, loc).await, (on_hand, 0), "round {round}");
    }
    let ended = h.events("inventory.reservation_released").await.len()
        + h.events("inventory.reservation_committed").await.len();
    assert_eq!(ended, 10);
}

async fn release_expired_ends_only_reservations_whose_time_is_up(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 10).await;
    let soon = h
        .service
        .reserve(
            &[line(variant, 2)],
            time::Duration::minutes(10),
            "cart-soon",
        )
        .await
        .unwrap();
    let later = h
        .service
        .reserve(
            &[line(variant, 3)],
            time::Duration::minutes(30),
            "cart-later",
        )
        .await
        .unwrap();

    // One second short of the first expiry: nothing to do.
    h.clock
        .advance(time::Duration::minutes(10) - time::Duration::SECOND);
    assert_eq!(h.service.release_expired(h.now()).await.unwrap(), 0);
    assert_eq!(h.level(variant, loc).await, (10, 5));

    h.clock.advance(time::Duration::SECOND);
    assert_eq!(h.service.release_expired(h.now()).await.unwrap(), 1);
    assert_eq!(h.level(variant, loc).await, (10, 3));
    let soon_now = h.service.get_reservation(soon.id).await.unwrap();
    assert_eq!(soon_now.status, ReservationStatus::Expired);
    let later_now = h.service.get_reservation(later.id).await.unwrap();
    assert_eq!(later_now.status, ReservationStatus::Active);

    // Sweeping again finds nothing new.
    assert_eq!(h.service.release_expired(h.now()).await.unwrap(), 0);
    assert_eq!(h.level(variant, loc).await, (10, 3));

    // An expired reservation cannot be committed; releasing it changes nothing.
    let err = h.service.commit(soon.id).await.unwrap_err();
    assert!(matches!(err, InventoryError::ReservationExpired), "{err}");
    let released = h.service.release(soon.id).await.unwrap();
    assert_eq!(released.status, ReservationStatus::Expired);
    assert_eq!(h.level(variant, loc).await, (10, 3));

    let entries = h
        .service
        .list_ledger(Some(variant), None, None)
        .await
        .unwrap();
    let expiry = &entries.items[0];
    assert_eq!(
        (expiry.reason.as_str(), expiry.actor.as_str()),
        ("expired", "system")
    );
    assert_eq!(expiry.delta_reserved, -2);
    let expired = h.events("inventory.reservation_expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].aggregate_id, soon.id.to_string());
    assert_eq!(expired[0].data["reference"], "cart-soon");

    h.clock.advance(time::Duration::hours(1));
    assert_eq!(h.service.release_expired(h.now()).await.unwrap(), 1);
    assert_eq!(h.level(variant, loc).await, (10, 0));
}

async fn committing_a_reservation_whose_time_is_up_expires_it_instead(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 10).await;
    let r = h
        .service
        .reserve(&[line(variant, 4)], time::Duration::minutes(1), "cart-1")
        .await
        .unwrap();
    h.clock.advance(time::Duration::minutes(1));

    let err = h.service.commit(r.id).await.unwrap_err();
    assert!(matches!(err, InventoryError::ReservationExpired), "{err}");
    let now = h.service.get_reservation(r.id).await.unwrap();
    assert_eq!(now.status, ReservationStatus::Expired);
    assert_eq!(h.level(variant, loc).await, (10, 0));
    assert_eq!(h.events("inventory.reservation_expired").await.len(), 1);
    // The sweeper finds nothing left to do.
    assert_eq!(h.service.release_expired(h.now()).await.unwrap(), 0);
}

async fn the_expiry_loop_sweeps_until_it_is_stopped(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 10).await;
    let r = h
        .service
        .reserve(&[line(variant, 4)], time::Duration::minutes(1), "cart-1")
        .await
        .unwrap();
    h.clock.advance(time::Duration::minutes(2));

    let mut sweeps = h.service.expiry_sweeps();
    let stop = CancellationToken::new();
    let sweeper = tokio::spawn(emporium_inventory::run_expiry(
        Arc::clone(&h.service),
        Duration::from_millis(20),
        stop.clone(),
    ));
    let first = after_passes(&mut sweeps, 1).await;
    assert_eq!((first.failed, first.last_expired), (0, 1));
    let status = h.service.get_reservation(r.id).await.unwrap().status;
    assert_eq!(status, ReservationStatus::Expired);
    assert_eq!(h.level(variant, loc).await, (10, 0));
    // It keeps sweeping, finding nothing more to do.
    let second = after_passes(&mut sweeps, 2).await;
    assert_eq!((second.failed, second.last_expired), (0, 0));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), sweeper)
        .await
        .expect("the sweeper stops when cancelled")
        .unwrap();
    assert_eq!(h.events("inventory.reservation_expired").await.len(), 1);
}

/// What the expiry loop reports once it has finished `passes` passes; the deadline only matters
/// when the loop is broken.
async fn after_passes(sweeps: &mut watch::Receiver<ExpirySweeps>, passes: u64) -> ExpirySweeps {
    let reached = sweeps.wait_for(|s| s.completed >= passes);
    *tokio::time::timeout(Duration::from_secs(30), reached)
        .await
        .expect("the expiry loop stalled")
        .unwrap()
}

async fn unknown_reservations_are_not_found(h: Harness) {
    let id = ReservationId::generate();
    for err in [
        h.service.get_reservation(id).await.unwrap_err(),
        h.service.release(id).await.unwrap_err(),
        h.service.commit(id).await.unwrap_err(),
    ] {
        assert!(matches!(err, InventoryError::ReservationNotFound), "{err}");
    }
}

async fn reservation_requests_are_validated_with_pointers(h: Harness) {
    use emporium_kernel::DomainError;

    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 10).await;
    let check = |err: InventoryError, expected: &[(&str, &str)]| {
        assert_eq!(err.kind_and_code().1, "validation_failed");
        let got: Vec<_> = err
            .violations()
            .iter()
            .map(|e| (e.pointer.clone(), e.code.clone()))
            .collect();
        let expected: Vec<_> = expected
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, expected);
    };

    let err = h
        .service
        .reserve(
            &[line(variant, 1), line(variant, 0), line(variant, -2)],
            time::Duration::ZERO,
            " ",
        )
        .await
        .unwrap_err();
    check(
        err,
        &[
            ("/lines/1/quantity", "too_small"),
            ("/lines/2/quantity", "too_small"),
            ("/ttl", "too_small"),
            ("/reference", "required"),
        ],
    );
    let err = h.service.reserve(&[], TTL, "cart-1").await.unwrap_err();
    check(err, &[("/lines", "required")]);
    let err = h
        .service
        .reserve(
            &[line(variant, 1)],
            time::Duration::days(365),
            &"x".repeat(201),
        )
        .await
        .unwrap_err();
    check(err, &[("/ttl", "too_large"), ("/reference", "too_long")]);
    // Nothing was held by the refused requests.
    assert_eq!(h.level(variant, loc).await, (10, 0));
}
