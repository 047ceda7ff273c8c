//! Pricing's service: the staff's rule and coupon writes (validate, then one transaction with
//! its event), the rules a quote reads (kept in memory, reloaded after a write through this
//! service and after [`RULES_MAX_AGE`], for writes through another process), and coupon
//! redemption for the checkout, by conditional update.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use emporium_db::{Db, WriteTx};
use emporium_kernel::cursor::{Cursor, Page, page_limit};
use emporium_kernel::ids::{CouponId, PriceListId, PromotionId, ShippingOptionId, TaxRateId};
use emporium_kernel::{Clock, Violations};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::PricingError;
use crate::events::{CouponChanged, RuleChanged};
use crate::quote::{Cart, CouponCode, Quote, QuoteError, quote};
use crate::rules::{
    Benefit, PriceList, Promotion, Rules, ShippingOption, ShippingRate, TaxRate, WHOLE,
};
use crate::store::{self, CouponRow, RuleRow};

/// Most rules of one kind on a list page.
const MAX_PAGE: u32 = 200;

/// A kind of stored rule: its name in storage and errors, its id, and what makes it valid.
pub trait Rule: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The `kind` column, also the noun in `pricing_rule_not_found` details.
    const KIND: &'static str;
    fn id(&self) -> Uuid;
    fn set_id(&mut self, id: Uuid);
    /// What must be unique among rules of this kind, if anything.
    fn unique_key(&self) -> Option<String> {
        None
    }
    /// Records every violation of the rule's own constraints.
    fn check(&self, v: &mut Violations);
}

/// A stored rule with its version (the ETag) and times.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stored<R> {
    #[serde(flatten)]
    pub rule: R,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A coupon code and its limits, as staff see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Coupon {
    pub id: CouponId,
    /// Upper-case; shoppers may type it in any case.
    pub code: String,
    pub promotion_id: PromotionId,
    /// Redemptions allowed over all shoppers; absent: no limit.
    #[schema(required = true)]
    pub usage_limit: Option<i64>,
    /// Redemptions allowed per customer (or guest e-mail); absent: no limit.
    #[schema(required = true)]
    pub per_customer_limit: Option<i64>,
    /// Redemptions so far.
    pub used: i64,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A new coupon.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCoupon {
    /// 3 to 64 of `A-Z`, `0-9`, `-`, `_` (lower case is taken as upper case).
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_-]{3,64}$")]
    pub code: String,
    pub promotion_id: PromotionId,
    #[serde(default)]
    pub usage_limit: Option<i64>,
    #[serde(default)]
    pub per_customer_limit: Option<i64>,
}

/// How long the rules a quote reads stay in memory: a rule written by another process (of a
/// store run as several) reaches this one's quotes within this time.
pub const RULES_MAX_AGE: Duration = Duration::from_secs(5);

/// Pricing's rules and coupons over one database.
pub struct PricingService {
    db: Db,
    clock: Arc<dyn Clock>,
    // Every rule, as a quote reads them, with when they were loaded; `None` after a write until
    // the next read loads them. A std lock, never held across an await.
    rules: RwLock<Option<(Instant, Arc<Rules>)>>,
    rules_max_age: Duration,
    // Counts the writes through this service: rules loaded while one happened are not kept.
    writes: AtomicU64,
    // What a quote reads of each code whose answer no use can change (a coupon without a
    // usage limit, or no coupon at all): its promotion, with when it was read. Kept as long
    // as the rules; a coupon write through this service clears it, and it holds at most
    // `COUPON_CACHE_CODES` codes. A limited coupon is always read, so an exhausted one never
    // shows as applied. A std lock, never held across an await.
    coupons: std::sync::Mutex<HashMap<String, (Instant, Option<PromotionId>)>>,
}

/// Codes kept by the quote's coupon cache at most (cleared when full: codes typed at random
/// must not grow it without bound).
const COUPON_CACHE_CODES: usize = 10_000;

impl PricingService {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            rules: RwLock::new(None),
            rules_max_age: RULES_MAX_AGE,
            writes: AtomicU64::new(0),
            coupons: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the rules in memory for `max_age` instead of [`RULES_MAX_AGE`].
    #[must_use]
    pub fn with_rules_max_age(mut self, max_age: Duration) -> Self {
        self.rules_max_age = max_age;
        self
    }

