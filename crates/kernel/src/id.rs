//! Typed identifiers: UUIDv7 inside, shown in the API with a type prefix (`cus_0190…`).
//!
//! A prefix makes an id self-describing in logs and lets the API reject an order id passed where a
//! customer id belongs, before any database lookup.

use std::fmt;

/// Why a string is not a valid id of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    #[error("expected an id starting with `{expected}_`")]
    WrongPrefix { expected: &'static str },
    #[error("malformed id")]
    Malformed,
}

/// Parses `prefix_<32 hex digits>` into its UUID.
pub fn parse_prefixed(prefix: &'static str, s: &str) -> Result<uuid::Uuid, IdParseError> {
    let rest = s
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(IdParseError::WrongPrefix { expected: prefix })?;
    if rest.len() != 32 {
        return Err(IdParseError::Malformed);
    }
    uuid::Uuid::try_parse(rest).map_err(|_| IdParseError::Malformed)
}

/// Writes `prefix_<32 hex digits>`.
pub fn fmt_prefixed(prefix: &str, id: &uuid::Uuid, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{prefix}_{}", id.simple())
}

/// Declares an id newtype with its prefix, `Display`/`FromStr`, serde as a string and an OpenAPI schema.
#[macro_export]
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        // `Default` is the nil id: what a request body that names no id reads as.
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub ::uuid::Uuid);

        impl $name {
            /// A new time-ordered (UUIDv7) id.
            pub fn generate() -> Self {
                Self(::uuid::Uuid::now_v7())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                $crate::id::fmt_prefixed($prefix, &self.0, f)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(self, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::id::IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::id::parse_prefixed($prefix, s).map(Self)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-f]{32}$")))
                    .examples([concat!($prefix, "_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f")])
                    .into()
            }
        }

        impl ::utoipa::ToSchema for $name {}
    };
}

#[cfg(test)]
mod tests {
    typed_id!(TestId, "tst");

    #[test]
    fn an_id_round_trips_through_its_text_form() {
        let id = TestId::generate();
        let text = id.to_string();
        assert!(text.starts_with("tst_"));
        assert_eq!(text.len(), 4 + 32);
        assert_eq!(text.parse::<TestId>(), Ok(id));
    }

    #[test]
    fn an_id_with_another_prefix_is_rejected() {
        let text = TestId::generate().to_string().replacen("tst", "ord", 1);
        assert!(matches!(
            text.parse::<TestId>(),
            Err(super::IdParseError::WrongPrefix { .. })
        ));
        assert_eq!(
            "tst_xyz".parse::<TestId>(),
            Err(super::IdParseError::Malformed)
        );
    }
}
