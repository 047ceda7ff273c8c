//! Storefront reads: published products and the category tree, served from a read-through cache
//! that catalog and inventory events invalidate. A cached product is kept as its finished JSON
//! body with its ETag, so a hit costs no database work and no serialisation.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use emporium_cache::{Cache, CacheConfig};
use emporium_db::Db;
use emporium_kernel::ids::{CategoryId, CollectionId, ProductId, VariantId};
use emporium_kernel::{Currency, Page, Violations};
use uuid::Uuid;

use crate::api::{CatalogApi, CategoryNode, CategoryTree, Product, ProductStatus, Purchasable};
use crate::error::CatalogError;
use crate::listing::{self, ListFilter, Sort};
use crate::service::category_of;
use crate::store;

/// A response body ready to send, with its strong ETag, kept compressed: product bodies are JSON
/// with the same keys over and over, which LZ4 shrinks to about half at a cost of a
/// microsecond per read.
#[derive(Debug, Clone)]
pub struct CachedBody {
    /// A hash of the uncompressed body.
    hash: u64,
    /// The body, LZ4-compressed with its length in front.
    packed: Box<[u8]>,
    /// The product's handle (empty for other bodies), to notice a renamed handle.
    handle: Box<str>,
    /// Tells this body from every other one built by the process.
    serial: u64,
}

impl CachedBody {
    fn new(body: &[u8], handle: String) -> Self {
        static SERIALS: AtomicU64 = AtomicU64::new(0);
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        Self {
            serial: SERIALS.fetch_add(1, Ordering::Relaxed),
            hash: hasher.finish(),
            packed: lz4_flex::compress_prepend_size(body).into_boxed_slice(),
            handle: handle.into_boxed_str(),
        }
    }

    /// The strong ETag: the body's hash, quoted.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }

    /// The body as sent.
    pub fn body(&self) -> Result<Bytes, CatalogError> {
        lz4_flex::decompress_size_prepended(&self.packed)
            .map(Bytes::from)
            .map_err(|e| CatalogError::Corrupt(format!("cached body: {e}")))
    }

    /// The product's handle (empty for other bodies).
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// Bytes the entry holds.
    fn size(&self) -> usize {
        size_of::<Self>() + self.packed.len() + self.handle.len()
    }
}

/// Sizes and lifetimes of the storefront caches.
#[derive(Debug, Clone)]
pub struct ReadCacheConfig {
    /// Memory budget of the product cache in bytes: rendered bodies by id, and the handles of
    /// the products cached.
    pub product_bytes: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        Self {
            product_bytes: 128 << 20,
            ttl: Duration::from_secs(600),
            negative_ttl: Duration::from_secs(30),
        }
    }
}

/// Bytes a cached product costs beyond its body and handle: the cache's key, hash table slot,
/// expiry and recency nodes, and the handle index's slot.
const ENTRY_OVERHEAD: usize = 200;

/// How many handle lookups the resolver remembers (found or not); found handles also enter the
/// handle index once their product is cached, so this only needs to cover recent misses.
const HANDLE_LOOKUPS: u64 = 4_096;

/// Handle to id for the products in the product cache, so that a read by handle is one lookup
/// here and one cache hit. A product's handle enters when its body is built, before the body is
/// cached, and leaves with that very body (its serial tells it from a newer body of the same
/// product), so the index does not outgrow the cache. The few entries it can be left with
/// (a body built but not cached because the product changed meanwhile) only cost a reload:
/// readers check the handle of what they find.
#[derive(Default)]
struct HandleIndex(RwLock<HashMap<Box<str>, (Uuid, u64)>>);

impl HandleIndex {
    fn get(&self, handle: &str) -> Option<Uuid> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(handle).map(|(id, _)| *id)
    }

    fn insert(&self, body: &CachedBody, id: Uuid) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(body.handle.clone(), (id, body.serial));
    }

    /// Removes the entry `body` made, unless a newer body replaced it.
    fn departed(&self, body: &CachedBody) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&body.handle)
            .is_some_and(|(_, serial)| *serial == body.serial)
        {
            map.remove(&body.handle);
        }
    }

    fn remove(&self, handle: &str) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(handle);
    }

    fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Storefront list query.
