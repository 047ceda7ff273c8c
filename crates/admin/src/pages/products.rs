//! Products: the list (title search, status, keyset pages), the create form (a product with
//! its first variant, price and stock), and the edit page (fields, publication, options,
//! variants with their prices per currency, stock per location, images).

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Fields, PageResult, int, list, notice_box, pager, see_other, segment, text};
use crate::Ui;
use crate::api::Failure;
use crate::layout::{self, FormErrors, Kind};
use crate::money;
use crate::session::Session;

const STATUSES: &[&str] = &["draft", "published", "archived"];

pub(crate) fn routes(media_max_bytes: usize) -> Router<Ui> {
    Router::new()
        .route("/admin/products", get(index).post(create))
        .route("/admin/products/new", get(new_form))
        .route("/admin/products/{id}", get(show).post(update))
        .route("/admin/products/{id}/status", post(set_status))
        .route("/admin/products/{id}/variants", post(add_variant))
        .route(
            "/admin/products/{id}/variants/{variant_id}",
            post(update_variant),
        )
        .route("/admin/products/{id}/stock", post(set_stock))
        .route(
            "/admin/products/{id}/media",
            post(upload).layer(DefaultBodyLimit::max(media_max_bytes + 64 * 1024)),
        )
}

/// Query of the product list.
#[derive(Debug, Default, serde::Deserialize)]
struct ProductQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

/// `GET /admin/products`.
async fn index(Extension(s): Extension<Session>, Query(q): Query<ProductQuery>) -> PageResult {
    let search = q.q.as_deref().unwrap_or_default().trim();
    let status = q
        .status
        .as_deref()
        .filter(|v| STATUSES.contains(v))
        .unwrap_or_default();
    let cursor = q.cursor.as_deref().unwrap_or_default();
    let page = s
        .get(&format!(
            "/v1/admin/products{}",
            super::query(&[
                ("q", search),
                ("status", status),
                ("cursor", cursor),
                ("limit", "50")
            ])
        ))
        .await?;
    let body = html! {
        (notice_box(q.done.as_deref()))
        p { a.button href="/admin/products/new" { "New product" } }
        form.filters method="get" action="/admin/products" role="search" {
            label for="q" { span { "Title contains" } input #q type="search" name="q" value=(search); }
            label for="status" {
                span { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for st in STATUSES { option value=(st) selected[*st == status] { (st) } }
                }
            }
            button type="submit" { "Search" }
        }
        @let items = list(&page, "items");
        @if items.is_empty() {
            p { "No products." }
        } @else {
            div.table-wrap {
                table.stack {
                    thead { tr { th { "Title" } th { "Handle" } th { "Status" } th.num { "Variants" } th { "Updated" } } }
                    tbody {
                        @for p in items {
                            tr {
                                td data-label="Title" { a href={ "/admin/products/" (segment(text(p, "id"))) } { (text(p, "title")) } }
                                td data-label="Handle" { (text(p, "handle")) }
                                td data-label="Status" { span.status { (text(p, "status")) } }
                                td.num data-label="Variants" { (list(p, "variants").len()) }
                                td data-label="Updated" { (layout::when(text(p, "updated_at"))) }
                            }
                        }
                    }
                }
            }
        }
        (pager("/admin/products", &[("q", search), ("status", status)], page.get("next_cursor").and_then(Value::as_str), !cursor.is_empty()))
    };
    Ok(layout::page(&s, "Products", body).into_response())
}

/// Stock locations, for the stock fields; empty when the role may not read them.
async fn locations(s: &Session) -> Vec<Value> {
    match s
        .call(Method::GET, "/v1/admin/inventory/locations?limit=100", None)
        .await
    {
        Ok(answer) => list(&answer.body, "items").to_vec(),
        Err(_) => Vec::new(),
    }
}

/// "Size: S, M, L" lines to the API's options.
fn parse_options(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, values)| {
            let values: Vec<&str> = values
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            json!({ "name": name.trim(), "values": values })
        })
        .collect()
}

