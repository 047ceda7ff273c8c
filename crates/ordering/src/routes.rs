//! Storefront routes: `POST /v1/store/carts/{id}/checkout` (with `Idempotency-Key`),
//! `GET /v1/store/orders` (the customer's) and `GET /v1/store/orders/{id}` (the customer's, or
//! a guest's with `X-Order-Token`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use emporium_cart::{Access, CART_TOKEN_HEADER};
use emporium_http::admin::AdminRule;
use emporium_http::{ApiError, Json, PageQuery, Path, Query};
use emporium_kernel::Page;
use emporium_kernel::auth::{Actor, Principal, Role};
use emporium_kernel::ids::{CartId, OrderId, VariantId};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Order, OrderStatus};
use crate::saga::{CheckoutOutcome, CheckoutRequest, CheckoutService, PlacedOrder};
use crate::service::{Action, OrderService};

/// The header that carries an order's token.
pub const ORDER_TOKEN_HEADER: &str = "x-order-token";

/// What the routes need.
#[derive(Clone)]
pub struct OrderingState {
    pub checkout: Arc<CheckoutService>,
    pub orders: Arc<OrderService>,
}

/// The scope that lets an API client read orders.
pub const READ_SCOPE: &str = "orders:read";

/// Who may call each order admin route: staff run the lifecycle, admins refund and cancel.
pub const ADMIN_RULES: &[AdminRule] = &[
    AdminRule::staff_or_client("GET", "/v1/admin/orders", Role::Staff, READ_SCOPE),
    AdminRule::staff_or_client("GET", "/v1/admin/orders/{id}", Role::Staff, READ_SCOPE),
    AdminRule::staff_or_client("GET", "/v1/admin/orders/summary", Role::Staff, READ_SCOPE),
    AdminRule::staff("POST", "/v1/admin/orders/{id}/capture", Role::Staff),
    AdminRule::staff("POST", "/v1/admin/orders/{id}/fulfill", Role::Staff),
    AdminRule::staff("POST", "/v1/admin/orders/{id}/ship", Role::Staff),
    AdminRule::staff("POST", "/v1/admin/orders/{id}/deliver", Role::Staff),
    AdminRule::staff("POST", "/v1/admin/orders/{id}/return", Role::Staff),
    AdminRule::staff("POST", "/v1/admin/orders/{id}/cancel", Role::Admin),
    AdminRule::staff("POST", "/v1/admin/orders/{id}/refund", Role::Admin),
];

