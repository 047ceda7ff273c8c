//! Locations, stock levels, adjustments, the ledger, availability and the events they record.

use std::collections::HashSet;

use emporium_inventory::{AdjustLevel, CreateLocation, InventoryError, SetLevel, UpdateLocation};
use emporium_kernel::DomainError;
use emporium_kernel::ids::{LocationId, VariantId};

use crate::helpers::{Harness, STAFF};
use crate::on_both_backends;

on_both_backends!(
    locations_are_created_listed_and_renamed_and_their_codes_stay_unique,
    location_input_is_validated_with_pointers,
    setting_a_level_creates_it_and_never_goes_below_reserved,
    adjustments_never_take_stock_below_reserved,
    level_input_is_validated_with_pointers,
    every_stock_change_writes_a_ledger_row_and_a_stock_changed_event,
    availability_sums_every_location_and_unknown_variants_have_none,
    the_ledger_pages_newest_first_without_gaps_or_repeats,
    a_bulk_set_writes_what_single_sets_would_and_refuses_item_by_item,
);

/// The `(pointer, code)` of every violation of a validation error.
fn violations(err: &InventoryError) -> Vec<(String, String)> {
    assert_eq!(err.kind_and_code().1, "validation_failed", "{err}");
    err.violations()
        .iter()
        .map(|e| (e.pointer.clone(), e.code.clone()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

fn set(on_hand: i64, reason: &str) -> SetLevel {
    SetLevel {
        on_hand,
        reason: Some(reason.to_owned()),
    }
}

fn adjust(delta: i64, reason: &str) -> AdjustLevel {
    AdjustLevel {
        delta,
        reason: reason.to_owned(),
    }
}

async fn locations_are_created_listed_and_renamed_and_their_codes_stay_unique(h: Harness) {
    let create = |code: &str| CreateLocation {
        code: code.to_owned(),
        name: format!("The {code} site"),
    };
    let main = h
        .service
        .create_location(create("main"), STAFF)
        .await
        .unwrap();
    let backup = h
        .service
        .create_location(create("backup"), STAFF)
        .await
        .unwrap();
    assert_eq!(main.code, "main");
    assert_eq!(main.name, "The main site");

    let err = h
        .service
        .create_location(create("main"), STAFF)
        .await
        .unwrap_err();
    assert!(matches!(err, InventoryError::LocationCodeTaken), "{err}");
    assert_eq!(err.kind_and_code().1, "location_code_taken");

    let rename = UpdateLocation {
        code: Some("main".to_owned()),
        name: None,
    };
    let err = h
        .service
        .update_location(backup.id, rename, STAFF)
        .await
        .unwrap_err();
    assert!(matches!(err, InventoryError::LocationCodeTaken), "{err}");

    let rename = UpdateLocation {
        code: Some("overflow".to_owned()),
        name: Some("  Overflow shed ".to_owned()),
    };
    let renamed = h
        .service
        .update_location(backup.id, rename, STAFF)
        .await
        .unwrap();
    assert_eq!(
        (renamed.code.as_str(), renamed.name.as_str()),
        ("overflow", "Overflow shed")
    );
    assert_eq!(h.service.get_location(backup.id).await.unwrap(), renamed);

    let first = h.service.list_locations(None, Some(1)).await.unwrap();
    assert_eq!(first.items[0].code, "main");
    let second = h
        .service
        .list_locations(first.next_cursor.as_deref(), Some(1))
        .await
        .unwrap();
    assert_eq!(second.items[0].code, "overflow");
    let third = h
        .service
        .list_locations(second.next_cursor.as_deref(), Some(1))
        .await
        .unwrap();
    assert!(third.items.is_empty() && third.next_cursor.is_none());

    let unknown = LocationId::generate();
    let err = h.service.get_location(unknown).await.unwrap_err();
    assert!(matches!(err, InventoryError::LocationNotFound), "{err}");
    let err = h
        .service
        .update_location(
            unknown,
            UpdateLocation {
                code: None,
                name: Some("x".to_owned()),
            },
            STAFF,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, InventoryError::LocationNotFound), "{err}");

    let created = h.events("inventory.location_created").await;
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].data["code"], "main");
    assert_eq!(created[0].data["created_by"], STAFF);
    let updated = h.events("inventory.location_updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].aggregate_id, backup.id.to_string());
    assert_eq!(updated[0].sequence, 2);
    assert_eq!(updated[0].data["code"], "overflow");
}

async fn location_input_is_validated_with_pointers(h: Harness) {
    let err = h
        .service
        .create_location(
            CreateLocation {
                code: "Main Hall".to_owned(),
                name: "  ".to_owned(),
            },
            STAFF,
        )
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err),
        pairs(&[("/code", "invalid_format"), ("/name", "required")])
    );
    let err = h
        .service
        .create_location(
            CreateLocation {
                code: "x".repeat(65),
                name: "n".repeat(201),
            },
            STAFF,
        )
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err),
        pairs(&[("/code", "too_long"), ("/name", "too_long")])
    );
    let id = h.location("main").await;
    let err = h
        .service
        .update_location(
            id,
            UpdateLocation {
                code: Some(String::new()),
                name: None,
            },
            STAFF,
        )
        .await
        .unwrap_err();
    assert_eq!(violations(&err), pairs(&[("/code", "required")]));
    assert_eq!(h.count("SELECT count(*) FROM stock_locations").await, 1);
}

