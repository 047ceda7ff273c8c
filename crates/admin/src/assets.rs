//! The UI's stylesheet and script, compiled into the binary. Their URLs carry a hash of their
//! content (`/admin/assets/admin.<hash>.css`), so a browser may keep them for a year and still
//! gets a changed file at once after an upgrade.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("../assets/admin.css");
const JS: &str = include_str!("../assets/admin.js");

/// One asset: its URL (with the content hash) and its body.
struct Asset {
    url: String,
    file: String,
    body: &'static str,
    content_type: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static str, content_type: &'static str) -> Asset {
    let digest = Sha256::digest(body.as_bytes());
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let file = format!("{stem}.{hash}.{ext}");
    Asset {
        url: format!("/admin/assets/{file}"),
        file,
        body,
        content_type,
    }
}

fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            asset("admin", "css", CSS, "text/css; charset=utf-8"),
            asset("admin", "js", JS, "text/javascript; charset=utf-8"),
        ]
    })
}

/// The URL of the stylesheet.
pub(crate) fn css_url() -> &'static str {
    &assets()[0].url
}

/// The URL of the script.
pub(crate) fn js_url() -> &'static str {
    &assets()[1].url
}

/// `GET /admin/assets/{file}`: an asset by its hashed name, cached for a year; any other name
/// is 404.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = assets().iter().find(|a| a.file == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}
