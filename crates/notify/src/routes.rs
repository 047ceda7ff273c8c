//! Staff routes under `/v1/admin/webhooks`: endpoints, their deliveries, and replays. Access is
//! decided by [`ADMIN_RULES`] in the admin guard; handlers extract, call the service and shape
//! the answer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emporium_http::admin::AdminRule;
use emporium_http::conditional::{if_match_version, version_etag};
use emporium_http::{ApiError, Authenticated, Json, Path, Query};
use emporium_kernel::auth::Role;
use serde::Deserialize;
use tokio::sync::Notify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::Delivery;
use crate::api::{
    DeliveryDetail, DeliveryStatus, Endpoint, EndpointPatch, EndpointWithSecret, NewEndpoint, Page,
    ReplayRange, Replayed, RotateSecret,
};
use crate::domain::{DeliveryId, EndpointId};
use crate::service::WebhookService;

/// Who may call each webhook route: admins and owners (endpoints receive every order's data).
pub const ADMIN_RULES: &[AdminRule] = &[
    AdminRule::staff("GET", "/v1/admin/webhooks", Role::Admin),
    AdminRule::staff("POST", "/v1/admin/webhooks", Role::Admin),
    AdminRule::staff("GET", "/v1/admin/webhooks/{id}", Role::Admin),
    AdminRule::staff("PATCH", "/v1/admin/webhooks/{id}", Role::Admin),
    AdminRule::staff("DELETE", "/v1/admin/webhooks/{id}", Role::Admin),
    AdminRule::staff("POST", "/v1/admin/webhooks/{id}/rotate-secret", Role::Admin),
    AdminRule::staff("GET", "/v1/admin/webhooks/{id}/deliveries", Role::Admin),
    AdminRule::staff(
        "GET",
        "/v1/admin/webhooks/{id}/deliveries/{delivery_id}",
        Role::Admin,
    ),
    AdminRule::staff(
        "POST",
        "/v1/admin/webhooks/{id}/deliveries/{delivery_id}/replay",
        Role::Admin,
    ),
    AdminRule::staff("POST", "/v1/admin/webhooks/{id}/replay", Role::Admin),
];

/// What the routes need: the service, and the deliverer's wake-up for replays.
#[derive(Clone)]
pub struct WebhookState {
    pub service: Arc<WebhookService>,
    pub wake: Arc<Notify>,
}

/// Every webhook route with its OpenAPI description.
pub fn router(state: WebhookState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(replay_delivery))
        .routes(routes!(replay_range))
        .with_state(state)
}

type St = State<WebhookState>;

fn versioned(status: StatusCode, version: i64, body: impl serde::Serialize) -> Response {
    (
        status,
        [(header::ETAG, version_etag(version))],
        axum::Json(body),
    )
        .into_response()
}

/// The query of an endpoint's delivery list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// The query of the endpoint list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndpointQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Lists webhook endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/admin/webhooks", operation_id = "listAdminWebhooks", tag = "admin",
    params(EndpointQuery),
    responses(
        (status = 200, description = "A page of endpoints", body = Page<Endpoint>),
        (status = 422, description = "A bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_endpoints(
    State(s): St,
    Query(q): Query<EndpointQuery>,
) -> Result<axum::Json<Page<Endpoint>>, ApiError> {
    Ok(axum::Json(
        s.service.list(q.cursor.as_deref(), q.limit).await?,
    ))
}

/// Registers a webhook endpoint. The answer shows its signing secret, once.
#[utoipa::path(post, path = "/v1/admin/webhooks", operation_id = "createAdminWebhook", tag = "admin",
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "Created, with its secret", body = EndpointWithSecret),
        (status = 422, description = "Invalid fields (`validation_failed`: `invalid_url`, `destination_not_allowed`, `unknown_event_type`, …)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_endpoint(
    State(s): St,
    Authenticated(caller): Authenticated,
    Json(body): Json<NewEndpoint>,
) -> Result<Response, ApiError> {
    let created = s.service.create(body, &caller.subject).await?;
    let version = created.endpoint.version;
    Ok(versioned(StatusCode::CREATED, version, created))
}

/// One webhook endpoint.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}", operation_id = "getAdminWebhook", tag = "admin",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_endpoint(State(s): St, Path(id): Path<EndpointId>) -> Result<Response, ApiError> {
    let endpoint = s.service.get(id).await?;
    Ok(versioned(StatusCode::OK, endpoint.version, endpoint))
}

