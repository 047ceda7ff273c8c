//! Catalog's use cases: validate, run one transaction (with its outbox events), return plain data.
//!
//! Every product write ends in [`CatalogService::finish`]: it reassembles the product from its
//! tables, stores that document with the next version (only if nobody else wrote in between) and
//! records the event carrying it. Reads then cost one row.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use emporium_db::{Backend, Db, WriteTx};
use emporium_kernel::ids::{CategoryId, CollectionId, MediaId, ProductId, VariantId};
use emporium_kernel::{Clock, Cursor, DomainError, ErrorKind, Money, Page, Violations};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::{
    Category, CategoryRef, Collection, CollectionRef, Media, Product, ProductOption, ProductStatus,
    Variant,
};
use crate::domain::{self, check_description, check_len};
use crate::error::CatalogError;
use crate::events;
use crate::listing::{self, ListFilter, Sort};
use crate::store::{
    self, CategoryRow, CollectionRow, HandleTable, LinkTable, MediaRow, ProductRow, VariantRow,
};

/// The largest page a list returns.
pub const MAX_PAGE: u32 = 100;

/// Body of `POST /v1/admin/products`. Absent text reads as empty so one answer lists every
/// missing field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// URL slug; made from the title when absent.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 50000)]
    pub description: String,
    /// `draft` when absent.
    pub status: Option<ProductStatus>,
    #[serde(default)]
    #[schema(max_items = 5)]
    pub options: Vec<ProductOption>,
    #[serde(default)]
    pub variants: Vec<NewVariant>,
    #[serde(default)]
    pub category_ids: Vec<CategoryId>,
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// A variant to add.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    #[serde(default)]
    #[schema(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        max_length = 100,
        min_length = 1
    )]
    pub sku: String,
    /// Made from the option values when absent.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub weight_grams: i64,
    #[serde(default)]
    pub prices: Vec<Money>,
}

