//! Test helpers: envelopes built by hand exactly as the event contract describes them, an
//! in-memory feed, and an index in a temporary folder.

#![allow(dead_code)]

use std::sync::Arc;

use emporium_kernel::Envelope;
use emporium_kernel::ids::{CategoryId, CollectionId, ProductId, VariantId};
use emporium_search::{
    EventFeed as _, MemoryFeed, SearchIndex, SearchProjector, SearchRequest, SearchResponse,
    SuggestResponse,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An index in a temporary folder fed from an in-memory feed.
pub struct Store {
    pub feed: Arc<MemoryFeed>,
    pub index: Arc<SearchIndex>,
    pub projector: SearchProjector,
    pub dir: TempDir,
}

impl Store {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let index = Arc::new(SearchIndex::open(dir.path()).expect("index opens"));
        Self {
            feed: Arc::new(MemoryFeed::new()),
            projector: SearchProjector::new(index.clone()),
            index,
            dir,
        }
    }

    /// Appends events to the feed.
    pub fn push(&self, events: impl IntoIterator<Item = Envelope>) {
        for e in events {
            self.feed.push(e);
        }
    }

    /// Applies everything after the checkpoint, as the projector's loop would.
    pub async fn sync(&self) {
        let events = self
            .feed
            .read_after(self.projector.checkpoint(), 1000)
            .await
            .expect("feed");
        if !events.is_empty() {
            self.projector.apply(events).await.expect("batch applies");
        }
        assert_eq!(self.projector.checkpoint(), self.feed.last_position());
    }

    /// Pushes events and applies them.
    pub async fn feed(&self, events: impl IntoIterator<Item = Envelope>) {
        self.push(events);
        self.sync().await;
    }

    pub fn search(&self, request: SearchRequest) -> SearchResponse {
        self.index.search(&request).expect("search succeeds")
    }

    pub fn q(&self, q: &str) -> SearchResponse {
        self.search(SearchRequest {
            q: Some(q.into()),
            ..SearchRequest::default()
        })
    }

    /// Titles of the hits of `q`, in order.
    pub fn titles(&self, q: &str) -> Vec<String> {
        titles(&self.q(q))
    }

    pub fn suggest(&self, prefix: &str) -> SuggestResponse {
        self.index.suggest(prefix, None).expect("suggest succeeds")
    }
}

pub fn titles(r: &SearchResponse) -> Vec<String> {
    r.hits.iter().map(|h| h.title.clone()).collect()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("formats")
}

/// A fixed instant plus `minutes`, so "newest" is deterministic.
pub fn at(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).expect("valid")
        + time::Duration::minutes(minutes)
}

/// An envelope around `data`, as the outbox relay delivers it.
pub fn envelope(event_type: &str, aggregate_id: String, data: Value) -> Envelope {
    Envelope {
        id: uuid::Uuid::now_v7(),
        event_type: event_type.into(),
        version: 1,
        aggregate_id,
        sequence: 1,
        occurred_at: at(0),
        trace: None,
        data,
    }
}

/// A category of the tree.
#[derive(Debug, Clone)]
pub struct Category {
    pub id: CategoryId,
    pub handle: String,
    pub name: String,
    pub path: Vec<CategoryId>,
}

impl Category {
    pub fn root(name: &str) -> Self {
        let id = CategoryId::generate();
        Self {
            id,
            handle: name.to_lowercase(),
            name: name.into(),
            path: vec![id],
        }
    }

    pub fn child(&self, name: &str) -> Self {
        let id = CategoryId::generate();
        let mut path = self.path.clone();
        path.push(id);
        Self {
            id,
            handle: name.to_lowercase(),
            name: name.into(),
            path,
        }
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id, "handle": self.handle, "name": self.name,
            "parent_id": self.path.len().checked_sub(2).map(|i| self.path[i]),
            "path": self.path, "position": 0,
        })
    }

    pub fn created(&self) -> Envelope {
        envelope("category.created", self.id.to_string(), self.json())
    }

    pub fn updated(&self) -> Envelope {
        envelope("category.updated", self.id.to_string(), self.json())
    }

    pub fn deleted(&self) -> Envelope {
        envelope(
            "category.deleted",
            self.id.to_string(),
            json!({"id": self.id}),
        )
    }

    /// How a product snapshot embeds the category.
    fn embedded(&self) -> Value {
        json!({"id": self.id, "handle": self.handle, "name": self.name, "path": self.path})
    }
}

