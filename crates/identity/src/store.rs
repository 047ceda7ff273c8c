//! Identity's SQL, and nothing else. Every function takes a connection: the writer's
//! transaction for writes, a reader for reads.

use emporium_db::{Conn, DbError, run};
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

/// A customer row.
#[derive(Debug, Clone)]
pub struct CustomerRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    /// A JSON array of group names, sorted and unique.
    pub groups: String,
    /// Bumped by every change.
    pub version: i64,
}

/// A staff user row.
#[derive(Debug, Clone)]
pub struct StaffRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    /// Bumped by every change.
    pub version: i64,
    /// Set while the user is disabled.
    pub disabled_at: Option<OffsetDateTime>,
}

/// An API client row.
#[derive(Debug, Clone)]
pub struct ClientRow {
    pub id: Uuid,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub scopes: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A refresh token that was just consumed by rotation.
#[derive(Debug, Clone)]
pub struct RotatedRefresh {
    pub family_id: Uuid,
    pub subject: String,
    pub scope: String,
}

macro_rules! customer_row {
    ($r:expr) => {
        CustomerRow {
            id: $r.try_get("id")?,
            email: $r.try_get("email")?,
            name: $r.try_get("name")?,
            password_hash: $r.try_get("password_hash")?,
            created_at: $r.try_get("created_at")?,
            groups: $r.try_get("groups")?,
            version: $r.try_get("version")?,
        }
    };
}

macro_rules! staff_row {
    ($r:expr) => {
        StaffRow {
            id: $r.try_get("id")?,
            email: $r.try_get("email")?,
            name: $r.try_get("name")?,
            role: $r.try_get("role")?,
            password_hash: $r.try_get("password_hash")?,
            created_at: $r.try_get("created_at")?,
            version: $r.try_get("version")?,
            disabled_at: $r.try_get("disabled_at")?,
        }
    };
}

macro_rules! client_row {
    ($r:expr) => {
        ClientRow {
            id: $r.try_get("id")?,
            name: $r.try_get("name")?,
            secret_hash: $r.try_get("secret_hash")?,
            scopes: $r.try_get("scopes")?,
            created_by: $r.try_get("created_by")?,
            created_at: $r.try_get("created_at")?,
            revoked_at: $r.try_get("revoked_at")?,
        }
    };
}

/// Inserts a customer; a duplicate e-mail is a unique violation.
pub async fn insert_customer<'c>(c: impl Into<Conn<'c>>, row: &CustomerRow) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "INSERT INTO customers (id, email, name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)"
        )
        .bind(row.id)
        .bind(&row.email)
        .bind(&row.name)
        .bind(&row.password_hash)
        .bind(row.created_at)
    )?;
    Ok(())
}

/// The customer with `email` (normalised), if any.
pub async fn find_customer_by_email<'c>(
    c: impl Into<Conn<'c>>,
    email: &str,
) -> Result<Option<CustomerRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "SELECT id, email, name, password_hash, created_at, groups, version FROM customers WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(customer_row!(r)),
            None => None,
        })
    })
}

/// The customer with `id`, if any.
pub async fn find_customer<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<CustomerRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "SELECT id, email, name, password_hash, created_at, groups, version FROM customers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(customer_row!(r)),
            None => None,
        })
    })
}

/// Sets customer `id`'s groups (a JSON array) and bumps its version; the row after, or `None`
/// when there is no such customer.
pub async fn set_customer_groups<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    groups: &str,
    now: OffsetDateTime,
) -> Result<Option<CustomerRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE customers SET groups = $2, version = version + 1, updated_at = $3 \
             WHERE id = $1 RETURNING id, email, name, password_hash, created_at, groups, version",
        )
        .bind(id)
        .bind(groups)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(customer_row!(r)),
            None => None,
        })
    })
}

/// Sets customer `id`'s password hash and bumps its version; the version after, or `None` when
/// there is no such customer.
pub async fn set_customer_password<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    password_hash: &str,
    now: OffsetDateTime,
) -> Result<Option<i64>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE customers SET password_hash = $2, version = version + 1, updated_at = $3 \
             WHERE id = $1 RETURNING version",
        )
        .bind(id)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("version")?),
            None => None,
        })
    })
}

/// Customers older than `before` (ids are time-ordered), newest first, whose e-mail matches the
/// LIKE `pattern`.
pub async fn list_customers<'c>(
    c: impl Into<Conn<'c>>,
    before: Uuid,
    pattern: &str,
    limit: i64,
) -> Result<Vec<CustomerRow>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT id, email, name, password_hash, created_at, groups, version FROM customers \
             WHERE id < $1 AND email LIKE $2 ESCAPE '\\' ORDER BY id DESC LIMIT $3",
        )
        .bind(before)
        .bind(pattern)
        .bind(limit)
        .fetch_all(c)
        .await?;
        rows.iter().map(|r| Ok(customer_row!(r))).collect()
    })
}

