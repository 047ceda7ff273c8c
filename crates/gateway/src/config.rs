//! The gateway's typed configuration: listen address, TLS, routes, upstream groups, limits,
//! health checks, ejection, breaker and gray release, with one `validate` that names the bad key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole gateway configuration (the `emporium` binary loads it from TOML and the environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address the gateway listens on (port 0 picks a free port).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// TLS termination; plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Path prefixes and the group each goes to; the longest matching prefix wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The static instances of each group (a registry may replace them at run time).
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Load shedding.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Rate limits.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Active health checks.
    #[serde(default)]
    pub health: HealthConfig,
    /// Passive outlier ejection.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// The circuit breaker kept per upstream instance.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Retry budget shared by all routes.
    #[serde(default)]
    pub retry_budget: RetryBudgetConfig,
    /// Gray release per group.
    #[serde(default)]
    pub release: BTreeMap<String, ReleaseConfig>,
    /// The service registry the instances of groups without static `upstreams` come from.
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
    /// A JSON file the gateway answers `GET /openapi.json` with (the whole store's document,
    /// from `emporium openapi`), where each group's processes document only their own routes.
    /// Read at start and at each reload.
    #[serde(default)]
    pub openapi_file: Option<std::path::PathBuf>,
}

/// Where the registry is: a NATS JetStream key-value bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `nats://host:4222`.
    pub nats_url: String,
    /// The bucket the store's instances register in.
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// An instance that stops renewing its entry is dropped after this long.
    #[serde(default = "default_registry_ttl_ms")]
    pub ttl_ms: u64,
}

fn default_bucket() -> String {
    "emporium-registry".to_owned()
}

fn default_registry_ttl_ms() -> u64 {
    10_000
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls: None,
            routes: Vec::new(),
            upstreams: BTreeMap::new(),
            limits: LimitsConfig::default(),
            rate_limit: RateLimitConfig::default(),
            health: HealthConfig::default(),
            outlier: OutlierConfig::default(),
            breaker: BreakerConfig::default(),
            retry_budget: RetryBudgetConfig::default(),
            release: BTreeMap::new(),
            registry: None,
            openapi_file: None,
        }
    }
}

/// Certificate and key files (PEM); both are reloaded when either file changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files are checked for changes.
    #[serde(default = "default_tls_reload_ms")]
    pub reload_interval_ms: u64,
}

fn default_tls_reload_ms() -> u64 {
    5000
}

/// How requests are spread over a group's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each instance in turn.
    #[default]
    RoundRobin,
    /// Power of two choices on outstanding requests.
    LeastOutstanding,
    /// Consistent hash ring on `hash_on` (affinity).
    Hash,
}

/// One route: a path prefix and where it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, starting with `/`; matched on whole segments' characters (longest wins).
    pub prefix: String,
    /// The upstream group (a key of `upstreams`, or a group a registry fills).
    pub group: String,
    /// Balancing algorithm.
    #[serde(default)]
    pub balance: Balance,
    /// For `hash`: a header name, or `cookie:NAME`. Without the key a request is spread round robin.
    #[serde(default)]
    pub hash_on: Option<String>,
    /// Deadline for the upstream's answer (headers), all attempts included.
    #[serde(default = "default_route_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts for idempotent methods (GET, HEAD, OPTIONS), each on another instance.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// When above 0, the last successful answer to each anonymous GET is kept and, while
    /// the group does not answer, served for up to this many seconds, marked stale
    /// (`Age`, `Cache-Status`). For reads every shopper may see, such as product pages.
    #[serde(default)]
    pub stale_if_error_secs: u64,
}

fn default_route_timeout_ms() -> u64 {
    10_000
}
fn default_retries() -> u32 {
    1
}

/// The static instance list of a group.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The instances.
    #[serde(default)]
    pub instances: Vec<Instance>,
}

