//! Product media: which images are accepted (recognised by their first bytes, never by a file name
//! or a declared type), the object keys they are stored under, and the object storage holding them
//! (a local folder by default, an S3-compatible bucket when configured).
//!
//! An object is written once under a key made of the product id, a fresh media id and the
//! extension of the recognised type, and never changed afterwards; that is what lets `/media/…`
//! answers be cached for a year.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use emporium_kernel::Violations;
use emporium_kernel::ids::{MediaId, ProductId};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
    RetryConfig,
};
use time::OffsetDateTime;

use crate::api::Product;
use crate::domain::check_len;
use crate::error::CatalogError;
use crate::service::CatalogService;
use crate::store::MediaRow;

/// The longest alternative text, in characters.
pub const MAX_ALT_CHARS: usize = 500;

/// An image type the catalog accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
    Gif,
    Webp,
    Avif,
}

impl ImageType {
    /// Every accepted type.
    pub const ALL: [ImageType; 5] = [
        ImageType::Jpeg,
        ImageType::Png,
        ImageType::Gif,
        ImageType::Webp,
        ImageType::Avif,
    ];

    /// The type of a file judged by its first bytes (its magic number), or `None` when it is
    /// none of the accepted ones.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else if is_avif(bytes) {
            Some(Self::Avif)
        } else {
            None
        }
    }

    /// The media type it is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Avif => "image/avif",
        }
    }

    /// The extension of its object keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
            Self::Avif => "avif",
        }
    }

    /// The type whose object keys end in `.{ext}`.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.extension() == ext)
    }
}

/// An ISO base media file (`ftyp` box first) whose major or a compatible brand is AVIF.
fn is_avif(bytes: &[u8]) -> bool {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    let declared = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let end = declared.clamp(16, bytes.len().min(256));
    let is_avif_brand = |brand: &[u8]| brand == b"avif" || brand == b"avis";
    // Major brand at 8..12, minor version at 12..16, then compatible brands.
    is_avif_brand(&bytes[8..12]) || bytes[16..end].chunks_exact(4).any(is_avif_brand)
}

/// The object key of a product's media: `products/{product hex}/{media hex}.{ext}`.
pub fn object_key(product: ProductId, media: MediaId, kind: ImageType) -> String {
    format!(
        "products/{}/{}.{}",
        product.0.simple(),
        media.0.simple(),
        kind.extension()
    )
}

/// The image type of a well-formed object key, or `None` for anything else (another shape,
/// upper-case hex, `..`, an unknown extension).
pub fn parse_object_key(key: &str) -> Option<ImageType> {
    let mut parts = key.split('/');
    let (Some("products"), Some(product), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (media, ext) = file.split_once('.')?;
    (is_hex_id(product) && is_hex_id(media))
        .then(|| ImageType::from_extension(ext))
        .flatten()
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The prefix under which every object of a product lives.
fn product_prefix(product: ProductId) -> String {
    format!("products/{}/", product.0.simple())
}

/// Where media go when an S3-compatible bucket is configured.
#[derive(Clone)]
pub struct MediaS3Config {
    /// The bucket name.
    pub bucket: String,
    /// The bucket's region, e.g. `eu-west-1` (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// The server's URL for S3-compatible services (MinIO, R2, …); AWS when absent.
    pub endpoint: Option<String>,
    /// The access key; the environment's credentials (instance role, web identity) when absent.
    pub access_key_id: Option<String>,
    /// The secret key belonging to `access_key_id`.
    pub secret_access_key: Option<String>,
    /// Allows a plain `http://` endpoint (a server on the same private network).
    pub allow_http: bool,
}

impl fmt::Debug for MediaS3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaS3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "********"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// What is known of a stored object before its bytes are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// A strong entity tag, quoted (`"…"`), ready for an `ETag` header.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
    /// The media type implied by its key.
    pub content_type: &'static str,
}

/// The object storage holding product media.
#[derive(Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    /// Whether the backend keeps object attributes (content type, cache control); a local folder
    /// does not, and the type is then implied by the key's extension.
    keeps_attributes: bool,
}

impl fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaStore({})", self.store)
    }
}

fn storage_error(e: object_store::Error) -> CatalogError {
    CatalogError::ObjectStore(e.to_string())
}

