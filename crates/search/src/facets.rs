//! Facet counts over every matching product, read from fast fields in the same pass as the
//! top hits: categories (with ancestors), price bands in one currency, and availability.

use std::collections::HashMap;

use emporium_kernel::Currency;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::api::PRICE_BANDS;
use crate::schema::{F_CATEGORY_IDS, F_IN_STOCK, F_PRICES, decode_price};

/// What the facet pass counts.
#[derive(Debug, Default)]
pub(crate) struct FacetCounts {
    /// Matching documents.
    pub total: u64,
    /// Matching documents per category id (text form).
    pub categories: HashMap<String, u64>,
    /// Matching documents per band of [`PRICE_BANDS`].
    pub bands: [u64; PRICE_BANDS.len()],
    pub in_stock: u64,
    pub out_of_stock: u64,
}

impl FacetCounts {
    fn add(&mut self, other: FacetCounts) {
        self.total += other.total;
        for (id, n) in other.categories {
            *self.categories.entry(id).or_default() += n;
        }
        for (mine, theirs) in self.bands.iter_mut().zip(other.bands) {
            *mine += theirs;
        }
        self.in_stock += other.in_stock;
        self.out_of_stock += other.out_of_stock;
    }
}

/// Counts facets for the prices of `currency`.
pub(crate) struct FacetCollector {
    pub currency: Currency,
}

impl Collector for FacetCollector {
    type Fruit = FacetCounts;
    type Child = FacetSegmentCollector;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<FacetSegmentCollector> {
        let fast = segment.fast_fields();
        let categories = fast.str(F_CATEGORY_IDS)?;
        let per_ordinal = vec![0; categories.as_ref().map_or(0, |c| c.num_terms())];
        Ok(FacetSegmentCollector {
            currency: self.currency,
            categories,
            prices: fast.column_opt(F_PRICES)?,
            in_stock: fast.column_opt(F_IN_STOCK)?,
            per_ordinal,
            counts: FacetCounts::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetCounts>) -> tantivy::Result<FacetCounts> {
        let mut all = FacetCounts::default();
        for fruit in fruits {
            all.add(fruit);
        }
        Ok(all)
    }
}

/// The facet pass over one segment.
pub(crate) struct FacetSegmentCollector {
    currency: Currency,
    categories: Option<StrColumn>,
    prices: Option<Column<u64>>,
    in_stock: Option<Column<bool>>,
    /// Count per category term ordinal of this segment.
    per_ordinal: Vec<u64>,
    counts: FacetCounts,
}

impl SegmentCollector for FacetSegmentCollector {
    type Fruit = FacetCounts;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.counts.total += 1;
        if let Some(categories) = &self.categories {
            for ordinal in categories.term_ords(doc) {
                if let Some(n) = usize::try_from(ordinal)
                    .ok()
                    .and_then(|i| self.per_ordinal.get_mut(i))
                {
                    *n += 1;
                }
            }
        }
        let price = self
            .prices
            .as_ref()
            .and_then(|c| decode_price(self.currency, c.values_for_doc(doc)));
        if let Some(price) = price {
            let band = PRICE_BANDS
                .iter()
                .position(|(lo, hi)| price >= *lo && hi.is_none_or(|hi| price < hi));
            if let Some(band) = band {
                self.counts.bands[band] += 1;
            }
        }
        match self.in_stock.as_ref().and_then(|c| c.first(doc)) {
            Some(true) => self.counts.in_stock += 1,
            _ => self.counts.out_of_stock += 1,
        }
    }

    fn harvest(mut self) -> FacetCounts {
        if let Some(categories) = &self.categories {
            let mut name = String::new();
            for (ordinal, n) in self.per_ordinal.iter().enumerate() {
                if *n == 0 {
                    continue;
                }
                name.clear();
                let found = u64::try_from(ordinal)
                    .ok()
                    .and_then(|o| categories.ord_to_str(o, &mut name).ok())
                    .unwrap_or(false);
                if found {
                    *self.counts.categories.entry(name.clone()).or_default() += n;
                }
            }
        }
        self.counts
    }
}
