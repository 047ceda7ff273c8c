//! Ending a principal's access tokens before they expire.
//!
//! Each principal has a token generation (`token_revocations`, 0 until its first row), and every
//! access token carries the generation it was issued under (the `gen` claim). A password change,
//! a demotion, a deletion or the revocation of an API client moves the principal to its next
//! generation in the transaction of the change; from then on a token of an earlier generation is
//! refused with 401 `token_revoked`.
//!
//! [`Revocations`] is what the verifier consults: the generations that moved within the last
//! token lifetime, in memory, so a verification stays offline. The process that made the change
//! notes it at once ([`Revocations::note`], after the commit); every process also re-reads the rows
//! whose `revoked_at` moved since its last read ([`Revocations::refresh`], every couple of seconds),
//! so a change made by another process over the same database reaches it within that time.
//!
//! A generation is compared, never a time: two instants in the same second, or on two machines
//! whose clocks differ, cannot make a revoked token pass or a new one fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use emporium_db::{Db, DbError};
use time::OffsetDateTime;

use crate::store;

pub use crate::store::RevocationRow as Revocation;

/// How far before its last read a refresh reads again: a change is stamped before it commits, so
/// a row may become visible with a `revoked_at` slightly older than the previous read; the margin
/// also covers clocks of processes that differ by less than this.
pub const REREAD_MARGIN: time::Duration = time::Duration::seconds(60);

#[derive(Debug, Clone, Copy)]
struct Revoked {
    generation: i64,
    at: OffsetDateTime,
}

/// The token generations that moved recently, by subject (`cus_…`, `usr_…`, `cli_…`).
pub struct Revocations {
    // Invariant: holds, per subject, the highest generation seen. The std locks are never held
    // across an `.await`.
    by_subject: RwLock<HashMap<String, Revoked>>,
    // True when `by_subject` may hold an entry: the common verification (nobody was revoked in
    // the last token lifetime) takes no lock.
    any: AtomicBool,
    // The clock reading at the start of the last successful refresh.
    read_at: Mutex<Option<OffsetDateTime>>,
    // How long an entry matters: the longest an access token lives, with the verifier's leeway.
    keep_for: time::Duration,
}

impl Revocations {
    /// An empty set for access tokens that live at most `token_lifetime` (leeway included).
    pub fn new(token_lifetime: time::Duration) -> Self {
        Self {
            by_subject: RwLock::new(HashMap::new()),
            any: AtomicBool::new(false),
            read_at: Mutex::new(None),
            keep_for: token_lifetime,
        }
    }

    /// True unless `subject` has moved past `generation`. Takes no lock and allocates nothing
    /// while no principal was revoked within the last token lifetime.
    pub fn allows(&self, subject: &str, generation: i64) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return true;
        }
        let map = self.by_subject.read().unwrap_or_else(|p| p.into_inner());
        map.get(subject)
            .is_none_or(|revoked| generation >= revoked.generation)
    }

    /// Records that `subject` moved to `generation` at `at` (after the change committed).
    pub fn note(&self, subject: &str, generation: i64, at: OffsetDateTime) {
        let mut map = self.by_subject.write().unwrap_or_else(|p| p.into_inner());
        Self::merge(&mut map, subject, Revoked { generation, at });
        self.any.store(true, Ordering::Release);
    }

    fn merge(map: &mut HashMap<String, Revoked>, subject: &str, revoked: Revoked) {
        match map.get_mut(subject) {
            Some(known) if known.generation >= revoked.generation => {}
            Some(known) => *known = revoked,
            None => {
                map.insert(subject.to_owned(), revoked);
            }
        }
    }

    /// Reads the generations that moved since the last read (all those of the last token
    /// lifetime the first time), merges them, and forgets entries older than any live token.
    /// Returns how many rows were read. On failure the set stays as it was and the next refresh
    /// reads from the same point.
    pub async fn refresh(&self, db: &Db, now: OffsetDateTime) -> Result<usize, DbError> {
        let since = self.since(now);
        let rows = {
            let mut conn = db.read().await?;
            store::list_revocations_since(&mut conn, since).await?
        };
        Ok(self.merge_read(&rows, now))
    }

    /// Where the next read starts: a margin before the last one, never before the oldest
    /// entry that matters at `now`.
    pub fn since(&self, now: OffsetDateTime) -> OffsetDateTime {
        let last = *self.read_at.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = now - self.keep_for - REREAD_MARGIN;
        last.map_or(oldest, |t| (t - REREAD_MARGIN).max(oldest))
    }

    /// Merges the rows of a read made at `now` from [`Revocations::since`] (here, or by the
    /// identity process for another one), forgetting entries older than any live token.
    /// Returns how many rows were merged.
    pub fn merge_read(&self, rows: &[Revocation], now: OffsetDateTime) -> usize {
        let oldest = now - self.keep_for - REREAD_MARGIN;
        let mut map = self.by_subject.write().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            Self::merge(
                &mut map,
                &row.subject,
                Revoked {
                    generation: row.generation,
                    at: row.revoked_at,
                },
            );
        }
        map.retain(|_, revoked| revoked.at >= oldest);
        self.any.store(!map.is_empty(), Ordering::Release);
        drop(map);
        *self.read_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        rows.len()
    }

    /// How many subjects are held (for tests and logs).
    pub fn len(&self) -> usize {
        self.by_subject
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// True when no subject is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_below_the_subjects_generation_is_refused_and_one_at_it_passes() {
        let set = Revocations::new(time::Duration::minutes(15));
        let now = OffsetDateTime::now_utc();
        assert!(set.allows("usr_a", 0));
        set.note("usr_a", 2, now);
        assert!(!set.allows("usr_a", 0));
        assert!(!set.allows("usr_a", 1));
        assert!(set.allows("usr_a", 2));
        assert!(set.allows("usr_b", 0));
    }

    #[test]
    fn an_older_generation_never_replaces_a_newer_one() {
        let set = Revocations::new(time::Duration::minutes(15));
        let now = OffsetDateTime::now_utc();
        set.note("cus_a", 3, now);
        set.note("cus_a", 1, now);
        assert!(!set.allows("cus_a", 2));
    }
}