    /// Stores a new rule. Fails with `Invalid` (every violation, with its pointer) or, for a tax
    /// rate, `TaxRegionTaken`.
    pub async fn create_rule<R: Rule>(
        &self,
        mut rule: R,
        actor: &str,
    ) -> Result<Stored<R>, PricingError> {
        check_new(&rule)?;
        let now = self.clock.now();
        rule.set_id(Uuid::now_v7());
        let row = RuleRow {
            id: rule.id(),
            kind: R::KIND.to_owned(),
            unique_key: rule.unique_key(),
            body: to_json(&rule)?,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin_write().await?;
        store::insert_rule(&mut tx, &row)
            .await
            .map_err(taken_or_storage)?;
        record_rule(&mut tx, &row, "created", actor, now).await?;
        tx.commit().await?;
        self.forget_rules();
        Ok(Stored {
            rule,
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// Replaces rule `id` whole. With `if_match`, fails with `VersionMismatch` unless the stored
    /// version is that one; without, replaces whatever is stored.
    pub async fn replace_rule<R: Rule>(
        &self,
        id: Uuid,
        mut rule: R,
        if_match: Option<i64>,
        actor: &str,
    ) -> Result<Stored<R>, PricingError> {
        if rule.id() != Uuid::nil() && rule.id() != id {
            return Err(PricingError::invalid(
                "/id",
                "read_only",
                "the id is the one in the path; leave it out",
            ));
        }
        rule.set_id(id);
        check_new(&rule)?;
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let current = store::find_rule(&mut tx, R::KIND, id)
            .await?
            .ok_or(PricingError::RuleNotFound(R::KIND))?;
        let expected = if_match.unwrap_or(current.version);
        let row = RuleRow {
            id,
            kind: R::KIND.to_owned(),
            unique_key: rule.unique_key(),
            body: to_json(&rule)?,
            version: expected + 1,
            created_at: current.created_at,
            updated_at: now,
        };
        if !store::update_rule(&mut tx, &row, expected)
            .await
            .map_err(taken_or_storage)?
        {
            return Err(PricingError::VersionMismatch);
        }
        record_rule(&mut tx, &row, "updated", actor, now).await?;
        tx.commit().await?;
        self.forget_rules();
        Ok(Stored {
            rule,
            version: row.version,
            created_at: row.created_at,
            updated_at: now,
        })
    }

    /// Deletes rule `id`; `RuleNotFound` when there is none.
    pub async fn delete_rule<R: Rule>(&self, id: Uuid, actor: &str) -> Result<(), PricingError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = store::find_rule(&mut tx, R::KIND, id)
            .await?
            .ok_or(PricingError::RuleNotFound(R::KIND))?;
        store::delete_rule(&mut tx, R::KIND, id).await?;
        let gone = RuleRow {
            version: row.version + 1,
            ..row
        };
        record_rule(&mut tx, &gone, "deleted", actor, now).await?;
        tx.commit().await?;
        self.forget_rules();
        Ok(())
    }

    /// Rule `id`; `RuleNotFound` when there is none.
    pub async fn get_rule<R: Rule>(&self, id: Uuid) -> Result<Stored<R>, PricingError> {
        let mut conn = self.db.read().await?;
        let row = store::find_rule(&mut conn, R::KIND, id)
            .await?
            .ok_or(PricingError::RuleNotFound(R::KIND))?;
        stored(row)
    }

    /// A page of rules of one kind, by id.
    pub async fn list_rules<R: Rule>(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Stored<R>>, PricingError> {
        let (after, limit) = page_args(cursor, limit)?;
        let mut conn = self.db.read().await?;
        let rows = store::list_rules(&mut conn, R::KIND, after, limit + 1).await?;
        let items = rows
            .into_iter()
            .map(stored::<R>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, limit, |s| s.rule.id()))
    }

    /// Every rule, as a quote reads them: from memory, loaded again after any write through
    /// this service and once they are [`RULES_MAX_AGE`] old.
    pub async fn rules(&self) -> Result<Arc<Rules>, PricingError> {
        let cached = self.rules.read().ok().and_then(|r| r.clone());
        if let Some((loaded, rules)) = cached
            && loaded.elapsed() < self.rules_max_age
        {
            return Ok(rules);
        }
        let writes = self.writes.load(Ordering::Acquire);
        let loaded = Instant::now();
        let mut conn = self.db.read().await?;
        let rows = store::all_rules(&mut conn).await?;
        let mut rules = Rules::default();
        for row in rows {
            match row.kind.as_str() {
                PriceList::KIND => rules.price_lists.push(stored::<PriceList>(row)?.rule),
                Promotion::KIND => rules.promotions.push(stored::<Promotion>(row)?.rule),
                TaxRate::KIND => rules.tax_rates.push(stored::<TaxRate>(row)?.rule),
                ShippingOption::KIND => rules
                    .shipping_options
                    .push(stored::<ShippingOption>(row)?.rule),
                other => return Err(PricingError::Corrupt(format!("unknown rule kind {other}"))),
            }
        }
        let rules = Arc::new(rules);
        if let Ok(mut slot) = self.rules.write()
            && self.writes.load(Ordering::Acquire) == writes
        {
            *slot = Some((loaded, rules.clone()));
        }
        Ok(rules)
    }

    /// Quotes `cart` under the stored rules. `codes` are the coupon codes on the cart, as typed.
    pub async fn quote(
        &self,
        mut cart: Cart,
        codes: &[String],
    ) -> Result<Result<Quote, QuoteError>, PricingError> {
        let rules = self.rules().await?;
        cart.coupons.clear();
        for code in codes {
            let promotion_id = self.coupon_promotion(&normalise_code(code)).await?;
            cart.coupons.push(CouponCode {
                code: code.clone(),
                promotion_id,
            });
        }
        Ok(quote(&cart, &rules))
    }

    /// Creates a coupon for an existing promotion.
    pub async fn create_coupon(
        &self,
        input: CreateCoupon,
        actor: &str,
    ) -> Result<Coupon, PricingError> {
        let code = normalise_code(&input.code);
        let mut v = Violations::new();
        let printable = v
            .check("/code", emporium_kernel::text::single_line(&code))
            .is_some();
        if printable
            && (!(3..=64).contains(&code.len())
                || !code.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }))
        {
            v.push(
                "/code",
                "invalid_format",
                "3 to 64 of A-Z, 0-9, '-' and '_'",
            );
        }
        for (pointer, limit) in [
            ("/usage_limit", input.usage_limit),
            ("/per_customer_limit", input.per_customer_limit),
        ] {
            if limit.is_some_and(|l| l < 0) {
                v.push(pointer, "too_small", "at least 0");
            }
        }
        v.finish().map_err(PricingError::Invalid)?;
        let now = self.clock.now();
        let row = CouponRow {
            id: Uuid::now_v7(),
            code,
            promotion_id: input.promotion_id.0,
            usage_limit: input.usage_limit,
            per_customer_limit: input.per_customer_limit,
            used: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin_write().await?;
        if store::find_rule(&mut tx, Promotion::KIND, row.promotion_id)
            .await?
            .is_none()
        {
            return Err(PricingError::invalid(
                "/promotion_id",
                "not_found",
                "no promotion with this id",
            ));
        }
        store::insert_coupon(&mut tx, &row).await.map_err(|e| {
            if e.is_unique_violation() {
                PricingError::CouponCodeTaken
            } else {
                e.into()
            }
        })?;
        record_coupon(&mut tx, &row, "created", actor, now).await?;
        tx.commit().await?;
        self.forget_coupons();
        Ok(coupon(row))
    }

    /// Coupon `id`.
    pub async fn get_coupon(&self, id: CouponId) -> Result<Coupon, PricingError> {
        let mut conn = self.db.read().await?;
        store::find_coupon(&mut conn, id.0)
            .await?
            .map(coupon)
            .ok_or(PricingError::CouponNotFound)
    }

    /// A page of coupons, by id.
    pub async fn list_coupons(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Coupon>, PricingError> {
        let (after, limit) = page_args(cursor, limit)?;
        let mut conn = self.db.read().await?;
        let rows = store::list_coupons(&mut conn, after, limit + 1).await?;
        Ok(page(rows.into_iter().map(coupon).collect(), limit, |c| {
            c.id.0
        }))
    }

    /// Deletes coupon `id` (and its redemption history).
    pub async fn delete_coupon(&self, id: CouponId, actor: &str) -> Result<(), PricingError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = store::find_coupon(&mut tx, id.0)
            .await?
            .ok_or(PricingError::CouponNotFound)?;
        store::delete_coupon(&mut tx, id.0).await?;
        let gone = CouponRow {
            version: row.version + 1,
            ..row
        };
        record_coupon(&mut tx, &gone, "deleted", actor, now).await?;
        tx.commit().await?;
        self.forget_coupons();
        Ok(())
    }

    /// Redeems the coupon `code` for checkout `reference` and shopper `customer_key`, inside
    /// the caller's transaction: one use taken by a conditional update, so concurrent checkouts
    /// never redeem more than the limit, and one insert that counts the customer's uses.
    /// Redeeming again for the same reference changes nothing. Fails with `CouponNotFound`,
    /// `CouponExhausted` or `CouponCustomerLimit`.
    pub async fn redeem_in(
        &self,
        tx: &mut WriteTx,
        code: &str,
        reference: &str,
        customer_key: &str,
    ) -> Result<CouponId, PricingError> {
        let now = self.clock.now();
        let code = normalise_code(code);
        // The counter first: on PostgreSQL its row lock orders redemptions of one coupon, so
        // the per-customer count in the insert below (a statement of its own, so it sees every
        // redemption committed before the lock was granted) sees every earlier one.
        let Some((id, per_customer_limit)) = store::take_coupon_use(&mut *tx, &code, now).await?
        else {
            return Err(match store::find_coupon_by_code(&mut *tx, &code).await? {
                Some(_) => PricingError::CouponExhausted,
                None => PricingError::CouponNotFound,
            });
        };
        let inserted = store::insert_redemption(
            &mut *tx,
            id,
            reference,
            customer_key,
            per_customer_limit,
            now,
        )
        .await?;
        if !inserted {
            if !store::redeemed_by(&mut *tx, id, reference).await? {
                return Err(PricingError::CouponCustomerLimit);
            }
            // Already redeemed by this checkout: give back the use just taken.
            store::return_coupon_use(&mut *tx, id, now).await?;
        }
        Ok(CouponId(id))
    }

    /// Gives back the use checkout `reference` took of coupon `id` (a compensation); nothing
    /// when it took none.
    pub async fn return_in(
        &self,
        tx: &mut WriteTx,
        id: CouponId,
        reference: &str,
    ) -> Result<(), PricingError> {
        if store::delete_redemption(&mut *tx, id.0, reference).await? {
            store::return_coupon_use(&mut *tx, id.0, self.clock.now()).await?;
        }
        Ok(())
    }

    /// Starts a write transaction, for callers of [`Self::redeem_in`].
    pub async fn begin_write(&self) -> Result<WriteTx, PricingError> {
        Ok(self.db.begin_write().await?)
    }

    /// The promotion coupon `code` unlocks now: `None` when there is no such coupon or it is
    /// used up.
    async fn coupon_promotion(&self, code: &str) -> Result<Option<PromotionId>, PricingError> {
        let cached = self.coupons.lock().ok().and_then(|c| c.get(code).copied());
        if let Some((read, promotion)) = cached
            && read.elapsed() < self.rules_max_age
        {
            return Ok(promotion);
        }
        let writes = self.writes.load(Ordering::Acquire);
        let read = Instant::now();
        let mut conn = self.db.read().await?;
        let row = store::find_coupon_by_code(&mut conn, code).await?;
        drop(conn);
        let promotion = row
            .as_ref()
            .filter(|c| c.usage_limit.is_none_or(|l| c.used < l))
            .map(|c| PromotionId(c.promotion_id));
        let keep = row.as_ref().is_none_or(|c| c.usage_limit.is_none());
        if keep
            && let Ok(mut coupons) = self.coupons.lock()
            && self.writes.load(Ordering::Acquire) == writes
        {
            if coupons.len() >= COUPON_CACHE_CODES {
                coupons.clear();
            }
            coupons.insert(code.to_owned(), (read, promotion));
        }
        Ok(promotion)
    }

    /// Forgets every code the quote's coupon cache holds: a coupon was written.
    fn forget_coupons(&self) {
        // Counted first: a read running now may have read the coupon before this write.
        self.writes.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut coupons) = self.coupons.lock() {
            coupons.clear();
        }
    }

    fn forget_rules(&self) {
        // Counted first: a load running now may have read the rules before this write.
        self.writes.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut slot) = self.rules.write() {
            *slot = None;
        }
    }
}

