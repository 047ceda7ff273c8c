//! Bearer authentication: a verifier (implemented by identity) turns a token into a
//! [`Principal`]; extractors demand one.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_kernel::ErrorKind;
use emporium_kernel::auth::{Actor, Principal};

use crate::ApiError;

/// Verifies an access token without touching the database (signature, expiry, audience, and
/// whether its principal's tokens were ended since it was issued).
pub trait TokenVerifier: Send + Sync + 'static {
    /// The principal the token proves, or a 401 problem: `token_invalid`, or `token_revoked` for
    /// a token its principal's later change ended.
    fn verify(&self, token: &str) -> Result<Principal, ApiError>;
}

/// Middleware: when the request carries `Authorization: Bearer …`, verifies it and attaches the
/// [`Principal`]; a bad bearer token is refused here (401), whatever the route. Other schemes
/// (HTTP Basic for the token endpoint) pass through untouched.
pub async fn authenticate(
    State(verifier): State<Arc<dyn TokenVerifier>>,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    if let Some(token) = bearer {
        match verifier.verify(&token) {
            Ok(p) => {
                req.extensions_mut().insert(p);
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// Any authenticated caller; 401 without a token.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Unauthenticated,
                    "unauthenticated",
                    "this route needs an access token",
                )
            })
    }
}

/// A caller authenticated as a customer; 401 without a token, 403 with another kind of token.
#[derive(Debug, Clone)]
pub struct Customer(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Authenticated(p) = Authenticated::from_request_parts(parts, state).await?;
        if p.actor == Actor::Customer {
            Ok(Customer(p))
        } else {
            Err(ApiError::new(
                ErrorKind::Forbidden,
                "customer_token_required",
                "this route is for customers",
            ))
        }
    }
}
