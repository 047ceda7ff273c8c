//! Group commit for the SQLite writer.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for the disk (an
//! `fsync` of the WAL). Committing each transaction on its own caps a busy store at a few
//! hundred commits per second, whatever the work inside them. So, as databases with a
//! write-ahead log do, concurrent transactions share one physical commit:
//!
//! - A [`WriteTx`](crate::WriteTx) is a *logical* transaction: a savepoint inside a physical
//!   `BEGIN IMMEDIATE` transaction that the writer connection keeps open.
//! - A logical commit releases its savepoint. If another transaction is waiting for the writer,
//!   the committer hands the open physical transaction over and waits; otherwise (or once
//!   [`MAX_GROUP`] commits wait) it commits physically and wakes every waiting committer with the
//!   outcome. So a lone transaction commits at once, as before, and under load one `fsync`
//!   covers a group.
//! - A commit returns only once its changes are durable: a caller never acknowledges what a
//!   power cut could take back. If the physical commit fails, every transaction of the group
//!   gets the error, and none of their changes is kept.
//! - A logical rollback (or a transaction dropped without commit) rolls back to its savepoint:
//!   the others of the group keep their changes.
//!
//! - A *relaxed* transaction ([`crate::Db::begin_write_relaxed`]: a cart change, nothing that
//!   is acknowledged as an order, a payment or a stock change) commits without waiting for the
//!   disk: its physical commit runs at `synchronous=NORMAL` when the whole group is relaxed.
//!   The WAL is one file written in order, so the next durable commit's `fsync` makes every
//!   relaxed commit before it durable too; and a sweep ([`Writer::sync_relaxed`]) checkpoints
//!   within [`RELAXED_BOUND`] when no durable commit came. So a power cut loses at most the
//!   relaxed commits of the last second, never one that a durable commit followed, and a
//!   process crash loses nothing (WAL at `NORMAL` survives it).
//!
//! The order of transactions is the writer's order, as before: each sees every change made by
//! the transactions before it, committed or waiting in the group (if the group's commit fails,
//! it fails with them). Readers on other connections see a group's changes when it commits,
//! never before.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Executor, Sqlite};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::DbError;

/// How long a relaxed commit may wait for the disk at most (see the module's doc).
pub(crate) const RELAXED_BOUND: Duration = Duration::from_secs(1);

/// The most commits one physical commit covers.
pub(crate) const MAX_GROUP: usize = 64;
/// How often a committer waiting for its group checks that the writer is still in use (if it
/// is free, the waiter commits the group itself).
const IDLE_CHECK: Duration = Duration::from_millis(2);

/// The writer connection and the group being committed.
pub(crate) struct Writer {
    pool: SqlitePool,
    state: Arc<Mutex<State>>,
    /// Transactions waiting for the writer.
    waiting: Arc<AtomicUsize>,
    acquire_timeout: Duration,
    /// Shared with `State`, which counts each physical commit.
    counts: Arc<Counts>,
    /// Where the transaction holding the writer last began, and when: logged when another
    /// waits too long.
    holder: std::sync::Mutex<Option<(&'static Location<'static>, Instant)>>,
}

/// Commits so far: logical (transactions) and physical (`COMMIT`s, each one `fsync`).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    logical: AtomicU64,
    physical: AtomicU64,
}

pub(crate) struct State {
    /// The writer connection, taken from `pool` on first use and kept; `None` once closed.
    conn: Option<PoolConnection<Sqlite>>,
    closed: bool,
    /// A physical transaction is open.
    in_tx: bool,
    /// A logical transaction's savepoint is open and was left without commit or rollback.
    dirty: bool,
    /// The last logical commit's savepoint is still to be released: its `RELEASE` goes with
    /// the next statement the writer sends anyway (the next `SAVEPOINT`, or the `COMMIT`), one
    /// round trip to the connection's thread fewer per transaction.
    unreleased: bool,
    /// Committers whose changes wait in the open physical transaction.
    pending: Vec<oneshot::Sender<Result<(), String>>>,
    /// Logical commits in the open physical transaction.
    grouped: u64,
    counts: Arc<Counts>,
    /// Durable commits wait for the disk (`synchronous=FULL` is configured); when false every
    /// commit is relaxed anyway.
    durable_configured: bool,
    /// The connection's `synchronous` setting is `FULL` (it may be changed only between
    /// physical transactions).
    conn_full: bool,
    /// The open physical transaction commits at `FULL`.
    tx_full: bool,
    /// Since when a relaxed commit is not known to be on disk (the first such commit).
    unsynced_since: Option<Instant>,
}

