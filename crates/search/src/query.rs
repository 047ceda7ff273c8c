//! Queries: a validated search becomes one tantivy query (filters that do not score, one
//! clause per word), collected into a ranked page and the facets in a single pass.
//!
//! Ranking. Each word must match somewhere. Within a word, an exact match scores BM25 with the
//! field's boost (title 4, SKU 3, category names 2, description 1); a typo or prefix match
//! scores a small constant times the boost, so exact matches rank above them. A whole SKU typed
//! as it is scores a large bonus.

use emporium_kernel::cursor::page_limit;
use emporium_kernel::ids::{CategoryId, CollectionId};
use emporium_kernel::{Currency, Cursor, FieldError, Money, Violations};
use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, Score, Searcher, SegmentReader, TantivyDocument, Term};

use std::ops::Bound;

use crate::api::{
    AvailabilityFacet, CategoryFacet, Facets, Highlight, HitCategory, HitVariant, MAX_OFFSET,
    MAX_QUERY_CHARS, PRICE_BANDS, PriceBand, SearchHit, SearchRequest, SearchResponse, SearchSort,
    SuggestResponse, Suggestion,
};
use crate::document::{ProductEntry, Registry};
use crate::error::SearchError;
use crate::facets::{FacetCollector, FacetCounts};
use crate::index::SearchIndex;
use crate::schema::{AMOUNT_MAX, F_POPULARITY, F_PRICES, F_RECENCY, decode_price, encode_price};
use crate::text::{Analyzers, QueryWord};

/// Weight of a typo match relative to the field's boost.
const TYPO_WEIGHT: Score = 0.3;
/// Weight of a prefix match relative to the field's boost.
const PREFIX_WEIGHT: Score = 0.3;
/// Bonus of a whole SKU typed exactly.
const SKU_EXACT_BOOST: Score = 10.0;
/// Characters of description around the first match in a snippet.
const SNIPPET_CHARS: usize = 200;
/// Entries of the category facet.
const MAX_CATEGORY_FACETS: usize = 100;

/// A search, checked and resolved.
#[derive(Debug)]
struct Plan {
    q: String,
    category: Option<CategoryId>,
    collection: Option<CollectionId>,
    currency: Currency,
    min_price: Option<i64>,
    max_price: Option<i64>,
    in_stock: Option<bool>,
    sort: SearchSort,
    offset: usize,
    limit: usize,
    fingerprint: u64,
}

impl Plan {
    /// Checks every parameter, reporting every bad one.
    fn of(r: &SearchRequest) -> Result<Self, SearchError> {
        let mut v = Violations::new();
        let q = r.q.as_deref().unwrap_or_default().trim().to_owned();
        if q.chars().count() > MAX_QUERY_CHARS {
            v.push(
                "/q",
                "too_long",
                format!("at most {MAX_QUERY_CHARS} characters"),
            );
        }
        let limit = v.check("/limit", page_limit(r.limit, 20, 100));
        for (pointer, price) in [("/min_price", r.min_price), ("/max_price", r.max_price)] {
            if price.is_some_and(|p| p < 0) {
                v.push(pointer, "too_small", "at least 0");
            }
        }
        if let (Some(min), Some(max)) = (r.min_price, r.max_price)
            && min > max
        {
            v.push(
                "/min_price",
                "invalid_range",
                "min_price must not exceed max_price",
            );
        }
        if r.currency.is_none() && (r.country.is_some() || r.state.is_some()) {
            v.push(
                "/currency",
                "required",
                "a country or state chooses the tax of calculated prices, which need a currency",
            );
        }
        emporium_pricing::parse_region(&mut v, r.country.as_deref(), r.state.as_deref());
        let currency = r.currency.unwrap_or_else(eur);
        let sort = r.sort.unwrap_or(if q.is_empty() {
            SearchSort::Newest
        } else {
            SearchSort::Relevance
        });
        let mut plan = Plan {
            q,
            category: r.category,
            collection: r.collection,
            currency,
            min_price: r.min_price,
            max_price: r.max_price,
            in_stock: r.in_stock,
            sort,
            offset: 0,
            limit: limit.and_then(|l| usize::try_from(l).ok()).unwrap_or(20),
            fingerprint: 0,
        };
        plan.fingerprint = plan.fingerprint();
        if let Some(cursor) = &r.cursor {
            match plan.offset_of(cursor) {
                Ok(offset) => plan.offset = offset,
                Err(e) => {
                    v.check::<usize>("/cursor", Err(e));
                }
            }
        }
        v.finish().map_err(SearchError::Invalid)?;
        Ok(plan)
    }