async fn setting_a_level_creates_it_and_never_goes_below_reserved(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;

    let level = h
        .service
        .set_level(variant, loc, set(25, "stocktake"), STAFF)
        .await
        .unwrap();
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (25, 0, 25)
    );
    h.reserve_one(variant, 5).await;

    let err = h
        .service
        .set_level(variant, loc, set(4, "recount"), STAFF)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            InventoryError::BelowReserved {
                requested: 4,
                reserved: 5
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind_and_code().1, "below_reserved");
    assert_eq!(h.level(variant, loc).await, (25, 5));

    let level = h
        .service
        .set_level(
            variant,
            loc,
            SetLevel {
                on_hand: 5,
                reason: None,
            },
            STAFF,
        )
        .await
        .unwrap();
    assert_eq!((level.on_hand, level.reserved, level.available), (5, 5, 0));

    let err = h
        .service
        .set_level(variant, LocationId::generate(), set(1, "x"), STAFF)
        .await
        .unwrap_err();
    assert!(matches!(err, InventoryError::LocationNotFound), "{err}");

    let ledger = h
        .service
        .list_ledger(Some(variant), None, None)
        .await
        .unwrap();
    let rows: Vec<_> = ledger
        .items
        .iter()
        .map(|e| {
            (
                e.delta_on_hand,
                e.delta_reserved,
                e.on_hand_after,
                e.reserved_after,
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (-20, 0, 5, 5, "set"),
            (0, 5, 25, 5, "reserved"),
            (25, 0, 25, 0, "stocktake"),
        ]
    );
    assert_eq!(ledger.items[0].actor, STAFF);
    assert_eq!(ledger.items[1].actor, "cart-1");
}

async fn adjustments_never_take_stock_below_reserved(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 10).await;
    h.reserve_one(variant, 4).await;

    let level = h
        .service
        .adjust_level(variant, loc, adjust(-6, "damaged"), STAFF)
        .await
        .unwrap();
    assert_eq!((level.on_hand, level.reserved, level.available), (4, 4, 0));

    let err = h
        .service
        .adjust_level(variant, loc, adjust(-1, "damaged"), STAFF)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            InventoryError::InsufficientStock {
                delta: -1,
                on_hand: 4,
                reserved: 4
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind_and_code().1, "insufficient_stock");
    assert_eq!(h.level(variant, loc).await, (4, 4));

    let level = h
        .service
        .adjust_level(variant, loc, adjust(3, "restock"), STAFF)
        .await
        .unwrap();
    assert_eq!((level.on_hand, level.available), (7, 3));

    // No level yet at another location: taking is refused, adding creates it.
    let other = h.location("other").await;
    let err = h
        .service
        .adjust_level(variant, other, adjust(-1, "damaged"), STAFF)
        .await
        .unwrap_err();
    assert!(
        matches!(err, InventoryError::InsufficientStock { .. }),
        "{err}"
    );
    let level = h
        .service
        .adjust_level(variant, other, adjust(2, "restock"), STAFF)
        .await
        .unwrap();
    assert_eq!((level.on_hand, level.reserved), (2, 0));

    let err = h
        .service
        .adjust_level(variant, LocationId::generate(), adjust(1, "restock"), STAFF)
        .await
        .unwrap_err();
    assert!(matches!(err, InventoryError::LocationNotFound), "{err}");
    assert_eq!(h.stock_of(variant).await.on_hand, 9);
}

