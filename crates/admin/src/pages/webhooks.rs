//! Webhook endpoints: the list, a new endpoint (its signing secret shown once), an endpoint's
//! settings, secret rotation, its deliveries with every attempt, and replays of one delivery or
//! of a time range. The API's admin policy decides who may see and change them.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Fields, PageResult, int, list, notice_box, pager, see_other, segment, text};
use crate::Ui;
use crate::api::Failure;
use crate::layout::{self, FormErrors, Kind};
use crate::session::Session;

/// The states a delivery list can be filtered by, and a range replay can pick.
const STATUSES: &[&str] = &["pending", "succeeded", "failed"];

/// The overlaps a rotation offers: seconds and label.
const OVERLAPS: &[(i64, &str)] = &[
    (0, "None: the old secret stops at once"),
    (3600, "One hour"),
    (86400, "One day"),
    (604_800, "Seven days"),
];

/// The form fields of an endpoint, with the API's JSON Pointer of each.
const SHOWN: &[&str] = &["/url", "/description", "/event_types", "/enabled"];

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/admin/webhooks", get(index).post(create))
        .route("/admin/webhooks/{id}", get(show).post(update))
        .route("/admin/webhooks/{id}/rotate", post(rotate))
        .route("/admin/webhooks/{id}/delete", post(delete))
        .route("/admin/webhooks/{id}/replay", post(replay_range))
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery}",
            get(show_delivery),
        )
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery}/replay",
            post(replay_one),
        )
}

/// Query of the endpoint list.
#[derive(Debug, Default, serde::Deserialize)]
struct EndpointListQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// Query of an endpoint's page: the notice, the delivery filter and page, and how many a range
/// replay queued.
#[derive(Debug, Default, serde::Deserialize)]
struct EndpointQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    queued: Option<String>,
}

/// The event types of a form field: separated by commas or white space.
fn event_types(field: &str) -> Vec<&str> {
    field
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect()
}

fn event_types_text(endpoint: &Value) -> String {
    list(endpoint, "event_types")
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What state an endpoint is in, in words.
fn state(endpoint: &Value) -> &'static str {
    if endpoint.get("enabled").and_then(Value::as_bool) == Some(true) {
        "enabled"
    } else if text(endpoint, "disabled_reason") == "failing" {
        "disabled by the store: deliveries kept failing"
    } else {
        "disabled"
    }
}

/// A time of the API for a table, or a dash when there is none.
fn maybe_when(value: &Value, key: &str) -> String {
    match text(value, key) {
        "" => "—".to_owned(),
        at => layout::when(at),
    }
}

/// The JSON body of an endpoint form.
fn endpoint_body(f: &Fields) -> Value {
    json!({
        "url": f.get("url"),
        "description": f.get("description"),
        "event_types": event_types(f.get("event_types")),
        "enabled": f.get("enabled") == "yes",
    })
}

/// The errors of a refused endpoint form: the API points at each bad event type
/// (`/event_types/2`); the form has one field for them all.
fn endpoint_errors(problem: &crate::api::Problem) -> FormErrors {
    FormErrors::from_problem(problem).fold("/event_types")
}

/// The URL, description, event types and enabled fields, filled from `f`.
fn endpoint_fields(f: &Fields, errors: &FormErrors) -> Markup {
    html! {
        (layout::field("URL (https://…)", "url", f.get("url"), Kind::Text, "/url", errors))
        (layout::field("Description", "description", f.get("description"), Kind::Text, "/description", errors))
        (layout::field("Event types, separated by commas (order.placed, payment.*, or * for all)", "event_types", f.get("event_types"), Kind::Text, "/event_types", errors))
        label for="f-enabled" {
            input #f-enabled type="checkbox" name="enabled" value="yes" checked[f.get("enabled") == "yes"];
            " Enabled: deliveries are sent"
        }
    }
}

