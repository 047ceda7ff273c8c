//! What one product becomes in the index, and the side documents (categories, stock) kept with
//! it. Every document carries its source in a stored field, so it can be rebuilt when a
//! category or stock event arrives without asking the catalog.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use emporium_kernel::Currency;
use emporium_kernel::ids::{CategoryId, VariantId};
use serde::{Deserialize, Serialize};
use tantivy::TantivyDocument;

use crate::contract::{CategoryData, CategoryRef, ProductData};
use crate::schema::{Fields, KIND_CATEGORY, KIND_PRODUCT, KIND_STOCK, encode_price};

/// Every category known from events, by id.
pub(crate) type Registry = HashMap<CategoryId, CategoryData>;

/// The stored form of a product document.
#[derive(Debug, Serialize, Deserialize)]
struct StoredProduct {
    /// The last snapshot, exactly as the catalog sent it.
    product: serde_json::Value,
    /// Storefront availability per variant id.
    #[serde(default)]
    availability: BTreeMap<String, i64>,
    #[serde(default)]
    popularity: u64,
}

/// The stored form of a stock document.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredStock {
    pub variant_id: VariantId,
    pub available: i64,
}

/// A product with what the index adds to it.
#[derive(Debug, Clone)]
pub(crate) struct ProductEntry {
    /// The snapshot as received (kept whole so nothing is lost on a rebuild).
    pub raw: serde_json::Value,
    /// The parts of the snapshot the index uses.
    pub data: ProductData,
    /// Storefront availability per variant; a variant without an entry has none.
    pub availability: BTreeMap<VariantId, i64>,
    /// A sales counter (0 until sales events are consumed).
    pub popularity: u64,
}

impl ProductEntry {
    /// Reads an entry from its snapshot, as received.
    pub(crate) fn from_snapshot(raw: serde_json::Value) -> Result<Self, serde_json::Error> {
        let data = ProductData::deserialize(&raw)?;
        Ok(Self {
            raw,
            data,
            availability: BTreeMap::new(),
            popularity: 0,
        })
    }

    /// Reads an entry back from its stored field.
    pub(crate) fn from_source(source: &str) -> Result<Self, serde_json::Error> {
        let stored: StoredProduct = serde_json::from_str(source)?;
        let mut entry = Self::from_snapshot(stored.product)?;
        entry.availability = stored
            .availability
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, *v)))
            .collect();
        entry.popularity = stored.popularity;
        Ok(entry)
    }

    /// The stored field's text.
    fn to_source(&self) -> String {
        let stored = StoredProduct {
            product: self.raw.clone(),
            availability: self
                .availability
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            popularity: self.popularity,
        };
        // A `Value` and plain maps always serialise.
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// Whether one of the product's variants is `variant`.
    pub(crate) fn holds_variant(&self, variant: VariantId) -> bool {
        self.data.variants.iter().any(|v| v.id == variant)
    }

    /// Whether any variant can be bought now.
    pub(crate) fn in_stock(&self) -> bool {
        self.data
            .variants
            .iter()
            .any(|v| self.availability.get(&v.id).is_some_and(|&n| n > 0))
    }

    /// The lowest and highest variant price in `currency`, if any variant has one.
    pub(crate) fn price_range(&self, currency: Currency) -> Option<(i64, i64)> {
        let amounts = self
            .data
            .variants
            .iter()
            .flat_map(|v| &v.prices)
            .filter(|p| p.currency == currency.as_str())
            .map(|p| p.amount);
        amounts.fold(None, |range, a| match range {
            None => Some((a, a)),
            Some((lo, hi)) => Some((lo.min(a), hi.max(a))),
        })
    }

    /// The lowest variant price in each currency.
    fn min_prices(&self) -> BTreeMap<Currency, i64> {
        let mut out: BTreeMap<Currency, i64> = BTreeMap::new();
        for price in self.data.variants.iter().flat_map(|v| &v.prices) {
            let Ok(currency) = price.currency.parse::<Currency>() else {
                continue;
            };
            out.entry(currency)
                .and_modify(|m| *m = (*m).min(price.amount))
                .or_insert(price.amount);
        }
        out
    }

    /// Whether the product is in `category`, directly or below it.
    pub(crate) fn is_under(&self, category: CategoryId, registry: &Registry) -> bool {
        self.data
            .categories
            .iter()
            .any(|c| c.id == category || path_of(c, registry).contains(&category))
    }

    /// Removes `category` from the product's direct categories (snapshot included).
    pub(crate) fn remove_category(&mut self, category: CategoryId) {
        self.data.categories.retain(|c| c.id != category);
        let text = category.to_string();
        if let Some(list) = self
            .raw
            .get_mut("categories")
            .and_then(|v| v.as_array_mut())
        {
            list.retain(|c| c.get("id").and_then(|id| id.as_str()) != Some(text.as_str()));
        }
    }

    /// The product's direct categories with their current names.
    pub(crate) fn categories(&self, registry: &Registry) -> Vec<(CategoryId, String)> {
        self.data
            .categories
            .iter()
            .map(|c| {
                let name = registry.get(&c.id).map_or(&c.name, |known| &known.name);
                (c.id, name.clone())
            })
            .collect()
    }
}

