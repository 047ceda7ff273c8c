//! Staff routes under `/v1/admin/inventory`: locations, stock levels, the ledger and
//! reservations. Access is decided by [`ADMIN_RULES`] in the admin guard, not here; handlers only
//! extract, call the service and shape the answer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use emporium_http::admin::AdminRule;
use emporium_http::{ApiError, Authenticated, Json, PageQuery, Path, Query};
use emporium_kernel::auth::Role;
use emporium_kernel::ids::{LocationId, ReservationId, VariantId};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{LedgerEntry, Location, Page, Reservation, StockLevel, VariantStock};
use crate::service::{AdjustLevel, CreateLocation, InventoryService, SetLevel, UpdateLocation};

/// The scope that lets an API client read inventory.
pub const READ_SCOPE: &str = "inventory:read";
/// The scope that lets an API client set and adjust stock levels (e.g. a warehouse system).
pub const WRITE_SCOPE: &str = "inventory:write";

/// Who may call each inventory admin route.
pub const ADMIN_RULES: &[AdminRule] = &[
    AdminRule::staff_or_client(
        "GET",
        "/v1/admin/inventory/locations",
        Role::Staff,
        READ_SCOPE,
    ),
    AdminRule::staff("POST", "/v1/admin/inventory/locations", Role::Staff),
    AdminRule::staff_or_client(
        "GET",
        "/v1/admin/inventory/locations/{id}",
        Role::Staff,
        READ_SCOPE,
    ),
    AdminRule::staff("PATCH", "/v1/admin/inventory/locations/{id}", Role::Staff),
    AdminRule::staff_or_client("GET", "/v1/admin/inventory/levels", Role::Staff, READ_SCOPE),
    AdminRule::staff_or_client(
        "GET",
        "/v1/admin/inventory/low-stock",
        Role::Staff,
        READ_SCOPE,
    ),
    AdminRule::staff_or_client(
        "PUT",
        "/v1/admin/inventory/levels/{variant_id}/{location_id}",
        Role::Staff,
        WRITE_SCOPE,
    ),
    AdminRule::staff_or_client(
        "POST",
        "/v1/admin/inventory/levels/{variant_id}/{location_id}/adjustments",
        Role::Staff,
        WRITE_SCOPE,
    ),
    AdminRule::staff_or_client("GET", "/v1/admin/inventory/ledger", Role::Staff, READ_SCOPE),
    AdminRule::staff_or_client(
        "GET",
        "/v1/admin/inventory/reservations/{id}",
        Role::Staff,
        READ_SCOPE,
    ),
];

/// Every inventory route, with its OpenAPI description, bound to `service`.
pub fn router(service: Arc<InventoryService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_locations, create_location))
        .routes(routes!(get_location, update_location))
        .routes(routes!(get_levels))
        .routes(routes!(list_low_stock))
        .routes(routes!(set_level))
        .routes(routes!(adjust_level))
        .routes(routes!(list_ledger))
        .routes(routes!(get_reservation))
        .with_state(service)
}

type Svc = State<Arc<InventoryService>>;