/// The API's options as "Size: S, M, L" lines.
fn options_text(product: &Value) -> String {
    list(product, "options")
        .iter()
        .map(|o| {
            let values: Vec<&str> = list(o, "values").iter().filter_map(Value::as_str).collect();
            format!("{}: {}", text(o, "name"), values.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// "Size=M, Colour=Red" to a variant's option values.
fn parse_variant_options(text: &str) -> serde_json::Map<String, Value> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), Value::String(v.trim().to_owned())))
        .collect()
}

fn status_select(current: &str) -> Markup {
    html! {
        label for="f-status" {
            span { "Status" }
            select #f-status name="status" {
                @for st in STATUSES { option value=(st) selected[*st == current] { (st) } }
            }
        }
    }
}

fn location_select(locations: &[Value], name: &str, id: &str, selected: &str) -> Markup {
    html! {
        label for=(id) {
            span { "Location" }
            select id=(id) name=(name) {
                @for l in locations {
                    option value=(text(l, "id")) selected[text(l, "id") == selected] { (text(l, "name")) " (" (text(l, "code")) ")" }
                }
            }
        }
    }
}

/// The create form, refilled from `f` after a refusal.
fn create_form(s: &Session, f: &Fields, locations: &[Value], errors: &FormErrors) -> Markup {
    let currency = if f.get("currency").is_empty() {
        "EUR"
    } else {
        f.get("currency")
    };
    let status = if f.get("status").is_empty() {
        "draft"
    } else {
        f.get("status")
    };
    let shown = [
        "/title",
        "/handle",
        "/description",
        "/status",
        "/options",
        "/variants/0/sku",
        "/variants/0/title",
        "/variants/0/options",
        "/variants/0/prices/0/amount",
        "/variants/0/prices/0/currency",
        "/on_hand",
    ];
    html! {
        (errors.summary(&shown))
        form.stack.card method="post" action="/admin/products" {
            (layout::csrf(s))
            (layout::field("Title", "title", f.get("title"), Kind::Text, "/title", errors))
            (layout::field("Handle (URL name; made from the title when empty)", "handle", f.get("handle"), Kind::Text, "/handle", errors))
            (layout::field("Description", "description", f.get("description"), Kind::TextArea, "/description", errors))
            (status_select(status))
            (layout::field("Options, one per line (Size: S, M, L)", "options", f.get("options"), Kind::TextArea, "/options", errors))
            fieldset {
                legend { "First variant" }
                (layout::field("SKU", "sku", f.get("sku"), Kind::Text, "/variants/0/sku", errors))
                (layout::field("Variant title (optional)", "variant_title", f.get("variant_title"), Kind::Text, "/variants/0/title", errors))
                (layout::field("Option values (Size=M, Colour=Red)", "variant_options", f.get("variant_options"), Kind::Text, "/variants/0/options", errors))
                (layout::field("Price", "price", f.get("price"), Kind::Text, "/variants/0/prices/0/amount", errors))
                (layout::field("Currency", "currency", currency, Kind::Text, "/variants/0/prices/0/currency", errors))
                @if !locations.is_empty() {
                    (layout::field("Units in stock", "on_hand", f.get("on_hand"), Kind::Number, "/on_hand", errors))
                    (location_select(locations, "location_id", "f-location", f.get("location_id")))
                }
            }
            button type="submit" { "Create product" }
        }
    }
}

/// `GET /admin/products/new`.
async fn new_form(Extension(s): Extension<Session>) -> PageResult {
    let locations = locations(&s).await;
    let body = create_form(&s, &Fields::default(), &locations, &FormErrors::default());
    Ok(layout::page(&s, "New product", body).into_response())
}

