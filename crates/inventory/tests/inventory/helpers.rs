//! The test harness: a migrated database, the service over it and a clock moved by hand.

use std::sync::Arc;
use std::time::Duration;

use emporium_db::{Db, DbOptions, run};
use emporium_inventory::{
    CreateLocation, InventoryService, Reservation, ReserveLine, SetLevel, VariantStock,
};
use emporium_kernel::ids::{LocationId, VariantId};
use emporium_kernel::{Clock, Envelope, ManualClock};
use time::OffsetDateTime;

/// Runs each named test body against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Harness::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(h) = $crate::helpers::Harness::postgres().await {
                        super::$name(h).await;
                    }
                }
            }
        )*
    };
}

/// Where every test's clock starts.
pub fn start_time() -> OffsetDateTime {
    // 2026-11-24T10:00:00Z
    OffsetDateTime::from_unix_timestamp(1_795_514_400).unwrap()
}

/// The staff subject of the tests' writes.
pub const STAFF: &str = "usr_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f";

/// A migrated database, the service over it and its clock.
pub struct Harness {
    pub db: Db,
    pub service: Arc<InventoryService>,
    pub clock: Arc<ManualClock>,
    _dir: Option<tempfile::TempDir>,
    // (admin url, database name) of a PostgreSQL database to drop at the end.
    pg_database: Option<(String, String)>,
}

impl Harness {
    /// A harness on a fresh SQLite file.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("inventory.db").display());
        Self::open(url, Some(dir), None).await
    }

    /// A harness on a fresh PostgreSQL database, or `None` (said loudly) when PostgreSQL is not
    /// configured. Under `EMPORIUM_TEST_REQUIRE_POSTGRES=1` a missing URL fails the test.
    pub async fn postgres() -> Option<Self> {
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        let admin = emporium_db::testing::postgres_admin_url(&test)?;
        let (url, name) = fresh_postgres_database(&admin).await;
        Some(Self::open(url, None, Some((admin, name))).await)
    }

    async fn open(
        url: String,
        dir: Option<tempfile::TempDir>,
        pg_database: Option<(String, String)>,
    ) -> Self {
        let db = Db::connect(&DbOptions {
            url,
            max_connections: 8,
            sqlite_synchronous_full: false,
            acquire_timeout: Duration::from_secs(120),
            sqlite_writer_cache_mib: 8,
            sqlite_checkpoint_mib: 40,
        })
        .await
        .unwrap();
        db.migrate(&[emporium_db::MIGRATIONS, emporium_inventory::MIGRATIONS])
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(start_time()));
        let service = Arc::new(InventoryService::new(db.clone(), clock.clone()));
        Self {
            db,
            service,
            clock,
            _dir: dir,
            pg_database,
        }
    }

    /// The clock's "now".
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Creates a location with `code`.
    pub async fn location(&self, code: &str) -> LocationId {
        let cmd = CreateLocation {
            code: code.to_owned(),
            name: format!("Location {code}"),
        };
        self.service.create_location(cmd, STAFF).await.unwrap().id
    }

    /// Sets the level of `variant` at `location` to `on_hand`.
    pub async fn stock(&self, variant: VariantId, location: LocationId, on_hand: i64) {
        let cmd = SetLevel {
            on_hand,
            reason: Some("stocktake".to_owned()),
        };
        self.service
            .set_level(variant, location, cmd, STAFF)
            .await
            .unwrap();
    }

    /// Reserves `quantity` of `variant` for 15 minutes.
    pub async fn reserve_one(&self, variant: VariantId, quantity: i64) -> Reservation {
        let line = ReserveLine {
            variant_id: variant,
            quantity,
        };
        self.service
            .reserve(&[line], time::Duration::minutes(15), "cart-1")
            .await
            .unwrap()
    }

    /// The stock of `variant`.
    pub async fn stock_of(&self, variant: VariantId) -> VariantStock {
        self.service.variant_stock(variant).await.unwrap()
    }

    /// `(on_hand, reserved)` of `variant` at `location`, zeros without a level.
    pub async fn level(&self, variant: VariantId, location: LocationId) -> (i64, i64) {
        self.stock_of(variant)
            .await
            .locations
            .iter()
            .find(|l| l.location_id == location)
            .map_or((0, 0), |l| (l.on_hand, l.reserved))
    }

    /// Every recorded event of `event_type`, oldest first.
    pub async fn events(&self, event_type: &str) -> Vec<Envelope> {
        emporium_db::pending_outbox(&self.db, 100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.envelope)
            .filter(|e| e.event_type == event_type)
            .collect()
    }

    /// The single number `sql` selects.
    pub async fn count(&self, sql: &'static str) -> i64 {
        let mut conn = self.db.read().await.unwrap();
        run!(&mut conn, |c| sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(c)
            .await
            .unwrap())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg_database.take() else {
            return;
        };
        // Drop runs outside async code (also while a failed test unwinds): use a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(drop_postgres_database(&admin, &name));
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop a test database");
        }
    }
}

/// Creates an empty database on the server of `admin_url`; returns its URL and name.
pub async fn fresh_postgres_database(admin_url: &str) -> (String, String) {
    use sqlx::Connection;
    let name = format!("e_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let (server, _) = base.rsplit_once('/').unwrap();
    (format!("{server}/{name}"), name)
}

/// Drops a test database, disconnecting whoever still uses it.
pub async fn drop_postgres_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}
