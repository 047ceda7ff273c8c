//! The pages, one module per area of the back office, and what they share: calls to the API
//! through the session, form fields, and short answers.

pub(crate) mod customers;
pub(crate) mod dashboard;
pub(crate) mod login;
pub(crate) mod orders;
pub(crate) mod pricing;
pub(crate) mod products;
pub(crate) mod users;
pub(crate) mod webhooks;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use reqwest::Method;
use serde_json::Value;

use crate::api::{Answer, Failure};
use crate::layout;
use crate::session::Session;

/// A handler's answer: the page, or the page of what went wrong.
pub(crate) type PageResult = Result<Response, Response>;

impl Session {
    /// `GET` of an API path; a failure becomes its page.
    pub(crate) async fn get(&self, path: &str) -> Result<Value, Response> {
        self.call(Method::GET, path, None)
            .await
            .map(|a| a.body)
            .map_err(|f| layout::failure(self, f))
    }

    /// A call with an optional JSON body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, Failure> {
        let mut request = self.api.request(method, path, &self.access);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.api.send(request).await
    }

    /// A call with a JSON body and extra headers (`If-Match`).
    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, Failure> {
        let mut request = self.api.request(method, path, &self.access);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.api.send(request).await
    }

    /// The page of a failure.
    pub(crate) fn fail(&self, failure: Failure) -> Response {
        layout::failure(self, failure)
    }
}

/// The fields of a submitted URL-encoded form, in order (a name may repeat).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Fields(pub(crate) Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; empty when absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    }
}

/// The string at `key` of a JSON object; empty when absent or not a string.
pub(crate) fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The integer at `key`; 0 when absent.
pub(crate) fn int(value: &Value, key: &str) -> i64 {
    value.get(key).and_then(Value::as_i64).unwrap_or_default()
}

/// The array at `key`; empty when absent.
pub(crate) fn list<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A query string from pairs, leaving out empty values (`?a=1&b=x`, or empty).
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    if kept.is_empty() {
        return String::new();
    }
    format!("?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
}

/// Percent-encodes one path segment (an id from a form or the API).
pub(crate) fn segment(id: &str) -> String {
    let encoded = serde_urlencoded::to_string([("", id)]).unwrap_or_default();
    encoded.trim_start_matches('=').replace('+', "%20")
}

/// After a successful form: back to `to` with a notice key the page turns into a fixed message.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The notice a `done` key stands for (never the text of the query itself).
pub(crate) fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "Created.",
        "saved" => "Saved.",
        "deleted" => "Deleted.",
        "uploaded" => "Image uploaded.",
        "stock" => "Stock saved.",
        "variant" => "Variant saved.",
        "done" => "Done.",
        "replayed" => "Queued to be sent again.",
        _ => return None,
    })
}

/// The notice box, when there is one.
pub(crate) fn notice_box(done: Option<&str>) -> maud::Markup {
    maud::html! {
        @if let Some(text) = notice(done) {
            p.flash role="status" { (text) }
        }
    }
}

/// Any other path under `/admin`.
pub(crate) async fn not_found() -> Response {
    layout::respond(
        StatusCode::NOT_FOUND,
        layout::bare_page(
            "Not found",
            layout::message_body("Not found", "There is no page at this address."),
        ),
    )
}

/// Query of pages that show a notice after a form.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub(crate) done: Option<String>,
}

/// The paging links of a keyset-paged list: the next page (`base` with the filters and the
/// cursor), and the first page when this is not it.
pub(crate) fn pager(
    base: &str,
    filters: &[(&str, &str)],
    next: Option<&str>,
    paged: bool,
) -> maud::Markup {
    let next_href = next.map(|cursor| {
        let mut pairs = filters.to_vec();
        pairs.push(("cursor", cursor));
        format!("{base}{}", query(&pairs))
    });
    let first_href = format!("{base}{}", query(filters));
    maud::html! {
        nav.pager aria-label="Pages" {
            @if paged {
                a href=(first_href) { "First page" }
            }
            @if let Some(href) = next_href {
                a href=(href) rel="next" { "Next page" }
            }
        }
    }
}