    /// A hash of everything that decides the result list, so a cursor only serves the search
    /// that issued it.
    fn fingerprint(&self) -> u64 {
        let opt = |o: Option<String>| o.unwrap_or_default();
        let canonical = [
            self.q.to_lowercase(),
            opt(self.category.map(|c| c.to_string())),
            opt(self.collection.map(|c| c.to_string())),
            self.currency.to_string(),
            opt(self.min_price.map(|p| p.to_string())),
            opt(self.max_price.map(|p| p.to_string())),
            opt(self.in_stock.map(|b| b.to_string())),
            self.sort.as_str().to_owned(),
        ]
        .join("\u{1f}");
        fnv1a(canonical.as_bytes())
    }

    /// The offset a cursor names, if it is one this search issued.
    fn offset_of(&self, cursor: &str) -> Result<usize, FieldError> {
        let (offset, fingerprint) = Cursor::decode::<(u64, u64)>(cursor)?;
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        if fingerprint != self.fingerprint || offset > MAX_OFFSET {
            return Err(FieldError::new(
                "/cursor",
                "invalid_cursor",
                "the cursor belongs to another search",
            ));
        }
        Ok(offset)
    }

    /// The cursor of the page after this one, unless this is the last page or the next one is
    /// deeper than [`MAX_OFFSET`].
    fn next_cursor(&self, total: u64) -> Option<String> {
        let next = self.offset + self.limit;
        let more = u64::try_from(next).is_ok_and(|n| n < total);
        (more && next <= MAX_OFFSET).then(|| {
            Cursor::encode(&(u64::try_from(next).unwrap_or(u64::MAX), self.fingerprint))
                .into_string()
        })
    }
}

