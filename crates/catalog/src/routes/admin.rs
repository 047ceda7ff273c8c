//! Staff routes: products, variants, categories and collections (media uploads are in
//! [`super::media`]). Writes take `If-Match` (the ETag of the version read) and answer 412 when
//! it is stale. Access is decided by [`ADMIN_RULES`] in the admin guard, not here.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emporium_http::admin::AdminRule;
use emporium_http::conditional::{if_match_version, version_etag};
use emporium_http::{ApiError, Json, Path, Query};
use emporium_kernel::Page;
use emporium_kernel::auth::Role;
use emporium_kernel::ids::{CategoryId, CollectionId, ProductId, VariantId};
use serde::{Deserialize, Serialize};

use super::CatalogState;
use crate::api::{Category, Collection, Product, ProductStatus, Variant};
use crate::error::CatalogError;
use crate::media;
use crate::service::{
    AdminListQuery, CategoryPatch, CollectionInput, NewCategory, NewProduct, NewVariant,
    ProductPatch, VariantPatch,
};

const READ: &str = "catalog:read";
const WRITE: &str = "catalog:write";

/// Who may call each catalog admin route: any staff user, or API clients with the catalog scopes.
pub const ADMIN_RULES: &[AdminRule] = &[
    AdminRule::staff_or_client("GET", "/v1/admin/products", Role::Staff, READ),
    AdminRule::staff_or_client("POST", "/v1/admin/products", Role::Staff, WRITE),
    AdminRule::staff_or_client("GET", "/v1/admin/products/{id}", Role::Staff, READ),
    AdminRule::staff_or_client("PATCH", "/v1/admin/products/{id}", Role::Staff, WRITE),
    AdminRule::staff_or_client("DELETE", "/v1/admin/products/{id}", Role::Staff, WRITE),
    AdminRule::staff_or_client("GET", "/v1/admin/products/{id}/variants", Role::Staff, READ),
    AdminRule::staff_or_client(
        "POST",
        "/v1/admin/products/{id}/variants",
        Role::Staff,
        WRITE,
    ),
    AdminRule::staff_or_client(
        "GET",
        "/v1/admin/products/{id}/variants/{variant_id}",
        Role::Staff,
        READ,
    ),
    AdminRule::staff_or_client(
        "PATCH",
        "/v1/admin/products/{id}/variants/{variant_id}",
        Role::Staff,
        WRITE,
    ),
    AdminRule::staff_or_client(
        "DELETE",
        "/v1/admin/products/{id}/variants/{variant_id}",
        Role::Staff,
        WRITE,
    ),
    AdminRule::staff_or_client("POST", "/v1/admin/products/{id}/media", Role::Staff, WRITE),
    AdminRule::staff_or_client(
        "DELETE",
        "/v1/admin/products/{id}/media/{media_id}",
        Role::Staff,
        WRITE,
    ),
    AdminRule::staff_or_client("GET", "/v1/admin/categories", Role::Staff, READ),
    AdminRule::staff_or_client("POST", "/v1/admin/categories", Role::Staff, WRITE),
    AdminRule::staff_or_client("GET", "/v1/admin/categories/{id}", Role::Staff, READ),
    AdminRule::staff_or_client("PATCH", "/v1/admin/categories/{id}", Role::Staff, WRITE),
    AdminRule::staff_or_client("DELETE", "/v1/admin/categories/{id}", Role::Staff, WRITE),
    AdminRule::staff_or_client("GET", "/v1/admin/collections", Role::Staff, READ),
    AdminRule::staff_or_client("POST", "/v1/admin/collections", Role::Staff, WRITE),
    AdminRule::staff_or_client("GET", "/v1/admin/collections/{id}", Role::Staff, READ),
    AdminRule::staff_or_client("PATCH", "/v1/admin/collections/{id}", Role::Staff, WRITE),
    AdminRule::staff_or_client("DELETE", "/v1/admin/collections/{id}", Role::Staff, WRITE),
];

type St = State<CatalogState>;

/// A JSON answer carrying the resource's version as its ETag.
fn versioned<T: Serialize>(status: StatusCode, version: i64, body: &T) -> Response {
    (
        status,
        [(header::ETAG, version_etag(version))],
        axum::Json(body),
    )
        .into_response()
}

fn variant_of(product: &Product, id: VariantId) -> Result<&Variant, CatalogError> {
    product
        .variants
        .iter()
        .find(|v| v.id == id)
        .ok_or(CatalogError::VariantNotFound)
}