/// One upstream instance of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Base URL, `http://host:port`.
    pub url: String,
    /// Release version (gray release picks by it).
    #[serde(default = "default_version")]
    pub version: String,
    /// Relative weight: turns in round robin, share of the hash ring, capacity in least
    /// outstanding; 0 takes no traffic (a drained instance).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Zone, informative.
    #[serde(default)]
    pub zone: String,
}

fn default_version() -> String {
    "1".to_owned()
}
fn default_weight() -> u32 {
    100
}

impl Instance {
    /// An instance at `url` with version "1", weight 100 and no zone.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            version: default_version(),
            weight: default_weight(),
            zone: String::new(),
        }
    }

    /// The same instance with another version.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

/// Load shedding: bounded in-flight work and queue time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests proxied at once, each until its answer is sent to the end; more wait in the
    /// queue.
    pub max_in_flight: usize,
    /// Longest wait for a slot before the request is shed with 503 `overloaded`.
    pub max_queue_ms: u64,
    /// Largest request body buffered for a retryable request, in bytes.
    pub max_buffered_body_bytes: usize,
    /// Client connections open at once; more wait in the listen backlog. Applies at start.
    pub max_connections: usize,
    /// Bytes of answers kept for routes with `stale_if_error_secs`. Applies at start.
    pub stale_max_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 2048,
            max_queue_ms: 100,
            max_buffered_body_bytes: 1024 * 1024,
            max_connections: 10_000,
            stale_max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Rate limits (0 turns a limit off).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per second over all clients.
    pub global_per_sec: f64,
    /// Requests per second per client (bearer token, else API key, else peer address).
    pub per_client_per_sec: f64,
    /// Requests allowed at once above the rate (at least 1 when a limit is on).
    pub burst: u32,
    /// When set, the limits are shared by every gateway using this Redis; Redis down falls back
    /// to the local limiter.
    pub redis_url: String,
}

/// Active health checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Path asked with GET; a 2xx answer is healthy. Empty turns active checks off.
    pub path: String,
    /// Time between checks of an instance.
    pub interval_ms: u64,
    /// Deadline of one check.
    pub timeout_ms: u64,
    /// Failed checks in a row that mark an instance down.
    pub unhealthy_after: u32,
    /// Passed checks in a row that mark it up again.
    pub healthy_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            path: "/readyz".to_owned(),
            interval_ms: 1000,
            timeout_ms: 500,
            unhealthy_after: 2,
            healthy_after: 1,
        }
    }
}

/// Passive outlier ejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// 5xx answers or connection failures in a row that eject an instance (0 turns it off).
    pub consecutive_failures: u32,
    /// Ejection time; the n-th ejection lasts n times this.
    pub base_ejection_ms: u64,
    /// Most of a group's instances ejected at once, in percent.
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_ms: 5000,
            max_ejection_percent: 50,
        }
    }
}

/// The breaker kept per upstream instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Share of failed attempts in the window that opens the breaker.
    pub failure_ratio: f64,
    /// Attempts in the window before the ratio counts.
    pub min_requests: u32,
    /// Length of the counting window.
    pub window_ms: u64,
    /// Time the breaker stays open before one probe is let through.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_ratio: 0.5,
            min_requests: 20,
            window_ms: 10_000,
            open_ms: 5000,
        }
    }
}

/// How many retries the gateway may add to the traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetConfig {
    /// Retries as a share of requests over the window.
    pub retry_percent: f32,
    /// Retries allowed per second regardless of traffic.
    pub min_per_sec: u32,
    /// The sliding window.
    pub window_ms: u64,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            retry_percent: 0.2,
            min_per_sec: 10,
            window_ms: 10_000,
        }
    }
}

/// Gray release of one group.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseConfig {
    /// Share of requests per version, in percent (need not sum to 100: shares are relative).
    pub weights: BTreeMap<String, u32>,
    /// A request header naming the version to use (overrides the weights).
    pub header: String,
    /// A cookie naming the version to use (overrides the weights).
    pub cookie: String,
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid gateway setting `{key}`: {reason}")]
pub struct ConfigError {
    /// The dotted key, e.g. `routes[0].prefix`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        key: key.into(),
        reason: reason.into(),
    })
}