/// The form fields of a stored endpoint.
fn fields_of(endpoint: &Value) -> Fields {
    let mut pairs = vec![
        ("url".to_owned(), text(endpoint, "url").to_owned()),
        (
            "description".to_owned(),
            text(endpoint, "description").to_owned(),
        ),
        ("event_types".to_owned(), event_types_text(endpoint)),
    ];
    if endpoint.get("enabled").and_then(Value::as_bool) == Some(true) {
        pairs.push(("enabled".to_owned(), "yes".to_owned()));
    }
    Fields(pairs)
}

fn list_page(
    s: &Session,
    page: &Value,
    paged: bool,
    f: &Fields,
    done: Option<&str>,
    errors: &FormErrors,
) -> Markup {
    let endpoints = list(page, "items");
    html! {
        (notice_box(done))
        @if endpoints.is_empty() {
            p { "No webhook endpoints yet." }
        } @else {
            div.table-wrap {
                table.stack {
                    thead { tr { th { "URL" } th { "Event types" } th { "State" } th { "Failing since" } } }
                    tbody {
                        @for e in endpoints {
                            tr {
                                td data-label="URL" { a href={ "/admin/webhooks/" (segment(text(e, "id"))) } { (text(e, "url")) } }
                                td data-label="Event types" { (event_types_text(e)) }
                                td data-label="State" { (state(e)) }
                                td data-label="Failing since" { (maybe_when(e, "failing_since")) }
                            }
                        }
                    }
                }
            }
        }
        (pager("/admin/webhooks", &[], page.get("next_cursor").and_then(Value::as_str), paged))
        h2 { "New endpoint" }
        (errors.summary(SHOWN))
        form.stack.card method="post" action="/admin/webhooks" {
            (layout::csrf(s))
            (endpoint_fields(f, errors))
            button type="submit" { "Create endpoint" }
        }
    }
}

async fn endpoints(s: &Session, cursor: &str) -> Result<Value, Response> {
    s.get(&format!(
        "/v1/admin/webhooks{}",
        super::query(&[("cursor", cursor), ("limit", "50")])
    ))
    .await
}

/// `GET /admin/webhooks`.
async fn index(Extension(s): Extension<Session>, Query(q): Query<EndpointListQuery>) -> PageResult {
    let cursor = q.cursor.as_deref().unwrap_or_default();
    let page = endpoints(&s, cursor).await?;
    let blank = Fields(vec![("enabled".to_owned(), "yes".to_owned())]);
    let body = list_page(
        &s,
        &page,
        !cursor.is_empty(),
        &blank,
        q.done.as_deref(),
        &FormErrors::default(),
    );
    Ok(layout::page(&s, "Webhooks", body).into_response())
}