#[derive(Debug, Clone, Default)]
pub struct StoreListQuery {
    pub category: Option<CategoryId>,
    pub collection: Option<CollectionId>,
    pub currency: Option<Currency>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
    pub sort: Option<Sort>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// The storefront read side.
pub struct CatalogReads {
    db: Db,
    products: Cache<Uuid, Arc<CachedBody>>,
    handles: Arc<HandleIndex>,
    /// Handles not in the index, resolved once per handle at a time; unknown ones are
    /// remembered for the negative lifetime.
    lookups: Cache<String, Uuid>,
    tree: Cache<String, Arc<CachedBody>>,
    /// Each published product's variants as a cart sees them, by product id: what a cart
    /// reads on every change, without the availability, so a stock change leaves it be.
    purchasables: Cache<Uuid, Arc<[Purchasable]>>,
    /// The product of each variant asked about: a variant never moves to another product (a
    /// deleted one is no longer found in its product's variants).
    variant_products: moka::sync::Cache<Uuid, Uuid>,
}

/// How many variants' products stay in memory.
const VARIANT_PRODUCTS: u64 = 200_000;

/// How many products' purchasable variants stay in memory.
const PURCHASABLE_PRODUCTS: u64 = 50_000;

impl CatalogReads {
    /// Read side over `db` with caches sized by `config`.
    pub fn new(db: Db, config: &ReadCacheConfig) -> Self {
        let sized = |name, max| CacheConfig {
            max_entries: max,
            ttl: config.ttl,
            negative_ttl: config.negative_ttl,
            ..CacheConfig::new(name)
        };
        let handles = Arc::new(HandleIndex::default());
        let index = Arc::clone(&handles);
        Self {
            db,
            // A product weighs what it holds and a share for the bookkeeping; its handle leaves
            // the index when it leaves the cache.
            products: Cache::weighed_with_departures(
                sized("product", 0),
                config.product_bytes,
                |_, body: &Arc<CachedBody>| {
                    // The handle counts twice: the body holds it, and so does the index's key.
                    let bytes = body.size() + body.handle.len() + ENTRY_OVERHEAD;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                },
                move |_, body| index.departed(body),
            ),
            handles,
            lookups: Cache::new(sized("product_handle", HANDLE_LOOKUPS)),
            tree: Cache::new(sized("category_tree", 1)),
            purchasables: Cache::new(sized("purchasable", PURCHASABLE_PRODUCTS)),
            variant_products: moka::sync::Cache::new(VARIANT_PRODUCTS),
        }
    }

    /// A published product by id (`prod_…`) or handle.
    pub async fn product(&self, key: &str) -> Result<Arc<CachedBody>, CatalogError> {
        if let Ok(id) = key.parse::<ProductId>() {
            return self
                .product_by_id(id.0)
                .await?
                .ok_or(CatalogError::ProductNotFound);
        }
        let mut v = Violations::new();
        crate::domain::check_handle(&mut v, "/handle", key);
        if v.finish().is_err() {
            return Err(CatalogError::ProductNotFound);
        }
        // The index or a lookup names an id; what the id holds decides. A stale answer (the
        // handle was renamed or deleted) is forgotten and the handle resolved once more.
        for _ in 0..2 {
            let id = match self.handles.get(key) {
                Some(id) => id,
                None => self
                    .resolve(key)
                    .await?
                    .ok_or(CatalogError::ProductNotFound)?,
            };
            match self.product_by_id(id).await? {
                Some(doc) if *doc.handle == *key => return Ok(doc),
                _ => self.forget_handle(key).await,
            }
        }
        Err(CatalogError::ProductNotFound)
    }

    /// The id of the product with `handle`, from the database (one lookup per handle at a time).
    async fn resolve(&self, handle: &str) -> Result<Option<Uuid>, CatalogError> {
        let db = self.db.clone();
        let key = handle.to_owned();
        let h = key.clone();
        self.lookups
            .get_or_load(&key, || async move {
                let mut conn = db.read().await?;
                Ok::<_, CatalogError>(store::product_id_by_handle(&mut conn, &h).await?)
            })
            .await
            .map_err(CatalogError::Shared)
    }

    async fn forget_handle(&self, handle: &str) {
        self.handles.remove(handle);
        self.lookups.invalidate(&handle.to_owned()).await;
    }

