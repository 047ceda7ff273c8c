//! Registration, the OAuth2 token endpoint, logout, the current customer and the JWKS.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use emporium_http::middleware::ClientAddr;
use emporium_http::{ApiError, Authenticated, Customer as CustomerCaller, Json};
use serde::{Deserialize, Serialize};

use crate::api::{Customer, Jwks, TokenResponse};
use crate::error::OAuthError;
use crate::service::{IdentityService, RegisterCustomer};

/// Body of `POST /v1/auth/register`. Absent fields read as empty, so one answer lists every
/// missing or invalid field (the schema states the maximum lengths; an empty value is refused
/// as `required`, which a minimum would contradict the `""` default with).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RegisterBody {
    /// E-mail address; stored trimmed and lower-case, unique.
    #[schema(max_length = 254)]
    pub email: String,
    /// 10 to 128 characters, not a common password, not the e-mail address.
    #[schema(max_length = 128)]
    pub password: String,
    /// Display name, 1 to 200 characters.
    #[schema(max_length = 200)]
    pub name: String,
}

/// Creates a customer account.
#[utoipa::path(
    post,
    path = "/v1/auth/register",
    operation_id = "registerCustomer",
    tag = "auth",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Account created", body = Customer),
        (status = 409, description = "E-mail address taken (`email_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`): the e-mail address, a weak or too short password, the name", body = emporium_http::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    State(service): State<Arc<IdentityService>>,
    Json(body): Json<RegisterBody>,
) -> Result<(StatusCode, axum::Json<Customer>), ApiError> {
    let customer = service
        .register(RegisterCustomer {
            email: body.email,
            password: body.password,
            name: body.name,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(customer)))
}

/// Form parameters of the token endpoint (RFC 6749 §4.3, §4.4, §6).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// `password`, `refresh_token` or `client_credentials`.
    pub grant_type: Option<String>,
    /// E-mail address (password grant).
    pub username: Option<String>,
    /// Password (password grant).
    pub password: Option<String>,
    /// Space-separated scopes. Password grant: `store` (customers, the default) or `admin`
    /// (staff users). Client credentials: a subset of the client's scopes.
    pub scope: Option<String>,
    /// The refresh token (refresh grant).
    pub refresh_token: Option<String>,
    /// Client id (client credentials, when not sent with HTTP Basic).
    pub client_id: Option<String>,
    /// Client secret (client credentials, when not sent with HTTP Basic).
    pub client_secret: Option<String>,
}

