//! Security headers on every response, errors included: no content sniffing anywhere, no
//! caching of anything personal, and no framing of the API documentation page.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Path prefixes whose answers concern one person or one shop's back office: never stored by a
/// browser or a shared cache. A prefix covers itself and every path below it.
pub const PERSONAL_PREFIXES: &[&str] = &[
    "/v1/store/me",
    "/v1/store/carts",
    "/v1/store/orders",
    "/v1/auth",
    "/v1/admin",
];

/// The prefix of the Swagger UI pages.
pub const DOCS_PREFIX: &str = "/docs";

/// The policy of the Swagger UI pages. Its scripts, styles and images are served from `/docs/`
/// itself; Swagger UI sets `style` attributes as it renders, hence `'unsafe-inline'` for styles
/// only; its icons are `data:` URLs in the stylesheet; it fetches `/openapi.json` and, when the
/// reader tries a request, the API, both on this origin.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Outermost layer: adds `X-Content-Type-Options: nosniff` to every answer, replaces
/// `Cache-Control` with `no-store` under [`PERSONAL_PREFIXES`] (public catalog reads keep the
/// caching their handlers chose), and adds a `Content-Security-Policy` and
/// `X-Frame-Options: DENY` under [`DOCS_PREFIX`].
pub async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let personal = PERSONAL_PREFIXES.iter().any(|p| is_under(path, p));
    let docs = is_under(path, DOCS_PREFIX);
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if personal {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if docs {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// Whether `path` is `prefix` or a path below it (`/v1/store/me/x`, not `/v1/store/menu`).
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::is_under;

    #[test]
    fn a_prefix_covers_itself_and_what_is_below_it_only() {
        assert!(is_under("/v1/store/me", "/v1/store/me"));
        assert!(is_under("/v1/store/me/addresses", "/v1/store/me"));
        assert!(!is_under("/v1/store/menu", "/v1/store/me"));
        assert!(!is_under("/v1/store", "/v1/store/me"));
    }
}
