//! Catalog's use cases: validate, run one transaction (with its outbox events), return plain data.
//!
//! Every product write ends in [`CatalogService::finish`]: it reassembles the product from its
//! tables, stores that document with the next version (only if nobody else wrote in between) and
//! records the event carrying it. Reads then cost one row.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use emporium_db::{Db, WriteTx};
use emporium_kernel::ids::{CategoryId, CollectionId, MediaId, ProductId, VariantId};
use emporium_kernel::{Clock, Money, Violations};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::{
    Category, CategoryRef, Collection, CollectionRef, Media, Product, ProductOption, ProductStatus,
    Variant,
};
use crate::domain::{self, check_description, check_len};
use crate::error::CatalogError;
use crate::events;
use crate::store::{
    self, CategoryRow, CollectionRow, HandleTable, LinkTable, MediaRow, ProductRow, VariantRow,
};

/// The largest page a list returns.
pub const MAX_PAGE: u32 = 100;

mod categories;
mod collections;
mod products;

pub use crate::api::{
    AdminListQuery, CategoryPatch, CollectionInput, NewCategory, NewProduct, NewVariant,
    ProductPatch, VariantPatch,
};

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
                    calculated_price: None,
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
