//! Staff routes: customers, staff users and API clients. Access is decided by [`ADMIN_RULES`]
//! in the admin guard, not here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use emporium_http::admin::AdminRule;
use emporium_http::{ApiError, Authenticated, Json, PageQuery, Path, Query};
use emporium_kernel::auth::Role;
use serde::Deserialize;

use crate::api::{ApiClient, Customer, NewApiClient, Page, StaffUser};
use crate::domain::{ApiClientId, CustomerId, StaffUserId};
use crate::service::{CreateApiClient, CreateStaffUser, IdentityService, UpdateStaffUser};

/// Who may call each identity admin route.
pub const ADMIN_RULES: &[AdminRule] = &[
    AdminRule::staff_or_client("GET", "/v1/admin/customers", Role::Staff, "customers:read"),
    AdminRule::staff_or_client(
        "GET",
        "/v1/admin/customers/{id}",
        Role::Staff,
        "customers:read",
    ),
    AdminRule::staff("PUT", "/v1/admin/customers/{id}/groups", Role::Admin),
    AdminRule::staff("GET", "/v1/admin/users", Role::Admin),
    AdminRule::staff("POST", "/v1/admin/users", Role::Owner),
    AdminRule::staff("GET", "/v1/admin/users/{id}", Role::Admin),
    AdminRule::staff("PATCH", "/v1/admin/users/{id}", Role::Owner),
    AdminRule::staff("DELETE", "/v1/admin/users/{id}", Role::Owner),
    AdminRule::staff("GET", "/v1/admin/api-clients", Role::Admin),
    AdminRule::staff("POST", "/v1/admin/api-clients", Role::Admin),
    AdminRule::staff("DELETE", "/v1/admin/api-clients/{id}", Role::Admin),
];

type Svc = State<Arc<IdentityService>>;

/// Query of the customer list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomerListQuery {
    /// Only customers whose e-mail address contains this text (case-insensitive).
    pub email: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// Lists customers, newest first.
