//! The projection: catalog and inventory events in, index documents out.
//!
//! A batch of events is applied to an in-memory view of the documents it touches (loaded from
//! the last commit on first use), then the touched documents are rewritten and committed with
//! the batch's last position as the checkpoint. So a batch is all-or-nothing, a restart resumes
//! where the last commit left off, and replaying an event already applied changes nothing.
//!
//! Stock is kept per variant in `stock` side documents, whether or not a product holds the
//! variant yet: a stock event that arrives before its product is applied when the product
//! event comes.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use emporium_kernel::Envelope;
use emporium_kernel::ids::{CategoryId, ProductId, VariantId};
use serde::Deserialize;
use tantivy::{IndexWriter, Searcher, Term};
use tokio_util::sync::CancellationToken;

use crate::contract::{
    self, CategoryData, CategoryDeleted, ProductDeleted, StockChanged, is_product_snapshot,
};
use crate::document::{
    ProductEntry, Registry, StoredStock, category_document, product_document, stock_document,
};
use crate::error::SearchError;
use crate::feed::EventFeed;
use crate::index::SearchIndex;

/// Events read from the feed at a time.
const BATCH: usize = 1000;
/// How long the projector waits for news when it is caught up.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How long the feed must stay idle before the writer gives back its buffers: a trickle of
/// events (a checkout every few hundred milliseconds) must not open a new writer, with its
/// threads, for each one.
const RELEASE_AFTER: Duration = Duration::from_secs(5);
/// The longest pause after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Keeps the index up to date with the event feed.
#[derive(Debug, Clone)]
pub struct SearchProjector {
    index: Arc<SearchIndex>,
}

impl SearchProjector {
    /// A projector writing to `index`.
    pub fn new(index: Arc<SearchIndex>) -> Self {
        Self { index }
    }

    /// The feed position of the last event applied and committed.
    pub fn checkpoint(&self) -> i64 {
        self.index.checkpoint()
    }

    /// Applies a batch of events in position order and commits it, with its last position as
    /// the checkpoint. Events at or below the checkpoint are skipped, unknown event types and
    /// malformed payloads are skipped with a warning. Returns the new checkpoint.
    pub async fn apply(&self, batch: Vec<(i64, Envelope)>) -> Result<i64, SearchError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.apply_batch(&batch)).await?
    }

    /// Follows the feed until `stop` is cancelled: reads what follows the checkpoint, applies
    /// and commits it, and waits for news when caught up. A failure is logged and retried with
    /// a growing pause; the loop never gives up on its own.
    pub async fn run(self, feed: Arc<dyn EventFeed>, stop: CancellationToken) {
        let mut failures: u32 = 0;
        // When the writer last applied a batch, while it may still hold that batch's buffers.
        let mut written: Option<std::time::Instant> = None;
        while !stop.is_cancelled() {
            let position = self.checkpoint();
            let read = tokio::select! {
                () = stop.cancelled() => break,
                read = feed.read_after(position, BATCH) => read,
            };
            let outcome = match read {
                Ok(events) if events.is_empty() => {
                    if written.is_some_and(|at| at.elapsed() >= RELEASE_AFTER) {
                        written = None;
                        let index = self.index.clone();
                        match tokio::task::spawn_blocking(move || index.release_writer()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => {
                                let error = chain(&error);
                                tracing::warn!(%error, "search index writer not released");
                            }
                            Err(error) => {
                                tracing::warn!(%error, "search index writer not released");
                            }
                        }
                    }
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = feed.wait(IDLE_WAIT) => {},
                    }
                    Ok(())
                }
                Ok(events) => {
                    written = Some(std::time::Instant::now());
                    self.apply(events).await.map(|_| ())
                }
                Err(e) => Err(SearchError::from(e)),
            };
            match outcome {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = backoff(failures);
                    let error = chain(&error);
                    tracing::error!(%error, position, ?pause, "search projection failed");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(pause) => {},
                    }
                }
            }
        }
    }

    /// Wipes the index and replays the whole feed from position 0. Searches see the index fill
    /// up while it runs; if interrupted, [`SearchProjector::run`] resumes from where it stopped.
    /// Returns the final checkpoint.
    pub async fn rebuild(&self, feed: &dyn EventFeed) -> Result<i64, SearchError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.wipe()).await??;
        loop {
            let position = self.checkpoint();
            let events = feed.read_after(position, BATCH).await?;
            if events.is_empty() {
                return Ok(position);
            }
            self.apply(events).await?;
        }
    }
}

