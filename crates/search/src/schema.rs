//! The index schema, its text analyzers and the encoding of per-currency prices.
//!
//! One index holds three kinds of documents, told apart by the `kind` field:
//! - `product`: one per product (any status), the only kind queries return;
//! - `category`: one per category known from events (name and path), so facet names and the
//!   ancestors of a category survive a restart;
//! - `stock`: one per variant with its storefront availability, so a stock event that arrives
//!   before its product is applied when the product shows up.
//!
//! Keeping the side state in the index (rather than a file beside it) makes it commit atomically
//! with the products and the checkpoint.

use emporium_kernel::Currency;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer,
    Stemmer, StopWordFilter, TextAnalyzer, TokenizerManager,
};

/// Bumped whenever the schema or an analyzer changes meaning; an index of another format is
/// wiped and rebuilt from the feed.
pub(crate) const FORMAT: u32 = 1;

/// English: split on non-alphanumerics, lower-case, fold accents, drop stop words, stem.
pub(crate) const STEMMED: &str = "emporium_en_stem";
/// Split on non-alphanumerics, lower-case, fold accents; no stemming (for typos and prefixes).
pub(crate) const PLAIN: &str = "emporium_plain";
/// The whole value, lower-cased (exact SKU match).
pub(crate) const WHOLE: &str = "emporium_whole";

/// Words longer than this are not indexed (they are noise: hashes, base64, URLs).
const LONGEST_WORD: usize = 40;

/// Document kinds.
pub(crate) const KIND_PRODUCT: &str = "product";
pub(crate) const KIND_CATEGORY: &str = "category";
pub(crate) const KIND_STOCK: &str = "stock";

/// Fast field names, for the collectors that read columns by name.
pub(crate) const F_CATEGORY_IDS: &str = "category_ids";
pub(crate) const F_PRICES: &str = "prices";
pub(crate) const F_IN_STOCK: &str = "in_stock";
pub(crate) const F_RECENCY: &str = "recency";
pub(crate) const F_POPULARITY: &str = "popularity";

/// Handles of every field of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// The document's id: `prod_…`, `pcat_…` or `var_…` (unique across kinds by prefix).
    pub key: Field,
    pub kind: Field,
    /// `draft`, `published` or `archived` (products only).
    pub status: Field,
    pub title: Field,
    pub title_plain: Field,
    pub description: Field,
    pub description_plain: Field,
    /// Names of the product's categories and of their ancestors.
    pub category_names: Field,
    pub category_names_plain: Field,
    /// SKU words (`LS-S` gives `ls`, `s`).
    pub sku: Field,
    /// Whole SKUs, lower-cased.
    pub sku_exact: Field,
    /// The product's category ids and every ancestor id (filter and facet).
    pub category_ids: Field,
    pub collection_ids: Field,
    pub variant_ids: Field,
    /// One value per currency: `currency_code << 48 | min amount` (see [`encode_price`]).
    pub prices: Field,
    pub in_stock: Field,
    /// `published_at`, else `created_at`, in Unix microseconds (sort "newest").
    pub recency: Field,
    pub popularity: Field,
    /// JSON: the product snapshot with its availability map, or the category, or the stock.
    pub source: Field,
}

impl Fields {
    /// Builds the schema and returns it with the field handles.
    pub(crate) fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text = |tokenizer: &str, record: IndexRecordOption, norms: bool| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(tokenizer)
                    .set_index_option(record)
                    .set_fieldnorms(norms),
            )
        };
        let ranked = || text(STEMMED, IndexRecordOption::WithFreqs, true);
        let matched = || text(PLAIN, IndexRecordOption::Basic, false);
        let fields = Fields {
            key: b.add_text_field("key", STRING | STORED),
            kind: b.add_text_field("kind", STRING),
            status: b.add_text_field("status", STRING),
            title: b.add_text_field("title", ranked()),
            title_plain: b.add_text_field("title_plain", matched()),
            description: b.add_text_field("description", ranked()),
            description_plain: b.add_text_field("description_plain", matched()),
            category_names: b.add_text_field("category_names", ranked()),
            category_names_plain: b.add_text_field("category_names_plain", matched()),
            sku: b.add_text_field("sku", text(PLAIN, IndexRecordOption::WithFreqs, true)),
            sku_exact: b.add_text_field("sku_exact", text(WHOLE, IndexRecordOption::Basic, false)),
            category_ids: b.add_text_field(F_CATEGORY_IDS, STRING | FAST),
            collection_ids: b.add_text_field("collection_ids", STRING),
            variant_ids: b.add_text_field("variant_ids", STRING),
            prices: b.add_u64_field(F_PRICES, FAST),
            in_stock: b.add_bool_field(F_IN_STOCK, INDEXED | FAST),
            recency: b.add_i64_field(F_RECENCY, FAST),
            popularity: b.add_u64_field(F_POPULARITY, FAST),
            source: b.add_text_field("source", STORED),
        };
        (b.build(), fields)
    }
}