/// The writer, held by one logical transaction.
pub(crate) struct Turn {
    guard: Option<OwnedMutexGuard<State>>,
    state: Arc<Mutex<State>>,
    waiting: Arc<AtomicUsize>,
    /// Where the transaction began, and when it got the writer: how long each call site holds
    /// the writer is traced (target `emporium_db::writer`, level trace) at its end.
    at: &'static Location<'static>,
    since: Instant,
}

/// Counts a transaction as waiting for the writer until dropped (also when its future is).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Writer {
    pub(crate) fn new(pool: SqlitePool, acquire_timeout: Duration, durable: bool) -> Self {
        let counts = Arc::new(Counts::default());
        Self {
            pool,
            state: Arc::new(Mutex::new(State {
                conn: None,
                closed: false,
                in_tx: false,
                dirty: false,
                unreleased: false,
                pending: Vec::new(),
                grouped: 0,
                counts: counts.clone(),
                durable_configured: durable,
                conn_full: durable,
                tx_full: durable,
                unsynced_since: None,
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
            acquire_timeout,
            holder: std::sync::Mutex::new(None),
            counts,
        }
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// `(logical, physical)` commits so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.logical.load(Ordering::Relaxed),
            self.counts.physical.load(Ordering::Relaxed),
        )
    }

    /// Waits for the writer (up to the acquire timeout) and opens a logical transaction;
    /// `durable` false makes it relaxed (see the module's doc).
    pub(crate) async fn begin(
        &self,
        at: &'static Location<'static>,
        durable: bool,
    ) -> Result<Turn, DbError> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(self.waiting.clone());
        let Ok(guard) =
            tokio::time::timeout(self.acquire_timeout, self.state.clone().lock_owned()).await
        else {
            let holder = *self.holder.lock().unwrap_or_else(|p| p.into_inner());
            let (held_by, held_ms) = holder.map_or((String::new(), 0), |(l, since)| {
                (l.to_string(), since.elapsed().as_millis())
            });
            tracing::warn!(
                waiter = %at,
                held_by,
                held_ms,
                "a write transaction waited too long for the SQLite writer"
            );
            return Err(DbError::Query(sqlx::Error::PoolTimedOut));
        };
        drop(waiting);
        *self.holder.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, Instant::now()));
        let mut turn = Turn {
            guard: Some(guard),
            state: self.state.clone(),
            waiting: self.waiting.clone(),
            at,
            since: Instant::now(),
        };
        let state = turn.state_mut()?;
        state.settle().await;
        if state.conn.is_none() {
            if state.closed {
                return Err(DbError::Query(sqlx::Error::PoolClosed));
            }
            state.conn = Some(self.pool.acquire().await?);
        }
        let full = durable && state.durable_configured;
        if full && state.in_tx && !state.tx_full {
            // A durable transaction does not join a relaxed group: that group commits now.
            state.flush().await?;
        }
        // One round trip: the statements that open this transaction's savepoint go together.
        let open = match (state.in_tx, std::mem::take(&mut state.unreleased)) {
            (false, _) => match (state.conn_full, full) {
                (true, false) => {
                    "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE; SAVEPOINT emporium_tx"
                }
                (false, true) => {
                    "PRAGMA synchronous = FULL; BEGIN IMMEDIATE; SAVEPOINT emporium_tx"
                }
                _ => "BEGIN IMMEDIATE; SAVEPOINT emporium_tx",
            },
            (true, true) => "RELEASE SAVEPOINT emporium_tx; SAVEPOINT emporium_tx",
            (true, false) => "SAVEPOINT emporium_tx",
        };
        if !state.in_tx {
            // The setting is changed by the statement that opens the transaction, or kept.
            state.conn_full = full;
            state.tx_full = full;
        }
        if let Err(e) = state.exec(open).await {
            state.abort(&e).await;
            return Err(e);
        }
        state.in_tx = true;
        state.dirty = true;
        Ok(turn)
    }

    /// Runs `work` on the writer connection outside any transaction (migrations), once the
    /// open group is committed.
    pub(crate) async fn exclusive<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut state = self.state.lock().await;
        state.settle().await;
        state.flush().await?;
        if state.conn.is_none() {
            state.conn = Some(self.pool.acquire().await?);
        }
        let conn = state
            .conn
            .as_deref_mut()
            .ok_or(DbError::Query(sqlx::Error::PoolClosed))?;
        work(conn).await
    }

    /// Makes relaxed commits durable if no durable commit did, once the oldest is `min_age`
    /// old and the writer is free: a passive checkpoint (at `synchronous=NORMAL` it syncs the
    /// WAL before copying it). True when nothing is left unsynced; false when the commits are
    /// younger, the writer was busy or a reader kept the checkpoint from finishing (the next
    /// sweep tries again). The sweep passes half of [`RELAXED_BOUND`] every quarter of it.
    pub(crate) async fn sync_relaxed(&self, min_age: Duration) -> bool {
        let Ok(mut state) = self.state.clone().try_lock_owned() else {
            return false;
        };
        match state.unsynced_since {
            None => true,
            // Younger relaxed commits wait for the next pass (or a durable commit).
            Some(since) if since.elapsed() < min_age => false,
            Some(_) => state.sync_relaxed().await,
        }
    }

    /// Whether a relaxed commit is not yet known to be on disk.
    pub(crate) async fn relaxed_unsynced(&self) -> bool {
        self.state.lock().await.unsynced_since.is_some()
    }

    /// Commits the open group and gives the connection back to the pool for good.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        // Commits the open group, and leaves no relaxed commit waiting for the disk.
        state.sync_relaxed().await;
        state.conn = None;
        state.closed = true;
        drop(state);
        self.pool.close().await;
    }
}

