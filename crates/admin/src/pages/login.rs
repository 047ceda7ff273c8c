//! Sign-in and sign-out. The sign-in form is protected against forgery by a token in a cookie
//! of its own (there is no session yet); a successful sign-in trades the e-mail address and
//! password for the API's tokens at its token endpoint and keeps them in the session cookie.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use reqwest::Method;

use super::Fields;
use crate::Ui;
use crate::api::Failure;
use crate::csrf;
use crate::layout::{self, FormErrors, Kind};
use crate::session::{
    self, COOKIE_NAME, LOGIN_COOKIE_NAME, Session, Stored, Tokens, cookie, is_secure, set_cookie,
};

fn login_form(token: &str, email: &str, errors: &FormErrors) -> Markup {
    layout::bare_page(
        "Sign in",
        html! {
            div.card.login {
                h1 { "Sign in" }
                (errors.summary(&["/username", "/password"]))
                form.stack method="post" action="/admin/login" {
                    input type="hidden" name="_csrf" value=(token);
                    (layout::field("E-mail address", "email", email, Kind::Email, "/username", errors))
                    (layout::field("Password", "password", "", Kind::Password, "/password", errors))
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// `GET /admin/login`: the form, with a fresh or the current pre-session CSRF token.
pub(crate) async fn form(uri: Uri, headers: HeaderMap) -> Response {
    let token = cookie(&headers, LOGIN_COOKIE_NAME)
        .filter(|t| t.len() >= 32)
        .unwrap_or_else(session::random_token);
    let secure = is_secure(&headers, uri.scheme_str());
    let mut response = login_form(&token, "", &FormErrors::default()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE_NAME, Some(&token), secure),
    );
    response
}

/// `GET /admin/`: the dashboard is `/admin`.
pub(crate) async fn to_dashboard() -> Redirect {
    Redirect::permanent("/admin")
}

/// `POST /admin/login`: checks the form's token and origin, then asks the token endpoint.
pub(crate) async fn sign_in(
    State(ui): State<Ui>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE_NAME).unwrap_or_default();
    if !csrf::same_origin(&headers, uri.scheme_str())
        || !csrf::same_token(fields.get("_csrf"), &expected)
    {
        return csrf::refused();
    }
    let secure = is_secure(&headers, uri.scheme_str());
    let email = fields.get("email").to_owned();
    let mut errors = FormErrors::default();
    if email.is_empty() {
        errors.add("/username", "Enter your e-mail address.");
    }
    if fields.get("password").is_empty() {
        errors.add("/password", "Enter your password.");
    }
    if !errors.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            login_form(&expected, &email, &errors),
        )
            .into_response();
    }
    let request = ui.api.anonymous(Method::POST, "/v1/auth/token").form(&[
        ("grant_type", "password"),
        ("username", email.as_str()),
        (
            "password",
            fields
                .0
                .iter()
                .find(|(k, _)| k == "password")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default(),
        ),
        ("scope", "admin"),
    ]);
    let (status, message) = match ui.api.send(request).await {
        Ok(answer) => {
            let stored = serde_json::from_value::<Tokens>(answer.body)
                .ok()
                .and_then(|t| Stored::new(t, session::random_token(), email.clone()));
            if let Some(stored) = stored {
                let mut response = Redirect::to("/admin").into_response();
                let headers = response.headers_mut();
                headers.append(header::SET_COOKIE, session::session_cookie(&stored, secure));
                headers.append(
                    header::SET_COOKIE,
                    set_cookie(LOGIN_COOKIE_NAME, None, secure),
                );
                return response;
            }
            (
                StatusCode::BAD_GATEWAY,
                "The store answered without a session. Try again.",
            )
        }
        Err(Failure::Refused(p)) if p.status == 429 => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts. Wait a minute and try again.",
        ),
        Err(Failure::Unavailable(_)) => (
            StatusCode::BAD_GATEWAY,
            "The store does not answer. Try again in a moment.",
        ),
        Err(_) => (
            StatusCode::UNAUTHORIZED,
            "Wrong e-mail address or password, or this account may not sign in here.",
        ),
    };
    (
        status,
        login_form(&expected, &email, &FormErrors::general(message)),
    )
        .into_response()
}

/// `POST /admin/logout`: ends the session at the API (its refresh tokens are revoked) and
/// forgets the cookie.
pub(crate) async fn sign_out(
    uri: Uri,
    headers: HeaderMap,
    Extension(s): Extension<Session>,
) -> Response {
    if let Err(failure) = s.call(Method::POST, "/v1/auth/logout", None).await
        && !matches!(failure, Failure::SignedOut)
    {
        tracing::warn!(
            ?failure,
            "signing out at the API failed; the cookie is cleared anyway"
        );
    }
    let mut response = session::signed_out(is_secure(&headers, uri.scheme_str()));
    debug_assert!(
        response
            .headers()
            .get(header::SET_COOKIE)
            .is_some_and(|v| v.as_bytes().starts_with(COOKIE_NAME.as_bytes()))
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}