/// Every ordering route, with its OpenAPI description.
pub fn router(state: OrderingState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
        .routes(routes!(admin_list_orders))
        .routes(routes!(admin_get_order))
        .routes(routes!(admin_order_summary))
        .routes(routes!(capture_order))
        .routes(routes!(fulfill_order))
        .routes(routes!(ship_order))
        .routes(routes!(deliver_order))
        .routes(routes!(cancel_order))
        .routes(routes!(refund_order))
        .routes(routes!(return_order))
        .with_state(state)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn customer_of(principal: Option<&axum::Extension<Principal>>) -> Option<String> {
    principal
        .filter(|p| p.actor == Actor::Customer)
        .map(|p| p.subject.clone())
}

/// Checks the cart out: reserve stock, redeem coupons, authorise payment, place the order,
/// commit the stock. The same `Idempotency-Key` (also sent concurrently) gets the first answer;
/// with another body it is a 422.
#[utoipa::path(post, path = "/v1/store/carts/{id}/checkout", operation_id = "checkOutStoreCart", tag = "store",
    request_body = CheckoutRequest,
    params(("id" = CartId, Path, description = "Cart id"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 characters, unique per attempt"),
        ("X-Cart-Token" = Option<String>, Header, description = "The cart's token")),
    responses(
        (status = 201, description = "The order and its token", body = PlacedOrder),
        (status = 400, description = "No `Idempotency-Key`, or one longer than 255 characters (`idempotency_key_missing`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 402, description = "The payment was declined (`payment_declined`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock (`out_of_stock`), another checkout of the cart is running (`checkout_in_progress`), the cart was checked out under another key (`cart_checked_out`) or changed while it was read (`cart_changed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The cart cannot be ordered (`checkout_incomplete`, `cart_empty`, `coupon_not_applicable`, `payment_provider_unknown`), the key was used with another body (`idempotency_key_reused`), or invalid fields (`validation_failed`; at `/payment/provider`: `not_enabled` for a provider this store does not take, `invalid_value` for an unknown one)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment provider does not answer (`payment_provider_unavailable`), its breaker is open after repeated failures (`payment_unavailable`, with `Retry-After`), inventory runs apart and does not answer (`inventory_unavailable`), or the checkout stopped half-way and is finished by the server (`checkout_interrupted`): retry with the same key", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn checkout(
    State(state): State<OrderingState>,
    Path(id): Path<CartId>,
    principal: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
    Json(body): Json<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let customer = customer_of(principal.as_ref());
    let access = Access {
        token: header(&headers, CART_TOKEN_HEADER),
        customer: customer.as_deref(),
    };
    let outcome = state
        .checkout
        .checkout(id, access, header(&headers, "idempotency-key"), &body)
        .await?;
    match outcome {
        CheckoutOutcome::Placed(placed) => {
            Ok((StatusCode::CREATED, axum::Json(*placed)).into_response())
        }
        CheckoutOutcome::Failed(failure) => Err(failure.into()),
    }
}

/// The signed-in customer's latest orders, newest first.
#[utoipa::path(get, path = "/v1/store/orders", operation_id = "listStoreOrders", tag = "store", params(PageQuery),
    responses(
        (status = 200, description = "A page of the customer's orders", body = Page<Order>),
        (status = 401, description = "No access token (`unauthenticated`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token is not a customer's (`customer_token_required`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_orders(
    State(state): State<OrderingState>,
    emporium_http::Customer(customer): emporium_http::Customer,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<Page<Order>>, ApiError> {
    Ok(axum::Json(
        state
            .orders
            .list_for_customer(&customer.subject, q.cursor.as_deref(), q.limit)
            .await?,
    ))
}

/// One order: the customer's own, or a guest's with its `X-Order-Token`.
#[utoipa::path(get, path = "/v1/store/orders/{id}", operation_id = "getStoreOrder", tag = "store",
    params(("id" = OrderId, Path, description = "Order id"),
        ("X-Order-Token" = Option<String>, Header, description = "The order's token (guests)")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order, or neither the order token nor the session opens it (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
    principal: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
) -> Result<axum::Json<Order>, ApiError> {
    let customer = customer_of(principal.as_ref());
    Ok(axum::Json(
        state
            .orders
            .get(
                id,
                header(&headers, ORDER_TOKEN_HEADER),
                customer.as_deref(),
            )
            .await?,
    ))
}

/// Query of the staff order list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    pub status: Option<OrderStatus>,
    /// Only orders placed at or after this moment (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub placed_since: Option<time::OffsetDateTime>,
    /// Only orders placed before this moment (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub placed_before: Option<time::OffsetDateTime>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// Orders, newest first, optionally of one status and placed within a time range.
#[utoipa::path(get, path = "/v1/admin/orders", operation_id = "listAdminOrders", tag = "admin", params(OrderListQuery),
    responses(
        (status = 200, description = "A page of orders", body = Page<Order>),
        (status = 422, description = "A bad `status`, `placed_since`, `placed_before`, `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_list_orders(
    State(state): State<OrderingState>,
    Query(q): Query<OrderListQuery>,
) -> Result<axum::Json<Page<Order>>, ApiError> {
    Ok(axum::Json(
        state
            .orders
            .list(
                q.status,
                (q.placed_since, q.placed_before),
                q.cursor.as_deref(),
                q.limit,
            )
            .await?,
    ))
}

/// Query of the order summary.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Count orders placed at or after this moment (RFC 3339), e.g. the start of today.
    #[param(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub since: time::OffsetDateTime,
}

/// How many orders were placed since a moment and their revenue per currency (the totals of
/// those not cancelled, less refunds): the figures of a back-office dashboard, read in one
/// call over the orders placed since then.
#[utoipa::path(get, path = "/v1/admin/orders/summary", operation_id = "summarizeAdminOrders", tag = "admin", params(SummaryQuery),
    responses(
        (status = 200, description = "The summary", body = crate::service::OrderSummary),
        (status = 422, description = "A missing or malformed `since` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_order_summary(
    State(state): State<OrderingState>,
    Query(q): Query<SummaryQuery>,
) -> Result<axum::Json<crate::service::OrderSummary>, ApiError> {
    Ok(axum::Json(state.orders.summary(q.since).await?))
}

/// One order.
#[utoipa::path(get, path = "/v1/admin/orders/{id}", operation_id = "getAdminOrder", tag = "admin",
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_get_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
) -> Result<axum::Json<Order>, ApiError> {
    Ok(axum::Json(state.orders.get_any(id).await?))
}

async fn act(
    state: &OrderingState,
    id: OrderId,
    action: Action,
) -> Result<axum::Json<Order>, ApiError> {
    Ok(axum::Json(state.orders.act(id, action).await?))
}

/// Captures the order's payment: placed → paid.
#[utoipa::path(post, path = "/v1/admin/orders/{id}/capture", operation_id = "captureAdminOrder", tag = "admin",
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow this (`order_transition_illegal`), it changed under this request (`order_changed`), or another capture, cancellation or refund of it is still being settled (`order_action_pending`); the payment refused it (`payment_provider_refused`, `payment_state_conflict`) or another operation holds it (`payment_operation_in_progress`). Nothing moved", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment provider does not answer (`payment_provider_unavailable`): the action stays recorded and recovery settles it; the order answers `order_action_pending` meanwhile", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn capture_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
) -> Result<axum::Json<Order>, ApiError> {
    act(&state, id, Action::Capture).await
}

/// A line and how many of its units.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineQuantity {
    pub variant_id: VariantId,
    pub quantity: i64,
}

/// Body of `POST /v1/admin/orders/{id}/fulfill`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillBody {
    pub lines: Vec<LineQuantity>,
}

/// Fulfils units of lines (partial fulfilment allowed); paid → fulfilled once every unit is.
#[utoipa::path(post, path = "/v1/admin/orders/{id}/fulfill", operation_id = "fulfillAdminOrder", tag = "admin", request_body = FulfillBody,
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow this (`order_transition_illegal`), it changed under this request (`order_changed`), or a money action of it is being settled (`order_action_pending`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A line the order does not have (`not_found` at `/lines/{i}/variant_id`), a quantity below 1 or above what is left to fulfil (`out_of_range` at `/lines/{i}/quantity`), or no lines (`required` at `/lines`): `validation_failed`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn fulfill_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
    Json(body): Json<FulfillBody>,
) -> Result<axum::Json<Order>, ApiError> {
    let lines = body
        .lines
        .into_iter()
        .map(|l| (l.variant_id, l.quantity))
        .collect();
    act(&state, id, Action::Fulfill(lines)).await
}

/// Body of `POST /v1/admin/orders/{id}/ship`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipBody {
    #[serde(default)]
    pub tracking_number: Option<String>,
}

/// Ships a fulfilled order.
#[utoipa::path(post, path = "/v1/admin/orders/{id}/ship", operation_id = "shipAdminOrder", tag = "admin", request_body = ShipBody,
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow this (`order_transition_illegal`), it changed under this request (`order_changed`), or a money action of it is being settled (`order_action_pending`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn ship_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
    Json(body): Json<ShipBody>,
) -> Result<axum::Json<Order>, ApiError> {
    act(&state, id, Action::Ship(body.tracking_number)).await
}

/// Marks a shipped order delivered.
#[utoipa::path(post, path = "/v1/admin/orders/{id}/deliver", operation_id = "deliverAdminOrder", tag = "admin",
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow this (`order_transition_illegal`), it changed under this request (`order_changed`), or a money action of it is being settled (`order_action_pending`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn deliver_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
) -> Result<axum::Json<Order>, ApiError> {
    act(&state, id, Action::Deliver).await
}

/// Body of `POST /v1/admin/orders/{id}/cancel`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    pub reason: String,
}

