//! The rules of webhooks and messages, without IO: ids, secrets and Standard Webhooks
//! signatures, event-type subscriptions, the retry schedule, and which addresses a delivery may
//! reach.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use emporium_kernel::FieldError;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;

emporium_kernel::typed_id!(
    /// A webhook endpoint.
    EndpointId,
    "whep"
);
emporium_kernel::typed_id!(
    /// One event for one endpoint: the `webhook-id` of each of its attempts.
    DeliveryId,
    "msg"
);

/// The prefix of every signing secret (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// Event types an endpoint may subscribe to, by name or by `<aggregate>.*`; `*` takes them all.
/// Staff-account and API-client events stay inside the store.
pub const EVENT_TYPES: &[&str] = &[
    "customer.registered",
    "customer.groups_changed",
    "product.created",
    "product.updated",
    "product.published",
    "product.unpublished",
    "product.archived",
    "product.deleted",
    "category.created",
    "category.updated",
    "category.deleted",
    "collection.created",
    "collection.updated",
    "collection.deleted",
    "inventory.stock_changed",
    "inventory.location_created",
    "inventory.location_updated",
    "pricing.rule_changed",
    "pricing.coupon_changed",
    "payment.status_changed",
    "order.placed",
    "order.changed",
];

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The key bytes of a `whsec_` secret; `None` when it is not one.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// One signature of a message, `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn signature(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per secret in use, separated by spaces.
pub fn signature_header(keys: &[Vec<u8>], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| signature(key, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True when `pattern` (an exact type, `<aggregate>.*` or `*`) takes `event_type`.
pub fn matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => prefix.ends_with('.') && event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// Checks a subscription list: 1 to 50 entries, each a known type, `<aggregate>.*` for an
/// aggregate with known types, or `*`. Sorted and unique on success.
pub fn parse_event_types(types: &[String]) -> Result<Vec<String>, FieldError> {
    if types.is_empty() || types.len() > 50 {
        return Err(FieldError::new(
            "",
            "invalid_length",
            "list 1 to 50 event types (`*` takes every type)",
        ));
    }
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let known = EVENT_TYPES.iter().any(|known| matches(t, known));
        let exact_or_pattern =
            t == "*" || EVENT_TYPES.contains(&t.as_str()) || (t.ends_with(".*") && known);
        if !exact_or_pattern {
            return Err(FieldError::new(
                "",
                "unknown_event_type",
                format!(
                    "`{t}` is not an event type an endpoint may subscribe to (see docs/EVENTS.md)"
                ),
            ));
        }
        out.push(t.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks an endpoint URL: absolute `http` or `https`, a host, no credentials or fragment, at
/// most 2,000 characters. Where it points is checked when it is called ([`Destinations`]).
pub fn parse_url(raw: &str) -> Result<url::Url, FieldError> {
    let bad = |detail: &str| FieldError::new("", "invalid_url", detail);
    if raw.len() > 2000 {
        return Err(bad("at most 2,000 characters"));
    }
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http and https URLs are called"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("the URL names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not kept; the endpoint verifies signatures",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("a URL fragment is never sent"));
    }
    Ok(url)
}

/// Where deliveries may go: public addresses always; loopback, private, link-local and other
/// special-purpose addresses only inside a configured network.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    allowed: Vec<IpNet>,
}

impl Destinations {
    /// Public addresses plus the networks in `allowed`.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Public addresses plus networks in CIDR form; the first entry that is not one is the
    /// error.
    pub fn parse(allowed: &[String]) -> Result<Self, String> {
        allowed
            .iter()
            .map(|n| n.trim().parse::<IpNet>().map_err(|_| n.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// True when a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// An IPv4 address mapped into IPv6 as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Globally reachable unicast: not loopback, private, link-local, shared, documentation,
/// benchmarking, multicast, broadcast or unspecified.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)) // NAT64
        }
    }
}

/// The waits between attempts of a webhook delivery: 13 attempts over about three days
/// (5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, 16 h, 24 h), each wait with
/// ±20 % jitter so that endpoints that failed together are not retried together.
pub const WEBHOOK_RETRY_DELAYS_MS: &[u64] = &[
    5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000,
    43_200_000, 57_600_000, 86_400_000,
];

/// The waits between attempts of an e-mail: 12 attempts over about a day.
pub const EMAIL_RETRY_DELAYS_MS: &[u64] = &[
    10_000, 60_000, 300_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000,
    21_600_000, 28_800_000,
];

/// The wait before the attempt after attempt `attempts` (1-based), or `None` when every attempt
/// is spent. `jitter` is a number in `[0, 1)`.
pub fn next_delay(delays: &[u64], attempts: i64, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = *delays.get(index)? as f64;
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Some(Duration::from_millis((base * factor) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_new_secret_is_32_random_bytes() {
        let a = new_secret().expect("random");
        let b = new_secret().expect("random");
        assert_ne!(a, b);
        assert_eq!(secret_key(&a).expect("base64").len(), 32);
    }

    #[test]
    fn patterns_take_their_types_only() {
        assert!(matches("*", "order.placed"));
        assert!(matches("order.*", "order.changed"));
        assert!(!matches("order.*", "orders.changed"));
        assert!(!matches("order.placed", "order.changed"));
        assert!(parse_event_types(&["order.*".into(), "*".into()]).is_ok());
        assert!(parse_event_types(&["order.paid".into()]).is_err());
        assert!(parse_event_types(&["staff_user.*".into()]).is_err());
        assert!(parse_event_types(&["ord*".into()]).is_err());
        assert!(parse_event_types(&[]).is_err());
    }

    #[test]
    fn only_public_addresses_unless_allowed() {
        let none = Destinations::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!none.permits(ip.parse().expect("ip")), "{ip}");
        }
        assert!(none.permits("93.184.216.34".parse().expect("ip")));
        assert!(none.permits("2606:4700::1111".parse().expect("ip")));
        let loopback = Destinations::new(vec!["127.0.0.0/8".parse().expect("net")]);
        assert!(loopback.permits("127.0.0.1".parse().expect("ip")));
        assert!(!loopback.permits("10.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn urls_are_absolute_http() {
        assert!(parse_url("https://example.com/hook").is_ok());
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("/hook").is_err());
        assert!(parse_url("https://user:pw@example.com/").is_err());
        assert!(parse_url("javascript:alert(1)").is_err());
    }

    #[test]
    fn retries_spread_over_about_three_days() {
        let total: u64 = WEBHOOK_RETRY_DELAYS_MS.iter().sum();
        assert!((2.5..3.5).contains(&(total as f64 / 86_400_000.0)));
        assert_eq!(
            next_delay(WEBHOOK_RETRY_DELAYS_MS, 1, 0.5),
            Some(Duration::from_secs(5))
        );
        assert!(next_delay(WEBHOOK_RETRY_DELAYS_MS, 13, 0.5).is_none());
        assert!(next_delay(WEBHOOK_RETRY_DELAYS_MS, 0, 0.5).is_none());
    }
}
