//! Customers (by e-mail address, keyset pages) and the customer groups each belongs to, which
//! price lists and promotions may target.

use axum::extract::{Path, Query};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Form, Router};
use maud::html;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Fields, ListQuery, PageResult, list, notice_box, pager, see_other, segment, text};
use crate::Ui;
use crate::api::Failure;
use crate::layout::{self, FormErrors, Kind};
use crate::session::Session;

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/admin/customers", get(index))
        .route("/admin/customers/{id}", get(show).post(set_groups))
}

/// Query of the customer list.
#[derive(Debug, Default, serde::Deserialize)]
struct CustomerQuery {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

fn groups_text(customer: &Value) -> String {
    list(customer, "groups")
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /admin/customers`.
async fn index(Extension(s): Extension<Session>, Query(q): Query<CustomerQuery>) -> PageResult {
    let email = q.email.as_deref().unwrap_or_default().trim();
    let cursor = q.cursor.as_deref().unwrap_or_default();
    let page = s
        .get(&format!(
            "/v1/admin/customers{}",
            super::query(&[("email", email), ("cursor", cursor), ("limit", "50")])
        ))
        .await?;
    let items = list(&page, "items");
    let body = html! {
        form.filters method="get" action="/admin/customers" role="search" {
            label for="email" { span { "E-mail address" } input #email type="search" name="email" value=(email); }
            button type="submit" { "Search" }
        }
        @if items.is_empty() {
            p { "No customers." }
        } @else {
            div.table-wrap {
                table.stack {
                    thead { tr { th { "E-mail address" } th { "Name" } th { "Groups" } th { "Since" } } }
                    tbody {
                        @for c in items {
                            tr {
                                td data-label="E-mail address" { a href={ "/admin/customers/" (segment(text(c, "id"))) } { (text(c, "email")) } }
                                td data-label="Name" { (text(c, "name")) }
                                td data-label="Groups" { (groups_text(c)) }
                                td data-label="Since" { (layout::when(text(c, "created_at"))) }
                            }
                        }
                    }
                }
            }
        }
        (pager("/admin/customers", &[("email", email)], page.get("next_cursor").and_then(Value::as_str), !cursor.is_empty()))
    };
    Ok(layout::page(&s, "Customers", body).into_response())
}

fn customer_page(
    s: &Session,
    customer: &Value,
    groups: &str,
    done: Option<&str>,
    errors: &FormErrors,
) -> maud::Markup {
    let id = text(customer, "id");
    html! {
        (notice_box(done))
        (errors.summary(&["/groups"]))
        div.card {
            p { "E-mail address: " (text(customer, "email")) }
            p { "Since: " (layout::when(text(customer, "created_at"))) }
        }
        h2 { "Groups" }
        form.stack.card method="post" action={ "/admin/customers/" (segment(id)) } {
            (layout::csrf(s))
            (layout::field("Groups, separated by commas (wholesale, vip)", "groups", groups, Kind::Text, "/groups", errors))
            button type="submit" { "Save groups" }
        }
    }
}

/// `GET /admin/customers/{id}`.
async fn show(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let customer = s
        .get(&format!("/v1/admin/customers/{}", segment(&id)))
        .await?;
    let body = customer_page(
        &s,
        &customer,
        &groups_text(&customer),
        q.done.as_deref(),
        &FormErrors::default(),
    );
    Ok(layout::page(&s, text(&customer, "name"), body).into_response())
}

/// `POST /admin/customers/{id}`: replaces the customer's groups.
async fn set_groups(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let groups: Vec<&str> = f
        .get("groups")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    let path = format!("/v1/admin/customers/{}", segment(&id));
    match s
        .call(
            Method::PUT,
            &format!("{path}/groups"),
            Some(&json!({ "groups": groups })),
        )
        .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/admin/customers/{}?done=saved",
            segment(&id)
        ))),
        Err(Failure::Refused(problem)) => {
            let customer = s.get(&path).await?;
            let body = customer_page(
                &s,
                &customer,
                f.get("groups"),
                None,
                &FormErrors::from_problem(&problem),
            );
            Ok((
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                layout::page(&s, text(&customer, "name"), body),
            )
                .into_response())
        }
        Err(failure) => Err(s.fail(failure)),
    }
}
