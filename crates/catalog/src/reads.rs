//! Storefront reads: published products, list pages and the category tree, served from
//! read-through caches that catalog and inventory events invalidate. A cached product is kept as
//! its finished JSON body with its ETag, so a hit costs no database work and no serialisation;
//! a list page likewise (`pages.rs` says how stale one can be). With a `currency`, answers carry
//! each variant's calculated price for the shopper, from pricing through [`ShopperPrices`].
//! Products by id may also go through a shared second level (Redis), so that one instance's
//! load serves the others' misses.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use emporium_cache::{Cache, CacheConfig, CacheStats, SecondLevel};
use emporium_db::Db;
use emporium_kernel::ids::{CategoryId, CollectionId, ProductId, VariantId};
use emporium_kernel::{Currency, Money, Page, Violations};
use emporium_pricing::{PriceContext, Region, ShopperPrices};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::api::{CatalogApi, CategoryNode, CategoryTree, Product, ProductStatus, Purchasable};
use crate::error::CatalogError;
use crate::listing::{self, ListFilter, Sort};
use crate::pages::{ListedPage, PricedBodies, ReadyBody, fill_prices, hash_of, next_serial};
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
    /// A product's variants with their own prices (empty for other bodies), to calculate
    /// prices without unpacking the body.
    variants: Box<[(VariantId, Box<[Money]>)]>,
}

impl CachedBody {
    fn new(body: &[u8], handle: String) -> Self {
        Self {
            serial: next_serial(),
            hash: hash_of(body),
            packed: lz4_flex::compress_prepend_size(body).into_boxed_slice(),
            handle: handle.into_boxed_str(),
            variants: Box::default(),
        }
    }

    fn of_product(body: &[u8], product: &Product) -> Self {
        Self {
            variants: product
                .variants
                .iter()
                .map(|v| (v.id, v.prices.clone().into_boxed_slice()))
                .collect(),
            ..Self::new(body, product.handle.clone())
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
        let variants: usize = self
            .variants
            .iter()
            .map(|(_, prices)| size_of::<(VariantId, Box<[Money]>)>() + size_of_val(&**prices))
            .sum();
        size_of::<Self>() + self.packed.len() + self.handle.len() + variants
    }
}

/// In the shared second level a product body travels as the product itself, and the instance
/// that reads it rebuilds the body: the same bytes and ETag, with a serial of its own. Only
/// product bodies go there.
impl Serialize for CachedBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let body = self.body().map_err(S::Error::custom)?;
        let product: Product = serde_json::from_slice(&body).map_err(S::Error::custom)?;
        product.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CachedBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let product = Product::deserialize(deserializer)?;
        let body = serde_json::to_vec(&product).map_err(D::Error::custom)?;
        Ok(Self::of_product(&body, &product))
    }
}

/// Sizes and lifetimes of the storefront caches.
#[derive(Clone)]
pub struct ReadCacheConfig {
    /// Memory budget of the product cache in bytes: rendered bodies by id, and the handles of
    /// the products cached.
    pub product_bytes: u64,
    /// Memory budget of the list page cache in bytes, and again of the priced copies of pages
    /// and products.
    pub list_bytes: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    /// A level shared by every instance (Redis) between the product cache and the database;
    /// products by id are looked up there before they are loaded.
    pub second_level: Option<Arc<dyn SecondLevel>>,
}

impl std::fmt::Debug for ReadCacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCacheConfig")
            .field("product_bytes", &self.product_bytes)
            .field("list_bytes", &self.list_bytes)
            .field("ttl", &self.ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("second_level", &self.second_level.is_some())
            .finish()
    }
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        Self {
            product_bytes: 128 << 20,
            list_bytes: 32 << 20,
            ttl: Duration::from_secs(600),
            negative_ttl: Duration::from_secs(30),
            second_level: None,
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
    /// Region whose tax calculated prices show (with `currency`).
    pub country: Option<String>,
    pub state: Option<String>,
    /// The signed-in customer (`cus_…`), whose groups calculated prices follow.
    pub customer: Option<String>,
}

