//! Identity's boundary: the plain data it hands out and the trait other contexts call.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use emporium_kernel::auth::Role;

use crate::domain::{ApiClientId, CustomerId, StaffUserId};
use crate::error::IdentityError;

/// A shopper's account.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Customer {
    pub id: CustomerId,
    pub email: String,
    pub name: String,
    /// The customer's groups (price lists and promotions may be for a group), sorted.
    pub groups: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// A back-office user.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StaffUser {
    pub id: StaffUserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Set while the user is disabled: it cannot sign in, and its tokens were ended.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<OffsetDateTime>,
}

/// A machine client of the client-credentials grant.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiClient {
    pub id: ApiClientId,
    pub name: String,
    pub scopes: Vec<String>,
    /// The staff user who created it.
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Set once revoked; a revoked client gets no new tokens.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A newly created API client with its secret, shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewApiClient {
    #[serde(flatten)]
    pub client: ApiClient,
    /// The client secret. It is stored hashed and cannot be shown again.
    pub client_secret: String,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Absent for the client-credentials grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Space-separated granted scopes.
    pub scope: String,
}

/// The public keys that verify access tokens: a JSON Web Key Set (RFC 7517).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    /// Every key that may have signed a live token; a token names its key by `kid`.
    pub keys: Vec<Jwk>,
}

/// One Ed25519 public key, as RFC 8037 writes it in a JWK.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// Always `OKP` (octet key pair).
    #[schema(example = "OKP")]
    pub kty: String,
    /// Always `Ed25519`.
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The key id a token's header names.
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub use_: String,
    /// Always `EdDSA`.
    #[schema(example = "EdDSA")]
    pub alg: String,
}

pub use emporium_kernel::Page;

/// What other contexts may ask of identity.
#[async_trait::async_trait]
pub trait IdentityApi: Send + Sync {
    /// The customer with `id`, or `None`.
    async fn find_customer(&self, id: CustomerId) -> Result<Option<Customer>, IdentityError>;
}
