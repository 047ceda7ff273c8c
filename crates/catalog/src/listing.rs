//! Product lists: one statement assembled from constant fragments (values are always bound),
//! keyset pagination on the sort key plus the id, and one more statement for the availability of
//! the whole page. A page costs two indexed queries, however long the list.

use std::collections::HashMap;

use emporium_db::{Arg, ReadConn};
use emporium_kernel::{Currency, Cursor, FieldError, Page};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::{Product, ProductStatus};
use crate::error::CatalogError;
use crate::store::{self, DocumentRow};

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Most recently created first (the staff list).
    #[default]
    Created,
    /// Most recently published first.
    Newest,
    /// Cheapest first in the requested currency.
    PriceAsc,
    /// Dearest first in the requested currency.
    PriceDesc,
    /// By title, A to Z.
    Title,
}

impl Sort {
    fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Newest => "newest",
            Self::PriceAsc => "price_asc",
            Self::PriceDesc => "price_desc",
            Self::Title => "title",
        }
    }

    fn priced(self) -> bool {
        matches!(self, Self::PriceAsc | Self::PriceDesc)
    }
}

/// Where the previous page ended: the sort key of its last item and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorKey {
    sort: String,
    text: Option<String>,
    number: Option<i64>,
    nanos: Option<i128>,
    id: Uuid,
}

/// Decodes a cursor issued for `sort`.
pub fn decode_cursor(token: &str, sort: Sort) -> Result<CursorKey, FieldError> {
    let key: CursorKey = Cursor::decode(token)?;
    if key.sort != sort.name() {
        return Err(FieldError::new(
            "/cursor",
            "invalid_cursor",
            "the cursor belongs to a list with another sort",
        ));
    }
    Ok(key)
}

/// What a list selects and how it orders it.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Empty means any status.
    pub statuses: Vec<ProductStatus>,
    pub title_contains: Option<String>,
    /// Products in this category or its descendants.
    pub category_path: Option<String>,
    pub collection: Option<Uuid>,
    /// Required for a price filter or sort.
    pub currency: Option<Currency>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
    pub sort: Sort,
    pub after: Option<CursorKey>,
    pub limit: i64,
}

/// One page of products, with availability.
pub async fn page(conn: &mut ReadConn, filter: ListFilter) -> Result<Page<Product>, CatalogError> {
    let (sql, args) = statement(&filter);
    let mut rows = store::query_documents(&mut *conn, sql, &args).await?;
    let limit = usize::try_from(filter.limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last()
            .map(|r| cursor_after(filter.sort, r).into_string())
    } else {
        None
    };
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let stock = store::availability_of_products(&mut *conn, &ids).await?;
    let items = rows
        .iter()
        .map(|r| with_stock(&r.document, r.in_stock, &stock))
        .collect::<Result<_, _>>()?;
    Ok(Page { items, next_cursor })
}

fn cursor_after(sort: Sort, row: &DocumentRow) -> Cursor {
    let key = CursorKey {
        sort: sort.name().to_owned(),
        text: (sort == Sort::Title).then(|| row.title.clone()),
        number: if sort.priced() { row.min_amount } else { None },
        nanos: if sort == Sort::Newest {
            row.published_at.map(OffsetDateTime::unix_timestamp_nanos)
        } else {
            None
        },
        id: row.id,
    };
    Cursor::encode(&key)
}

/// The product document with `in_stock` and each variant's availability filled in.
pub fn with_stock(
    document: &str,
    in_stock: bool,
    stock: &[(Uuid, i64)],
) -> Result<Product, CatalogError> {
    let mut product: Product = serde_json::from_str(document)?;
    let by_variant: HashMap<Uuid, i64> = stock.iter().copied().collect();
    product.in_stock = Some(in_stock);
    for variant in &mut product.variants {
        variant.available = Some(by_variant.get(&variant.id.0).copied().unwrap_or(0).max(0));
    }
    Ok(product)
}