/// Query of the staff product list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminProductQuery {
    /// Only products in this status.
    pub status: Option<ProductStatus>,
    /// Only products whose title contains this text (case-insensitive).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Only products in this category or its descendants.
    pub category: Option<CategoryId>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Query of the collection list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Every product in any status, newest first.
#[utoipa::path(get, path = "/v1/admin/products", operation_id = "listAdminProducts", tag = "admin", params(AdminProductQuery),
    responses(
        (status = 200, description = "A page of products", body = Page<Product>),
        (status = 404, description = "The `category` filter names no category (`category_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `limit`, `cursor` or `q` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_products(
    State(s): St,
    Query(q): Query<AdminProductQuery>,
) -> Result<axum::Json<Page<Product>>, ApiError> {
    Ok(axum::Json(
        s.service
            .list_products(AdminListQuery {
                status: q.status,
                q: q.q,
                category: q.category,
                cursor: q.cursor,
                limit: q.limit,
            })
            .await?,
    ))
}

/// Creates a product with its variants and prices.
#[utoipa::path(post, path = "/v1/admin/products", operation_id = "createAdminProduct", tag = "admin", request_body = NewProduct,
    responses(
        (status = 201, description = "Created; `ETag` is its version", body = Product),
        (status = 409, description = "Another product has the handle (`handle_taken`) or another variant the SKU (`sku_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`), e.g. an unknown category or collection", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_product(
    State(s): St,
    Json(body): Json<NewProduct>,
) -> Result<Response, ApiError> {
    let product = s.service.create_product(body).await?;
    Ok(versioned(StatusCode::CREATED, product.version, &product))
}

/// One product in any status, with availability.
#[utoipa::path(get, path = "/v1/admin/products/{id}", operation_id = "getAdminProduct", tag = "admin",
    params(("id" = ProductId, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product; `ETag` is its version", body = Product),
        (status = 404, description = "No such product (`product_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_product(State(s): St, Path(id): Path<ProductId>) -> Result<Response, ApiError> {
    let product = s.service.get_product(id).await?;
    Ok(versioned(StatusCode::OK, product.version, &product))
}

/// Changes a product's fields, status or links (absent fields stay; lists replace).
#[utoipa::path(patch, path = "/v1/admin/products/{id}", operation_id = "updateAdminProduct", tag = "admin", request_body = ProductPatch,
    params(("id" = ProductId, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the product changed since")),
    responses(
        (status = 200, description = "The product as changed", body = Product),
        (status = 404, description = "No such product (`product_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another product has the handle (`handle_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_product(
    State(s): St,
    Path(id): Path<ProductId>,
    headers: HeaderMap,
    Json(body): Json<ProductPatch>,
) -> Result<Response, ApiError> {
    let product = s
        .service
        .update_product(id, body, if_match_version(&headers))
        .await?;
    Ok(versioned(StatusCode::OK, product.version, &product))
}

/// Deletes a product, its variants and media (with their files). (To take it off the storefront
/// but keep it, set its status to `archived`.)
#[utoipa::path(delete, path = "/v1/admin/products/{id}", operation_id = "deleteAdminProduct", tag = "admin",
    params(("id" = ProductId, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the product changed since")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such product (`product_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_product(
    State(s): St,
    Path(id): Path<ProductId>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let keys = s
        .service
        .delete_product(id, if_match_version(&headers))
        .await?;
    // The product is gone; its files follow on a best-effort basis (failures are logged).
    media::delete_objects(&s.media, id, &keys).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A product's variants.
#[utoipa::path(get, path = "/v1/admin/products/{id}/variants", operation_id = "listAdminVariants", tag = "admin",
    params(("id" = ProductId, Path, description = "Product id")),
    responses(
        (status = 200, description = "The variants; `ETag` is the product's version", body = Vec<Variant>),
        (status = 404, description = "No such product (`product_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_variants(State(s): St, Path(id): Path<ProductId>) -> Result<Response, ApiError> {
    let product = s.service.get_product(id).await?;
    Ok(versioned(
        StatusCode::OK,
        product.version,
        &product.variants,
    ))
}

/// Adds a variant.
#[utoipa::path(post, path = "/v1/admin/products/{id}/variants", operation_id = "addAdminVariant", tag = "admin", request_body = NewVariant,
    params(("id" = ProductId, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "The product's ETag; 412 when it changed since")),
    responses(
        (status = 201, description = "The new variant; `ETag` is the product's new version", body = Variant),
        (status = 404, description = "No such product (`product_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another variant has the SKU (`sku_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`), e.g. options that do not fit the product", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_variant(
    State(s): St,
    Path(id): Path<ProductId>,
    headers: HeaderMap,
    Json(body): Json<NewVariant>,
) -> Result<Response, ApiError> {
    let (product, variant_id) = s
        .service
        .add_variant(id, body, if_match_version(&headers))
        .await?;
    Ok(versioned(
        StatusCode::CREATED,
        product.version,
        variant_of(&product, variant_id)?,
    ))
}

/// One variant.
#[utoipa::path(get, path = "/v1/admin/products/{id}/variants/{variant_id}", operation_id = "getAdminVariant", tag = "admin",
    params(("id" = ProductId, Path, description = "Product id"), ("variant_id" = VariantId, Path, description = "Variant id")),
    responses(
        (status = 200, description = "The variant; `ETag` is the product's version", body = Variant),
        (status = 404, description = "No such product or variant on it (`product_not_found`, `variant_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_variant(
    State(s): St,
    Path((id, variant_id)): Path<(ProductId, VariantId)>,
) -> Result<Response, ApiError> {
    let product = s.service.get_product(id).await?;
    Ok(versioned(
        StatusCode::OK,
        product.version,
        variant_of(&product, variant_id)?,
    ))
}

/// Changes a variant (absent fields stay; `prices` replaces the list).
#[utoipa::path(patch, path = "/v1/admin/products/{id}/variants/{variant_id}", operation_id = "updateAdminVariant", tag = "admin", request_body = VariantPatch,
    params(("id" = ProductId, Path, description = "Product id"), ("variant_id" = VariantId, Path, description = "Variant id"),
        ("If-Match" = Option<String>, Header, description = "The product's ETag; 412 when it changed since")),
    responses(
        (status = 200, description = "The variant as changed", body = Variant),
        (status = 404, description = "No such product or variant on it (`product_not_found`, `variant_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another variant has the SKU (`sku_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_variant(
    State(s): St,
    Path((id, variant_id)): Path<(ProductId, VariantId)>,
    headers: HeaderMap,
    Json(body): Json<VariantPatch>,
) -> Result<Response, ApiError> {
    let product = s
        .service
        .update_variant(id, variant_id, body, if_match_version(&headers))
        .await?;
    Ok(versioned(
        StatusCode::OK,
        product.version,
        variant_of(&product, variant_id)?,
    ))
}

/// Removes a variant.
#[utoipa::path(delete, path = "/v1/admin/products/{id}/variants/{variant_id}", operation_id = "deleteAdminVariant", tag = "admin",
    params(("id" = ProductId, Path, description = "Product id"), ("variant_id" = VariantId, Path, description = "Variant id"),
        ("If-Match" = Option<String>, Header, description = "The product's ETag; 412 when it changed since")),
    responses(
        (status = 204, description = "Removed; `ETag` is the product's new version"),
        (status = 404, description = "No such product or variant on it (`product_not_found`, `variant_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_variant(
    State(s): St,
    Path((id, variant_id)): Path<(ProductId, VariantId)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let product = s
        .service
        .delete_variant(id, variant_id, if_match_version(&headers))
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::ETAG, version_etag(product.version))],
    )
        .into_response())
}

/// Every category, flat, parents before children.
#[utoipa::path(get, path = "/v1/admin/categories", operation_id = "listAdminCategories", tag = "admin",
    responses((status = 200, description = "All categories", body = Vec<Category>)))]
pub async fn list_categories(State(s): St) -> Result<axum::Json<Vec<Category>>, ApiError> {
    Ok(axum::Json(s.service.list_categories().await?))
}

/// Creates a category.
#[utoipa::path(post, path = "/v1/admin/categories", operation_id = "createAdminCategory", tag = "admin", request_body = NewCategory,
    responses(
        (status = 201, description = "Created", body = Category),
        (status = 409, description = "Another category or collection has the handle (`handle_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`), e.g. `unknown_category` at `/parent_id`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_category(
    State(s): St,
    Json(body): Json<NewCategory>,
) -> Result<Response, ApiError> {
    let category = s.service.create_category(body).await?;
    Ok(versioned(StatusCode::CREATED, category.version, &category))
}

/// One category.
#[utoipa::path(get, path = "/v1/admin/categories/{id}", operation_id = "getAdminCategory", tag = "admin",
    params(("id" = CategoryId, Path, description = "Category id")),
    responses(
        (status = 200, description = "The category", body = Category),
        (status = 404, description = "No such category (`category_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_category(State(s): St, Path(id): Path<CategoryId>) -> Result<Response, ApiError> {
    let category = s.service.get_category(id).await?;
    Ok(versioned(StatusCode::OK, category.version, &category))
}

/// Renames, re-orders or moves a category (`parent_id: null` moves it to the root).
#[utoipa::path(patch, path = "/v1/admin/categories/{id}", operation_id = "updateAdminCategory", tag = "admin", request_body = CategoryPatch,
    params(("id" = CategoryId, Path, description = "Category id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the category changed since")),
    responses(
        (status = 200, description = "The category as changed", body = Category),
        (status = 404, description = "No such category (`category_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another category or collection has the handle (`handle_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`), e.g. `category_cycle` at `/parent_id`", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_category(
    State(s): St,
    Path(id): Path<CategoryId>,
    headers: HeaderMap,
    Json(body): Json<CategoryPatch>,
) -> Result<Response, ApiError> {
    let category = s
        .service
        .update_category(id, body, if_match_version(&headers))
        .await?;
    Ok(versioned(StatusCode::OK, category.version, &category))
}

/// Deletes a category without children; its products leave it.
#[utoipa::path(delete, path = "/v1/admin/categories/{id}", operation_id = "deleteAdminCategory", tag = "admin",
    params(("id" = CategoryId, Path, description = "Category id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the category changed since")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such category (`category_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The category has child categories (`category_has_children`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_category(
    State(s): St,
    Path(id): Path<CategoryId>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    s.service
        .delete_category(id, if_match_version(&headers))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Collections, oldest first.
#[utoipa::path(get, path = "/v1/admin/collections", operation_id = "listAdminCollections", tag = "admin", params(PageQuery),
    responses(
        (status = 200, description = "A page of collections", body = Page<Collection>),
        (status = 422, description = "A bad `limit` or `cursor` (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_collections(
    State(s): St,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<Page<Collection>>, ApiError> {
    Ok(axum::Json(
        s.service
            .list_collections(q.cursor.as_deref(), q.limit)
            .await?,
    ))
}

/// Creates a collection.
#[utoipa::path(post, path = "/v1/admin/collections", operation_id = "createAdminCollection", tag = "admin", request_body = CollectionInput,
    responses(
        (status = 201, description = "Created", body = Collection),
        (status = 409, description = "Another category or collection has the handle (`handle_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_collection(
    State(s): St,
    Json(body): Json<CollectionInput>,
) -> Result<Response, ApiError> {
    let collection = s.service.create_collection(body).await?;
    Ok(versioned(
        StatusCode::CREATED,
        collection.version,
        &collection,
    ))
}

/// One collection.
#[utoipa::path(get, path = "/v1/admin/collections/{id}", operation_id = "getAdminCollection", tag = "admin",
    params(("id" = CollectionId, Path, description = "Collection id")),
    responses(
        (status = 200, description = "The collection", body = Collection),
        (status = 404, description = "No such collection (`collection_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_collection(
    State(s): St,
    Path(id): Path<CollectionId>,
) -> Result<Response, ApiError> {
    let collection = s.service.get_collection(id).await?;
    Ok(versioned(StatusCode::OK, collection.version, &collection))
}

/// Changes a collection (absent fields stay).
#[utoipa::path(patch, path = "/v1/admin/collections/{id}", operation_id = "updateAdminCollection", tag = "admin", request_body = CollectionInput,
    params(("id" = CollectionId, Path, description = "Collection id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the collection changed since")),
    responses(
        (status = 200, description = "The collection as changed", body = Collection),
        (status = 404, description = "No such collection (`collection_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another category or collection has the handle (`handle_taken`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`validation_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_collection(
    State(s): St,
    Path(id): Path<CollectionId>,
    headers: HeaderMap,
    Json(body): Json<CollectionInput>,
) -> Result<Response, ApiError> {
    let collection = s
        .service
        .update_collection(id, body, if_match_version(&headers))
        .await?;
    Ok(versioned(StatusCode::OK, collection.version, &collection))
}

/// Deletes a collection; its products leave it.
#[utoipa::path(delete, path = "/v1/admin/collections/{id}", operation_id = "deleteAdminCollection", tag = "admin",
    params(("id" = CollectionId, Path, description = "Collection id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the collection changed since")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such collection (`collection_not_found`)", body = emporium_http::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The `If-Match` ETag is not the current version (`precondition_failed`)", body = emporium_http::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_collection(
    State(s): St,
    Path(id): Path<CollectionId>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    s.service
        .delete_collection(id, if_match_version(&headers))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
