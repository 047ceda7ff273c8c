//! The catalog's HTTP routes: staff under `/v1/admin`, storefront under `/v1/store`.

pub mod admin;
pub mod store;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::reads::CatalogReads;
use crate::service::CatalogService;

pub use admin::ADMIN_RULES;

/// Everything the catalog routes need.
#[derive(Clone)]
pub struct CatalogState {
    pub service: Arc<CatalogService>,
    pub reads: Arc<CatalogReads>,
}

/// The catalog's routes and their OpenAPI descriptions.
pub fn router(state: CatalogState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(admin::list_products, admin::create_product))
        .routes(routes!(
            admin::get_product,
            admin::update_product,
            admin::delete_product
        ))
        .routes(routes!(admin::list_variants, admin::add_variant))
        .routes(routes!(
            admin::get_variant,
            admin::update_variant,
            admin::delete_variant
        ))
        .routes(routes!(admin::list_categories, admin::create_category))
        .routes(routes!(
            admin::get_category,
            admin::update_category,
            admin::delete_category
        ))
        .routes(routes!(admin::list_collections, admin::create_collection))
        .routes(routes!(
            admin::get_collection,
            admin::update_collection,
            admin::delete_collection
        ))
        .routes(routes!(store::list_products))
        .routes(routes!(store::get_product))
        .routes(routes!(store::category_tree))
        .with_state(state)
}