/// The default currency.
fn eur() -> Currency {
    "EUR"
        .parse()
        .unwrap_or_else(|_| unreachable!("EUR is a currency code"))
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The order of a hit: compared field by field, higher first.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
struct RankKey {
    order: [i64; 3],
    score: Score,
}

impl SearchIndex {
    /// Runs a storefront search: one page of published products matching `request`, with the
    /// facets of every match. Invalid parameters give [`SearchError::Invalid`] listing each.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResponse, SearchError> {
        let plan = Plan::of(request)?;
        let searcher = self.reader.searcher();
        let registry = self.registry();
        let mut analyzers = Analyzers::new();
        let words = analyzers.words(&plan.q, 2);

        let mut clauses = self.filters(&plan);
        for word in &words {
            clauses.push((Occur::Must, self.word_clause(word, true)));
        }
        for whole in plan.q.split_whitespace() {
            let exact = TermQuery::new(
                Term::from_field_text(self.fields.sku_exact, &whole.to_lowercase()),
                IndexRecordOption::Basic,
            );
            clauses.push((Occur::Should, boosted(exact, SKU_EXACT_BOOST)));
        }
        let query = BooleanQuery::new(clauses);

        let top = TopDocs::with_limit(plan.limit)
            .and_offset(plan.offset)
            .tweak_score(ranker(plan.sort, plan.currency));
        let facets = FacetCollector {
            currency: plan.currency,
        };
        let (top, counts) = searcher.search(&query, &(top, facets))?;

        let hits = top
            .into_iter()
            .map(|(key, address)| {
                self.hit(
                    &searcher,
                    address,
                    key.score,
                    &plan,
                    &registry,
                    &words,
                    &mut analyzers,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchResponse {
            hits,
            total: counts.total,
            next_cursor: plan.next_cursor(counts.total),
            sort: plan.sort,
            currency: plan.currency,
            facets: facets_of(counts, &registry),
        })
    }

    /// Title completions of `prefix` among published products, most popular first, then best
    /// matching, then shortest. `limit` is 1 to 20 (default 10).
    pub fn suggest(
        &self,
        prefix: &str,
        limit: Option<u32>,
    ) -> Result<SuggestResponse, SearchError> {
        let mut v = Violations::new();
        if prefix.chars().count() > MAX_QUERY_CHARS {
            v.push(
                "/q",
                "too_long",
                format!("at most {MAX_QUERY_CHARS} characters"),
            );
        }
        let limit = v.check("/limit", page_limit(limit, 10, 20));
        v.finish().map_err(SearchError::Invalid)?;
        let limit = limit.and_then(|l| usize::try_from(l).ok()).unwrap_or(10);

        let mut analyzers = Analyzers::new();
        let words = analyzers.words(prefix, 1);
        if words.is_empty() {
            return Ok(SuggestResponse {
                suggestions: Vec::new(),
            });
        }
        let mut clauses = vec![(Occur::Must, self.published())];
        for word in &words {
            clauses.push((Occur::Must, self.word_clause(word, false)));
        }
        let query = BooleanQuery::new(clauses);
        // A few more candidates than asked, so ties can be ordered by title below.
        let top = TopDocs::with_limit((limit * 4).min(100))
            .tweak_score(ranker(SearchSort::Popularity, eur()));
        let searcher = self.reader.searcher();
        let mut candidates = Vec::new();
        for (key, address) in searcher.search(&query, &top)? {
            let entry = self.entry_at(&searcher, address)?;
            candidates.push((key.order[0], key.score, entry));
        }
        candidates.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.2.data.title.len().cmp(&b.2.data.title.len()))
                .then(a.2.data.title.cmp(&b.2.data.title))
        });
        let suggestions = candidates
            .into_iter()
            .take(limit)
            .map(|(_, _, e)| Suggestion {
                id: e.data.id,
                handle: e.data.handle,
                title: e.data.title,
            })
            .collect();
        Ok(SuggestResponse { suggestions })
    }

    /// Published products only, plus the request's filters; none of them scores.
    fn filters(&self, plan: &Plan) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        let mut clauses = vec![(Occur::Must, self.published())];
        let mut must = |q: Box<dyn Query>| clauses.push((Occur::Must, unscored(q)));
        if let Some(category) = plan.category {
            must(term(f.category_ids, &category.to_string()));
        }
        if let Some(collection) = plan.collection {
            must(term(f.collection_ids, &collection.to_string()));
        }
        if let Some(in_stock) = plan.in_stock {
            must(Box::new(TermQuery::new(
                Term::from_field_bool(f.in_stock, in_stock),
                IndexRecordOption::Basic,
            )));
        }
        if plan.min_price.is_some() || plan.max_price.is_some() {
            let low = encode_price(plan.currency, plan.min_price.unwrap_or(0));
            let high = encode_price(plan.currency, plan.max_price.unwrap_or(AMOUNT_MAX));
            must(Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(f.prices, low)),
                Bound::Included(Term::from_field_u64(f.prices, high)),
            )));
        }
        clauses
    }

    fn published(&self) -> Box<dyn Query> {
        unscored(term(self.fields.status, "published"))
    }

    /// What one query word matches: in every searched field exactly (BM25), with a typo, and as
    /// a prefix when it is the last word. With `all_fields` false, titles only (suggestions).
    fn word_clause(&self, w: &QueryWord, all_fields: bool) -> Box<dyn Query> {
        let f = &self.fields;
        let mut fields = vec![(f.title, f.title_plain, 4.0)];
        if all_fields {
            fields.push((f.category_names, f.category_names_plain, 2.0));
            fields.push((f.description, f.description_plain, 1.0));
        }
        let mut should: Vec<Box<dyn Query>> = Vec::new();
        for (ranked, plain, boost) in fields {
            should.push(boosted(ranked_term(ranked, &w.stem), boost));
            if w.distance > 0 {
                let typo =
                    FuzzyTermQuery::new(Term::from_field_text(plain, &w.plain), w.distance, true);
                should.push(boosted(typo, boost * TYPO_WEIGHT));
            }
            if w.prefix {
                let prefix =
                    FuzzyTermQuery::new_prefix(Term::from_field_text(plain, &w.plain), 0, true);
                should.push(boosted(prefix, boost * PREFIX_WEIGHT));
            }
        }
        if all_fields {
            should.push(boosted(ranked_term(f.sku, &w.plain), 3.0));
            if w.prefix {
                let prefix =
                    FuzzyTermQuery::new_prefix(Term::from_field_text(f.sku, &w.plain), 0, true);
                should.push(boosted(prefix, 3.0 * PREFIX_WEIGHT));
            }
        }
        Box::new(BooleanQuery::union(should))
    }

    fn entry_at(
        &self,
        searcher: &Searcher,
        address: DocAddress,
    ) -> Result<ProductEntry, SearchError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        ProductEntry::from_source(self.source_of(&doc)?)
            .map_err(|e| SearchError::Corrupt(format!("product document: {e}")))
    }

    #[allow(clippy::too_many_arguments)]
    fn hit(
        &self,
        searcher: &Searcher,
        address: DocAddress,
        score: Score,
        plan: &Plan,
        registry: &Registry,
        words: &[QueryWord],
        analyzers: &mut Analyzers,
    ) -> Result<SearchHit, SearchError> {
        let entry = self.entry_at(searcher, address)?;
        let money = |amount| Money {
            amount,
            currency: plan.currency,
        };
        let range = entry.price_range(plan.currency);
        let description = entry.data.description.as_deref().unwrap_or_default();
        Ok(SearchHit {
            id: entry.data.id,
            handle: entry.data.handle.clone(),
            title: entry.data.title.clone(),
            highlight: Highlight {
                title: analyzers.highlight(&entry.data.title, words, None),
                snippet: analyzers.highlight(description, words, Some(SNIPPET_CHARS)),
            },
            min_price: range.map(|r| money(r.0)),
            max_price: range.map(|r| money(r.1)),
            in_stock: entry.in_stock(),
            categories: entry
                .categories(registry)
                .into_iter()
                .map(|(id, name)| HitCategory { id, name })
                .collect(),
            score,
            variants: Some(
                entry
                    .data
                    .variants
                    .iter()
                    .map(|v| HitVariant {
                        id: v.id,
                        calculated_price: None,
                        prices: v
                            .prices
                            .iter()
                            .filter_map(|p| {
                                Some(Money {
                                    currency: p.currency.parse().ok()?,
                                    amount: p.amount,
                                })
                            })
                            .collect(),
                    })
                    .collect(),
            ),
        })
    }
}

