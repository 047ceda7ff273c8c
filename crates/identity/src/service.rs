//! Identity's use cases: validate, run one transaction (with its outbox events), return plain data.

use std::net::IpAddr;
use std::sync::Arc;

use emporium_db::{Db, DbError, WriteTx};
use emporium_kernel::auth::{Actor, Principal, Role};
use emporium_kernel::{Clock, Cursor, FieldError, Violations};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::{ApiClient, Customer, IdentityApi, NewApiClient, Page, StaffUser, TokenResponse};
use crate::domain::{
    self, ADMIN_SCOPE, ApiClientId, CustomerId, Email, Password, STORE_SCOPE, StaffUserId,
};
use crate::error::{IdentityError, OAuthError};
use crate::events;
use crate::password::Hasher;
use crate::store::{self, ClientRow, CustomerRow, StaffRow};
use crate::throttle::LoginThrottle;
use crate::tokens::{self, Grant, Tokens};

/// The largest page a list returns.
pub const MAX_PAGE: u32 = 200;

/// Register a customer.
#[derive(Debug, Clone)]
pub struct RegisterCustomer {
    pub email: String,
    pub password: String,
    pub name: String,
}

/// Create a staff user.
#[derive(Debug, Clone)]
pub struct CreateStaffUser {
    pub email: String,
    pub password: String,
    pub name: String,
    pub role: Role,
}

/// Change a staff user; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UpdateStaffUser {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub password: Option<String>,
    /// Disable (`true`) or enable again (`false`).
    pub disabled: Option<bool>,
}

/// Create an API client.
#[derive(Debug, Clone)]
pub struct CreateApiClient {
    pub name: String,
    pub scopes: Vec<String>,
}

/// How long tokens live.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    /// Refresh tokens (and so login sessions, without use) expire after this.
    pub refresh: time::Duration,
}

/// The identity service: every use case of the context.
pub struct IdentityService {
    db: Db,
    hasher: Hasher,
    tokens: Arc<Tokens>,
    throttle: LoginThrottle,
    clock: Arc<dyn Clock>,
    lifetimes: TokenLifetimes,
    // Customers by id, for the read on every storefront request that names its customer.
    // Invariant: every write to a customer row invalidates its entry; only found customers are
    // kept, so a registration never meets a stale "absent".
    customers: moka::sync::Cache<Uuid, Customer>,
}

fn customer_of(row: &CustomerRow) -> Customer {
    Customer {
        id: CustomerId(row.id),
        email: row.email.clone(),
        name: row.name.clone(),
        // Written only by `set_customer_groups`, always a JSON array of strings.
        groups: serde_json::from_str(&row.groups).unwrap_or_default(),
        created_at: row.created_at,
    }
}

fn staff_of(row: &StaffRow) -> StaffUser {
    StaffUser {
        id: StaffUserId(row.id),
        email: row.email.clone(),
        name: row.name.clone(),
        // The CHECK constraint keeps the column to the three role names.
        role: Role::parse(&row.role).unwrap_or(Role::Staff),
        created_at: row.created_at,
        disabled_at: row.disabled_at,
    }
}

