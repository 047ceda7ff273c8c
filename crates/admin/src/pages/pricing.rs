//! Promotions, coupons and price lists: each a list, a create form and removal. The API's
//! policy decides who may change them (admins and owners).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Fields, ListQuery, PageResult, int, list, notice_box, see_other, segment, text};
use crate::Ui;
use crate::api::Failure;
use crate::layout::{self, FormErrors, Kind};
use crate::money;
use crate::session::Session;

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/admin/promotions", get(promotions).post(create_promotion))
        .route("/admin/coupons", get(coupons).post(create_coupon))
        .route(
            "/admin/price-lists",
            get(price_lists).post(create_price_list),
        )
        .route("/admin/promotions/{id}/delete", post(delete_promotion))
        .route("/admin/coupons/{id}/delete", post(delete_coupon))
        .route("/admin/price-lists/{id}/delete", post(delete_price_list))
}

/// One kind of pricing rule: its UI path, API path and title.
struct Rules {
    ui: &'static str,
    api: &'static str,
    title: &'static str,
}

const PROMOTIONS: Rules = Rules {
    ui: "/admin/promotions",
    api: "/v1/admin/promotions",
    title: "Promotions",
};
const COUPONS: Rules = Rules {
    ui: "/admin/coupons",
    api: "/v1/admin/coupons",
    title: "Coupons",
};
const PRICE_LISTS: Rules = Rules {
    ui: "/admin/price-lists",
    api: "/v1/admin/price-lists",
    title: "Price lists",
};

fn delete_button(s: &Session, rules: &Rules, id: &str, what: &str) -> Markup {
    html! {
        form method="post" action={ (rules.ui) "/" (segment(id)) "/delete" } data-confirm="Delete this for good?" {
            (layout::csrf(s))
            button.danger type="submit" { "Delete " span.muted { (what) } }
        }
    }
}

async fn items(s: &Session, rules: &Rules) -> Result<Vec<Value>, Response> {
    let page = s.get(&format!("{}?limit=100", rules.api)).await?;
    Ok(list(&page, "items").to_vec())
}

/// A rules page: the table, then the create form, with the notice or the form's errors.
fn rules_page(
    s: &Session,
    rules: &Rules,
    table: Markup,
    form: Markup,
    done: Option<&str>,
) -> Markup {
    layout::page(
        s,
        rules.title,
        html! {
            (notice_box(done))
            (table)
            h2 { "New" }
            (form)
        },
    )
}

/// After a create: back to the list, or the page again with the refusal.
async fn created(
    s: &Session,
    rules: &Rules,
    outcome: Result<crate::api::Answer, Failure>,
    render: impl AsyncFnOnce(&FormErrors) -> PageResult,
) -> PageResult {
    match outcome {
        Ok(_) => Ok(see_other(&format!("{}?done=created", rules.ui))),
        Err(Failure::Refused(problem)) => {
            let mut page = render(&FormErrors::from_problem(&problem)).await?;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

// ---- Promotions ---------------------------------------------------------------------------

fn benefit_text(benefit: &Value) -> String {
    match text(benefit, "type") {
        "order_percent" => format!(
            "{} % off the order",
            int(benefit, "basis_points") as f64 / 100.0
        ),
        "order_fixed" => {
            let amount = benefit.get("amount").cloned().unwrap_or(Value::Null);
            format!(
                "{} off the order",
                money::show(int(&amount, "amount"), text(&amount, "currency"))
            )
        }
        "free_shipping" => "free shipping".to_owned(),
        other => other.replace('_', " "),
    }
}

async fn promotions_page(
    s: &Session,
    f: &Fields,
    done: Option<&str>,
    errors: &FormErrors,
) -> PageResult {
    let promotions = items(s, &PROMOTIONS).await?;
    let kind = if f.get("kind").is_empty() {
        "order_percent"
    } else {
        f.get("kind")
    };
    let table = html! {
        @if promotions.is_empty() { p { "No promotions." } } @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Name" } th { "Benefit" } th { "Needs a coupon" } th { "Delete" } } }
                tbody { @for p in &promotions { tr {
                    td data-label="Name" { (text(p, "name")) }
                    td data-label="Benefit" { (benefit_text(p.get("benefit").unwrap_or(&Value::Null))) }
                    td data-label="Needs a coupon" { @if p.get("needs_coupon").and_then(Value::as_bool).unwrap_or(false) { "yes" } @else { "no" } }
                    td data-label="Delete" { (delete_button(s, &PROMOTIONS, text(p, "id"), text(p, "name"))) }
                } } }
            } }
        }
    };
    let form = html! {
        (errors.summary(&["/name", "/benefit/basis_points", "/benefit/amount/amount"]))
        form.stack.card method="post" action=(PROMOTIONS.ui) {
            (layout::csrf(s))
            (layout::field("Name", "name", f.get("name"), Kind::Text, "/name", errors))
            label for="f-kind" { span { "Benefit" }
                select #f-kind name="kind" {
                    @for (value, label) in [("order_percent", "Percent off the order"), ("order_fixed", "Amount off the order"), ("free_shipping", "Free shipping")] {
                        option value=(value) selected[value == kind] { (label) }
                    }
                }
            }
            (layout::field("Percent (for a percent off)", "percent", f.get("percent"), Kind::Text, "/benefit/basis_points", errors))
            (layout::field("Amount (for an amount off)", "amount", f.get("amount"), Kind::Text, "/benefit/amount/amount", errors))
            (layout::field("Currency (for an amount off)", "currency", if f.get("currency").is_empty() { "EUR" } else { f.get("currency") }, Kind::Text, "/benefit/amount/currency", errors))
            label for="f-needs-coupon" {
                input #f-needs-coupon type="checkbox" name="needs_coupon" value="yes" checked[f.get("needs_coupon") == "yes"];
                " Only with a coupon"
            }
            button type="submit" { "Create promotion" }
        }
    };
    Ok(rules_page(s, &PROMOTIONS, table, form, done).into_response())
}

