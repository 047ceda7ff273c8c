//! Cross-site request forgery checks of every state-changing form: the form's `_csrf` field
//! must equal the session's token (compared in constant time), and the `Origin` (or, without
//! it, the `Referer`) header, when the browser sent one, must be this site's own origin.
//! Multipart forms (file uploads) carry the token in the action's query (`?_csrf=`), since their
//! body is streamed to the handler.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::layout;

/// The largest URL-encoded form read for its token.
const FORM_LIMIT: usize = 1024 * 1024;

/// Whether two tokens are equal, in time that depends only on their lengths.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The origin this request was sent to (`http://host:port`), as the browser would write it.
/// Behind a proxy (the gateway) that is the host the proxy was asked for (`X-Forwarded-Host`,
/// its first entry), not the upstream's own: a cross-site form cannot set that header, so it
/// does not weaken the check.
fn own_origin(headers: &HeaderMap, scheme: Option<&str>) -> Option<String> {
    let forwarded = headers
        .get("x-forwarded-host")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let host = match forwarded {
        Some(host) => host,
        None => headers.get(header::HOST)?.to_str().ok()?,
    };
    let scheme = if crate::session::is_secure(headers, scheme) {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{host}"))
}

/// Whether the request's `Origin` or `Referer`, when present, names this site.
pub(crate) fn same_origin(headers: &HeaderMap, scheme: Option<&str>) -> bool {
    let own = own_origin(headers, scheme);
    let text = |name| headers.get(name).and_then(|v: &_| v.to_str().ok());
    if let Some(origin) = text(header::ORIGIN) {
        return own.is_some_and(|own| origin.eq_ignore_ascii_case(&own));
    }
    if let Some(referer) = text(header::REFERER) {
        return own.is_some_and(|own| {
            referer
                .get(..own.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(&own))
                && matches!(referer.as_bytes().get(own.len()), None | Some(b'/'))
        });
    }
    true
}

/// The value of `name` in a URL-encoded form.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    url_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn url_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

/// The 403 page of a form that failed the checks.
pub(crate) fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        layout::bare_page(
            "Form refused",
            layout::message_body(
                "This form was refused",
                "It did not come from this site, or it is out of date. Go back, reload the page and try again.",
            ),
        ),
    )
        .into_response()
}

/// Checks a `POST` against the session's CSRF token; gives the request back (its body read and
/// put back) when it passes, else the 403 page.
pub(crate) async fn check(req: Request, expected: &str) -> Result<Request, Response> {
    if !same_origin(req.headers(), req.uri().scheme_str()) {
        return Err(refused());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let token = req
            .uri()
            .query()
            .and_then(|q| form_field(q.as_bytes(), "_csrf"))
            .unwrap_or_default();
        return if same_token(&token, expected) {
            Ok(req)
        } else {
            Err(refused())
        };
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, FORM_LIMIT).await else {
        return Err(refused());
    };
    let token = form_field(&bytes, "_csrf").unwrap_or_default();
    if !same_token(&token, expected) {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal_and_not_empty() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", ""));
    }

    #[test]
    fn origin_must_be_the_sites_own_when_sent() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().expect("value"));
        assert!(same_origin(&headers, None));
        headers.insert(
            header::ORIGIN,
            "http://127.0.0.1:8080".parse().expect("value"),
        );
        assert!(same_origin(&headers, None));
        headers.insert(header::ORIGIN, "http://evil.test".parse().expect("value"));
        assert!(!same_origin(&headers, None));
        headers.insert(header::ORIGIN, "null".parse().expect("value"));
        assert!(!same_origin(&headers, None));
        headers.remove(header::ORIGIN);
        headers.insert(
            header::REFERER,
            "http://127.0.0.1:8080.evil.test/x".parse().expect("value"),
        );
        assert!(!same_origin(&headers, None));
        headers.insert(
            header::REFERER,
            "http://127.0.0.1:8080/admin/products"
                .parse()
                .expect("value"),
        );
        assert!(same_origin(&headers, None));
    }

    #[test]
    fn behind_a_proxy_the_origin_is_the_forwarded_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "10.0.0.7:8080".parse().expect("value"));
        headers.insert("x-forwarded-host", "shop.test".parse().expect("value"));
        headers.insert("x-forwarded-proto", "https".parse().expect("value"));
        headers.insert(header::ORIGIN, "https://shop.test".parse().expect("value"));
        assert!(same_origin(&headers, None));
        headers.insert(
            header::ORIGIN,
            "http://10.0.0.7:8080".parse().expect("value"),
        );
        assert!(!same_origin(&headers, None));
    }
}