/// Codes match in any case: stored and looked up upper-case, without surrounding blanks.
fn normalise_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

fn check_new<R: Rule>(rule: &R) -> Result<(), PricingError> {
    let mut v = Violations::new();
    rule.check(&mut v);
    v.finish().map_err(PricingError::Invalid)
}

fn to_json<T: Serialize>(value: &T) -> Result<String, PricingError> {
    serde_json::to_string(value).map_err(|e| PricingError::Corrupt(e.to_string()))
}

fn stored<R: Rule>(row: RuleRow) -> Result<Stored<R>, PricingError> {
    let mut rule: R = serde_json::from_str(&row.body)
        .map_err(|e| PricingError::Corrupt(format!("{} {}: {e}", R::KIND, row.id)))?;
    rule.set_id(row.id);
    Ok(Stored {
        rule,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn coupon(row: CouponRow) -> Coupon {
    Coupon {
        id: CouponId(row.id),
        code: row.code,
        promotion_id: PromotionId(row.promotion_id),
        usage_limit: row.usage_limit,
        per_customer_limit: row.per_customer_limit,
        used: row.used,
        version: row.version,
        created_at: row.created_at,
    }
}

fn taken_or_storage(e: emporium_db::DbError) -> PricingError {
    if e.is_unique_violation() {
        PricingError::TaxRegionTaken
    } else {
        e.into()
    }
}

fn page_args(cursor: Option<&str>, limit: Option<u32>) -> Result<(Uuid, i64), PricingError> {
    let mut v = Violations::new();
    let limit = v.check("/limit", page_limit(limit, 50, MAX_PAGE));
    let after = match cursor {
        Some(c) => v.check("/cursor", Cursor::decode::<Uuid>(c)),
        None => Some(Uuid::nil()),
    };
    v.finish().map_err(PricingError::Invalid)?;
    Ok((after.unwrap_or(Uuid::nil()), limit.unwrap_or(50)))
}

fn page<T>(mut items: Vec<T>, limit: i64, key: impl Fn(&T) -> Uuid) -> Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| items.last().map(|i| Cursor::encode(&key(i)).into_string()))
        .flatten();
    Page { items, next_cursor }
}

async fn record_rule(
    tx: &mut WriteTx,
    row: &RuleRow,
    action: &str,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), PricingError> {
    let id = match row.kind.as_str() {
        PriceList::KIND => PriceListId(row.id).to_string(),
        Promotion::KIND => PromotionId(row.id).to_string(),
        TaxRate::KIND => TaxRateId(row.id).to_string(),
        _ => ShippingOptionId(row.id).to_string(),
    };
    let event = RuleChanged {
        kind: row.kind.clone(),
        id,
        action: action.to_owned(),
        by: actor.to_owned(),
    };
    tx.record(&event, row.version, now).await?;
    Ok(())
}

async fn record_coupon(
    tx: &mut WriteTx,
    row: &CouponRow,
    action: &str,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), PricingError> {
    let event = CouponChanged {
        id: CouponId(row.id),
        code: row.code.clone(),
        promotion_id: PromotionId(row.promotion_id),
        action: action.to_owned(),
        by: actor.to_owned(),
    };
    tx.record(&event, row.version, now).await?;
    Ok(())
}

fn check_country(v: &mut Violations, pointer: &str, country: &str) {
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        v.push(
            pointer,
            "invalid_format",
            "an ISO 3166-1 alpha-2 code in upper case, e.g. DE",
        );
    }
}