async fn promotions(Extension(s): Extension<Session>, Query(q): Query<ListQuery>) -> PageResult {
    promotions_page(
        &s,
        &Fields::default(),
        q.done.as_deref(),
        &FormErrors::default(),
    )
    .await
}

async fn create_promotion(Extension(s): Extension<Session>, Form(f): Form<Fields>) -> PageResult {
    let mut errors = FormErrors::default();
    let currency = f.get("currency").to_ascii_uppercase();
    let benefit = match f.get("kind") {
        "order_fixed" => match money::parse(f.get("amount"), &currency) {
            Some(amount) => {
                json!({ "type": "order_fixed", "amount": { "amount": amount, "currency": currency } })
            }
            None => {
                errors.add("/benefit/amount/amount", "Enter an amount such as 5.00.");
                Value::Null
            }
        },
        "free_shipping" => json!({ "type": "free_shipping" }),
        _ => match money::parse(f.get("percent"), "XXX") {
            // A percent with two decimals is basis points.
            Some(basis_points) => json!({ "type": "order_percent", "basis_points": basis_points }),
            None => {
                errors.add(
                    "/benefit/basis_points",
                    "Enter a percent such as 10 or 12.5.",
                );
                Value::Null
            }
        },
    };
    if !errors.is_empty() {
        let mut page = promotions_page(&s, &f, None, &errors).await?;
        *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(page);
    }
    let body = json!({ "name": f.get("name"), "benefit": benefit, "needs_coupon": f.get("needs_coupon") == "yes" });
    let outcome = s.call(Method::POST, PROMOTIONS.api, Some(&body)).await;
    created(&s, &PROMOTIONS, outcome, async |errors| {
        promotions_page(&s, &f, None, errors).await
    })
    .await
}

// ---- Coupons ------------------------------------------------------------------------------

async fn coupons_page(
    s: &Session,
    f: &Fields,
    done: Option<&str>,
    errors: &FormErrors,
) -> PageResult {
    let coupons = items(s, &COUPONS).await?;
    let promotions = items(s, &PROMOTIONS).await?;
    let name_of = |id: &str| {
        promotions
            .iter()
            .find(|p| text(p, "id") == id)
            .map(|p| text(p, "name").to_owned())
            .unwrap_or_else(|| id.to_owned())
    };
    let table = html! {
        @if coupons.is_empty() { p { "No coupons." } } @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Code" } th { "Promotion" } th.num { "Usage limit" } th { "Delete" } } }
                tbody { @for c in &coupons { tr {
                    td data-label="Code" { code { (text(c, "code")) } }
                    td data-label="Promotion" { (name_of(text(c, "promotion_id"))) }
                    td.num data-label="Usage limit" { @match c.get("usage_limit").and_then(Value::as_i64) { Some(n) => (n), None => "none" } }
                    td data-label="Delete" { (delete_button(s, &COUPONS, text(c, "id"), text(c, "code"))) }
                } } }
            } }
        }
    };
    let form = html! {
        (errors.summary(&["/code", "/promotion_id", "/usage_limit"]))
        @if promotions.is_empty() {
            p { "Create a promotion first: a coupon unlocks one." }
        } @else {
            form.stack.card method="post" action=(COUPONS.ui) {
                (layout::csrf(s))
                (layout::field("Code", "code", f.get("code"), Kind::Text, "/code", errors))
                label for="f-promotion" { span { "Promotion" }
                    select #f-promotion name="promotion_id" {
                        @for p in &promotions { option value=(text(p, "id")) selected[text(p, "id") == f.get("promotion_id")] { (text(p, "name")) } }
                    }
                }
                (layout::field("Usage limit (empty: none)", "usage_limit", f.get("usage_limit"), Kind::Number, "/usage_limit", errors))
                button type="submit" { "Create coupon" }
            }
        }
    };
    Ok(rules_page(s, &COUPONS, table, form, done).into_response())
}

async fn coupons(Extension(s): Extension<Session>, Query(q): Query<ListQuery>) -> PageResult {
    coupons_page(
        &s,
        &Fields::default(),
        q.done.as_deref(),
        &FormErrors::default(),
    )
    .await
}