/// Inserts a staff user.
pub async fn insert_staff<'c>(c: impl Into<Conn<'c>>, row: &StaffRow) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "INSERT INTO staff_users (id, email, name, role, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)"
        )
        .bind(row.id)
        .bind(&row.email)
        .bind(&row.name)
        .bind(&row.role)
        .bind(&row.password_hash)
        .bind(row.created_at)
    )?;
    Ok(())
}

/// The staff user with `email`, if any.
pub async fn find_staff_by_email<'c>(
    c: impl Into<Conn<'c>>,
    email: &str,
) -> Result<Option<StaffRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "SELECT id, email, name, role, password_hash, created_at, version, disabled_at FROM staff_users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(staff_row!(r)),
            None => None,
        })
    })
}

/// The staff user with `id`, if any.
pub async fn find_staff<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<Option<StaffRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "SELECT id, email, name, role, password_hash, created_at, version, disabled_at FROM staff_users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(staff_row!(r)),
            None => None,
        })
    })
}

/// Staff users older than `before`, newest first.
pub async fn list_staff<'c>(
    c: impl Into<Conn<'c>>,
    before: Uuid,
    limit: i64,
) -> Result<Vec<StaffRow>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT id, email, name, role, password_hash, created_at, version, disabled_at FROM staff_users \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(c)
        .await?;
        rows.iter().map(|r| Ok(staff_row!(r))).collect()
    })
}

/// Ids of the owners who are not disabled. On PostgreSQL the rows are locked until the transaction ends, so two
/// concurrent demotions cannot both see a second owner; SQLite serialises writers already.
pub async fn lock_owners<'c>(c: impl Into<Conn<'c>>) -> Result<Vec<Uuid>, DbError> {
    match c.into() {
        Conn::Sqlite(c) => {
            let rows = sqlx::query(
                "SELECT id FROM staff_users WHERE role = 'owner' AND disabled_at IS NULL",
            )
            .fetch_all(c)
            .await?;
            rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
        }
        Conn::Postgres(c) => {
            let rows = sqlx::query(
                "SELECT id FROM staff_users WHERE role = 'owner' AND disabled_at IS NULL FOR UPDATE",
            )
                .fetch_all(c)
                .await?;
            rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
        }
    }
}

/// Writes a staff user's name, role, password hash, disabled state and version.
pub async fn update_staff<'c>(
    c: impl Into<Conn<'c>>,
    row: &StaffRow,
    now: OffsetDateTime,
) -> Result<u64, DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "UPDATE staff_users SET name = $2, role = $3, password_hash = $4, updated_at = $5, version = $6, \
             disabled_at = $7 WHERE id = $1"
        )
        .bind(row.id)
        .bind(&row.name)
        .bind(&row.role)
        .bind(&row.password_hash)
        .bind(now)
        .bind(row.version)
        .bind(row.disabled_at)
    )
    .map_err(Into::into)
}

/// Deletes a staff user; returns rows deleted.
pub async fn delete_staff<'c>(c: impl Into<Conn<'c>>, id: Uuid) -> Result<u64, DbError> {
    emporium_db::execute!(
        c,
        sqlx::query("DELETE FROM staff_users WHERE id = $1").bind(id)
    )
    .map_err(Into::into)
}

/// Inserts an API client.
pub async fn insert_client<'c>(c: impl Into<Conn<'c>>, row: &ClientRow) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "INSERT INTO api_clients (id, name, secret_hash, scopes, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(row.id)
        .bind(&row.name)
        .bind(&row.secret_hash)
        .bind(&row.scopes)
        .bind(&row.created_by)
        .bind(row.created_at)
    )?;
    Ok(())
}

/// The API client with `id`, if any.
pub async fn find_client<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
) -> Result<Option<ClientRow>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "SELECT id, name, secret_hash, scopes, created_by, created_at, revoked_at \
             FROM api_clients WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(client_row!(r)),
            None => None,
        })
    })
}

/// API clients older than `before`, newest first.
pub async fn list_clients<'c>(
    c: impl Into<Conn<'c>>,
    before: Uuid,
    limit: i64,
) -> Result<Vec<ClientRow>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT id, name, secret_hash, scopes, created_by, created_at, revoked_at \
             FROM api_clients WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(c)
        .await?;
        rows.iter().map(|r| Ok(client_row!(r))).collect()
    })
}

/// Revokes a live API client; returns 0 when it is absent or already revoked.
pub async fn revoke_client<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<u64, DbError> {
    emporium_db::execute!(
        c,
        sqlx::query("UPDATE api_clients SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
    )
    .map_err(Into::into)
}

/// Starts a refresh-token family (a login session) under the subject's token `generation`.
pub async fn insert_family<'c>(
    c: impl Into<Conn<'c>>,
    id: Uuid,
    subject: &str,
    generation: i64,
    now: OffsetDateTime,
) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "INSERT INTO token_families (id, subject, created_at, generation) VALUES ($1, $2, $3, $4)"
        )
        .bind(id)
        .bind(subject)
        .bind(now)
        .bind(generation)
    )?;
    Ok(())
}