/// An error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`.
    pub error: String,
    /// Human-readable explanation.
    pub error_description: String,
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Other(e) => return no_store(ApiError::from(e).into_response()),
            Self::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = OAuthErrorBody {
            error: self.oauth_code().to_owned(),
            error_description: self.to_string(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::InvalidClient { basic } = self {
            let challenge = if basic {
                r#"Basic realm="emporium""#
            } else {
                r#"Bearer realm="emporium""#
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        no_store(response)
    }
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::InvalidClient { basic: true };
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::InvalidRequest(
            "the token endpoint takes HTTP Basic client authentication only".into(),
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before encoding.
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Ok(Some((
        unescape(id).ok_or_else(bad)?,
        unescape(secret).ok_or_else(bad)?,
    )))
}

/// The OAuth2 token endpoint: password, refresh-token and client-credentials grants.
///
/// Form-encoded (`application/x-www-form-urlencoded`). Errors use the RFC 6749 codes; failed
/// sign-ins are throttled per account and per client address (429 with `Retry-After`).
#[utoipa::path(
    post,
    path = "/v1/auth/token",
    operation_id = "issueToken",
    tag = "auth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse),
        (status = 400, description = "RFC 6749 errors (`invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`); an unreadable body (`body_unreadable`) is a problem", content((OAuthErrorBody = "application/json"), (emporium_http::Problem = "application/problem+json"))),
        (status = 401, description = "Unknown client or wrong secret (`invalid_client`)", body = OAuthErrorBody),
        (status = 413, description = "Body too large (`body_too_large`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed sign-ins for the account or the address (`login_throttled`); see `Retry-After`", body = emporium_http::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn token(State(service): State<Arc<IdentityService>>, req: Request) -> Response {
    let address = req.extensions().get::<ClientAddr>().map(|ClientAddr(a)| *a);
    let headers = req.headers().clone();
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        )
        .into_response();
    }
    let body = match emporium_http::extract::read_body(req, &()).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let result = async {
        let form: TokenForm = serde_urlencoded::from_bytes(&body)
            .map_err(|e| OAuthError::InvalidRequest(format!("the form is malformed: {e}")))?;
        let scope = form.scope.as_deref();
        match form.grant_type.as_deref() {
            Some("password") => {
                let (Some(username), Some(password)) =
                    (form.username.as_deref(), form.password.as_deref())
                else {
                    return Err(OAuthError::InvalidRequest(
                        "username and password are required".into(),
                    ));
                };
                service
                    .password_grant(username, password, scope, address)
                    .await
            }
            Some("refresh_token") => {
                let token = form.refresh_token.as_deref().unwrap_or_default();
                service.refresh_grant(token, scope).await
            }
            Some("client_credentials") => {
                let basic = basic_credentials(&headers)?;
                let in_body = form.client_id.clone().zip(form.client_secret.clone());
                let (credentials, is_basic) = match (basic, in_body) {
                    (Some(_), Some(_)) => {
                        return Err(OAuthError::InvalidRequest(
                            "send client credentials once: HTTP Basic or the form".into(),
                        ));
                    }
                    (Some(b), None) => (b, true),
                    (None, Some(f)) => (f, false),
                    (None, None) => return Err(OAuthError::InvalidClient { basic: false }),
                };
                service
                    .client_credentials_grant(
                        &credentials.0,
                        &credentials.1,
                        scope,
                        is_basic,
                        address,
                    )
                    .await
            }
            Some(_) => Err(OAuthError::UnsupportedGrantType),
            None => Err(OAuthError::InvalidRequest("grant_type is required".into())),
        }
    }
    .await;
    match result {
        Ok(tokens) => no_store(axum::Json(tokens).into_response()),
        Err(e) => e.into_response(),
    }
}

/// Ends the caller's session: its refresh tokens are revoked.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    operation_id = "logOut",
    tag = "auth",
    responses(
        (status = 204, description = "Session revoked"),
        (status = 401, description = "No access token (`unauthenticated`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn logout(
    State(service): State<Arc<IdentityService>>,
    Authenticated(principal): Authenticated,
) -> Result<StatusCode, ApiError> {
    service.logout(&principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in customer.
#[utoipa::path(
    get,
    path = "/v1/store/me",
    operation_id = "getStoreCustomer",
    tag = "store",
    responses(
        (status = 200, description = "The customer", body = Customer),
        (status = 401, description = "No access token (`unauthenticated`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token is not a customer's (`customer_token_required`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account was deleted (`customer_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(
    State(service): State<Arc<IdentityService>>,
    CustomerCaller(principal): CustomerCaller,
) -> Result<axum::Json<Customer>, ApiError> {
    Ok(axum::Json(service.me(&principal).await?))
}

/// Body of `POST /v1/store/me/password`. Absent fields read as empty, so one answer lists every
/// missing or invalid field.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ChangePasswordBody {
    /// The password now.
    pub current_password: String,
    /// The new password: 10 to 128 characters, not a common password, not the e-mail address.
    pub new_password: String,
}

/// Changes the signed-in customer's password.
///
/// Every session and access token of the customer ends at once, this request's included, on
/// every device; the answer holds the tokens of a new session, which the caller uses from now on.
/// A wrong current password counts as a failed sign-in for throttling.
#[utoipa::path(
    post,
    path = "/v1/store/me/password",
    operation_id = "changeStoreCustomerPassword",
    tag = "store",
    request_body = ChangePasswordBody,
    responses(
        (status = 200, description = "Password changed; the tokens of the new session", body = TokenResponse),
        (status = 401, description = "No access token (`unauthenticated`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token is not a customer's (`customer_token_required`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account was deleted (`customer_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the current password is wrong (`/current_password`, `incorrect`) or the new one breaks the policy", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords (`login_throttled`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn change_password(
    State(service): State<Arc<IdentityService>>,
    CustomerCaller(principal): CustomerCaller,
    address: Option<Extension<ClientAddr>>,
    Json(body): Json<ChangePasswordBody>,
) -> Result<Response, ApiError> {
    let address = address.map(|Extension(ClientAddr(a))| a);
    let tokens = service
        .change_customer_password(
            &principal,
            &body.current_password,
            &body.new_password,
            address,
        )
        .await?;
    Ok(no_store(axum::Json(tokens).into_response()))
}

/// The public keys that verify access tokens (JWKS, RFC 7517), matched by `kid`.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "getJwks",
    tag = "auth",
    responses((status = 200, description = "JSON Web Key Set", body = Jwks))
)]
pub async fn jwks(State(service): State<Arc<IdentityService>>) -> Response {
    let mut response = axum::Json(service.tokens().jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