async fn create_coupon(Extension(s): Extension<Session>, Form(f): Form<Fields>) -> PageResult {
    let mut body = json!({ "code": f.get("code"), "promotion_id": f.get("promotion_id") });
    if !f.get("usage_limit").is_empty() {
        match f.get("usage_limit").parse::<i64>() {
            Ok(n) => body["usage_limit"] = json!(n),
            Err(_) => {
                let mut errors = FormErrors::default();
                errors.add("/usage_limit", "Enter a whole number.");
                let mut page = coupons_page(&s, &f, None, &errors).await?;
                *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                return Ok(page);
            }
        }
    }
    let outcome = s.call(Method::POST, COUPONS.api, Some(&body)).await;
    created(&s, &COUPONS, outcome, async |errors| {
        coupons_page(&s, &f, None, errors).await
    })
    .await
}

// ---- Price lists --------------------------------------------------------------------------

async fn price_lists_page(
    s: &Session,
    f: &Fields,
    done: Option<&str>,
    errors: &FormErrors,
) -> PageResult {
    let lists = items(s, &PRICE_LISTS).await?;
    let table = html! {
        @if lists.is_empty() { p { "No price lists." } } @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Name" } th { "Customer groups" } th.num { "Prices" } th { "Delete" } } }
                tbody { @for l in &lists { tr {
                    td data-label="Name" { (text(l, "name")) }
                    td data-label="Customer groups" { (list(l, "customer_groups").iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")) }
                    td.num data-label="Prices" { (list(l, "prices").len()) }
                    td data-label="Delete" { (delete_button(s, &PRICE_LISTS, text(l, "id"), text(l, "name"))) }
                } } }
            } }
        }
    };
    let form = html! {
        (errors.summary(&["/name", "/customer_groups", "/prices/0/variant_id", "/prices/0/price/amount", "/prices/0/price/currency"]))
        form.stack.card method="post" action=(PRICE_LISTS.ui) {
            (layout::csrf(s))
            (layout::field("Name", "name", f.get("name"), Kind::Text, "/name", errors))
            (layout::field("Customer groups, separated by commas (empty: everyone)", "groups", f.get("groups"), Kind::Text, "/customer_groups", errors))
            (layout::field("Variant id (var_…)", "variant_id", f.get("variant_id"), Kind::Text, "/prices/0/variant_id", errors))
            (layout::field("Price", "price", f.get("price"), Kind::Text, "/prices/0/price/amount", errors))
            (layout::field("Currency", "currency", if f.get("currency").is_empty() { "EUR" } else { f.get("currency") }, Kind::Text, "/prices/0/price/currency", errors))
            button type="submit" { "Create price list" }
        }
    };
    Ok(rules_page(s, &PRICE_LISTS, table, form, done).into_response())
}

async fn price_lists(Extension(s): Extension<Session>, Query(q): Query<ListQuery>) -> PageResult {
    price_lists_page(
        &s,
        &Fields::default(),
        q.done.as_deref(),
        &FormErrors::default(),
    )
    .await
}

async fn create_price_list(Extension(s): Extension<Session>, Form(f): Form<Fields>) -> PageResult {
    let currency = f.get("currency").to_ascii_uppercase();
    let groups: Vec<&str> = f
        .get("groups")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    let mut prices = Vec::new();
    if !f.get("variant_id").is_empty() || !f.get("price").is_empty() {
        let Some(amount) = money::parse(f.get("price"), &currency) else {
            let mut errors = FormErrors::default();
            errors.add("/prices/0/price/amount", "Enter a price such as 19.99.");
            let mut page = price_lists_page(&s, &f, None, &errors).await?;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(page);
        };
        prices.push(json!({ "variant_id": f.get("variant_id"), "price": { "amount": amount, "currency": currency } }));
    }
    let body = json!({ "name": f.get("name"), "customer_groups": groups, "prices": prices });
    let outcome = s.call(Method::POST, PRICE_LISTS.api, Some(&body)).await;
    created(&s, &PRICE_LISTS, outcome, async |errors| {
        price_lists_page(&s, &f, None, errors).await
    })
    .await
}

// ---- Removal ------------------------------------------------------------------------------

/// `POST /admin/promotions/{id}/delete`.
async fn delete_promotion(s: Extension<Session>, Path(id): Path<String>) -> PageResult {
    delete(&s, &PROMOTIONS, &id).await
}

/// `POST /admin/coupons/{id}/delete`.
async fn delete_coupon(s: Extension<Session>, Path(id): Path<String>) -> PageResult {
    delete(&s, &COUPONS, &id).await
}

/// `POST /admin/price-lists/{id}/delete`.
async fn delete_price_list(s: Extension<Session>, Path(id): Path<String>) -> PageResult {
    delete(&s, &PRICE_LISTS, &id).await
}

async fn delete(s: &Session, rules: &Rules, id: &str) -> PageResult {
    match s
        .call(
            Method::DELETE,
            &format!("{}/{}", rules.api, segment(id)),
            None,
        )
        .await
    {
        Ok(_) => Ok(see_other(&format!("{}?done=deleted", rules.ui))),
        Err(failure) => Err(s.fail(failure)),
    }
}
