//! The page frame (skip link, header, navigation, sign-out), form fields with their errors,
//! and the pages of failures. Every value goes through `maud`, which escapes it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::api::{Failure, Problem};
use crate::assets;
use crate::session::{Session, signed_out};

/// The navigation: label and path.
const NAV: &[(&str, &str)] = &[
    ("Dashboard", "/admin"),
    ("Products", "/admin/products"),
    ("Orders", "/admin/orders"),
    ("Customers", "/admin/customers"),
    ("Promotions", "/admin/promotions"),
    ("Coupons", "/admin/coupons"),
    ("Price lists", "/admin/price-lists"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Emporium admin" }
            link rel="stylesheet" href=(assets::css_url());
            script src=(assets::js_url()) defer {}
        }
    }
}

fn is_current(path: &str, href: &str) -> bool {
    if href == "/admin" {
        return path == "/admin";
    }
    path == href || path.strip_prefix(href).is_some_and(|r| r.starts_with('/'))
}

/// A page of a signed-in staff user: header with navigation and sign-out, then `body`.
pub(crate) fn page(s: &Session, title: &str, body: Markup) -> Markup {
    // Webhooks and staff are the admin policy's; other roles would only meet "you may not".
    let admin_links: &[(&str, &str)] = if s.is_admin() {
        &[("Webhooks", "/admin/webhooks"), ("Staff", "/admin/users")]
    } else {
        &[]
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/admin" { "Emporium admin" }
                    button.secondary.nav-toggle #nav-toggle type="button" aria-controls="main-nav" hidden { "Menu" }
                    nav.main #main-nav aria-label="Main" {
                        ul {
                            @for (label, href) in NAV.iter().chain(admin_links).copied() {
                                li {
                                    @if is_current(&s.path, href) {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    span.muted { (s.email) }
                    form method="post" action="/admin/logout" {
                        (csrf(s))
                        button type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without a session: the sign-in form, a refused form.
pub(crate) fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top { a.brand href="/admin" { "Emporium admin" } }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// A heading and a sentence.
pub(crate) fn message_body(heading: &str, text: &str) -> Markup {
    html! {
        div.card {
            h1 { (heading) }
            p { (text) }
            p { a href="/admin" { "Back to the dashboard" } }
        }
    }
}

/// An HTML answer.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// The hidden CSRF field of every form.
pub(crate) fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(s.csrf); }
}

/// The page a failed API call leads to: the sign-in page when the session ended, "you may
/// not" when the API's policy refused, "not found", or the API's own explanation.
pub(crate) fn failure(s: &Session, failure: Failure) -> Response {
    match failure {
        Failure::SignedOut => signed_out(false),
        Failure::Forbidden => respond(
            StatusCode::FORBIDDEN,
            page(
                s,
                "You may not do this",
                html! {
                    div.alert role="alert" {
                        p { "Your role does not allow this. Ask a store owner or admin if you need it." }
                    }
                    p { a href="/admin" { "Back to the dashboard" } }
                },
            ),
        ),
        Failure::NotFound => respond(
            StatusCode::NOT_FOUND,
            page(
                s,
                "Not found",
                html! { p { "There is nothing here; it may have been deleted." } },
            ),
        ),
        Failure::Refused(problem) => respond(
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST),
            page(
                s,
                "This was refused",
                html! {
                    div.alert role="alert" { p { (problem.message()) } }
                    p { "Use your browser's back button to return to the form." }
                },
            ),
        ),
        Failure::Unavailable(reason) => respond(
            StatusCode::BAD_GATEWAY,
            page(
                s,
                "The store did not answer",
                html! { div.alert role="alert" { p { (reason) ". Try again in a moment." } } },
            ),
        ),
    }
}

/// Problems of a form: bad fields by JSON Pointer, and what concerns the form as a whole.
#[derive(Debug, Default)]
pub(crate) struct FormErrors {
    general: Vec<String>,
    fields: Vec<(String, String)>,
}

impl FormErrors {
    /// The errors of a refused request: each `errors[]` entry at its pointer, the rest general.
    pub(crate) fn from_problem(problem: &Problem) -> Self {
        let mut errors = Self::default();
        for e in &problem.errors {
            let text = if e.detail.is_empty() {
                e.code.clone()
            } else {
                e.detail.clone()
            };
            errors.fields.push((e.pointer.clone(), text));
        }
        if problem.errors.is_empty() {
            errors.general.push(problem.message());
        }
        errors
    }

    /// Errors of one message for the form as a whole.
    pub(crate) fn general(message: impl Into<String>) -> Self {
        Self {
            general: vec![message.into()],
            fields: Vec::new(),
        }
    }

    /// Adds an error at `pointer`.
    pub(crate) fn add(&mut self, pointer: &str, message: &str) {
        self.fields.push((pointer.to_owned(), message.to_owned()));
    }

    /// Moves the errors below `pointer` (`/event_types/2`) to `pointer` itself, for a form that
    /// has one field for a whole list.
    pub(crate) fn fold(mut self, pointer: &str) -> Self {
        let below = format!("{pointer}/");
        for (p, _) in &mut self.fields {
            if p.starts_with(&below) {
                pointer.clone_into(p);
            }
        }
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.general.is_empty() && self.fields.is_empty()
    }

    /// The messages at `pointer`.
    pub(crate) fn at(&self, pointer: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(p, _)| p == pointer)
            .map(|(_, m)| m.as_str())
            .collect()
    }

    /// Field errors no field of the form shows, with general ones.
    fn unclaimed(&self, shown: &[&str]) -> Vec<String> {
        let mut all = self.general.clone();
        all.extend(
            self.fields
                .iter()
                .filter(|(p, _)| !shown.contains(&p.as_str()))
                .map(|(p, m)| format!("{p}: {m}")),
        );
        all
    }

    /// The summary above a form: general errors, and field errors at pointers the form does not
    /// show (`shown`).
    pub(crate) fn summary(&self, shown: &[&str]) -> Markup {
        let messages = self.unclaimed(shown);
        html! {
            @if !self.is_empty() {
                div.alert role="alert" {
                    p { strong { "The form was not saved." } }
                    @if !messages.is_empty() {
                        ul { @for m in &messages { li { (m) } } }
                    } @else {
                        p { "Correct the fields marked below." }
                    }
                }
            }
        }
    }
}

/// What kind of input a field is.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Text,
    Email,
    Password,
    Number,
    TextArea,
    /// A date and time without a zone (`datetime-local`).
    DateTime,
}

/// One labelled field with the errors at its pointer. `name` is the form field, `pointer` the
/// API's JSON Pointer of the value.
pub(crate) fn field(
    label: &str,
    name: &str,
    value: &str,
    kind: Kind,
    pointer: &str,
    errors: &FormErrors,
) -> Markup {
    let id = format!("f-{}", name.replace(['[', ']', '.'], "-"));
    let messages = errors.at(pointer);
    let invalid = !messages.is_empty();
    let described = format!("{id}-error");
    let input_type = match kind {
        Kind::Text | Kind::TextArea => "text",
        Kind::Email => "email",
        Kind::Password => "password",
        Kind::Number => "number",
        Kind::DateTime => "datetime-local",
    };
    html! {
        label for=(id) {
            span { (label) }
            @if matches!(kind, Kind::TextArea) {
                textarea id=(id) name=(name) aria-invalid=[invalid.then_some("true")] aria-describedby=[invalid.then_some(&described)] { (value) }
            } @else {
                input id=(id) type=(input_type) name=(name) value=(value) step=[matches!(kind, Kind::Number).then_some("any")] aria-invalid=[invalid.then_some("true")] aria-describedby=[invalid.then_some(&described)];
            }
            @if invalid {
                p.field-error id=(described) { @for m in &messages { (m) " " } }
            }
        }
    }
}

/// Formats an RFC 3339 time for a table: date and minutes, UTC.
pub(crate) fn when(rfc3339: &str) -> String {
    rfc3339
        .get(..16)
        .map(|s| format!("{} UTC", s.replace('T', " ")))
        .unwrap_or_else(|| rfc3339.to_owned())
}
