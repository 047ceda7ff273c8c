//! The routing table: routes by path prefix, upstream groups with their instances, and the
//! selection algorithms (round robin, power of two choices on outstanding requests, a
//! consistent hash ring with virtual nodes) and gray release by version.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::config::{
    Balance, ConfigError, GatewayConfig, Instance, ReleaseConfig, RouteConfig, parse_instance_url,
};
use crate::meter::RouteMeter;
use crate::upstream::Upstream;

/// Virtual nodes of an instance of weight 100 on the hash ring.
const VNODES_PER_100: u64 = 160;

/// A 64-bit hash that is the same in every gateway process (FNV-1a, then a finaliser that
/// spreads close inputs over the ring).
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// One route, as matched.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) config: RouteConfig,
    pub(crate) meter: RouteMeter,
}

/// A group's instances with what selection needs.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    // Invariant: the ring's indices point into `upstreams`.
    pub(crate) upstreams: Vec<Arc<Upstream>>,
    ring: Vec<(u64, usize)>,
    next: AtomicUsize,
    release: Option<ReleaseConfig>,
}

impl Group {
    fn new(name: &str, upstreams: Vec<Arc<Upstream>>, release: Option<ReleaseConfig>) -> Self {
        let mut ring = Vec::new();
        for (index, upstream) in upstreams.iter().enumerate() {
            let vnodes = (u64::from(upstream.instance.weight) * VNODES_PER_100).div_ceil(100);
            for v in 0..vnodes {
                let point = stable_hash(format!("{}#{v}", upstream.instance.url).as_bytes());
                ring.push((point, index));
            }
        }
        ring.sort_unstable();
        Self {
            name: name.to_owned(),
            upstreams,
            ring,
            next: AtomicUsize::new(0),
            release,
        }
    }