/// Whose prices a read of one product shows.
#[derive(Debug, Clone, Default)]
pub struct PriceQuery {
    /// Without it, no calculated prices.
    pub currency: Option<Currency>,
    pub country: Option<String>,
    pub state: Option<String>,
    /// The signed-in customer (`cus_…`), whose groups calculated prices follow.
    pub customer: Option<String>,
}

/// A storefront answer ready to send.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A cached product or tree body.
    Packed(Arc<CachedBody>),
    /// A list page, or an answer with calculated prices.
    Ready(Arc<ReadyBody>),
}

impl Answer {
    /// The strong ETag.
    pub fn etag(&self) -> String {
        match self {
            Self::Packed(b) => b.etag(),
            Self::Ready(b) => b.etag(),
        }
    }

    /// The body as sent.
    pub fn body(&self) -> Result<Bytes, CatalogError> {
        match self {
            Self::Packed(b) => b.body(),
            Self::Ready(b) => Ok(b.bytes()),
        }
    }
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
    /// List pages by their whole query, forgotten all at once by any catalog or availability
    /// change (see `pages.rs`).
    lists: Cache<String, Arc<ListedPage>>,
    /// Priced copies of list pages and product bodies.
    priced: PricedBodies,
    /// Without it, no answer carries calculated prices.
    prices: Option<Arc<ShopperPrices>>,
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
        // A product weighs what it holds and a share for the bookkeeping; its handle leaves the
        // index when it leaves the cache.
        let products = Cache::weighed_with_departures(
            sized("product", 0),
            config.product_bytes,
            |_, body: &Arc<CachedBody>| {
                // The handle counts twice: the body holds it, and so does the index's key.
                let bytes = body.size() + body.handle.len() + ENTRY_OVERHEAD;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            },
            move |_, body| index.departed(body),
        );
        // A body from the second level skips the loader, so its handle is not indexed: a read by
        // handle then resolves the handle once (remembered in `lookups`), as for any other miss.
        let products = match &config.second_level {
            Some(level) => products.with_second_level(Arc::clone(level)),
            None => products,
        };
        Self {
            db,
            products,
            handles,
            lookups: Cache::new(sized("product_handle", HANDLE_LOOKUPS)),
            tree: Cache::new(sized("category_tree", 1)),
            purchasables: Cache::new(sized("purchasable", PURCHASABLE_PRODUCTS)),
            variant_products: moka::sync::Cache::new(VARIANT_PRODUCTS),
            lists: Cache::weighed(
                sized("product_list", 0),
                config.list_bytes,
                |key: &String, page: &Arc<ListedPage>| {
                    u32::try_from(key.len() + 2 * page.body.size()).unwrap_or(u32::MAX)
                },
            ),
            priced: PricedBodies::new(config.list_bytes, config.ttl),
            prices: None,
        }
    }

    /// Answers that name a `currency` carry calculated prices from `prices`.
    #[must_use]
    pub fn with_prices(mut self, prices: Arc<ShopperPrices>) -> Self {
        self.prices = Some(prices);
        self
    }

    /// A published product by id or handle, with calculated prices when `price` names a
    /// currency. Fails with `Invalid` for a bad region, `ProductNotFound`.
    pub async fn product_answer(
        &self,
        key: &str,
        price: PriceQuery,
    ) -> Result<Answer, CatalogError> {
        let mut v = Violations::new();
        let region = check_region(&mut v, price.currency, &price.country, &price.state);
        v.finish().map_err(CatalogError::Invalid)?;
        let body = self.product(key).await?;
        let Some((shopper, context)) = self
            .price_context(price.currency, price.customer.as_deref(), region)
            .await?
        else {
            return Ok(Answer::Packed(body));
        };
        let variants = body.variants.iter().map(|(id, prices)| (*id, &**prices));
        let priced = self
            .priced
            .priced(body.serial, variants, shopper, &context, |prices| {
                let mut product: Product = serde_json::from_slice(&body.body()?)?;
                fill_prices(std::iter::once(&mut product), prices);
                Ok(serde_json::to_vec(&product)?)
            })
            .await?;
        Ok(Answer::Ready(priced))
    }

    /// The shopper's price context, when a currency is asked for and prices are wired.
    async fn price_context(
        &self,
        currency: Option<Currency>,
        customer: Option<&str>,
        region: Option<Region>,
    ) -> Result<Option<(&ShopperPrices, PriceContext)>, CatalogError> {
        let (Some(currency), Some(shopper)) = (currency, self.prices.as_deref()) else {
            return Ok(None);
        };
        let context = shopper.context(currency, customer, region).await?;
        Ok(Some((shopper, context)))
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
                let cached = CachedBody::of_product(&body, &product);
                handles.insert(&cached, id);
                Ok::<_, CatalogError>(Some(Arc::new(cached)))
            })
            .await
            .map_err(CatalogError::Shared)
    }

    /// A page of published products, with calculated prices when `q` names a currency. Fails
    /// with `Invalid`, naming every bad field.
    pub async fn list(&self, q: StoreListQuery) -> Result<Answer, CatalogError> {
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
        let region = check_region(&mut v, q.currency, &q.country, &q.state);
        v.finish().map_err(CatalogError::Invalid)?;
        // Every field that shapes the page, validated; the cursor holds the position.
        let key = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{}",
            q.category.map(|c| c.0),
            q.collection.map(|c| c.0),
            q.currency.map(|c| c.to_string()),
            q.min_price,
            q.max_price,
            q.in_stock,
            sort as u8,
            q.cursor,
            limit.unwrap_or(24),
        );
        let query = ListFilter {
            statuses: vec![ProductStatus::Published],
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
        let db = self.db.clone();
        let category = q.category;
        let listed = self
            .lists
            .get_or_load(&key, || async move {
                let page = list_page(&db, category, query).await?;
                Ok::<_, CatalogError>(Some(Arc::new(ListedPage::new(page)?)))
            })
            .await
            .map_err(CatalogError::Shared)?
            .ok_or_else(|| CatalogError::Corrupt("a list page was cached as absent".into()))?;
        let Some((shopper, context)) = self
            .price_context(q.currency, q.customer.as_deref(), region)
            .await?
        else {
            return Ok(Answer::Ready(Arc::clone(&listed.body)));
        };
        let priced = self
            .priced
            .priced(
                listed.body.serial(),
                listed.variants(),
                shopper,
                &context,
                |prices| {
                    let mut page = listed.page.clone();
                    fill_prices(page.items.iter_mut(), prices);
                    Ok(serde_json::to_vec(&page)?)
                },
            )
            .await?;
        Ok(Answer::Ready(priced))
    }
}