fn check_name(v: &mut Violations, name: &str) {
    v.check("/name", emporium_kernel::text::single_line(name));
    if name.trim().is_empty() {
        v.push("/name", "required", "a name of 1 to 200 characters");
    } else if name.chars().count() > 200 {
        v.push("/name", "too_long", "at most 200 characters");
    }
}

fn check_share(v: &mut Violations, pointer: &str, basis_points: u32) {
    if basis_points > WHOLE {
        v.push(pointer, "too_large", "at most 10000 (100 %)");
    }
}

fn check_window(v: &mut Violations, pointer: &str, w: &crate::rules::Window) {
    if let (Some(s), Some(e)) = (w.starts_at, w.ends_at)
        && e <= s
    {
        v.push(
            pointer,
            "invalid_range",
            "ends_at must come after starts_at",
        );
    }
}

impl Rule for PriceList {
    const KIND: &'static str = "price_list";
    fn id(&self) -> Uuid {
        self.id.0
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = PriceListId(id);
    }
    fn check(&self, v: &mut Violations) {
        check_name(v, &self.name);
        check_window(v, "/window", &self.window);
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.prices.iter().enumerate() {
            if p.price.amount < 0 {
                v.push(
                    format!("/prices/{i}/price/amount"),
                    "too_small",
                    "at least 0",
                );
            }
            if !seen.insert((p.variant_id, p.price.currency)) {
                v.push(
                    format!("/prices/{i}"),
                    "duplicate",
                    "this variant has a price in this currency earlier in the list",
                );
            }
        }
    }
}

