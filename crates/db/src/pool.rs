//! Pools and transactions for both engines behind one type.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use emporium_kernel::Event;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::group::{Turn, Writer};

/// The head of an insert into the outbox, with its columns in the order of [`outbox_rows`].
macro_rules! outbox_insert {
    () => {
        "INSERT INTO outbox (event_id, event_type, version, aggregate_id, sequence, occurred_at, \
         trace, data)"
    };
}
use crate::{DbError, Migration, migrate};

/// Creates an empty database file readable by its owner only (0600) unless it exists, so SQLite
/// opens it rather than create it with the process's default mode; SQLite gives the `-wal` and
/// `-shm` files the mode of the database file. An existing file keeps its mode.
fn create_private_file(path: &std::path::Path) -> Result<(), DbError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DbError::Query(sqlx::Error::Io(e))),
    }
}

/// Which engine a [`Db`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to open a database.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `sqlite:PATH` or `postgres://…`.
    pub url: String,
    /// Pool size: readers on SQLite (the writer is always one connection), all connections on PostgreSQL.
    pub max_connections: u32,
    /// SQLite `synchronous=FULL` (durable across power loss) when true, `NORMAL` otherwise.
    pub sqlite_synchronous_full: bool,
    /// How long a caller waits for a pooled connection before the request fails with 503.
    pub acquire_timeout: Duration,
    /// Page cache of the SQLite writer connection, in MiB (filled only as pages are used). The
    /// writer walks every index a write touches: a bulk job wants a large one, so pages are not
    /// read back and spilled mid-transaction; a server keeps it small.
    pub sqlite_writer_cache_mib: u32,
    /// WAL size in MiB after which a SQLite commit checkpoints (copies the WAL into the
    /// database). A page written many times between two checkpoints is copied once, so a bulk
    /// job wants a large one; the commit that checkpoints waits for the copy, so a server
    /// keeps it moderate.
    pub sqlite_checkpoint_mib: u32,
}

/// Live pool figures, for the `/metrics` gauges.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// `writer`, `reader` (SQLite) or `primary` (PostgreSQL).
    pub name: &'static str,
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
}

/// A handle to the database: cheap to clone, shared by every context in the process.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Pools,
    // Woken after each commit that wrote outbox rows, so the relay delivers without polling delay.
    outbox_signal: Notify,
    // Held by an outbox relay while it delivers, so relays of one process take turns.
    relay_turn: tokio::sync::Mutex<()>,
}

enum Pools {
    Sqlite { writer: Writer, readers: SqlitePool },
    Postgres(PgPool),
}

