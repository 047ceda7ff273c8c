//! The credential one service presents to another: a JWT signed with HMAC-SHA256 under the
//! cluster's shared service secret, naming the caller's groups, valid for a minute. A caller
//! keeps one token and signs a new one when half its life is gone; a callee checks signature,
//! audience and expiry in memory. A previous secret may still verify during a rotation.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_kernel::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// The header a service credential travels in (not `Authorization`, which carries the end
/// user's token the callee may also need).
pub const CREDENTIAL_HEADER: &str = "x-emporium-service";

/// The audience every service credential names.
const AUDIENCE: &str = "emporium-internal";

/// How long a signed credential is valid.
const LIFETIME: Duration = Duration::from_secs(60);

/// Shortest secret accepted: 256 bits, the HMAC-SHA256 key size.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The caller's service groups, comma-separated.
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Signs this process's credential and verifies those of callers.
pub struct ServiceCredentials {
    caller: String,
    signing: EncodingKey,
    verifying: Vec<DecodingKey>,
    validation: Validation,
    current: Mutex<Option<(String, u64)>>,
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCredentials")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ServiceCredentials {
    /// Credentials for a process serving `caller` (its groups, for the callee's logs), signing
    /// with `secret` and also accepting `previous` (a secret being rotated out).
    pub fn new(caller: impl Into<String>, secret: &[u8], previous: Option<&[u8]>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 5;
        let mut verifying = vec![DecodingKey::from_secret(secret)];
        if let Some(previous) = previous {
            verifying.push(DecodingKey::from_secret(previous));
        }
        Self {
            caller: caller.into(),
            signing: EncodingKey::from_secret(secret),
            verifying,
            validation,
            current: Mutex::new(None),
        }
    }

    /// The credential to send now: the one held while more than half its life is left, else a
    /// newly signed one.
    pub fn token(&self) -> String {
        let now = now_secs();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, exp)) = current.as_ref()
            && *exp > now + LIFETIME.as_secs() / 2
        {
            return token.clone();
        }
        let exp = now + LIFETIME.as_secs();
        let claims = Claims {
            sub: self.caller.clone(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.signing)
            .unwrap_or_default();
        *current = Some((token.clone(), exp));
        token
    }

    /// The caller named by a valid credential, or `None`.
    pub fn verify(&self, token: &str) -> Option<String> {
        self.verifying.iter().find_map(|key| {
            jsonwebtoken::decode::<Claims>(token, key, &self.validation)
                .ok()
                .map(|data| data.claims.sub)
        })
    }
}

/// Middleware for internal routes: refuses a request without a valid service credential with
/// 401 `service_credential_invalid`.
pub async fn guard(
    State(credentials): State<Arc<ServiceCredentials>>,
    request: Request,
    next: Next,
) -> Response {
    let caller = request
        .headers()
        .get(CREDENTIAL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|token| credentials.verify(token));
    match caller {
        Some(caller) => {
            tracing::trace!(%caller, "internal call");
            next.run(request).await
        }
        None => ApiError::new(
            ErrorKind::Unauthenticated,
            "service_credential_invalid",
            "internal routes take a valid service credential",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_credential_verifies_and_names_its_caller() {
        let ours = ServiceCredentials::new("ordering", SECRET, None);
        let token = ours.token();
        assert_eq!(ours.verify(&token).as_deref(), Some("ordering"));
        // Kept while fresh.
        assert_eq!(ours.token(), token);
    }

    #[test]
    fn another_secret_or_a_forged_token_is_refused() {
        let ours = ServiceCredentials::new("inventory", SECRET, None);
        let theirs = ServiceCredentials::new("x", b"another-secret-another-secret-xx", None);
        assert_eq!(ours.verify(&theirs.token()), None);
        assert_eq!(ours.verify("not.a.token"), None);
        assert_eq!(ours.verify(""), None);
    }

    #[test]
    fn a_previous_secret_still_verifies_during_a_rotation() {
        let old = ServiceCredentials::new("catalog", SECRET, None);
        let new_secret = b"fedcba9876543210fedcba9876543210";
        let rotated = ServiceCredentials::new("catalog", new_secret, Some(SECRET));
        assert_eq!(rotated.verify(&old.token()).as_deref(), Some("catalog"));
        let unrotated = ServiceCredentials::new("catalog", new_secret, None);
        assert_eq!(unrotated.verify(&old.token()), None);
    }

    #[test]
    fn an_expired_credential_is_refused() {
        let ours = ServiceCredentials::new("ordering", SECRET, None);
        let claims = Claims {
            sub: "ordering".into(),
            aud: AUDIENCE.into(),
            iat: 1,
            exp: now_secs() - 120,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("signed");
        assert_eq!(ours.verify(&token), None);
    }
}
