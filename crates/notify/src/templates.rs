//! The e-mails, one function per kind: a subject, a text body and an HTML body. Every value
//! from an event goes through maud, which escapes it; nothing is marked pre-escaped.

use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

/// A finished message.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the templates read of an order (payloads are read leniently: unknown fields ignored,
/// missing ones empty).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OrderView {
    pub id: String,
    pub email: String,
    pub currency: String,
    pub lines: Vec<LineView>,
    pub total: i64,
    pub refunded_amount: i64,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LineView {
    pub sku: String,
    pub product_title: String,
    pub variant_title: String,
    pub quantity: i64,
    pub total: i64,
}

/// `12.34 EUR` from minor units and an ISO 4217 code.
pub fn money(minor: i64, currency: &str) -> String {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let digits = if ZERO.contains(&currency) {
        0
    } else if THREE.contains(&currency) {
        3
    } else {
        2
    };
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs} {currency}");
    }
    let unit = 10u64.pow(digits);
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / unit,
        abs % unit,
        width = digits as usize
    )
}

fn page(store: &str, title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } }
            body style="font-family: sans-serif; color: #222; max-width: 640px; margin: 0 auto;" {
                h1 style="font-size: 20px;" { (title) }
                (body)
                p style="color: #666; font-size: 12px;" { (store) }
            }
        }
    }
    .into_string()
}

fn lines_text(order: &OrderView) -> String {
    order
        .lines
        .iter()
        .map(|l| {
            format!(
                "  {} x {} ({}) {}\n",
                l.quantity,
                l.product_title,
                l.variant_title,
                money(l.total, &order.currency)
            )
        })
        .collect()
}

fn lines_html(order: &OrderView) -> Markup {
    html! {
        table style="border-collapse: collapse; width: 100%;" {
            thead { tr { th align="left" { "Item" } th align="right" { "Qty" } th align="right" { "Total" } } }
            tbody {
                @for l in &order.lines {
                    tr {
                        td { (l.product_title) " — " (l.variant_title) }
                        td align="right" { (l.quantity) }
                        td align="right" { (money(l.total, &order.currency)) }
                    }
                }
            }
        }
        p { strong { "Total: " (money(order.total, &order.currency)) } }
    }
}

pub fn order_placed(store: &str, order: &OrderView) -> Message {
    let subject = format!("{store}: your order {} is placed", order.id);
    let text = format!(
        "Thank you for your order {}.\n\n{}\nTotal: {}\n\nWe will write again when it ships.\n\n{store}\n",
        order.id,
        lines_text(order),
        money(order.total, &order.currency)
    );
    let html = page(
        store,
        &subject,
        html! {
            p { "Thank you for your order " strong { (order.id) } "." }
            (lines_html(order))
            p { "We will write again when it ships." }
        },
    );
    Message {
        subject,
        text,
        html,
    }
}

pub fn order_shipped(store: &str, order: &OrderView) -> Message {
    let subject = format!("{store}: your order {} has shipped", order.id);
    let tracking = order.tracking_number.as_deref().unwrap_or("");
    let text = format!(
        "Your order {} is on its way.\n{}\n{}\n{store}\n",
        order.id,
        if tracking.is_empty() {
            String::new()
        } else {
            format!("Tracking number: {tracking}\n")
        },
        lines_text(order)
    );
    let html = page(
        store,
        &subject,
        html! {
            p { "Your order " strong { (order.id) } " is on its way." }
            @if !tracking.is_empty() { p { "Tracking number: " code { (tracking) } } }
            (lines_html(order))
        },
    );
    Message {
        subject,
        text,
        html,
    }
}

pub fn order_refunded(store: &str, order: &OrderView, amount: i64) -> Message {
    let subject = format!("{store}: a refund for order {}", order.id);
    let text = format!(
        "We refunded {} for your order {} (refunded in all: {}).\n\n{store}\n",
        money(amount, &order.currency),
        order.id,
        money(order.refunded_amount, &order.currency)
    );
    let html = page(
        store,
        &subject,
        html! {
            p { "We refunded " strong { (money(amount, &order.currency)) } " for your order " (order.id) "." }
            p { "Refunded in all: " (money(order.refunded_amount, &order.currency)) }
        },
    );
    Message {
        subject,
        text,
        html,
    }
}

