//! The one typed configuration, layered defaults < `emporium.toml` < `EMPORIUM_*` environment <
//! command-line flags, and validated once at start. Only this crate reads config or environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use emporium_kernel::Secret;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Folder for the SQLite database, signing keys, media (`media/`, unless in S3) and (later)
    /// the search index.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite:PATH`; default: `sqlite:<data_dir>/emporium.db`.
    pub database_url: Option<Secret>,
    /// Seed demo data at start when the store has none (see `emporium::demo`).
    pub demo: bool,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `emporium=debug,info`.
    pub log_level: String,
    /// Threads of the async runtime; 0: twice the CPUs the process may use. More threads than
    /// CPUs keep requests moving while others wait on a database connection's thread to wake
    /// (see `docs/BENCHMARKS.md`).
    pub worker_threads: usize,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub outbox: OutboxConfig,
    pub media: MediaConfig,
    pub cache: CacheSettings,
    pub payments: PaymentsConfig,
    pub recovery: RecoveryConfig,
    /// Crash points to enable, for fault tests only (e.g. `relay.before_publish`).
    pub crash_points: Vec<String>,
    /// The service groups this process runs (`identity`, `catalog`, `search`, `inventory`,
    /// `ordering`); empty: all of them, the all-in-one store. A list, or one string of names
    /// separated by commas (`EMPORIUM_SERVICES=catalog,search`).
    #[serde(deserialize_with = "group_list")]
    pub services: Vec<Group>,
    /// How this process finds and calls the groups it does not run, and carries events.
    pub cluster: ClusterConfig,
    /// Webhooks and e-mail.
    pub notify: NotifyConfig,
    /// The staff web UI at `/admin`.
    pub admin: AdminSettings,
}

/// The staff web UI at `/admin`, a client of the store's own HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Serve the UI.
    pub enabled: bool,
    /// The base URL the UI calls the API at (`http://…`, no trailing slash); unset: this
    /// process's own bound address. Set it to the gateway's address when the groups run apart.
    pub api_url: Option<String>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            api_url: None,
        }
    }
}

/// A service group: the contexts that run, and own their tables, together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Customers, staff, API clients, tokens.
    Identity,
    /// Products and media.
    Catalog,
    /// The search index.
    Search,
    /// Stock and reservations.
    Inventory,
    /// Carts, pricing, payments, checkout and orders.
    Ordering,
}

impl Group {
    /// Every group, in dependency order.
    pub const ALL: [Group; 5] = [
        Group::Identity,
        Group::Catalog,
        Group::Search,
        Group::Inventory,
        Group::Ordering,
    ];

    /// The group's name, as `--services` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Catalog => "catalog",
            Self::Search => "search",
            Self::Inventory => "inventory",
            Self::Ordering => "ordering",
        }
    }

    /// Parses a group name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name.trim())
    }
}

/// A list of groups, or one string of group names separated by commas.
fn group_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Group>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<Group>),
        Text(String),
    }
    match Names::deserialize(d)? {
        Names::List(groups) => Ok(groups),
        Names::Text(text) => text
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|n| {
                Group::parse(n).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown service group {n:?}; known: identity, catalog, search, inventory, ordering"
                    ))
                })
            })
            .collect(),
    }
}