/// One list page from the database: `query` with the category's path filled in.
async fn list_page(
    db: &Db,
    category: Option<CategoryId>,
    mut query: ListFilter,
) -> Result<Page<Product>, CatalogError> {
    let mut conn = db.read().await?;
    query.category_path = match category {
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
    listing::page(&mut conn, query).await
}

/// The region of `country` and `state`, recording what is wrong in `v`; a region needs a
/// currency (it only chooses the tax of calculated prices).
fn check_region(
    v: &mut Violations,
    currency: Option<Currency>,
    country: &Option<String>,
    state: &Option<String>,
) -> Option<Region> {
    if currency.is_none() && (country.is_some() || state.is_some()) {
        v.push(
            "/currency",
            "required",
            "a country or state chooses the tax of calculated prices, which need a currency",
        );
    }
    emporium_pricing::parse_region(v, country.as_deref(), state.as_deref())
}

impl CatalogReads {
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
        self.lists.invalidate_all();
    }

    /// Forgets what a product's availability shows (its storefront body), after a stock change.
    pub async fn invalidate_availability(&self, id: Uuid) {
        self.products.invalidate(&id).await;
        self.lists.invalidate_all();
    }

    /// Forgets every list page (a collection or category changed what a filter selects).
    pub fn invalidate_lists(&self) {
        self.lists.invalidate_all();
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
        self.lists.invalidate_all();
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

    /// The product cache's counters: loads, hits, and hits in the second level.
    pub fn product_cache_stats(&self) -> CacheStats {
        self.products.stats()
    }

    /// Publishes the caches' entry gauges (for `/metrics`).
    pub fn publish_gauges(&self) {
        self.products.publish_gauges();
        self.lookups.publish_gauges();
        self.tree.publish_gauges();
        self.purchasables.publish_gauges();
        self.lists.publish_gauges();
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
