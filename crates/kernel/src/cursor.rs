//! Opaque keyset cursors: the client gets a token, the server gets back the key it encoded.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FieldError;

/// An opaque pagination cursor wrapping the sort key of the last item of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    /// Encodes a keyset position.
    pub fn encode<K: Serialize>(key: &K) -> Self {
        // Serialising plain keys (strings, numbers, tuples of them) cannot fail.
        let json = serde_json::to_vec(key).unwrap_or_default();
        Self(URL_SAFE_NO_PAD.encode(json))
    }

    /// Decodes a client-supplied cursor; a tampered or foreign one is an `invalid_cursor` error.
    pub fn decode<K: DeserializeOwned>(token: &str) -> Result<K, FieldError> {
        let bad = || {
            FieldError::new(
                "/cursor",
                "invalid_cursor",
                "the cursor is not one this API issued",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }

    /// The token to hand to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the cursor into its token.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// One page of a list, with the cursor of the next page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The page size a client asked for, checked against `1..=max`, or `default` when absent.
pub fn page_limit(requested: Option<u32>, default: u32, max: u32) -> Result<i64, FieldError> {
    match requested.unwrap_or(default) {
        0 => Err(FieldError::new("/limit", "too_small", "at least 1")),
        n if n > max => Err(FieldError::new(
            "/limit",
            "too_large",
            format!("at most {max}"),
        )),
        n => Ok(i64::from(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn a_cursor_round_trips_its_key() {
        let key = ("2026-01-01T00:00:00Z".to_owned(), 42_i64);
        let c = Cursor::encode(&key);
        assert_eq!(Cursor::decode::<(String, i64)>(c.as_str()).ok(), Some(key));
    }

    #[test]
    fn a_forged_cursor_is_rejected() {
        let err = Cursor::decode::<(String, i64)>("not-base64!!").unwrap_err();
        assert_eq!(err.code, "invalid_cursor");
    }
}