    async fn product_by_id(&self, id: Uuid) -> Result<Option<Arc<CachedBody>>, CatalogError> {
        let db = self.db.clone();
        let handles = Arc::clone(&self.handles);
        self.products
            .get_or_load(&id, || async move {
                let mut conn = db.read().await?;
                let Some((document, in_stock)) = store::read_document(&mut conn, id, true).await?
                else {
                    return Ok(None);
                };
                let stock = store::availability_of_products(&mut conn, &[id]).await?;
                let product = listing::with_stock(&document, in_stock, &stock)?;
                let body = serde_json::to_vec(&product)?;
                let cached = CachedBody::new(&body, product.handle);
                handles.insert(&cached, id);
                Ok::<_, CatalogError>(Some(Arc::new(cached)))
            })
            .await
            .map_err(CatalogError::Shared)
    }

    /// A page of published products.
    pub async fn list(&self, q: StoreListQuery) -> Result<Page<Product>, CatalogError> {
        let sort = q.sort.unwrap_or(Sort::Newest);
        let mut v = Violations::new();
        let limit = v.check(
            "/limit",
            emporium_kernel::cursor::page_limit(q.limit, 24, crate::service::MAX_PAGE),
        );
        if sort == Sort::Created {
            v.push(
                "/sort",
                "invalid_value",
                "one of newest, price_asc, price_desc, title",
            );
        }
        let after = match &q.cursor {
            Some(c) => v.check("/cursor", listing::decode_cursor(c, sort)),
            None => None,
        };
        let needs_currency = matches!(sort, Sort::PriceAsc | Sort::PriceDesc)
            || q.min_price.is_some()
            || q.max_price.is_some();
        if needs_currency && q.currency.is_none() {
            v.push(
                "/currency",
                "required",
                "a price filter or sort needs a currency",
            );
        }
        for (pointer, value) in [("/min_price", q.min_price), ("/max_price", q.max_price)] {
            if value.is_some_and(|n| n < 0) {
                v.push(pointer, "out_of_range", "at least 0");
            }
        }
        if let (Some(min), Some(max)) = (q.min_price, q.max_price)
            && min > max
        {
            v.push("/min_price", "out_of_range", "greater than max_price");
        }
        v.finish().map_err(CatalogError::Invalid)?;
        let mut conn = self.db.read().await?;
        let category_path = match q.category {
            Some(c) => match store::get_category(&mut conn, c.0).await? {
                Some(row) => Some(row.path),
                None => {
                    return Ok(Page {
                        items: Vec::new(),
                        next_cursor: None,
                    });
                }
            },
            None => None,
        };
        let filter = ListFilter {
            statuses: vec![ProductStatus::Published],
            category_path,
            collection: q.collection.map(|c| c.0),
            currency: q.currency,
            min_price: q.min_price,
            max_price: q.max_price,
            in_stock: q.in_stock,
            sort,
            after,
            limit: limit.unwrap_or(24),
            ..ListFilter::default()
        };
        listing::page(&mut conn, filter).await
    }

    /// The category tree.
    pub async fn category_tree(&self) -> Result<Arc<CachedBody>, CatalogError> {
        let db = self.db.clone();
        self.tree
            .get_or_load(&"tree".to_owned(), || async move {
                let mut conn = db.read().await?;
                let rows = store::list_categories(&mut conn).await?;
                let categories = rows
                    .iter()
                    .map(category_of)
                    .collect::<Result<Vec<_>, _>>()?;
                let tree = CategoryTree {
                    items: build_tree(&categories, None),
                };
                let body = serde_json::to_vec(&tree)?;
                Ok::<_, CatalogError>(Some(Arc::new(CachedBody::new(&body, String::new()))))
            })
            .await
            .map_err(CatalogError::Shared)?
            .ok_or(CatalogError::CategoryNotFound)
    }

    /// Forgets a product (after any change to it or its stock).
    pub async fn invalidate_product(&self, id: Uuid) {
        self.products.invalidate(&id).await;
        self.purchasables.invalidate(&id).await;
    }

    /// Forgets what a product's availability shows (its storefront body), after a stock change.
    pub async fn invalidate_availability(&self, id: Uuid) {
        self.products.invalidate(&id).await;
    }

    /// The variants of published product `id` as a cart sees them (`None`: not published).
    async fn purchasables_of(&self, id: Uuid) -> Result<Option<Arc<[Purchasable]>>, CatalogError> {
        let db = self.db.clone();
        self.purchasables
            .get_or_load(&id, || async move {
                let mut conn = db.read().await?;
                let Some((document, _)) = store::read_document(&mut conn, id, true).await? else {
                    return Ok(None);
                };
                drop(conn);
                let product: Product = serde_json::from_str(&document)?;
                Ok::<_, CatalogError>(Some(purchasables(&product)))
            })
            .await
            .map_err(CatalogError::Shared)
    }