impl MediaStore {
    /// Media in a local folder, created when missing; writes are flushed to disk before they
    /// count as done, and folders left empty by deletions are removed.
    pub fn local(dir: &Path) -> Result<Self, CatalogError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            CatalogError::ObjectStore(format!("cannot create {}: {e}", dir.display()))
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(storage_error)?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            keeps_attributes: false,
        })
    }

    /// Media in an S3-compatible bucket, over HTTPS (or plain HTTP when `allow_http`).
    pub fn s3(config: &MediaS3Config) -> Result<Self, CatalogError> {
        // A few quick retries: an upload waiting minutes for storage is worse than a clear error.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http)
            .with_retry(retry)
            .with_http_connector(s3_http::RustlsConnector {
                allow_http: config.allow_http,
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder.build().map_err(storage_error)?;
        Ok(Self {
            store: Arc::new(store),
            keeps_attributes: true,
        })
    }

    /// Media kept in memory only (lost on exit): for tests and throw-away stores.
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            keeps_attributes: true,
        }
    }

    fn path(key: &str) -> Result<ObjectPath, CatalogError> {
        ObjectPath::parse(key)
            .map_err(|e| CatalogError::ObjectStore(format!("invalid object key {key:?}: {e}")))
    }

    /// Stores `bytes` under `key` (replacing what was there).
    pub async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), CatalogError> {
        let mut options = PutOptions::default();
        if self.keeps_attributes {
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::ContentType, content_type.to_owned().into());
            attributes.insert(Attribute::CacheControl, CACHE_CONTROL.into());
            options.attributes = attributes;
        }
        self.store
            .put_opts(&Self::path(key)?, PutPayload::from_bytes(bytes), options)
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    /// What is stored under `key`, or `None`.
    pub async fn head(&self, key: &str) -> Result<Option<StoredObject>, CatalogError> {
        match self.store.head(&Self::path(key)?).await {
            Ok(meta) => Ok(Some(describe(key, &meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// The bytes stored under `key` with their description, or `None`.
    pub async fn get(&self, key: &str) -> Result<Option<(Bytes, StoredObject)>, CatalogError> {
        let found = match self.store.get(&Self::path(key)?).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(storage_error(e)),
        };
        let object = describe(key, &found.meta);
        let bytes = found.bytes().await.map_err(storage_error)?;
        Ok(Some((bytes, object)))
    }

    /// The object under `key` as a response body that streams it, with its description, or
    /// `None`. Dropping the body unread is fine.
    pub async fn open(&self, key: &str) -> Result<Option<(StoredObject, Body)>, CatalogError> {
        match self.store.get(&Self::path(key)?).await {
            Ok(found) => {
                let object = describe(key, &found.meta);
                Ok(Some((object, Body::from_stream(found.into_stream()))))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes the object under `key`; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), CatalogError> {
        match self.store.delete(&Self::path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}

/// `Cache-Control` of every media answer: objects never change under their key.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The description of an object: its store's entity tag when it is a usable one, else a tag made
/// of the key's media id and the size (an object never changes under its key).
fn describe(key: &str, meta: &ObjectMeta) -> StoredObject {
    let content_type = parse_object_key(key)
        .map(ImageType::content_type)
        .unwrap_or("application/octet-stream");
    let tag = meta
        .e_tag
        .as_deref()
        .map(|t| t.strip_prefix("W/").unwrap_or(t).trim_matches('"'))
        .filter(|t| {
            !t.is_empty() && t.len() <= 200 && t.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let name = key.rsplit('/').next().unwrap_or(key);
            let stem = name.split('.').next().unwrap_or(name);
            format!("{stem}-{:x}", meta.size)
        });
    StoredObject {
        etag: format!("\"{tag}\""),
        size: meta.size,
        content_type,
    }
}

/// A file received for a product, before any check.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file's bytes.
    pub bytes: Bytes,
    /// Alternative text (may be empty).
    pub alt: String,
}

/// Checks an upload: its size (at most `max_bytes`), its type (by its first bytes) and its
/// alternative text (at most [`MAX_ALT_CHARS`] characters, no control characters).
pub fn check_upload(upload: &Upload, max_bytes: usize) -> Result<ImageType, CatalogError> {
    if upload.bytes.len() > max_bytes {
        return Err(CatalogError::MediaTooLarge { max_bytes });
    }
    let kind = ImageType::sniff(&upload.bytes).ok_or(CatalogError::MediaTypeNotAllowed)?;
    let mut v = Violations::new();
    check_alt(&mut v, &upload.alt);
    v.finish().map_err(CatalogError::Invalid)?;
    Ok(kind)
}

/// Checks an alternative text (at `/alt`): at most [`MAX_ALT_CHARS`] characters, no control
/// characters.
pub fn check_alt(v: &mut Violations, alt: &str) {
    check_len(v, "/alt", alt, 0, MAX_ALT_CHARS);
}

/// Checks `upload`, stores it, then attaches it to the product (honouring `if_match`). When the
/// product cannot take it (missing, changed since read) the stored object is deleted again.
/// Returns the product as changed and the new media's id.
pub async fn attach(
    service: &CatalogService,
    store: &MediaStore,
    product: ProductId,
    upload: Upload,
    max_bytes: usize,
    if_match: Option<i64>,
) -> Result<(Product, MediaId), CatalogError> {
    let kind = check_upload(&upload, max_bytes)?;
    let id = MediaId::generate();
    let key = object_key(product, id, kind);
    let size_bytes = i64::try_from(upload.bytes.len()).unwrap_or(i64::MAX);
    store.put(&key, upload.bytes, kind.content_type()).await?;
    let row = MediaRow {
        id: id.0,
        product_id: product.0,
        object_key: key.clone(),
        content_type: kind.content_type().to_owned(),
        size_bytes,
        alt: upload.alt,
        position: 0,
        created_at: OffsetDateTime::UNIX_EPOCH,
    };
    match service.add_media(product, row, if_match).await {
        Ok(changed) => Ok((changed, id)),
        Err(e) => {
            if let Err(cleanup) = store.delete(&key).await {
                tracing::warn!(key, error = %cleanup, "cannot delete the object of a refused upload");
            }
            Err(e)
        }
    }
}

/// Detaches a media from its product (honouring `if_match`), then deletes its object. The object
/// is deleted on a best-effort basis: a failure is logged, the media is gone either way.
pub async fn detach(
    service: &CatalogService,
    store: &MediaStore,
    product: ProductId,
    media: MediaId,
    if_match: Option<i64>,
) -> Result<Product, CatalogError> {
    let (changed, key) = service.remove_media(product, media, if_match).await?;
    if let Err(e) = store.delete(&key).await {
        tracing::warn!(key, error = %e, "cannot delete the object of a removed media");
    }
    Ok(changed)
}

/// Deletes the objects of a deleted product (the keys [`CatalogService::delete_product`]
/// returned), on a best-effort basis: failures are logged. Returns how many could not be deleted.
pub async fn delete_objects(store: &MediaStore, product: ProductId, keys: &[String]) -> usize {
    let prefix = product_prefix(product);
    let mut failed = 0;
    for key in keys {
        if !key.starts_with(&prefix) {
            tracing::warn!(key, "skipping an object key outside its product's folder");
            continue;
        }
        if let Err(e) = store.delete(key).await {
            failed += 1;
            tracing::warn!(key, error = %e, "cannot delete the object of a deleted product");
        }
    }
    failed
}

/// The HTTP transport of the S3 client: hyper with rustls (ring), trusting the system's
/// certificate authorities. Kept here so object storage brings its own TLS and no process-wide
/// TLS state is needed.
mod s3_http {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
    use hyper_util::rt::TokioExecutor;
    use object_store::client::{
        ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest,
        HttpRequestBody, HttpResponse, HttpResponseBody, HttpService,
    };

    use super::REQUEST_TIMEOUT;

    /// Builds [`RustlsService`]s.
    #[derive(Debug, Clone, Copy)]
    pub struct RustlsConnector {
        pub allow_http: bool,
    }

    type HttpsClient = Client<hyper_rustls::HttpsConnector<TcpConnector>, HttpRequestBody>;

    /// One pooled HTTP client.
    #[derive(Debug, Clone)]
    pub struct RustlsService {
        client: HttpsClient,
    }

    impl HttpConnector for RustlsConnector {
        fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let builder = hyper_rustls::HttpsConnectorBuilder::new();
            let builder = match builder.with_provider_and_native_roots(provider.clone()) {
                Ok(b) => b,
                Err(e) if self.allow_http => {
                    // No system certificates: plain HTTP still works, HTTPS will not verify.
                    tracing::warn!(error = %e, "no system CA certificates; HTTPS to object storage will fail");
                    let config = rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()
                        .map_err(|e| generic(e.to_string()))?
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth();
                    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
                }
                Err(e) => return Err(generic(format!("cannot load CA certificates: {e}"))),
            };
            let mut tcp = TcpConnector::new();
            tcp.enforce_http(false);
            tcp.set_connect_timeout(Some(Duration::from_secs(5)));
            tcp.set_nodelay(true);
            let builder = if self.allow_http {
                builder.https_or_http()
            } else {
                builder.https_only()
            };
            let connector = builder.enable_http1().enable_http2().wrap_connector(tcp);
            let client = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(connector);
            Ok(HttpClient::new(RustlsService { client }))
        }
    }

    fn generic(message: String) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: message.into(),
        }
    }

    #[async_trait::async_trait]
    impl HttpService for RustlsService {
        async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
            let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(req))
                .await
                .map_err(|e| HttpError::new(HttpErrorKind::Timeout, e))?
                .map_err(|e| {
                    let kind = if e.is_connect() {
                        HttpErrorKind::Connect
                    } else {
                        HttpErrorKind::Request
                    };
                    HttpError::new(kind, e)
                })?;
            Ok(response.map(|body| {
                HttpResponseBody::new(
                    body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e)),
                )
            }))
        }
    }
}