/// The error with its causes, for the log.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// 200 ms doubled per consecutive failure, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    IDLE_WAIT
        .saturating_mul(1 << failures.min(6))
        .min(MAX_BACKOFF)
}

impl SearchIndex {
    /// Applies and commits one batch; see [`SearchProjector::apply`].
    pub(crate) fn apply_batch(&self, batch: &[(i64, Envelope)]) -> Result<i64, SearchError> {
        let mut published = None;
        self.write(|writer, checkpoint| {
            let fresh: Vec<_> = batch.iter().filter(|(p, _)| *p > checkpoint).collect();
            let Some(last) = fresh.iter().map(|(p, _)| *p).max() else {
                return Ok(None);
            };
            let searcher = self.reader.searcher();
            let mut registry = (*self.registry()).clone();
            let mut view = View::new(self, &searcher);
            for (position, envelope) in fresh {
                view.apply(*position, envelope, &mut registry)?;
            }
            if view.is_unchanged() {
                // Nothing the index holds changed (orders, payments, counts that stayed in
                // stock): no commit. The position moves on in memory; a restart before the next
                // commit reads these events again, and they change nothing again.
                self.advance(last);
                return Ok(None);
            }
            view.write(writer, &registry)?;
            published = Some(registry);
            Ok(Some((last, ())))
        })?;
        if let Some(registry) = published {
            self.publish_registry(registry);
        }
        Ok(self.checkpoint())
    }
}

/// The documents a batch touches, as the batch leaves them.
struct View<'a> {
    index: &'a SearchIndex,
    searcher: &'a Searcher,
    /// Products loaded or changed; `None` is absent or deleted.
    products: HashMap<ProductId, Option<ProductEntry>>,
    /// Products to rewrite.
    dirty: BTreeSet<ProductId>,
    /// Availability changed in this batch.
    stock: BTreeMap<VariantId, i64>,
    /// Categories changed in this batch; `None` is deleted.
    categories: BTreeMap<CategoryId, Option<CategoryData>>,
}

impl<'a> View<'a> {
    fn new(index: &'a SearchIndex, searcher: &'a Searcher) -> Self {
        Self {
            index,
            searcher,
            products: HashMap::new(),
            dirty: BTreeSet::new(),
            stock: BTreeMap::new(),
            categories: BTreeMap::new(),
        }
    }

    fn apply(
        &mut self,
        position: i64,
        e: &Envelope,
        registry: &mut Registry,
    ) -> Result<(), SearchError> {
        let t = e.event_type.as_str();
        let outcome = if is_product_snapshot(t) {
            self.upsert_product(e, registry)
        } else {
            match t {
                contract::PRODUCT_DELETED => self.delete_product(e),
                contract::CATEGORY_CREATED | contract::CATEGORY_UPDATED => {
                    self.upsert_category(e, registry)
                }
                contract::CATEGORY_DELETED => self.delete_category(e, registry),
                contract::STOCK_CHANGED => self.change_stock(e),
                _ => Ok(Applied::Skipped),
            }
        };
        match outcome? {
            Applied::Done | Applied::Skipped => {}
            Applied::Malformed(error) => {
                // One bad event must not stop the projection; it is logged and passed over.
                tracing::warn!(
                    position,
                    event_id = %e.id,
                    event_type = t,
                    %error,
                    "search skipped a malformed event"
                );
            }
        }
        Ok(())
    }

