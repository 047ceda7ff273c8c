//! Product media over HTTP: multipart uploads checked for type (by content) and size, stored in the
//! media folder, served at `/media/…` with year-long cache headers and an ETag, and removed with
//! their media or their product.

use std::path::Path;

use emporium_kernel::auth::Role;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::catalog::create_product;
use crate::helpers::{Backend, TestApp, assert_problem, pointers, postgres_url};
use crate::on_both_backends;

on_both_backends!(
    an_uploaded_image_is_listed_and_served_with_cache_headers,
    files_that_are_not_images_or_forms_are_refused,
    a_file_larger_than_the_api_body_limit_is_accepted,
    removing_media_deletes_their_files,
    deleting_a_product_deletes_its_files,
    only_staff_may_upload_or_remove,
    addresses_that_are_not_media_keys_are_not_found,
);

/// A 1×1 red PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The start of a GIF.
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";

/// One part of a multipart form.
struct Part<'a> {
    name: &'a str,
    filename: Option<&'a str>,
    content_type: Option<&'a str>,
    bytes: &'a [u8],
}

fn file(bytes: &[u8]) -> Part<'_> {
    Part {
        name: "file",
        filename: Some("photo.png"),
        content_type: Some("image/png"),
        bytes,
    }
}

fn text<'a>(name: &'a str, value: &'a str) -> Part<'a> {
    Part {
        name,
        filename: None,
        content_type: None,
        bytes: value.as_bytes(),
    }
}