/// The token generation `family` was opened under, if the family exists.
pub async fn family_generation<'c>(
    c: impl Into<Conn<'c>>,
    family: Uuid,
) -> Result<Option<i64>, DbError> {
    run!(c, |c| {
        let row = sqlx::query("SELECT generation FROM token_families WHERE id = $1")
            .bind(family)
            .fetch_optional(c)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("generation")?),
            None => None,
        })
    })
}

/// Revokes every live refresh-token family of `subject`; returns how many.
pub async fn revoke_families_of<'c>(
    c: impl Into<Conn<'c>>,
    subject: &str,
    now: OffsetDateTime,
) -> Result<u64, DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "UPDATE token_families SET revoked_at = $2 WHERE subject = $1 AND revoked_at IS NULL"
        )
        .bind(subject)
        .bind(now)
    )
    .map_err(Into::into)
}

/// The token generation of `subject`: 0 until its tokens were first ended.
pub async fn token_generation<'c>(c: impl Into<Conn<'c>>, subject: &str) -> Result<i64, DbError> {
    run!(c, |c| {
        let row = sqlx::query("SELECT generation FROM token_revocations WHERE subject = $1")
            .bind(subject)
            .fetch_optional(c)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("generation")?,
            None => 0,
        })
    })
}

/// Moves `subject` to its next token generation, so every token issued under an earlier one is
/// refused; returns the new generation.
pub async fn bump_token_generation<'c>(
    c: impl Into<Conn<'c>>,
    subject: &str,
    now: OffsetDateTime,
) -> Result<i64, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "INSERT INTO token_revocations (subject, generation, revoked_at) VALUES ($1, 1, $2) \
             ON CONFLICT (subject) DO UPDATE \
             SET generation = token_revocations.generation + 1, revoked_at = excluded.revoked_at \
             RETURNING generation",
        )
        .bind(subject)
        .bind(now)
        .fetch_one(c)
        .await?;
        Ok(row.try_get("generation")?)
    })
}

/// A principal's token generation and when it last moved.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RevocationRow {
    pub subject: String,
    pub generation: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
}

/// Every generation that moved after `since` (through the `revoked_at` index).
pub async fn list_revocations_since<'c>(
    c: impl Into<Conn<'c>>,
    since: OffsetDateTime,
) -> Result<Vec<RevocationRow>, DbError> {
    run!(c, |c| {
        let rows = sqlx::query(
            "SELECT subject, generation, revoked_at FROM token_revocations WHERE revoked_at > $1",
        )
        .bind(since)
        .fetch_all(c)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RevocationRow {
                    subject: r.try_get("subject")?,
                    generation: r.try_get("generation")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    })
}

/// Stores a refresh token's hash in `family`.
pub async fn insert_refresh<'c>(
    c: impl Into<Conn<'c>>,
    hash: &[u8],
    family: Uuid,
    subject: &str,
    scope: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<(), DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, subject, scope, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(hash)
        .bind(family)
        .bind(subject)
        .bind(scope)
        .bind(now)
        .bind(expires_at)
    )?;
    Ok(())
}

/// Consumes a refresh token by one conditional update: it must be unused, unexpired and in a
/// live family. `None` when any of that fails.
pub async fn use_refresh<'c>(
    c: impl Into<Conn<'c>>,
    hash: &[u8],
    now: OffsetDateTime,
) -> Result<Option<RotatedRefresh>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
               AND family_id IN (SELECT id FROM token_families WHERE revoked_at IS NULL) \
             RETURNING family_id, subject, scope",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(RotatedRefresh {
                family_id: r.try_get("family_id")?,
                subject: r.try_get("subject")?,
                scope: r.try_get("scope")?,
            }),
            None => None,
        })
    })
}

/// The family of a refresh token that was already used, if the token exists and was used.
pub async fn family_of_used_refresh<'c>(
    c: impl Into<Conn<'c>>,
    hash: &[u8],
) -> Result<Option<Uuid>, DbError> {
    run!(c, |c| {
        let row = sqlx::query(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL",
        )
        .bind(hash)
        .fetch_optional(c)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("family_id")?),
            None => None,
        })
    })
}

/// Revokes a family: none of its refresh tokens works any more.
pub async fn revoke_family<'c>(
    c: impl Into<Conn<'c>>,
    family: Uuid,
    now: OffsetDateTime,
) -> Result<u64, DbError> {
    emporium_db::execute!(
        c,
        sqlx::query(
            "UPDATE token_families SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1"
        )
        .bind(family)
        .bind(now)
    )
    .map_err(Into::into)
}
