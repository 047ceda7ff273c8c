//! The staff session: the access token, the refresh token and a CSRF token, kept in one
//! `HttpOnly`, `SameSite=Strict` cookie under `/admin`, and the refresh of an access token that
//! is about to expire.
//!
//! Refresh tokens rotate, and the API revokes the whole session when a refresh token is used
//! twice; so two requests of one session that both find the access token stale must not both
//! refresh. [`Refresher`] runs one refresh per refresh token in this process and keeps its
//! result for [`KEEP_RESULT`], so the racing request gets the same new pair. Two processes
//! refreshing the same session at the same instant are not coordinated: the loser's session
//! ends, and its user signs in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::Ui;
use crate::api::{Api, Failure};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "emporium_admin";
/// The cookie that carries the sign-in form's CSRF token before there is a session.
pub(crate) const LOGIN_COOKIE_NAME: &str = "emporium_admin_login";
/// An access token this close to its expiry (or closer) is refreshed before use.
const REFRESH_MARGIN_SECS: i64 = 60;
/// How long a refresh's outcome is kept for requests that raced it.
const KEEP_RESULT: Duration = Duration::from_secs(30);

/// What the session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The access token.
    #[serde(rename = "a")]
    pub(crate) access: String,
    /// The refresh token.
    #[serde(rename = "r")]
    pub(crate) refresh: String,
    /// The CSRF token every form of this session carries.
    #[serde(rename = "c")]
    pub(crate) csrf: String,
    /// When the access token expires (Unix seconds).
    #[serde(rename = "e")]
    pub(crate) expires_at: i64,
    /// The staff user's e-mail address, shown in the header.
    #[serde(rename = "m")]
    pub(crate) email: String,
}

/// Tokens the token endpoint issued.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Tokens {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    pub(crate) expires_in: i64,
}

impl Stored {
    /// A session from a token answer.
    pub(crate) fn new(tokens: Tokens, csrf: String, email: String) -> Option<Self> {
        Some(Self {
            expires_at: now() + tokens.expires_in,
            access: tokens.access_token,
            refresh: tokens.refresh_token?,
            csrf,
            email,
        })
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(value: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The staff role the access token names (`owner`, `admin`, `staff`), for what the
    /// navigation offers; the API decides what is allowed.
    fn role(&self) -> String {
        let payload = self.access.split('.').nth(1).unwrap_or_default();
        URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("role").and_then(|r| r.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }
}

/// The signed-in staff user of one request, as handlers see it.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) api: Api,
    pub(crate) access: String,
    pub(crate) csrf: String,
    pub(crate) email: String,
    pub(crate) role: String,
    /// The path of the request, for the navigation's current entry.
    pub(crate) path: String,
}

impl Session {
    /// Whether the role is at least `admin` (what the navigation offers; the API decides).
    pub(crate) fn is_admin(&self) -> bool {
        matches!(self.role.as_str(), "admin" | "owner")
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A new random token (256 bits, URL-safe).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The operating system's generator does not fail on the platforms the store runs on; a
    // failure would leave a predictable token, so it is refused loudly instead.
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "no randomness for a CSRF token");
        panic!("the operating system's random generator failed");
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// Whether the browser reached the store over TLS: the request's scheme, or what the proxy in
/// front said (`X-Forwarded-Proto`). Only ever makes the cookie stricter.
pub(crate) fn is_secure(headers: &HeaderMap, uri_scheme: Option<&str>) -> bool {
    uri_scheme == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for cookie `name` under `/admin`; `None` clears it.
pub(crate) fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!("{name}={v}; Path=/admin; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` of a session.
pub(crate) fn session_cookie(stored: &Stored, secure: bool) -> HeaderValue {
    set_cookie(COOKIE_NAME, Some(&stored.encode()), secure)
}

/// To the sign-in page, forgetting the session.
pub(crate) fn signed_out(secure: bool) -> Response {
    let mut response = Redirect::to("/admin/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE_NAME, None, secure));
    response
}

/// The layer of every signed-in page: no session cookie sends the browser to the sign-in
/// page; a `POST` must pass the CSRF and origin checks; an access token about to expire is
/// refreshed (and the cookie renewed on the answer); the handler then finds a [`Session`].
pub(crate) async fn require_session(State(ui): State<Ui>, req: Request, next: Next) -> Response {
    let secure = is_secure(req.headers(), req.uri().scheme_str());
    let Some(stored) = cookie(req.headers(), COOKIE_NAME).and_then(|v| Stored::decode(&v)) else {
        return Redirect::to("/admin/login").into_response();
    };
    let mut req = if req.method() == Method::POST {
        match crate::csrf::check(req, &stored.csrf).await {
            Ok(req) => req,
            Err(refused) => return refused,
        }
    } else {
        req
    };
    let (stored, renewed) = if stored.expires_at - now() <= REFRESH_MARGIN_SECS {
        match ui.refresher.refresh(&stored.refresh).await {
            Some(tokens) => match Stored::new(tokens, stored.csrf.clone(), stored.email.clone()) {
                Some(fresh) => (fresh, true),
                None => return signed_out(secure),
            },
            None => return signed_out(secure),
        }
    } else {
        (stored, false)
    };
    let path = req.uri().path().to_owned();
    req.extensions_mut().insert(Session {
        api: ui.api.clone(),
        access: stored.access.clone(),
        csrf: stored.csrf.clone(),
        email: stored.email.clone(),
        role: stored.role(),
        path,
    });
    let mut response = next.run(req).await;
    let handler_set_cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(COOKIE_NAME.as_bytes()));
    if renewed && !handler_set_cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, session_cookie(&stored, secure));
    }
    response
}

/// The outcome of one refresh, shared by every request that asked for it.
type Outcome = Option<Tokens>;

/// A refresh under way or done: when it started, and where its outcome appears.
type Flight = (Instant, watch::Receiver<Option<Outcome>>);

/// One refresh per refresh token at a time in this process, its outcome kept a while.
pub(crate) struct Refresher {
    api: Api,
    // A std mutex, never held across an await.
    flights: Mutex<HashMap<[u8; 32], Flight>>,
}

impl Refresher {
    pub(crate) fn new(api: Api) -> Self {
        Self {
            api,
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// New tokens for `refresh_token`, or `None` when the API refused it (the session is
    /// over) or did not answer. The call runs in a task of its own, so a request that goes
    /// away does not leave a rotated token unrecorded for the others.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Outcome {
        let key: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        let mut receiver = {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            flights.retain(|_, (started, _)| started.elapsed() < KEEP_RESULT);
            match flights.get(&key) {
                Some((_, receiver)) => receiver.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    let api = self.api.clone();
                    let token = refresh_token.to_owned();
                    tokio::spawn(async move {
                        let outcome = call_refresh(&api, &token).await;
                        let _ = sender.send(Some(outcome));
                    });
                    flights.insert(key, (Instant::now(), receiver.clone()));
                    receiver
                }
            }
        };
        match receiver.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().flatten(),
            Err(_) => None,
        }
    }
}

async fn call_refresh(api: &Api, refresh_token: &str) -> Outcome {
    let request = api.anonymous(Method::POST, "/v1/auth/token").form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]);
    match api.send(request).await {
        Ok(answer) => serde_json::from_value(answer.body).ok(),
        Err(Failure::Unavailable(reason)) => {
            tracing::warn!(%reason, "cannot refresh an admin session");
            None
        }
        Err(_) => None,
    }
}
