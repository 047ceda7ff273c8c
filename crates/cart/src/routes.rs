//! Storefront routes under `/v1/store/carts`. A cart opens with its token (`X-Cart-Token`,
//! returned once when the cart is created) or, for a customer's cart, with that customer's
//! bearer token. Every answer is the whole cart with its totals.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use emporium_http::{ApiError, Json, Path};
use emporium_kernel::auth::{Actor, Principal};
use emporium_kernel::ids::{CartId, CartItemId, ShippingOptionId, VariantId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::{Access, Address, Cart, CartService, OfferedShipping};

/// The header that carries a cart's token.
pub const CART_TOKEN_HEADER: &str = "x-cart-token";

/// Every cart route, with its OpenAPI description, bound to `service`.
pub fn router(service: Arc<CartService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_cart))
        .routes(routes!(get_cart, update_cart))
        .routes(routes!(add_item))
        .routes(routes!(update_item, remove_item))
        .routes(routes!(list_shipping_options))
        .routes(routes!(choose_shipping_option))
        .routes(routes!(add_coupon))
        .routes(routes!(remove_coupon))
        .routes(routes!(merge_cart))
        .with_state(service)
}

type Svc = State<Arc<CartService>>;

/// Who is asking: the cart token sent, and the customer signed in, if any. Never refuses: the
/// service decides whether they open the cart.
#[derive(Debug, Clone, Default)]
pub struct Shopper {
    token: Option<String>,
    customer: Option<String>,
}

impl Shopper {
    fn access(&self) -> Access<'_> {
        Access {
            token: self.token.as_deref(),
            customer: self.customer.as_deref(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Shopper {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(CART_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned());
        let customer = parts
            .extensions
            .get::<Principal>()
            .filter(|p| p.actor == Actor::Customer)
            .map(|p| p.subject.clone());
        Ok(Self { token, customer })
    }
}

/// Body of `POST /v1/store/carts` (`{}` takes every default).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCartBody {
    /// ISO 4217 code; default `EUR`.
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A new cart and the token that opens it (shown only here).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedCart {
    /// Send as `X-Cart-Token` on every later call for this cart.
    pub token: String,
    pub cart: Cart,
}

/// Opens a cart: a guest's, or, with a customer's bearer token, that customer's.
#[utoipa::path(post, path = "/v1/store/carts", operation_id = "createStoreCart", tag = "store", request_body = CreateCartBody,
    responses(
        (status = 201, description = "The cart and its token", body = CreatedCart),
        (status = 422, description = "Invalid fields (`validation_failed`): an unknown `currency`, a malformed `email`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_cart(
    State(service): Svc,
    shopper: Shopper,
    Json(body): Json<CreateCartBody>,
) -> Result<(StatusCode, axum::Json<CreatedCart>), ApiError> {
    let currency = body.currency.as_deref().unwrap_or("EUR");
    let (cart, token) = service
        .create(currency, body.email, shopper.customer.as_deref())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedCart { token, cart })))
}

/// A cart with its totals.
#[utoipa::path(get, path = "/v1/store/carts/{id}", operation_id = "getStoreCart", tag = "store",
    params(("id" = CartId, Path, description = "Cart id"),
        ("X-Cart-Token" = Option<String>, Header, description = "The cart's token")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_cart(
    State(service): Svc,
    shopper: Shopper,
    Path(id): Path<CartId>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(service.get(id, shopper.access()).await?))
}

/// Body of `PATCH /v1/store/carts/{id}`: absent fields stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCartBody {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub shipping_address: Option<Address>,
}

/// Sets the cart's e-mail and shipping address.
#[utoipa::path(patch, path = "/v1/store/carts/{id}", operation_id = "updateStoreCart", tag = "store", request_body = UpdateCartBody,
    params(("id" = CartId, Path, description = "Cart id")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A checkout holds the cart (`cart_checked_out`), or it changed under this request (`cart_changed`): send it again", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`): a malformed `email` or `shipping_address`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_cart(
    State(service): Svc,
    shopper: Shopper,
    Path(id): Path<CartId>,
    Json(body): Json<UpdateCartBody>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(
        service
            .update_details(id, shopper.access(), body.email, body.shipping_address)
            .await?,
    ))
}

/// Body of `POST /v1/store/carts/{id}/items`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemBody {
    pub variant_id: VariantId,
    /// 1 to 10,000; added to the variant's line when the cart has one.
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: i64,
}

/// Adds units of a variant.
#[utoipa::path(post, path = "/v1/store/carts/{id}/items", operation_id = "addStoreCartItem", tag = "store", request_body = AddItemBody,
    params(("id" = CartId, Path, description = "Cart id")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock (`out_of_stock`): the detail names each variant, what was asked and what is available; A checkout holds the cart (`cart_checked_out`), or it changed under this request (`cart_changed`): send it again", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`): `not_purchasable` or `too_many` at `/variant_id`, a `quantity` out of range", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_item(
    State(service): Svc,
    shopper: Shopper,
    Path(id): Path<CartId>,
    Json(body): Json<AddItemBody>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(
        service
            .add_item(id, shopper.access(), body.variant_id, body.quantity)
            .await?,
    ))
}

/// Body of `PATCH /v1/store/carts/{id}/items/{item_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateItemBody {
    /// 1 to 10,000.
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: i64,
}