fn client_of(row: &ClientRow) -> ApiClient {
    ApiClient {
        id: ApiClientId(row.id),
        name: row.name.clone(),
        scopes: row
            .scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        created_by: row.created_by.clone(),
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

/// An account a password may sign in to.
struct SignIn {
    subject: String,
    /// `None` for a staff row whose role does not parse (the sign-in then fails).
    actor: Option<Actor>,
    password_hash: String,
}

/// The staff user (`staff`) or customer with e-mail `account`. A disabled staff user is not
/// found: it gets the answer of an unknown account.
async fn find_sign_in(
    conn: &mut emporium_db::ReadConn,
    staff: bool,
    account: &str,
) -> Result<Option<SignIn>, DbError> {
    Ok(if staff {
        store::find_staff_by_email(conn, account)
            .await?
            .filter(|r| r.disabled_at.is_none())
            .map(|r| SignIn {
                subject: StaffUserId(r.id).to_string(),
                actor: Role::parse(&r.role).map(Actor::Staff),
                password_hash: r.password_hash,
            })
    } else {
        store::find_customer_by_email(conn, account)
            .await?
            .map(|r| SignIn {
                subject: CustomerId(r.id).to_string(),
                actor: Some(Actor::Customer),
                password_hash: r.password_hash,
            })
    })
}

/// Ends every token of `subject` within `tx`: its login sessions are revoked and its token
/// generation moves on. Returns the new generation, for [`Revocations::note`] once `tx` has
/// committed.
///
/// [`Revocations::note`]: crate::revocation::Revocations::note
async fn end_tokens_in(
    tx: &mut WriteTx,
    subject: &str,
    now: OffsetDateTime,
) -> Result<i64, DbError> {
    store::revoke_families_of(&mut *tx, subject, now).await?;
    store::bump_token_generation(&mut *tx, subject, now).await
}

/// Where a page starts: ids are UUIDv7, so "older than the cursor" is "id below it".
fn page_start(cursor: Option<&str>) -> Result<Uuid, IdentityError> {
    match cursor {
        None => Ok(Uuid::max()),
        Some(c) => Cursor::decode::<Uuid>(c).map_err(|e| IdentityError::Invalid(vec![e])),
    }
}

fn page_limit(limit: Option<u32>) -> Result<i64, IdentityError> {
    emporium_kernel::cursor::page_limit(limit, 50, MAX_PAGE)
        .map_err(|e| IdentityError::Invalid(vec![e]))
}

fn page_of<R, T>(
    rows: Vec<R>,
    limit: i64,
    id: impl Fn(&R) -> Uuid,
    map: impl Fn(&R) -> T,
) -> Page<T> {
    let full = usize::try_from(limit).is_ok_and(|l| rows.len() == l);
    let next_cursor = if full {
        rows.last().map(|r| Cursor::encode(&id(r)).into_string())
    } else {
        None
    };
    Page {
        items: rows.iter().map(map).collect(),
        next_cursor,
    }
}

impl IdentityService {
    /// Wires the service.
    pub fn new(
        db: Db,
        hasher: Hasher,
        tokens: Arc<Tokens>,
        throttle: LoginThrottle,
        clock: Arc<dyn Clock>,
        lifetimes: TokenLifetimes,
    ) -> Self {
        Self {
            db,
            hasher,
            tokens,
            throttle,
            clock,
            lifetimes,
            customers: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
        }
    }

    /// The token signer/verifier.
    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    /// Checks a new account's e-mail, password and name (reporting every bad field at once) and
    /// hashes the password.
    async fn new_account(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<(Email, String, String), IdentityError> {
        let mut v = Violations::new();
        let email = v.check("/email", Email::parse(email));
        let password = v.check(
            "/password",
            Password::parse(password, email.as_ref().map(Email::as_str)),
        );
        let name = v.check("/name", domain::parse_name(name));
        v.finish().map_err(IdentityError::Invalid)?;
        let (Some(email), Some(password), Some(name)) = (email, password, name) else {
            return Err(IdentityError::Invalid(Vec::new()));
        };
        let password_hash = self.hasher.hash(password.expose()).await?;
        Ok((email, name, password_hash))
    }

    /// Creates a customer account and records `customer.registered`.
    pub async fn register(&self, cmd: RegisterCustomer) -> Result<Customer, IdentityError> {
        let (email, name, password_hash) = self
            .new_account(&cmd.email, &cmd.password, &cmd.name)
            .await?;
        let now = self.clock.now();
        let row = CustomerRow {
            id: CustomerId::generate().0,
            email: email.as_str().to_owned(),
            name,
            password_hash,
            created_at: now,
            groups: "[]".to_owned(),
            version: 1,
        };
        let mut tx = self.db.begin_write().await?;
        store::insert_customer(&mut tx, &row)
            .await
            .map_err(IdentityError::taken_or_storage)?;
        let event = events::CustomerRegistered {
            customer_id: CustomerId(row.id),
            email: row.email.clone(),
            name: row.name.clone(),
        };
        tx.record(&event, 1, now).await?;
        tx.commit().await?;
        Ok(customer_of(&row))
    }

    /// The resource-owner password grant. `scope` containing `admin` signs in a staff user,
    /// otherwise a customer. Failures are throttled per account and per address, and take as
    /// long whether or not the account exists.
    pub async fn password_grant(
        &self,
        username: &str,
        password: &str,
        scope: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let requested: Vec<&str> = scope
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        let staff = requested.contains(&ADMIN_SCOPE);
        let allowed = if staff { ADMIN_SCOPE } else { STORE_SCOPE };
        if let Some(bad) = requested.iter().find(|s| **s != allowed) {
            return Err(OAuthError::InvalidScope(format!(
                "scope `{bad}` cannot be granted with a password"
            )));
        }
        let account = username.trim().to_lowercase();
        if account.is_empty() || password.is_empty() {
            return Err(OAuthError::InvalidRequest(
                "username and password are required".into(),
            ));
        }
        self.throttle
            .check(&account, address)
            .map_err(|retry_after| IdentityError::Throttled { retry_after })?;

        let (account_row, generation) = {
            let mut conn = self.db.read().await?;
            match find_sign_in(&mut conn, staff, &account).await? {
                Some(first) => {
                    let generation = store::token_generation(&mut conn, &first.subject).await?;
                    // Read again: credentials read after the generation are never older than
                    // it, so a sign-in that raced a password change gets a token it ended.
                    (find_sign_in(&mut conn, staff, &account).await?, generation)
                }
                None => (None, 0),
            }
        };
        let (subject, actor, hash) = match account_row {
            Some(a) => (Some(a.subject), a.actor, Some(a.password_hash)),
            None => (None, None, None),
        };
        let matched = self.hasher.verify(password, hash).await?;
        let (Some(subject), Some(actor), true) = (subject, actor, matched) else {
            metrics::counter!("emporium_auth_login_failures_total").increment(1);
            self.throttle
                .record_failure(&account, address)
                .map_err(|retry_after| IdentityError::Throttled { retry_after })?;
            return Err(OAuthError::InvalidGrant(
                "the username or password is wrong",
            ));
        };

        let now = self.clock.now();
        let family = Uuid::now_v7();
        let (refresh, refresh_hash) = tokens::new_refresh_token()?;
        let mut tx = self.db.begin_write().await?;
        store::insert_family(&mut tx, family, &subject, generation, now).await?;
        store::insert_refresh(
            &mut tx,
            &refresh_hash,
            family,
            &subject,
            allowed,
            now,
            now + self.lifetimes.refresh,
        )
        .await?;
        tx.commit().await?;
        Ok(self.respond(
            Grant {
                subject,
                actor,
                scopes: vec![allowed.to_owned()],
                session: Some(family.simple().to_string()),
                generation,
            },
            Some(refresh),
            now,
        )?)
    }

    /// The refresh grant: rotates the token. A token used twice revokes its whole family.
    pub async fn refresh_grant(
        &self,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        if refresh_token.is_empty() {
            return Err(OAuthError::InvalidRequest(
                "refresh_token is required".into(),
            ));
        }
        let hash = tokens::hash_secret(refresh_token);
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let Some(used) = store::use_refresh(&mut tx, &hash, now).await? else {
            if let Some(family) = store::family_of_used_refresh(&mut tx, &hash).await? {
                store::revoke_family(&mut tx, family, now).await?;
                tx.commit().await?;
                metrics::counter!("emporium_auth_refresh_reuse_total").increment(1);
                tracing::warn!(family = %family.simple(), "refresh token reused; session revoked");
            }
            return Err(OAuthError::InvalidGrant(
                "the refresh token is invalid, expired or revoked",
            ));
        };
        let widened = scope
            .unwrap_or_default()
            .split(' ')
            .any(|p| !p.is_empty() && p != used.scope);
        if widened {
            return Err(OAuthError::InvalidScope(
                "a refresh cannot widen the scope".into(),
            ));
        }
        // The party must still exist (and, for staff, the role is read afresh).
        let actor = if let Ok(id) = used.subject.parse::<CustomerId>() {
            store::find_customer(&mut tx, id.0)
                .await?
                .map(|_| Actor::Customer)
        } else if let Ok(id) = used.subject.parse::<StaffUserId>() {
            store::find_staff(&mut tx, id.0)
                .await?
                .filter(|r| r.disabled_at.is_none())
                .and_then(|r| Role::parse(&r.role))
                .map(Actor::Staff)
        } else {
            None
        };
        let Some(actor) = actor else {
            store::revoke_family(&mut tx, used.family_id, now).await?;
            tx.commit().await?;
            return Err(OAuthError::InvalidGrant(
                "the account no longer exists or is disabled",
            ));
        };
        // A session opened while its principal's tokens were being ended (the sign-in read the
        // generation before the change committed) missed the revocation of its family: it ends
        // here.
        let generation = store::token_generation(&mut tx, &used.subject).await?;
        let opened_under = store::family_generation(&mut tx, used.family_id).await?;
        if opened_under.is_none_or(|g| g < generation) {
            store::revoke_family(&mut tx, used.family_id, now).await?;
            tx.commit().await?;
            return Err(OAuthError::InvalidGrant(
                "the refresh token is invalid, expired or revoked",
            ));
        }
        let (refresh, refresh_hash) = tokens::new_refresh_token()?;
        store::insert_refresh(
            &mut tx,
            &refresh_hash,
            used.family_id,
            &used.subject,
            &used.scope,
            now,
            now + self.lifetimes.refresh,
        )
        .await?;
        tx.commit().await?;
        Ok(self.respond(
            Grant {
                subject: used.subject,
                actor,
                scopes: vec![used.scope],
                session: Some(used.family_id.simple().to_string()),
                generation,
            },
            Some(refresh),
            now,
        )?)
    }

    /// The client-credentials grant for API clients; no refresh token.
    pub async fn client_credentials_grant(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
        basic: bool,
        address: Option<IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let account = client_id.trim().to_owned();
        self.throttle
            .check(&account, address)
            .map_err(|retry_after| IdentityError::Throttled { retry_after })?;
        let (row, generation) = match account.parse::<ApiClientId>() {
            Ok(id) => {
                let mut conn = self.db.read().await?;
                // Before the row: a revocation moves both in one transaction.
                let generation = store::token_generation(&mut conn, &id.to_string()).await?;
                (store::find_client(&mut conn, id.0).await?, generation)
            }
            Err(_) => (None, 0),
        };
        let presented = tokens::hash_secret(client_secret);
        let valid = row.as_ref().is_some_and(|r| {
            r.revoked_at.is_none() && constant_time_eq(&r.secret_hash, &presented)
        });
        let Some(row) = row.filter(|_| valid) else {
            self.throttle
                .record_failure(&account, address)
                .map_err(|retry_after| IdentityError::Throttled { retry_after })?;
            return Err(OAuthError::InvalidClient { basic });
        };
        let granted: Vec<String> = row
            .scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let scopes = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => granted,
            Some(s) => {
                let asked: Vec<String> = s
                    .split(' ')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = asked.iter().find(|a| !granted.contains(a)) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope `{bad}` is not granted to this client"
                    )));
                }
                asked
            }
        };
        Ok(self.respond(
            Grant {
                subject: ApiClientId(row.id).to_string(),
                actor: Actor::Client,
                scopes,
                session: None,
                generation,
            },
            None,
            self.clock.now(),
        )?)
    }

    fn respond(
        &self,
        grant: Grant,
        refresh_token: Option<String>,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, tokens::KeyringError> {
        let access_token = self.tokens.issue(&grant, now)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".to_owned(),
            expires_in: self.tokens.access_ttl().whole_seconds(),
            refresh_token,
            scope: grant.scopes.join(" "),
        })
    }

    /// Changes the calling customer's password, checking the current one (failures are
    /// throttled as sign-ins are). Every session and access token of the customer ends, the
    /// caller's too; the answer is a new session's tokens, so the caller stays signed in.
    pub async fn change_customer_password(
        &self,
        principal: &Principal,
        current_password: &str,
        new_password: &str,
        address: Option<IpAddr>,
    ) -> Result<TokenResponse, IdentityError> {
        let id: CustomerId = principal
            .subject
            .parse()
            .map_err(|_| IdentityError::CustomerNotFound)?;
        let row = {
            let mut conn = self.db.read().await?;
            store::find_customer(&mut conn, id.0)
                .await?
                .ok_or(IdentityError::CustomerNotFound)?
        };
        self.throttle
            .check(&row.email, address)
            .map_err(|retry_after| IdentityError::Throttled { retry_after })?;
        let mut v = Violations::new();
        let password = v.check(
            "/new_password",
            Password::parse(new_password, Some(&row.email)),
        );
        if !self
            .hasher
            .verify(current_password, Some(row.password_hash.clone()))
            .await?
        {
            metrics::counter!("emporium_auth_login_failures_total").increment(1);
            self.throttle
                .record_failure(&row.email, address)
                .map_err(|retry_after| IdentityError::Throttled { retry_after })?;
            v.push(
                "/current_password",
                "incorrect",
                "the current password is wrong",
            );
        }
        v.finish().map_err(IdentityError::Invalid)?;
        let Some(password) = password else {
            return Err(IdentityError::Invalid(Vec::new()));
        };
        let password_hash = self.hasher.hash(password.expose()).await?;

        let now = self.clock.now();
        let subject = id.to_string();
        let family = Uuid::now_v7();
        let (refresh, refresh_hash) = tokens::new_refresh_token()?;
        let mut tx = self.db.begin_write().await?;
        let version = store::set_customer_password(&mut tx, id.0, &password_hash, now)
            .await?
            .ok_or(IdentityError::CustomerNotFound)?;
        let generation = end_tokens_in(&mut tx, &subject, now).await?;
        store::insert_family(&mut tx, family, &subject, generation, now).await?;
        store::insert_refresh(
            &mut tx,
            &refresh_hash,
            family,
            &subject,
            STORE_SCOPE,
            now,
            now + self.lifetimes.refresh,
        )
        .await?;
        let event = events::CustomerPasswordChanged { customer_id: id };
        tx.record(&event, version, now).await?;
        tx.commit().await?;
        self.tokens.revocations().note(&subject, generation, now);
        Ok(self.respond(
            Grant {
                subject,
                actor: Actor::Customer,
                scopes: vec![STORE_SCOPE.to_owned()],
                session: Some(family.simple().to_string()),
                generation,
            },
            Some(refresh),
            now,
        )?)
    }

    /// Revokes the caller's login session: its refresh tokens stop working. Access tokens
    /// already issued live until they expire (minutes).
    pub async fn logout(&self, principal: &Principal) -> Result<(), IdentityError> {
        let Some(family) = principal
            .session
            .as_deref()
            .and_then(|s| Uuid::try_parse(s).ok())
        else {
            return Ok(());
        };
        let mut tx = self.db.begin_write().await?;
        store::revoke_family(&mut tx, family, self.clock.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Reads the token generations that moved since the last read (every process runs this
    /// every couple of seconds, and once before serving), so changes made by other processes
    /// reach this one's verifier.
    pub async fn refresh_revocations(&self) -> Result<usize, IdentityError> {
        Ok(self
            .tokens
            .revocations()
            .refresh(&self.db, self.clock.now())
            .await?)
    }

    /// Every token generation that moved after `since`, for a process that verifies tokens
    /// without identity's tables.
    pub async fn revocations_since(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<crate::revocation::Revocation>, IdentityError> {
        let mut conn = self.db.read().await?;
        Ok(store::list_revocations_since(&mut conn, since).await?)
    }

    /// The customer a principal is.
    pub async fn me(&self, principal: &Principal) -> Result<Customer, IdentityError> {
        let id: CustomerId = principal
            .subject
            .parse()
            .map_err(|_| IdentityError::CustomerNotFound)?;
        self.get_customer(id).await
    }

    /// The customer with `id` (through the customer cache).
    pub async fn get_customer(&self, id: CustomerId) -> Result<Customer, IdentityError> {
        if let Some(hit) = self.customers.get(&id.0) {
            return Ok(hit);
        }
        let mut conn = self.db.read().await?;
        let customer = store::find_customer(&mut conn, id.0)
            .await?
            .map(|r| customer_of(&r))
            .ok_or(IdentityError::CustomerNotFound)?;
        self.customers.insert(id.0, customer.clone());
        Ok(customer)
    }

    /// Sets customer `id`'s groups (replacing them) for staff user `actor`. A group name is 1 to
    /// 64 lower-case letters, digits, `-` or `_`; at most 20 groups; repeats count once.
    pub async fn set_customer_groups(
        &self,
        id: CustomerId,
        groups: &[String],
        actor: &str,
    ) -> Result<Customer, IdentityError> {
        let groups = domain::parse_groups(groups).map_err(IdentityError::Invalid)?;
        let now = self.clock.now();
        let json = serde_json::Value::from(groups.clone()).to_string();
        let mut tx = self.db.begin_write().await?;
        let row = store::set_customer_groups(&mut tx, id.0, &json, now)
            .await?
            .ok_or(IdentityError::CustomerNotFound)?;
        let event = events::CustomerGroupsChanged {
            customer_id: id,
            groups,
            changed_by: actor.to_owned(),
        };
        tx.record(&event, row.version, now).await?;
        tx.commit().await?;
        self.customers.invalidate(&id.0);
        Ok(customer_of(&row))
    }

    /// Customers, newest first, optionally those whose e-mail contains `search`.
    pub async fn list_customers(
        &self,
        search: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Customer>, IdentityError> {
        let before = page_start(cursor)?;
        let limit = page_limit(limit)?;
        let needle = search.unwrap_or_default().trim().to_lowercase();
        if needle.chars().count() > 254 {
            return Err(IdentityError::Invalid(vec![FieldError::new(
                "/email",
                "too_long",
                "at most 254 characters",
            )]));
        }
        let escaped = needle
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let mut conn = self.db.read().await?;
        let rows = store::list_customers(&mut conn, before, &pattern, limit).await?;
        Ok(page_of(rows, limit, |r| r.id, customer_of))
    }

    /// Creates a staff user; `created_by` is a `usr_…` id or `cli`.
    pub async fn create_staff(
        &self,
        cmd: CreateStaffUser,
        created_by: &str,
    ) -> Result<StaffUser, IdentityError> {
        let (email, name, password_hash) = self
            .new_account(&cmd.email, &cmd.password, &cmd.name)
            .await?;
        let now = self.clock.now();
        let row = StaffRow {
            id: StaffUserId::generate().0,
            email: email.as_str().to_owned(),
            name,
            role: cmd.role.as_str().to_owned(),
            password_hash,
            created_at: now,
            version: 1,
            disabled_at: None,
        };
        let mut tx = self.db.begin_write().await?;
        store::insert_staff(&mut tx, &row)
            .await
            .map_err(IdentityError::taken_or_storage)?;
        let event = events::StaffUserCreated {
            user_id: StaffUserId(row.id),
            email: row.email.clone(),
            role: row.role.clone(),
            created_by: created_by.to_owned(),
        };
        tx.record(&event, 1, now).await?;
        tx.commit().await?;
        Ok(staff_of(&row))
    }

    /// Staff users, newest first.
    pub async fn list_staff(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<StaffUser>, IdentityError> {
        let before = page_start(cursor)?;
        let limit = page_limit(limit)?;
        let mut conn = self.db.read().await?;
        let rows = store::list_staff(&mut conn, before, limit).await?;
        Ok(page_of(rows, limit, |r| r.id, staff_of))
    }

    /// The staff user with `id`.
    pub async fn get_staff(&self, id: StaffUserId) -> Result<StaffUser, IdentityError> {
        let mut conn = self.db.read().await?;
        store::find_staff(&mut conn, id.0)
            .await?
            .map(|r| staff_of(&r))
            .ok_or(IdentityError::UserNotFound)
    }

    /// Changes a staff user. The last owner who is not disabled cannot be demoted or disabled. A
    /// new password, a lower role or disabling ends the user's tokens: its sessions are revoked
    /// and its access tokens refused (the caller's own, when owners change themselves).
    pub async fn update_staff(
        &self,
        id: StaffUserId,
        cmd: UpdateStaffUser,
        by: &str,
    ) -> Result<StaffUser, IdentityError> {
        let mut v = Violations::new();
        let name = cmd
            .name
            .as_deref()
            .and_then(|n| v.check("/name", domain::parse_name(n)));
        let password = cmd
            .password
            .as_deref()
            .and_then(|p| v.check("/password", Password::parse(p, None)));
        v.finish().map_err(IdentityError::Invalid)?;
        let new_hash = match &password {
            Some(p) => Some(self.hasher.hash(p.expose()).await?),
            None => None,
        };
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let owners = store::lock_owners(&mut tx).await?;
        let mut row = store::find_staff(&mut tx, id.0)
            .await?
            .ok_or(IdentityError::UserNotFound)?;
        let demoted = cmd
            .role
            .is_some_and(|role| Role::parse(&row.role).is_none_or(|old| role < old));
        let last_owner = owners == [id.0];
        if let Some(role) = cmd.role {
            if row.role == "owner" && role != Role::Owner && last_owner {
                return Err(IdentityError::LastOwner);
            }
            row.role = role.as_str().to_owned();
        }
        let disabling = cmd.disabled == Some(true) && row.disabled_at.is_none();
        if disabling && last_owner {
            return Err(IdentityError::LastOwner);
        }
        match cmd.disabled {
            Some(true) if disabling => row.disabled_at = Some(now),
            Some(false) => row.disabled_at = None,
            _ => {}
        }
        if let Some(name) = name {
            row.name = name;
        }
        if let Some(hash) = new_hash.clone() {
            row.password_hash = hash;
        }
        row.version += 1;
        store::update_staff(&mut tx, &row, now).await?;
        let subject = id.to_string();
        let ended = if demoted || disabling || new_hash.is_some() {
            Some(end_tokens_in(&mut tx, &subject, now).await?)
        } else {
            None
        };
        let event = events::StaffUserUpdated {
            user_id: id,
            role: row.role.clone(),
            password_changed: new_hash.is_some(),
            disabled: row.disabled_at.is_some(),
            updated_by: by.to_owned(),
        };
        tx.record(&event, row.version, now).await?;
        tx.commit().await?;
        if let Some(generation) = ended {
            self.tokens.revocations().note(&subject, generation, now);
        }
        Ok(staff_of(&row))
    }

    /// Removes a staff user and ends its tokens. The last owner who is not disabled cannot be
    /// removed.
    pub async fn delete_staff(&self, id: StaffUserId, by: &str) -> Result<(), IdentityError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let owners = store::lock_owners(&mut tx).await?;
        if owners == [id.0] {
            return Err(IdentityError::LastOwner);
        }
        let row = store::find_staff(&mut tx, id.0)
            .await?
            .ok_or(IdentityError::UserNotFound)?;
        store::delete_staff(&mut tx, id.0).await?;
        let subject = id.to_string();
        let generation = end_tokens_in(&mut tx, &subject, now).await?;
        let event = events::StaffUserDeleted {
            user_id: id,
            deleted_by: by.to_owned(),
        };
        tx.record(&event, row.version + 1, now).await?;
        tx.commit().await?;
        self.tokens.revocations().note(&subject, generation, now);
        Ok(())
    }

    /// Creates an API client; its secret is returned this once.
    pub async fn create_client(
        &self,
        cmd: CreateApiClient,
        by: &str,
    ) -> Result<NewApiClient, IdentityError> {
        let mut v = Violations::new();
        let name = v.check("/name", domain::parse_name(&cmd.name));
        let scopes = v.check("/scopes", domain::parse_client_scopes(&cmd.scopes));
        v.finish().map_err(IdentityError::Invalid)?;
        let (Some(name), Some(scopes)) = (name, scopes) else {
            return Err(IdentityError::Invalid(Vec::new()));
        };
        let secret = format!("sec_{}", tokens::random_token()?);
        let now = self.clock.now();
        let row = ClientRow {
            id: ApiClientId::generate().0,
            name,
            secret_hash: tokens::hash_secret(&secret),
            scopes: scopes.join(" "),
            created_by: by.to_owned(),
            created_at: now,
            revoked_at: None,
        };
        let mut tx = self.db.begin_write().await?;
        store::insert_client(&mut tx, &row).await?;
        let event = events::ApiClientCreated {
            client_id: ApiClientId(row.id),
            name: row.name.clone(),
            scopes,
            created_by: by.to_owned(),
        };
        tx.record(&event, 1, now).await?;
        tx.commit().await?;
        Ok(NewApiClient {
            client: client_of(&row),
            client_secret: secret,
        })
    }

    /// API clients, newest first (revoked ones included, marked).
    pub async fn list_clients(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<ApiClient>, IdentityError> {
        let before = page_start(cursor)?;
        let limit = page_limit(limit)?;
        let mut conn = self.db.read().await?;
        let rows = store::list_clients(&mut conn, before, limit).await?;
        Ok(page_of(rows, limit, |r| r.id, client_of))
    }

    /// Revokes an API client (idempotent): it gets no new tokens, and those it holds are refused.
    pub async fn revoke_client(&self, id: ApiClientId, by: &str) -> Result<(), IdentityError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        if store::revoke_client(&mut tx, id.0, now).await? == 0 {
            // Already revoked is success; never existing is not.
            return match store::find_client(&mut tx, id.0).await? {
                Some(_) => Ok(()),
                None => Err(IdentityError::ClientNotFound),
            };
        }
        let subject = id.to_string();
        let generation = end_tokens_in(&mut tx, &subject, now).await?;
        let event = events::ApiClientRevoked {
            client_id: id,
            revoked_by: by.to_owned(),
        };
        tx.record(&event, 2, now).await?;
        tx.commit().await?;
        self.tokens.revocations().note(&subject, generation, now);
        Ok(())
    }
}

/// Compares two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[async_trait::async_trait]
impl IdentityApi for IdentityService {
    async fn find_customer(&self, id: CustomerId) -> Result<Option<Customer>, IdentityError> {
        let mut conn = self.db.read().await?;
        Ok(store::find_customer(&mut conn, id.0)
            .await?
            .map(|r| customer_of(&r)))
    }
}
