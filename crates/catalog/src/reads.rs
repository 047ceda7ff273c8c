//! Storefront reads: published products and the category tree, served from a read-through cache
//! that catalog and inventory events invalidate. A cached product is kept as its finished JSON
//! body with its ETag, so a hit costs no database work and no serialisation.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use emporium_cache::{Cache, CacheConfig};
use emporium_db::Db;
use emporium_kernel::ids::{CategoryId, CollectionId, ProductId};
use emporium_kernel::{Currency, Page, Violations};
use uuid::Uuid;

use crate::api::{CategoryNode, Product, ProductStatus};
use crate::error::CatalogError;
use crate::listing::{self, ListFilter, Sort};
use crate::service::category_of;
use crate::store;

/// A response body ready to send, with its strong ETag.
#[derive(Debug, Clone)]
pub struct CachedBody {
    pub etag: String,
    pub body: Bytes,
    /// The product's handle (empty for other bodies), to notice a renamed handle.
    pub handle: String,
}

impl CachedBody {
    fn new(mut body: Vec<u8>, mut handle: String) -> Self {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        // A serialised body grows by doubling: the cache keeps what it holds, not the slack.
        body.shrink_to_fit();
        handle.shrink_to_fit();
        Self {
            etag: format!("\"{:016x}\"", hasher.finish()),
            body: Bytes::from(body),
            handle,
        }
    }
}

/// Sizes and lifetimes of the storefront caches.
#[derive(Debug, Clone)]
pub struct ReadCacheConfig {
    /// Memory budget of the product cache in bytes: rendered bodies by id, plus handle to id.
    pub product_bytes: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        Self {
            product_bytes: 64 << 20,
            ttl: Duration::from_secs(600),
            negative_ttl: Duration::from_secs(30),
        }
    }
}

/// The weight of a cache entry holding `bytes`, with a share for the entry's bookkeeping.
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes.saturating_add(ENTRY_OVERHEAD)).unwrap_or(u32::MAX)
}

/// Bytes a cache entry costs beyond what it holds (key, hash table slot, expiry and LRU nodes).
const ENTRY_OVERHEAD: usize = 160;

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
    handles: Cache<String, Uuid>,
    tree: Cache<String, Arc<CachedBody>>,
}

impl CatalogReads {
    /// Read side over `db` with caches sized by `config`.
    pub fn new(db: Db, config: &ReadCacheConfig) -> Self {
        let sized = |name, max| CacheConfig {
            max_entries: max,
            ttl: config.ttl,
            negative_ttl: config.negative_ttl,
            ..CacheConfig::new(name)
        };
        Self {
            db,
            // Seven eighths of the budget for bodies, the rest for handles; each entry also
            // counts a share for the cache's own bookkeeping.
            products: Cache::weighed(
                sized("product", 0),
                config.product_bytes / 8 * 7,
                |_, body: &Arc<CachedBody>| {
                    weight(body.body.len() + body.etag.len() + body.handle.len())
                },
            ),
            handles: Cache::weighed(
                sized("product_handle", 0),
                config.product_bytes / 8,
                |handle: &String, _| weight(handle.len() + 16),
            ),
            tree: Cache::new(sized("category_tree", 1)),
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
        let handle = key.to_owned();
        let mut v = Violations::new();
        crate::domain::check_handle(&mut v, "/handle", &handle);
        if v.finish().is_err() {
            return Err(CatalogError::ProductNotFound);
        }
        // A handle maps to an id, cached apart: renaming a handle leaves the old mapping
        // pointing at a product whose handle no longer matches, which is then reloaded.
        for _ in 0..2 {
            let db = self.db.clone();
            let h = handle.clone();
            let id = self
                .handles
                .get_or_load(&handle, || async move {
                    let mut conn = db.read().await?;
                    Ok::<_, CatalogError>(store::product_id_by_handle(&mut conn, &h).await?)
                })
                .await
                .map_err(CatalogError::Shared)?
                .ok_or(CatalogError::ProductNotFound)?;
            match self.product_by_id(id).await? {
                Some(doc) if doc.handle == handle => return Ok(doc),
                _ => self.handles.invalidate(&handle).await,
            }
        }
        Err(CatalogError::ProductNotFound)
    }

    async fn product_by_id(&self, id: Uuid) -> Result<Option<Arc<CachedBody>>, CatalogError> {
        let db = self.db.clone();
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
                Ok::<_, CatalogError>(Some(Arc::new(CachedBody::new(body, product.handle))))
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
                let tree = build_tree(&categories, None);
                let body = serde_json::to_vec(&serde_json::json!({ "items": tree }))?;
                Ok::<_, CatalogError>(Some(Arc::new(CachedBody::new(body, String::new()))))
            })
            .await
            .map_err(CatalogError::Shared)?
            .ok_or(CatalogError::CategoryNotFound)
    }

    /// Forgets a product (after any change to it or its stock).
    pub async fn invalidate_product(&self, id: Uuid) {
        self.products.invalidate(&id).await;
    }

    /// Forgets a handle lookup (a product now has it, or no longer has it).
    pub async fn invalidate_handle(&self, handle: &str) {
        self.handles.invalidate(&handle.to_owned()).await;
    }

    /// Forgets the category tree.
    pub async fn invalidate_tree(&self) {
        self.tree.invalidate_all();
    }

    /// Publishes the caches' entry gauges (for `/metrics`).
    pub fn publish_gauges(&self) {
        self.products.publish_gauges();
        self.handles.publish_gauges();
        self.tree.publish_gauges();
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