/// Sets an item's quantity.
#[utoipa::path(patch, path = "/v1/store/carts/{id}/items/{item_id}", operation_id = "updateStoreCartItem", tag = "store",
    request_body = UpdateItemBody,
    params(("id" = CartId, Path, description = "Cart id"), ("item_id" = CartItemId, Path, description = "Item id")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`); no such item in it (`cart_item_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock (`out_of_stock`); A checkout holds the cart (`cart_checked_out`), or it changed under this request (`cart_changed`): send it again", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A `quantity` out of range (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_item(
    State(service): Svc,
    shopper: Shopper,
    Path((id, item)): Path<(CartId, CartItemId)>,
    Json(body): Json<UpdateItemBody>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(
        service
            .set_item_quantity(id, shopper.access(), item, body.quantity)
            .await?,
    ))
}

/// Removes an item.
#[utoipa::path(delete, path = "/v1/store/carts/{id}/items/{item_id}", operation_id = "removeStoreCartItem", tag = "store",
    params(("id" = CartId, Path, description = "Cart id"), ("item_id" = CartItemId, Path, description = "Item id")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`); no such item in it (`cart_item_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A checkout holds the cart (`cart_checked_out`), or it changed under this request (`cart_changed`): send it again", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_item(
    State(service): Svc,
    shopper: Shopper,
    Path((id, item)): Path<(CartId, CartItemId)>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(
        service.remove_item(id, shopper.access(), item).await?,
    ))
}

/// The shipping options that ship this cart, priced for it.
#[utoipa::path(get, path = "/v1/store/carts/{id}/shipping-options", operation_id = "listStoreCartShippingOptions", tag = "store",
    params(("id" = CartId, Path, description = "Cart id")),
    responses(
        (status = 200, description = "Options", body = Vec<OfferedShipping>),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_shipping_options(
    State(service): Svc,
    shopper: Shopper,
    Path(id): Path<CartId>,
) -> Result<axum::Json<Vec<OfferedShipping>>, ApiError> {
    Ok(axum::Json(
        service.shipping_options(id, shopper.access()).await?,
    ))
}

/// Body of `PUT /v1/store/carts/{id}/shipping-option`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChooseShippingBody {
    pub option_id: ShippingOptionId,
}

/// Chooses one of the offered shipping options.
#[utoipa::path(put, path = "/v1/store/carts/{id}/shipping-option", operation_id = "chooseStoreCartShippingOption", tag = "store",
    request_body = ChooseShippingBody,
    params(("id" = CartId, Path, description = "Cart id")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A checkout holds the cart (`cart_checked_out`), or it changed under this request (`cart_changed`): send it again", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The option does not ship this cart (`validation_failed`, `not_offered` at `/option_id`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn choose_shipping_option(
    State(service): Svc,
    shopper: Shopper,
    Path(id): Path<CartId>,
    Json(body): Json<ChooseShippingBody>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(
        service
            .choose_shipping(id, shopper.access(), body.option_id)
            .await?,
    ))
}

/// Body of `POST /v1/store/carts/{id}/coupons`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCouponBody {
    /// As the shopper typed it; any case. 1 to 64 characters, no control characters.
    #[serde(default)]
    pub code: String,
}

/// Adds a coupon code that applies to the cart.
#[utoipa::path(post, path = "/v1/store/carts/{id}/coupons", operation_id = "addStoreCartCoupon", tag = "store",
    request_body = AddCouponBody,
    params(("id" = CartId, Path, description = "Cart id")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`); no coupon with this code (`coupon_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A checkout holds the cart (`cart_checked_out`), or it changed under this request (`cart_changed`): send it again", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The coupon does not apply to this cart (`coupon_not_applicable`), or a code that is empty, too long or holds a control character (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_coupon(
    State(service): Svc,
    shopper: Shopper,
    Path(id): Path<CartId>,
    Json(body): Json<AddCouponBody>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(
        service.add_coupon(id, shopper.access(), &body.code).await?,
    ))
}

/// Removes a coupon code.
#[utoipa::path(delete, path = "/v1/store/carts/{id}/coupons/{code}", operation_id = "removeStoreCartCoupon", tag = "store",
    params(("id" = CartId, Path, description = "Cart id"), ("code" = String, Path, description = "The code")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 404, description = "No such cart, or neither the token nor the session opens it (`cart_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A checkout holds the cart (`cart_checked_out`), or it changed under this request (`cart_changed`): send it again", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_coupon(
    State(service): Svc,
    shopper: Shopper,
    Path((id, code)): Path<(CartId, String)>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(
        service.remove_coupon(id, shopper.access(), &code).await?,
    ))
}

/// Merges a guest cart (its `X-Cart-Token`) into the signed-in customer's cart; the storefront
/// calls it right after sign-in. Answers the customer's cart.
#[utoipa::path(post, path = "/v1/store/carts/{id}/merge", operation_id = "mergeStoreCart", tag = "store",
    params(("id" = CartId, Path, description = "The guest cart's id"),
        ("X-Cart-Token" = String, Header, description = "The guest cart's token")),
    responses(
        (status = 200, description = "The customer's cart", body = Cart),
        (status = 401, description = "No customer session (`unauthenticated`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token is not a customer's (`customer_token_required`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such guest cart, or the token does not open it (`cart_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A checkout holds the guest cart, its order may be placed, nothing is merged (`cart_checked_out`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The carts have different currencies (`validation_failed`, `currency_mismatch` at `/currency`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn merge_cart(
    State(service): Svc,
    shopper: Shopper,
    emporium_http::Customer(customer): emporium_http::Customer,
    Path(id): Path<CartId>,
) -> Result<axum::Json<Cart>, ApiError> {
    Ok(axum::Json(
        service
            .merge_into_customer(id, shopper.token.as_deref(), &customer.subject)
            .await?,
    ))
}