/// How long the object storage gets to start answering a request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A 1×1 PNG.
    pub(crate) const PNG: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
        0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];

    #[test]
    fn types_are_recognised_by_their_first_bytes() {
        assert_eq!(ImageType::sniff(PNG), Some(ImageType::Png));
        assert_eq!(
            ImageType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(ImageType::Jpeg)
        );
        assert_eq!(ImageType::sniff(b"GIF89a\x01\x00"), Some(ImageType::Gif));
        assert_eq!(ImageType::sniff(b"GIF87a\x01\x00"), Some(ImageType::Gif));
        assert_eq!(
            ImageType::sniff(b"RIFF\x24\x00\x00\x00WEBPVP8 "),
            Some(ImageType::Webp)
        );
        assert_eq!(
            ImageType::sniff(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf"),
            Some(ImageType::Avif)
        );
        assert_eq!(
            ImageType::sniff(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf"),
            Some(ImageType::Avif)
        );
        for refused in [
            &b""[..],
            b"hello, I am text pretending to be a .png",
            b"\x89PNG",
            b"RIFF\x24\x00\x00\x00WAVEfmt ",
            b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            b"%PDF-1.7",
        ] {
            assert_eq!(ImageType::sniff(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn keys_name_product_media_and_type_and_nothing_else() {
        let product = ProductId::generate();
        let media = MediaId::generate();
        let key = object_key(product, media, ImageType::Webp);
        assert_eq!(
            key,
            format!("products/{}/{}.webp", product.0.simple(), media.0.simple())
        );
        assert_eq!(parse_object_key(&key), Some(ImageType::Webp));
        let hex = media.0.simple().to_string();
        for bad in [
            String::new(),
            format!("products/{hex}"),
            format!("products/../{hex}.png"),
            format!("products/{hex}/../{hex}.png"),
            format!("products/{hex}/{hex}.exe"),
            format!("products/{hex}/{hex}.png/x"),
            format!("products/{hex}/{hex}"),
            format!("products/{}/{hex}.png", hex.to_uppercase()),
            format!("other/{hex}/{hex}.png"),
            format!("/products/{hex}/{hex}.png"),
            format!("products/{hex}/{hex}.tar.png"),
        ] {
            assert_eq!(parse_object_key(&bad), None, "{bad}");
        }
    }

    #[test]
    fn uploads_are_checked_for_size_type_and_alt_text() {
        let upload = |bytes: &[u8], alt: &str| Upload {
            bytes: Bytes::copy_from_slice(bytes),
            alt: alt.to_owned(),
        };
        assert_eq!(
            check_upload(&upload(PNG, "A dot"), PNG.len()).unwrap(),
            ImageType::Png
        );
        assert!(matches!(
            check_upload(&upload(PNG, ""), PNG.len() - 1),
            Err(CatalogError::MediaTooLarge { max_bytes }) if max_bytes == PNG.len() - 1
        ));
        assert!(matches!(
            check_upload(&upload(b"plain text", ""), 1000),
            Err(CatalogError::MediaTypeNotAllowed)
        ));
        let long = "é".repeat(MAX_ALT_CHARS + 1);
        let Err(CatalogError::Invalid(errors)) = check_upload(&upload(PNG, &long), 1000) else {
            panic!("a long alt text is refused");
        };
        assert_eq!(errors[0].pointer, "/alt");
        assert_eq!(errors[0].code, "too_long");
        assert!(check_upload(&upload(PNG, &"é".repeat(MAX_ALT_CHARS)), 1000).is_ok());
        let Err(CatalogError::Invalid(errors)) = check_upload(&upload(PNG, "a\u{0}b"), 1000) else {
            panic!("control characters are refused");
        };
        assert_eq!(errors[0].code, "invalid_format");
    }

    async fn round_trip(store: &MediaStore) {
        let key = object_key(ProductId::generate(), MediaId::generate(), ImageType::Png);
        assert_eq!(store.head(&key).await.unwrap(), None);
        assert!(store.get(&key).await.unwrap().is_none());
        store
            .put(&key, Bytes::from_static(PNG), "image/png")
            .await
            .unwrap();
        let (bytes, object) = store.get(&key).await.unwrap().unwrap();
        assert_eq!(&bytes[..], PNG);
        assert_eq!(object.size, PNG.len() as u64);
        assert_eq!(object.content_type, "image/png");
        assert!(object.etag.starts_with('"') && object.etag.ends_with('"'));
        assert!(object.etag.len() > 2);
        assert_eq!(store.head(&key).await.unwrap(), Some(object.clone()));
        let (opened, body) = store.open(&key).await.unwrap().unwrap();
        assert_eq!(opened, object);
        let streamed = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(&streamed[..], PNG);
        store.delete(&key).await.unwrap();
        assert!(store.get(&key).await.unwrap().is_none());
        // Deleting again is not an error.
        store.delete(&key).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_local_folder_stores_reads_and_deletes_objects() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        let store = MediaStore::local(&root).unwrap();
        assert!(root.is_dir(), "the folder is created");
        round_trip(&store).await;
        // The product's folder is removed with its last object.
        assert_eq!(
            std::fs::read_dir(root.join("products")).map_or(0, |d| d.count()),
            0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_storage_behaves_the_same() {
        round_trip(&MediaStore::in_memory()).await;
    }

    /// Against a real S3-compatible server when `EMPORIUM_TEST_S3_URL` names one (its bucket
    /// `EMPORIUM_TEST_S3_BUCKET`, default `emporium-test`, must exist; keys from
    /// `EMPORIUM_TEST_S3_ACCESS_KEY_ID` / `EMPORIUM_TEST_S3_SECRET_ACCESS_KEY`, default `test`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_s3_bucket_stores_reads_and_deletes_objects() {
        let Some(endpoint) = std::env::var("EMPORIUM_TEST_S3_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            if std::env::var("EMPORIUM_TEST_REQUIRE_S3").is_ok_and(|v| v == "1") {
                panic!("EMPORIUM_TEST_S3_URL is not set but EMPORIUM_TEST_REQUIRE_S3=1");
            }
            eprintln!("NOT RUN: S3 media test skipped, EMPORIUM_TEST_S3_URL is not set");
            return;
        };
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let store = MediaStore::s3(&MediaS3Config {
            bucket: var("EMPORIUM_TEST_S3_BUCKET", "emporium-test"),
            region: var("EMPORIUM_TEST_S3_REGION", "us-east-1"),
            allow_http: endpoint.starts_with("http://"),
            endpoint: Some(endpoint),
            access_key_id: Some(var("EMPORIUM_TEST_S3_ACCESS_KEY_ID", "test")),
            secret_access_key: Some(var("EMPORIUM_TEST_S3_SECRET_ACCESS_KEY", "test")),
        })
        .unwrap();
        round_trip(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_s3_store_is_configured_without_touching_the_network() {
        let config = MediaS3Config {
            bucket: "media".into(),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            access_key_id: Some("key".into()),
            secret_access_key: Some("very secret".into()),
            allow_http: true,
        };
        assert!(!format!("{config:?}").contains("very secret"));
        let store = MediaStore::s3(&config).unwrap();
        // Nothing listens on the discard port: a read fails with an error, not a panic.
        let key = object_key(ProductId::generate(), MediaId::generate(), ImageType::Png);
        assert!(matches!(
            store.head(&key).await,
            Err(CatalogError::ObjectStore(_))
        ));
    }
}
