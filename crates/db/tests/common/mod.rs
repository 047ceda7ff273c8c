//! Databases for the storage tests: a SQLite file, and (when `EMPORIUM_TEST_POSTGRES_URL` is set)
//! a fresh PostgreSQL database of its own, both migrated.

use std::time::Duration;

use emporium_db::{Db, DbOptions};
use sqlx::Connection as _;

/// A migrated database at `url`.
pub async fn connect(url: String) -> Db {
    let db = Db::connect(&DbOptions {
        url,
        max_connections: 4,
        sqlite_synchronous_full: false,
        acquire_timeout: Duration::from_secs(60),
        sqlite_writer_cache_mib: 4,
        sqlite_checkpoint_mib: 40,
    })
    .await
    .unwrap();
    db.migrate(&[emporium_db::MIGRATIONS]).await.unwrap();
    db
}

/// A migrated SQLite database in a folder of its own (kept while the folder lives).
pub async fn sqlite() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = connect(format!("sqlite:{}", dir.path().join("t.db").display())).await;
    (dir, db)
}

/// A PostgreSQL database created for one test and dropped by [`PgDatabase::drop`].
pub struct PgDatabase {
    admin: sqlx::PgConnection,
    name: String,
    pub db: Db,
}

/// A fresh migrated PostgreSQL database for `test`, or `None` (saying so loudly) when
/// `EMPORIUM_TEST_POSTGRES_URL` is not set; with `EMPORIUM_TEST_REQUIRE_POSTGRES=1` a missing
/// URL fails the test instead.
pub async fn postgres(test: &str) -> Option<PgDatabase> {
    let admin = emporium_db::testing::postgres_admin_url(test)?;
    let name = format!("e_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.split('?').next().unwrap_or(&admin);
    let (server, _) = base.rsplit_once('/').unwrap();
    let db = connect(format!("{server}/{name}")).await;
    Some(PgDatabase {
        admin: conn,
        name,
        db,
    })
}

impl PgDatabase {
    /// Closes the pool and drops the database.
    pub async fn drop(mut self) {
        self.db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .unwrap();
    }
}
