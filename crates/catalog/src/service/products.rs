//! Products, their variants and media: writes, the staff reads, and bulk upserts.

use std::collections::{BTreeMap, HashMap, HashSet};

use emporium_db::{Backend, WriteTx};
use emporium_kernel::ids::{MediaId, ProductId, VariantId};
use emporium_kernel::{DomainError, ErrorKind, Money, Page, Violations};
use uuid::Uuid;

use crate::api::{Product, ProductOption, ProductStatus};
use crate::domain::{self, check_description, check_len};
use crate::error::CatalogError;
use crate::events;
use crate::listing::{self, ListFilter, Sort};
use crate::store::{self, CategoryRow, CollectionRow, HandleTable, MediaRow, VariantRow};

use super::{
    CatalogService, Change, MAX_PAGE, Upserted, assemble, check_links, check_variants_fit, dedup,
    document_of, link_violations, locked, new_handle, new_rows, parse_status, parsed_options,
    unique_or, validate_new, write_new,
};
use crate::api::{AdminListQuery, NewProduct, NewVariant, ProductPatch, VariantPatch};

impl CatalogService {
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
}
