//! The inbox (`mark_all_handled`): which events of a batch are new, on SQLite and (when
//! `EMPORIUM_TEST_POSTGRES_URL` is set) PostgreSQL.

// Test code may panic on the unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use emporium_db::{Db, mark_all_handled};
use time::OffsetDateTime;
use uuid::Uuid;

async fn mark(db: &Db, consumer: &str, ids: &[Uuid]) -> Vec<bool> {
    let mut tx = db.begin_write().await.unwrap();
    let fresh = mark_all_handled(&mut tx, consumer, ids, OffsetDateTime::now_utc())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    fresh
}

async fn check(db: &Db) {
    let [a, b, c] = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    // An id twice in one batch is new the first time only.
    assert_eq!(mark(db, "one", &[a, b, a]).await, [true, true, false]);
    assert_eq!(mark(db, "one", &[b, c]).await, [false, true]);
    // Each consumer has its own record.
    assert_eq!(mark(db, "two", &[a, c]).await, [true, true]);
    // A rolled-back batch records nothing.
    let d = Uuid::now_v7();
    let mut tx = db.begin_write().await.unwrap();
    let fresh = mark_all_handled(&mut tx, "one", &[d], OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(fresh, [true]);
    drop(tx);
    assert_eq!(mark(db, "one", &[d, a]).await, [true, false]);
    // More than one statement's worth (256 rows each), the known ones in between.
    let mut many: Vec<Uuid> = (0..700).map(|_| Uuid::now_v7()).collect();
    many.insert(300, b);
    many.insert(600, c);
    let fresh = mark(db, "one", &many).await;
    assert_eq!(fresh.iter().filter(|n| **n).count(), 700);
    assert!(!fresh[300] && !fresh[600]);
    assert!(mark(db, "one", &many).await.iter().all(|n| !n));
    // Batches marking the same events at once: each event is new to exactly one of them.
    let shared: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let (db, shared) = (db.clone(), shared.clone());
            tokio::spawn(async move { mark(&db, "race", &shared).await })
        })
        .collect();
    let mut new_to = vec![0; shared.len()];
    for run in runs {
        for (i, new) in run.await.unwrap().into_iter().enumerate() {
            new_to[i] += usize::from(new);
        }
    }
    assert!(new_to.iter().all(|n| *n == 1), "{new_to:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_tells_new_events_from_handled_ones_on_sqlite() {
    let (_dir, db) = common::sqlite().await;
    check(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_tells_new_events_from_handled_ones_on_postgres() {
    let Some(pg) =
        common::postgres("the_inbox_tells_new_events_from_handled_ones_on_postgres").await
    else {
        return;
    };
    check(&pg.db).await;
    pg.drop().await;
}