impl Db {
    /// Opens (and for SQLite creates) the database named by `options.url`.
    ///
    /// SQLite runs in WAL mode with one writer connection, so writes are serialised in the
    /// process and never fail with "database is locked" against each other.
    pub async fn connect(options: &DbOptions) -> Result<Self, DbError> {
        let url = options.url.as_str();
        let pools = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(2))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Pools::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let sync = if options.sqlite_synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            };
            let base = SqliteConnectOptions::from_str(url)?;
            if !url.contains(":memory:") && !url.contains("mode=memory") {
                create_private_file(base.get_filename())?;
            }
            let base = base
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(sync)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                .pragma("temp_store", "memory");
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(
                    base.clone()
                        .create_if_missing(true)
                        .pragma(
                            "cache_size",
                            format!(
                                "-{}",
                                u64::from(options.sqlite_writer_cache_mib.max(1)) * 1024
                            ),
                        )
                        // `wal_autocheckpoint` counts pages (4 KiB each by default).
                        .pragma(
                            "wal_autocheckpoint",
                            (u64::from(options.sqlite_checkpoint_mib.max(1)) * 256).to_string(),
                        ),
                )
                .await?;
            let readers = SqlitePoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(base.read_only(true))
                .await?;
            Pools::Sqlite {
                writer: Writer::new(
                    writer,
                    options.acquire_timeout,
                    options.sqlite_synchronous_full,
                ),
                readers,
            }
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        let db = Self {
            inner: Arc::new(Inner {
                pools,
                outbox_signal: Notify::new(),
                relay_turn: tokio::sync::Mutex::new(()),
            }),
        };
        if matches!(db.inner.pools, Pools::Sqlite { .. }) && options.sqlite_synchronous_full {
            // The sweep that bounds how long a relaxed commit waits for the disk. It holds the
            // database weakly, and ends with it.
            let weak = Arc::downgrade(&db.inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::group::RELAXED_BOUND / 4);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    if let Pools::Sqlite { writer, .. } = &inner.pools {
                        writer.sync_relaxed(crate::group::RELAXED_BOUND / 2).await;
                    }
                }
            });
        }
        Ok(db)
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        match self.inner.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every pending migration of `sets` (one list per context), in version order.
    pub async fn migrate(&self, sets: &[&[Migration]]) -> Result<(), DbError> {
        match &self.inner.pools {
            Pools::Sqlite { writer, .. } => {
                writer
                    .exclusive(async |conn| Ok(migrate::migrator(sets, false).run(conn).await?))
                    .await?;
            }
            Pools::Postgres(pool) => migrate::migrator(sets, true).run(pool).await?,
        }
        Ok(())
    }

    /// Starts a write transaction. On SQLite it is a savepoint on the one writer connection,
    /// committed with whichever transactions commit at the same time (see the `group` module:
    /// one `fsync` for the group; a commit still returns only once durable).
    ///
    /// Dropping the transaction without [`WriteTx::commit`] rolls it back, outbox rows included.
    #[track_caller]
    pub fn begin_write(&self) -> impl Future<Output = Result<WriteTx, DbError>> + Send + '_ {
        self.begin_with(std::panic::Location::caller(), true)
    }

    /// As [`Db::begin_write`], for a change that may be lost to a power cut if it was made in
    /// the last second (a cart's change; never an order, a payment or a stock change): on
    /// SQLite its commit does not wait for the disk, and is made durable by the next durable
    /// commit or within a second (see the `group` module). A process crash loses nothing. On
    /// PostgreSQL it is a durable transaction.
    #[track_caller]
    pub fn begin_write_relaxed(
        &self,
    ) -> impl Future<Output = Result<WriteTx, DbError>> + Send + '_ {
        self.begin_with(std::panic::Location::caller(), false)
    }

    async fn begin_with(
        &self,
        at: &'static std::panic::Location<'static>,
        durable: bool,
    ) -> Result<WriteTx, DbError> {
        let tx = match &self.inner.pools {
            Pools::Sqlite { writer, .. } => Tx::Sqlite(writer.begin(at, durable).await?),
            Pools::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        };
        Ok(WriteTx {
            tx,
            db: self.clone(),
            wrote_events: false,
            pending_events: Vec::new(),
            pending_writes: Vec::new(),
        })
    }

    /// Starts a [`WriteBatch`]: writes that need no answer, made together at its commit.
    pub fn write_batch(&self) -> WriteBatch {
        WriteBatch {
            db: self.clone(),
            writes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Whether a relaxed commit ([`Db::begin_write_relaxed`]) still waits for the disk: true
    /// for at most about a second after one, on SQLite at `synchronous=FULL`.
    pub async fn relaxed_unsynced(&self) -> bool {
        match &self.inner.pools {
            Pools::Sqlite { writer, .. } => writer.relaxed_unsynced().await,
            Pools::Postgres(_) => false,
        }
    }

    /// Makes every relaxed commit durable now, if the writer is free: what the sweep does
    /// within a second of one (and [`Db::close`] does at the end). True when none is left
    /// waiting for the disk.
    pub async fn sync_relaxed(&self) -> bool {
        match &self.inner.pools {
            Pools::Sqlite { writer, .. } => writer.sync_relaxed(Duration::ZERO).await,
            Pools::Postgres(_) => true,
        }
    }

    /// Starts a [`GuardedWrite`]: inserts and events that are written only if `guard`
    /// applies, together with it.
    pub fn guarded_write(&self, guard: crate::Sql) -> GuardedWrite {
        GuardedWrite {
            db: self.clone(),
            durable: true,
            guard,
            inserts: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A connection for reads (SQLite: from the read-only pool).
    pub async fn read(&self) -> Result<ReadConn, DbError> {
        Ok(match &self.inner.pools {
            Pools::Sqlite { readers, .. } => ReadConn::Sqlite(readers.acquire().await?),
            Pools::Postgres(pool) => ReadConn::Postgres(pool.acquire().await?),
        })
    }

    /// Checks the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.read().await?;
        crate::execute!(&mut conn, sqlx::query("SELECT 1"))?;
        Ok(())
    }

    /// Notified after each commit that recorded events; the relay waits on it.
    pub fn outbox_signal(&self) -> &Notify {
        &self.inner.outbox_signal
    }

    /// The turn an outbox relay holds while it delivers: relays over one `Db` (a server's and a
    /// command's, say) take turns rather than hand the same rows to the consumers at once.
    pub fn relay_turn(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.relay_turn
    }

    /// SQLite: `(transactions, physical commits)` since start; several transactions committing
    /// at once share one physical commit. `None` on PostgreSQL.
    pub fn commit_counts(&self) -> Option<(u64, u64)> {
        match &self.inner.pools {
            Pools::Sqlite { writer, .. } => Some(writer.counts()),
            Pools::Postgres(_) => None,
        }
    }

    /// Current size and idle count of each pool.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        fn stats<DB: sqlx::Database>(name: &'static str, pool: &sqlx::Pool<DB>) -> PoolStats {
            PoolStats {
                name,
                size: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            }
        }
        match &self.inner.pools {
            Pools::Sqlite { writer, readers } => {
                vec![stats("writer", writer.pool()), stats("reader", readers)]
            }
            Pools::Postgres(pool) => vec![stats("primary", pool)],
        }
    }

    /// Closes every pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.inner.pools {
            Pools::Sqlite { writer, readers } => {
                readers.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

enum Tx {
    Sqlite(Turn),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A write transaction. Events recorded with [`WriteTx::record`] commit or vanish with it.
pub struct WriteTx {
    tx: Tx,
    db: Db,
    wrote_events: bool,
    /// Outbox rows recorded and not yet written: they go in together, in order, at the
    /// commit (or a savepoint), one multi-row statement instead of one per event.
    pending_events: Vec<Vec<crate::Arg>>,
    /// Writes left for the commit (see [`WriteTx::write_at_commit`]).
    pending_writes: Vec<crate::Sql>,
}

impl WriteTx {
    /// The engine this transaction runs on.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Records `event` in the outbox as the `sequence`-th event of its aggregate, in this
    /// transaction. The current request's traceparent travels with it. Returns the event id.
    pub async fn record<E: Event>(
        &mut self,
        event: &E,
        sequence: i64,
        occurred_at: OffsetDateTime,
    ) -> Result<Uuid, DbError> {
        let mut ids = self.record_many([(event, sequence)], occurred_at).await?;
        ids.pop()
            .ok_or(DbError::Bulk("an event was recorded without an id"))
    }

    /// Records `events` (each with its sequence) in the outbox in as few statements as the bind
    /// limit allows: what a bulk job writing thousands of events uses instead of
    /// [`WriteTx::record`]. Returns the event ids in order.
    pub async fn record_many<'e, E: Event + 'e>(
        &mut self,
        events: impl IntoIterator<Item = (&'e E, i64)>,
        occurred_at: OffsetDateTime,
    ) -> Result<Vec<Uuid>, DbError> {
        let mut serialized = Vec::new();
        for (event, sequence) in events {
            // The payload goes straight to text: no `serde_json::Value` tree on the way.
            serialized.push((
                event.aggregate_id(),
                sequence,
                serde_json::to_string(event)?,
            ));
        }
        self.record_serialized::<E>(serialized, occurred_at).await
    }

    /// As [`WriteTx::record_many`], for events serialised already: each `(aggregate id,
    /// sequence, payload)`, where the payload must be the JSON of an `E`. A bulk job that holds
    /// the JSON anyway (a product's document is its `product.created` payload) saves
    /// serialising it twice.
    pub async fn record_serialized<E: Event>(
        &mut self,
        events: Vec<(String, i64, String)>,
        occurred_at: OffsetDateTime,
    ) -> Result<Vec<Uuid>, DbError> {
        Ok(outbox_rows::<E>(
            events,
            occurred_at,
            &mut self.pending_events,
        ))
    }

    /// Leaves `statement` to be written with the commit, in one round trip with the other
    /// writes left for it and the recorded events, in the order they were left. For the last
    /// writes of a transaction whose outcome the caller does not need: nothing in the
    /// transaction reads what they write (on PostgreSQL they become one statement, each part
    /// seeing the database as it was before it), and an error they meet fails the commit,
    /// which then keeps nothing. A savepoint writes them too.
    pub fn write_at_commit(&mut self, statement: crate::Sql) {
        self.pending_writes.push(statement);
    }

    /// Leaves the multi-row insert of `rows` (as [`crate::insert_rows`] writes them) to be
    /// written with the commit; see [`WriteTx::write_at_commit`].
    pub fn insert_rows_at_commit(
        &mut self,
        head: &'static str,
        tail: &'static str,
        rows: Vec<Vec<crate::Arg>>,
    ) -> Result<(), DbError> {
        let statements = crate::bulk::insert_statements(self.backend(), head, tail, rows)?;
        self.pending_writes.extend(statements);
        Ok(())
    }

    /// Writes the statements left for the commit and the outbox rows recorded so far, in one
    /// round trip (more only for bulk writes).
    async fn write_pending(&mut self) -> Result<(), DbError> {
        if self.pending_events.is_empty() && self.pending_writes.is_empty() {
            return Ok(());
        }
        let mut statements = std::mem::take(&mut self.pending_writes);
        if !self.pending_events.is_empty() {
            let rows = std::mem::take(&mut self.pending_events);
            statements.extend(outbox_inserts(self.backend(), rows)?);
            self.wrote_events = true;
        }
        crate::Sql::execute_batches(&statements, self).await?;
        Ok(())
    }

    /// Marks a savepoint: a later [`WriteTx::rollback_to_savepoint`] undoes everything after it
    /// (outbox rows included) and keeps what came before. One level: a bulk job wraps each item
    /// in it, so a bad item leaves no trace and the others go on.
    pub async fn savepoint(&mut self) -> Result<(), DbError> {
        self.write_pending().await?;
        crate::execute!(&mut *self, sqlx::query("SAVEPOINT item"))?;
        Ok(())
    }

    /// Keeps what was done since the savepoint.
    pub async fn release_savepoint(&mut self) -> Result<(), DbError> {
        self.write_pending().await?;
        crate::execute!(&mut *self, sqlx::query("RELEASE SAVEPOINT item"))?;
        Ok(())
    }

    /// Undoes what was done since the savepoint, which stays set; the transaction goes on (also
    /// after a failed statement on PostgreSQL).
    pub async fn rollback_to_savepoint(&mut self) -> Result<(), DbError> {
        // Recorded after the savepoint (it wrote those before), so undone with it.
        self.pending_events.clear();
        self.pending_writes.clear();
        crate::execute!(&mut *self, sqlx::query("ROLLBACK TO SAVEPOINT item"))?;
        Ok(())
    }

    /// Commits; wakes the outbox relay when events were recorded.
    pub async fn commit(mut self) -> Result<(), DbError> {
        self.write_pending().await?;
        match self.tx {
            Tx::Sqlite(turn) => turn.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        if self.wrote_events {
            self.db.inner.outbox_signal.notify_one();
        }
        Ok(())
    }

    /// Rolls back explicitly (dropping the transaction does the same, later).
    pub async fn rollback(self) -> Result<(), DbError> {
        match self.tx {
            Tx::Sqlite(turn) => turn.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// The outbox rows of `events` (each `(aggregate id, sequence, payload)`, the payload the JSON
/// of an `E`) appended to `rows`, with the current request's traceparent; their ids in order.
fn outbox_rows<E: Event>(
    events: Vec<(String, i64, String)>,
    occurred_at: OffsetDateTime,
    rows: &mut Vec<Vec<crate::Arg>>,
) -> Vec<Uuid> {
    use crate::Arg;
    let trace = emporium_kernel::trace::current();
    let mut ids = Vec::with_capacity(events.len());
    rows.reserve(events.len());
    for (aggregate_id, sequence, payload) in events {
        let id = Uuid::now_v7();
        ids.push(id);
        rows.push(vec![
            Arg::Uuid(id),
            Arg::Text(E::TYPE.to_owned()),
            Arg::Int32(E::VERSION),
            Arg::Text(aggregate_id),
            Arg::Int(sequence),
            Arg::Time(occurred_at),
            Arg::OptText(trace.clone()),
            Arg::Text(payload),
        ]);
    }
    ids
}

/// The statements inserting outbox `rows`.
fn outbox_inserts(
    backend: Backend,
    rows: Vec<Vec<crate::Arg>>,
) -> Result<Vec<crate::Sql>, DbError> {
    crate::bulk::insert_statements(backend, concat!(outbox_insert!(), " VALUES"), "", rows)
}

/// Writes made together, all or nothing, that need no answer and read nothing: a transaction
/// of [`WriteTx::write_at_commit`] writes and recorded events alone, without the transaction
/// until [`WriteBatch::commit`]. On PostgreSQL a batch that fits one statement is that one
/// statement (atomic on its own: no `BEGIN` and `COMMIT` round trips); on SQLite, and for a
/// larger batch, it is a write transaction.
pub struct WriteBatch {
    db: Db,
    writes: Vec<crate::Sql>,
    events: Vec<Vec<crate::Arg>>,
}

impl WriteBatch {
    /// Adds `statement`; see [`WriteTx::write_at_commit`] for what it may do.
    pub fn write(&mut self, statement: crate::Sql) {
        self.writes.push(statement);
    }

    /// Records events in the outbox with the batch; see [`WriteTx::record_serialized`].
    pub fn record_serialized<E: Event>(
        &mut self,
        events: Vec<(String, i64, String)>,
        occurred_at: OffsetDateTime,
    ) -> Vec<Uuid> {
        outbox_rows::<E>(events, occurred_at, &mut self.events)
    }

    /// Writes the batch; wakes the outbox relay when it recorded events.
    pub async fn commit(self) -> Result<(), DbError> {
        let Self { db, writes, events } = self;
        if let Pools::Postgres(pool) = &db.inner.pools {
            let wrote_events = !events.is_empty();
            let mut statements = writes;
            statements.extend(outbox_inserts(Backend::Postgres, events)?);
            if crate::Sql::fit_one_batch(&statements) {
                let mut conn = pool.acquire().await?;
                crate::Sql::execute_batch(&statements, Conn::Postgres(&mut conn)).await?;
                if wrote_events {
                    db.inner.outbox_signal.notify_one();
                }
                return Ok(());
            }
            let mut tx = db.begin_write().await?;
            tx.pending_writes = statements;
            tx.wrote_events = wrote_events;
            return tx.commit().await;
        }
        let mut tx = db.begin_write().await?;
        tx.pending_writes = writes;
        tx.pending_events = events;
        tx.commit().await
    }
}

/// A conditional write and the rows that go with it: the `guard` (an `UPDATE` or `INSERT`
/// whose rows affected say whether it applied, such as an update conditional on a version)
/// and inserts and events written only when it applied, all or nothing. On PostgreSQL it is
/// one statement (the guard a data-modifying `WITH` clause the inserts select from), without
/// `BEGIN` and `COMMIT` round trips; on SQLite a write transaction.
///
/// As in a [`WriteBatch`], nothing in it reads what another part writes, and an error (a
/// duplicate key in an insert) keeps nothing.
pub struct GuardedWrite {
    db: Db,
    /// False for a relaxed write (see [`Db::begin_write_relaxed`]).
    durable: bool,
    guard: crate::Sql,
    /// Each insert's head (`INSERT INTO t (a, b)`) and its rows.
    inserts: Vec<(&'static str, Vec<Vec<crate::Arg>>)>,
    events: Vec<Vec<crate::Arg>>,
}

impl GuardedWrite {
    /// Makes it relaxed, as [`Db::begin_write_relaxed`] says: on SQLite its commit does not
    /// wait for the disk.
    #[must_use]
    pub fn relaxed(mut self) -> Self {
        self.durable = false;
        self
    }

    /// Adds an insert of `row` into what `head` names (`INSERT INTO t (a, b)`, the columns in
    /// the order of the row's values), made only when the guard applies.
    pub fn insert(&mut self, head: &'static str, row: Vec<crate::Arg>) {
        self.inserts.push((head, vec![row]));
    }

    /// Records `event` in the outbox as the `sequence`-th event of its aggregate, only when
    /// the guard applies.
    pub fn record<E: Event>(
        &mut self,
        event: &E,
        sequence: i64,
        occurred_at: OffsetDateTime,
    ) -> Result<Uuid, DbError> {
        let payload = serde_json::to_string(event)?;
        let mut ids = outbox_rows::<E>(
            vec![(event.aggregate_id(), sequence, payload)],
            occurred_at,
            &mut self.events,
        );
        ids.pop()
            .ok_or(DbError::Bulk("an event was recorded without an id"))
    }

    /// Writes it: true when the guard applied (and with it everything else), false when it
    /// did not (and nothing was written). Wakes the outbox relay when it recorded events.
    pub async fn commit(self) -> Result<bool, DbError> {
        let Self {
            db,
            durable,
            guard,
            mut inserts,
            events,
        } = self;
        let wrote_events = !events.is_empty();
        if !events.is_empty() {
            inserts.push((outbox_insert!(), events));
        }
        if inserts.len() > WITH_NAMES.len() {
            return Err(DbError::Bulk("a guarded write holds at most eight inserts"));
        }
        let applied = if let Pools::Postgres(pool) = &db.inner.pools {
            let mut sql = crate::Sql::default();
            sql.push("WITH g AS (").append(guard).push(" RETURNING 1)");
            for (i, (head, rows)) in inserts.into_iter().enumerate() {
                sql.push(", ")
                    .push(WITH_NAMES[i])
                    .push(" AS (")
                    .push(head)
                    .push(" SELECT * FROM (VALUES ")
                    .push_rows(rows)
                    .push(") AS v WHERE EXISTS (SELECT 1 FROM g))");
            }
            sql.push(" SELECT count(*) FROM g");
            let mut conn = pool.acquire().await?;
            sql.fetch_count(Conn::Postgres(&mut conn)).await? > 0
        } else {
            let mut tx = db
                .begin_with(std::panic::Location::caller(), durable)
                .await?;
            if guard.execute(&mut tx).await? == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            for (head, rows) in inserts {
                let mut sql = crate::Sql::default();
                sql.push(head).push(" VALUES ").push_rows(rows);
                tx.pending_writes.push(sql);
            }
            tx.commit().await?;
            true
        };
        if applied && wrote_events {
            db.inner.outbox_signal.notify_one();
        }
        Ok(applied)
    }
}

/// Names of the `WITH` clauses of a guarded write's inserts (one each; a guarded write holds a
/// few).
const WITH_NAMES: [&str; 8] = ["i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7"];

/// A pooled connection for reads.
pub enum ReadConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// The concrete connection of the engine in use; see [`crate::run!`].
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

impl Conn<'_> {
    /// The engine of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

impl<'a> From<&'a mut WriteTx> for Conn<'a> {
    fn from(tx: &'a mut WriteTx) -> Self {
        match &mut tx.tx {
            Tx::Sqlite(t) => Conn::Sqlite(
                t.conn()
                    .expect("a transaction holds the writer connection until it ends"),
            ),
            Tx::Postgres(t) => Conn::Postgres(&mut *t),
        }
    }
}

impl<'a> From<&'a mut ReadConn> for Conn<'a> {
    fn from(conn: &'a mut ReadConn) -> Self {
        match conn {
            ReadConn::Sqlite(c) => Conn::Sqlite(&mut *c),
            ReadConn::Postgres(c) => Conn::Postgres(&mut *c),
        }
    }
}