    /// Forgets a handle lookup (a product now has it, or no longer has it).
    pub async fn invalidate_handle(&self, handle: &str) {
        self.forget_handle(handle).await;
    }

    /// Forgets the category tree.
    pub async fn invalidate_tree(&self) {
        self.tree.invalidate_all();
    }

    /// How many products the product cache holds and how many handles the handle index holds,
    /// once the cache's deferred housekeeping is done.
    pub async fn cached_products(&self) -> (u64, usize) {
        self.products.settle().await;
        (self.products.stats().entries, self.handles.len())
    }

    /// How many times a product's purchasable variants were loaded from the database.
    pub fn purchasable_loads(&self) -> u64 {
        self.purchasables.stats().loads
    }

    /// Publishes the caches' entry gauges (for `/metrics`).
    pub fn publish_gauges(&self) {
        self.products.publish_gauges();
        self.lookups.publish_gauges();
        self.tree.publish_gauges();
        self.purchasables.publish_gauges();
        // Precision loss above 2^53 handles is irrelevant for a gauge.
        let handles = self.handles.len() as f64;
        metrics::gauge!("emporium_cache_entries", "cache" => "product_handle_index").set(handles);
    }
}

fn build_tree(all: &[crate::api::Category], parent: Option<CategoryId>) -> Vec<CategoryNode> {
    let mut children: Vec<&crate::api::Category> =
        all.iter().filter(|c| c.parent_id == parent).collect();
    children.sort_by(|a, b| {
        a.position
            .cmp(&b.position)
            .then_with(|| a.name.cmp(&b.name))
    });
    children
        .into_iter()
        .map(|c| CategoryNode {
            id: c.id,
            handle: c.handle.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            children: build_tree(all, Some(c.id)),
        })
        .collect()
}

#[async_trait::async_trait]
impl CatalogApi for CatalogReads {
    async fn purchasable(
        &self,
        variants: &[VariantId],
    ) -> Result<Vec<Option<Purchasable>>, CatalogError> {
        let mut out = Vec::with_capacity(variants.len());
        // A cart holds a few dozen items at most: the variants' products from memory, one
        // lookup for those not there yet, then each product from the cache. The connection
        // goes back before the cache is asked: a miss takes a
        // connection of its own, and holding two at once would let a burst of carts take the
        // whole pool and wait on each other.
        let mut found: HashMap<Uuid, Uuid> = variants
            .iter()
            .filter_map(|v| Some((v.0, self.variant_products.get(&v.0)?)))
            .collect();
        let missing: Vec<Uuid> = variants
            .iter()
            .map(|v| v.0)
            .filter(|v| !found.contains_key(v))
            .collect();
        if !missing.is_empty() {
            let mut conn = self.db.read().await?;
            for (variant, product) in store::variant_products(&mut conn, &missing).await? {
                self.variant_products.insert(variant, product);
                found.insert(variant, product);
            }
        }
        for variant in variants {
            let product_id = found.get(&variant.0).copied();
            let Some(product_id) = product_id else {
                out.push(None);
                continue;
            };
            let Some(of_product) = self.purchasables_of(product_id).await? else {
                out.push(None);
                continue;
            };
            out.push(
                of_product
                    .iter()
                    .find(|p| p.variant_id == *variant)
                    .cloned(),
            );
        }
        Ok(out)
    }
}

/// Every variant of `product` as a cart sees it.
fn purchasables(product: &Product) -> Arc<[Purchasable]> {
    let mut category_ids: Vec<CategoryId> = product
        .categories
        .iter()
        .flat_map(|c| c.path.iter().copied().chain([c.id]))
        .collect();
    category_ids.sort();
    category_ids.dedup();
    product
        .variants
        .iter()
        .map(|v| Purchasable {
            variant_id: v.id,
            product_id: product.id,
            product_title: product.title.clone(),
            product_handle: product.handle.clone(),
            variant_title: v.title.clone(),
            sku: v.sku.clone(),
            prices: v.prices.clone(),
            weight_grams: v.weight_grams,
            category_ids: category_ids.clone(),
        })
        .collect()
}