/// A variant with its SKU and prices.
#[derive(Debug, Clone)]
pub struct Variant {
    pub id: VariantId,
    pub sku: String,
    pub prices: Vec<(&'static str, i64)>,
}

/// A product as the catalog would publish it.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: ProductId,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub status: &'static str,
    pub variants: Vec<Variant>,
    pub categories: Vec<Category>,
    pub collections: Vec<CollectionId>,
    pub created_at: OffsetDateTime,
    pub version: i64,
}

impl Product {
    /// A draft with one variant priced 19.99 EUR.
    pub fn new(title: &str) -> Self {
        let handle = title.to_lowercase().replace(' ', "-");
        Self {
            id: ProductId::generate(),
            handle: handle.clone(),
            title: title.into(),
            description: String::new(),
            status: "draft",
            variants: vec![Variant {
                id: VariantId::generate(),
                sku: format!("{}-1", handle.to_uppercase()),
                prices: vec![("EUR", 1999)],
            }],
            categories: Vec::new(),
            collections: Vec::new(),
            created_at: at(0),
            version: 1,
        }
    }

    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }

    pub fn sku(mut self, sku: &str) -> Self {
        self.variants[0].sku = sku.into();
        self
    }

    pub fn prices(mut self, prices: &[(&'static str, i64)]) -> Self {
        self.variants[0].prices = prices.to_vec();
        self
    }

    pub fn variant(mut self, sku: &str, prices: &[(&'static str, i64)]) -> Self {
        self.variants.push(Variant {
            id: VariantId::generate(),
            sku: sku.into(),
            prices: prices.to_vec(),
        });
        self
    }

    pub fn in_category(mut self, category: &Category) -> Self {
        self.categories.push(category.clone());
        self
    }

    pub fn in_collection(mut self, collection: CollectionId) -> Self {
        self.collections.push(collection);
        self
    }

    pub fn created_at(mut self, t: OffsetDateTime) -> Self {
        self.created_at = t;
        self
    }

    pub fn variant_id(&self) -> VariantId {
        self.variants[0].id
    }

    /// The whole snapshot, as in the contract.
    pub fn json(&self) -> Value {
        let published_at = (self.status == "published").then(|| rfc3339(self.created_at));
        json!({
            "id": self.id,
            "handle": self.handle,
            "title": self.title,
            "description": self.description,
            "status": self.status,
            "options": [{"name": "Size", "values": ["M"]}],
            "variants": self.variants.iter().enumerate().map(|(i, v)| json!({
                "id": v.id, "sku": v.sku, "title": "M", "options": {"Size": "M"},
                "weight_grams": 200,
                "prices": v.prices.iter().map(|(c, a)| json!({"currency": c, "amount": a})).collect::<Vec<_>>(),
                "position": i,
            })).collect::<Vec<_>>(),
            "categories": self.categories.iter().map(Category::embedded).collect::<Vec<_>>(),
            "collections": self.collections.iter().map(|c| json!({"id": c, "handle": "c", "title": "C"})).collect::<Vec<_>>(),
            "attributes": {"material": "linen"},
            "media": [],
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.created_at),
            "published_at": published_at,
            "version": self.version,
        })
    }

    fn event(&mut self, event_type: &str, status: &'static str) -> Envelope {
        self.status = status;
        self.version += 1;
        envelope(event_type, self.id.to_string(), self.json())
    }

    pub fn created(&mut self) -> Envelope {
        self.status = "draft";
        envelope("product.created", self.id.to_string(), self.json())
    }

    pub fn published(&mut self) -> Envelope {
        self.event("product.published", "published")
    }

    pub fn updated(&mut self) -> Envelope {
        let status = self.status;
        self.event("product.updated", status)
    }

    pub fn unpublished(&mut self) -> Envelope {
        self.event("product.unpublished", "draft")
    }

    pub fn archived(&mut self) -> Envelope {
        self.event("product.archived", "archived")
    }

    pub fn deleted(&self) -> Envelope {
        envelope(
            "product.deleted",
            self.id.to_string(),
            json!({"id": self.id, "handle": self.handle}),
        )
    }

    /// Created then published.
    pub fn live(&mut self) -> [Envelope; 2] {
        [self.created(), self.published()]
    }
}

/// `inventory.stock_changed` for a variant now `available` in total.
pub fn stock(variant: VariantId, available: i64) -> Envelope {
    envelope(
        "inventory.stock_changed",
        variant.to_string(),
        json!({
            "variant_id": variant, "location_id": "sloc_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f",
            "on_hand": available + 1, "reserved": 1, "available": available,
            "variant_available": available, "reason": "restock",
        }),
    )
}