/// The scaled-out shape: events, service calls and their credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// NATS with JetStream (`nats://host:4222`): events between processes. Required when
    /// `services` names only some groups.
    pub nats_url: Option<String>,
    /// The secret every process of the cluster signs and verifies service credentials with;
    /// at least 32 bytes. Required when `services` names only some groups.
    pub service_secret: Option<Secret>,
    /// A secret being rotated out: still accepted from callers, never used to sign.
    pub previous_service_secret: Option<Secret>,
    /// The instances of each group this process calls, by base URL (`http://10.0.0.7:8080`);
    /// a group not listed is found in the registry.
    pub upstreams: std::collections::BTreeMap<Group, Vec<String>>,
    /// The deadline of one call to another group, retries included.
    pub call_timeout_ms: u64,
    /// Further attempts of an idempotent call, each on another instance when there is one.
    pub call_retries: u32,
    /// At shutdown, how long the process keeps serving after it reports not ready, so that
    /// load balancers stop sending it requests before it stops taking them.
    pub drain_ms: u64,
    /// Where the other processes reach this one (`http://10.0.0.7:8080`), as registered;
    /// default: `http://` and the listening address (which must then not be a wildcard).
    pub advertise_url: Option<String>,
    /// The store's name on a shared NATS server: its event streams are `<NAMESPACE>_<GROUP>`
    /// over subjects `<namespace>.<event type>`, so two stores never see each other's events.
    pub namespace: String,
    /// The NATS key-value bucket of the registry.
    pub registry_bucket: String,
    /// An instance that stops renewing its registration leaves the registry after this long.
    pub registry_ttl_ms: u64,
    /// The version this instance registers, for gray releases.
    pub version: String,
    /// This instance's share of its group's traffic, relative to the others'.
    pub weight: u32,
    /// Where this instance runs (zone, rack), as registered.
    pub zone: String,
    /// When the catalog runs apart and does not answer, carts show the last data known of
    /// their lines; a checkout takes that data only while it is younger than this.
    pub catalog_stale_limit_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            service_secret: None,
            previous_service_secret: None,
            upstreams: std::collections::BTreeMap::new(),
            call_timeout_ms: 5_000,
            call_retries: 2,
            drain_ms: 0,
            advertise_url: None,
            namespace: "emporium".to_owned(),
            registry_bucket: "emporium-registry".to_owned(),
            registry_ttl_ms: 10_000,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            weight: 100,
            zone: String::new(),
            catalog_stale_limit_ms: 300_000,
        }
    }
}

impl Config {
    /// The groups this process runs: `services`, or every group.
    pub fn groups(&self) -> Vec<Group> {
        if self.services.is_empty() {
            return Group::ALL.to_vec();
        }
        let mut groups = self.services.clone();
        groups.sort();
        groups.dedup();
        groups
    }

    /// True when this process runs every group (the all-in-one store).
    pub fn all_in_one(&self) -> bool {
        self.groups().len() == Group::ALL.len()
    }
}

/// Payment providers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// The providers a checkout may choose (`manual`: offline payment that staff capture once
    /// the money arrived; `test`: outcomes by token, never on a real store). None by default;
    /// `demo` adds `test`. Intents made with a provider later disabled can still be captured,
    /// voided and refunded.
    pub providers: Vec<String>,
    /// Failed authorisations in a row after which a provider's breaker opens: checkouts then
    /// fail at once with 503 `payment_unavailable` instead of waiting on it.
    pub breaker_failures: u32,
    /// How long an open breaker pauses a provider's authorisations before one probe.
    pub breaker_open_ms: u64,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            breaker_failures: 5,
            breaker_open_ms: 10_000,
        }
    }
}

/// The recovery of work that a crash, a dropped request or a failed compensation left
/// unfinished: it runs at start and then continuously, never waiting for a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// An unfinished checkout, or an order's unsettled capture, cancellation or refund, that
    /// has not moved for this long is taken over: compensated (or completed, once placed),
    /// or settled with the payment. Longer than any single step takes.
    pub idle_after_ms: u64,
    /// How often recovery looks for such work.
    pub sweep_interval_ms: u64,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            idle_after_ms: 60_000,
            sweep_interval_ms: 5_000,
        }
    }
}

/// Webhooks and e-mail (`notify`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub webhooks: WebhooksConfig,
    pub email: EmailConfig,
}

/// How webhook deliveries are made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// One attempt's deadline: connecting, sending and reading the answer.
    pub timeout_ms: u64,
    /// Attempts under way at once in this process, over every endpoint.
    pub max_in_flight: usize,
    /// Attempts under way at once to one endpoint.
    pub per_endpoint: usize,
    /// The waits between attempts; when spent, a delivery is dead-lettered. Default: 13
    /// attempts over about three days.
    pub retry_delays_ms: Vec<u64>,
    /// An endpoint with no successful delivery for this long is disabled and staff are told.
    pub disable_after_ms: u64,
    /// Networks (CIDR) deliveries may reach beside public addresses, e.g. `["10.0.0.0/8"]`
    /// for receivers inside the store's own network. Loopback, private, link-local and other
    /// special-purpose addresses are refused otherwise.
    pub allowed_networks: Vec<String>,
    /// The most of an answer's body read; the rest is never read.
    pub response_max_bytes: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            max_in_flight: 64,
            per_endpoint: 4,
            retry_delays_ms: emporium_notify::domain::WEBHOOK_RETRY_DELAYS_MS.to_vec(),
            disable_after_ms: 5 * 86_400_000,
            allowed_networks: Vec::new(),
            response_max_bytes: 64 * 1024,
        }
    }
}