/// `POST /admin/products`: the product with its first variant, then its stock.
async fn create(Extension(s): Extension<Session>, Form(f): Form<Fields>) -> PageResult {
    let currency = f.get("currency").to_ascii_uppercase();
    let mut errors = FormErrors::default();
    let mut variants = Vec::new();
    if !f.get("sku").is_empty() || !f.get("price").is_empty() {
        let mut variant = json!({ "sku": f.get("sku"), "options": parse_variant_options(f.get("variant_options")) });
        if !f.get("variant_title").is_empty() {
            variant["title"] = json!(f.get("variant_title"));
        }
        if !f.get("price").is_empty() {
            match money::parse(f.get("price"), &currency) {
                Some(amount) => {
                    variant["prices"] = json!([{ "amount": amount, "currency": currency }])
                }
                None => errors.add(
                    "/variants/0/prices/0/amount",
                    "Enter a price such as 19.99.",
                ),
            }
        }
        variants.push(variant);
    }
    let on_hand = f.get("on_hand");
    let stock = if on_hand.is_empty() {
        None
    } else {
        match on_hand.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add("/on_hand", "Enter a whole number of units.");
                None
            }
        }
    };
    let locations = locations(&s).await;
    if !errors.is_empty() {
        return Ok(refused_create(&s, &f, &locations, &errors));
    }
    let mut body = json!({
        "title": f.get("title"),
        "description": f.get("description"),
        "status": f.get("status"),
        "options": parse_options(f.get("options")),
        "variants": variants,
    });
    if !f.get("handle").is_empty() {
        body["handle"] = json!(f.get("handle"));
    }
    let product = match s
        .call(Method::POST, "/v1/admin/products", Some(&body))
        .await
    {
        Ok(answer) => answer.body,
        Err(Failure::Refused(problem)) => {
            return Ok(refused_create(
                &s,
                &f,
                &locations,
                &FormErrors::from_problem(&problem),
            ));
        }
        Err(failure) => return Err(s.fail(failure)),
    };
    let id = text(&product, "id");
    if let (Some(on_hand), Some(variant)) = (stock, list(&product, "variants").first()) {
        let location = f.get("location_id");
        let path = format!(
            "/v1/admin/inventory/levels/{}/{}",
            segment(text(variant, "id")),
            segment(location)
        );
        if let Err(failure) = s
            .call(Method::PUT, &path, Some(&json!({ "on_hand": on_hand })))
            .await
        {
            // The product exists: its page says what became of the stock.
            tracing::info!(?failure, "stock of a new product refused");
            return Ok(see_other(&format!(
                "/admin/products/{}?done=created&stock=refused",
                segment(id)
            )));
        }
    }
    Ok(see_other(&format!(
        "/admin/products/{}?done=created",
        segment(id)
    )))
}

fn refused_create(
    s: &Session,
    f: &Fields,
    locations: &[Value],
    errors: &FormErrors,
) -> axum::response::Response {
    let page = layout::page(s, "New product", create_form(s, f, locations, errors));
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// Query of the product page.
#[derive(Debug, Default, serde::Deserialize)]
struct ShowQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    stock: Option<String>,
}

/// `GET /admin/products/{id}`.
async fn show(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let product = s
        .get(&format!("/v1/admin/products/{}", segment(&id)))
        .await?;
    let mut errors = FormErrors::default();
    if q.stock.as_deref() == Some("refused") {
        errors = FormErrors::general(
            "The product was created, but its stock was refused; set it below.",
        );
    }
    edit_page(&s, &product, None, q.done.as_deref(), &errors).await
}