fn term(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

fn ranked_term(field: Field, value: &str) -> TermQuery {
    TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::WithFreqs,
    )
}

fn boosted(query: impl Query + 'static, boost: Score) -> Box<dyn Query> {
    Box::new(BoostQuery::new(Box::new(query), boost))
}

/// A filter: it restricts the matches and adds nothing to the score.
fn unscored(query: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(query, 0.0))
}

/// The sort key of each matching document, read from fast fields.
fn ranker(
    sort: SearchSort,
    currency: Currency,
) -> impl Fn(&SegmentReader) -> Box<dyn Fn(DocId, Score) -> RankKey> + Send + Sync + 'static {
    move |segment: &SegmentReader| {
        let fast = segment.fast_fields();
        // A segment without a column has no value in it for any document.
        let prices: Option<Column<u64>> = fast.column_opt(F_PRICES).ok().flatten();
        let popularity: Option<Column<u64>> = fast.column_opt(F_POPULARITY).ok().flatten();
        let recency: Option<Column<i64>> = fast.column_opt(F_RECENCY).ok().flatten();
        Box::new(move |doc: DocId, score: Score| {
            let recency = recency.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
            let popularity = popularity
                .as_ref()
                .and_then(|c| c.first(doc))
                .map_or(0, |p| i64::try_from(p).unwrap_or(i64::MAX));
            // Scores are never negative, and the bits of non-negative floats order like them.
            let relevance = i64::from(score.max(0.0).to_bits());
            let price = || {
                prices
                    .as_ref()
                    .and_then(|c| decode_price(currency, c.values_for_doc(doc)))
            };
            let order = match sort {
                SearchSort::Relevance => [relevance, popularity, recency],
                SearchSort::PriceAsc => price().map_or([0, 0, recency], |p| [1, -p, recency]),
                SearchSort::PriceDesc => price().map_or([0, 0, recency], |p| [1, p, recency]),
                SearchSort::Newest => [recency, relevance, popularity],
                SearchSort::Popularity => [popularity, relevance, recency],
            };
            RankKey { order, score }
        })
    }
}

