//! Bulk product import (`emporium import products FILE`) and the demo catalog generator
//! (`emporium seed --products N`), both through one upsert pipeline.
//!
//! Products are upserted by handle (variants by SKU), so running a file again changes nothing.
//! Work is committed in batches; each product runs under its own savepoint, so it is written
//! whole or not at all, and a bad one is reported with its line number without stopping the rest.
//! The file formats are documented in `docs/IMPORT.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use emporium_catalog::CatalogError;
use emporium_catalog::{CollectionInput, NewCategory, NewProduct, NewVariant, Upserted};
use emporium_catalog::{ProductOption, ProductStatus};
use emporium_kernel::ids::{CategoryId, CollectionId, LocationId};
use emporium_kernel::{DomainError, Money};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::Store;

/// Products written per transaction (and stock levels per transaction after them).
const BATCH: usize = 2000;
/// Code of the stock location import and seed fill.
pub const DEFAULT_LOCATION: &str = "main";

/// One product of an import file (a JSON Lines record, or a group of CSV rows with one handle).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportProduct {
    pub handle: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub status: Option<ProductStatus>,
    #[serde(default)]
    pub options: Vec<ProductOption>,
    #[serde(default)]
    pub variants: Vec<ImportVariant>,
    /// Category paths, parent first: `"Apparel > Shirts"`. Missing categories are created.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Collection titles. Missing collections are created.
    #[serde(default)]
    pub collections: Vec<String>,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// One variant of an imported product.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportVariant {
    pub sku: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub weight_grams: i64,
    #[serde(default)]
    pub prices: Vec<Money>,
    /// Units on hand at the `main` location; absent leaves stock alone.
    #[serde(default)]
    pub stock: Option<i64>,
}

/// A record read from a file, or why it could not be read, with its line number.
pub type Record = (usize, Result<ImportProduct, String>);

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub stock_set: u64,
    /// `(line, reason)` of each product that was not written.
    pub failed: Vec<(usize, String)>,
}

/// Reads a JSON Lines file: one product per non-empty line.
pub fn read_jsonl(text: &str) -> Vec<Record> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            (
                i + 1,
                serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}")),
            )
        })
        .collect()
}

/// Reads a CSV file: one row per variant, rows of one product share its `handle` and follow
/// each other. Columns: `handle,title,description,status,categories,collections,option1_name,
/// option1_value,option2_name,option2_value,option3_name,option3_value,sku,variant_title,
/// weight_grams,stock` and one `price_<CUR>` column per currency. Product columns are read from
/// the first row of each product.
pub fn read_csv(text: &str) -> Vec<Record> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return vec![(1, Err(format!("unreadable header: {e}")))],
    };
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let prices: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.trim().strip_prefix("price_").map(|c| (i, c.to_owned())))
        .collect();
    let mut out: Vec<Record> = Vec::new();
    // The product being gathered, and the first bad row of it: one bad row fails the product.
    let mut current: Option<(usize, ImportProduct)> = None;
    let mut failure: Option<(usize, String)> = None;
    let finish = |out: &mut Vec<Record>,
                  current: Option<(usize, ImportProduct)>,
                  failure: &mut Option<(usize, String)>| {
        match (current, failure.take()) {
            (_, Some((line, reason))) => out.push((line, Err(reason))),
            (Some((line, product)), None) => out.push((line, Ok(product))),
            (None, None) => {}
        }
    };
    for (n, row) in reader.records().enumerate() {
        let line = n + 2;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                failure.get_or_insert((line, format!("unreadable row: {e}")));
                continue;
            }
        };
        let get = |name: &str| {
            col(name)
                .and_then(|i| row.get(i))
                .map(str::trim)
                .unwrap_or("")
        };
        let handle = get("handle").to_owned();
        if current.as_ref().is_none_or(|(_, p)| p.handle != handle) {
            finish(&mut out, current.take(), &mut failure);
            let status = match get("status") {
                "" => None,
                s => match serde_json::from_value(serde_json::Value::String(s.to_owned())) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        out.push((
                            line,
                            Err(format!("status `{s}` is not draft, published or archived")),
                        ));
                        continue;
                    }
                },
            };
            let split = |s: &str| {
                s.split('|')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            current = Some((
                line,
                ImportProduct {
                    handle,
                    title: get("title").to_owned(),
                    description: get("description").to_owned(),
                    status,
                    options: Vec::new(),
                    variants: Vec::new(),
                    categories: split(get("categories")),
                    collections: split(get("collections")),
                    attributes: serde_json::Map::new(),
                },
            ));
        }
        let Some((_, product)) = current.as_mut() else {
            continue;
        };
        let mut options = BTreeMap::new();
        for k in 1..=3 {
            let (name, value) = (
                get(&format!("option{k}_name")),
                get(&format!("option{k}_value")),
            );
            if name.is_empty() {
                continue;
            }
            options.insert(name.to_owned(), value.to_owned());
            match product.options.iter_mut().find(|o| o.name == name) {
                Some(o) if !o.values.iter().any(|v| v == value) => o.values.push(value.to_owned()),
                Some(_) => {}
                None => product.options.push(ProductOption {
                    name: name.to_owned(),
                    values: vec![value.to_owned()],
                }),
            }
        }
        let mut variant_prices = Vec::new();
        let mut bad = None;
        for (i, currency) in &prices {
            let cell = row.get(*i).map(str::trim).unwrap_or("");
            if cell.is_empty() {
                continue;
            }
            match (cell.parse::<i64>(), currency.parse()) {
                (Ok(amount), Ok(currency)) => variant_prices.push(Money { amount, currency }),
                _ => {
                    bad = Some(format!(
                        "price_{currency} `{cell}` is not an amount in minor units"
                    ))
                }
            }
        }
        let number = |name: &str| -> Result<Option<i64>, String> {
            match get(name) {
                "" => Ok(None),
                s => s
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name} `{s}` is not a whole number")),
            }
        };
        let (weight, stock) = match (number("weight_grams"), number("stock")) {
            (Ok(w), Ok(s)) => (w.unwrap_or(0), s),
            (Err(e), _) | (_, Err(e)) => {
                bad = Some(e);
                (0, None)
            }
        };
        if let Some(reason) = bad {
            failure.get_or_insert((line, reason));
            continue;
        }
        let title = Some(get("variant_title"))
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        product.variants.push(ImportVariant {
            sku: get("sku").to_owned(),
            title,
            options,
            weight_grams: weight,
            prices: variant_prices,
            stock,
        });
    }
    finish(&mut out, current.take(), &mut failure);
    out
}