    /// The version a request should go to: the one its header or cookie names, else one drawn
    /// by the release weights; `None` without a release for the group.
    pub(crate) fn choose_version(&self, headers: &hyper::HeaderMap) -> Option<String> {
        let release = self.release.as_ref()?;
        if !release.header.is_empty()
            && let Some(v) = headers
                .get(release.header.as_str())
                .and_then(|v| v.to_str().ok())
            && self.upstreams.iter().any(|u| u.instance.version == v)
        {
            return Some(v.to_owned());
        }
        if !release.cookie.is_empty()
            && let Some(v) = cookie(headers, &release.cookie)
            && self.upstreams.iter().any(|u| u.instance.version == v)
        {
            return Some(v.to_owned());
        }
        let total: u64 = release.weights.values().map(|w| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut draw = fastrand::u64(0..total);
        for (version, weight) in &release.weights {
            let weight = u64::from(*weight);
            if draw < weight {
                return Some(version.clone());
            }
            draw -= weight;
        }
        None
    }

    /// Picks an available instance not in `tried`, of `version` when one of that version is
    /// available (else of any version).
    pub(crate) fn pick(
        &self,
        balance: Balance,
        key: Option<u64>,
        version: Option<&str>,
        tried: &[Arc<Upstream>],
        now: Instant,
    ) -> Option<Arc<Upstream>> {
        let usable =
            |u: &Arc<Upstream>| u.is_available(now) && !tried.iter().any(|t| Arc::ptr_eq(t, u));
        let mut candidates: Vec<usize> = (0..self.upstreams.len())
            .filter(|i| usable(&self.upstreams[*i]))
            .collect();
        if let Some(version) = version {
            let of_version: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|i| self.upstreams[*i].instance.version == version)
                .collect();
            if !of_version.is_empty() {
                candidates = of_version;
            }
        }
        let chosen = match (balance, key) {
            _ if candidates.is_empty() => return None,
            (Balance::Hash, Some(key)) => self.on_ring(key, &candidates),
            (Balance::LeastOutstanding, _) if candidates.len() > 1 => {
                let a = fastrand::usize(0..candidates.len());
                let mut b = fastrand::usize(0..candidates.len() - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (candidates[a], candidates[b]);
                let load = |i: usize| self.upstreams[i].outstanding() as u64;
                let weight = |i: usize| u64::from(self.upstreams[i].instance.weight);
                // Outstanding requests per unit of weight, compared without division.
                if load(b) * weight(a) < load(a) * weight(b) {
                    b
                } else {
                    a
                }
            }
            _ => self.weighted_turn(&candidates),
        };
        Some(self.upstreams[chosen].clone())
    }

    /// Round robin by weight: weights reduced by their greatest common divisor give each
    /// candidate that many turns per cycle (equal weights alternate).
    fn weighted_turn(&self, candidates: &[usize]) -> usize {
        let weight = |i: &usize| u64::from(self.upstreams[*i].instance.weight);
        let divisor = candidates.iter().map(weight).fold(0, gcd).max(1);
        let total: u64 = candidates.iter().map(|i| weight(i) / divisor).sum();
        if total == 0 {
            return candidates[0];
        }
        let mut turn = self.next.fetch_add(1, Ordering::Relaxed) as u64 % total;
        for i in candidates {
            let w = weight(i) / divisor;
            if turn < w {
                return *i;
            }
            turn -= w;
        }
        candidates[0]
    }

    /// The first candidate clockwise from `key` on the ring.
    fn on_ring(&self, key: u64, candidates: &[usize]) -> usize {
        let start = self.ring.partition_point(|(point, _)| *point < key);
        let n = self.ring.len();
        (0..n)
            .map(|step| self.ring[(start + step) % n].1)
            .find(|index| candidates.contains(index))
            .unwrap_or(candidates[0])
    }

    /// Instances ejected now.
    pub(crate) fn ejected_count(&self) -> usize {
        let now = Instant::now();
        self.upstreams.iter().filter(|u| u.is_ejected(now)).count()
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a hyper::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Routes and groups, replaced as a whole on every change so that a request sees one
/// consistent table from start to end.
#[derive(Debug)]
pub(crate) struct Table {
    // Invariant: sorted by prefix length, longest first.
    routes: Vec<Arc<Route>>,
    pub(crate) groups: HashMap<String, Arc<Group>>,
}

impl Table {
    /// Builds the table of `config`, keeping the state of instances that `previous` already
    /// had (same group, URL, version, weight and zone).
    pub(crate) fn build(config: &GatewayConfig, previous: Option<&Table>) -> Self {
        let mut routes: Vec<Arc<Route>> = config
            .routes
            .iter()
            .map(|r| {
                Arc::new(Route {
                    config: r.clone(),
                    meter: RouteMeter::new(),
                })
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.config.prefix.len()));
        let mut names: std::collections::BTreeSet<&String> = config.upstreams.keys().collect();
        names.extend(config.routes.iter().map(|r| &r.group));
        let mut groups = HashMap::new();
        for name in names {
            let instances = match config.upstreams.get(name) {
                Some(u) => u.instances.clone(),
                // A group only a registry fills keeps what it was given.
                None => previous
                    .and_then(|p| p.groups.get(name))
                    .map(|g| g.upstreams.iter().map(|u| u.instance.clone()).collect())
                    .unwrap_or_default(),
            };
            let group = build_group(
                name,
                &instances,
                config.release.get(name).cloned(),
                previous.and_then(|p| p.groups.get(name)).map(Arc::as_ref),
            );
            groups.insert(name.clone(), Arc::new(group));
        }
        Self { routes, groups }
    }

    /// The same table with `group`'s instances replaced.
    pub(crate) fn with_instances(
        &self,
        group: &str,
        instances: &[Instance],
    ) -> Result<Self, ConfigError> {
        for (i, instance) in instances.iter().enumerate() {
            if let Err(reason) = parse_instance_url(&instance.url) {
                return Err(ConfigError {
                    key: format!("instances[{i}].url"),
                    reason,
                });
            }
        }
        let old = self.groups.get(group);
        let release = old.and_then(|g| g.release.clone());
        let mut groups = self.groups.clone();
        groups.insert(
            group.to_owned(),
            Arc::new(build_group(group, instances, release, old.map(Arc::as_ref))),
        );
        Ok(Self {
            routes: self.routes.clone(),
            groups,
        })
    }

    /// The route of `path`: the longest prefix that matches whole path segments.
    pub(crate) fn route(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| {
            let prefix = r.config.prefix.as_str();
            path.strip_prefix(prefix).is_some_and(|rest| {
                rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')
            })
        })
    }
}

fn build_group(
    name: &str,
    instances: &[Instance],
    release: Option<ReleaseConfig>,
    previous: Option<&Group>,
) -> Group {
    let mut seen = BTreeMap::new();
    let upstreams = instances
        .iter()
        .filter(|i| seen.insert(i.url.clone(), ()).is_none())
        .filter_map(|instance| {
            if let Some(kept) =
                previous.and_then(|p| p.upstreams.iter().find(|u| u.instance == *instance))
            {
                return Some(kept.clone());
            }
            let base = parse_instance_url(&instance.url).ok()?;
            Some(Arc::new(Upstream::new(name, instance.clone(), base)))
        })
        .collect();
    Group::new(name, upstreams, release)
}

/// True for paths the gateway never routes: service-to-service routes under `/internal`,
/// however the path spells it (percent-encoding, empty or dot segments, case).
pub(crate) fn is_internal(path: &str) -> bool {
    // Nothing to decode and no dot segment (the usual path): the first segment decides.
    if !path.bytes().any(|b| matches!(b, b'%' | b'\\' | b'.')) {
        return path
            .split('/')
            .find(|s| !s.is_empty())
            .is_some_and(|s| s.eq_ignore_ascii_case("internal"));
    }
    let mut decoded = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            decoded.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
            i += 3;
            continue;
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("internal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_paths_are_recognised_however_spelled() {
        for path in [
            "/internal",
            "/internal/x",
            "//internal/x",
            "/./internal/x",
            "/v1/../internal/x",
            "/%69nternal/x",
            "/INTERNAL/x",
            "/%2finternal",
        ] {
            assert!(is_internal(path), "{path}");
        }
        for path in [
            "/v1/internal",
            "/internals",
            "/v1/store/products",
            "/",
            "/%zz",
        ] {
            assert!(!is_internal(path), "{path}");
        }
    }

    fn table(prefixes: &[&str]) -> Table {
        let mut config = GatewayConfig::default();
        for p in prefixes {
            config.routes.push(RouteConfig {
                prefix: (*p).to_owned(),
                group: format!("g{p}"),
                balance: Balance::RoundRobin,
                hash_on: None,
                timeout_ms: 1000,
                retries: 0,
                stale_if_error_secs: 0,
            });
        }
        Table::build(&config, None)
    }

    #[test]
    fn the_longest_prefix_on_a_segment_boundary_wins() {
        let t = table(&["/v1", "/v1/store/carts", "/v1/store/"]);
        let prefix = |p: &str| t.route(p).map(|r| r.config.prefix.clone());
        assert_eq!(
            prefix("/v1/store/carts/abc").as_deref(),
            Some("/v1/store/carts")
        );
        assert_eq!(
            prefix("/v1/store/carts").as_deref(),
            Some("/v1/store/carts")
        );
        assert_eq!(prefix("/v1/store/cartsx").as_deref(), Some("/v1/store/"));
        assert_eq!(prefix("/v1/admin").as_deref(), Some("/v1"));
        assert_eq!(prefix("/v10"), None);
        assert_eq!(prefix("/v2"), None);
    }

    #[test]
    fn round_robin_gives_turns_in_proportion_to_weight() {
        let mut heavy = Instance::new("http://10.0.0.1:80");
        heavy.weight = 200;
        let light = Instance::new("http://10.0.0.2:80");
        let group = build_group("g", &[heavy, light], None, None);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..300 {
            let u = group
                .pick(Balance::RoundRobin, None, None, &[], Instant::now())
                .expect("pick");
            *counts.entry(u.instance.url.clone()).or_insert(0) += 1;
        }
        assert_eq!(counts["http://10.0.0.1:80"], 200);
        assert_eq!(counts["http://10.0.0.2:80"], 100);
    }

    #[test]
    fn a_ring_moves_few_keys_when_an_instance_joins() {
        let instances: Vec<Instance> = (0..4)
            .map(|i| Instance::new(format!("http://10.0.0.{i}:80")))
            .collect();
        let four = build_group("g", &instances, None, None);
        let mut more = instances.clone();
        more.push(Instance::new("http://10.0.0.9:80"));
        let five = build_group("g", &more, None, None);
        let moved = (0..2000u64)
            .filter(|k| {
                let key = stable_hash(&k.to_le_bytes());
                let a = four
                    .pick(Balance::Hash, Some(key), None, &[], Instant::now())
                    .map(|u| u.instance.url.clone());
                let b = five
                    .pick(Balance::Hash, Some(key), None, &[], Instant::now())
                    .map(|u| u.instance.url.clone());
                a != b
            })
            .count();
        // A fifth of the keys should move to the new instance; far more means the ring is broken.
        assert!(moved > 100 && moved < 700, "moved {moved} of 2000");
    }
}