/// Lists stock locations by code.
#[utoipa::path(get, path = "/v1/admin/inventory/locations", operation_id = "listAdminLocations", tag = "admin", params(PageQuery),
    responses(
        (status = 200, description = "A page of locations", body = Page<Location>),
        (status = 422, description = "A bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_locations(
    State(service): Svc,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<Page<Location>>, ApiError> {
    Ok(axum::Json(
        service.list_locations(q.cursor.as_deref(), q.limit).await?,
    ))
}

/// Body of `POST /v1/admin/inventory/locations`. Absent text fields read as empty, so one answer
/// lists every missing or invalid field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLocationBody {
    /// 1 to 64 of `a-z`, `0-9`, `-`, `_`; unique.
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$")]
    pub code: String,
    /// 1 to 200 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// Creates a stock location.
#[utoipa::path(post, path = "/v1/admin/inventory/locations", operation_id = "createAdminLocation", tag = "admin",
    request_body = CreateLocationBody,
    responses(
        (status = 201, description = "Created", body = Location),
        (status = 409, description = "Another location has the code (`location_code_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_location(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Json(body): Json<CreateLocationBody>,
) -> Result<(StatusCode, axum::Json<Location>), ApiError> {
    let cmd = CreateLocation {
        code: body.code,
        name: body.name,
    };
    let location = service.create_location(cmd, &caller.subject).await?;
    Ok((StatusCode::CREATED, axum::Json(location)))
}

/// One stock location.
#[utoipa::path(get, path = "/v1/admin/inventory/locations/{id}", operation_id = "getAdminLocation", tag = "admin",
    params(("id" = LocationId, Path, description = "Location id")),
    responses(
        (status = 200, description = "The location", body = Location),
        (status = 404, description = "No such location (`location_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_location(
    State(service): Svc,
    Path(id): Path<LocationId>,
) -> Result<axum::Json<Location>, ApiError> {
    Ok(axum::Json(service.get_location(id).await?))
}

/// Body of `PATCH /v1/admin/inventory/locations/{id}`; absent fields stay unchanged.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLocationBody {
    /// 1 to 64 of `a-z`, `0-9`, `-`, `_`; unique.
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$")]
    pub code: Option<String>,
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
}

/// Changes a stock location's code or name.
#[utoipa::path(patch, path = "/v1/admin/inventory/locations/{id}", operation_id = "updateAdminLocation", tag = "admin",
    request_body = UpdateLocationBody,
    params(("id" = LocationId, Path, description = "Location id")),
    responses(
        (status = 200, description = "Updated", body = Location),
        (status = 404, description = "No such location (`location_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another location has the code (`location_code_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_location(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Path(id): Path<LocationId>,
    Json(body): Json<UpdateLocationBody>,
) -> Result<axum::Json<Location>, ApiError> {
    let cmd = UpdateLocation {
        code: body.code,
        name: body.name,
    };
    Ok(axum::Json(
        service.update_location(id, cmd, &caller.subject).await?,
    ))
}

/// Query of the level view.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LevelsQuery {
    /// The variant (`var_…`); required.
    pub variant_id: VariantId,
}

/// The stock of a variant: totals and the level at each location.
#[utoipa::path(get, path = "/v1/admin/inventory/levels", operation_id = "listAdminStockLevels", tag = "admin", params(LevelsQuery),
    responses(
        (status = 200, description = "The variant's stock", body = VariantStock),
        (status = 422, description = "A missing or malformed `variant_id` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_levels(
    State(service): Svc,
    Query(q): Query<LevelsQuery>,
) -> Result<axum::Json<VariantStock>, ApiError> {
    Ok(axum::Json(service.variant_stock(q.variant_id).await?))
}

/// Query of the low-stock list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LowStockQuery {
    /// List variants with fewer units than this available over all locations (1 to
    /// 1 000 000 000); required.
    #[param(minimum = 1, maximum = 1_000_000_000)]
    pub below: i64,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Variants running out: those with fewer than `below` units available over all their
/// locations, fewest first (`locations` is empty in each entry; read a variant's levels for
/// them). Only variants with a stock level at some location are listed.
#[utoipa::path(get, path = "/v1/admin/inventory/low-stock", operation_id = "listAdminLowStock", tag = "admin", params(LowStockQuery),
    responses(
        (status = 200, description = "A page of variants' stock totals", body = Page<VariantStock>),
        (status = 422, description = "A missing or out-of-range `below`, or a bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_low_stock(
    State(service): Svc,
    Query(q): Query<LowStockQuery>,
) -> Result<axum::Json<Page<VariantStock>>, ApiError> {
    Ok(axum::Json(
        service
            .low_stock(q.below, q.cursor.as_deref(), q.limit)
            .await?,
    ))
}

/// Path of a stock level: `/v1/admin/inventory/levels/{variant_id}/{location_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LevelPath {
    /// Variant id
    pub variant_id: VariantId,
    /// Location id
    pub location_id: LocationId,
}

/// Body of `PUT /v1/admin/inventory/levels/{variant_id}/{location_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLevelBody {
    /// Units physically there: 0 to 1 000 000 000, not below what is reserved.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub on_hand: i64,
    /// Why, for the ledger (1 to 200 characters); `set` when absent.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: Option<String>,
}

/// Sets the absolute stock level of a variant at a location, creating it when absent.
#[utoipa::path(put, path = "/v1/admin/inventory/levels/{variant_id}/{location_id}", operation_id = "setAdminStockLevel", tag = "admin",
    request_body = SetLevelBody, params(LevelPath),
    responses(
        (status = 200, description = "The level after the change", body = StockLevel),
        (status = 404, description = "No such location (`location_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "More units are reserved than the new level (`below_reserved`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`), e.g. a negative `on_hand`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_level(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Path(level): Path<LevelPath>,
    Json(body): Json<SetLevelBody>,
) -> Result<axum::Json<StockLevel>, ApiError> {
    let cmd = SetLevel {
        on_hand: body.on_hand,
        reason: body.reason,
    };
    Ok(axum::Json(
        service
            .set_level(level.variant_id, level.location_id, cmd, &caller.subject)
            .await?,
    ))
}

/// Body of `POST /v1/admin/inventory/levels/{variant_id}/{location_id}/adjustments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    /// Units added (positive) or removed (negative); not zero.
    pub delta: i64,
    /// Why, for the ledger: 1 to 200 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// Adds units to, or removes units from, the stock of a variant at a location.
#[utoipa::path(post, path = "/v1/admin/inventory/levels/{variant_id}/{location_id}/adjustments", operation_id = "adjustAdminStockLevel",
    tag = "admin", request_body = AdjustmentBody, params(LevelPath),
    responses(
        (status = 200, description = "The level after the change", body = StockLevel),
        (status = 404, description = "No such location (`location_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The level would fall below what is reserved (`insufficient_stock`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`), e.g. a zero `delta`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn adjust_level(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Path(level): Path<LevelPath>,
    Json(body): Json<AdjustmentBody>,
) -> Result<axum::Json<StockLevel>, ApiError> {
    let cmd = AdjustLevel {
        delta: body.delta,
        reason: body.reason,
    };
    Ok(axum::Json(
        service
            .adjust_level(level.variant_id, level.location_id, cmd, &caller.subject)
            .await?,
    ))
}

/// Query of the ledger.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// Only the entries of this variant (`var_…`).
    pub variant_id: Option<VariantId>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// Lists stock ledger entries, newest first.
#[utoipa::path(get, path = "/v1/admin/inventory/ledger", operation_id = "listAdminLedgerEntries", tag = "admin", params(LedgerQuery),
    responses(
        (status = 200, description = "A page of ledger entries", body = Page<LedgerEntry>),
        (status = 422, description = "A bad `variant_id`, `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_ledger(
    State(service): Svc,
    Query(q): Query<LedgerQuery>,
) -> Result<axum::Json<Page<LedgerEntry>>, ApiError> {
    Ok(axum::Json(
        service
            .list_ledger(q.variant_id, q.cursor.as_deref(), q.limit)
            .await?,
    ))
}

/// One reservation.
#[utoipa::path(get, path = "/v1/admin/inventory/reservations/{id}", operation_id = "getAdminReservation", tag = "admin",
    params(("id" = ReservationId, Path, description = "Reservation id")),
    responses(
        (status = 200, description = "The reservation", body = Reservation),
        (status = 404, description = "No such reservation (`reservation_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_reservation(
    State(service): Svc,
    Path(id): Path<ReservationId>,
) -> Result<axum::Json<Reservation>, ApiError> {
    Ok(axum::Json(service.get_reservation(id).await?))
}