/// The page that shows a signing secret, the one time it is shown.
fn secret_page(s: &Session, heading: &str, answer: &Value, rotated: bool) -> Response {
    let endpoint = answer.get("endpoint").unwrap_or(&Value::Null);
    let id = text(endpoint, "id");
    let body = html! {
        div.card {
            p { "Endpoint: " (text(endpoint, "url")) }
            p { "Signing secret: " code #webhook-secret { (text(answer, "secret")) } }
            p { strong { "Copy it now: it is not shown again." } " Receivers verify the "
                code { "webhook-signature" } " header of every delivery with it (Standard Webhooks)." }
            @if rotated {
                @match text(endpoint, "previous_secret_expires_at") {
                    "" => p { "The previous secret no longer signs." },
                    until => p { "The previous secret also signs every delivery until " (layout::when(until)) "." },
                }
            }
            p { a href={ "/admin/webhooks/" (segment(id)) } { "Open the endpoint" } }
        }
    };
    layout::page(s, heading, body).into_response()
}

/// `POST /admin/webhooks`: the answer shows the new endpoint's secret.
async fn create(Extension(s): Extension<Session>, Form(f): Form<Fields>) -> PageResult {
    match s
        .call(Method::POST, "/v1/admin/webhooks", Some(&endpoint_body(&f)))
        .await
    {
        Ok(answer) => Ok(secret_page(&s, "Endpoint created", &answer.body, false)),
        Err(Failure::Refused(problem)) => {
            let page = endpoints(&s, "").await?;
            let body = list_page(&s, &page, false, &f, None, &endpoint_errors(&problem));
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                layout::page(&s, "Webhooks", body),
            )
                .into_response())
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

/// What an endpoint's page shows besides the endpoint: the form as submitted (after a refusal),
/// its errors, the notice, the delivery filter.
#[derive(Default)]
struct Shown<'a> {
    form: Option<&'a Fields>,
    errors: FormErrors,
    done: Option<&'a str>,
    queued: Option<u64>,
    status: &'a str,
    cursor: &'a str,
    range: Option<&'a Fields>,
}

/// `YYYY-MM-DDTHH:MM` (a `datetime-local` field, taken as UTC) of `at`.
fn local_minute(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// A `datetime-local` value (`YYYY-MM-DDTHH:MM`, seconds optional), taken as UTC, as RFC 3339.
fn utc_of_local(value: &str) -> Option<String> {
    let (date, clock) = value.trim().split_once('T')?;
    let mut d = date.splitn(3, '-');
    let year = d.next()?.parse().ok()?;
    let month = time::Month::try_from(d.next()?.parse::<u8>().ok()?).ok()?;
    let day = time::Date::from_calendar_date(year, month, d.next()?.parse().ok()?).ok()?;
    let mut c = clock.splitn(3, ':');
    let hour = c.next()?.parse().ok()?;
    let minute = c.next()?.parse().ok()?;
    let second = c.next().map_or(Some(0), |s| s.parse().ok())?;
    let at = day.with_hms(hour, minute, second).ok()?.assume_utc();
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

async fn endpoint_page(s: &Session, id: &str, shown: Shown<'_>) -> PageResult {
    let base = format!("/admin/webhooks/{}", segment(id));
    let api = format!("/v1/admin/webhooks/{}", segment(id));
    let endpoint = s.get(&api).await?;
    let deliveries = s
        .get(&format!(
            "{api}/deliveries{}",
            super::query(&[
                ("status", shown.status),
                ("cursor", shown.cursor),
                ("limit", "50")
            ])
        ))
        .await?;
    let stored = fields_of(&endpoint);
    let f = shown.form.unwrap_or(&stored);
    let errors = &shown.errors;
    let now = OffsetDateTime::now_utc();
    let default_range = Fields(vec![
        (
            "since".to_owned(),
            local_minute(now - time::Duration::days(1)),
        ),
        (
            "until".to_owned(),
            local_minute(now + time::Duration::minutes(1)),
        ),
        ("replay_status".to_owned(), "failed".to_owned()),
    ]);
    let range = shown.range.unwrap_or(&default_range);
    let items = list(&deliveries, "items");
    let body = html! {
        (notice_box(shown.done))
        @if let Some(n) = shown.queued {
            p.flash role="status" { (n) @if n == 1 { " delivery" } @else { " deliveries" } " queued to be sent again." }
        }
        (errors.summary(&[SHOWN, &["/since", "/until", "/status"]].concat()))
        div.card {
            p { "State: " span #endpoint-state { (state(&endpoint)) } }
            @if let Some(since) = endpoint.get("failing_since").and_then(Value::as_str) {
                p { "Failing since " (layout::when(since)) }
            }
            @if let Some(until) = endpoint.get("previous_secret_expires_at").and_then(Value::as_str) {
                p { "The secret before the last rotation signs until " (layout::when(until)) "." }
            }
            p { "Created " (layout::when(text(&endpoint, "created_at"))) }
        }
        h2 { "Settings" }
        form.stack.card method="post" action=(base) {
            (layout::csrf(s))
            input type="hidden" name="version" value=(int(&endpoint, "version"));
            (endpoint_fields(f, errors))
            button type="submit" { "Save" }
        }
        h2 { "Signing secret" }
        form.stack.card method="post" action={ (base) "/rotate" } data-confirm="Draw a new signing secret?" {
            (layout::csrf(s))
            label for="f-overlap" {
                span { "How long the current secret keeps signing beside the new one" }
                select #f-overlap name="overlap_secs" {
                    @for (secs, label) in OVERLAPS { option value=(secs) selected[*secs == 86400] { (label) } }
                }
            }
            button.secondary type="submit" { "Rotate secret" }
        }
        h2 #deliveries { "Deliveries" }
        form.filters method="get" action={ (base) "#deliveries" } {
            label for="f-status" {
                span { "State" }
                select #f-status name="status" {
                    option value="" selected[shown.status.is_empty()] { "All" }
                    @for st in STATUSES { option value=(st) selected[*st == shown.status] { (st) } }
                }
            }
            button type="submit" { "Show" }
        }
        @if items.is_empty() {
            p { "No deliveries." }
        } @else {
            div.table-wrap {
                table.stack #delivery-list {
                    thead { tr { th { "Delivery" } th { "Event" } th { "State" } th { "Attempts" } th { "Last answer" } th { "Last attempt" } } }
                    tbody {
                        @for d in items {
                            tr {
                                td data-label="Delivery" { a href={ (base) "/deliveries/" (segment(text(d, "id"))) } { code { (text(d, "id")) } } }
                                td data-label="Event" { (text(d, "event_type")) }
                                td data-label="State" { (text(d, "status")) }
                                td data-label="Attempts" { (int(d, "attempts")) }
                                td data-label="Last answer" { (last_answer(d)) }
                                td data-label="Last attempt" { (maybe_when(d, "last_attempt_at")) }
                            }
                        }
                    }
                }
            }
        }
        (pager(&base, &[("status", shown.status)], deliveries.get("next_cursor").and_then(Value::as_str), !shown.cursor.is_empty()))
        h2 { "Replay a time range" }
        form.stack.card method="post" action={ (base) "/replay" } {
            (layout::csrf(s))
            p.muted { "Sends again every delivery of this endpoint created in the range (times in UTC)." }
            (layout::field("From (UTC)", "since", range.get("since"), Kind::DateTime, "/since", errors))
            (layout::field("Until, not included (UTC)", "until", range.get("until"), Kind::DateTime, "/until", errors))
            label for="f-replay-status" {
                span { "Deliveries in the state" }
                select #f-replay-status name="replay_status" {
                    @for st in STATUSES { option value=(st) selected[*st == range.get("replay_status")] { (st) } }
                }
            }
            button type="submit" { "Replay range" }
        }
        h2 { "Remove" }
        form method="post" action={ (base) "/delete" } data-confirm="Delete this endpoint and its deliveries?" {
            (layout::csrf(s))
            button.danger type="submit" { "Delete endpoint" }
        }
    };
    let title = format!("Webhook: {}", text(&endpoint, "url"));
    Ok(layout::page(s, &title, body).into_response())
}