const BOUNDARY: &str = "emporium-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body, written by hand so every header of every part is under test
/// control.
fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(name) = part.filename {
            disposition.push_str(&format!("; filename=\"{name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `POST /v1/admin/products/{id}/media` with `parts`, as `token`, with extra headers.
async fn upload(
    app: &TestApp,
    product: &str,
    token: Option<&str>,
    parts: &[Part<'_>],
    headers: &[(&str, &str)],
) -> Response {
    let mut req = app
        .client
        .post(app.url(&format!("/v1/admin/products/{product}/media")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form(parts));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

/// Uploads `bytes` and returns the new media's JSON.
async fn upload_ok(app: &TestApp, product: &str, token: &str, bytes: &[u8]) -> Value {
    let r = upload(app, product, Some(token), &[file(bytes)], &[]).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// A fresh draft product; returns its id.
async fn product(app: &TestApp, token: &str, sku: &str) -> String {
    let created = create_product(
        app,
        token,
        json!({"title": format!("Poster {sku}"), "variants": [{"sku": sku, "prices": [{"currency": "EUR", "amount": 1500}]}]}),
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn stored_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    files_under(&app.config.media_dir())
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn an_uploaded_image_is_listed_and_served_with_cache_headers(app: TestApp) {
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let id = product(&app, &staff, "POSTER-1").await;

    // The file name is hostile and the part's type is wrong: neither matters.
    let parts = [
        Part {
            name: "file",
            filename: Some("../../etc/passwd"),
            content_type: Some("application/octet-stream"),
            bytes: PNG,
        },
        text("alt", "A red dot"),
    ];
    let r = upload(&app, &id, Some(&staff), &parts, &[("if-match", "\"1\"")]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "etag"), "\"2\"");
    let media: Value = r.json().await.unwrap();
    assert!(media["id"].as_str().unwrap().starts_with("med_"));
    let url = media["url"].as_str().unwrap().to_owned();
    let product_hex = id.trim_start_matches("prod_");
    assert!(url.starts_with("/media/products/"), "{url}");
    assert!(url.ends_with(".png"), "{url}");
    assert!(!url.contains("passwd"), "{url}");
    assert_eq!(media["content_type"], "image/png");
    assert_eq!(media["size_bytes"], PNG.len());
    assert_eq!(media["alt"], "A red dot");
    assert_eq!(media["position"], 0);

    // The file is in the media folder under its key, and nowhere else.
    let files = stored_files(&app);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), PNG);
    assert!(files[0].ends_with(url.trim_start_matches("/media/")));

    // A second image goes after the first.
    let second = upload_ok(&app, &id, &staff, GIF).await;
    assert_eq!(second["content_type"], "image/gif");
    assert_eq!(second["position"], 1);
    assert!(second["url"].as_str().unwrap().ends_with(".gif"));

    let r = app
        .get(&format!("/v1/admin/products/{id}"), Some(&staff))
        .await;
    assert_eq!(header(&r, "etag"), "\"3\"");
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["media"].as_array().unwrap().len(), 2);
    assert_eq!(listed["media"][0], media);
    assert_eq!(listed["media"][1], second);

    // Served publicly, byte for byte, cacheable for a year.
    let r = app.get(&url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "image/png");
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    let etag = header(&r, "etag").to_owned();
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "{etag}"
    );
    assert_eq!(&r.bytes().await.unwrap()[..], PNG);

    // The client's copy is current: 304, no body, same validators.
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let r = app
            .request(Method::GET, &url, None, None, &[("if-none-match", &tag)])
            .await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(header(&r, "etag"), etag);
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = app
        .request(
            Method::GET,
            &url,
            None,
            None,
            &[("if-none-match", "\"stale\"")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(&r.bytes().await.unwrap()[..], PNG);

    // A stale If-Match is refused, and leaves no file behind.
    let r = upload(
        &app,
        &id,
        Some(&staff),
        &[file(PNG)],
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_problem(r, 412, "precondition_failed").await;
    assert_eq!(stored_files(&app).len(), 2);
    // So is an upload to a product that does not exist.
    let missing = format!("prod_{}", "0".repeat(32));
    let r = upload(&app, &missing, Some(&staff), &[file(PNG)], &[]).await;
    assert_problem(r, 404, "product_not_found").await;
    assert_eq!(stored_files(&app).len(), 2);
    assert!(
        stored_files(&app)
            .iter()
            .all(|f| f.to_string_lossy().contains(product_hex)),
        "every file sits in its product's folder"
    );
}

async fn files_that_are_not_images_or_forms_are_refused(app: TestApp) {
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let id = product(&app, &staff, "POSTER-2").await;

    // Text dressed up as a PNG: name, part type and all.
    let r = upload(
        &app,
        &id,
        Some(&staff),
        &[file(b"just some text, honestly a PNG")],
        &[],
    )
    .await;
    assert_problem(r, 415, "media_type_not_allowed").await;
    // An SVG (scriptable) and an empty file are not accepted either.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    for bytes in [&svg[..], b""] {
        let r = upload(&app, &id, Some(&staff), &[file(bytes)], &[]).await;
        assert_problem(r, 415, "media_type_not_allowed").await;
    }

    // No file part.
    let r = upload(&app, &id, Some(&staff), &[text("alt", "nothing")], &[]).await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(pointers(&problem), [("/file".into(), "required".into())]);

    // Too long an alt text, and a part nobody asked for, reported together.
    let long = "a".repeat(501);
    let r = upload(
        &app,
        &id,
        Some(&staff),
        &[file(PNG), text("alt", &long), text("caption", "x")],
        &[],
    )
    .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(
        pointers(&problem),
        [
            ("/alt".into(), "too_long".into()),
            ("/caption".into(), "unknown_field".into())
        ]
    );

    // Not a multipart body at all.
    let r = app
        .post_json(
            &format!("/v1/admin/products/{id}/media"),
            &json!({"file": "x"}),
            Some(&staff),
        )
        .await;
    assert_problem(r, 415, "unsupported_media_type").await;

    // Nothing was stored, nothing was attached.
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));
    let listed: Value = app
        .get(&format!("/v1/admin/products/{id}"), Some(&staff))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["media"], json!([]));
    assert_eq!(listed["version"], 1);
}

async fn a_file_larger_than_the_api_body_limit_is_accepted(app: TestApp) {
    // The API's bodies stop at 1 MiB; media have their own, larger limit (10 MiB by default).
    assert_eq!(app.config.http.body_limit_bytes, 1024 * 1024);
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let id = product(&app, &staff, "POSTER-3").await;
    let mut big = PNG.to_vec();
    big.resize(3 * 1024 * 1024, 0x5A);
    let media = upload_ok(&app, &id, &staff, &big).await;
    assert_eq!(media["size_bytes"], big.len());
    let r = app.get(media["url"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), big.len().to_string());
    assert!(r.bytes().await.unwrap()[..] == big[..]);
}

async fn removing_media_deletes_their_files(app: TestApp) {
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let id = product(&app, &staff, "POSTER-4").await;
    let kept = upload_ok(&app, &id, &staff, PNG).await;
    let removed = upload_ok(&app, &id, &staff, GIF).await;
    let removed_id = removed["id"].as_str().unwrap();
    let removed_url = removed["url"].as_str().unwrap();
    assert_eq!(app.get(removed_url, None).await.status(), StatusCode::OK);

    let path = format!("/v1/admin/products/{id}/media/{removed_id}");
    // A stale version is refused and removes nothing.
    let r = app
        .request(
            Method::DELETE,
            &path,
            None,
            Some(&staff),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_problem(r, 412, "precondition_failed").await;
    assert_eq!(app.get(removed_url, None).await.status(), StatusCode::OK);

    let r = app
        .request(
            Method::DELETE,
            &path,
            None,
            Some(&staff),
            &[("if-match", "\"3\"")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "etag"), "\"4\"");

    let r = app.get(removed_url, None).await;
    assert_problem(r, 404, "media_not_found").await;
    let listed: Value = app
        .get(&format!("/v1/admin/products/{id}"), Some(&staff))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["media"], json!([kept]));
    let files = stored_files(&app);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(kept["url"].as_str().unwrap().trim_start_matches("/media/")));
    assert_eq!(
        app.get(kept["url"].as_str().unwrap(), None).await.status(),
        StatusCode::OK
    );

    // Gone is gone.
    let r = app
        .request(Method::DELETE, &path, None, Some(&staff), &[])
        .await;
    assert_problem(r, 404, "media_not_found").await;
}

async fn deleting_a_product_deletes_its_files(app: TestApp) {
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let doomed = product(&app, &staff, "POSTER-5").await;
    let other = product(&app, &staff, "POSTER-6").await;
    let mut urls = Vec::new();
    for bytes in [PNG, GIF, PNG] {
        let media = upload_ok(&app, &doomed, &staff, bytes).await;
        urls.push(media["url"].as_str().unwrap().to_owned());
    }
    let survivor = upload_ok(&app, &other, &staff, PNG).await;
    assert_eq!(stored_files(&app).len(), 4);

    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/admin/products/{doomed}"),
            None,
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for url in &urls {
        assert_problem(app.get(url, None).await, 404, "media_not_found").await;
    }
    let files = stored_files(&app);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].ends_with(
            survivor["url"]
                .as_str()
                .unwrap()
                .trim_start_matches("/media/")
        )
    );
    // The deleted product's folder went with its files.
    let folder = app
        .config
        .media_dir()
        .join("products")
        .join(doomed.trim_start_matches("prod_"));
    assert!(!folder.exists(), "{} is left behind", folder.display());
}

