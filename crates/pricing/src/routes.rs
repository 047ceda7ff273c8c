//! Staff routes: `/v1/admin/price-lists`, `/v1/admin/promotions`, `/v1/admin/tax-rates`,
//! `/v1/admin/shipping-options` (list, create, read, replace with `If-Match`, delete),
//! `/v1/admin/coupons` (list, create, read, delete) and `POST /v1/admin/pricing/quote`, which
//! quotes a cart described in full under the stored rules (to check rules before a shopper
//! meets them). Access is decided by [`ADMIN_RULES`] in the admin guard.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emporium_http::admin::AdminRule;
use emporium_http::conditional::{if_match_version, version_etag};
use emporium_http::{ApiError, Authenticated, Json, PageQuery, Path, Query};
use emporium_kernel::auth::Role;
use emporium_kernel::cursor::Page;
use emporium_kernel::ids::CouponId;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::PricingError;
use crate::quote::{Cart, Quote};
use crate::service::{Coupon, CreateCoupon, PricingService, Stored};

/// The scope that lets an API client read pricing rules.
pub const READ_SCOPE: &str = "pricing:read";

macro_rules! rule_access {
    ($collection:literal, $item:literal) => {
        [
            AdminRule::staff_or_client("GET", $collection, Role::Staff, READ_SCOPE),
            AdminRule::staff("POST", $collection, Role::Admin),
            AdminRule::staff_or_client("GET", $item, Role::Staff, READ_SCOPE),
            AdminRule::staff("PUT", $item, Role::Admin),
            AdminRule::staff("DELETE", $item, Role::Admin),
        ]
    };
}

const PRICE_LIST_RULES: [AdminRule; 5] =
    rule_access!("/v1/admin/price-lists", "/v1/admin/price-lists/{id}");
const PROMOTION_RULES: [AdminRule; 5] =
    rule_access!("/v1/admin/promotions", "/v1/admin/promotions/{id}");
const TAX_RATE_RULES: [AdminRule; 5] =
    rule_access!("/v1/admin/tax-rates", "/v1/admin/tax-rates/{id}");
const SHIPPING_RULES: [AdminRule; 5] = rule_access!(
    "/v1/admin/shipping-options",
    "/v1/admin/shipping-options/{id}"
);

/// Who may call each pricing admin route: staff read, admins change.
pub const ADMIN_RULES: &[AdminRule] = &[
    PRICE_LIST_RULES[0],
    PRICE_LIST_RULES[1],
    PRICE_LIST_RULES[2],
    PRICE_LIST_RULES[3],
    PRICE_LIST_RULES[4],
    PROMOTION_RULES[0],
    PROMOTION_RULES[1],
    PROMOTION_RULES[2],
    PROMOTION_RULES[3],
    PROMOTION_RULES[4],
    TAX_RATE_RULES[0],
    TAX_RATE_RULES[1],
    TAX_RATE_RULES[2],
    TAX_RATE_RULES[3],
    TAX_RATE_RULES[4],
    SHIPPING_RULES[0],
    SHIPPING_RULES[1],
    SHIPPING_RULES[2],
    SHIPPING_RULES[3],
    SHIPPING_RULES[4],
    AdminRule::staff_or_client("GET", "/v1/admin/coupons", Role::Staff, READ_SCOPE),
    AdminRule::staff("POST", "/v1/admin/coupons", Role::Admin),
    AdminRule::staff_or_client("GET", "/v1/admin/coupons/{id}", Role::Staff, READ_SCOPE),
    AdminRule::staff("DELETE", "/v1/admin/coupons/{id}", Role::Admin),
    AdminRule::staff_or_client("POST", "/v1/admin/pricing/quote", Role::Staff, READ_SCOPE),
];

/// Every pricing route, with its OpenAPI description, bound to `service`.
pub fn router(service: Arc<PricingService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(price_lists::list, price_lists::create))
        .routes(routes!(
            price_lists::get,
            price_lists::replace,
            price_lists::delete
        ))
        .routes(routes!(promotions::list, promotions::create))
        .routes(routes!(
            promotions::get,
            promotions::replace,
            promotions::delete
        ))
        .routes(routes!(tax_rates::list, tax_rates::create))
        .routes(routes!(
            tax_rates::get,
            tax_rates::replace,
            tax_rates::delete
        ))
        .routes(routes!(shipping_options::list, shipping_options::create))
        .routes(routes!(
            shipping_options::get,
            shipping_options::replace,
            shipping_options::delete
        ))
        .routes(routes!(list_coupons, create_coupon))
        .routes(routes!(get_coupon, delete_coupon))
        .routes(routes!(preview_quote))
        .with_state(service)
}

type Svc = State<Arc<PricingService>>;

/// A JSON answer carrying the resource's version as its ETag.
fn versioned<T: Serialize>(status: StatusCode, version: i64, body: &T) -> Response {
    (
        status,
        [(header::ETAG, version_etag(version))],
        axum::Json(body),
    )
        .into_response()
}