/// The last answer of a delivery: its status code and time, or why none came.
fn last_answer(d: &Value) -> String {
    let duration = d
        .get("last_duration_ms")
        .and_then(Value::as_i64)
        .map(|ms| format!(" in {ms} ms"))
        .unwrap_or_default();
    match (
        d.get("last_status_code").and_then(Value::as_i64),
        text(d, "last_error"),
    ) {
        (Some(code), _) => format!("{code}{duration}"),
        (None, "") => "—".to_owned(),
        (None, error) => format!("{error}{duration}"),
    }
}

/// `GET /admin/webhooks/{id}`.
async fn show(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<EndpointQuery>,
) -> PageResult {
    let status = q
        .status
        .as_deref()
        .filter(|v| STATUSES.contains(v))
        .unwrap_or_default();
    let shown = Shown {
        done: q.done.as_deref(),
        queued: q.queued.as_deref().and_then(|n| n.parse().ok()),
        status,
        cursor: q.cursor.as_deref().unwrap_or_default(),
        ..Shown::default()
    };
    endpoint_page(&s, &id, shown).await
}

/// Re-renders an endpoint's page with a refused form.
async fn refused(s: &Session, id: &str, shown: Shown<'_>) -> PageResult {
    let mut page = endpoint_page(s, id, shown).await?;
    *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(page)
}

