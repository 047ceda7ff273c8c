//! Guarded writes (`Db::guarded_write`): a conditional write and the inserts and events that go
//! with it, all written when the guard applies and none when it does not, also under a race,
//! on SQLite and (when `EMPORIUM_TEST_POSTGRES_URL` is set) PostgreSQL.

// Test code may panic on the unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use emporium_db::{Arg, Db, Sql, execute};

#[derive(serde::Serialize)]
struct Moved {
    account: String,
}

impl emporium_kernel::Event for Moved {
    const TYPE: &'static str = "test.moved";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.account.clone()
    }
}

/// `db` with an account at version 1 and a table of what each move wrote.
async fn with_account(db: Db) -> Db {
    let mut tx = db.begin_write().await.unwrap();
    execute!(
        &mut tx,
        sqlx::query("CREATE TABLE accounts (id BIGINT PRIMARY KEY, version BIGINT NOT NULL)")
    )
    .unwrap();
    execute!(
        &mut tx,
        sqlx::query("CREATE TABLE moves (id BIGINT PRIMARY KEY, note TEXT NOT NULL UNIQUE, at TIMESTAMPTZ NOT NULL)")
    )
    .unwrap();
    execute!(
        &mut tx,
        sqlx::query("INSERT INTO accounts (id, version) VALUES (1, 1)")
    )
    .unwrap();
    tx.commit().await.unwrap();
    db
}

/// Moves account 1 from `version` to the next, writing move `id` with `note` and one event.
async fn move_from(
    db: &Db,
    version: i64,
    id: i64,
    note: &str,
) -> Result<bool, emporium_db::DbError> {
    let now = time::OffsetDateTime::now_utc();
    let mut write = db.guarded_write(Sql::statement(
        "UPDATE accounts SET version = version + 1 WHERE id = $1 AND version = $2",
        vec![Arg::Int(1), Arg::Int(version)],
    ));
    write.insert(
        "INSERT INTO moves (id, note, at)",
        vec![Arg::Int(id), Arg::Text(note.to_owned()), Arg::Time(now)],
    );
    write
        .record(
            &Moved {
                account: "1".into(),
            },
            version + 1,
            now,
        )
        .unwrap();
    write.commit().await
}

async fn version(db: &Db) -> i64 {
    let mut conn = db.read().await.unwrap();
    emporium_db::run!(&mut conn, |c| sqlx::query_scalar(
        "SELECT version FROM accounts WHERE id = 1"
    )
    .fetch_one(c)
    .await)
    .unwrap()
}

async fn moves(db: &Db) -> i64 {
    let mut conn = db.read().await.unwrap();
    emporium_db::run!(&mut conn, |c| sqlx::query_scalar(
        "SELECT count(*) FROM moves"
    )
    .fetch_one(c)
    .await)
    .unwrap()
}

async fn check(db: &Db) {
    // The guard applies: the update, the insert and the event, together.
    assert!(move_from(db, 1, 1, "first").await.unwrap());
    assert_eq!((version(db).await, moves(db).await), (2, 1));
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), 1);

    // The guard does not apply (a stale version): nothing is written.
    assert!(!move_from(db, 1, 2, "stale").await.unwrap());
    assert_eq!((version(db).await, moves(db).await), (2, 1));
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), 1);

    // An insert fails (a duplicate note): the guard's update is not kept either.
    assert!(move_from(db, 2, 3, "first").await.is_err());
    assert_eq!((version(db).await, moves(db).await), (2, 1));
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), 1);

    // Sixteen racing moves from the same version: exactly one applies, and only its rows stay.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let db = db.clone();
        tasks.spawn(async move { move_from(&db, 2, 100 + i, &format!("race-{i}")).await });
    }
    let racing: Vec<_> = tasks.join_all().await;
    let applied = racing.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(applied, 1, "{racing:?}");
    assert!(racing.iter().all(Result::is_ok), "{racing:?}");
    assert_eq!((version(db).await, moves(db).await), (3, 2));
    assert_eq!(emporium_db::count_pending(db).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_write_keeps_all_or_nothing_on_sqlite() {
    let (_dir, db) = common::sqlite().await;
    check(&with_account(db).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_write_keeps_all_or_nothing_on_postgres() {
    let Some(pg) = common::postgres("a_guarded_write_keeps_all_or_nothing_on_postgres").await
    else {
        return;
    };
    check(&with_account(pg.db.clone()).await).await;
    pg.drop().await;
}