/// Registers the analyzers the schema names; tantivy does not persist them.
pub(crate) fn register_tokenizers(manager: &TokenizerManager) {
    manager.register(STEMMED, stemmed_analyzer());
    manager.register(PLAIN, plain_analyzer());
    manager.register(
        WHOLE,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(RemoveLongFilter::limit(200))
            .filter(LowerCaser)
            .build(),
    );
}

/// The analyzer of the ranked text fields.
pub(crate) fn stemmed_analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(LONGEST_WORD))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .dynamic();
    // The English list ships with the `stopwords` feature; without it no word is dropped.
    let builder = match StopWordFilter::new(Language::English) {
        Some(stop) => builder.filter_dynamic(stop),
        None => builder,
    };
    builder
        .filter_dynamic(Stemmer::new(Language::English))
        .build()
}

/// The analyzer of the typo- and prefix-matched fields.
pub(crate) fn plain_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(LONGEST_WORD))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Bits of a price value holding the amount; the currency sits above them.
const AMOUNT_BITS: u32 = 48;
/// The largest amount a price value can hold (about 2.8 × 10^14 minor units); larger ones are
/// clamped, which only matters for sorting among absurd prices.
pub(crate) const AMOUNT_MAX: i64 = (1 << AMOUNT_BITS) - 1;

/// The currency's number: its three letters read as a base-26 number (0 ..= 17 575).
fn currency_number(currency: Currency) -> u64 {
    currency
        .as_str()
        .bytes()
        .fold(0, |n, b| n * 26 + u64::from(b.saturating_sub(b'A')))
}

/// Encodes a price so that all prices of one currency form one contiguous, ordered range of
/// `u64`: a range filter on one currency is one fast-field range query.
pub(crate) fn encode_price(currency: Currency, amount: i64) -> u64 {
    let amount = amount.clamp(0, AMOUNT_MAX);
    // The clamp makes the amount non-negative.
    (currency_number(currency) << AMOUNT_BITS) | amount.unsigned_abs()
}

/// The amount of `currency` among a document's price values, if it has one.
pub(crate) fn decode_price(currency: Currency, values: impl Iterator<Item = u64>) -> Option<i64> {
    let number = currency_number(currency);
    values
        .into_iter()
        .find(|v| v >> AMOUNT_BITS == number)
        .and_then(|v| i64::try_from(v & ((1 << AMOUNT_BITS) - 1)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(s: &str) -> Currency {
        s.parse().expect("currency")
    }

    #[test]
    fn prices_of_one_currency_sort_together_and_decode() {
        let eur = cur("EUR");
        let usd = cur("USD");
        assert!(encode_price(eur, 10) < encode_price(eur, 11));
        assert!(encode_price(eur, AMOUNT_MAX) < encode_price(usd, 0));
        let values = [encode_price(usd, 2500), encode_price(eur, 1999)];
        assert_eq!(decode_price(eur, values.into_iter()), Some(1999));
        assert_eq!(decode_price(usd, values.into_iter()), Some(2500));
        assert_eq!(decode_price(cur("GBP"), values.into_iter()), None);
    }

    #[test]
    fn negative_and_huge_amounts_are_clamped() {
        let eur = cur("EUR");
        assert_eq!(
            decode_price(eur, [encode_price(eur, -5)].into_iter()),
            Some(0)
        );
        assert_eq!(
            decode_price(eur, [encode_price(eur, i64::MAX)].into_iter()),
            Some(AMOUNT_MAX)
        );
    }
}
