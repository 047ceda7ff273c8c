//! Group commit on SQLite: concurrent transactions share physical commits, yet each keeps
//! its own outcome: a commit is visible to readers once it returns, a rollback or a dropped
//! transaction takes back only its own changes, a failed statement only its transaction's.

use std::sync::Arc;
use std::time::Duration;

use emporium_db::{Db, DbOptions, execute};

/// A handle on the database file in `dir` (created when missing).
async fn open_existing(dir: &tempfile::TempDir) -> Db {
    Db::connect(&DbOptions {
        url: format!("sqlite:{}", dir.path().join("group.db").display()),
        max_connections: 4,
        sqlite_synchronous_full: true,
        acquire_timeout: Duration::from_secs(30),
        sqlite_writer_cache_mib: 4,
        sqlite_checkpoint_mib: 40,
    })
    .await
    .expect("database opens")
}

/// A new database in `dir` with an `items` table.
async fn open(dir: &tempfile::TempDir) -> Db {
    let db = open_existing(dir).await;
    let mut tx = db.begin_write().await.expect("begin");
    execute!(
        &mut tx,
        sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE)")
    )
    .expect("table");
    tx.commit().await.expect("commit");
    db
}

async fn labels(db: &Db) -> Vec<String> {
    let mut conn = db.read().await.expect("reader");
    emporium_db::run!(&mut conn, |c| sqlx::query_scalar(
        "SELECT label FROM items ORDER BY label"
    )
    .fetch_all(c)
    .await)
    .expect("select")
}