#[utoipa::path(get, path = "/v1/admin/customers", operation_id = "listAdminCustomers", tag = "admin", params(CustomerListQuery),
    responses(
        (status = 200, description = "A page of customers", body = Page<Customer>),
        (status = 422, description = "A bad `email`, `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_customers(
    State(service): Svc,
    Query(q): Query<CustomerListQuery>,
) -> Result<axum::Json<Page<Customer>>, ApiError> {
    Ok(axum::Json(
        service
            .list_customers(q.email.as_deref(), q.cursor.as_deref(), q.limit)
            .await?,
    ))
}

/// One customer.
#[utoipa::path(get, path = "/v1/admin/customers/{id}", operation_id = "getAdminCustomer", tag = "admin",
    params(("id" = CustomerId, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The customer", body = Customer),
        (status = 404, description = "No such customer (`customer_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_customer(
    State(service): Svc,
    Path(id): Path<CustomerId>,
) -> Result<axum::Json<Customer>, ApiError> {
    Ok(axum::Json(service.get_customer(id).await?))
}

/// Body of `PUT /v1/admin/customers/{id}/groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerGroupsBody {
    /// Every group of the customer (replacing the ones before): names of 1 to 64 lower-case
    /// letters, digits, `-` or `_`, at most 20.
    #[schema(max_items = 20)]
    pub groups: Vec<String>,
}

/// Sets a customer's groups (admins). Price lists and promotions for a group apply to the
/// customer's carts from then on.
#[utoipa::path(put, path = "/v1/admin/customers/{id}/groups", operation_id = "setAdminCustomerGroups", tag = "admin",
    request_body = CustomerGroupsBody,
    params(("id" = CustomerId, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The customer, with the groups now", body = Customer),
        (status = 404, description = "No such customer (`customer_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid group names or too many groups (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_customer_groups(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Path(id): Path<CustomerId>,
    Json(body): Json<CustomerGroupsBody>,
) -> Result<axum::Json<Customer>, ApiError> {
    Ok(axum::Json(
        service
            .set_customer_groups(id, &body.groups, &caller.subject)
            .await?,
    ))
}

/// Lists staff users, newest first.
#[utoipa::path(get, path = "/v1/admin/users", operation_id = "listAdminUsers", tag = "admin", params(PageQuery),
    responses(
        (status = 200, description = "A page of staff users", body = Page<StaffUser>),
        (status = 422, description = "A bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    State(service): Svc,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<Page<StaffUser>>, ApiError> {
    Ok(axum::Json(
        service.list_staff(q.cursor.as_deref(), q.limit).await?,
    ))
}

/// Body of `POST /v1/admin/users`. Absent text fields read as empty, so one answer lists every
/// missing or invalid field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub role: Role,
}

/// Creates a staff user (owners only).
#[utoipa::path(post, path = "/v1/admin/users", operation_id = "createAdminUser", tag = "admin", request_body = CreateUserBody,
    responses(
        (status = 201, description = "Created", body = StaffUser),
        (status = 409, description = "E-mail address taken (`email_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_user(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Json(body): Json<CreateUserBody>,
) -> Result<(StatusCode, axum::Json<StaffUser>), ApiError> {
    let user = service
        .create_staff(
            CreateStaffUser {
                email: body.email,
                password: body.password,
                name: body.name,
                role: body.role,
            },
            &caller.subject,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

/// One staff user.
#[utoipa::path(get, path = "/v1/admin/users/{id}", operation_id = "getAdminUser", tag = "admin",
    params(("id" = StaffUserId, Path, description = "Staff user id")),
    responses(
        (status = 200, description = "The staff user", body = StaffUser),
        (status = 404, description = "No such staff user (`user_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    State(service): Svc,
    Path(id): Path<StaffUserId>,
) -> Result<axum::Json<StaffUser>, ApiError> {
    Ok(axum::Json(service.get_staff(id).await?))
}

/// Body of `PATCH /v1/admin/users/{id}`; absent fields stay unchanged.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// A lower role ends the user's tokens (it signs in again); a higher one takes effect at its
    /// next refresh.
    pub role: Option<Role>,
    /// A new password ends the user's tokens.
    #[schema(min_length = 10, max_length = 128)]
    pub password: Option<String>,
    /// `true` disables the user (it cannot sign in, and its tokens end); `false` enables it again.
    pub disabled: Option<bool>,
}

/// Changes a staff user's name, role, password or disabled state (owners only). The last owner
/// who is not disabled keeps the role and cannot be disabled.
#[utoipa::path(patch, path = "/v1/admin/users/{id}", operation_id = "updateAdminUser", tag = "admin", request_body = UpdateUserBody,
    params(("id" = StaffUserId, Path, description = "Staff user id")),
    responses(
        (status = 200, description = "Updated", body = StaffUser),
        (status = 404, description = "No such staff user (`user_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner keeps the owner role (`last_owner`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_user(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Path(id): Path<StaffUserId>,
    Json(body): Json<UpdateUserBody>,
) -> Result<axum::Json<StaffUser>, ApiError> {
    let cmd = UpdateStaffUser {
        name: body.name,
        role: body.role,
        password: body.password,
        disabled: body.disabled,
    };
    Ok(axum::Json(
        service.update_staff(id, cmd, &caller.subject).await?,
    ))
}

/// Removes a staff user (owners only). The last owner stays.
#[utoipa::path(delete, path = "/v1/admin/users/{id}", operation_id = "deleteAdminUser", tag = "admin",
    params(("id" = StaffUserId, Path, description = "Staff user id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such staff user (`user_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner stays (`last_owner`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_user(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Path(id): Path<StaffUserId>,
) -> Result<StatusCode, ApiError> {
    service.delete_staff(id, &caller.subject).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists API clients, newest first, revoked ones included.
#[utoipa::path(get, path = "/v1/admin/api-clients", operation_id = "listAdminApiClients", tag = "admin", params(PageQuery),
    responses(
        (status = 200, description = "A page of API clients", body = Page<ApiClient>),
        (status = 422, description = "A bad `cursor` or `limit` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_api_clients(
    State(service): Svc,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<Page<ApiClient>>, ApiError> {
    Ok(axum::Json(
        service.list_clients(q.cursor.as_deref(), q.limit).await?,
    ))
}

/// Body of `POST /v1/admin/api-clients`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiClientBody {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Granted scopes: `customers:read`, `events:read`.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Creates an API client. The response holds its secret, which is never shown again.
#[utoipa::path(post, path = "/v1/admin/api-clients", operation_id = "createAdminApiClient", tag = "admin", request_body = CreateApiClientBody,
    responses(
        (status = 201, description = "Created; keep the secret", body = NewApiClient),
        (status = 422, description = "Invalid fields (`validation_failed`): an empty name, an unknown scope", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_api_client(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Json(body): Json<CreateApiClientBody>,
) -> Result<(StatusCode, axum::Json<NewApiClient>), ApiError> {
    let created = service
        .create_client(
            CreateApiClient {
                name: body.name,
                scopes: body.scopes,
            },
            &caller.subject,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revokes an API client: it gets no new tokens. Idempotent.
#[utoipa::path(delete, path = "/v1/admin/api-clients/{id}", operation_id = "revokeAdminApiClient", tag = "admin",
    params(("id" = ApiClientId, Path, description = "API client id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such API client (`api_client_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_api_client(
    State(service): Svc,
    Authenticated(caller): Authenticated,
    Path(id): Path<ApiClientId>,
) -> Result<StatusCode, ApiError> {
    service.revoke_client(id, &caller.subject).await?;
    Ok(StatusCode::NO_CONTENT)
}