/// Changes an endpoint (absent fields stay). Enabling one the store disabled starts its
/// failure count afresh; its pending deliveries are then sent.
#[utoipa::path(patch, path = "/v1/admin/webhooks/{id}", operation_id = "updateAdminWebhook", tag = "admin",
    request_body = EndpointPatch,
    params(("id" = EndpointId, Path, description = "Endpoint id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the endpoint changed since")),
    responses(
        (status = 200, description = "The endpoint as changed", body = Endpoint),
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_endpoint(
    State(s): St,
    Authenticated(caller): Authenticated,
    Path(id): Path<EndpointId>,
    headers: HeaderMap,
    Json(body): Json<EndpointPatch>,
) -> Result<Response, ApiError> {
    let endpoint = s
        .service
        .update(id, body, if_match_version(&headers), &caller.subject)
        .await?;
    s.wake.notify_one();
    Ok(versioned(StatusCode::OK, endpoint.version, endpoint))
}

/// Deletes an endpoint with its deliveries.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", operation_id = "deleteAdminWebhook", tag = "admin",
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_endpoint(
    State(s): St,
    Authenticated(caller): Authenticated,
    Path(id): Path<EndpointId>,
) -> Result<StatusCode, ApiError> {
    s.service.delete(id, &caller.subject).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Draws a new signing secret. The old one keeps signing beside it (two signatures per
/// delivery) for `overlap_secs`, so receivers can switch without losing a delivery.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/rotate-secret", operation_id = "rotateAdminWebhookSecret", tag = "admin",
    request_body = RotateSecret,
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint with its new secret", body = EndpointWithSecret),
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad overlap (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate_secret(
    State(s): St,
    Authenticated(caller): Authenticated,
    Path(id): Path<EndpointId>,
    Json(body): Json<RotateSecret>,
) -> Result<Response, ApiError> {
    let rotated = s.service.rotate(id, body, &caller.subject).await?;
    let version = rotated.endpoint.version;
    Ok(versioned(StatusCode::OK, version, rotated))
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}/deliveries", operation_id = "listAdminWebhookDeliveries", tag = "admin",
    params(("id" = EndpointId, Path, description = "Endpoint id"), DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<Delivery>),
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `status`, `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_deliveries(
    State(s): St,
    Path(id): Path<EndpointId>,
    Query(q): Query<DeliveryQuery>,
) -> Result<axum::Json<Page<Delivery>>, ApiError> {
    Ok(axum::Json(
        s.service
            .deliveries(id, q.status, q.cursor.as_deref(), q.limit)
            .await?,
    ))
}

/// One delivery: its body and every attempt (status, time, the start of each answer).
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}/deliveries/{delivery_id}", operation_id = "getAdminWebhookDelivery", tag = "admin",
    params(("id" = EndpointId, Path, description = "Endpoint id"),
        ("delivery_id" = DeliveryId, Path, description = "Delivery id (the `webhook-id` header)")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 404, description = "No such delivery (`webhook_delivery_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_delivery(
    State(s): St,
    Path((id, delivery)): Path<(EndpointId, DeliveryId)>,
) -> Result<axum::Json<DeliveryDetail>, ApiError> {
    Ok(axum::Json(s.service.delivery(id, delivery).await?))
}

/// Sends one delivery again now (same `webhook-id`), with a fresh retry schedule.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/deliveries/{delivery_id}/replay", operation_id = "replayAdminWebhookDelivery", tag = "admin",
    params(("id" = EndpointId, Path, description = "Endpoint id"),
        ("delivery_id" = DeliveryId, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued"),
        (status = 404, description = "No such delivery (`webhook_delivery_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay_delivery(
    State(s): St,
    Path((id, delivery)): Path<(EndpointId, DeliveryId)>,
) -> Result<StatusCode, ApiError> {
    s.service.replay(id, delivery).await?;
    s.wake.notify_one();
    Ok(StatusCode::ACCEPTED)
}

/// Sends again every delivery of the endpoint made in `[since, until)` (by default the failed
/// ones).
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/replay", operation_id = "replayAdminWebhookRange", tag = "admin",
    request_body = ReplayRange,
    params(("id" = EndpointId, Path, description = "Endpoint id")),
    responses(
        (status = 202, description = "How many were queued", body = Replayed),
        (status = 404, description = "No such endpoint (`webhook_endpoint_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad range (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay_range(
    State(s): St,
    Path(id): Path<EndpointId>,
    Json(body): Json<ReplayRange>,
) -> Result<(StatusCode, axum::Json<Replayed>), ApiError> {
    let replayed = s.service.replay_range(id, body).await?;
    s.wake.notify_one();
    Ok((StatusCode::ACCEPTED, axum::Json(replayed)))
}