/// The five routes of one kind of rule, in a module named after it.
macro_rules! rule_routes {
    (
        $module:ident, $rule:ty, $id:ty, $collection:tt, $item:tt, $noun:literal, $one:literal,
        $many:literal, [$($conflict:tt)*]
    ) => {
        pub mod $module {
            use super::*;

            #[doc = concat!("Lists ", $noun, "s by id.")]
            #[utoipa::path(get, path = $collection, operation_id = concat!("listAdmin", $many), tag = "admin", params(PageQuery),
                responses(
                    (status = 200, description = "A page", body = Page<Stored<$rule>>),
                    (status = 422, description = "A bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
                ))]
            pub async fn list(
                State(service): Svc,
                Query(q): Query<PageQuery>,
            ) -> Result<axum::Json<Page<Stored<$rule>>>, ApiError> {
                Ok(axum::Json(
                    service
                        .list_rules::<$rule>(q.cursor.as_deref(), q.limit)
                        .await?,
                ))
            }

            #[doc = concat!("Creates a ", $noun, "; the answer carries its id and ETag.")]
            #[utoipa::path(post, path = $collection, operation_id = concat!("createAdmin", $one), tag = "admin", request_body = $rule,
                responses(
                    (status = 201, description = "Created", body = Stored<$rule>),
                    $($conflict)*
                    (status = 422, description = "Invalid fields (`validation_failed`), e.g. `read_only` at `/id`", body = emporium_http::Problem, content_type = "application/problem+json"),
                ))]
            pub async fn create(
                State(service): Svc,
                Authenticated(caller): Authenticated,
                Json(body): Json<$rule>,
            ) -> Result<Response, ApiError> {
                if body.id != <$id>::default() {
                    return Err(PricingError::invalid(
                        "/id",
                        "read_only",
                        "the store gives the id; leave it out",
                    )
                    .into());
                }
                let stored = service.create_rule(body, &caller.subject).await?;
                Ok(versioned(StatusCode::CREATED, stored.version, &stored))
            }

            #[doc = concat!("One ", $noun, ".")]
            #[utoipa::path(get, path = $item, operation_id = concat!("getAdmin", $one), tag = "admin",
                params(("id" = $id, Path, description = "Id")),
                responses(
                    (status = 200, description = "Found", body = Stored<$rule>),
                    (status = 404, description = concat!("No such ", $noun, " (`pricing_rule_not_found`)"), body = emporium_http::Problem, content_type = "application/problem+json"),
                ))]
            pub async fn get(State(service): Svc, Path(id): Path<$id>) -> Result<Response, ApiError> {
                let stored = service.get_rule::<$rule>(id.0).await?;
                Ok(versioned(StatusCode::OK, stored.version, &stored))
            }

            #[doc = concat!("Replaces a ", $noun, " whole (a body as for creating it).")]
            #[utoipa::path(put, path = $item, operation_id = concat!("replaceAdmin", $one), tag = "admin", request_body = $rule,
                params(("id" = $id, Path, description = "Id"),
                    ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when it changed since")),
                responses(
                    (status = 200, description = "Replaced", body = Stored<$rule>),
                    (status = 404, description = concat!("No such ", $noun, " (`pricing_rule_not_found`)"), body = emporium_http::Problem, content_type = "application/problem+json"),
                    $($conflict)*
                    (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
                    (status = 422, description = "Invalid fields (`validation_failed`), e.g. `read_only` at `/id` naming another rule", body = emporium_http::Problem, content_type = "application/problem+json"),
                ))]
            pub async fn replace(
                State(service): Svc,
                Authenticated(caller): Authenticated,
                Path(id): Path<$id>,
                headers: HeaderMap,
                Json(body): Json<$rule>,
            ) -> Result<Response, ApiError> {
                let stored = service
                    .replace_rule(id.0, body, if_match_version(&headers), &caller.subject)
                    .await?;
                Ok(versioned(StatusCode::OK, stored.version, &stored))
            }

            #[doc = concat!("Deletes a ", $noun, ".")]
            #[utoipa::path(delete, path = $item, operation_id = concat!("deleteAdmin", $one), tag = "admin",
                params(("id" = $id, Path, description = "Id")),
                responses(
                    (status = 204, description = "Deleted"),
                    (status = 404, description = concat!("No such ", $noun, " (`pricing_rule_not_found`)"), body = emporium_http::Problem, content_type = "application/problem+json"),
                ))]
            pub async fn delete(
                State(service): Svc,
                Authenticated(caller): Authenticated,
                Path(id): Path<$id>,
            ) -> Result<StatusCode, ApiError> {
                service.delete_rule::<$rule>(id.0, &caller.subject).await?;
                Ok(StatusCode::NO_CONTENT)
            }
        }
    };
}