/// `POST /admin/webhooks/{id}`: the settings, against the version the form was read at.
async fn update(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let version = format!("\"{}\"", f.get("version"));
    match s
        .call_with(
            Method::PATCH,
            &format!("/v1/admin/webhooks/{}", segment(&id)),
            Some(&endpoint_body(&f)),
            &[("if-match", &version)],
        )
        .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/admin/webhooks/{}?done=saved",
            segment(&id)
        ))),
        Err(Failure::Refused(problem)) => {
            let errors = if problem.status == 412 {
                FormErrors::general(
                    "Someone changed this endpoint since you opened it; your changes are below, check them against the new version and save again.",
                )
            } else {
                endpoint_errors(&problem)
            };
            let shown = Shown {
                form: Some(&f),
                errors,
                ..Shown::default()
            };
            refused(&s, &id, shown).await
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

/// `POST /admin/webhooks/{id}/rotate`: the answer shows the new secret.
async fn rotate(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let Ok(overlap) = f.get("overlap_secs").parse::<i64>() else {
        let shown = Shown {
            errors: FormErrors::general("Choose how long the current secret keeps signing."),
            ..Shown::default()
        };
        return refused(&s, &id, shown).await;
    };
    let path = format!("/v1/admin/webhooks/{}/rotate-secret", segment(&id));
    match s
        .call(
            Method::POST,
            &path,
            Some(&json!({ "overlap_secs": overlap })),
        )
        .await
    {
        Ok(answer) => Ok(secret_page(&s, "Secret rotated", &answer.body, true)),
        Err(Failure::Refused(problem)) => {
            let shown = Shown {
                errors: FormErrors::from_problem(&problem),
                ..Shown::default()
            };
            refused(&s, &id, shown).await
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

/// `POST /admin/webhooks/{id}/delete`.
async fn delete(Extension(s): Extension<Session>, Path(id): Path<String>) -> PageResult {
    let path = format!("/v1/admin/webhooks/{}", segment(&id));
    match s.call(Method::DELETE, &path, None).await {
        Ok(_) => Ok(see_other("/admin/webhooks?done=deleted")),
        Err(failure) => Err(s.fail(failure)),
    }
}

/// `POST /admin/webhooks/{id}/replay`: every delivery of a range in one state.
async fn replay_range(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let since = utc_of_local(f.get("since"));
    let until = utc_of_local(f.get("until"));
    let status = f.get("replay_status");
    let (Some(since), Some(until), true) = (&since, &until, STATUSES.contains(&status)) else {
        let mut errors = FormErrors::default();
        if since.is_none() {
            errors.add("/since", "Enter a date and time.");
        }
        if until.is_none() {
            errors.add("/until", "Enter a date and time.");
        }
        if !STATUSES.contains(&status) {
            errors.add("/status", "Choose a state.");
        }
        let shown = Shown {
            errors,
            range: Some(&f),
            ..Shown::default()
        };
        return refused(&s, &id, shown).await;
    };
    let body = json!({ "since": since, "until": until, "status": status });
    let path = format!("/v1/admin/webhooks/{}/replay", segment(&id));
    match s.call(Method::POST, &path, Some(&body)).await {
        Ok(answer) => Ok(see_other(&format!(
            "/admin/webhooks/{}?queued={}#deliveries",
            segment(&id),
            int(&answer.body, "queued")
        ))),
        Err(Failure::Refused(problem)) => {
            let shown = Shown {
                errors: FormErrors::from_problem(&problem),
                range: Some(&f),
                ..Shown::default()
            };
            refused(&s, &id, shown).await
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

/// Query of a delivery's page.
#[derive(Debug, Default, serde::Deserialize)]
struct DeliveryPageQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /admin/webhooks/{id}/deliveries/{delivery}`: the delivery, its attempts and its body.
async fn show_delivery(
    Extension(s): Extension<Session>,
    Path((id, delivery)): Path<(String, String)>,
    Query(q): Query<DeliveryPageQuery>,
) -> PageResult {
    let base = format!(
        "/admin/webhooks/{}/deliveries/{}",
        segment(&id),
        segment(&delivery)
    );
    let detail = s
        .get(&format!(
            "/v1/admin/webhooks/{}/deliveries/{}",
            segment(&id),
            segment(&delivery)
        ))
        .await?;
    let d = detail.get("delivery").unwrap_or(&Value::Null);
    let payload = detail
        .get("payload")
        .map(|p| serde_json::to_string_pretty(p).unwrap_or_default())
        .unwrap_or_default();
    let body = html! {
        (notice_box(q.done.as_deref()))
        div.card {
            p { "Event: " (text(d, "event_type")) " of " code { (text(d, "aggregate_id")) } }
            p { "State: " span #delivery-status { (text(d, "status")) } " after " (int(d, "attempts")) @if int(d, "attempts") == 1 { " attempt" } @else { " attempts" } }
            @if let Some(next) = d.get("next_attempt_at").and_then(Value::as_str) {
                p { "Next attempt: " (layout::when(next)) }
            }
            p { "Created " (layout::when(text(d, "created_at"))) }
            p { a href={ "/admin/webhooks/" (segment(&id)) "#deliveries" } { "Back to the endpoint" } }
        }
        form method="post" action={ (base) "/replay" } {
            (layout::csrf(&s))
            button type="submit" { "Send again" }
        }
        h2 { "Attempts" }
        @if list(&detail, "attempts").is_empty() {
            p { "No attempt yet." }
        } @else {
            div.table-wrap {
                table.stack #attempts {
                    thead { tr { th { "Attempt" } th { "At" } th { "Status code" } th { "Duration" } th { "Error" } th { "Answer (start)" } } }
                    tbody {
                        @for a in list(&detail, "attempts") {
                            tr {
                                td data-label="Attempt" { (int(a, "attempt")) }
                                td data-label="At" { (layout::when(text(a, "at"))) }
                                td data-label="Status code" { @match a.get("status_code").and_then(Value::as_i64) { Some(c) => { (c) }, None => { "—" } } }
                                td data-label="Duration" { (int(a, "duration_ms")) " ms" }
                                td data-label="Error" { (text(a, "error")) }
                                td data-label="Answer (start)" { code.wrap { (text(a, "response")) } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Body as sent" }
        pre.payload { code { (payload) } }
    };
    let title = format!("Delivery {delivery}");
    Ok(layout::page(&s, &title, body).into_response())
}

/// `POST /admin/webhooks/{id}/deliveries/{delivery}/replay`.
async fn replay_one(
    Extension(s): Extension<Session>,
    Path((id, delivery)): Path<(String, String)>,
) -> PageResult {
    let path = format!(
        "/v1/admin/webhooks/{}/deliveries/{}/replay",
        segment(&id),
        segment(&delivery)
    );
    match s.call(Method::POST, &path, None).await {
        Ok(_) => Ok(see_other(&format!(
            "/admin/webhooks/{}/deliveries/{}?done=replayed",
            segment(&id),
            segment(&delivery)
        ))),
        Err(failure) => Err(s.fail(failure)),
    }
}