async fn insert(db: &Db, label: &str) -> Result<emporium_db::WriteTx, emporium_db::DbError> {
    let mut tx = db.begin_write().await?;
    execute!(
        &mut tx,
        sqlx::query("INSERT INTO items (label) VALUES ($1)").bind(label.to_owned())
    )?;
    Ok(tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_share_physical_commits_and_each_is_visible_when_it_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Arc::new(open(&dir).await);
    let (logical_before, physical_before) = db.commit_counts().expect("sqlite");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let label = format!("item-{i:03}");
            let tx = insert(&db, &label).await.expect("insert");
            tx.commit().await.expect("commit");
            // Read-your-writes from another connection: the commit has returned, so the
            // row is durable and visible.
            let mut conn = db.read().await.expect("reader");
            let found: i64 = emporium_db::run!(&mut conn, |c| sqlx::query_scalar(
                "SELECT count(*) FROM items WHERE label = $1"
            )
            .bind(&label)
            .fetch_one(c)
            .await)
            .expect("select");
            assert_eq!(found, 1, "{label} is not visible after its commit returned");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(labels(&db).await.len(), 200);
    let (logical, physical) = db.commit_counts().expect("sqlite");
    assert_eq!(
        logical - logical_before,
        200,
        "every transaction is counted once"
    );
    assert!(
        physical - physical_before < 200,
        "200 concurrent commits took {} physical commits: none was shared",
        physical - physical_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollbacks_drops_and_failed_statements_take_back_only_their_own_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Arc::new(open(&dir).await);
    insert(&db, "taken")
        .await
        .expect("insert")
        .commit()
        .await
        .expect("commit");
    let mut tasks = Vec::new();
    for i in 0..120 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let label = format!("item-{i:03}");
            match i % 4 {
                // Kept.
                0 => insert(&db, &label).await?.commit().await?,
                // Rolled back explicitly.
                1 => insert(&db, &label).await?.rollback().await?,
                // Dropped without commit, as an early return does.
                2 => drop(insert(&db, &label).await?),
                // A second statement fails (duplicate): the whole transaction goes.
                _ => {
                    let mut tx = insert(&db, &label).await?;
                    let failed = execute!(
                        &mut tx,
                        sqlx::query("INSERT INTO items (label) VALUES ('taken')")
                    );
                    assert!(
                        failed.is_err_and(|e| emporium_db::DbError::from(e).is_unique_violation())
                    );
                    drop(tx);
                }
            }
            Ok::<_, emporium_db::DbError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("no storage error");
    }
    // The writer settles dropped transactions in the background: the next one sees it done.
    insert(&db, "zz-last")
        .await
        .expect("insert")
        .commit()
        .await
        .expect("commit");
    let mut expected: Vec<String> = (0..120)
        .filter(|i| i % 4 == 0)
        .map(|i| format!("item-{i:03}"))
        .collect();
    expected.push("taken".into());
    expected.push("zz-last".into());
    assert_eq!(labels(&db).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transaction_does_not_hold_the_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(&dir).await;
    drop(insert(&db, "dropped").await.expect("insert"));
    // Another process (a second handle on the file) can write once the drop is settled.
    let other = open_existing(&dir).await;
    let tx = tokio::time::timeout(Duration::from_secs(10), insert(&other, "other"))
        .await
        .expect("the writer lock was given back")
        .expect("insert");
    tx.commit().await.expect("commit");
    assert_eq!(labels(&db).await, vec!["other".to_owned()]);
}

/// The writer connection's `synchronous` setting as a transaction sees it (1 NORMAL, 2 FULL).
async fn synchronous(tx: &mut emporium_db::WriteTx) -> i64 {
    emporium_db::run!(&mut *tx, |c| sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(c)
        .await)
    .expect("pragma")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relaxed_commits_skip_the_disk_wait_and_are_synced_by_the_next_durable_one_or_the_sweep() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(&dir).await;

    // A relaxed transaction runs at NORMAL and leaves its commit waiting for the disk.
    let mut tx = db.begin_write_relaxed().await.expect("begin");
    assert_eq!(synchronous(&mut tx).await, 1);
    execute!(
        &mut tx,
        sqlx::query("INSERT INTO items (label) VALUES ('cart')")
    )
    .expect("insert");
    tx.commit().await.expect("commit");
    assert!(db.relaxed_unsynced().await);

    // A durable transaction runs at FULL, and its commit syncs the relaxed one before it.
    let mut tx = db.begin_write().await.expect("begin");
    assert_eq!(synchronous(&mut tx).await, 2);
    execute!(
        &mut tx,
        sqlx::query("INSERT INTO items (label) VALUES ('order')")
    )
    .expect("insert");
    tx.commit().await.expect("commit");
    assert!(!db.relaxed_unsynced().await);

    // Relaxed and durable transactions at once: all commit, each group at the setting its
    // transactions need (a durable one never waits in a relaxed group).
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let db = db.clone();
        tasks.spawn(async move {
            let durable = i % 3 == 0;
            let mut tx = if durable {
                db.begin_write().await
            } else {
                db.begin_write_relaxed().await
            }
            .expect("begin");
            let setting = synchronous(&mut tx).await;
            execute!(
                &mut tx,
                sqlx::query("INSERT INTO items (label) VALUES ($1)").bind(format!("mixed-{i}"))
            )
            .expect("insert");
            tx.commit().await.expect("commit");
            (durable, setting)
        });
    }
    for (durable, setting) in tasks.join_all().await {
        if durable {
            assert_eq!(setting, 2, "a durable transaction ran at NORMAL");
        }
    }
    assert_eq!(labels(&db).await.len(), 42);

    // With no durable commit after it, the sweep's pass syncs a relaxed commit.
    let mut tx = db.begin_write_relaxed().await.expect("begin");
    execute!(
        &mut tx,
        sqlx::query("INSERT INTO items (label) VALUES ('late')")
    )
    .expect("insert");
    tx.commit().await.expect("commit");
    assert!(db.relaxed_unsynced().await);
    assert!(db.sync_relaxed().await);
    assert!(!db.relaxed_unsynced().await);

    // A process that stops without closing loses no relaxed commit (WAL at NORMAL).
    let mut tx = db.begin_write_relaxed().await.expect("begin");
    execute!(
        &mut tx,
        sqlx::query("INSERT INTO items (label) VALUES ('kept')")
    )
    .expect("insert");
    tx.commit().await.expect("commit");
    drop(db);
    let reopened = open_existing(&dir).await;
    assert!(labels(&reopened).await.contains(&"kept".to_owned()));
}
