//! Staff users and their roles: the list, a new user, a role changed, removal. Only what the API's policy
//! allows the signed-in role works (reading needs an admin, changes an owner).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Fields, ListQuery, PageResult, list, notice_box, see_other, segment, text};
use crate::Ui;
use crate::api::Failure;
use crate::layout::{self, FormErrors, Kind};
use crate::session::Session;

const ROLES: &[&str] = &["staff", "admin", "owner"];

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/admin/users", get(index).post(create))
        .route("/admin/users/{id}/delete", post(delete))
        .route("/admin/users/{id}/role", post(set_role))
}

fn users_page(
    s: &Session,
    users: &[Value],
    f: &Fields,
    done: Option<&str>,
    errors: &FormErrors,
) -> Markup {
    let role = if f.get("role").is_empty() {
        "staff"
    } else {
        f.get("role")
    };
    html! {
        (notice_box(done))
        div.table-wrap {
            table.stack {
                thead { tr { th { "E-mail address" } th { "Name" } th { "Role" } th { "State" } th { "Remove" } } }
                tbody {
                    @for u in users {
                        tr {
                            td data-label="E-mail address" { (text(u, "email")) }
                            td data-label="Name" { (text(u, "name")) }
                            td data-label="Role" {
                                @let id = text(u, "id");
                                form.inline method="post" action={ "/admin/users/" (segment(id)) "/role" } {
                                    (layout::csrf(s))
                                    label for={ "role-" (id) } {
                                        span { "Role of " (text(u, "email")) }
                                        select id={ "role-" (id) } name="role" {
                                            @for r in ROLES { option value=(r) selected[*r == text(u, "role")] { (r) } }
                                        }
                                    }
                                    button.secondary type="submit" { "Change role" }
                                }
                            }
                            td data-label="State" { @if u.get("disabled_at").is_some_and(|d| !d.is_null()) { "disabled" } @else { "active" } }
                            td data-label="Remove" {
                                form method="post" action={ "/admin/users/" (segment(text(u, "id"))) "/delete" } data-confirm="Remove this staff user?" {
                                    (layout::csrf(s))
                                    button.danger type="submit" { "Remove " span.muted { (text(u, "email")) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New staff user" }
        (errors.summary(&["/email", "/name", "/password", "/role"]))
        form.stack.card method="post" action="/admin/users" {
            (layout::csrf(s))
            (layout::field("E-mail address", "email", f.get("email"), Kind::Email, "/email", errors))
            (layout::field("Name", "name", f.get("name"), Kind::Text, "/name", errors))
            (layout::field("Password (at least 10 characters)", "password", "", Kind::Password, "/password", errors))
            label for="f-role" {
                span { "Role" }
                select #f-role name="role" {
                    @for r in ROLES { option value=(r) selected[*r == role] { (r) } }
                }
            }
            button type="submit" { "Create staff user" }
        }
    }
}

async fn all_users(s: &Session) -> Result<Vec<Value>, axum::response::Response> {
    let page = s.get("/v1/admin/users?limit=200").await?;
    Ok(list(&page, "items").to_vec())
}

/// `GET /admin/users`.
async fn index(Extension(s): Extension<Session>, Query(q): Query<ListQuery>) -> PageResult {
    let users = all_users(&s).await?;
    let body = users_page(
        &s,
        &users,
        &Fields::default(),
        q.done.as_deref(),
        &FormErrors::default(),
    );
    Ok(layout::page(&s, "Staff", body).into_response())
}

/// `POST /admin/users`.
async fn create(Extension(s): Extension<Session>, Form(f): Form<Fields>) -> PageResult {
    let password =
        f.0.iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
    let body = json!({ "email": f.get("email"), "name": f.get("name"), "password": password, "role": f.get("role") });
    match s.call(Method::POST, "/v1/admin/users", Some(&body)).await {
        Ok(_) => Ok(see_other("/admin/users?done=created")),
        Err(Failure::Refused(problem)) => {
            let users = all_users(&s).await?;
            let page = users_page(&s, &users, &f, None, &FormErrors::from_problem(&problem));
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                layout::page(&s, "Staff", page),
            )
                .into_response())
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

/// `POST /admin/users/{id}/role`: the API ends the user's sessions on a demotion.
async fn set_role(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let body = json!({ "role": f.get("role") });
    match s
        .call(
            Method::PATCH,
            &format!("/v1/admin/users/{}", segment(&id)),
            Some(&body),
        )
        .await
    {
        Ok(_) => Ok(see_other("/admin/users?done=saved")),
        Err(Failure::Refused(problem)) => {
            let users = all_users(&s).await?;
            let page = users_page(
                &s,
                &users,
                &Fields::default(),
                None,
                &FormErrors::from_problem(&problem),
            );
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                layout::page(&s, "Staff", page),
            )
                .into_response())
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

/// `POST /admin/users/{id}/delete`.
async fn delete(Extension(s): Extension<Session>, Path(id): Path<String>) -> PageResult {
    match s
        .call(
            Method::DELETE,
            &format!("/v1/admin/users/{}", segment(&id)),
            None,
        )
        .await
    {
        Ok(_) => Ok(see_other("/admin/users?done=deleted")),
        Err(failure) => Err(s.fail(failure)),
    }
}
