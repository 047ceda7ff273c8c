//! Product media over HTTP: uploads and removals for staff under `/v1/admin`, and `/media/{key}`,
//! public and outside the versioned API, serving the stored files with year-long cache headers.

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use emporium_http::conditional::{if_match_version, none_match, version_etag};
use emporium_http::{ApiError, Path};
use emporium_kernel::ids::{MediaId, ProductId};
use emporium_kernel::{ErrorKind, Violations};

use super::CatalogState;
use crate::api::Media;
use crate::domain::pointer_escape;
use crate::error::CatalogError;
use crate::media::{self, CACHE_CONTROL, Upload};

/// Room for the multipart framing and the `alt` part on top of the file itself.
pub const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The body limit of the upload route for files of at most `max_bytes`.
pub fn upload_body_limit(max_bytes: usize) -> usize {
    max_bytes.saturating_add(MULTIPART_OVERHEAD)
}

/// The form of `POST /v1/admin/products/{id}/media` (`multipart/form-data`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct MediaUpload {
    /// The image: JPEG, PNG, GIF, WebP or AVIF, recognised by its content (the file name and the
    /// part's `Content-Type` are ignored); at most `media.max_bytes` (default 10 MiB).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Alternative text, at most 500 characters.
    #[schema(max_length = 500)]
    alt: Option<String>,
}

/// A catalog error as a problem; the upload's size and type failures get their HTTP statuses.
fn problem(error: CatalogError) -> ApiError {
    match error {
        CatalogError::MediaTooLarge { .. } => ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "media_too_large",
            error.to_string(),
        ),
        CatalogError::MediaTypeNotAllowed => ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media_type_not_allowed",
            error.to_string(),
        ),
        other => other.into(),
    }
}

/// A failure reading the multipart body: over the route's limit is a file too large, anything
/// else an unreadable body.
fn multipart_problem(error: &MultipartError, max_bytes: usize) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        problem(CatalogError::MediaTooLarge { max_bytes })
    } else {
        ApiError::with_status(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            format!(
                "the multipart body could not be read: {}",
                error.body_text()
            ),
        )
    }
}

/// Reads the `file` part, stopping as soon as it exceeds `max_bytes`.
async fn read_file(field: &mut Field<'_>, max_bytes: usize) -> Result<bytes::Bytes, ApiError> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_problem(&e, max_bytes))?
    {
        if buffer.len() + chunk.len() > max_bytes {
            return Err(problem(CatalogError::MediaTooLarge { max_bytes }));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// Reads the form: one `file` part (required) and an optional `alt` part; any other part is an
/// unknown field.
async fn read_upload(
    multipart: Result<Multipart, MultipartRejection>,
    max_bytes: usize,
) -> Result<Upload, ApiError> {
    let mut multipart = multipart.map_err(|_| {
        ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a body of type multipart/form-data",
        )
    })?;
    let mut v = Violations::new();
    let mut file = None;
    let mut alt = String::new();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_problem(&e, max_bytes))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" if file.is_some() => v.push("/file", "duplicate", "send one file per upload"),
            "file" => file = Some(read_file(&mut field, max_bytes).await?),
            "alt" => {
                alt = field
                    .text()
                    .await
                    .map_err(|e| multipart_problem(&e, max_bytes))?;
            }
            other => v.push(
                format!("/{}", pointer_escape(other)),
                "unknown_field",
                format!("unknown part `{other}`, expected `file` or `alt`"),
            ),
        }
    }
    if file.is_none() {
        v.push("/file", "required", "a `file` part is required");
    }
    // Every field problem in one answer; the file's size and type are checked after.
    media::check_alt(&mut v, &alt);
    v.finish().map_err(ApiError::validation)?;
    Ok(Upload {
        bytes: file.unwrap_or_default(),
        alt,
    })
}

/// Uploads an image and attaches it to the product, after its other media.
#[utoipa::path(post, path = "/v1/admin/products/{id}/media", operation_id = "uploadAdminProductMedia", tag = "admin",
    request_body(content = MediaUpload, content_type = "multipart/form-data"),
    params(("id" = ProductId, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "The product's ETag; 412 when it changed since")),
    responses(
        (status = 201, description = "The new media (served at its `url`); `ETag` is the product's new version", body = Media),
        (status = 400, description = "The multipart body cannot be read (`body_unreadable`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product (`product_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than `media.max_bytes` (`media_too_large`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a JPEG, PNG, GIF, WebP or AVIF image (`media_type_not_allowed`), or not a multipart body (`unsupported_media_type`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parts (`validation_failed`): `required` or `duplicate` at `/file`, `too_long` at `/alt`, `unknown_field`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload_media(
    State(s): State<CatalogState>,
    Path(id): Path<ProductId>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let upload = read_upload(multipart, s.media_max_bytes).await?;
    let (product, media_id) = media::attach(
        &s.service,
        &s.media,
        id,
        upload,
        s.media_max_bytes,
        if_match_version(&headers),
    )
    .await
    .map_err(problem)?;
    let created = product
        .media
        .iter()
        .find(|m| m.id == media_id)
        .ok_or(CatalogError::MediaNotFound)?;
    Ok((
        StatusCode::CREATED,
        [(header::ETAG, version_etag(product.version))],
        axum::Json(created),
    )
        .into_response())
}

/// Removes a media from its product and deletes its file.
#[utoipa::path(delete, path = "/v1/admin/products/{id}/media/{media_id}", operation_id = "deleteAdminProductMedia", tag = "admin",
    params(("id" = ProductId, Path, description = "Product id"), ("media_id" = MediaId, Path, description = "Media id"),
        ("If-Match" = Option<String>, Header, description = "The product's ETag; 412 when it changed since")),
    responses(
        (status = 204, description = "Removed; `ETag` is the product's new version"),
        (status = 404, description = "No such product, or no such media on it (`product_not_found`, `media_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_media(
    State(s): State<CatalogState>,
    Path((id, media_id)): Path<(ProductId, MediaId)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let product = media::detach(
        &s.service,
        &s.media,
        id,
        media_id,
        if_match_version(&headers),
    )
    .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::ETAG, version_etag(product.version))],
    )
        .into_response())
}

fn media_not_found() -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        "media_not_found",
        "no media at this address",
    )
}

/// `GET /media/{key}`: a stored file, public, cacheable for a year (a key's content never
/// changes), with an `ETag` answering `If-None-Match` with 304.
pub async fn serve_media(
    State(s): State<CatalogState>,
    key: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Ok(axum::extract::Path(key)) = key else {
        return Err(media_not_found());
    };
    if media::parse_object_key(&key).is_none() {
        return Err(media_not_found());
    }
    let Some((object, body)) = s.media.open(&key).await? else {
        return Err(media_not_found());
    };
    let etag = HeaderValue::from_str(&object.etag).map_err(|_| ApiError::internal())?;
    let cache = HeaderValue::from_static(CACHE_CONTROL);
    if none_match(&headers, &object.etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(object.content_type),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(object.size)),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}
