//! Storefront routes: `POST /v1/store/carts/{id}/checkout` (with `Idempotency-Key`),
//! `GET /v1/store/orders` (the customer's) and `GET /v1/store/orders/{id}` (the customer's, or
//! a guest's with `X-Order-Token`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use emporium_cart::{Access, CART_TOKEN_HEADER};
use emporium_http::{ApiError, Json, Path};
use emporium_kernel::auth::{Actor, Principal};
use emporium_kernel::ids::{CartId, OrderId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::checkout::{CheckoutOutcome, CheckoutRequest, CheckoutService, PlacedOrder};
use crate::order::Order;
use crate::orders::OrderService;

/// The header that carries an order's token.
pub const ORDER_TOKEN_HEADER: &str = "x-order-token";

/// What the routes need.
#[derive(Clone)]
pub struct OrderingState {
    pub checkout: Arc<CheckoutService>,
    pub orders: Arc<OrderService>,
}

/// Every ordering route, with its OpenAPI description.
pub fn router(state: OrderingState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
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
#[utoipa::path(post, path = "/v1/store/carts/{id}/checkout", tag = "store",
    request_body = CheckoutRequest,
    params(("id" = CartId, Path, description = "Cart id"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 characters, unique per attempt"),
        ("X-Cart-Token" = Option<String>, Header, description = "The cart's token")),
    responses(
        (status = 201, description = "The order and its token", body = PlacedOrder),
        (status = 400, description = "`idempotency_key_missing`", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 402, description = "`payment_declined`", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`out_of_stock`, `checkout_in_progress`", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`checkout_incomplete`, `cart_empty`, `coupon_not_applicable`, `idempotency_key_reused`", body = emporium_http::Problem, content_type = "application/problem+json"),
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
#[utoipa::path(get, path = "/v1/store/orders", tag = "store",
    responses((status = 200, description = "Orders", body = Vec<Order>)))]
pub async fn list_orders(
    State(state): State<OrderingState>,
    emporium_http::Customer(customer): emporium_http::Customer,
) -> Result<axum::Json<Vec<Order>>, ApiError> {
    Ok(axum::Json(
        state.orders.list_for_customer(&customer.subject).await?,
    ))
}

/// One order: the customer's own, or a guest's with its `X-Order-Token`.
#[utoipa::path(get, path = "/v1/store/orders/{id}", tag = "store",
    params(("id" = OrderId, Path, description = "Order id"),
        ("X-Order-Token" = Option<String>, Header, description = "The order's token (guests)")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "`order_not_found`", body = emporium_http::Problem, content_type = "application/problem+json"),
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