impl Rule for Promotion {
    const KIND: &'static str = "promotion";
    fn id(&self) -> Uuid {
        self.id.0
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = PromotionId(id);
    }
    fn check(&self, v: &mut Violations) {
        check_name(v, &self.name);
        check_window(v, "/conditions/window", &self.conditions.window);
        match &self.benefit {
            Benefit::OrderPercent { basis_points } | Benefit::ItemsPercent { basis_points, .. } => {
                check_share(v, "/benefit/basis_points", *basis_points);
            }
            Benefit::OrderFixed { amount } | Benefit::ItemsFixed { amount, .. } => {
                if amount.amount <= 0 {
                    v.push("/benefit/amount/amount", "too_small", "at least 1");
                }
            }
            Benefit::BuyXGetY {
                buy,
                get,
                basis_points,
                ..
            } => {
                check_share(v, "/benefit/basis_points", *basis_points);
                if *buy == 0 {
                    v.push("/benefit/buy", "too_small", "at least 1");
                }
                if *get == 0 {
                    v.push("/benefit/get", "too_small", "at least 1");
                }
            }
            Benefit::FreeShipping => {}
        }
        if self.conditions.min_subtotal.is_some_and(|m| m.amount < 0) {
            v.push("/conditions/min_subtotal/amount", "too_small", "at least 0");
        }
    }
}