/// Cancels an order nothing of which was fulfilled: voids its payment, or refunds what was
/// captured.
#[utoipa::path(post, path = "/v1/admin/orders/{id}/cancel", operation_id = "cancelAdminOrder", tag = "admin", request_body = CancelBody,
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow this (`order_transition_illegal`), it changed under this request (`order_changed`), or another capture, cancellation or refund of it is still being settled (`order_action_pending`); the payment refused it (`payment_provider_refused`, `payment_state_conflict`) or another operation holds it (`payment_operation_in_progress`). Nothing moved", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment provider does not answer (`payment_provider_unavailable`): the action stays recorded and recovery settles it; the order answers `order_action_pending` meanwhile", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
    Json(body): Json<CancelBody>,
) -> Result<axum::Json<Order>, ApiError> {
    act(&state, id, Action::Cancel(body.reason)).await
}

/// Body of `POST /v1/admin/orders/{id}/refund`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Minor units; refunds by parts add up to at most what was captured.
    pub amount: i64,
}

/// Refunds part or all of what was captured.
#[utoipa::path(post, path = "/v1/admin/orders/{id}/refund", operation_id = "refundAdminOrder", tag = "admin", request_body = RefundBody,
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow this (`order_transition_illegal`), it changed under this request (`order_changed`), or another capture, cancellation or refund of it is still being settled (`order_action_pending`); the payment refused it (`payment_provider_refused`, `payment_state_conflict`) or another operation holds it (`payment_operation_in_progress`). Nothing moved", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "An `amount` below 1 or above what is left to refund (`validation_failed`, `out_of_range` at `/amount`); more than the payment holds (`payment_amount_too_large`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment provider does not answer (`payment_provider_unavailable`): the action stays recorded and recovery settles it; the order answers `order_action_pending` meanwhile", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn refund_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
    Json(body): Json<RefundBody>,
) -> Result<axum::Json<Order>, ApiError> {
    act(&state, id, Action::Refund(body.amount)).await
}

/// Marks a delivered order returned.
#[utoipa::path(post, path = "/v1/admin/orders/{id}/return", operation_id = "returnAdminOrder", tag = "admin",
    params(("id" = OrderId, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (`order_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow this (`order_transition_illegal`), it changed under this request (`order_changed`), or a money action of it is being settled (`order_action_pending`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn return_order(
    State(state): State<OrderingState>,
    Path(id): Path<OrderId>,
) -> Result<axum::Json<Order>, ApiError> {
    act(&state, id, Action::Return).await
}
