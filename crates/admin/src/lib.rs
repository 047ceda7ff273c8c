//! The staff web UI at `/admin`: server-rendered HTML pages that are a client of the store's
//! own HTTP API (`/v1/admin/*`, `/v1/auth/*`), called with the signed-in staff user's access
//! token. Every page is therefore subject to exactly the permissions of the API: the API's
//! admin policy decides, and the UI only shows what it was told.
//!
//! What this crate keeps true for every answer under `/admin`: a strict
//! `Content-Security-Policy` (no inline script or style), `nosniff`, `Referrer-Policy:
//! same-origin`, `Cache-Control: no-store` on pages; every state change is a `POST` with a CSRF
//! token and a same-origin check; every value is escaped by `maud`.

mod api;
mod assets;
mod csrf;
mod layout;
mod money;
mod pages;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::{get, post};

pub use session::COOKIE_NAME;

/// The policy of every answer under `/admin`: scripts, styles and images from the UI's own
/// assets only, forms posting back to this origin, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'; connect-src 'self'";

/// How the UI reaches the API.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Base URL of the store's HTTP API (`http://127.0.0.1:8080`), without a trailing slash.
    pub api_url: String,
    /// The deadline of one call to the API.
    pub call_timeout: Duration,
    /// The largest image the media form forwards.
    pub media_max_bytes: usize,
}

/// What every handler shares: the API client and the session refresher.
#[derive(Clone)]
pub(crate) struct Ui {
    pub(crate) api: api::Api,
    pub(crate) refresher: Arc<session::Refresher>,
}

/// Every route of the UI under `/admin`, with its own headers. Merge it into the server's
/// router beside the API.
///
/// Fails only when the HTTP client cannot be built.
pub fn router(config: AdminConfig) -> Result<Router, reqwest::Error> {
    let api = api::Api::new(&config.api_url, config.call_timeout)?;
    let ui = Ui {
        refresher: Arc::new(session::Refresher::new(api.clone())),
        api,
    };
    let signed_in = Router::new()
        .route("/admin", get(pages::dashboard::show))
        .route("/admin/logout", post(pages::login::sign_out))
        .merge(pages::products::routes(config.media_max_bytes))
        .merge(pages::orders::routes())
        .merge(pages::customers::routes())
        .merge(pages::pricing::routes())
        .merge(pages::users::routes())
        .merge(pages::webhooks::routes())
        .route_layer(from_fn_with_state(ui.clone(), session::require_session));
    let open = Router::new()
        .route(
            "/admin/login",
            get(pages::login::form).post(pages::login::sign_in),
        )
        .route("/admin/assets/{file}", get(assets::serve))
        .route("/admin/", get(pages::login::to_dashboard))
        .route(
            "/admin/{*rest}",
            get(pages::not_found).post(pages::not_found),
        );
    Ok(signed_in
        .merge(open)
        .layer(DefaultBodyLimit::max(config.media_max_bytes + 64 * 1024))
        .layer(from_fn(ui_headers))
        .with_state(ui))
}

/// The headers every answer under `/admin` carries; pages are never stored, assets keep the
/// caching they chose.
async fn ui_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