pub fn order_cancelled(store: &str, order: &OrderView) -> Message {
    let subject = format!("{store}: your order {} is cancelled", order.id);
    let reason = order.cancel_reason.as_deref().unwrap_or("");
    let text = format!(
        "Your order {} is cancelled.{}\nAny payment taken is refunded.\n\n{store}\n",
        order.id,
        if reason.is_empty() {
            String::new()
        } else {
            format!(" Reason: {reason}")
        }
    );
    let html = page(
        store,
        &subject,
        html! {
            p { "Your order " strong { (order.id) } " is cancelled." }
            @if !reason.is_empty() { p { "Reason: " (reason) } }
            p { "Any payment taken is refunded." }
        },
    );
    Message {
        subject,
        text,
        html,
    }
}

pub fn new_order(store: &str, order: &OrderView) -> Message {
    let subject = format!(
        "{store}: new order {} ({})",
        order.id,
        money(order.total, &order.currency)
    );
    let text = format!(
        "A new order {} from {}.\n\n{}\nTotal: {}\n",
        order.id,
        order.email,
        lines_text(order),
        money(order.total, &order.currency)
    );
    let html = page(
        store,
        &subject,
        html! {
            p { "A new order " strong { (order.id) } " from " (order.email) "." }
            (lines_html(order))
        },
    );
    Message {
        subject,
        text,
        html,
    }
}

pub fn low_stock(store: &str, variant_id: &str, available: i64, threshold: i64) -> Message {
    let subject = format!("{store}: low stock for {variant_id}");
    let text = format!(
        "Variant {variant_id} has {available} units available, below the threshold of {threshold}.\n"
    );
    let html = page(
        store,
        &subject,
        html! {
            p { "Variant " code { (variant_id) } " has " strong { (available) } " units available, below the threshold of " (threshold) "." }
        },
    );
    Message {
        subject,
        text,
        html,
    }
}

pub fn webhook_disabled(store: &str, endpoint_id: &str, url: &str) -> Message {
    let subject = format!("{store}: webhook endpoint disabled");
    let text = format!(
        "The webhook endpoint {endpoint_id} ({url}) failed every delivery for days and was disabled. \
         Its deliveries wait; enable it again once it answers, and replay what failed.\n"
    );
    let html = page(
        store,
        &subject,
        html! {
            p { "The webhook endpoint " code { (endpoint_id) } " (" (url) ") failed every delivery for days and was disabled." }
            p { "Its deliveries wait; enable it again once it answers, and replay what failed." }
        },
    );
    Message {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_the_currency_s_digits() {
        assert_eq!(money(1234, "EUR"), "12.34 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(1234, "JPY"), "1234 JPY");
        assert_eq!(money(-1500, "KWD"), "-1.500 KWD");
    }

    #[test]
    fn html_escapes_every_value() {
        let order = OrderView {
            id: "ord_1".into(),
            email: "a@example.com".into(),
            currency: "EUR".into(),
            lines: vec![LineView {
                product_title: "<script>alert(1)</script>".into(),
                variant_title: "\"><img src=x onerror=alert(1)>".into(),
                quantity: 1,
                total: 100,
                ..LineView::default()
            }],
            total: 100,
            tracking_number: Some("<b>T</b>".into()),
            ..OrderView::default()
        };
        for m in [
            order_placed("S", &order),
            order_shipped("S", &order),
            new_order("S", &order),
        ] {
            assert!(!m.html.contains("<script>"), "{}", m.html);
            assert!(!m.html.contains("<img"), "{}", m.html);
            assert!(m.html.contains("&lt;script&gt;"), "{}", m.html);
        }
        assert!(
            order_shipped("S", &order)
                .html
                .contains("&lt;b&gt;T&lt;/b&gt;")
        );
    }
}