/// Body of `PATCH /v1/admin/products/{id}`: absent fields stay as they are; lists replace.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[schema(min_length = 1, max_length = 500)]
    pub title: Option<String>,
    #[schema(max_length = 50000)]
    pub description: Option<String>,
    pub status: Option<ProductStatus>,
    #[schema(max_items = 5)]
    pub options: Option<Vec<ProductOption>>,
    pub category_ids: Option<Vec<CategoryId>>,
    pub collection_ids: Option<Vec<CollectionId>>,
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH …/variants/{variant_id}`: absent fields stay as they are; `prices` replaces.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantPatch {
    #[schema(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        max_length = 100,
        min_length = 1
    )]
    pub sku: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    pub options: Option<BTreeMap<String, String>>,
    pub weight_grams: Option<i64>,
    pub prices: Option<Vec<Money>>,
    pub position: Option<i64>,
}

/// Body of `POST /v1/admin/categories`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: String,
    pub parent_id: Option<CategoryId>,
    #[serde(default)]
    pub position: i64,
}

/// Body of `PATCH /v1/admin/categories/{id}`. `parent_id: null` moves it to the root.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<CategoryId>)]
    pub parent_id: Option<Option<CategoryId>>,
    pub position: Option<i64>,
}

/// Body of `POST /v1/admin/collections` and of its `PATCH` (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionInput {
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 200)]
    pub handle: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Admin product list filters.
#[derive(Debug, Clone, Default)]
pub struct AdminListQuery {
    pub status: Option<ProductStatus>,
    pub q: Option<String>,
    pub category: Option<CategoryId>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// The product already matched the input; nothing was written.
    Unchanged,
}

/// What kind of change a product write was, deciding its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Created,
    Updated { was: ProductStatus },
}

/// The catalog service: every write and the staff reads.
pub struct CatalogService {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl CatalogService {
    /// A service over `db`.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// The database (for the read side and projections).
    pub fn db(&self) -> &Db {
        &self.db
    }

    // ------------------------------------------------------------ products

    /// Creates a product with its variants, prices and links, in one transaction.
    pub async fn create_product(&self, input: NewProduct) -> Result<Product, CatalogError> {
        let mut tx = self.db.begin_write().await?;
        let product = self.create_product_in(&mut tx, input).await?;
        tx.commit().await?;
        Ok(product)
    }

    /// Creates a product inside `tx` (the bulk import runs many in one transaction, each under
    /// a savepoint).
    pub async fn create_product_in(
        &self,
        tx: &mut WriteTx,
        mut input: NewProduct,
    ) -> Result<Product, CatalogError> {
        let now = self.clock.now();
        validate_new(&mut input)?;
        check_links(tx, &input.category_ids, &input.collection_ids).await?;

        let id = ProductId::generate().0;
        let handle = new_handle(
            tx,
            HandleTable::Products,
            id,
            input.handle.take(),
            &input.title,
            CatalogError::HandleTaken,
        )
        .await?;
        for variant in &input.variants {
            if store::sku_in_use(&mut *tx, &variant.sku, Uuid::nil()).await? {
                return Err(CatalogError::SkuTaken(variant.sku.clone()));
            }
        }
        let rows = new_rows(input, id, handle, now)?;
        store::insert_product(&mut *tx, &rows.product)
            .await
            .map_err(|e| unique_or(e, || CatalogError::HandleTaken(rows.product.handle.clone())))?;
        for vrow in &rows.variants {
            store::insert_variant(&mut *tx, id, vrow, now)
                .await
                .map_err(|e| unique_or(e, || CatalogError::SkuTaken(vrow.sku.clone())))?;
        }
        let prices: Vec<(Uuid, &Money)> = rows.prices.iter().map(|(v, m)| (*v, m)).collect();
        store::insert_prices(tx, &prices).await?;
        store::set_product_categories(tx, id, &rows.categories).await?;
        store::set_product_collections(tx, id, &rows.collections).await?;
        store::refresh_in_stock(&mut *tx, &[id]).await?;
        self.finish(tx, rows.product, 1, Change::Created).await
    }

    /// Changes a product's fields, status or links. `if_match` is the version the caller read.
    pub async fn update_product(
        &self,
        id: ProductId,
        patch: ProductPatch,
        if_match: Option<i64>,
    ) -> Result<Product, CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let mut row = locked(&mut tx, id, if_match).await?;
        let was = parse_status(&row.status)?;
        let mut v = Violations::new();
        if let Some(title) = &patch.title {
            check_len(&mut v, "/title", title.trim(), 1, 500);
        }
        if let Some(description) = &patch.description {
            check_description(&mut v, "/description", description.trim(), 50_000);
        }
        if let Some(handle) = &patch.handle {
            domain::check_handle(&mut v, "/handle", handle);
        }
        if let Some(attributes) = &patch.attributes {
            domain::check_attributes(&mut v, attributes);
        }
        if let Some(options) = &patch.options {
            domain::check_options(&mut v, options);
            let variants = store::list_variants(&mut tx, id.0).await?;
            check_variants_fit(&mut v, options, &variants)?;
        }
        v.finish().map_err(CatalogError::Invalid)?;
        check_links(
            &mut tx,
            patch.category_ids.as_deref().unwrap_or_default(),
            patch.collection_ids.as_deref().unwrap_or_default(),
        )
        .await?;
        if let Some(handle) = patch.handle {
            if handle != row.handle
                && store::handle_in_use(&mut tx, HandleTable::Products, &handle, id.0).await?
            {
                return Err(CatalogError::HandleTaken(handle));
            }
            row.handle = handle;
        }
        if let Some(title) = patch.title {
            row.title = title.trim().to_owned();
        }
        if let Some(description) = patch.description {
            row.description = description.trim().to_owned();
        }
        if let Some(options) = &patch.options {
            row.options = serde_json::to_string(options)?;
        }
        if let Some(attributes) = &patch.attributes {
            row.attributes = serde_json::to_string(attributes)?;
        }
        if let Some(status) = patch.status {
            row.status = status.as_str().to_owned();
            if status == ProductStatus::Published && row.published_at.is_none() {
                row.published_at = Some(now);
            }
        }
        if let Some(ids) = &patch.category_ids {
            store::set_product_categories(&mut tx, id.0, &dedup(ids.iter().map(|c| c.0))).await?;
        }
        if let Some(ids) = &patch.collection_ids {
            store::set_product_collections(&mut tx, id.0, &dedup(ids.iter().map(|c| c.0))).await?;
        }
        let previous = row.version;
        row.version += 1;
        row.updated_at = now;
        let product = self
            .finish(&mut tx, row, previous, Change::Updated { was })
            .await?;
        tx.commit().await?;
        Ok(product)
    }

    /// Deletes a product with its variants, prices, links and media rows.
    pub async fn delete_product(
        &self,
        id: ProductId,
        if_match: Option<i64>,
    ) -> Result<Vec<String>, CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = locked(&mut tx, id, if_match).await?;
        let media = store::product_media(&mut tx, id.0).await?;
        store::delete_product(&mut tx, id.0).await?;
        let event = events::ProductDeleted {
            id,
            handle: row.handle,
        };
        tx.record(&event, row.version + 1, now).await?;
        tx.commit().await?;
        Ok(media.into_iter().map(|m| m.object_key).collect())
    }

    /// Adds a variant to a product.
    pub async fn add_variant(
        &self,
        id: ProductId,
        input: NewVariant,
        if_match: Option<i64>,
    ) -> Result<(Product, VariantId), CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let mut row = locked(&mut tx, id, if_match).await?;
        let was = parse_status(&row.status)?;
        let options: Vec<ProductOption> = serde_json::from_str(&row.options)?;
        let existing = store::list_variants(&mut tx, id.0).await?;
        let mut v = Violations::new();
        domain::check_variant(
            &mut v,
            "",
            &input.sku,
            &input.options,
            input.weight_grams,
            &input.prices,
            &options,
        );
        if let Some(title) = &input.title {
            check_len(&mut v, "/title", title.trim(), 1, 200);
        }
        let existing_options = parsed_options(&existing)?;
        let mut all: Vec<(String, &BTreeMap<String, String>)> = existing_options
            .iter()
            .map(|o| ("/variants".to_owned(), o))
            .collect();
        all.push((String::new(), &input.options));
        domain::check_variant_set(&mut v, &options, all.into_iter());
        v.finish().map_err(CatalogError::Invalid)?;
        if store::sku_in_use(&mut tx, &input.sku, Uuid::nil()).await? {
            return Err(CatalogError::SkuTaken(input.sku));
        }
        let variant_id = VariantId::generate();
        let vrow = VariantRow {
            id: variant_id.0,
            sku: input.sku.clone(),
            title: input
                .title
                .map(|t| t.trim().to_owned())
                .unwrap_or_else(|| domain::default_variant_title(&options, &input.options)),
            options: serde_json::to_string(&input.options)?,
            weight_grams: input.weight_grams,
            position: existing.iter().map(|x| x.position + 1).max().unwrap_or(0),
        };
        store::insert_variant(&mut tx, id.0, &vrow, now)
            .await
            .map_err(|e| unique_or(e, || CatalogError::SkuTaken(input.sku.clone())))?;
        store::set_prices(&mut tx, vrow.id, &input.prices).await?;
        store::refresh_in_stock(&mut tx, &[id.0]).await?;
        let previous = row.version;
        row.version += 1;
        row.updated_at = now;
        let product = self
            .finish(&mut tx, row, previous, Change::Updated { was })
            .await?;
        tx.commit().await?;
        Ok((product, variant_id))
    }

    /// Changes a variant.
    pub async fn update_variant(
        &self,
        id: ProductId,
        variant_id: VariantId,
        patch: VariantPatch,
        if_match: Option<i64>,
    ) -> Result<Product, CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let mut row = locked(&mut tx, id, if_match).await?;
        let was = parse_status(&row.status)?;
        let options: Vec<ProductOption> = serde_json::from_str(&row.options)?;
        let existing = store::list_variants(&mut tx, id.0).await?;
        let Some(mut vrow) = existing.iter().find(|x| x.id == variant_id.0).cloned() else {
            return Err(CatalogError::VariantNotFound);
        };
        let mut chosen: BTreeMap<String, String> = serde_json::from_str(&vrow.options)?;
        if let Some(o) = &patch.options {
            chosen = o.clone();
        }
        let sku = patch.sku.clone().unwrap_or_else(|| vrow.sku.clone());
        let weight = patch.weight_grams.unwrap_or(vrow.weight_grams);
        let mut v = Violations::new();
        domain::check_variant(
            &mut v,
            "",
            &sku,
            &chosen,
            weight,
            patch.prices.as_deref().unwrap_or_default(),
            &options,
        );
        if let Some(title) = &patch.title {
            check_len(&mut v, "/title", title.trim(), 1, 200);
        }
        let others = parsed_options(
            &existing
                .iter()
                .filter(|x| x.id != variant_id.0)
                .cloned()
                .collect::<Vec<_>>(),
        )?;
        let mut all: Vec<(String, &BTreeMap<String, String>)> =
            others.iter().map(|o| ("/variants".to_owned(), o)).collect();
        all.push((String::new(), &chosen));
        domain::check_variant_set(&mut v, &options, all.into_iter());
        v.finish().map_err(CatalogError::Invalid)?;
        if sku != vrow.sku && store::sku_in_use(&mut tx, &sku, vrow.id).await? {
            return Err(CatalogError::SkuTaken(sku));
        }
        vrow.sku = sku.clone();
        vrow.options = serde_json::to_string(&chosen)?;
        vrow.weight_grams = weight;
        if let Some(title) = patch.title {
            vrow.title = title.trim().to_owned();
        }
        if let Some(position) = patch.position {
            vrow.position = position;
        }
        store::update_variant(&mut tx, &vrow, now)
            .await
            .map_err(|e| unique_or(e, || CatalogError::SkuTaken(sku.clone())))?;
        if let Some(prices) = &patch.prices {
            store::set_prices(&mut tx, vrow.id, prices).await?;
        }
        let previous = row.version;
        row.version += 1;
        row.updated_at = now;
        let product = self
            .finish(&mut tx, row, previous, Change::Updated { was })
            .await?;
        tx.commit().await?;
        Ok(product)
    }

    /// Removes a variant from a product.
    pub async fn delete_variant(
        &self,
        id: ProductId,
        variant_id: VariantId,
        if_match: Option<i64>,
    ) -> Result<Product, CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let mut row = locked(&mut tx, id, if_match).await?;
        let was = parse_status(&row.status)?;
        if store::product_of_variant(&mut tx, variant_id.0).await? != Some(id.0) {
            return Err(CatalogError::VariantNotFound);
        }
        store::delete_variant(&mut tx, variant_id.0).await?;
        store::refresh_in_stock(&mut tx, &[id.0]).await?;
        let previous = row.version;
        row.version += 1;
        row.updated_at = now;
        let product = self
            .finish(&mut tx, row, previous, Change::Updated { was })
            .await?;
        tx.commit().await?;
        Ok(product)
    }

    /// Attaches a stored file to a product, after the others (its `product_id`, `position` and
    /// `created_at` are set here).
    pub async fn add_media(
        &self,
        id: ProductId,
        media: MediaRow,
        if_match: Option<i64>,
    ) -> Result<Product, CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let mut row = locked(&mut tx, id, if_match).await?;
        let was = parse_status(&row.status)?;
        let existing = store::product_media(&mut tx, id.0).await?;
        let media = MediaRow {
            product_id: id.0,
            position: existing.iter().map(|m| m.position + 1).max().unwrap_or(0),
            created_at: now,
            ..media
        };
        store::insert_media(&mut tx, &media).await?;
        let previous = row.version;
        row.version += 1;
        row.updated_at = now;
        let product = self
            .finish(&mut tx, row, previous, Change::Updated { was })
            .await?;
        tx.commit().await?;
        Ok(product)
    }

    /// Detaches a file from a product; returns its object key so the caller can delete it.
    pub async fn remove_media(
        &self,
        id: ProductId,
        media_id: MediaId,
        if_match: Option<i64>,
    ) -> Result<(Product, String), CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let mut row = locked(&mut tx, id, if_match).await?;
        let was = parse_status(&row.status)?;
        let key = store::product_media(&mut tx, id.0)
            .await?
            .into_iter()
            .find(|m| m.id == media_id.0)
            .map(|m| m.object_key)
            .ok_or(CatalogError::MediaNotFound)?;
        store::delete_media(&mut tx, id.0, media_id.0).await?;
        let previous = row.version;
        row.version += 1;
        row.updated_at = now;
        let product = self
            .finish(&mut tx, row, previous, Change::Updated { was })
            .await?;
        tx.commit().await?;
        Ok((product, key))
    }

    /// A product as staff see it (any status), with availability.
    pub async fn get_product(&self, id: ProductId) -> Result<Product, CatalogError> {
        let mut conn = self.db.read().await?;
        let (document, in_stock) = store::read_document(&mut conn, id.0, false)
            .await?
            .ok_or(CatalogError::ProductNotFound)?;
        let stock = store::availability_of_products(&mut conn, &[id.0]).await?;
        listing::with_stock(&document, in_stock, &stock)
    }

    /// The variant ids of the given SKUs (those that exist).
    pub async fn variant_ids_by_sku(
        &self,
        skus: &[String],
    ) -> Result<std::collections::HashMap<String, VariantId>, CatalogError> {
        let mut conn = self.db.read().await?;
        let mut out = std::collections::HashMap::new();
        for chunk in skus.chunks(500) {
            for (sku, id) in store::variants_by_sku(&mut conn, chunk).await? {
                out.insert(sku, VariantId(id));
            }
        }
        Ok(out)
    }

    /// The id of the product with `handle`.
    pub async fn product_id_by_handle(&self, handle: &str) -> Result<ProductId, CatalogError> {
        let mut conn = self.db.read().await?;
        store::product_id_by_handle(&mut conn, handle)
            .await?
            .map(ProductId)
            .ok_or(CatalogError::ProductNotFound)
    }

    /// Products in any status, newest first.
    pub async fn list_products(&self, q: AdminListQuery) -> Result<Page<Product>, CatalogError> {
        let mut v = Violations::new();
        let limit = v.check(
            "/limit",
            emporium_kernel::cursor::page_limit(q.limit, 50, MAX_PAGE),
        );
        let after = match &q.cursor {
            Some(c) => v.check("/cursor", listing::decode_cursor(c, Sort::Created)),
            None => None,
        };
        if let Some(text) = &q.q {
            check_len(&mut v, "/q", text, 0, 200);
        }
        v.finish().map_err(CatalogError::Invalid)?;
        let mut conn = self.db.read().await?;
        let category_path = match q.category {
            Some(c) => Some(
                store::get_category(&mut conn, c.0)
                    .await?
                    .ok_or(CatalogError::CategoryNotFound)?
                    .path,
            ),
            None => None,
        };
        let filter = ListFilter {
            statuses: q.status.map(|s| vec![s]).unwrap_or_default(),
            title_contains: q.q,
            category_path,
            sort: Sort::Created,
            after,
            limit: limit.unwrap_or(50),
            ..ListFilter::default()
        };
        listing::page(&mut conn, filter).await
    }

    /// Creates the product named by `input.handle`, or brings the existing one in line with
    /// `input` (fields, status, links; variants matched by SKU keep their ids, new SKUs are
    /// added, missing ones removed). Writing the same input again changes nothing: no new
    /// version, no event. Runs inside `tx` (the caller holds a savepoint around it).
    pub async fn upsert_product_in(
        &self,
        tx: &mut WriteTx,
        mut input: NewProduct,
    ) -> Result<Upserted, CatalogError> {
        let Some(handle) = input.handle.clone() else {
            return Err(CatalogError::field(
                "/handle",
                "required",
                "an import names each product by its handle",
            ));
        };
        let Some(id) = store::product_id_by_handle(&mut *tx, &handle).await? else {
            self.create_product_in(tx, input).await?;
            return Ok(Upserted::Created);
        };
        let now = self.clock.now();
        validate_new(&mut input)?;
        check_links(tx, &input.category_ids, &input.collection_ids).await?;
        let Some(mut row) = store::lock_product(&mut *tx, id).await? else {
            return Err(CatalogError::ProductNotFound);
        };
        let before = match store::read_document(&mut *tx, id, false).await? {
            Some((document, _)) => Some(serde_json::from_str::<Product>(&document)?),
            None => None,
        };
        let was = parse_status(&row.status)?;
        let status = input.status.unwrap_or(was);
        row.title = input.title;
        row.description = input.description;
        row.status = status.as_str().to_owned();
        if status == ProductStatus::Published && row.published_at.is_none() {
            row.published_at = Some(now);
        }
        row.options = serde_json::to_string(&input.options)?;
        row.attributes = serde_json::to_string(&input.attributes)?;
        let existing = store::list_variants(&mut *tx, id).await?;
        let wanted: HashSet<&str> = input.variants.iter().map(|v| v.sku.as_str()).collect();
        for old in existing.iter().filter(|v| !wanted.contains(v.sku.as_str())) {
            store::delete_variant(&mut *tx, old.id).await?;
        }
        for (position, variant) in input.variants.iter().enumerate() {
            let title = variant
                .title
                .as_ref()
                .map(|t| t.trim().to_owned())
                .unwrap_or_else(|| domain::default_variant_title(&input.options, &variant.options));
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            let options = serde_json::to_string(&variant.options)?;
            let vrow = match existing.iter().find(|v| v.sku == variant.sku) {
                Some(old) => {
                    let vrow = VariantRow {
                        id: old.id,
                        sku: old.sku.clone(),
                        title,
                        options,
                        weight_grams: variant.weight_grams,
                        position,
                    };
                    store::update_variant(&mut *tx, &vrow, now).await?;
                    vrow
                }
                None => {
                    if store::sku_in_use(&mut *tx, &variant.sku, Uuid::nil()).await? {
                        return Err(CatalogError::SkuTaken(variant.sku.clone()));
                    }
                    let vrow = VariantRow {
                        id: VariantId::generate().0,
                        sku: variant.sku.clone(),
                        title,
                        options,
                        weight_grams: variant.weight_grams,
                        position,
                    };
                    store::insert_variant(&mut *tx, id, &vrow, now)
                        .await
                        .map_err(|e| {
                            unique_or(e, || CatalogError::SkuTaken(variant.sku.clone()))
                        })?;
                    vrow
                }
            };
            store::set_prices(tx, vrow.id, &variant.prices).await?;
        }
        store::set_product_categories(tx, id, &dedup(input.category_ids.iter().map(|c| c.0)))
            .await?;
        store::set_product_collections(tx, id, &dedup(input.collection_ids.iter().map(|c| c.0)))
            .await?;
        store::refresh_in_stock(&mut *tx, &[id]).await?;
        let mut after = assemble(tx, &row).await?;
        if let Some(before) = before {
            // Timestamps are not the input's: compare everything else (PostgreSQL also keeps
            // them to the microsecond, the document to the nanosecond).
            after.updated_at = before.updated_at;
            after.created_at = before.created_at;
            if after.published_at.is_some() && before.published_at.is_some() {
                after.published_at = before.published_at;
            }
            if after == before {
                return Ok(Upserted::Unchanged);
            }
        }
        let previous = row.version;
        row.version += 1;
        row.updated_at = now;
        self.finish(tx, row, previous, Change::Updated { was })
            .await?;
        Ok(Upserted::Updated)
    }

    /// Upserts a batch of products by handle in one transaction, as the bulk import does, and
    /// tells what happened to each input, in order.
    ///
    /// A product whose handle and SKUs nobody has (in the store, or earlier in the batch) is
    /// new: it is checked in memory, and all new products are written together, a few
    /// multi-row statements for the whole batch. The others go through
    /// [`CatalogService::upsert_product_in`] one at a time, each under a savepoint, in input
    /// order after the new ones (no input before them names their handle or SKUs, so the
    /// outcome is the one of upserting in input order). A storage failure fails the batch and
    /// nothing of it is written.
    pub async fn upsert_products(
        &self,
        inputs: Vec<NewProduct>,
    ) -> Result<Vec<Result<Upserted, CatalogError>>, CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let handles: Vec<String> = inputs.iter().filter_map(|i| i.handle.clone()).collect();
        let skus: Vec<String> = inputs
            .iter()
            .flat_map(|i| i.variants.iter().map(|v| v.sku.clone()))
            .collect();
        let mut claimed: HashSet<String> = store::taken_handles(&mut tx, &handles)
            .await?
            .into_iter()
            .collect();
        let mut claimed_skus: HashSet<String> = store::taken_skus(&mut tx, &skus)
            .await?
            .into_iter()
            .collect();

        let mut results: Vec<Option<Result<Upserted, CatalogError>>> =
            inputs.iter().map(|_| None).collect();
        let mut fresh = Vec::new();
        let mut rest = Vec::new();
        for (i, mut input) in inputs.into_iter().enumerate() {
            let is_new = input.handle.as_ref().is_some_and(|h| !claimed.contains(h))
                && input
                    .variants
                    .iter()
                    .all(|v| !claimed_skus.contains(&v.sku));
            claimed.extend(input.handle.clone());
            claimed_skus.extend(input.variants.iter().map(|v| v.sku.clone()));
            if !is_new {
                rest.push((i, input));
                continue;
            }
            let original = input.clone();
            match validate_new(&mut input) {
                Ok(()) => fresh.push((i, input, original)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }

        let category_ids = dedup(
            fresh
                .iter()
                .flat_map(|(_, p, _)| p.category_ids.iter().map(|c| c.0)),
        );
        let collection_ids = dedup(
            fresh
                .iter()
                .flat_map(|(_, p, _)| p.collection_ids.iter().map(|c| c.0)),
        );
        let categories = store::categories_by_ids(&mut tx, &category_ids).await?;
        let collections = store::collections_by_ids(&mut tx, &collection_ids).await?;
        let category_rank: HashMap<Uuid, usize> = categories
            .iter()
            .enumerate()
            .map(|(n, c)| (c.id, n))
            .collect();
        let collection_rank: HashMap<Uuid, usize> = collections
            .iter()
            .enumerate()
            .map(|(n, c)| (c.id, n))
            .collect();

        let mut drafts = Vec::new();
        let mut originals = Vec::new();
        for (i, input, original) in fresh {
            if let Err(e) = link_violations(
                &input.category_ids,
                &input.collection_ids,
                |id| category_rank.contains_key(id),
                |id| collection_rank.contains_key(id),
            ) {
                results[i] = Some(Err(e));
                continue;
            }
            let handle = input.handle.clone().unwrap_or_default();
            let rows = new_rows(input, ProductId::generate().0, handle, now)?;
            let mut linked: Vec<&CategoryRow> = rows
                .categories
                .iter()
                .filter_map(|id| category_rank.get(id).map(|&n| &categories[n]))
                .collect();
            linked.sort_by_key(|c| category_rank[&c.id]);
            let mut grouped: Vec<&CollectionRow> = rows
                .collections
                .iter()
                .filter_map(|id| collection_rank.get(id).map(|&n| &collections[n]))
                .collect();
            grouped.sort_by_key(|c| collection_rank[&c.id]);
            let mut prices: Vec<(Uuid, String, i64)> = rows
                .prices
                .iter()
                .map(|(v, m)| (*v, m.currency.as_str().to_owned(), m.amount))
                .collect();
            prices.sort_by(|a, b| a.1.cmp(&b.1));
            let product = document_of(
                &rows.product,
                rows.variants.clone(),
                prices,
                linked.into_iter().cloned().collect::<Vec<_>>().as_slice(),
                grouped.into_iter().cloned().collect::<Vec<_>>().as_slice(),
                Vec::new(),
            )?;
            drafts.push((i, rows, product));
            originals.push((i, original));
        }

        // SQLite's write transaction holds the database's write lock from its start, so the
        // handles and SKUs found free above are still free: no savepoint there. (SQLite would
        // keep the savepoint's journal in memory and walk it at the end of every statement of
        // the batch, a cost growing with the batch.) On PostgreSQL a concurrent writer may take
        // one meanwhile.
        let guarded = tx.backend() == Backend::Postgres;
        if guarded {
            tx.savepoint().await?;
        }
        match write_new(&mut tx, &drafts, now).await {
            Ok(()) => {
                if guarded {
                    tx.release_savepoint().await?;
                }
                for (i, _, _) in &drafts {
                    results[*i] = Some(Ok(Upserted::Created));
                }
            }
            // Someone else took a handle or SKU meanwhile: each goes the careful way instead.
            Err(e) if guarded && e.is_unique_violation() => {
                tx.rollback_to_savepoint().await?;
                tx.release_savepoint().await?;
                rest.extend(originals);
                rest.sort_by_key(|(i, _)| *i);
            }
            Err(e) => return Err(e.into()),
        }

        for (i, input) in rest {
            tx.savepoint().await?;
            let outcome = self.upsert_product_in(&mut tx, input).await;
            if !matches!(outcome, Ok(Upserted::Created | Upserted::Updated)) {
                tx.rollback_to_savepoint().await?;
            }
            tx.release_savepoint().await?;
            match outcome {
                Err(e)
                    if matches!(
                        e.kind_and_code().0,
                        ErrorKind::Internal | ErrorKind::Unavailable
                    ) =>
                {
                    return Err(e);
                }
                outcome => results[i] = Some(outcome),
            }
        }
        tx.commit().await?;
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(CatalogError::Corrupt("an input had no outcome".into())))
            })
            .collect())
    }

    // ------------------------------------------------------------ categories

    /// Every category, flat, parents before children.
    pub async fn list_categories(&self) -> Result<Vec<Category>, CatalogError> {
        let mut conn = self.db.read().await?;
        store::list_categories(&mut conn)
            .await?
            .iter()
            .map(category_of)
            .collect()
    }

    /// One category.
    pub async fn get_category(&self, id: CategoryId) -> Result<Category, CatalogError> {
        let mut conn = self.db.read().await?;
        let row = store::get_category(&mut conn, id.0)
            .await?
            .ok_or(CatalogError::CategoryNotFound)?;
        category_of(&row)
    }

    /// Creates a category under `parent_id` (or at the root).
    pub async fn create_category(&self, input: NewCategory) -> Result<Category, CatalogError> {
        let now = self.clock.now();
        let name = input.name.trim().to_owned();
        check_group_fields(
            ("/name", Some(&name)),
            Some(&input.description),
            input.handle.as_deref(),
        )?;
        let mut tx = self.db.begin_write().await?;
        let id = CategoryId::generate().0;
        let parent_path = match input.parent_id {
            Some(p) => {
                store::get_category(&mut tx, p.0)
                    .await?
                    .ok_or_else(|| {
                        CatalogError::field(
                            "/parent_id",
                            "unknown_category",
                            "no category with this id",
                        )
                    })?
                    .path
            }
            None => "/".to_owned(),
        };
        let handle = new_handle(
            &mut tx,
            HandleTable::Categories,
            id,
            input.handle,
            &name,
            CatalogError::CategoryHandleTaken,
        )
        .await?;
        let row = CategoryRow {
            id,
            handle,
            name,
            description: input.description.trim().to_owned(),
            parent_id: input.parent_id.map(|p| p.0),
            position: input.position,
            path: format!("{parent_path}{}/", id.simple()),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::insert_category(&mut tx, &row)
            .await
            .map_err(|e| unique_or(e, || CatalogError::CategoryHandleTaken(row.handle.clone())))?;
        let category = category_of(&row)?;
        tx.record(&events::CategoryCreated(category.clone()), 1, now)
            .await?;
        tx.commit().await?;
        Ok(category)
    }

    /// Renames, re-describes, re-orders or moves a category. A move rewrites the paths of its
    /// descendants; the products in the subtree get new documents.
    pub async fn update_category(
        &self,
        id: CategoryId,
        patch: CategoryPatch,
        if_match: Option<i64>,
    ) -> Result<Category, CatalogError> {
        let now = self.clock.now();
        check_group_fields(
            ("/name", patch.name.as_deref()),
            patch.description.as_deref(),
            patch.handle.as_deref(),
        )?;
        let mut tx = self.db.begin_write().await?;
        let mut row = store::get_category(&mut tx, id.0)
            .await?
            .ok_or(CatalogError::CategoryNotFound)?;
        check_version(row.version, if_match)?;
        let old_path = row.path.clone();
        let mut touches_products = false;
        if let Some(handle) = patch.handle {
            if handle != row.handle
                && store::handle_in_use(&mut tx, HandleTable::Categories, &handle, id.0).await?
            {
                return Err(CatalogError::CategoryHandleTaken(handle));
            }
            touches_products |= handle != row.handle;
            row.handle = handle;
        }
        if let Some(name) = patch.name {
            let name = name.trim().to_owned();
            touches_products |= name != row.name;
            row.name = name;
        }
        if let Some(d) = patch.description {
            row.description = d.trim().to_owned();
        }
        if let Some(position) = patch.position {
            row.position = position;
        }
        if let Some(parent) = patch.parent_id {
            let parent_path = match parent {
                Some(p) => {
                    let prow = store::get_category(&mut tx, p.0).await?.ok_or_else(|| {
                        CatalogError::field(
                            "/parent_id",
                            "unknown_category",
                            "no category with this id",
                        )
                    })?;
                    if prow.path.starts_with(&old_path) {
                        return Err(CatalogError::field(
                            "/parent_id",
                            "category_cycle",
                            "a category cannot move under itself or its descendants",
                        ));
                    }
                    prow.path
                }
                None => "/".to_owned(),
            };
            row.parent_id = parent.map(|p| p.0);
            row.path = format!("{parent_path}{}/", id.0.simple());
        }
        row.version += 1;
        row.updated_at = now;
        store::update_category(&mut tx, &row)
            .await
            .map_err(|e| unique_or(e, || CatalogError::CategoryHandleTaken(row.handle.clone())))?;
        let category = category_of(&row)?;
        tx.record(&events::CategoryUpdated(category.clone()), row.version, now)
            .await?;
        let moved = row.path != old_path;
        if moved {
            for mut child in store::categories_in_subtree(&mut tx, &old_path).await? {
                if child.id == id.0 {
                    continue;
                }
                child.path = format!("{}{}", row.path, &child.path[old_path.len()..]);
                child.version += 1;
                child.updated_at = now;
                store::update_category(&mut tx, &child).await?;
                tx.record(
                    &events::CategoryUpdated(category_of(&child)?),
                    child.version,
                    now,
                )
                .await?;
            }
        }
        if touches_products || moved {
            let products = store::products_in_subtree(&mut tx, &row.path).await?;
            self.refresh_products(&mut tx, &products).await?;
        }
        tx.commit().await?;
        Ok(category)
    }

    /// Deletes a category without children; its products leave it.
    pub async fn delete_category(
        &self,
        id: CategoryId,
        if_match: Option<i64>,
    ) -> Result<(), CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = store::get_category(&mut tx, id.0)
            .await?
            .ok_or(CatalogError::CategoryNotFound)?;
        check_version(row.version, if_match)?;
        if store::count_children(&mut tx, id.0).await? > 0 {
            return Err(CatalogError::CategoryHasChildren);
        }
        let products = store::products_in_subtree(&mut tx, &row.path).await?;
        store::delete_category(&mut tx, id.0).await?;
        tx.record(&events::CategoryDeleted { id }, row.version + 1, now)
            .await?;
        self.refresh_products(&mut tx, &products).await?;
        tx.commit().await?;
        Ok(())
    }

    // ------------------------------------------------------------ collections

    /// Collections, oldest first.
    pub async fn list_collections(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Collection>, CatalogError> {
        let mut v = Violations::new();
        let limit = v.check(
            "/limit",
            emporium_kernel::cursor::page_limit(limit, 50, MAX_PAGE),
        );
        let after = match cursor {
            Some(c) => v.check("/cursor", Cursor::decode::<Uuid>(c)),
            None => Some(Uuid::nil()),
        };
        v.finish().map_err(CatalogError::Invalid)?;
        let limit = limit.unwrap_or(50);
        let mut conn = self.db.read().await?;
        let mut rows =
            store::list_collections(&mut conn, after.unwrap_or_default(), limit + 1).await?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more {
            rows.last().map(|r| Cursor::encode(&r.id).into_string())
        } else {
            None
        };
        Ok(Page {
            items: rows.iter().map(collection_of).collect(),
            next_cursor,
        })
    }

    /// One collection.
    pub async fn get_collection(&self, id: CollectionId) -> Result<Collection, CatalogError> {
        let mut conn = self.db.read().await?;
        store::get_collection(&mut conn, id.0)
            .await?
            .map(|r| collection_of(&r))
            .ok_or(CatalogError::CollectionNotFound)
    }

    /// Creates a collection.
    pub async fn create_collection(
        &self,
        input: CollectionInput,
    ) -> Result<Collection, CatalogError> {
        let now = self.clock.now();
        let title = input.title.unwrap_or_default().trim().to_owned();
        let description = input.description.unwrap_or_default().trim().to_owned();
        check_group_fields(
            ("/title", Some(&title)),
            Some(&description),
            input.handle.as_deref(),
        )?;
        let id = CollectionId::generate().0;
        let mut tx = self.db.begin_write().await?;
        let handle = new_handle(
            &mut tx,
            HandleTable::Collections,
            id,
            input.handle,
            &title,
            CatalogError::CategoryHandleTaken,
        )
        .await?;
        let row = CollectionRow {
            id,
            handle,
            title,
            description,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::upsert_collection(&mut tx, &row)
            .await
            .map_err(|e| unique_or(e, || CatalogError::CategoryHandleTaken(row.handle.clone())))?;
        let collection = collection_of(&row);
        tx.record(&events::CollectionCreated(collection.clone()), 1, now)
            .await?;
        tx.commit().await?;
        Ok(collection)
    }

    /// Changes a collection; its products get new documents when the title or handle changed.
    pub async fn update_collection(
        &self,
        id: CollectionId,
        input: CollectionInput,
        if_match: Option<i64>,
    ) -> Result<Collection, CatalogError> {
        let now = self.clock.now();
        check_group_fields(
            ("/title", input.title.as_deref()),
            input.description.as_deref(),
            input.handle.as_deref(),
        )?;
        let mut tx = self.db.begin_write().await?;
        let mut row = store::get_collection(&mut tx, id.0)
            .await?
            .ok_or(CatalogError::CollectionNotFound)?;
        check_version(row.version, if_match)?;
        let before = (row.handle.clone(), row.title.clone());
        if let Some(h) = input.handle {
            if h != row.handle
                && store::handle_in_use(&mut tx, HandleTable::Collections, &h, id.0).await?
            {
                return Err(CatalogError::CategoryHandleTaken(h));
            }
            row.handle = h;
        }
        if let Some(t) = input.title {
            row.title = t.trim().to_owned();
        }
        if let Some(d) = input.description {
            row.description = d.trim().to_owned();
        }
        row.version += 1;
        row.updated_at = now;
        store::upsert_collection(&mut tx, &row).await?;
        let collection = collection_of(&row);
        tx.record(
            &events::CollectionUpdated(collection.clone()),
            row.version,
            now,
        )
        .await?;
        if before != (row.handle.clone(), row.title.clone()) {
            let products = store::products_in_collection(&mut tx, id.0).await?;
            self.refresh_products(&mut tx, &products).await?;
        }
        tx.commit().await?;
        Ok(collection)
    }

    /// Deletes a collection; its products leave it.
    pub async fn delete_collection(
        &self,
        id: CollectionId,
        if_match: Option<i64>,
    ) -> Result<(), CatalogError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = store::get_collection(&mut tx, id.0)
            .await?
            .ok_or(CatalogError::CollectionNotFound)?;
        check_version(row.version, if_match)?;
        let products = store::products_in_collection(&mut tx, id.0).await?;
        store::delete_collection(&mut tx, id.0).await?;
        tx.record(&events::CollectionDeleted { id }, row.version + 1, now)
            .await?;
        self.refresh_products(&mut tx, &products).await?;
        tx.commit().await?;
        Ok(())
    }

    // ------------------------------------------------------------ shared

    /// Gives each product a new document (and event) after something it embeds changed.
    async fn refresh_products(&self, tx: &mut WriteTx, ids: &[Uuid]) -> Result<(), CatalogError> {
        let now = self.clock.now();
        for id in ids {
            let Some(mut row) = store::lock_product(&mut *tx, *id).await? else {
                continue;
            };
            let was = parse_status(&row.status)?;
            let previous = row.version;
            row.version += 1;
            row.updated_at = now;
            self.finish(tx, row, previous, Change::Updated { was })
                .await?;
        }
        Ok(())
    }

    /// Reassembles the product from its tables, stores the document at `row.version` if the row
    /// is still at `previous_version`, and records the event carrying it.
    async fn finish(
        &self,
        tx: &mut WriteTx,
        row: ProductRow,
        previous_version: i64,
        change: Change,
    ) -> Result<Product, CatalogError> {
        store::refresh_product_prices(tx, row.id).await?;
        let product = assemble(tx, &row).await?;
        let document = serde_json::to_string(&product)?;
        if !store::save_product(&mut *tx, &row, &document, previous_version)
            .await
            .map_err(|e| unique_or(e, || CatalogError::HandleTaken(row.handle.clone())))?
        {
            return Err(CatalogError::VersionMismatch {
                current: previous_version,
            });
        }
        let now = row.updated_at;
        let version = row.version;
        let snapshot = product.clone();
        match (change, product.status) {
            (Change::Created, _) => {
                tx.record(&events::ProductCreated(snapshot), version, now)
                    .await?
            }
            (Change::Updated { was }, ProductStatus::Published)
                if was != ProductStatus::Published =>
            {
                tx.record(&events::ProductPublished(snapshot), version, now)
                    .await?
            }
            (
                Change::Updated {
                    was: ProductStatus::Published,
                },
                ProductStatus::Draft,
            ) => {
                tx.record(&events::ProductUnpublished(snapshot), version, now)
                    .await?
            }
            (Change::Updated { was }, ProductStatus::Archived)
                if was != ProductStatus::Archived =>
            {
                tx.record(&events::ProductArchived(snapshot), version, now)
                    .await?
            }
            (Change::Updated { .. }, _) => {
                tx.record(&events::ProductUpdated(snapshot), version, now)
                    .await?
            }
        };
        Ok(product)
    }
}

/// The rows of a new product.
struct NewRows {
    product: ProductRow,
    /// In position order.
    variants: Vec<VariantRow>,
    /// `(variant id, price)`.
    prices: Vec<(Uuid, Money)>,
    categories: Vec<Uuid>,
    collections: Vec<Uuid>,
}

/// The rows of new product `id` from checked `input`, at version 1, created at `now`.
fn new_rows(
    input: NewProduct,
    id: Uuid,
    handle: String,
    now: OffsetDateTime,
) -> Result<NewRows, CatalogError> {
    let status = input.status.unwrap_or(ProductStatus::Draft);
    let mut variants = Vec::with_capacity(input.variants.len());
    let mut prices = Vec::new();
    for (position, variant) in input.variants.into_iter().enumerate() {
        let title = variant
            .title
            .map(|t| t.trim().to_owned())
            .unwrap_or_else(|| domain::default_variant_title(&input.options, &variant.options));
        let vrow = VariantRow {
            id: VariantId::generate().0,
            sku: variant.sku,
            title,
            options: serde_json::to_string(&variant.options)?,
            weight_grams: variant.weight_grams,
            position: i64::try_from(position).unwrap_or(i64::MAX),
        };
        prices.extend(variant.prices.into_iter().map(|p| (vrow.id, p)));
        variants.push(vrow);
    }
    Ok(NewRows {
        product: ProductRow {
            id,
            handle,
            title: input.title,
            description: input.description,
            status: status.as_str().to_owned(),
            options: serde_json::to_string(&input.options)?,
            attributes: serde_json::to_string(&input.attributes)?,
            version: 1,
            created_at: now,
            updated_at: now,
            published_at: (status == ProductStatus::Published).then_some(now),
        },
        variants,
        prices,
        categories: dedup(input.category_ids.iter().map(|c| c.0)),
        collections: dedup(input.collection_ids.iter().map(|c| c.0)),
    })
}

/// Writes new products (each `(input index, rows, document)`) with a few multi-row statements
/// for the whole batch, and their `catalog.product_created` events.
async fn write_new(
    tx: &mut WriteTx,
    drafts: &[(usize, NewRows, Product)],
    now: OffsetDateTime,
) -> Result<(), emporium_db::DbError> {
    if drafts.is_empty() {
        return Ok(());
    }
    let documents = drafts
        .iter()
        .map(|(_, _, p)| serde_json::to_string(p))
        .collect::<Result<Vec<_>, _>>()?;
    let products: Vec<(&ProductRow, &str)> = drafts
        .iter()
        .zip(&documents)
        .map(|((_, r, _), d)| (&r.product, d.as_str()))
        .collect();
    store::insert_products(tx, &products).await?;
    let variants: Vec<(Uuid, &VariantRow)> = drafts
        .iter()
        .flat_map(|(_, r, _)| r.variants.iter().map(|v| (r.product.id, v)))
        .collect();
    store::insert_variants(tx, &variants, now).await?;
    let prices: Vec<(Uuid, &Money)> = drafts
        .iter()
        .flat_map(|(_, r, _)| r.prices.iter().map(|(v, m)| (*v, m)))
        .collect();
    store::insert_prices(tx, &prices).await?;
    let mut ranges = Vec::new();
    for (_, r, _) in drafts {
        let mut by_currency: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (_, m) in &r.prices {
            let range = by_currency
                .entry(m.currency.as_str())
                .or_insert((m.amount, m.amount));
            range.0 = range.0.min(m.amount);
            range.1 = range.1.max(m.amount);
        }
        ranges.extend(
            by_currency
                .into_iter()
                .map(|(c, (lo, hi))| (r.product.id, c.to_owned(), lo, hi)),
        );
    }
    store::insert_price_ranges(tx, &ranges).await?;
    let links = |pick: fn(&NewRows) -> &Vec<Uuid>| -> Vec<(Uuid, Uuid)> {
        drafts
            .iter()
            .flat_map(|(_, r, _)| pick(r).iter().map(|id| (r.product.id, *id)))
            .collect()
    };
    store::insert_links(tx, LinkTable::Categories, &links(|r| &r.categories)).await?;
    store::insert_links(tx, LinkTable::Collections, &links(|r| &r.collections)).await?;
    // `product.created` carries the product as it is: its payload is the document.
    let created: Vec<(String, i64, String)> = drafts
        .iter()
        .zip(documents)
        .map(|((_, _, p), document)| (p.id.to_string(), 1, document))
        .collect();
    tx.record_serialized::<events::ProductCreated>(created, now)
        .await?;
    Ok(())
}

/// Trims and checks a new product's fields, recording every violation.
fn validate_new(input: &mut NewProduct) -> Result<(), CatalogError> {
    input.title = input.title.trim().to_owned();
    input.description = input.description.trim().to_owned();
    let mut v = Violations::new();
    check_len(&mut v, "/title", &input.title, 1, 500);
    check_description(&mut v, "/description", &input.description, 50_000);
    if let Some(handle) = &input.handle {
        domain::check_handle(&mut v, "/handle", handle);
    }
    domain::check_options(&mut v, &input.options);
    domain::check_attributes(&mut v, &input.attributes);
    let mut skus = HashSet::new();
    for (i, variant) in input.variants.iter().enumerate() {
        let at = format!("/variants/{i}");
        domain::check_variant(
            &mut v,
            &at,
            &variant.sku,
            &variant.options,
            variant.weight_grams,
            &variant.prices,
            &input.options,
        );
        if let Some(title) = &variant.title {
            check_len(&mut v, &format!("{at}/title"), title.trim(), 1, 200);
        }
        if !skus.insert(variant.sku.as_str()) {
            v.push(
                format!("{at}/sku"),
                "duplicate",
                "two variants have this SKU",
            );
        }
    }
    domain::check_variant_set(
        &mut v,
        &input.options,
        input
            .variants
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("/variants/{i}"), &x.options)),
    );
    v.finish().map_err(CatalogError::Invalid)
}

/// Builds the product document from its tables (inside the writing transaction).
async fn assemble(tx: &mut WriteTx, row: &ProductRow) -> Result<Product, CatalogError> {
    let variants = store::list_variants(&mut *tx, row.id).await?;
    let prices = store::list_prices(&mut *tx, row.id).await?;
    let categories = store::product_categories(&mut *tx, row.id).await?;
    let collections = store::product_collections(&mut *tx, row.id).await?;
    let media = store::product_media(&mut *tx, row.id).await?;
    document_of(row, variants, prices, &categories, &collections, media)
}

/// The product document of `row` and the rows that hang off it, each list in the order the
/// document shows: variants by position, prices (`(variant, currency, amount)`) by currency,
/// categories by name, collections by title, media by position.
fn document_of(
    row: &ProductRow,
    variants: Vec<VariantRow>,
    prices: Vec<(Uuid, String, i64)>,
    categories: &[CategoryRow],
    collections: &[CollectionRow],
    media: Vec<MediaRow>,
) -> Result<Product, CatalogError> {
    let mut by_variant: BTreeMap<Uuid, Vec<Money>> = BTreeMap::new();
    for (variant, currency, amount) in prices {
        let currency = currency
            .parse()
            .map_err(|_| CatalogError::Corrupt(format!("bad currency {currency}")))?;
        by_variant
            .entry(variant)
            .or_default()
            .push(Money { amount, currency });
    }
    Ok(Product {
        id: ProductId(row.id),
        handle: row.handle.clone(),
        title: row.title.clone(),
        description: row.description.clone(),
        status: parse_status(&row.status)?,
        options: serde_json::from_str(&row.options)?,
        variants: variants
            .into_iter()
            .map(|v| {
                Ok(Variant {
                    id: VariantId(v.id),
                    prices: by_variant.remove(&v.id).unwrap_or_default(),
                    sku: v.sku,
                    title: v.title,
                    options: serde_json::from_str(&v.options)?,
                    weight_grams: v.weight_grams,
                    position: v.position,
                    available: None,
                })
            })
            .collect::<Result<_, CatalogError>>()?,
        categories: categories
            .iter()
            .map(|c| {
                Ok(CategoryRef {
                    id: CategoryId(c.id),
                    handle: c.handle.clone(),
                    name: c.name.clone(),
                    path: parse_path(&c.path)?,
                })
            })
            .collect::<Result<_, CatalogError>>()?,
        collections: collections
            .iter()
            .map(|c| CollectionRef {
                id: CollectionId(c.id),
                handle: c.handle.clone(),
                title: c.title.clone(),
            })
            .collect(),
        attributes: serde_json::from_str(&row.attributes)?,
        media: media
            .into_iter()
            .map(|m| Media {
                id: MediaId(m.id),
                url: format!("/media/{}", m.object_key),
                content_type: m.content_type,
                size_bytes: m.size_bytes,
                alt: m.alt,
                position: m.position,
            })
            .collect(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        published_at: row.published_at,
        version: row.version,
        in_stock: None,
    })
}

/// Locks the product and checks the caller's `If-Match` version against it.
async fn locked(
    tx: &mut WriteTx,
    id: ProductId,
    if_match: Option<i64>,
) -> Result<ProductRow, CatalogError> {
    let row = store::lock_product(&mut *tx, id.0)
        .await?
        .ok_or(CatalogError::ProductNotFound)?;
    check_version(row.version, if_match)?;
    Ok(row)
}

fn check_version(current: i64, if_match: Option<i64>) -> Result<(), CatalogError> {
    match if_match {
        Some(expected) if expected != current => Err(CatalogError::VersionMismatch { current }),
        _ => Ok(()),
    }
}

/// Every category and collection named must exist.
async fn check_links(
    tx: &mut WriteTx,
    categories: &[CategoryId],
    collections: &[CollectionId],
) -> Result<(), CatalogError> {
    let ids: Vec<Uuid> = categories.iter().map(|c| c.0).collect();
    let found_categories: HashSet<Uuid> =
        store::existing_ids(&mut *tx, LinkTable::Categories, &ids)
            .await?
            .into_iter()
            .collect();
    let ids: Vec<Uuid> = collections.iter().map(|c| c.0).collect();
    let found_collections: HashSet<Uuid> =
        store::existing_ids(&mut *tx, LinkTable::Collections, &ids)
            .await?
            .into_iter()
            .collect();
    link_violations(
        categories,
        collections,
        |id| found_categories.contains(id),
        |id| found_collections.contains(id),
    )
}

/// One violation per category or collection named that `known_category` or
/// `known_collection` does not know.
fn link_violations(
    categories: &[CategoryId],
    collections: &[CollectionId],
    known_category: impl Fn(&Uuid) -> bool,
    known_collection: impl Fn(&Uuid) -> bool,
) -> Result<(), CatalogError> {
    let mut v = Violations::new();
    for (i, id) in categories.iter().enumerate() {
        if !known_category(&id.0) {
            v.push(
                format!("/category_ids/{i}"),
                "unknown_category",
                "no category with this id",
            );
        }
    }
    for (i, id) in collections.iter().enumerate() {
        if !known_collection(&id.0) {
            v.push(
                format!("/collection_ids/{i}"),
                "unknown_collection",
                "no collection with this id",
            );
        }
    }
    v.finish().map_err(CatalogError::Invalid)
}

/// Checks the fields categories and collections share, each one given: the name or title (at
/// its pointer), the description and the handle. Every violation is reported.
fn check_group_fields(
    (title_pointer, title): (&str, Option<&str>),
    description: Option<&str>,
    handle: Option<&str>,
) -> Result<(), CatalogError> {
    let mut v = Violations::new();
    if let Some(title) = title {
        check_len(&mut v, title_pointer, title.trim(), 1, 200);
    }
    if let Some(description) = description {
        check_description(&mut v, "/description", description.trim(), 10_000);
    }
    if let Some(handle) = handle {
        domain::check_handle(&mut v, "/handle", handle);
    }
    v.finish().map_err(CatalogError::Invalid)
}

/// Existing variants must still fit a new option set.
fn check_variants_fit(
    v: &mut Violations,
    options: &[ProductOption],
    variants: &[VariantRow],
) -> Result<(), CatalogError> {
    for variant in variants {
        let chosen: BTreeMap<String, String> = serde_json::from_str(&variant.options)?;
        let mut inner = Violations::new();
        domain::check_variant(&mut inner, "", &variant.sku, &chosen, 0, &[], options);
        if inner.finish().is_err() {
            v.push(
                "/options",
                "conflicts_with_variants",
                format!(
                    "variant `{}` has option values these options do not allow",
                    variant.sku
                ),
            );
        }
    }
    Ok(())
}

fn parsed_options(variants: &[VariantRow]) -> Result<Vec<BTreeMap<String, String>>, CatalogError> {
    variants
        .iter()
        .map(|v| serde_json::from_str(&v.options).map_err(CatalogError::from))
        .collect()
}

/// The handle of a new row `id` of `table`: `requested`, unless another row has it (then
/// `taken`), or else the first free one of `base`, `base-2`, `base-3`, … with `base` the slug
/// of `name`.
async fn new_handle(
    tx: &mut WriteTx,
    table: HandleTable,
    id: Uuid,
    requested: Option<String>,
    name: &str,
    taken: fn(String) -> CatalogError,
) -> Result<String, CatalogError> {
    if let Some(handle) = requested {
        if store::handle_in_use(&mut *tx, table, &handle, id).await? {
            return Err(taken(handle));
        }
        return Ok(handle);
    }
    let base = domain::slugify(name);
    let mut candidate = base.clone();
    let mut n = 1;
    while store::handle_in_use(&mut *tx, table, &candidate, id).await? {
        n += 1;
        candidate = format!("{base}-{n}");
    }
    Ok(candidate)
}

/// A unique violation is `conflict()`, anything else storage.
fn unique_or(e: emporium_db::DbError, conflict: impl FnOnce() -> CatalogError) -> CatalogError {
    if e.is_unique_violation() {
        conflict()
    } else {
        CatalogError::Storage(e)
    }
}

fn dedup(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

fn parse_status(s: &str) -> Result<ProductStatus, CatalogError> {
    ProductStatus::parse(s).ok_or_else(|| CatalogError::Corrupt(format!("bad status {s}")))
}

/// `/<hex>/<hex>/` → ids, root first.
pub(crate) fn parse_path(path: &str) -> Result<Vec<CategoryId>, CatalogError> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            Uuid::try_parse(s)
                .map(CategoryId)
                .map_err(|_| CatalogError::Corrupt(format!("bad category path {path}")))
        })
        .collect()
}

pub(crate) fn category_of(row: &CategoryRow) -> Result<Category, CatalogError> {
    Ok(Category {
        id: CategoryId(row.id),
        handle: row.handle.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        parent_id: row.parent_id.map(CategoryId),
        position: row.position,
        path: parse_path(&row.path)?,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn collection_of(row: &CollectionRow) -> Collection {
    Collection {
        id: CollectionId(row.id),
        handle: row.handle.clone(),
        title: row.title.clone(),
        description: row.description.clone(),
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