    fn upsert_product(
        &mut self,
        e: &Envelope,
        registry: &mut Registry,
    ) -> Result<Applied, SearchError> {
        let mut entry = match ProductEntry::from_snapshot(e.data.clone()) {
            Ok(entry) => entry,
            Err(error) => return Ok(Applied::Malformed(error.to_string())),
        };
        let id = entry.data.id;
        if let Some(previous) = self.product(id)? {
            if previous.data.version > entry.data.version {
                // An older snapshot arriving late never replaces a newer one.
                return Ok(Applied::Skipped);
            }
            entry.popularity = previous.popularity;
            entry.availability = previous.availability.clone();
        }
        for variant in entry.data.variants.clone() {
            if let Some(available) = self.availability(variant.id)? {
                entry.availability.insert(variant.id, available);
            }
        }
        entry
            .availability
            .retain(|v, _| entry.data.variants.iter().any(|x| x.id == *v));
        // Categories seen only through products still get a facet name.
        for category in &entry.data.categories {
            if let Entry::Vacant(slot) = registry.entry(category.id) {
                let data = CategoryData {
                    id: category.id,
                    handle: category.handle.clone(),
                    name: category.name.clone(),
                    path: category.path.clone(),
                };
                slot.insert(data.clone());
                self.categories.insert(category.id, Some(data));
            }
        }
        self.products.insert(id, Some(entry));
        self.dirty.insert(id);
        Ok(Applied::Done)
    }

    fn delete_product(&mut self, e: &Envelope) -> Result<Applied, SearchError> {
        let id = match ProductDeleted::deserialize(&e.data) {
            Ok(d) => d.id,
            Err(error) => return Ok(Applied::Malformed(error.to_string())),
        };
        self.products.insert(id, None);
        self.dirty.insert(id);
        Ok(Applied::Done)
    }

    fn upsert_category(
        &mut self,
        e: &Envelope,
        registry: &mut Registry,
    ) -> Result<Applied, SearchError> {
        let category = match CategoryData::deserialize(&e.data) {
            Ok(c) => c,
            Err(error) => return Ok(Applied::Malformed(error.to_string())),
        };
        let id = category.id;
        registry.insert(id, category.clone());
        self.categories.insert(id, Some(category));
        // Every product in it or below it is rewritten with the new name and path (the
        // rewrite reads the registry as the batch leaves it).
        for product in self.products_under(id, registry)? {
            self.touch(product)?;
        }
        Ok(Applied::Done)
    }

    fn delete_category(
        &mut self,
        e: &Envelope,
        registry: &mut Registry,
    ) -> Result<Applied, SearchError> {
        let id = match CategoryDeleted::deserialize(&e.data) {
            Ok(d) => d.id,
            Err(error) => return Ok(Applied::Malformed(error.to_string())),
        };
        let products = self.products_under(id, registry)?;
        registry.remove(&id);
        self.categories.insert(id, None);
        for product in products {
            if let Some(entry) = self.product(product)? {
                entry.remove_category(id);
                self.dirty.insert(product);
            }
        }
        Ok(Applied::Done)
    }

    fn change_stock(&mut self, e: &Envelope) -> Result<Applied, SearchError> {
        let change = match StockChanged::deserialize(&e.data) {
            Ok(c) => c,
            Err(error) => return Ok(Applied::Malformed(error.to_string())),
        };
        let variant = change.variant_id;
        // The index keeps only whether a variant can be bought (the in-stock filter and facet):
        // a count that stays on the same side of zero changes no document.
        let before = self.availability(variant)?;
        if before.is_some_and(|n| (n > 0) == (change.variant_available > 0)) {
            return Ok(Applied::Skipped);
        }
        self.stock.insert(variant, change.variant_available);
        for product in self.products_holding(variant)? {
            if let Some(entry) = self.product(product)? {
                entry.availability.insert(variant, change.variant_available);
                self.dirty.insert(product);
            }
        }
        Ok(Applied::Done)
    }

    /// Marks a product for rewriting (it must be loaded so the rewrite has its source).
    fn touch(&mut self, id: ProductId) -> Result<(), SearchError> {
        if self.product(id)?.is_some() {
            self.dirty.insert(id);
        }
        Ok(())
    }