rule_routes!(
    price_lists,
    crate::rules::PriceList,
    emporium_kernel::ids::PriceListId,
    "/v1/admin/price-lists",
    "/v1/admin/price-lists/{id}",
    "price list",
    "PriceList",
    "PriceLists",
    []
);
rule_routes!(
    promotions,
    crate::rules::Promotion,
    emporium_kernel::ids::PromotionId,
    "/v1/admin/promotions",
    "/v1/admin/promotions/{id}",
    "promotion",
    "Promotion",
    "Promotions",
    []
);
rule_routes!(
    tax_rates,
    crate::rules::TaxRate,
    emporium_kernel::ids::TaxRateId,
    "/v1/admin/tax-rates",
    "/v1/admin/tax-rates/{id}",
    "tax rate",
    "TaxRate",
    "TaxRates",
    [(
        status = 409,
        description = "A tax rate for this country and state exists (`tax_region_taken`)",
        body = emporium_http::Problem,
        content_type = "application/problem+json"
    ),]
);
rule_routes!(
    shipping_options,
    crate::rules::ShippingOption,
    emporium_kernel::ids::ShippingOptionId,
    "/v1/admin/shipping-options",
    "/v1/admin/shipping-options/{id}",
    "shipping option",
    "ShippingOption",
    "ShippingOptions",
    []
);

/// Lists coupons by id.
#[utoipa::path(get, path = "/v1/admin/coupons", operation_id = "listAdminCoupons", tag = "admin", params(PageQuery),
    responses(
        (status = 200, description = "A page of coupons", body = Page<Coupon>),
        (status = 422, description = "A bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_coupons(
    State(service): Svc,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<Page<Coupon>>, ApiError> {
    Ok(axum::Json(
        service.list_coupons(q.cursor.as_deref(), q.limit).await?,
    ))
}

/// Creates a coupon code for a promotion (the promotion should need a coupon).
#[utoipa::path(post, path = "/v1/admin/coupons", operation_id = "createAdminCoupon", tag = "admin", request_body = CreateCoupon,
    responses(
        (status = 201, description = "Created", body = Coupon),
        (status = 409, description = "Another coupon has the code (`coupon_code_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`), e.g. an unknown promotion", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_coupon(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Json(body): Json<CreateCoupon>,
) -> Result<(StatusCode, axum::Json<Coupon>), ApiError> {
    let coupon = service.create_coupon(body, &caller.subject).await?;
    Ok((StatusCode::CREATED, axum::Json(coupon)))
}

/// One coupon, with its use count.
#[utoipa::path(get, path = "/v1/admin/coupons/{id}", operation_id = "getAdminCoupon", tag = "admin",
    params(("id" = CouponId, Path, description = "Coupon id")),
    responses(
        (status = 200, description = "The coupon", body = Coupon),
        (status = 404, description = "No such coupon (`coupon_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_coupon(
    State(service): Svc,
    Path(id): Path<CouponId>,
) -> Result<axum::Json<Coupon>, ApiError> {
    Ok(axum::Json(service.get_coupon(id).await?))
}

/// Deletes a coupon and its redemption history.
#[utoipa::path(delete, path = "/v1/admin/coupons/{id}", operation_id = "deleteAdminCoupon", tag = "admin",
    params(("id" = CouponId, Path, description = "Coupon id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such coupon (`coupon_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_coupon(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Path(id): Path<CouponId>,
) -> Result<StatusCode, ApiError> {
    service.delete_coupon(id, &caller.subject).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /v1/admin/pricing/quote`: a cart described in full, and coupon codes as a
/// shopper would type them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    pub cart: Cart,
    #[serde(default)]
    pub coupon_codes: Vec<String>,
}

/// Quotes a cart under the stored rules, as the checkout would.
#[utoipa::path(post, path = "/v1/admin/pricing/quote", operation_id = "previewAdminQuote", tag = "admin", request_body = QuoteRequest,
    responses(
        (status = 200, description = "The quote", body = Quote),
        (status = 422, description = "Invalid fields (`validation_failed`), e.g. `out_of_range` at `/cart/items/0/quantity`, `too_long` at `/cart/items`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn preview_quote(
    State(service): Svc,
    Json(body): Json<QuoteRequest>,
) -> Result<axum::Json<Quote>, ApiError> {
    let quote = service
        .quote(body.cart, &body.coupon_codes)
        .await?
        .map_err(|e| {
            let (pointer, code) = match e {
                crate::QuoteError::Quantity { index } => {
                    (format!("/cart/items/{index}/quantity"), "out_of_range")
                }
                crate::QuoteError::UnitPrice { index } => {
                    (format!("/cart/items/{index}/unit_price"), "out_of_range")
                }
                crate::QuoteError::Weight { index } => {
                    (format!("/cart/items/{index}/weight_grams"), "too_small")
                }
                crate::QuoteError::TooManyItems => ("/cart/items".to_owned(), "too_long"),
            };
            PricingError::invalid(&pointer, code, e.to_string())
        })?;
    Ok(axum::Json(quote))
}
