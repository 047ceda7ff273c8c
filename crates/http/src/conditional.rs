//! Conditional requests (RFC 9110 §13): `ETag` from a resource version, `If-Match` for
//! optimistic concurrency on writes, `If-None-Match` for 304 on reads.

use axum::http::{HeaderMap, HeaderValue, header};

/// The strong ETag of a resource at `version`: `"7"`.
pub fn version_etag(version: i64) -> HeaderValue {
    // Digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version an `If-Match` header demands, or `None` when there is no header or it is `*`.
/// A tag that is not one of ours can never match, so it demands an impossible version (and the
/// write fails with 412).
pub fn if_match_version(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get(header::IF_MATCH)?.to_str().unwrap_or("");
    let value = value.trim();
    if value == "*" {
        return None;
    }
    let tag = value.strip_prefix("W/").unwrap_or(value);
    Some(
        tag.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(i64::MIN),
    )
}

/// True when `If-None-Match` lists `etag` (weak comparison) or is `*`: the client's copy is
/// current and the answer is 304.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn if_match_reads_our_tags_and_refuses_foreign_ones() {
        assert_eq!(if_match_version(&HeaderMap::new()), None);
        assert_eq!(if_match_version(&headers(header::IF_MATCH, "*")), None);
        assert_eq!(
            if_match_version(&headers(header::IF_MATCH, "\"7\"")),
            Some(7)
        );
        assert_eq!(
            if_match_version(&headers(header::IF_MATCH, "W/\"7\"")),
            Some(7)
        );
        assert_eq!(
            if_match_version(&headers(header::IF_MATCH, "\"abc\"")),
            Some(i64::MIN)
        );
        assert_eq!(version_etag(7), "\"7\"");
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let h = headers(header::IF_NONE_MATCH, "\"a\", W/\"b\"");
        assert!(none_match(&h, "\"b\""));
        assert!(none_match(&h, "\"a\""));
        assert!(!none_match(&h, "\"c\""));
        assert!(none_match(&headers(header::IF_NONE_MATCH, "*"), "\"c\""));
        assert!(!none_match(&HeaderMap::new(), "\"c\""));
    }
}
