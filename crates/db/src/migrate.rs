//! Forward-only migrations, one list per context, each written for both engines.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrationType, Migrator};

/// One schema migration, in its SQLite and PostgreSQL dialects.
///
/// Versions are timestamps (`YYYYMMDDhhmmss`) so they are unique across every context sharing a
/// database. An applied migration is never edited.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Timestamp version, unique workspace-wide.
    pub version: i64,
    /// Short description.
    pub description: &'static str,
    /// The SQLite script.
    pub sqlite: &'static str,
    /// The PostgreSQL script.
    pub postgres: &'static str,
}

/// Builds a migrator for `backend` from every context's migrations.
pub(crate) fn migrator(sets: &[&[Migration]], postgres: bool) -> Migrator {
    let migrations = sets
        .iter()
        .flat_map(|set| set.iter())
        .map(|m| {
            let sql = if postgres { m.postgres } else { m.sqlite };
            sqlx::migrate::Migration::new(
                m.version,
                Cow::Borrowed(m.description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    // Contexts may later move to databases of their own; a database holding another context's
    // history must still migrate.
    migrator.set_ignore_missing(true);
    migrator
}