async fn level_input_is_validated_with_pointers(h: Harness) {
    let variant = VariantId::generate();
    let loc = h.location("main").await;
    let err = h
        .service
        .adjust_level(variant, loc, adjust(0, ""), STAFF)
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err),
        pairs(&[("/delta", "invalid_value"), ("/reason", "required")])
    );
    let err = h
        .service
        .set_level(variant, loc, set(-1, &"r".repeat(201)), STAFF)
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err),
        pairs(&[("/on_hand", "too_small"), ("/reason", "too_long")])
    );
    let err = h
        .service
        .list_ledger(None, Some("not-a-cursor"), Some(0))
        .await
        .unwrap_err();
    assert_eq!(violations(&err), pairs(&[("/cursor", "invalid_cursor")]));
    let err = h
        .service
        .list_ledger(None, None, Some(0))
        .await
        .unwrap_err();
    assert_eq!(violations(&err), pairs(&[("/limit", "too_small")]));
    assert_eq!(h.count("SELECT count(*) FROM stock_levels").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM stock_ledger").await, 0);
}

async fn every_stock_change_writes_a_ledger_row_and_a_stock_changed_event(h: Harness) {
    let variant = VariantId::generate();
    let (a, b) = (h.location("a").await, h.location("b").await);
    h.stock(variant, a, 10).await;
    h.stock(variant, b, 4).await;
    h.service
        .adjust_level(variant, a, adjust(-2, "damaged"), STAFF)
        .await
        .unwrap();
    let r = h.reserve_one(variant, 3).await;
    assert_eq!(r.lines[0].location_id, a);
    h.service.commit(r.id).await.unwrap();

    // set, set, adjust, reserve, commit.
    assert_eq!(h.count("SELECT count(*) FROM stock_ledger").await, 5);
    let events = h.events("inventory.stock_changed").await;
    assert_eq!(events.len(), 5);
    let reasons: Vec<_> = events
        .iter()
        .map(|e| e.data["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        ["stocktake", "stocktake", "damaged", "reserved", "committed"]
    );
    // The level at `a` changed four times: its versions are the sequences 1 to 4.
    let at_a: Vec<_> = events
        .iter()
        .filter(|e| e.data["location_id"] == a.to_string())
        .map(|e| e.sequence)
        .collect();
    assert_eq!(at_a, [1, 2, 3, 4]);

    let last = events.last().unwrap();
    assert_eq!(last.aggregate_id, variant.to_string());
    assert_eq!(last.version, 1);
    assert_eq!(
        last.data,
        serde_json::json!({
            "variant_id": variant.to_string(),
            "location_id": a.to_string(),
            "on_hand": 5,
            "reserved": 0,
            "available": 5,
            "variant_available": 9,
            "reason": "committed",
        })
    );
    let reserve = &events[3].data;
    assert_eq!(reserve["available"], 5);
    assert_eq!(reserve["variant_available"], 9);
    assert_eq!(events[1].data["variant_available"], 14);
}

async fn availability_sums_every_location_and_unknown_variants_have_none(h: Harness) {
    let stocked = VariantId::generate();
    let unknown = VariantId::generate();
    let (a, b) = (h.location("a").await, h.location("b").await);
    h.stock(stocked, a, 6).await;
    h.stock(stocked, b, 5).await;
    h.reserve_one(stocked, 4).await;

    let answer = h.service.availability(&[unknown, stocked]).await.unwrap();
    let got: Vec<_> = answer
        .iter()
        .map(|x| (x.variant_id, x.on_hand, x.reserved, x.available))
        .collect();
    assert_eq!(got, [(unknown, 0, 0, 0), (stocked, 11, 4, 7)]);

    let stock = h.stock_of(stocked).await;
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (11, 4, 7));
    assert_eq!(stock.locations.len(), 2);
    assert!(h.service.availability(&[]).await.unwrap().is_empty());
    let too_many = vec![stocked; 1001];
    let err = h.service.availability(&too_many).await.unwrap_err();
    assert_eq!(violations(&err), pairs(&[("/variant_ids", "too_long")]));
}

async fn the_ledger_pages_newest_first_without_gaps_or_repeats(h: Harness) {
    let variant = VariantId::generate();
    let other = VariantId::generate();
    let loc = h.location("main").await;
    h.stock(variant, loc, 1).await;
    h.stock(other, loc, 1).await;
    for _ in 0..4 {
        h.service
            .adjust_level(variant, loc, adjust(1, "restock"), STAFF)
            .await
            .unwrap();
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = h
            .service
            .list_ledger(Some(variant), cursor.as_deref(), Some(2))
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|e| (e.id, e.on_hand_after)));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let after: Vec<_> = seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(after, [5, 4, 3, 2, 1]);
    let unique: HashSet<_> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), 5);
    let everything = h.service.list_ledger(None, None, None).await.unwrap();
    assert_eq!(everything.items.len(), 6);
}

