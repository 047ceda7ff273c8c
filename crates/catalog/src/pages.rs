//! Storefront answers kept ready to send: list pages until the catalog changes, and the priced
//! copies of list pages and products, one per set of calculated prices.
//!
//! **How stale a list can be.** A list page is cached by its whole query and forgotten, every
//! page at once, at the same points that forget a product's body: after the commit of any
//! `product.*`, `category.*` or `collection.*` event's handling (`CacheInvalidator`) and after
//! the stock projection commits a change of availability (`StockProjection`). A load that such
//! an invalidation overtakes answers its own callers but is not kept (the cache's generation
//! counters). So a list shows a change no later than a product read by id does; the time to
//! live (`ReadCacheConfig::ttl`) only bounds memory, never correctness.
//!
//! **Why priced copies need no invalidation.** Calculated prices are worked out on every read
//! (one calculator call per answer, a hash probe per variant), then the copy with exactly these
//! prices is looked up under the serial of the unpriced answer and a hash of the prices, and
//! compared in full. A price list that starts, ends or changes therefore shows on the next read;
//! a new unpriced answer has a new serial, so copies of the old one are never found again and
//! age out.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use emporium_kernel::ids::VariantId;
use emporium_kernel::{Currency, Money, Page};
use emporium_pricing::{CalculatedPrice, PriceContext, ShopperPrices, VariantPrice};

use crate::api::Product;
use crate::error::CatalogError;

/// A response body ready to send, uncompressed (a hit hands the same bytes to the connection),
/// with its strong ETag.
#[derive(Debug)]
pub struct ReadyBody {
    bytes: Bytes,
    hash: u64,
    /// Tells this body from every other one built by the process.
    serial: u64,
}

impl ReadyBody {
    /// A body holding `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            hash: hash_of(&bytes),
            bytes: Bytes::from(bytes),
            serial: next_serial(),
        }
    }

    /// The strong ETag: the body's hash, quoted.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }

    /// Tells this body from every other one built by the process.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The body as sent.
    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// Bytes the body holds, with a share for the bookkeeping.
    pub(crate) fn size(&self) -> usize {
        self.bytes.len() + 200
    }
}

/// A serial no other body of this process has.
pub(crate) fn next_serial() -> u64 {
    static SERIALS: AtomicU64 = AtomicU64::new(0);
    SERIALS.fetch_add(1, Ordering::Relaxed)
}

/// A hash of `value` (for ETags and cache keys; collisions are checked where they matter).
pub(crate) fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// One storefront list page as built from the database, without calculated prices.
#[derive(Debug)]
pub struct ListedPage {
    /// The answer without calculated prices.
    pub body: Arc<ReadyBody>,
    /// The same page as data, to build priced copies from.
    pub page: Page<Product>,
}

impl ListedPage {
    /// The page and its body.
    pub fn new(page: Page<Product>) -> Result<Self, CatalogError> {
        let body = Arc::new(ReadyBody::new(serde_json::to_vec(&page)?));
        Ok(Self { body, page })
    }

    /// Every variant of the page, in order, with its own prices.
    pub fn variants(&self) -> impl Iterator<Item = (VariantId, &[Money])> {
        self.page
            .items
            .iter()
            .flat_map(|p| &p.variants)
            .map(|v| (v.id, v.prices.as_slice()))
    }
}

/// A priced copy and the prices it shows (compared in full on every hit).
struct PricedBody {
    prices: Vec<Option<CalculatedPrice>>,
    body: Arc<ReadyBody>,
}

/// Priced copies of ready answers, by the serial of the unpriced answer and a hash of the
/// prices, bounded by bytes.
pub struct PricedBodies {
    copies: moka::sync::Cache<(u64, u64), Arc<PricedBody>>,
}

impl PricedBodies {
    /// Holds copies up to `max_bytes` in all.
    pub fn new(max_bytes: u64, ttl: std::time::Duration) -> Self {
        Self {
            copies: moka::sync::Cache::builder()
                .name("priced_answer")
                .max_capacity(max_bytes)
                .weigher(|_, copy: &Arc<PricedBody>| {
                    let bytes = copy.body.size() + copy.prices.len() * size_of::<CalculatedPrice>();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The answer `serial` with calculated prices for `context`: each variant of `variants`
    /// priced in the context's currency gets one (one calculator call for all), the others
    /// none. A copy with exactly these prices is reused; otherwise `build` makes the body from
    /// the prices, in the order of `variants`.
    pub async fn priced<'v>(
        &self,
        serial: u64,
        variants: impl Iterator<Item = (VariantId, &'v [Money])>,
        shopper: &ShopperPrices,
        context: &PriceContext,
        build: impl FnOnce(&[Option<CalculatedPrice>]) -> Result<Vec<u8>, CatalogError>,
    ) -> Result<Arc<ReadyBody>, CatalogError> {
        let (asked, slots) = own_prices(variants, context.currency);
        let calculated = shopper.calculate(context, &asked).await?;
        let mut calculated = calculated.into_iter();
        let prices: Vec<Option<CalculatedPrice>> = slots
            .iter()
            .map(|priced| if *priced { calculated.next() } else { None })
            .collect();
        let key = (serial, hash_of(&prices));
        if let Some(copy) = self.copies.get(&key)
            && copy.prices == prices
        {
            return Ok(Arc::clone(&copy.body));
        }
        let body = Arc::new(ReadyBody::new(build(&prices)?));
        self.copies.insert(
            key,
            Arc::new(PricedBody {
                prices,
                body: Arc::clone(&body),
            }),
        );
        Ok(body)
    }
}

/// The variants priced in `currency` with their own price, and for each variant whether it is
/// one of them.
fn own_prices<'v>(
    variants: impl Iterator<Item = (VariantId, &'v [Money])>,
    currency: Currency,
) -> (Vec<VariantPrice>, Vec<bool>) {
    let mut asked = Vec::new();
    let mut slots = Vec::new();
    for (variant_id, prices) in variants {
        let own = prices.iter().find(|m| m.currency == currency);
        if let Some(own) = own {
            asked.push(VariantPrice {
                variant_id,
                amount: own.amount,
            });
        }
        slots.push(own.is_some());
    }
    (asked, slots)
}

/// Sets each variant's calculated price from `prices` (in variant order across `products`).
pub fn fill_prices<'p>(
    products: impl Iterator<Item = &'p mut Product>,
    prices: &[Option<CalculatedPrice>],
) {
    let mut prices = prices.iter();
    for variant in products.flat_map(|p| p.variants.iter_mut()) {
        variant.calculated_price = prices.next().cloned().flatten();
    }
}