async fn only_staff_may_upload_or_remove(app: TestApp) {
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let customer = app.customer_token("shopper@example.com").await;
    let id = product(&app, &staff, "POSTER-7").await;
    let media = upload_ok(&app, &id, &staff, PNG).await;
    let media_id = media["id"].as_str().unwrap();

    let r = upload(&app, &id, Some(&customer), &[file(PNG)], &[]).await;
    assert_problem(r, 403, "forbidden").await;
    let r = upload(&app, &id, None, &[file(PNG)], &[]).await;
    assert_problem(r, 401, "unauthenticated").await;
    let path = format!("/v1/admin/products/{id}/media/{media_id}");
    let r = app
        .request(Method::DELETE, &path, None, Some(&customer), &[])
        .await;
    assert_problem(r, 403, "forbidden").await;
    let r = app.request(Method::DELETE, &path, None, None, &[]).await;
    assert_problem(r, 401, "unauthenticated").await;

    // Nothing changed, and the file stays public.
    assert_eq!(stored_files(&app).len(), 1);
    let r = app.get(media["url"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .get(media["url"].as_str().unwrap(), Some(&customer))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn addresses_that_are_not_media_keys_are_not_found(app: TestApp) {
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let id = product(&app, &staff, "POSTER-8").await;
    let media = upload_ok(&app, &id, &staff, PNG).await;
    let url = media["url"].as_str().unwrap();
    let key = url.trim_start_matches("/media/");
    let (folder, name) = key.rsplit_once('/').unwrap();
    let hex = name.trim_end_matches(".png");
    // No key at all matches no route.
    assert_problem(app.get("/media/", None).await, 404, "not_found").await;
    for bad in [
        "/media/products".to_owned(),
        format!("/media/{folder}"),
        format!("/media/{folder}/{hex}"),
        format!("/media/{folder}/{hex}.exe"),
        format!("/media/{folder}/{hex}.gif"),
        format!("/media/{}", key.to_uppercase()),
        format!("/media/{folder}/%2e%2e/{name}"),
        format!("/media/{folder}/..%2F{name}"),
        format!("/media/{key}/extra"),
        format!("/media/products/{}/{name}", "0".repeat(32)),
    ] {
        let r = app.get(&bad, None).await;
        assert_problem(r, 404, "media_not_found").await;
    }
    // The real key still answers.
    assert_eq!(app.get(url, None).await.status(), StatusCode::OK);
}

/// With a small `media.max_bytes`: a file over it, and a body over the upload route's limit, are
/// both 413 `media_too_large`; a file of exactly the limit is accepted.
async fn files_over_the_configured_limit_are_refused(app: TestApp) {
    assert_eq!(app.config.media.max_bytes, 1024);
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let id = product(&app, &staff, "POSTER-9").await;
    let mut exact = PNG.to_vec();
    exact.resize(1024, 0);
    upload_ok(&app, &id, &staff, &exact).await;

    let mut over = PNG.to_vec();
    over.resize(1025, 0);
    let r = upload(&app, &id, Some(&staff), &[file(&over)], &[]).await;
    let problem = assert_problem(r, 413, "media_too_large").await;
    assert!(problem["detail"].as_str().unwrap().contains("1024"));

    // Far past the route's body limit (the file plus room for the form).
    let mut huge = PNG.to_vec();
    huge.resize(200 * 1024, 0);
    let r = upload(&app, &id, Some(&staff), &[file(&huge)], &[]).await;
    assert_problem(r, 413, "media_too_large").await;

    assert_eq!(stored_files(&app).len(), 1);
}

fn small_limit(config: &mut emporium::Config) {
    config.media.max_bytes = 1024;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_configured_limit_are_refused_sqlite() {
    files_over_the_configured_limit_are_refused(
        TestApp::spawn_with(Backend::Sqlite, small_limit).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_configured_limit_are_refused_postgres() {
    if let Some(url) = postgres_url() {
        files_over_the_configured_limit_are_refused(
            TestApp::spawn_with(Backend::Postgres(url), small_limit).await,
        )
        .await;
    }
}

/// The same story with media in an S3-compatible bucket, when `EMPORIUM_TEST_S3_URL` names a
/// server (its bucket `EMPORIUM_TEST_S3_BUCKET`, default `emporium-test`, must exist; keys from
/// `EMPORIUM_TEST_S3_ACCESS_KEY_ID` / `EMPORIUM_TEST_S3_SECRET_ACCESS_KEY`, default `test`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_in_an_s3_bucket_are_stored_served_and_deleted() {
    let Some(endpoint) = std::env::var("EMPORIUM_TEST_S3_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        if std::env::var("EMPORIUM_TEST_REQUIRE_S3").is_ok_and(|v| v == "1") {
            panic!("EMPORIUM_TEST_S3_URL is not set but EMPORIUM_TEST_REQUIRE_S3=1");
        }
        eprintln!("NOT RUN: S3 media suite skipped, EMPORIUM_TEST_S3_URL is not set");
        return;
    };
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let s3 = emporium::config::MediaS3Settings {
        bucket: var("EMPORIUM_TEST_S3_BUCKET", "emporium-test"),
        region: var("EMPORIUM_TEST_S3_REGION", "us-east-1"),
        allow_http: endpoint.starts_with("http://"),
        endpoint: Some(endpoint),
        access_key_id: Some(var("EMPORIUM_TEST_S3_ACCESS_KEY_ID", "test")),
        secret_access_key: Some(emporium_kernel::Secret::new(var(
            "EMPORIUM_TEST_S3_SECRET_ACCESS_KEY",
            "test",
        ))),
    };
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.media.s3 = Some(s3.clone())).await;
    let staff = app.staff_token("media@example.com", Role::Staff).await;
    let id = product(&app, &staff, "POSTER-S3").await;
    let media = upload_ok(&app, &id, &staff, PNG).await;
    let url = media["url"].as_str().unwrap();
    // Nothing went to the local folder.
    assert!(stored_files(&app).is_empty());

    let r = app.get(url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "image/png");
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let etag = header(&r, "etag").to_owned();
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "{etag}"
    );
    assert!(!etag[1..etag.len() - 1].contains('"'), "{etag}");
    assert_eq!(&r.bytes().await.unwrap()[..], PNG);
    let r = app
        .request(Method::GET, url, None, None, &[("if-none-match", &etag)])
        .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/admin/products/{id}"),
            None,
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(url, None).await, 404, "media_not_found").await;

    two_catalog_instances_share_one_bucket(s3).await;
}

/// Two store processes over one PostgreSQL database and one bucket, as catalog instances of
/// the scaled-out shape are: what one stores, the other serves, and a deletion through one is
/// seen by the other.
async fn two_catalog_instances_share_one_bucket(s3: emporium::config::MediaS3Settings) {
    let Some(admin) = postgres_url() else {
        if std::env::var("EMPORIUM_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("EMPORIUM_TEST_POSTGRES_URL is not set but EMPORIUM_TEST_REQUIRE_POSTGRES=1");
        }
        eprintln!("NOT RUN: shared-bucket media test skipped, no PostgreSQL");
        return;
    };
    let first = TestApp::spawn_with(Backend::Postgres(admin.clone()), |c| {
        c.media.s3 = Some(s3.clone());
    })
    .await;
    let shared = first.config.database_url.clone();
    let second = TestApp::spawn_with(Backend::Postgres(admin), |c| {
        c.media.s3 = Some(s3);
        c.database_url = shared;
    })
    .await;
    let staff = first.staff_token("shared@example.com", Role::Staff).await;
    let id = product(&first, &staff, "POSTER-SHARED").await;
    let media = upload_ok(&first, &id, &staff, PNG).await;
    let url = media["url"].as_str().unwrap();

    let r = second.get(url, None).await;
    assert_eq!(r.status(), StatusCode::OK, "the other instance serves it");
    assert_eq!(&r.bytes().await.unwrap()[..], PNG);

    let r = first
        .request(
            Method::DELETE,
            &format!("/v1/admin/products/{id}"),
            None,
            Some(&staff),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_problem(second.get(url, None).await, 404, "media_not_found").await;
}