/// The code and `(pointer, code)` violations of a refused item.
type Refusal = (String, Vec<(String, String)>);

async fn a_bulk_set_writes_what_single_sets_would_and_refuses_item_by_item(h: Harness) {
    let (a, b) = (h.location("a").await, h.location("b").await);
    let [fresh, elsewhere, same, lowered, held, zero, bad] =
        std::array::from_fn::<_, 7, _>(|_| VariantId::generate());
    h.stock(elsewhere, b, 4).await;
    h.stock(same, a, 5).await;
    h.stock(lowered, a, 9).await;
    h.stock(held, a, 6).await;
    h.reserve_one(held, 4).await;
    let ledger_before = h.count("SELECT count(*) FROM stock_ledger").await;
    let events_before = h.events("inventory.stock_changed").await.len();

    let items = [
        (fresh, 7),
        (elsewhere, 3),
        (same, 5),
        (lowered, 2),
        (held, 3),
        (zero, 0),
        (bad, -1),
        (fresh, 8),
    ];
    let outcomes = h
        .service
        .set_levels(a, &items, "import", STAFF)
        .await
        .unwrap();
    let shown: Vec<Result<bool, Refusal>> = outcomes
        .iter()
        .map(|o| match o {
            Ok(changed) => Ok(*changed),
            Err(e) => Err((
                e.kind_and_code().1.to_owned(),
                e.violations()
                    .iter()
                    .map(|v| (v.pointer.clone(), v.code.clone()))
                    .collect(),
            )),
        })
        .collect();
    let refused = |code: &str, at: &[(&str, &str)]| Err((code.to_owned(), pairs(at)));
    assert_eq!(
        shown,
        [
            Ok(true),
            Ok(true),
            Ok(false),
            Ok(true),
            refused("below_reserved", &[]),
            Ok(false),
            refused("validation_failed", &[("/on_hand", "too_small")]),
            refused("validation_failed", &[("/variant_id", "duplicate")]),
        ]
    );

    assert_eq!(h.level(fresh, a).await, (7, 0));
    assert_eq!(h.level(elsewhere, a).await, (3, 0));
    assert_eq!(h.level(lowered, a).await, (2, 0));
    assert_eq!(
        h.level(held, a).await,
        (6, 4),
        "a refused item is untouched"
    );
    assert!(
        h.stock_of(zero).await.locations.is_empty(),
        "0 on a missing level writes nothing"
    );

    // One ledger row and one event per change, as single sets write them.
    assert_eq!(
        h.count("SELECT count(*) FROM stock_ledger").await - ledger_before,
        3
    );
    let events = h.events("inventory.stock_changed").await;
    let new: Vec<_> = events[events_before..].iter().collect();
    assert_eq!(new.len(), 3);
    let by_variant = |v: VariantId| {
        new.iter()
            .find(|e| e.aggregate_id == v.to_string())
            .copied()
            .unwrap()
    };
    assert_eq!(by_variant(fresh).sequence, 1);
    assert_eq!(by_variant(lowered).sequence, 2);
    let spread = &by_variant(elsewhere).data;
    assert_eq!(spread["on_hand"], 3);
    assert_eq!(
        spread["variant_available"], 7,
        "the totals span every location"
    );
    assert_eq!(spread["reason"], "import");
    let page = h
        .service
        .list_ledger(Some(lowered), None, Some(1))
        .await
        .unwrap();
    assert_eq!(page.items[0].delta_on_hand, -7);
    assert_eq!(page.items[0].actor, STAFF);

    // A bad reason or an unknown location refuses the whole batch.
    let err = h
        .service
        .set_levels(a, &[(fresh, 1)], " ", STAFF)
        .await
        .unwrap_err();
    assert_eq!(violations(&err), pairs(&[("/reason", "required")]));
    let err = h
        .service
        .set_levels(LocationId::generate(), &[(fresh, 1)], "import", STAFF)
        .await
        .unwrap_err();
    assert!(matches!(err, InventoryError::LocationNotFound), "{err}");
    assert_eq!(h.level(fresh, a).await, (7, 0));
}