/// E-mail to customers and staff.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// `smtp://host:port`, `smtps://user:password@host` or `smtp://host?tls=required`; none:
    /// no e-mail is composed or sent.
    pub smtp_url: Option<Secret>,
    /// The sender: `Name <address>` or an address.
    pub from: String,
    /// Staff addresses told of new orders, low stock and disabled webhook endpoints.
    pub staff: Vec<String>,
    /// The store's name in subjects and footers.
    pub store_name: String,
    /// A variant with fewer available units than this is low on stock.
    pub low_stock_threshold: i64,
    /// Each send's deadline.
    pub timeout_ms: u64,
    /// The waits between attempts of a message; when spent, it is marked `failed`. Default:
    /// 12 attempts over about a day.
    pub retry_delays_ms: Vec<u64>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Emporium <store@localhost>".to_owned(),
            staff: Vec::new(),
            store_name: "Emporium".to_owned(),
            low_stock_threshold: 5,
            timeout_ms: 10_000,
            retry_delays_ms: emporium_notify::domain::EMAIL_RETRY_DELAYS_MS.to_vec(),
        }
    }
}

impl Config {
    /// The providers a checkout may choose: the configured ones, and `test` in a demo store.
    pub fn payment_providers(&self) -> Vec<String> {
        let mut names = self.payments.providers.clone();
        if self.demo && !names.iter().any(|n| n == "test") {
            names.push("test".to_owned());
        }
        names
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Database pools.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Reader pool size on SQLite; whole pool on PostgreSQL.
    pub max_connections: u32,
    /// SQLite `synchronous`: `full` (an acknowledged write survives power loss) or `normal`.
    pub sqlite_synchronous: SqliteSync,
    /// Milliseconds to wait for a pooled connection before answering 503.
    pub acquire_timeout_ms: u64,
    /// Page cache of the SQLite writer connection, in MiB (`import` and `seed` use at least 64).
    pub sqlite_writer_cache_mib: u32,
    /// WAL size, in MiB, after which a SQLite commit copies the WAL into the database (`import`
    /// and `seed` use at least 400). Larger: fewer copies of pages written again and again,
    /// but a longer pause for the commit that checkpoints.
    pub sqlite_checkpoint_mib: u32,
}

/// SQLite durability setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}

/// HTTP limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request taking longer is answered 503 `request_timeout`.
    pub request_timeout_ms: u64,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace_ms: u64,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for sign-in throttling and
    /// logs). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// Tokens and sign-in throttling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Access-token lifetime.
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime.
    pub refresh_token_ttl_days: u64,
    /// The signing keyring; default `<data_dir>/keys/jwt-signing-keys.json`.
    pub signing_keys_file: Option<PathBuf>,
    /// Failed sign-ins allowed per account before it is blocked.
    pub login_failures_per_account: u32,
    /// One more failure is allowed per account after this many seconds.
    pub account_refill_secs: u64,
    /// Failed sign-ins allowed per client address before it is blocked.
    pub login_failures_per_address: u32,
    /// One more failure is allowed per address after this many seconds.
    pub address_refill_secs: u64,
}

/// The outbox relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// The relay also looks for undelivered events this often (it is woken on every commit).
    pub poll_interval_ms: u64,
    /// Delivered events are kept this many hours, then deleted (0: kept for ever). The event
    /// journal keeps its own copy.
    pub retention_hours: u64,
}

/// The storefront caches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Memory budget of the product cache (rendered responses by id, and handle to id), in MiB.
    /// A catalog larger than the budget keeps its most used products cached.
    pub product_mib: u64,
    /// `redis://…` or `rediss://…` (TLS), password included if need be: a second level shared
    /// by every instance, between the product cache and the database. None: in-process only.
    pub redis_url: Option<Secret>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            product_mib: 128,
            redis_url: None,
        }
    }
}

