//! The dashboard: today's orders and revenue, recent orders, and variants low on stock.

use std::collections::BTreeMap;

use axum::Extension;
use axum::response::IntoResponse;
use maud::html;
use serde_json::Value;

use super::{PageResult, int, list, text};
use crate::layout;
use crate::money;
use crate::session::Session;

/// A variant at or below this many available units is low on stock.
pub(crate) const LOW_STOCK: i64 = 5;

/// `GET /admin`.
pub(crate) async fn show(Extension(s): Extension<Session>) -> PageResult {
    let today = time::OffsetDateTime::now_utc().date();
    let since = format!("{today}T00:00:00Z");
    let summary = s
        .get(&format!(
            "/v1/admin/orders/summary{}",
            super::query(&[("since", &since)])
        ))
        .await?;
    let recent = s.get("/v1/admin/orders?limit=10").await?;
    let low = s
        .get(&format!(
            "/v1/admin/inventory/low-stock?below={}&limit=20",
            LOW_STOCK + 1
        ))
        .await
        .ok();
    let revenue: BTreeMap<String, i64> = list(&summary, "revenue")
        .iter()
        .map(|m| (text(m, "currency").to_owned(), int(m, "amount")))
        .collect();
    let body = html! {
        section.figures aria-label="Today" {
            div.card.figure {
                span { "Orders today (UTC)" }
                strong { (int(&summary, "orders")) }
            }
            div.card.figure {
                span { "Revenue today" }
                @if revenue.is_empty() {
                    strong { "—" }
                }
                @for (currency, amount) in &revenue {
                    strong { (money::show(*amount, currency)) }
                }
            }
        }
        h2 { "Recent orders" }
        (super::orders::table(list(&recent, "items")))
        p { a href="/admin/orders" { "All orders" } }
        h2 { "Low stock" }
        @match &low {
            Some(levels) => (low_stock(list(levels, "items"))),
            None => p.muted { "Stock levels are not available to your role." },
        }
    };
    Ok(layout::page(&s, "Dashboard", body).into_response())
}

fn low_stock(levels: &[Value]) -> maud::Markup {
    html! {
        @if levels.is_empty() {
            p { "No variant has fewer than " (LOW_STOCK + 1) " units available." }
        } @else {
            div.table-wrap {
                table.stack {
                    thead { tr { th { "Variant" } th.num { "On hand" } th.num { "Reserved" } th.num { "Available" } } }
                    tbody {
                        @for l in levels {
                            tr {
                                td data-label="Variant" { code { (text(l, "variant_id")) } }
                                td.num data-label="On hand" { (int(l, "on_hand")) }
                                td.num data-label="Reserved" { (int(l, "reserved")) }
                                td.num data-label="Available" { (int(l, "available")) }
                            }
                        }
                    }
                }
            }
        }
    }
}
