//! Writes left for the commit (`WriteTx::write_at_commit`): written with the commit and the
//! recorded events in one batch, all or nothing, on SQLite and (when
//! `EMPORIUM_TEST_POSTGRES_URL` is set) PostgreSQL.

// Test code may panic on the unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use emporium_db::{Arg, Db, Sql, execute};

#[derive(serde::Serialize)]
struct Labelled {
    label: String,
}

impl emporium_kernel::Event for Labelled {
    const TYPE: &'static str = "test.labelled";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.label.clone()
    }
}

/// `db` with the table the checks write to.
async fn with_items(db: Db) -> Db {
    let mut tx = db.begin_write().await.unwrap();
    execute!(
        &mut tx,
        sqlx::query("CREATE TABLE items (id BIGINT PRIMARY KEY, label TEXT NOT NULL UNIQUE)")
    )
    .unwrap();
    tx.commit().await.unwrap();
    db
}

async fn labels(db: &Db) -> Vec<String> {
    let mut conn = db.read().await.unwrap();
    emporium_db::run!(&mut conn, |c| sqlx::query_scalar(
        "SELECT label FROM items ORDER BY label"
    )
    .fetch_all(c)
    .await)
    .unwrap()
}

fn insert(id: i64, label: &str) -> Sql {
    Sql::statement(
        "INSERT INTO items (id, label) VALUES ($1, $2)",
        vec![Arg::Int(id), Arg::Text(label.to_owned())],
    )
}

async fn check(db: &Db) {
    // Written with the commit, with the events, in one batch; a placeholder may recur.
    let mut tx = db.begin_write().await.unwrap();
    tx.write_at_commit(insert(1, "a"));
    tx.record(
        &Labelled { label: "a".into() },
        1,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    tx.write_at_commit(Sql::statement(
        "INSERT INTO items (id, label) SELECT $1, $2 WHERE NOT EXISTS \
         (SELECT 1 FROM items WHERE label = $2 OR id = $1)",
        vec![Arg::Int(2), Arg::Text("b".into())],
    ));
    assert!(
        labels(db).await.is_empty(),
        "nothing is written before the commit"
    );
    tx.commit().await.unwrap();
    assert_eq!(labels(db).await, ["a", "b"]);
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), 1);

    // A statement that fails fails the commit, and nothing of the transaction stays.
    let mut tx = db.begin_write().await.unwrap();
    tx.write_at_commit(insert(3, "c"));
    tx.record(
        &Labelled { label: "c".into() },
        1,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    tx.write_at_commit(insert(4, "a"));
    assert!(
        tx.commit().await.is_err(),
        "a duplicate label must fail the commit"
    );
    assert_eq!(labels(db).await, ["a", "b"]);
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), 1);

    // Rolling back to a savepoint drops what was left after it; what came before stays.
    let mut tx = db.begin_write().await.unwrap();
    tx.write_at_commit(insert(5, "e"));
    tx.savepoint().await.unwrap();
    tx.write_at_commit(insert(6, "f"));
    tx.rollback_to_savepoint().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(labels(db).await, ["a", "b", "e"]);

    // Dropped without commit: nothing left for the commit is written.
    let mut tx = db.begin_write().await.unwrap();
    tx.write_at_commit(insert(7, "g"));
    drop(tx);
    assert_eq!(labels(db).await, ["a", "b", "e"]);

    // A bulk batch larger than one statement's bind limit goes in several.
    let mut tx = db.begin_write().await.unwrap();
    for i in 0..9_000 {
        tx.write_at_commit(insert(100 + i, &format!("bulk-{i:05}")));
    }
    tx.commit().await.unwrap();
    assert_eq!(labels(db).await.len(), 3 + 9_000);

    // A write batch: all or nothing, its events with it, also when larger than one round trip.
    let labelled = |label: &str| {
        (
            label.to_owned(),
            1,
            serde_json::to_string(&Labelled {
                label: label.to_owned(),
            })
            .unwrap(),
        )
    };
    let now = time::OffsetDateTime::now_utc();
    let pending = emporium_db::count_pending(db).await.unwrap();
    let mut batch = db.write_batch();
    batch.write(insert(20_000, "h"));
    batch.write(insert(20_001, "a"));
    batch.record_serialized::<Labelled>(vec![labelled("h")], now);
    assert!(
        batch.commit().await.is_err(),
        "a duplicate label must fail the batch"
    );
    assert_eq!(labels(db).await.len(), 3 + 9_000);
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), pending);
    let mut batch = db.write_batch();
    batch.write(insert(20_000, "h"));
    batch.record_serialized::<Labelled>(vec![labelled("h")], now);
    assert_eq!(
        labels(db).await.len(),
        3 + 9_000,
        "nothing before the commit"
    );
    batch.commit().await.unwrap();
    assert!(labels(db).await.contains(&"h".to_owned()));
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), pending + 1);
    for (size, fails) in [(500, true), (500, false)] {
        let before = labels(db).await.len();
        let mut batch = db.write_batch();
        for i in 0..size {
            let i = i64::from(i);
            batch.write(insert(30_000 + i, &format!("batch-{i:04}")));
        }
        if fails {
            batch.write(insert(40_000, "h"));
        }
        assert_eq!(batch.commit().await.is_err(), fails);
        let written = if fails {
            0
        } else {
            usize::try_from(size).unwrap()
        };
        assert_eq!(labels(db).await.len(), before + written);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_left_for_the_commit_go_with_it_all_or_nothing_on_sqlite() {
    let (_dir, db) = common::sqlite().await;
    check(&with_items(db).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_left_for_the_commit_go_with_it_all_or_nothing_on_postgres() {
    let Some(pg) = common::postgres("writes_left_for_the_commit…_on_postgres").await else {
        return;
    };
    check(&with_items(pg.db.clone()).await).await;
    pg.drop().await;
}
