//! The catalog's HTTP routes: staff under `/v1/admin`, storefront under `/v1/store`, and the
//! stored media files under `/media`.

pub mod admin;
pub mod media;
pub mod store;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::media::MediaStore;
use crate::reads::CatalogReads;
use crate::service::CatalogService;

pub use admin::ADMIN_RULES;

/// Everything the catalog routes need.
#[derive(Clone)]
pub struct CatalogState {
    pub service: Arc<CatalogService>,
    pub reads: Arc<CatalogReads>,
    /// Where product media are stored.
    pub media: MediaStore,
    /// The largest media file accepted, in bytes.
    pub media_max_bytes: usize,
}

/// The catalog's routes and their OpenAPI descriptions.
pub fn router(state: CatalogState) -> OpenApiRouter {
    // Uploads get a body limit sized for media files instead of the API's global one.
    let uploads = OpenApiRouter::new()
        .routes(routes!(media::upload_media))
        .route_layer(DefaultBodyLimit::max(media::upload_body_limit(
            state.media_max_bytes,
        )));
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
        .merge(uploads)
        .routes(routes!(media::delete_media))
        .route("/media/{*key}", get(media::serve_media))
        .routes(routes!(store::list_products))
        .routes(routes!(store::get_product))
        .routes(routes!(store::category_tree))
        .with_state(state)
}