/// Reads `path` as CSV (`.csv`) or JSON Lines (anything else).
pub fn read_file(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    Ok(if is_csv {
        read_csv(&text)
    } else {
        read_jsonl(&text)
    })
}

/// Upserts every record, reporting progress on `bar`.
pub async fn run(to: &Target, records: Vec<Record>, bar: &ProgressBar) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let categories = ensure_categories(to, &records).await?;
    let collections = ensure_collections(to, &records).await?;
    let mut location = None;
    for chunk in records.chunks(BATCH) {
        let mut products = Vec::with_capacity(chunk.len());
        let mut inputs = Vec::with_capacity(chunk.len());
        for (line, record) in chunk {
            match record {
                Ok(product) => {
                    inputs.push(input_of(product, &categories, &collections));
                    products.push((*line, product));
                }
                Err(reason) => summary.failed.push((*line, reason.clone())),
            }
        }
        let first = chunk.first().map_or(0, |(line, _)| *line);
        let outcomes = to
            .catalog
            .upsert_products(inputs)
            .await
            .with_context(|| format!("cannot write the products from line {first} on"))?;
        let mut stock = Vec::new();
        for ((line, product), outcome) in products.into_iter().zip(outcomes) {
            match outcome {
                Ok(Upserted::Created) => summary.created += 1,
                Ok(Upserted::Updated) => summary.updated += 1,
                Ok(Upserted::Unchanged) => summary.unchanged += 1,
                Err(e) => {
                    summary.failed.push((line, describe(&e)));
                    continue;
                }
            }
            stock.extend(
                product
                    .variants
                    .iter()
                    .filter_map(|v| v.stock.map(|n| (line, v.sku.clone(), n))),
            );
        }
        if !stock.is_empty() {
            let at = match location {
                Some(at) => at,
                None => *location.insert(default_location(to).await?),
            };
            summary.stock_set += set_stock(to, at, &stock, &mut summary.failed).await?;
        }
        bar.inc(chunk.len() as u64);
    }
    summary.failed.sort();
    Ok(summary)
}

/// The catalog's input for an import record, its categories and collections named by id.
fn input_of(
    product: &ImportProduct,
    categories: &HashMap<String, CategoryId>,
    collections: &HashMap<String, CollectionId>,
) -> NewProduct {
    NewProduct {
        handle: Some(product.handle.clone()),
        title: product.title.clone(),
        description: product.description.clone(),
        status: product.status,
        options: product.options.clone(),
        variants: product
            .variants
            .iter()
            .map(|v| NewVariant {
                sku: v.sku.clone(),
                title: v.title.clone(),
                options: v.options.clone(),
                weight_grams: v.weight_grams,
                prices: v.prices.clone(),
            })
            .collect(),
        category_ids: product
            .categories
            .iter()
            .filter_map(|c| categories.get(&path_key(c)).copied())
            .collect(),
        collection_ids: product
            .collections
            .iter()
            .filter_map(|c| collections.get(c.trim()).copied())
            .collect(),
        attributes: product.attributes.clone(),
    }
}