/// The SQL and its bind values for `filter`. Every fragment is a constant; only placeholders
/// carry data.
fn statement(filter: &ListFilter) -> (String, Vec<Arg>) {
    let mut args: Vec<Arg> = Vec::new();
    let next = |args: &mut Vec<Arg>, arg: Arg| {
        args.push(arg);
        format!("${}", args.len())
    };
    let priced = filter.currency.is_some()
        && (filter.sort.priced() || filter.min_price.is_some() || filter.max_price.is_some());
    let mut sql = String::from("SELECT p.id, p.document, p.in_stock, p.title, p.published_at, ");
    if priced {
        sql.push_str("pp.min_amount AS min_amount FROM products p ");
        let cur = next(
            &mut args,
            Arg::Text(filter.currency.map(|c| c.to_string()).unwrap_or_default()),
        );
        sql.push_str(&format!(
            "JOIN product_prices pp ON pp.product_id = p.id AND pp.currency = {cur} "
        ));
    } else {
        sql.push_str("CAST(NULL AS BIGINT) AS min_amount FROM products p ");
    }
    sql.push_str("WHERE 1 = 1");
    if !filter.statuses.is_empty() {
        let list: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| next(&mut args, Arg::Text(s.as_str().to_owned())))
            .collect();
        sql.push_str(&format!(" AND p.status IN ({})", list.join(", ")));
    }
    if let Some(flag) = filter.in_stock {
        let p = next(&mut args, Arg::Bool(flag));
        sql.push_str(&format!(" AND p.in_stock = {p}"));
    }
    if let Some(text) = filter.title_contains.as_deref().filter(|t| !t.is_empty()) {
        let p = next(
            &mut args,
            Arg::Text(format!("%{}%", escape_like(&text.to_lowercase()))),
        );
        sql.push_str(&format!(" AND lower(p.title) LIKE {p} ESCAPE '\\'"));
    }
    if let Some(path) = &filter.category_path {
        // The category and its descendants are the paths in [path, path with its final `/`
        // raised to `0`): an index range, probed once per product the walk visits.
        let upper = format!("{}0", path.strip_suffix('/').unwrap_or(path));
        let lo = next(&mut args, Arg::Text(path.clone()));
        let hi = next(&mut args, Arg::Text(upper));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM product_categories pc JOIN categories c ON c.id = pc.category_id \
             WHERE pc.product_id = p.id AND c.path >= {lo} AND c.path < {hi})"
        ));
    }
    if let Some(collection) = filter.collection {
        let p = next(&mut args, Arg::Uuid(collection));
        sql.push_str(&format!(
            " AND p.id IN (SELECT product_id FROM product_collections WHERE collection_id = {p})"
        ));
    }
    if priced {
        if let Some(min) = filter.min_price {
            let p = next(&mut args, Arg::Int(min));
            sql.push_str(&format!(" AND pp.min_amount >= {p}"));
        }
        if let Some(max) = filter.max_price {
            let p = next(&mut args, Arg::Int(max));
            sql.push_str(&format!(" AND pp.min_amount <= {p}"));
        }
    }
    if let Some(after) = &filter.after {
        let id = after.id;
        match filter.sort {
            Sort::Created => {
                let p = next(&mut args, Arg::Uuid(id));
                sql.push_str(&format!(" AND p.id < {p}"));
            }
            Sort::Newest => {
                let at = after
                    .nanos
                    .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let a = next(&mut args, Arg::Time(at));
                let c = next(&mut args, Arg::Uuid(id));
                sql.push_str(&format!(" AND (p.published_at, p.id) < ({a}, {c})"));
            }
            Sort::Title => {
                let a = next(&mut args, Arg::Text(after.text.clone().unwrap_or_default()));
                let c = next(&mut args, Arg::Uuid(id));
                sql.push_str(&format!(" AND (p.title, p.id) > ({a}, {c})"));
            }
            Sort::PriceAsc | Sort::PriceDesc if priced => {
                let a = next(&mut args, Arg::Int(after.number.unwrap_or_default()));
                let c = next(&mut args, Arg::Uuid(id));
                let cmp = if filter.sort == Sort::PriceAsc {
                    ">"
                } else {
                    "<"
                };
                sql.push_str(&format!(
                    " AND (pp.min_amount, pp.product_id) {cmp} ({a}, {c})"
                ));
            }
            Sort::PriceAsc | Sort::PriceDesc => {}
        }
    }
    sql.push_str(match filter.sort {
        Sort::Created => " ORDER BY p.id DESC",
        Sort::Newest => " ORDER BY p.published_at DESC, p.id DESC",
        Sort::Title => " ORDER BY p.title, p.id",
        // Ordered by the index's own columns, so the walk needs no sort.
        Sort::PriceAsc if priced => " ORDER BY pp.min_amount, pp.product_id",
        Sort::PriceDesc if priced => " ORDER BY pp.min_amount DESC, pp.product_id DESC",
        Sort::PriceAsc | Sort::PriceDesc => " ORDER BY p.id DESC",
    });
    let p = next(&mut args, Arg::Int(filter.limit + 1));
    sql.push_str(&format!(" LIMIT {p}"));
    (sql, args)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_a_placeholder() {
        let filter = ListFilter {
            statuses: vec![ProductStatus::Published],
            title_contains: Some("x'; DROP TABLE products; --".into()),
            category_path: Some("/abc/".into()),
            currency: "EUR".parse().ok(),
            min_price: Some(100),
            max_price: Some(900),
            in_stock: Some(true),
            sort: Sort::PriceAsc,
            limit: 20,
            ..ListFilter::default()
        };
        let (sql, args) = statement(&filter);
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(!sql.contains("EUR"), "{sql}");
        assert_eq!(sql.matches('$').count(), args.len());
        assert!(sql.contains("ORDER BY pp.min_amount, pp.product_id"));
    }

    #[test]
    fn a_cursor_of_another_sort_is_refused() {
        let row = DocumentRow {
            id: Uuid::now_v7(),
            document: String::new(),
            in_stock: true,
            title: "A".into(),
            published_at: None,
            min_amount: None,
        };
        let token = cursor_after(Sort::Title, &row).into_string();
        assert!(decode_cursor(&token, Sort::Title).is_ok());
        assert_eq!(
            decode_cursor(&token, Sort::Newest).map_err(|e| e.code),
            Err("invalid_cursor".to_owned())
        );
    }
}