/// The ids from the root down to `category`: from the registry when the category is known
/// there (it follows moves), else from the snapshot.
fn path_of(category: &CategoryRef, registry: &Registry) -> Vec<CategoryId> {
    let mut path = registry
        .get(&category.id)
        .map(|c| c.path.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| category.path.clone());
    if !path.contains(&category.id) {
        path.push(category.id);
    }
    path
}

/// The index document of a product.
pub(crate) fn product_document(
    f: &Fields,
    entry: &ProductEntry,
    registry: &Registry,
) -> TantivyDocument {
    let data = &entry.data;
    let mut doc = TantivyDocument::new();
    doc.add_text(f.key, data.id.to_string());
    doc.add_text(f.kind, KIND_PRODUCT);
    doc.add_text(f.status, &data.status);
    doc.add_text(f.title, &data.title);
    doc.add_text(f.title_plain, &data.title);
    if let Some(description) = &data.description {
        doc.add_text(f.description, description);
        doc.add_text(f.description_plain, description);
    }

    // Direct categories and every ancestor: a filter on a parent matches its descendants'
    // products, and a search for a parent's name finds them too.
    let mut ids = BTreeSet::new();
    for category in &data.categories {
        ids.extend(path_of(category, registry));
    }
    for id in &ids {
        doc.add_text(f.category_ids, id.to_string());
        let name = registry.get(id).map(|c| c.name.as_str()).or_else(|| {
            data.categories
                .iter()
                .find(|c| c.id == *id)
                .map(|c| c.name.as_str())
        });
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            doc.add_text(f.category_names, name);
            doc.add_text(f.category_names_plain, name);
        }
    }
    for collection in &data.collections {
        doc.add_text(f.collection_ids, collection.id.to_string());
    }
    for variant in &data.variants {
        doc.add_text(f.variant_ids, variant.id.to_string());
        if let Some(sku) = variant.sku.as_deref().filter(|s| !s.is_empty()) {
            doc.add_text(f.sku, sku);
            doc.add_text(f.sku_exact, sku);
        }
    }
    for (currency, amount) in entry.min_prices() {
        doc.add_u64(f.prices, encode_price(currency, amount));
    }
    doc.add_bool(f.in_stock, entry.in_stock());
    let recency = data.published_at.unwrap_or(data.created_at);
    doc.add_i64(f.recency, micros(recency));
    doc.add_u64(f.popularity, entry.popularity);
    doc.add_text(f.source, entry.to_source());
    doc
}

/// Unix microseconds, saturated to `i64`.
fn micros(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The side document remembering a category.
pub(crate) fn category_document(f: &Fields, category: &CategoryData) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_text(f.key, category.id.to_string());
    doc.add_text(f.kind, KIND_CATEGORY);
    // A plain struct of strings always serialises.
    doc.add_text(
        f.source,
        serde_json::to_string(category).unwrap_or_default(),
    );
    doc
}

/// The side document remembering a variant's availability.
pub(crate) fn stock_document(f: &Fields, variant: VariantId, available: i64) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_text(f.key, variant.to_string());
    doc.add_text(f.kind, KIND_STOCK);
    let stored = StoredStock {
        variant_id: variant,
        available,
    };
    doc.add_text(f.source, serde_json::to_string(&stored).unwrap_or_default());
    doc
}