impl State {
    /// Commits the open group and, when a relaxed commit is not yet on disk, checkpoints (see
    /// [`Writer::sync_relaxed`]). True when nothing is left unsynced.
    async fn sync_relaxed(&mut self) -> bool {
        self.settle().await;
        if self.flush().await.is_err() || self.unsynced_since.is_none() {
            return self.unsynced_since.is_none();
        }
        let Some(conn) = self.conn.as_deref_mut() else {
            return false;
        };
        // `(busy, frames in the WAL, frames checkpointed)`: all of it checkpointed means the
        // WAL was synced first.
        let done = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(conn)
            .await
            .is_ok_and(|(busy, log, checkpointed)| busy == 0 && log == checkpointed);
        if done {
            self.unsynced_since = None;
        }
        done
    }

    async fn exec(&mut self, sql: &'static str) -> Result<(), DbError> {
        if let Some(conn) = self.conn.as_deref_mut() {
            conn.execute(sql).await?;
        }
        Ok(())
    }

    /// Undoes what a transaction dropped without commit or rollback left behind.
    async fn settle(&mut self) {
        if std::mem::take(&mut self.dirty)
            && let Err(e) = self.rollback_savepoint().await
        {
            self.abort(&e).await;
        }
    }

    async fn rollback_savepoint(&mut self) -> Result<(), DbError> {
        self.exec("ROLLBACK TO SAVEPOINT emporium_tx; RELEASE SAVEPOINT emporium_tx")
            .await
    }

    /// Commits the open physical transaction, if any, and tells the group.
    async fn flush(&mut self) -> Result<(), DbError> {
        if !self.in_tx {
            return Ok(());
        }
        let commit = if std::mem::take(&mut self.unreleased) {
            "RELEASE SAVEPOINT emporium_tx; COMMIT"
        } else {
            "COMMIT"
        };
        match self.exec(commit).await {
            Ok(()) => {
                self.in_tx = false;
                // A durable commit's `fsync` covers every relaxed commit before it.
                if !self.durable_configured || self.tx_full {
                    self.unsynced_since = None;
                } else if self.unsynced_since.is_none() {
                    self.unsynced_since = Some(Instant::now());
                }
                let grouped = std::mem::take(&mut self.grouped);
                if grouped > 0 {
                    self.counts.logical.fetch_add(grouped, Ordering::Relaxed);
                    self.counts.physical.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("emporium_db_commits_total", "kind" => "logical")
                        .increment(grouped);
                    metrics::counter!("emporium_db_commits_total", "kind" => "physical")
                        .increment(1);
                }
                for waiter in self.pending.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
                Ok(())
            }
            Err(e) => {
                self.abort(&e).await;
                Err(e)
            }
        }
    }