/// The edit page; `f` refills the main form after a refusal.
async fn edit_page(
    s: &Session,
    product: &Value,
    f: Option<&Fields>,
    done: Option<&str>,
    errors: &FormErrors,
) -> PageResult {
    let id = text(product, "id");
    let locations = locations(s).await;
    let mut stock = Vec::new();
    for v in list(product, "variants") {
        let levels = s
            .call(
                Method::GET,
                &format!(
                    "/v1/admin/inventory/levels{}",
                    super::query(&[("variant_id", text(v, "id"))])
                ),
                None,
            )
            .await
            .map(|a| a.body)
            .ok();
        stock.push(levels);
    }
    let value = |name: &str, fallback: String| match f {
        Some(f) => f.get(name).to_owned(),
        None => fallback,
    };
    let status = text(product, "status");
    let base = format!("/admin/products/{}", segment(id));
    let shown = ["/title", "/handle", "/description", "/options"];
    let body = html! {
        (notice_box(done))
        (errors.summary(&shown))
        div.actions {
            @if status == "published" {
                form method="post" action={ (base) "/status" } {
                    (layout::csrf(s))
                    input type="hidden" name="status" value="draft";
                    button.secondary type="submit" { "Unpublish" }
                }
            } @else {
                form method="post" action={ (base) "/status" } {
                    (layout::csrf(s))
                    input type="hidden" name="status" value="published";
                    button type="submit" { "Publish" }
                }
            }
            p { "Status: " span.status #product-status { (status) } }
        }
        form.stack.card method="post" action=(base) {
            (layout::csrf(s))
            input type="hidden" name="version" value=(int(product, "version"));
            (layout::field("Title", "title", &value("title", text(product, "title").to_owned()), Kind::Text, "/title", errors))
            (layout::field("Handle", "handle", &value("handle", text(product, "handle").to_owned()), Kind::Text, "/handle", errors))
            (layout::field("Description", "description", &value("description", text(product, "description").to_owned()), Kind::TextArea, "/description", errors))
            (layout::field("Options, one per line (Size: S, M, L)", "options", &value("options", options_text(product)), Kind::TextArea, "/options", errors))
            button type="submit" { "Save" }
        }
        h2 { "Variants" }
        @for (v, levels) in list(product, "variants").iter().zip(&stock) {
            (variant_card(s, &base, v, levels.as_ref(), &locations))
        }
        h2 { "Add a variant" }
        form.stack.card method="post" action={ (base) "/variants" } {
            (layout::csrf(s))
            (layout::field("SKU", "sku", "", Kind::Text, "/sku", errors))
            (layout::field("Title (optional)", "variant_title", "", Kind::Text, "/title", errors))
            (layout::field("Option values (Size=M, Colour=Red)", "variant_options", "", Kind::Text, "/options", errors))
            (layout::field("Price", "price", "", Kind::Text, "/prices/0/amount", errors))
            (layout::field("Currency", "currency", "EUR", Kind::Text, "/prices/0/currency", errors))
            button type="submit" { "Add variant" }
        }
        h2 { "Images" }
        div.figures {
            @for m in list(product, "media") {
                figure.card {
                    img src=(text(m, "url")) alt=(text(m, "alt")) width="160";
                    figcaption { (text(m, "alt")) }
                }
            }
        }
        form.stack.card method="post" enctype="multipart/form-data" action={ (base) "/media?_csrf=" (s.csrf) } {
            label for="f-file" { span { "Image (JPEG, PNG, GIF, WebP, AVIF)" } input #f-file type="file" name="file" accept="image/*"; }
            (layout::field("Description of the image", "alt", "", Kind::Text, "/alt", errors))
            button type="submit" { "Upload" }
        }
    };
    Ok(layout::page(s, text(product, "title"), body).into_response())
}

fn variant_card(
    s: &Session,
    base: &str,
    v: &Value,
    levels: Option<&Value>,
    locations: &[Value],
) -> Markup {
    let vid = text(v, "id");
    let prices = list(v, "prices");
    html! {
        section.card aria-label={ "Variant " (text(v, "sku")) } {
            h3 { (text(v, "title")) " — " code { (text(v, "sku")) } }
            form.stack method="post" action={ (base) "/variants/" (segment(vid)) } {
                (layout::csrf(s))
                fieldset {
                    legend { "Prices" }
                    @for (i, p) in prices.iter().enumerate() {
                        @let currency = text(p, "currency");
                        label for={ "p-" (vid) "-" (i) } {
                            span { "Price in " (currency) " (empty removes it)" }
                            input id={ "p-" (vid) "-" (i) } type="text" name={ "price_" (currency) } value=(money::plain(int(p, "amount"), currency));
                        }
                    }
                    div.inline {
                        label for={ "nc-" (vid) } { span { "New currency" } input id={ "nc-" (vid) } type="text" name="new_currency" size="4"; }
                        label for={ "na-" (vid) } { span { "Price" } input id={ "na-" (vid) } type="text" name="new_price" size="8"; }
                    }
                }
                button type="submit" { "Save prices" }
            }
            h4 { "Stock" }
            @match levels {
                Some(levels) => {
                    p { "Available: " strong { (int(levels, "available")) } " (on hand " (int(levels, "on_hand")) ", reserved " (int(levels, "reserved")) ")" }
                    @if !locations.is_empty() {
                        form.inline method="post" action={ (base) "/stock" } {
                            (layout::csrf(s))
                            input type="hidden" name="variant_id" value=(vid);
                            (location_select(locations, "location_id", &format!("l-{vid}"), ""))
                            label for={ "oh-" (vid) } { span { "Units on hand" } input id={ "oh-" (vid) } type="number" name="on_hand" min="0" required; }
                            button type="submit" { "Set stock" }
                        }
                    }
                },
                None => p.muted { "Stock is not available to your role." },
            }
        }
    }
}

/// `POST /admin/products/{id}`: title, handle, description and options, against the version
/// the form was read at.
async fn update(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let path = format!("/v1/admin/products/{}", segment(&id));
    let body = json!({
        "title": f.get("title"),
        "handle": f.get("handle"),
        "description": f.get("description"),
        "options": parse_options(f.get("options")),
    });
    let version = format!("\"{}\"", f.get("version"));
    match s
        .call_with(Method::PATCH, &path, Some(&body), &[("if-match", &version)])
        .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/admin/products/{}?done=saved",
            segment(&id)
        ))),
        Err(Failure::Refused(problem)) => {
            let product = s.get(&path).await?;
            let errors = if problem.status == 412 {
                FormErrors::general(
                    "Someone changed this product since you opened it; your changes are below, check them against the new version and save again.",
                )
            } else {
                FormErrors::from_problem(&problem)
            };
            let mut page = edit_page(&s, &product, Some(&f), None, &errors).await?;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

/// Re-renders the edit page with the refusal of a sub-form.
async fn refused_on_page(s: &Session, id: &str, errors: &FormErrors) -> PageResult {
    let product = s
        .get(&format!("/v1/admin/products/{}", segment(id)))
        .await?;
    let mut page = edit_page(s, &product, None, None, errors).await?;
    *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(page)
}

/// The outcome of a sub-form's call: back to the page with a notice, or the page with the
/// API's refusal.
async fn finish(
    s: &Session,
    id: &str,
    done: &str,
    outcome: Result<crate::api::Answer, Failure>,
) -> PageResult {
    match outcome {
        Ok(_) => Ok(see_other(&format!(
            "/admin/products/{}?done={done}",
            segment(id)
        ))),
        Err(Failure::Refused(problem)) => {
            refused_on_page(s, id, &FormErrors::from_problem(&problem)).await
        }
        Err(failure) => Err(s.fail(failure)),
    }
}

/// `POST /admin/products/{id}/status`: publish or unpublish.
async fn set_status(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let status = f.get("status");
    if !STATUSES.contains(&status) {
        return refused_on_page(&s, &id, &FormErrors::general("Unknown status.")).await;
    }
    let outcome = s
        .call(
            Method::PATCH,
            &format!("/v1/admin/products/{}", segment(&id)),
            Some(&json!({ "status": status })),
        )
        .await;
    finish(&s, &id, "saved", outcome).await
}

/// `POST /admin/products/{id}/variants`.
async fn add_variant(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let currency = f.get("currency").to_ascii_uppercase();
    let mut body =
        json!({ "sku": f.get("sku"), "options": parse_variant_options(f.get("variant_options")) });
    if !f.get("variant_title").is_empty() {
        body["title"] = json!(f.get("variant_title"));
    }
    if !f.get("price").is_empty() {
        match money::parse(f.get("price"), &currency) {
            Some(amount) => body["prices"] = json!([{ "amount": amount, "currency": currency }]),
            None => {
                let mut errors = FormErrors::default();
                errors.add("/prices/0/amount", "Enter a price such as 19.99.");
                return refused_on_page(&s, &id, &errors).await;
            }
        }
    }
    let outcome = s
        .call(
            Method::POST,
            &format!("/v1/admin/products/{}/variants", segment(&id)),
            Some(&body),
        )
        .await;
    finish(&s, &id, "variant", outcome).await
}

/// `POST /admin/products/{id}/variants/{variant_id}`: the variant's prices (an emptied price is
/// removed; a new currency is added).
async fn update_variant(
    Extension(s): Extension<Session>,
    Path((id, variant_id)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> PageResult {
    let mut prices = Vec::new();
    let mut errors = FormErrors::default();
    for (name, value) in &f.0 {
        let Some(currency) = name.strip_prefix("price_") else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        match money::parse(value, currency) {
            Some(amount) => prices.push(json!({ "amount": amount, "currency": currency })),
            None => errors.add(
                "/prices",
                &format!("{currency}: enter a price such as 19.99."),
            ),
        }
    }
    let new_currency = f.get("new_currency").to_ascii_uppercase();
    if !new_currency.is_empty() {
        match money::parse(f.get("new_price"), &new_currency) {
            Some(amount) => prices.push(json!({ "amount": amount, "currency": new_currency })),
            None => errors.add(
                "/prices",
                &format!("{new_currency}: enter a price such as 19.99."),
            ),
        }
    }
    if !errors.is_empty() {
        return refused_on_page(&s, &id, &errors).await;
    }
    let outcome = s
        .call(
            Method::PATCH,
            &format!(
                "/v1/admin/products/{}/variants/{}",
                segment(&id),
                segment(&variant_id)
            ),
            Some(&json!({ "prices": prices })),
        )
        .await;
    finish(&s, &id, "variant", outcome).await
}

/// `POST /admin/products/{id}/stock`: the units on hand of a variant at a location.
async fn set_stock(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> PageResult {
    let Ok(on_hand) = f.get("on_hand").parse::<i64>() else {
        let mut errors = FormErrors::default();
        errors.add("/on_hand", "Enter a whole number of units.");
        return refused_on_page(&s, &id, &errors).await;
    };
    let path = format!(
        "/v1/admin/inventory/levels/{}/{}",
        segment(f.get("variant_id")),
        segment(f.get("location_id"))
    );
    let outcome = s
        .call(
            Method::PUT,
            &path,
            Some(&json!({ "on_hand": on_hand, "reason": "set in the admin UI" })),
        )
        .await;
    finish(&s, &id, "stock", outcome).await
}

/// `POST /admin/products/{id}/media`: forwards the image to the API's multipart route.
async fn upload(
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> PageResult {
    let mut form = reqwest::multipart::Form::new();
    let mut has_file = false;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                return refused_on_page(
                    &s,
                    &id,
                    &FormErrors::general("The upload could not be read; it may be too large."),
                )
                .await;
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().unwrap_or("upload").to_owned();
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let Ok(bytes) = field.bytes().await else {
                    return refused_on_page(
                        &s,
                        &id,
                        &FormErrors::general("The upload could not be read; it may be too large."),
                    )
                    .await;
                };
                if bytes.is_empty() {
                    continue;
                }
                has_file = true;
                let part = reqwest::multipart::Part::bytes(bytes.to_vec())
                    .file_name(file_name)
                    .mime_str(&content_type)
                    .unwrap_or_else(|_| reqwest::multipart::Part::bytes(Vec::new()));
                form = form.part("file", part);
            }
            "alt" => {
                let alt = field.text().await.unwrap_or_default();
                form = form.text("alt", alt);
            }
            _ => {}
        }
    }
    if !has_file {
        let mut errors = FormErrors::default();
        errors.add("/file", "Choose an image to upload.");
        return refused_on_page(&s, &id, &errors).await;
    }
    let request = s
        .api
        .request(
            Method::POST,
            &format!("/v1/admin/products/{}/media", segment(&id)),
            &s.access,
        )
        .multipart(form);
    let outcome = s.api.send(request).await;
    finish(&s, &id, "uploaded", outcome).await
}