/// Checks that `url` is `http://host:port` with nothing after the authority.
pub(crate) fn parse_instance_url(url: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    if uri.scheme_str() != Some("http") {
        return Err("must start with http://".to_owned());
    }
    if uri.authority().is_none() {
        return Err("has no host".to_owned());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must have no path or query".to_owned());
    }
    Ok(uri)
}

impl GatewayConfig {
    /// Checks every setting; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(file) = &self.openapi_file {
            let readable = std::fs::read(file)
                .ok()
                .is_some_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok());
            if !readable {
                return invalid("openapi_file".to_owned(), "is not a readable JSON file");
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            let key = |field: &str| format!("routes[{i}].{field}");
            if !route.prefix.starts_with('/') {
                return invalid(key("prefix"), "must start with /");
            }
            if route.prefix.starts_with("/internal") || route.prefix.starts_with("/gateway/") {
                return invalid(key("prefix"), "/internal and /gateway/ are never routed");
            }
            if route.group.is_empty() {
                return invalid(key("group"), "must not be empty");
            }
            if route.timeout_ms == 0 {
                return invalid(key("timeout_ms"), "must be above 0");
            }
            match (&route.balance, &route.hash_on) {
                (Balance::Hash, None) => return invalid(key("hash_on"), "required by hash"),
                (Balance::Hash, Some(h)) => {
                    let name = h.strip_prefix("cookie:").unwrap_or(h);
                    if name.is_empty() || hyper::header::HeaderName::try_from(name).is_err() {
                        return invalid(key("hash_on"), "not a header or cookie name");
                    }
                }
                _ => {}
            }
            if self.routes[..i].iter().any(|r| r.prefix == route.prefix) {
                return invalid(key("prefix"), "appears twice");
            }
        }
        for (group, upstream) in &self.upstreams {
            for (i, instance) in upstream.instances.iter().enumerate() {
                if let Err(reason) = parse_instance_url(&instance.url) {
                    return invalid(format!("upstreams.{group}.instances[{i}].url"), reason);
                }
            }
        }
        if let Some(registry) = &self.registry {
            if !(registry.nats_url.starts_with("nats://")
                || registry.nats_url.starts_with("tls://"))
            {
                return invalid("registry.nats_url", "must start with nats:// or tls://");
            }
            if registry.bucket.is_empty() {
                return invalid("registry.bucket", "must not be empty");
            }
            if registry.ttl_ms < 1_000 {
                return invalid("registry.ttl_ms", "must be at least 1000");
            }
        }
        if self.limits.max_in_flight == 0 {
            return invalid("limits.max_in_flight", "must be above 0");
        }
        if self.limits.max_connections == 0 {
            return invalid("limits.max_connections", "must be above 0");
        }
        let rl = &self.rate_limit;
        for (key, value) in [
            ("rate_limit.global_per_sec", rl.global_per_sec),
            ("rate_limit.per_client_per_sec", rl.per_client_per_sec),
        ] {
            if !value.is_finite() || value < 0.0 {
                return invalid(key, "must be 0 or more");
            }
        }
        if !(rl.redis_url.is_empty()
            || rl.redis_url.starts_with("redis://")
            || rl.redis_url.starts_with("rediss://"))
        {
            return invalid("rate_limit.redis_url", "must start with redis://");
        }
        if self.health.interval_ms == 0 || self.health.timeout_ms == 0 {
            return invalid("health.interval_ms", "interval and timeout must be above 0");
        }
        if !self.health.path.is_empty() && !self.health.path.starts_with('/') {
            return invalid("health.path", "must start with /");
        }
        if self.health.unhealthy_after == 0 || self.health.healthy_after == 0 {
            return invalid("health.unhealthy_after", "thresholds must be above 0");
        }
        if self.outlier.max_ejection_percent > 100 {
            return invalid("outlier.max_ejection_percent", "must be 0 to 100");
        }
        let b = &self.breaker;
        if !(b.failure_ratio > 0.0 && b.failure_ratio <= 1.0) {
            return invalid("breaker.failure_ratio", "must be above 0 and at most 1");
        }
        if b.window_ms == 0 || b.open_ms == 0 {
            return invalid("breaker.window_ms", "window and open time must be above 0");
        }
        let budget = &self.retry_budget;
        if !(0.0..=1000.0).contains(&budget.retry_percent) {
            return invalid("retry_budget.retry_percent", "must be 0 to 1000");
        }
        if budget.min_per_sec >= 1_000_000 {
            return invalid("retry_budget.min_per_sec", "must be below 1000000");
        }
        if !(1000..=60_000).contains(&budget.window_ms) {
            return invalid("retry_budget.window_ms", "must be 1000 to 60000");
        }
        for (group, release) in &self.release {
            if release.weights.values().all(|w| *w == 0) && !release.weights.is_empty() {
                return invalid(format!("release.{group}.weights"), "all weights are 0");
            }
            if !release.header.is_empty()
                && hyper::header::HeaderName::try_from(release.header.as_str()).is_err()
            {
                return invalid(format!("release.{group}.header"), "not a header name");
            }
        }
        if let Some(tls) = &self.tls
            && tls.reload_interval_ms == 0
        {
            return invalid("tls.reload_interval_ms", "must be above 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str, bad_key: &str) {
        let config: GatewayConfig = toml::from_str(toml_text).expect("parses");
        let err = config.validate().expect_err("invalid");
        assert_eq!(err.key, bad_key, "{err}");
    }

    #[test]
    fn each_bad_setting_is_named_by_its_key() {
        check(
            r#"[[routes]]
prefix = "v1"
group = "a""#,
            "routes[0].prefix",
        );
        check(
            r#"[[routes]]
prefix = "/internal/x"
group = "a""#,
            "routes[0].prefix",
        );
        check(
            r#"[[routes]]
prefix = "/v1"
group = "a"
balance = "hash""#,
            "routes[0].hash_on",
        );
        check(
            r#"[upstreams.a]
instances = [{ url = "https://x:1" }]"#,
            "upstreams.a.instances[0].url",
        );
        check(
            r#"[upstreams.a]
instances = [{ url = "http://x:1/path" }]"#,
            "upstreams.a.instances[0].url",
        );
        check("[limits]\nmax_in_flight = 0", "limits.max_in_flight");
        check(
            "[rate_limit]\nglobal_per_sec = -1",
            "rate_limit.global_per_sec",
        );
        check("[rate_limit]\nredis_url = \"x\"", "rate_limit.redis_url");
        check("[breaker]\nfailure_ratio = 2.0", "breaker.failure_ratio");
        check(
            "[outlier]\nmax_ejection_percent = 101",
            "outlier.max_ejection_percent",
        );
        check("[release.a]\nweights = { \"1\" = 0 }", "release.a.weights");
    }

    #[test]
    fn the_example_file_is_valid() {
        let config: GatewayConfig =
            toml::from_str(include_str!("../gateway.example.toml")).expect("parses");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.routes.len(), 6);
        assert_eq!(config.upstreams["catalog"].instances.len(), 2);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<GatewayConfig>("lisen = \"127.0.0.1:1\"").expect_err("unknown");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn the_documented_sketch_is_valid() {
        let config: GatewayConfig = toml::from_str(
            r#"
listen = "127.0.0.1:8080"
[[routes]]
prefix = "/v1/store/carts"
group = "ordering"
balance = "hash"
hash_on = "x-cart-token"
timeout_ms = 10000
retries = 1
[upstreams.ordering]
instances = [ { url = "http://127.0.0.1:8101", version = "1", weight = 100 } ]
[limits]
max_in_flight = 2048
max_queue_ms = 100
[rate_limit]
global_per_sec = 0
[release.ordering]
weights = { "1" = 90, "2" = 10 }
header = "x-emporium-version"
cookie = "emporium_version"
"#,
        )
        .expect("parses");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.routes[0].balance, Balance::Hash);
    }
}