/// Product media (images) storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Largest accepted media file, in bytes (larger uploads answer 413 `media_too_large`).
    pub max_bytes: usize,
    /// An S3-compatible bucket; when absent media are kept in `<data_dir>/media`.
    pub s3: Option<MediaS3Settings>,
}

/// An S3-compatible bucket for product media.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaS3Settings {
    /// The bucket name.
    pub bucket: String,
    /// The bucket's region (`us-east-1` by default, which most S3-compatible servers accept).
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// The server's URL for S3-compatible services (MinIO, R2, …); AWS S3 when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The access key; when absent, the environment's credentials (instance role, web identity).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret key of `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Allows a plain `http://` endpoint (a server on a private network).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_s3_region() -> String {
    "us-east-1".to_owned()
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            s3: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            demo: false,
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
            worker_threads: 0,
            database: DatabaseConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            outbox: OutboxConfig::default(),
            media: MediaConfig::default(),
            cache: CacheSettings::default(),
            payments: PaymentsConfig::default(),
            recovery: RecoveryConfig::default(),
            crash_points: Vec::new(),
            services: Vec::new(),
            cluster: ClusterConfig::default(),
            notify: NotifyConfig::default(),
            admin: AdminSettings::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 8,
            sqlite_synchronous: SqliteSync::Full,
            acquire_timeout_ms: 5_000,
            sqlite_writer_cache_mib: 16,
            sqlite_checkpoint_mib: 40,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 30_000,
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_ms: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 900,
            refresh_token_ttl_days: 30,
            signing_keys_file: None,
            login_failures_per_account: 5,
            account_refill_secs: 60,
            login_failures_per_address: 20,
            address_refill_secs: 6,
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1_000,
            retention_hours: 168,
        }
    }
}