/// A one-line reason for a refused product: the code and every field at fault.
fn describe(e: &CatalogError) -> String {
    let (_, code) = e.kind_and_code();
    let fields: Vec<String> = e
        .violations()
        .iter()
        .map(|v| format!("{} {}", v.pointer, v.code))
        .collect();
    if fields.is_empty() {
        format!("{code}: {e}")
    } else {
        format!("{code}: {}", fields.join(", "))
    }
}

fn path_key(path: &str) -> String {
    path.split('>')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" > ")
}

/// Creates the categories the records name that do not exist yet; returns path → id.
async fn ensure_categories(
    to: &Target,
    records: &[Record],
) -> anyhow::Result<HashMap<String, CategoryId>> {
    let existing = to.catalog.list_categories().await?;
    let by_id: HashMap<CategoryId, &emporium_catalog::Category> =
        existing.iter().map(|c| (c.id, c)).collect();
    let mut paths: HashMap<String, CategoryId> = HashMap::new();
    for c in &existing {
        let names: Vec<&str> = c
            .path
            .iter()
            .filter_map(|id| by_id.get(id).map(|x| x.name.as_str()))
            .collect();
        paths.insert(names.join(" > "), c.id);
    }
    for (_, record) in records {
        let Ok(product) = record else { continue };
        for path in &product.categories {
            let mut prefix = String::new();
            let mut parent = None;
            for segment in path.split('>').map(str::trim).filter(|s| !s.is_empty()) {
                if !prefix.is_empty() {
                    prefix.push_str(" > ");
                }
                prefix.push_str(segment);
                let id = match paths.get(&prefix) {
                    Some(id) => *id,
                    None => {
                        let created = to
                            .catalog
                            .create_category(NewCategory {
                                name: segment.to_owned(),
                                parent_id: parent,
                                ..NewCategory::default()
                            })
                            .await
                            .with_context(|| format!("cannot create category `{prefix}`"))?;
                        paths.insert(prefix.clone(), created.id);
                        created.id
                    }
                };
                parent = Some(id);
            }
        }
    }
    Ok(paths)
}

/// Creates the collections the records name that do not exist yet; returns title → id.
async fn ensure_collections(
    to: &Target,
    records: &[Record],
) -> anyhow::Result<HashMap<String, CollectionId>> {
    let mut titles = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = to
            .catalog
            .list_collections(cursor.as_deref(), Some(100))
            .await?;
        for c in page.items {
            titles.insert(c.title, c.id);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    for (_, record) in records {
        let Ok(product) = record else { continue };
        for title in &product.collections {
            let title = title.trim();
            if !titles.contains_key(title) {
                let created = to
                    .catalog
                    .create_collection(CollectionInput {
                        title: Some(title.to_owned()),
                        ..CollectionInput::default()
                    })
                    .await
                    .with_context(|| format!("cannot create collection `{title}`"))?;
                titles.insert(title.to_owned(), created.id);
            }
        }
    }
    Ok(titles)
}

/// Sets `on_hand` at `location` for each `(line, sku, units)` whose level differs; returns how
/// many changed.
async fn set_stock(
    to: &Target,
    location: LocationId,
    wanted: &[(usize, String, i64)],
    failed: &mut Vec<(usize, String)>,
) -> anyhow::Result<u64> {
    let variants = to
        .catalog
        .variant_ids_by_sku(&wanted.iter().map(|(_, s, _)| s.clone()).collect::<Vec<_>>())
        .await?;
    let mut items = Vec::with_capacity(wanted.len());
    let mut at = Vec::with_capacity(wanted.len());
    for (line, sku, units) in wanted {
        if let Some(variant) = variants.get(sku) {
            items.push((*variant, *units));
            at.push((*line, sku));
        }
    }
    let outcomes = to
        .stock
        .set_levels(location, &items, "import", "import")
        .await?;
    let mut set = 0;
    for ((line, sku), outcome) in at.into_iter().zip(outcomes) {
        match outcome {
            Ok(true) => set += 1,
            Ok(false) => {}
            Err(e) => failed.push((line, format!("stock of {sku}: {}", e.kind_and_code().1))),
        }
    }
    Ok(set)
}

async fn default_location(to: &Target) -> anyhow::Result<LocationId> {
    Ok(to
        .stock
        .ensure_location(DEFAULT_LOCATION, "Main warehouse", "import")
        .await?)
}

/// A progress bar on standard error (hidden when it is not a terminal).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{per_sec}})"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Where an import writes: a catalog, and stock wherever inventory runs.
pub struct Target {
    pub catalog: Arc<emporium_catalog::CatalogService>,
    pub stock: Arc<dyn emporium_inventory::StockImport>,
}

impl Target {
    /// The catalog of `store` (which must run it) and its way to inventory.
    pub fn of(store: &Store) -> anyhow::Result<Self> {
        let catalog = store
            .catalog
            .as_ref()
            .context("this process does not run the catalog; import where it runs")?;
        Ok(Self {
            catalog: catalog.service.clone(),
            stock: store.stock_import.clone(),
        })
    }
}
