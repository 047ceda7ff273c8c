//! Extractors whose rejections are problems: bad syntax 400, bad data 422 with the field's JSON
//! Pointer, wrong media type 415, too large 413.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use emporium_kernel::{ErrorKind, FieldError};
use serde::de::DeserializeOwned;

use crate::ApiError;
use crate::objects::Objects;

/// A JSON request body. Rejects other media types (415), bodies over the limit (413), malformed
/// JSON (400) and data of the wrong shape (422, naming the field).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body of type application/json",
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads the whole body within the configured limit.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body exceeds the size limit",
            )
        } else {
            ApiError::new(
                ErrorKind::BadRequest,
                "body_unreadable",
                "the request body could not be read",
            )
        }
    })
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses JSON into `T`, mapping serde's failure to a problem with the field's JSON Pointer.
/// An array where a struct belongs, at the top or nested, is refused (422 `invalid_type` at its
/// pointer): serde would otherwise fill the struct's fields from the array's elements in order
/// (see `objects.rs`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(Objects(&mut de)).map_err(|e| {
        let pointer = pointer_of(e.path());
        json_problem(pointer, &e.into_inner())
    })?;
    de.end().map_err(|e| json_problem(String::new(), &e))?;
    Ok(parsed)
}

fn json_problem(pointer: String, error: &serde_json::Error) -> ApiError {
    if error.is_data() {
        ApiError::validation(vec![field_error(pointer, &error.to_string())])
    } else {
        ApiError::new(
            ErrorKind::BadRequest,
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        )
    }
}

/// The query of a plain paged list: `cursor` (the previous page's `next_cursor`) and `limit`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

/// Query parameters, `snake_case`; a bad value is a 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let pointer = pointer_of(e.path());
                ApiError::validation(vec![field_error(pointer, &e.into_inner().to_string())])
            })
    }
}

/// Path parameters; one that cannot name a resource (a malformed id) is a 404.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_| ApiError::not_found("no resource at this path"))
    }
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        out.push('/');
        match segment {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } => out.push_str(&escape(key)),
            Segment::Enum { variant } => out.push_str(&escape(variant)),
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Turns serde's message into a stable code; a missing field's pointer moves onto that field.
fn field_error(mut pointer: String, message: &str) -> FieldError {
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let code = if let Some(field) = named("missing field `") {
        pointer = format!("{pointer}/{}", escape(&field));
        "required"
    } else if message.starts_with("unknown field `") {
        // The path already ends at the unknown key.
        "unknown_field"
    } else if message.starts_with("invalid type") {
        "invalid_type"
    } else if message.starts_with("unknown variant") {
        "invalid_value"
    } else {
        "invalid_format"
    };
    // serde's messages carry no secret input back except field names and types; trim the
    // position suffix serde_json adds.
    let detail = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_owned();
    FieldError::new(pointer, code, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        tags: Vec<u8>,
    }

    fn err_of(json: &str) -> ApiError {
        parse_json::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_missing_field_points_at_the_field() {
        let e = err_of(r#"{"tags": []}"#);
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.errors()[0].pointer, "/email");
        assert_eq!(e.errors()[0].code, "required");
    }

    #[test]
    fn a_wrong_type_deep_inside_points_at_the_element() {
        let e = err_of(r#"{"email": "a@b.c", "tags": [1, "x"]}"#);
        assert_eq!(e.errors()[0].pointer, "/tags/1");
        assert_eq!(e.errors()[0].code, "invalid_type");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let e = err_of(r#"{"email": "a@b.c", "tags": [], "admin": true}"#);
        assert_eq!(e.errors()[0].pointer, "/admin");
        assert_eq!(e.errors()[0].code, "unknown_field");
    }

    #[test]
    fn an_array_is_refused_for_a_struct_but_not_for_a_list() {
        let e = err_of(r#" ["a@b.c", []]"#);
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.errors()[0].pointer, "");
        assert_eq!(e.errors()[0].code, "invalid_type");
        assert!(parse_json::<Option<Body>>(b"[\"a@b.c\", []]").is_err());
        assert_eq!(parse_json::<Vec<u8>>(b" [1, 2]").unwrap(), vec![1, 2]);
        assert_eq!(
            parse_json::<serde_json::Value>(b"[1]").unwrap(),
            serde_json::json!([1])
        );
        assert!(parse_json::<Body>(br#"{"email": "a@b.c", "tags": []}"#).is_ok());
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        address: Option<Address>,
        #[serde(default)]
        lines: Vec<Address>,
        kind: Option<Kind>,
        extra: Option<serde_json::Value>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Address {
        city: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Kind {
        Parcel { grams: u32 },
        Pair(u8, u8),
    }

    #[test]
    fn an_array_is_refused_for_a_nested_struct_at_its_pointer() {
        for (json, pointer) in [
            (r#"{"address": ["Köln"]}"#, "/address"),
            (r#"{"lines": [{"city": "Köln"}, ["Bonn"]]}"#, "/lines/1"),
            (r#"{"kind": {"parcel": [500]}}"#, "/kind/parcel"),
        ] {
            let e = parse_json::<Order>(json.as_bytes()).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{json}");
            assert_eq!(e.errors()[0].pointer, pointer, "{json}");
            assert_eq!(e.errors()[0].code, "invalid_type", "{json}");
        }
        // Objects where structs belong, and arrays where lists, tuples or free values do.
        let fine = br#"{"address": {"city": "Koeln"}, "lines": [{"city": "Bonn"}],
            "kind": {"pair": [1, 2]}, "extra": [[1], {"a": [2]}]}"#;
        assert!(parse_json::<Order>(fine).is_ok());
        assert!(parse_json::<Order>(br#"{"kind": {"parcel": {"grams": 500}}}"#).is_ok());
    }

    #[test]
    fn broken_syntax_and_trailing_garbage_are_400() {
        assert_eq!(err_of(r#"{"email": "#).code(), "malformed_json");
        assert_eq!(
            err_of(r#"{"email": "a", "tags": []} x"#).code(),
            "malformed_json"
        );
    }
}