    /// The product as the batch has it so far, loading it from the index on first use.
    fn product(&mut self, id: ProductId) -> Result<Option<&mut ProductEntry>, SearchError> {
        if !self.products.contains_key(&id) {
            let loaded = match self.index.find(self.searcher, &id.to_string())? {
                Some(doc) => Some(
                    ProductEntry::from_source(self.index.source_of(&doc)?)
                        .map_err(|e| SearchError::Corrupt(format!("product {id}: {e}")))?,
                ),
                None => None,
            };
            self.products.insert(id, loaded);
        }
        Ok(self.products.get_mut(&id).and_then(Option::as_mut))
    }

    /// The variant's availability as the batch has it so far, if any stock event named it.
    fn availability(&mut self, variant: VariantId) -> Result<Option<i64>, SearchError> {
        if let Some(available) = self.stock.get(&variant) {
            return Ok(Some(*available));
        }
        let Some(doc) = self.index.find(self.searcher, &variant.to_string())? else {
            return Ok(None);
        };
        let stored: StoredStock = serde_json::from_str(self.index.source_of(&doc)?)
            .map_err(|e| SearchError::Corrupt(format!("stock {variant}: {e}")))?;
        Ok(Some(stored.available))
    }

    /// Products holding `variant`, in the last commit or in this batch.
    fn products_holding(&mut self, variant: VariantId) -> Result<Vec<ProductId>, SearchError> {
        let mut ids = self.committed_keys(self.index.fields.variant_ids, &variant.to_string())?;
        ids.extend(
            self.products
                .iter()
                .filter(|(_, e)| e.as_ref().is_some_and(|e| e.holds_variant(variant)))
                .map(|(id, _)| *id),
        );
        Ok(ids.into_iter().collect())
    }

    /// Products in `category` or below it, in the last commit or in this batch.
    fn products_under(
        &mut self,
        category: CategoryId,
        registry: &Registry,
    ) -> Result<Vec<ProductId>, SearchError> {
        let mut ids = self.committed_keys(self.index.fields.category_ids, &category.to_string())?;
        ids.extend(
            self.products
                .iter()
                .filter(|(_, e)| e.as_ref().is_some_and(|e| e.is_under(category, registry)))
                .map(|(id, _)| *id),
        );
        Ok(ids.into_iter().collect())
    }

    /// Ids of the committed products having `value` in `field`.
    fn committed_keys(
        &self,
        field: tantivy::schema::Field,
        value: &str,
    ) -> Result<BTreeSet<ProductId>, SearchError> {
        use tantivy::schema::Value;
        let mut ids = BTreeSet::new();
        for doc in self.index.all_with(self.searcher, field, value)? {
            let key = doc
                .get_first(self.index.fields.key)
                .and_then(|v| v.as_str())
                .and_then(|k| k.parse().ok());
            if let Some(id) = key {
                ids.insert(id);
            }
        }
        Ok(ids)
    }

    /// Whether the batch left every document as it was.
    fn is_unchanged(&self) -> bool {
        self.dirty.is_empty() && self.stock.is_empty() && self.categories.is_empty()
    }

    /// Rewrites every touched document (delete by key, then add).
    fn write(self, writer: &IndexWriter, registry: &Registry) -> Result<(), SearchError> {
        let f = &self.index.fields;
        let key = |k: String| Term::from_field_text(f.key, &k);
        for id in &self.dirty {
            writer.delete_term(key(id.to_string()));
            if let Some(Some(entry)) = self.products.get(id) {
                writer.add_document(product_document(f, entry, registry))?;
            }
        }
        for (variant, available) in &self.stock {
            writer.delete_term(key(variant.to_string()));
            writer.add_document(stock_document(f, *variant, *available))?;
        }
        for (id, category) in &self.categories {
            writer.delete_term(key(id.to_string()));
            if let Some(category) = category {
                writer.add_document(category_document(f, category))?;
            }
        }
        Ok(())
    }
}

/// What became of one event.
enum Applied {
    Done,
    Skipped,
    Malformed(String),
}