fn facets_of(counts: FacetCounts, registry: &Registry) -> Facets {
    let mut categories: Vec<CategoryFacet> = counts
        .categories
        .into_iter()
        .filter_map(|(id, count)| {
            let id: CategoryId = id.parse().ok()?;
            Some(CategoryFacet {
                id,
                name: registry.get(&id).map(|c| c.name.clone()),
                count,
            })
        })
        .collect();
    categories.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
    categories.truncate(MAX_CATEGORY_FACETS);
    Facets {
        categories,
        price_bands: PRICE_BANDS
            .iter()
            .zip(counts.bands)
            .map(|((min, max), count)| PriceBand {
                min: *min,
                max: *max,
                count,
            })
            .collect(),
        availability: AvailabilityFacet {
            in_stock: counts.in_stock,
            out_of_stock: counts.out_of_stock,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_only_serves_the_search_that_issued_it() {
        let request = SearchRequest {
            q: Some("linen".into()),
            limit: Some(2),
            ..SearchRequest::default()
        };
        let plan = Plan::of(&request).expect("valid");
        let cursor = plan.next_cursor(10).expect("more pages");
        let next = Plan::of(&SearchRequest {
            cursor: Some(cursor.clone()),
            ..request.clone()
        })
        .expect("same search");
        assert_eq!(next.offset, 2);

        let other = SearchRequest {
            q: Some("cotton".into()),
            cursor: Some(cursor),
            ..request
        };
        let Err(SearchError::Invalid(errors)) = Plan::of(&other) else {
            panic!("a foreign cursor was accepted");
        };
        assert_eq!(errors[0].pointer, "/cursor");
        assert_eq!(errors[0].code, "invalid_cursor");
    }

    #[test]
    fn the_last_page_and_pages_past_the_depth_limit_have_no_cursor() {
        let plan = Plan::of(&SearchRequest {
            limit: Some(5),
            ..SearchRequest::default()
        })
        .expect("valid");
        assert!(plan.next_cursor(5).is_none());
        assert!(plan.next_cursor(6).is_some());
        let deep = Plan {
            offset: MAX_OFFSET,
            ..plan
        };
        assert!(deep.next_cursor(u64::MAX).is_none());
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        let request = SearchRequest {
            q: Some("x".repeat(201)),
            min_price: Some(500),
            max_price: Some(100),
            limit: Some(0),
            cursor: Some("garbage!".into()),
            ..SearchRequest::default()
        };
        let Err(SearchError::Invalid(errors)) = Plan::of(&request) else {
            panic!("accepted");
        };
        let mut got: Vec<_> = errors
            .iter()
            .map(|e| (e.pointer.as_str(), e.code.as_str()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("/cursor", "invalid_cursor"),
                ("/limit", "too_small"),
                ("/min_price", "invalid_range"),
                ("/q", "too_long"),
            ]
        );
    }
}