    /// The physical transaction failed: roll it back and fail every waiting committer.
    async fn abort(&mut self, error: &DbError) {
        let _ = self.exec("ROLLBACK").await;
        self.in_tx = false;
        self.dirty = false;
        self.unreleased = false;
        self.grouped = 0;
        let message = format!("the group commit failed: {error}");
        for waiter in self.pending.drain(..) {
            let _ = waiter.send(Err(message.clone()));
        }
    }
}

impl Turn {
    fn trace_hold(&self, end: &'static str) {
        tracing::trace!(
            target: "emporium_db::writer",
            at = %self.at,
            end,
            held_us = self.since.elapsed().as_micros() as u64,
            "writer held"
        );
    }

    fn state_mut(&mut self) -> Result<&mut State, DbError> {
        self.guard
            .as_deref_mut()
            .ok_or(DbError::Query(sqlx::Error::PoolClosed))
    }

    /// The writer connection; present for as long as the turn is held.
    pub(crate) fn conn(&mut self) -> Option<&mut SqliteConnection> {
        self.guard.as_deref_mut()?.conn.as_deref_mut()
    }

    /// Commits this transaction: at once when no one waits for the writer, else with the
    /// group. Returns once its changes are durable.
    pub(crate) async fn commit(mut self) -> Result<(), DbError> {
        let Some(mut guard) = self.guard.take() else {
            return Err(DbError::Query(sqlx::Error::PoolClosed));
        };
        // Its savepoint is released with the writer's next statement (see `State::unreleased`).
        guard.dirty = false;
        guard.unreleased = true;
        guard.grouped += 1;
        self.trace_hold("commit");
        if self.waiting.load(Ordering::Acquire) == 0 || guard.pending.len() + 1 >= MAX_GROUP {
            return guard.flush().await;
        }
        let (tx, rx) = oneshot::channel();
        guard.pending.push(tx);
        drop(guard);
        self.wait_for_group(rx).await
    }

    async fn wait_for_group(
        &self,
        mut rx: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(), DbError> {
        loop {
            tokio::select! {
                outcome = &mut rx => {
                    return match outcome {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(message)) => Err(DbError::Group(message)),
                        Err(_) => Err(DbError::Group("the group commit was abandoned".into())),
                    };
                }
                () = tokio::time::sleep(IDLE_CHECK) => {
                    // The transaction we handed over to may have gone (its request dropped):
                    // if the writer is free, commit the group ourselves.
                    if let Ok(mut state) = self.state.clone().try_lock_owned() {
                        state.settle().await;
                        let _ = state.flush().await;
                    }
                }
            }
        }
    }

    /// Rolls this transaction back (to its savepoint); the group's other changes stay.
    pub(crate) async fn rollback(mut self) -> Result<(), DbError> {
        let Some(mut guard) = self.guard.take() else {
            return Ok(());
        };
        guard.dirty = false;
        self.trace_hold("rollback");
        let outcome = guard.rollback_savepoint().await;
        if let Err(e) = &outcome {
            guard.abort(e).await;
        } else if self.waiting.load(Ordering::Acquire) == 0 {
            // No one takes the writer over: commit what the group holds now.
            return guard.flush().await;
        }
        outcome
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Dropped without commit or rollback: the savepoint stays marked dirty. Undo it now if
        // a runtime can run the statements; otherwise the writer's next user does.
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let waiting = self.waiting.clone();
            runtime.spawn(async move {
                guard.settle().await;
                if waiting.load(Ordering::Acquire) == 0 {
                    let _ = guard.flush().await;
                }
            });
        }
    }
}
