//! Identity's HTTP surface: `/v1/auth/*`, `/v1/store/me`, the JWKS, and the admin routes for
//! customers, staff users and API clients.

mod admin;
mod auth;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use admin::ADMIN_RULES;

use crate::service::IdentityService;

/// Every identity route, with its OpenAPI description, bound to `service`.
pub fn router(service: Arc<IdentityService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::token))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::jwks))
        .routes(routes!(admin::list_customers))
        .routes(routes!(admin::get_customer))
        .routes(routes!(admin::set_customer_groups))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(
            admin::get_user,
            admin::update_user,
            admin::delete_user
        ))
        .routes(routes!(admin::list_api_clients, admin::create_api_client))
        .routes(routes!(admin::revoke_api_client))
        .with_state(service)
}