impl Rule for TaxRate {
    const KIND: &'static str = "tax_rate";
    fn id(&self) -> Uuid {
        self.id.0
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = TaxRateId(id);
    }
    fn unique_key(&self) -> Option<String> {
        Some(format!(
            "{}/{}",
            self.country,
            self.state.as_deref().unwrap_or("")
        ))
    }
    fn check(&self, v: &mut Violations) {
        check_name(v, &self.name);
        check_country(v, "/country", &self.country);
        if let Some(state) = &self.state
            && (state.is_empty()
                || state.len() > 3
                || !state
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        {
            v.push(
                "/state",
                "invalid_format",
                "an ISO 3166-2 subdivision code without the country, e.g. NY",
            );
        }
        if self.basis_points > 5 * WHOLE {
            v.push("/basis_points", "too_large", "at most 50000 (500 %)");
        }
    }
}

impl Rule for ShippingOption {
    const KIND: &'static str = "shipping_option";
    fn id(&self) -> Uuid {
        self.id.0
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = ShippingOptionId(id);
    }
    fn check(&self, v: &mut Violations) {
        check_name(v, &self.name);
        for (i, c) in self.countries.iter().enumerate() {
            check_country(v, &format!("/countries/{i}"), c);
        }
        match &self.rate {
            ShippingRate::Flat { price } => {
                if price.amount < 0 {
                    v.push("/rate/price/amount", "too_small", "at least 0");
                }
            }
            ShippingRate::ByWeight { tiers, .. } => {
                if tiers.is_empty() {
                    v.push("/rate/tiers", "too_short", "at least one tier");
                }
                for (i, t) in tiers.iter().enumerate() {
                    if t.amount < 0 {
                        v.push(format!("/rate/tiers/{i}/amount"), "too_small", "at least 0");
                    }
                    if t.up_to_grams <= 0 {
                        v.push(
                            format!("/rate/tiers/{i}/up_to_grams"),
                            "too_small",
                            "at least 1",
                        );
                    }
                }
            }
        }
    }
}
