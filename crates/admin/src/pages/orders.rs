//! Orders: the list (by status and days placed, newest first, keyset pages), one order with its event history,
//! and the staff actions (capture, fulfil, ship, deliver, cancel, refund, return), each a
//! `POST` form that the API's policy and the order's lifecycle decide.

use axum::extract::{Path, Query};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Fields, ListQuery, PageResult, int, list, notice_box, pager, segment, text};
use crate::Ui;
use crate::api::Failure;
use crate::layout::{self, FormErrors, Kind};
use crate::money;
use crate::session::Session;

/// The statuses the list can be narrowed to.
const STATUSES: &[&str] = &[
    "placed",
    "paid",
    "fulfilled",
    "shipped",
    "delivered",
    "cancelled",
    "refunded",
    "returned",
];

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/admin/orders", get(index))
        .route("/admin/orders/{id}", get(show))
        .route("/admin/orders/{id}/{action}", post(act))
}

/// A table of orders (the list and the dashboard).
pub(crate) fn table(orders: &[Value]) -> Markup {
    html! {
        @if orders.is_empty() {
            p { "No orders." }
        } @else {
            div.table-wrap {
                table.stack {
                    thead { tr { th { "Order" } th { "Placed" } th { "Customer" } th { "Status" } th.num { "Total" } } }
                    tbody {
                        @for o in orders {
                            tr {
                                td data-label="Order" { a href={ "/admin/orders/" (segment(text(o, "id"))) } { (text(o, "id")) } }
                                td data-label="Placed" { (layout::when(text(o, "placed_at"))) }
                                td data-label="Customer" { (text(o, "email")) }
                                td data-label="Status" { span.status { (text(o, "status")) } }
                                td.num data-label="Total" { (money::show(int(o, "total"), text(o, "currency"))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Query of the order list.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct OrderQuery {
    #[serde(default)]
    status: Option<String>,
    /// First day (`YYYY-MM-DD`, UTC) of the orders shown.
    #[serde(default)]
    from: Option<String>,
    /// Last day (`YYYY-MM-DD`, UTC) of the orders shown.
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// A `YYYY-MM-DD` day; `None` for anything else.
fn day(text: &str) -> Option<time::Date> {
    let mut parts = text.trim().splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month = time::Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
    let day = parts.next()?.parse().ok()?;
    time::Date::from_calendar_date(year, month, day).ok()
}

/// The start of `day` (UTC) as RFC 3339.
fn midnight(day: time::Date) -> String {
    format!("{day}T00:00:00Z")
}

/// `GET /admin/orders`: by status and days placed (from, to: both included).
async fn index(Extension(s): Extension<Session>, Query(q): Query<OrderQuery>) -> PageResult {
    let status = q
        .status
        .as_deref()
        .filter(|v| STATUSES.contains(v))
        .unwrap_or_default();
    let cursor = q.cursor.as_deref().unwrap_or_default();
    let from = q.from.as_deref().and_then(day);
    let to = q.to.as_deref().and_then(day);
    let since = from.map(midnight).unwrap_or_default();
    let before = to
        .and_then(|d| d.next_day())
        .map(midnight)
        .unwrap_or_default();
    let from_text = from.map(|d| d.to_string()).unwrap_or_default();
    let to_text = to.map(|d| d.to_string()).unwrap_or_default();
    let page = s
        .get(&format!(
            "/v1/admin/orders{}",
            super::query(&[
                ("status", status),
                ("placed_since", &since),
                ("placed_before", &before),
                ("cursor", cursor),
                ("limit", "50")
            ])
        ))
        .await?;
    let body = html! {
        form.filters method="get" action="/admin/orders" {
            label for="status" {
                span { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for st in STATUSES {
                        option value=(st) selected[*st == status] { (st) }
                    }
                }
            }
            label for="from" { span { "Placed from (UTC)" } input #from type="date" name="from" value=(from_text); }
            label for="to" { span { "Placed to (UTC)" } input #to type="date" name="to" value=(to_text); }
            button type="submit" { "Filter" }
        }
        (table(list(&page, "items")))
        (pager("/admin/orders", &[("status", status), ("from", &from_text), ("to", &to_text)], page.get("next_cursor").and_then(Value::as_str), !cursor.is_empty()))
    };
    Ok(layout::page(&s, "Orders", body).into_response())
}

/// `GET /admin/orders/{id}`.
async fn show(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let order = s.get(&format!("/v1/admin/orders/{}", segment(&id))).await?;
    render(&s, &order, q.done.as_deref(), &FormErrors::default()).await
}

async fn render(s: &Session, order: &Value, done: Option<&str>, errors: &FormErrors) -> PageResult {
    let id = text(order, "id");
    // The history is the journal's; a role that may not read it still sees the order.
    let events = s
        .call(
            Method::GET,
            &format!(
                "/v1/admin/events{}",
                super::query(&[("aggregate_id", id), ("limit", "200")])
            ),
            None,
        )
        .await
        .ok()
        .map(|a| a.body);
    let currency = text(order, "currency");
    let status = text(order, "status");
    let address = order
        .get("shipping_address")
        .cloned()
        .unwrap_or(Value::Null);
    let body = html! {
        (notice_box(done))
        (errors.summary(&["/tracking_number", "/amount", "/reason"]))
        div.card {
            p { "Status: " span.status #order-status { (status) } }
            p { "Customer: " (text(order, "email")) }
            p { "Placed: " (layout::when(text(order, "placed_at"))) }
            @if let Some(tracking) = order.get("tracking_number").and_then(Value::as_str) {
                p { "Tracking number: " (tracking) }
            }
            @if let Some(reason) = order.get("cancel_reason").and_then(Value::as_str) {
                p { "Cancelled because: " (reason) }
            }
            p {
                "Ship to: " (text(&address, "name")) ", " (text(&address, "line1")) ", "
                (text(&address, "postal_code")) " " (text(&address, "city")) ", " (text(&address, "country"))
            }
        }
        h2 { "Lines" }
        div.table-wrap {
            table.stack {
                thead { tr { th { "SKU" } th { "Product" } th.num { "Quantity" } th.num { "Fulfilled" } th.num { "Total" } } }
                tbody {
                    @for line in list(order, "lines") {
                        tr {
                            td data-label="SKU" { (text(line, "sku")) }
                            td data-label="Product" { (text(line, "product_title")) " — " (text(line, "variant_title")) }
                            td.num data-label="Quantity" { (int(line, "quantity")) }
                            td.num data-label="Fulfilled" { (int(line, "fulfilled_quantity")) }
                            td.num data-label="Total" { (money::show(int(line, "total"), currency)) }
                        }
                    }
                }
            }
        }
        div.card {
            p { "Subtotal " (money::show(int(order, "subtotal"), currency)) }
            p { "Discounts " (money::show(int(order, "discount_total"), currency)) }
            p { "Shipping " (money::show(int(order, "shipping_total"), currency)) }
            p { "Tax " (money::show(int(order, "tax_total"), currency)) }
            p { strong { "Total " (money::show(int(order, "total"), currency)) } }
            p { "Captured " (money::show(int(order, "captured_amount"), currency))
                ", refunded " (money::show(int(order, "refunded_amount"), currency)) }
        }
        h2 { "Actions" }
        (actions(s, order, errors))
        h2 { "History" }
        @match &events {
            Some(events) => ol.events {
                @for e in list(events, "items") {
                    @let event = e.get("event").unwrap_or(e);
                    @let change = event.get("data").and_then(|d| d.get("change")).map(|c| text(c, "type")).unwrap_or_default();
                    li {
                        (layout::when(text(event, "occurred_at"))) " — " code { (text(event, "type")) }
                        @if !change.is_empty() { " (" (change) ")" }
                    }
                }
            },
            None => p.muted { "The event history is not available to your role." },
        }
    };
    Ok(layout::page(s, &format!("Order {id}"), body).into_response())
}

fn action_form(
    s: &Session,
    id: &str,
    action: &str,
    label: &str,
    confirm: Option<&str>,
    fields: Markup,
) -> Markup {
    html! {
        form.inline method="post" action={ "/admin/orders/" (segment(id)) "/" (action) } data-confirm=[confirm] {
            (layout::csrf(s))
            (fields)
            button type="submit" { (label) }
        }
    }
}

/// The actions the order's status allows; the API still decides (role, pending payment).
fn actions(s: &Session, order: &Value, errors: &FormErrors) -> Markup {
    let id = text(order, "id");
    let status = text(order, "status");
    let currency = text(order, "currency");
    let refundable = int(order, "captured_amount") - int(order, "refunded_amount");
    let none = html! {};
    html! {
        div.actions {
            @if status == "placed" {
                (action_form(s, id, "capture", "Capture payment", None, none.clone()))
            }
            @if status == "paid" {
                (action_form(s, id, "fulfill", "Fulfil every line", None, none.clone()))
            }
            @if status == "fulfilled" {
                (action_form(s, id, "ship", "Ship", None, layout::field("Tracking number", "tracking_number", "", Kind::Text, "/tracking_number", errors)))
            }
            @if status == "shipped" {
                (action_form(s, id, "deliver", "Mark delivered", None, none.clone()))
            }
            @if status == "delivered" {
                (action_form(s, id, "return", "Mark returned", Some("Mark this order returned?"), none.clone()))
            }
            @if status == "placed" || status == "paid" {
                (action_form(s, id, "cancel", "Cancel order", Some("Cancel this order? Its payment is voided or refunded."),
                    layout::field("Reason", "reason", "", Kind::Text, "/reason", errors)))
            }
            @if refundable > 0 {
                (action_form(s, id, "refund", "Refund", Some("Refund this amount to the customer?"),
                    layout::field(&format!("Amount ({currency})"), "amount", &money::plain(refundable, currency), Kind::Text, "/amount", errors)))
            }
        }
    }
}

/// `POST /admin/orders/{id}/{action}`.
async fn act(
    Extension(s): Extension<Session>,
    Path((id, action)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let path = format!("/v1/admin/orders/{}", segment(&id));
    let body = match action.as_str() {
        "capture" | "deliver" | "return" => None,
        "fulfill" => {
            let order = s.get(&path).await?;
            let lines: Vec<Value> = list(&order, "lines")
                .iter()
                .filter(|l| int(l, "quantity") > int(l, "fulfilled_quantity"))
                .map(|l| json!({"variant_id": text(l, "variant_id"), "quantity": int(l, "quantity") - int(l, "fulfilled_quantity")}))
                .collect();
            Some(json!({ "lines": lines }))
        }
        "ship" => {
            let tracking = fields.get("tracking_number");
            Some(json!({ "tracking_number": (!tracking.is_empty()).then_some(tracking) }))
        }
        "cancel" => Some(json!({ "reason": fields.get("reason") })),
        "refund" => {
            let order = s.get(&path).await?;
            match money::parse(fields.get("amount"), text(&order, "currency")) {
                Some(amount) => Some(json!({ "amount": amount })),
                None => {
                    let mut errors = FormErrors::default();
                    errors.add("/amount", "Enter an amount such as 12.50.");
                    return refused(&s, &order, &errors).await;
                }
            }
        }
        _ => return Err(super::not_found().await),
    };
    match s
        .call(Method::POST, &format!("{path}/{action}"), body.as_ref())
        .await
    {
        Ok(_) => Ok(super::see_other(&format!(
            "/admin/orders/{}?done=done",
            segment(&id)
        ))),
        Err(Failure::Refused(problem)) => {
            let order = s.get(&path).await?;
            refused(&s, &order, &FormErrors::from_problem(&problem)).await
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

async fn refused(s: &Session, order: &Value, errors: &FormErrors) -> PageResult {
    let page = render(s, order, None, errors).await?;
    let mut page = page;
    *page.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    Ok(page)
}