/// The providers this build knows.
const PAYMENT_PROVIDERS: [&str; 2] = ["manual", "test"];

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<Group>>,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: `{key}` {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Config {
    /// The async runtime's thread count: `worker_threads`, or twice the CPUs available.
    pub fn runtime_threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
    }

    /// Loads the layers: defaults, then `file` (if it exists; `emporium.toml` by default), then
    /// `EMPORIUM_*` variables (nested keys with `__`, e.g. `EMPORIUM_HTTP__BODY_LIMIT_BYTES`),
    /// then `overrides`; and validates the result.
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let default_file = PathBuf::from("emporium.toml");
        let file = file.unwrap_or(&default_file);
        let env = Env::prefixed("EMPORIUM_")
            .map(|key| key.as_str().to_ascii_lowercase().into())
            .split("__")
            // Variables of the test harness and the config-file pointer are not settings.
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                // `EMPORIUM_GATEWAY__*` belongs to `emporium gateway`.
                !key.starts_with("test_") && key != "config" && !key.starts_with("gateway")
            });
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if let Some(url) = &self.database_url {
            let u = url.expose();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                return invalid(
                    "database_url",
                    "must start with sqlite:, postgres:// or postgresql://",
                );
            }
        }
        if let Some(name) = self
            .payments
            .providers
            .iter()
            .find(|n| !PAYMENT_PROVIDERS.contains(&n.as_str()))
        {
            return Err(ConfigError::Invalid {
                key: "payments.providers",
                reason: format!("unknown provider {name}; known: manual, test"),
            });
        }
        self.validate_notify()?;
        if let Some(url) = &self.admin.api_url
            && !(url.starts_with("http://") && url.len() > "http://".len())
        {
            return invalid(
                "admin.api_url",
                "must be an http:// URL (the UI calls the API without TLS, on a trusted network)",
            );
        }
        if self.payments.breaker_failures == 0 {
            return invalid("payments.breaker_failures", "must be at least 1");
        }
        if self.payments.breaker_open_ms == 0 {
            return invalid("payments.breaker_open_ms", "must be at least 1");
        }
        if self.recovery.idle_after_ms == 0 {
            return invalid("recovery.idle_after_ms", "must be at least 1");
        }
        if self.recovery.sweep_interval_ms == 0 {
            return invalid("recovery.sweep_interval_ms", "must be at least 1");
        }
        if self.worker_threads > 1024 {
            return invalid("worker_threads", "must be between 0 (automatic) and 1024");
        }
        if !(1..=65_536).contains(&self.cache.product_mib) {
            return invalid("cache.product_mib", "must be between 1 and 65536");
        }
        if let Some(url) = &self.cache.redis_url {
            let u = url.expose();
            if !(u.starts_with("redis://") || u.starts_with("rediss://"))
                || u.contains(char::is_whitespace)
            {
                return invalid("cache.redis_url", "must start with redis:// or rediss://");
            }
        }
        if !(1..=65_536).contains(&self.database.sqlite_writer_cache_mib) {
            return invalid(
                "database.sqlite_writer_cache_mib",
                "must be between 1 and 65536",
            );
        }
        if !(1..=65_536).contains(&self.database.sqlite_checkpoint_mib) {
            return invalid(
                "database.sqlite_checkpoint_mib",
                "must be between 1 and 65536",
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.http.body_limit_bytes == 0 {
            return invalid("http.body_limit_bytes", "must be at least 1");
        }
        if self.http.request_timeout_ms == 0 {
            return invalid("http.request_timeout_ms", "must be at least 1");
        }
        if !(60..=86_400).contains(&self.auth.access_token_ttl_secs) {
            return invalid("auth.access_token_ttl_secs", "must be between 60 and 86400");
        }
        if self.auth.refresh_token_ttl_days == 0 {
            return invalid("auth.refresh_token_ttl_days", "must be at least 1");
        }
        if self.auth.login_failures_per_account == 0 {
            return invalid("auth.login_failures_per_account", "must be at least 1");
        }
        if self.auth.login_failures_per_address == 0 {
            return invalid("auth.login_failures_per_address", "must be at least 1");
        }
        if self.media.max_bytes == 0 {
            return invalid("media.max_bytes", "must be at least 1");
        }
        if let Some(s3) = &self.media.s3 {
            if s3.bucket.trim().is_empty() {
                return invalid("media.s3.bucket", "must not be empty");
            }
            if s3.region.trim().is_empty() {
                return invalid("media.s3.region", "must not be empty");
            }
            if let Some(endpoint) = &s3.endpoint {
                if endpoint.starts_with("http://") {
                    if !s3.allow_http {
                        return invalid(
                            "media.s3.endpoint",
                            "is plain http:// but media.s3.allow_http is false",
                        );
                    }
                } else if !endpoint.starts_with("https://") {
                    return invalid("media.s3.endpoint", "must start with https:// or http://");
                }
            }
            if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
                return invalid(
                    "media.s3.secret_access_key",
                    "and media.s3.access_key_id must be given together",
                );
            }
        }
        self.validate_cluster()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return invalid("log_level", "is not a valid tracing filter");
        }
        Ok(())
    }

    fn validate_notify(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        let w = &self.notify.webhooks;
        if let Err(net) = emporium_notify::Destinations::parse(&w.allowed_networks) {
            return invalid(
                "notify.webhooks.allowed_networks",
                format!("{net} is not a network in CIDR form (10.0.0.0/8, ::1/128)"),
            );
        }
        if w.timeout_ms == 0 || w.max_in_flight == 0 || w.per_endpoint == 0 {
            return invalid(
                "notify.webhooks",
                "timeout_ms, max_in_flight and per_endpoint must be at least 1".into(),
            );
        }
        if w.retry_delays_ms.len() > 100 {
            return invalid(
                "notify.webhooks.retry_delays_ms",
                "at most 100 retries".into(),
            );
        }
        let e = &self.notify.email;
        if e.smtp_url.is_some() {
            if !emporium_notify::is_mailbox(&e.from) {
                return invalid(
                    "notify.email.from",
                    "not an e-mail address (`Name <address>` or an address)".into(),
                );
            }
            if let Some(bad) = e.staff.iter().find(|a| !emporium_notify::is_mailbox(a)) {
                return invalid(
                    "notify.email.staff",
                    format!("{bad} is not an e-mail address"),
                );
            }
        }
        Ok(())
    }

    /// The webhook settings notify works with.
    pub fn webhook_settings(&self) -> emporium_notify::WebhookSettings {
        let w = &self.notify.webhooks;
        emporium_notify::WebhookSettings {
            timeout: Duration::from_millis(w.timeout_ms),
            max_in_flight: w.max_in_flight,
            per_endpoint: w.per_endpoint,
            retry_delays_ms: w.retry_delays_ms.clone(),
            disable_after: Duration::from_millis(w.disable_after_ms),
            destinations: emporium_notify::Destinations::parse(&w.allowed_networks)
                .unwrap_or_default(),
            response_max_bytes: w.response_max_bytes,
        }
    }

    /// The e-mail settings notify works with.
    pub fn mail_settings(&self) -> emporium_notify::MailSettings {
        let e = &self.notify.email;
        emporium_notify::MailSettings {
            from: e.from.clone(),
            staff: e.staff.clone(),
            store_name: e.store_name.clone(),
            low_stock_threshold: e.low_stock_threshold,
            timeout: Duration::from_millis(e.timeout_ms),
            retry_delays_ms: e.retry_delays_ms.clone(),
        }
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        let cluster = &self.cluster;
        for (group, urls) in &cluster.upstreams {
            if let Some(url) = urls
                .iter()
                .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                return invalid(
                    "cluster.upstreams",
                    format!(
                        "{}: {url} must start with http:// or https://",
                        group.name()
                    ),
                );
            }
        }
        if let Some(url) = &cluster.nats_url
            && !(url.starts_with("nats://") || url.starts_with("tls://"))
        {
            return invalid(
                "cluster.nats_url",
                "must start with nats:// or tls://".into(),
            );
        }
        for (key, secret) in [
            ("cluster.service_secret", &cluster.service_secret),
            (
                "cluster.previous_service_secret",
                &cluster.previous_service_secret,
            ),
        ] {
            if let Some(secret) = secret
                && secret.expose().len() < emporium_http::service::MIN_SECRET_BYTES
            {
                return invalid(key, "must be at least 32 bytes".into());
            }
        }
        if cluster.call_timeout_ms == 0 {
            return invalid("cluster.call_timeout_ms", "must be at least 1".into());
        }
        if let Some(url) = &cluster.advertise_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid(
                "cluster.advertise_url",
                "must start with http:// or https://".into(),
            );
        }
        if cluster.registry_ttl_ms < 1_000 {
            return invalid("cluster.registry_ttl_ms", "must be at least 1000".into());
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !cluster
            .namespace
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || cluster.namespace.is_empty()
        {
            return invalid(
                "cluster.namespace",
                "must be lower-case letters, digits and _".into(),
            );
        }
        if !token(&cluster.registry_bucket) {
            return invalid(
                "cluster.registry_bucket",
                "must be letters, digits, - and _".into(),
            );
        }
        if self.all_in_one() {
            return Ok(());
        }
        if cluster.service_secret.is_none() {
            return invalid(
                "cluster.service_secret",
                "is required when `services` names only some groups".into(),
            );
        }
        if cluster.nats_url.is_none() {
            return invalid(
                "cluster.nats_url",
                "is required when `services` names only some groups (events cross processes through NATS)".into(),
            );
        }
        let groups = self.groups();
        // Ordering (cart, pricing, payments, orders: one transaction) runs with any of the
        // other groups; each other group may also run alone.
        let alone = [
            Group::Identity,
            Group::Catalog,
            Group::Search,
            Group::Inventory,
        ]
        .iter()
        .any(|g| groups == [*g]);
        if !groups.contains(&Group::Ordering) && !alone {
            return invalid(
                "services",
                "names ordering (with any of the other groups), or one group other than ordering alone".into(),
            );
        }
        if cluster.advertise_url.is_none() && self.listen.ip().is_unspecified() {
            return invalid(
                "cluster.advertise_url",
                "is required when listening on a wildcard address".into(),
            );
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite:{}", self.data_dir.join("emporium.db").display()),
        }
    }

    /// The signing keyring path in effect.
    pub fn signing_keys_file(&self) -> PathBuf {
        self.auth
            .signing_keys_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("jwt-signing-keys.json"))
    }

    /// The folder of product media when no S3 bucket is configured.
    pub fn media_dir(&self) -> PathBuf {
        self.data_dir.join("media")
    }

    /// The folder of the search index.
    pub fn search_dir(&self) -> PathBuf {
        self.data_dir.join("search")
    }

    /// The configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        // The payment providers as the store will take them: `demo` adds `test`.
        let mut effective = self.clone();
        effective.payments.providers = self.payment_providers();
        toml::to_string_pretty(&effective).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}
