//! The cart service: who may touch a cart, what may go in it, and its totals. Every answer is
//! the whole cart with totals computed by pricing's quote, so the storefront never adds up.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use emporium_catalog::{CatalogApi, Purchasable};
use emporium_db::{Db, WriteTx};
use emporium_inventory::InventoryApi;
use emporium_kernel::ids::{
    CartId, CartItemId, CheckoutId, ProductId, ShippingOptionId, VariantId,
};
use emporium_kernel::token::{new_token, sha256_hex as hash};
use emporium_kernel::{Clock, Currency, Violations};
use emporium_pricing::{PricingService, Quote, Region};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{CartError, Short};
use crate::store::{self, CartRow, ItemRow};

/// Units of one variant a cart may hold.
pub const MAX_QUANTITY: i64 = 10_000;
/// Distinct variants a cart may hold.
pub const MAX_ITEMS: usize = 100;
/// Coupon codes a cart may hold.
pub const MAX_COUPONS: usize = 5;
/// How often a change is planned again when the cart changed between its planning read and
/// its write, before the caller gets `cart_changed`.
const PLAN_ATTEMPTS: usize = 5;

/// A postal address to ship to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// 1 to 200 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// 1 to 200 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub line1: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub line2: Option<String>,
    /// 1 to 100 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    /// 1 to 20 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 20)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(default)]
    #[schema(pattern = r"^[A-Z]{2}$")]
    pub country: String,
    /// An ISO 3166-2 subdivision code without the country (`NY`), where the country has them.
    #[serde(default)]
    #[schema(pattern = r"^[A-Z0-9]{1,3}$")]
    pub state: Option<String>,
}

/// A cart line, with its figures from the quote.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CartItem {
    pub id: CartItemId,
    pub variant_id: VariantId,
    pub quantity: i64,
    /// False when the variant can no longer be bought (deleted, unpublished, or no price in the
    /// cart's currency): the line stays, out of the totals, until the shopper removes it.
    pub purchasable: bool,
    #[schema(required = true)]
    pub product_id: Option<ProductId>,
    #[schema(required = true)]
    pub product_title: Option<String>,
    #[schema(required = true)]
    pub variant_title: Option<String>,
    #[schema(required = true)]
    pub sku: Option<String>,
    #[schema(required = true)]
    pub unit_price: Option<i64>,
    #[schema(required = true)]
    pub compare_at_price: Option<i64>,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
}

/// A cart and its totals.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Cart {
    pub id: CartId,
    /// The customer (`cus_…`) whose cart it is; absent for a guest's.
    #[schema(required = true)]
    pub customer_id: Option<String>,
    pub currency: Currency,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub shipping_address: Option<Address>,
    #[schema(required = true)]
    pub shipping_option_id: Option<ShippingOptionId>,
    /// Codes as typed; `totals.coupons` tells whether each applies.
    pub coupon_codes: Vec<String>,
    pub items: Vec<CartItem>,
    pub totals: Quote,
    /// The checkout holding the cart: from its start until it fails the cart takes no change
    /// (`cart_checked_out`); absent while the cart is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_id: Option<CheckoutId>,
    /// Present when the catalog did not answer: the lines' titles, prices and totals come
    /// from the last data known of the catalog, read at this time. A checkout takes such data
    /// only while it is recent (else 503 `catalog_unavailable`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub catalog_as_of: Option<OffsetDateTime>,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A shipping option offered to a cart, with its price.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OfferedShipping {
    pub id: ShippingOptionId,
    pub name: String,
    pub amount: i64,
    pub currency: Currency,
}

/// What proves a caller may use a cart: its token (`X-Cart-Token`), or the session of the
/// customer it belongs to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Access<'a> {
    pub token: Option<&'a str>,
    /// The caller's customer subject (`cus_…`), when a customer token came with the request.
    pub customer: Option<&'a str>,
}

/// Where a cart learns its customer's groups, for the price lists and promotions of a group
/// (identity, in the all-in-one binary).
#[async_trait::async_trait]
pub trait CustomerGroups: Send + Sync {
    /// The groups of customer `customer` (`cus_…`); none for a customer that does not exist.
    async fn groups_of(&self, customer: &str) -> Result<Vec<String>, CartError>;
}

/// Carts over one database, with the catalog, inventory and pricing they consult.
pub struct CartService {
    db: Db,
    clock: Arc<dyn Clock>,
    catalog: Arc<dyn CatalogApi>,
    inventory: Arc<dyn InventoryApi>,
    pricing: Arc<PricingService>,
    /// Without it every shopper is in no group.
    groups: Option<Arc<dyn CustomerGroups>>,
}

impl CartService {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        catalog: Arc<dyn CatalogApi>,
        inventory: Arc<dyn InventoryApi>,
        pricing: Arc<PricingService>,
    ) -> Self {
        Self {
            db,
            clock,
            catalog,
            inventory,
            pricing,
            groups: None,
        }
    }

    /// Prices the carts of customers with their groups' price lists and promotions.
    #[must_use]
    pub fn with_customer_groups(mut self, groups: Arc<dyn CustomerGroups>) -> Self {
        self.groups = Some(groups);
        self
    }

    /// Opens a cart in `currency`; returns it and the token that opens it later (shown once,
    /// only its hash is kept). With `customer`, the cart is also that customer's.
    pub async fn create(
        &self,
        currency: &str,
        email: Option<String>,
        customer: Option<&str>,
    ) -> Result<(Cart, String), CartError> {
        let mut v = Violations::new();
        let currency = v.check(
            "/currency",
            currency.parse::<Currency>().map_err(|e| {
                emporium_kernel::FieldError::new("/currency", "invalid_format", e.to_string())
            }),
        );
        let email = email.map(|e| e.trim().to_owned());
        if let Some(e) = &email {
            check_email(&mut v, e);
        }
        v.finish().map_err(CartError::Invalid)?;
        let token = new_token();
        let now = self.clock.now();
        let row = CartRow {
            id: Uuid::now_v7(),
            token_hash: hash(&token),
            customer_id: customer.map(str::to_owned),
            currency: currency.map(|c| c.to_string()).unwrap_or_default(),
            email,
            shipping_address: None,
            shipping_option_id: None,
            coupon_codes: "[]".to_owned(),
            version: 1,
            created_at: now,
            updated_at: now,
            checkout_id: None,
        };
        let mut tx = self.db.begin_write_relaxed().await?;
        store::insert_cart(&mut tx, &row).await?;
        tx.commit().await?;
        Ok((self.view(row, Vec::new()).await?, token))
    }

    /// The cart, with its totals.
    pub async fn get(&self, id: CartId, access: Access<'_>) -> Result<Cart, CartError> {
        let (row, items) = self.read(id, access).await?;
        self.view(row, items).await
    }

    /// Adds `quantity` units of `variant` (to its line, when the cart has one). Fails with
    /// `Invalid` (`/variant_id` not purchasable in the cart's currency, `/quantity` out of
    /// range, too many items) or `OutOfStock` when the line would ask for more than is
    /// available.
    pub async fn add_item(
        &self,
        id: CartId,
        access: Access<'_>,
        variant: VariantId,
        quantity: i64,
    ) -> Result<Cart, CartError> {
        check_quantity(quantity)?;
        let (info, _) = &self.catalog.purchasable_or_known(&[variant]).await?;
        self.change(id, access, |row, mut items| async move {
            let priced = info
                .first()
                .and_then(Option::as_ref)
                .is_some_and(|p| p.prices.iter().any(|m| m.currency.as_str() == row.currency));
            if !priced {
                return Err(CartError::invalid(
                    "/variant_id",
                    "not_purchasable",
                    "no published variant with this id has a price in the cart's currency",
                ));
            }
            let line = items.iter().position(|i| i.variant_id == variant.0);
            let wanted = line.map_or(quantity, |at| items[at].quantity + quantity);
            check_quantity(wanted)?;
            if line.is_none() && items.len() >= MAX_ITEMS {
                return Err(CartError::invalid(
                    "/variant_id",
                    "too_many",
                    format!("a cart holds at most {MAX_ITEMS} different variants"),
                ));
            }
            self.check_stock(&[(variant, wanted)]).await?;
            let write = match line {
                Some(at) => {
                    items[at].quantity = wanted;
                    ItemWrite::SetQuantity(items[at].id, wanted)
                }
                None => {
                    let item = ItemRow {
                        id: Uuid::now_v7(),
                        cart_id: id.0,
                        variant_id: variant.0,
                        quantity,
                        created_at: self.clock.now(),
                    };
                    items.push(item.clone());
                    ItemWrite::Insert(item)
                }
            };
            Ok((row, items, Change::write(vec![write])))
        })
        .await
    }

    /// Sets an item's quantity (checked against stock as when adding).
    pub async fn set_item_quantity(
        &self,
        id: CartId,
        access: Access<'_>,
        item: CartItemId,
        quantity: i64,
    ) -> Result<Cart, CartError> {
        check_quantity(quantity)?;
        self.change(id, access, |row, mut items| async move {
            let at = items
                .iter()
                .position(|i| i.id == item.0)
                .ok_or(CartError::ItemNotFound)?;
            if quantity > items[at].quantity {
                self.check_stock(&[(VariantId(items[at].variant_id), quantity)])
                    .await?;
            }
            items[at].quantity = quantity;
            let write = ItemWrite::SetQuantity(item.0, quantity);
            Ok((row, items, Change::write(vec![write])))
        })
        .await
    }

    /// Removes an item (`ItemNotFound` when the cart has none with this id), planned and
    /// written as every change is (see [`CartService::change`]).
    pub async fn remove_item(
        &self,
        id: CartId,
        access: Access<'_>,
        item: CartItemId,
    ) -> Result<Cart, CartError> {
        self.change(id, access, |row, mut items| async move {
            let at = items
                .iter()
                .position(|i| i.id == item.0)
                .ok_or(CartError::ItemNotFound)?;
            items.remove(at);
            Ok((row, items, Change::write(vec![ItemWrite::Delete(item.0)])))
        })
        .await
    }

    /// Sets the e-mail and/or the shipping address (absent: unchanged). A new address drops a
    /// chosen shipping option that does not ship there.
    pub async fn update_details(
        &self,
        id: CartId,
        access: Access<'_>,
        email: Option<String>,
        address: Option<Address>,
    ) -> Result<Cart, CartError> {
        let mut v = Violations::new();
        let email = email.map(|e| e.trim().to_owned());
        if let Some(e) = &email {
            check_email(&mut v, e);
        }
        if let Some(a) = &address {
            check_address(&mut v, a);
        }
        v.finish().map_err(CartError::Invalid)?;
        let (email, address) = (&email, &address);
        self.change(id, access, |mut row, items| async move {
            if email.is_some() {
                row.email.clone_from(email);
            }
            if let Some(a) = &address {
                row.shipping_address = Some(to_json(a)?);
            }
            if address.is_some()
                && let Some(option) = row.shipping_option_id
            {
                let offered = self.offered(&row, &items).await?;
                if !offered.iter().any(|o| o.id.0 == option) {
                    row.shipping_option_id = None;
                }
            }
            Ok((row, items, Change::write(Vec::new())))
        })
        .await
    }

    /// The shipping options that ship this cart (its address, currency and weight), priced.
    pub async fn shipping_options(
        &self,
        id: CartId,
        access: Access<'_>,
    ) -> Result<Vec<OfferedShipping>, CartError> {
        let (row, items) = self.read(id, access).await?;
        self.offered(&row, &items).await
    }

    /// Chooses a shipping option; it must be one [`Self::shipping_options`] offers.
    pub async fn choose_shipping(
        &self,
        id: CartId,
        access: Access<'_>,
        option: ShippingOptionId,
    ) -> Result<Cart, CartError> {
        self.change(id, access, |mut row, items| async move {
            if !self
                .offered(&row, &items)
                .await?
                .iter()
                .any(|o| o.id == option)
            {
                return Err(CartError::invalid(
                    "/option_id",
                    "not_offered",
                    "this option does not ship this cart (address, currency or weight)",
                ));
            }
            row.shipping_option_id = Some(option.0);
            Ok((row, items, Change::write(Vec::new())))
        })
        .await
    }

    /// Adds a coupon code; it must exist and apply to the cart as it is now. A code with a
    /// control character (NUL, a line break, an escape) is `invalid_format` at `/code`.
    pub async fn add_coupon(
        &self,
        id: CartId,
        access: Access<'_>,
        code: &str,
    ) -> Result<Cart, CartError> {
        let mut v = Violations::new();
        v.check("/code", emporium_kernel::text::single_line(code));
        v.finish().map_err(CartError::Invalid)?;
        let code = code.trim().to_owned();
        if code.is_empty() || code.len() > 64 {
            return Err(CartError::invalid(
                "/code",
                "invalid_format",
                "1 to 64 characters",
            ));
        }
        let code = &code;
        self.change(id, access, |mut row, items| async move {
            let mut codes = codes_of(&row)?;
            if codes.iter().any(|c| c.eq_ignore_ascii_case(code)) {
                return Ok((row, items, Change::None));
            }
            if codes.len() >= MAX_COUPONS {
                return Err(CartError::invalid(
                    "/code",
                    "too_many",
                    format!("a cart holds at most {MAX_COUPONS} coupon codes"),
                ));
            }
            codes.push(code.clone());
            row.coupon_codes = to_json(&codes)?;
            // The cart as it will be once saved: the code is checked on it, and it is the answer.
            let after = self
                .view(
                    CartRow {
                        version: row.version + 1,
                        ..row.clone()
                    },
                    items.clone(),
                )
                .await?;
            let outcome = after.totals.coupons.iter().find(|o| o.code == *code);
            match outcome.map(|o| (o.applied, o.reason)) {
                Some((true, _)) => {}
                Some((false, Some("coupon_unknown"))) | None => {
                    return Err(CartError::CouponNotFound);
                }
                Some((false, reason)) => {
                    return Err(CartError::CouponNotApplicable(
                        reason.unwrap_or("coupon_not_applicable"),
                    ));
                }
            }
            let change = Change::Write {
                items: Vec::new(),
                answer: Some(Box::new(after)),
            };
            Ok((row, items, change))
        })
        .await
    }

    /// Removes a coupon code (any case); removing one the cart does not hold changes nothing.
    /// Planned and written as every change is (see [`CartService::change`]).
    pub async fn remove_coupon(
        &self,
        id: CartId,
        access: Access<'_>,
        code: &str,
    ) -> Result<Cart, CartError> {
        let code = code.trim();
        self.change(id, access, |mut row, items| async move {
            let mut codes = codes_of(&row)?;
            let before = codes.len();
            codes.retain(|c| !c.eq_ignore_ascii_case(code));
            if codes.len() == before {
                return Ok((row, items, Change::None));
            }
            row.coupon_codes = to_json(&codes)?;
            Ok((row, items, Change::write(Vec::new())))
        })
        .await
    }

    /// Merges the guest cart `id` (opened by its token) into the signed-in customer's cart, as
    /// a storefront does right after sign-in. When the customer has no other cart, this one
    /// becomes theirs. Otherwise its items join the customer's latest cart (quantities of a
    /// variant in both add up, to at most [`MAX_QUANTITY`]; stock is checked again at
    /// checkout), and so do its coupon codes, e-mail and address where that cart has none;
    /// the guest cart is then gone. Returns the customer's cart.
    pub async fn merge_into_customer(
        &self,
        id: CartId,
        token: Option<&str>,
        customer: &str,
    ) -> Result<Cart, CartError> {
        retrying(|| self.try_merge(id, token, customer)).await
    }

    /// One attempt of [`CartService::merge_into_customer`], planned on a read of both carts and
    /// written only if both are still the versions read: `None` when either changed meanwhile.
    async fn try_merge(
        &self,
        id: CartId,
        token: Option<&str>,
        customer: &str,
    ) -> Result<Option<Cart>, CartError> {
        let guest_access = Access {
            token,
            customer: None,
        };
        let now = self.clock.now();
        let mut conn = self.db.read().await?;
        let guest = authorise(store::find_cart(&mut conn, id.0).await?, guest_access)?;
        writable(&guest)?;
        if guest.customer_id.as_deref().is_some_and(|c| c != customer) {
            return Err(CartError::CartNotFound);
        }
        let target = store::latest_cart_of(&mut conn, customer, id.0).await?;
        let guest_items = store::list_items(&mut conn, id.0).await?;
        let Some(mut target) = target else {
            drop(conn);
            let mut tx = self.db.begin_write_relaxed().await?;
            if !store::set_customer(&mut tx, id.0, guest.version, customer, now).await? {
                return Ok(None);
            }
            tx.commit().await?;
            let row = CartRow {
                customer_id: Some(customer.to_owned()),
                version: guest.version + 1,
                updated_at: now,
                ..guest
            };
            return self.view(row, guest_items).await.map(Some);
        };
        if target.currency != guest.currency {
            return Err(CartError::invalid(
                "/currency",
                "currency_mismatch",
                "the customer's cart is in another currency; move the items by hand",
            ));
        }
        let mut items = store::list_items(&mut conn, target.id).await?;
        drop(conn);
        let mut raised = Vec::new();
        let mut inserted = Vec::new();
        for moved in guest_items {
            let room = items.len() < MAX_ITEMS;
            match items.iter_mut().find(|i| i.variant_id == moved.variant_id) {
                Some(line) => {
                    line.quantity = (line.quantity + moved.quantity).min(MAX_QUANTITY);
                    raised.push((line.id, line.quantity));
                }
                None if room => {
                    let line = ItemRow {
                        id: Uuid::now_v7(),
                        cart_id: target.id,
                        ..moved
                    };
                    inserted.push(line.clone());
                    items.push(line);
                }
                None => {}
            }
        }
        let mut codes = codes_of(&target)?;
        for code in codes_of(&guest)? {
            if codes.len() < MAX_COUPONS && !codes.iter().any(|c| c.eq_ignore_ascii_case(&code)) {
                codes.push(code);
            }
        }
        target.coupon_codes = to_json(&codes)?;
        if target.email.is_none() {
            target.email = guest.email;
        }
        if target.shipping_address.is_none() {
            target.shipping_address = guest.shipping_address;
            target.shipping_option_id = guest.shipping_option_id;
        }
        target.updated_at = now;
        let mut tx = self.db.begin_write_relaxed().await?;
        // Both carts are claimed in the order of their ids, so two merges of the same pair the
        // other way round wait for each other instead of deadlocking on PostgreSQL.
        let guest_first = guest.id < target.id;
        if guest_first && !store::delete_cart(&mut tx, guest.id, guest.version).await? {
            return Ok(None);
        }
        if !store::update_cart(&mut tx, &target).await? {
            return Ok(None);
        }
        if !guest_first && !store::delete_cart(&mut tx, guest.id, guest.version).await? {
            return Ok(None);
        }
        for (line, quantity) in raised {
            store::set_quantity(&mut tx, line, quantity).await?;
        }
        for line in &inserted {
            store::insert_item(&mut tx, line).await?;
        }
        tx.commit().await?;
        target.version += 1;
        self.view(target, items).await.map(Some)
    }

    /// Lets checkout `checkout` hold cart `id`, in `tx` (the checkout's claim), if the cart is
    /// still at `version` (as the checkout read it) and no other checkout holds it: from then
    /// on the cart takes no change (`CheckedOut`) until [`CartService::release_in`]. False when
    /// the cart changed or is held.
    pub async fn hold_in(
        &self,
        tx: &mut WriteTx,
        id: CartId,
        version: i64,
        checkout: Uuid,
    ) -> Result<bool, CartError> {
        Ok(store::hold_for_checkout(&mut *tx, id.0, version, checkout).await?)
    }

    /// Gives cart `id` back to changes, in `tx`, if checkout `checkout` holds it (the checkout
    /// failed).
    pub async fn release_in(
        &self,
        tx: &mut WriteTx,
        id: CartId,
        checkout: Uuid,
    ) -> Result<(), CartError> {
        Ok(store::release_from_checkout(&mut *tx, id.0, checkout).await?)
    }

    /// Deletes the cart and its items: what a completed checkout does with it.
    pub async fn close(&self, id: CartId) -> Result<(), CartError> {
        self.close_all(&[id]).await
    }

    /// Closes every cart of `ids` (see [`CartService::close`]) in one transaction.
    pub async fn close_all(&self, ids: &[CartId]) -> Result<(), CartError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        let mut tx = self.db.begin_write().await?;
        store::delete_carts(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cart `id` as `access` opens it, and its items, read without the writer.
    async fn read(
        &self,
        id: CartId,
        access: Access<'_>,
    ) -> Result<(CartRow, Vec<ItemRow>), CartError> {
        let mut conn = self.db.read().await?;
        let found = store::find_cart_with_items(&mut conn, id.0).await?;
        drop(conn);
        let (row, items) = found.unzip();
        let row = authorise(row, access)?;
        Ok((row, items.unwrap_or_default()))
    }

    /// As [`CartService::read`], for planning a change: a cart a checkout holds takes none.
    async fn read_for_change(
        &self,
        id: CartId,
        access: Access<'_>,
    ) -> Result<(CartRow, Vec<ItemRow>), CartError> {
        let (row, items) = self.read(id, access).await?;
        writable(&row)?;
        Ok((row, items))
    }

    /// Applies a change to cart `id`: `plan` decides it on a read of the cart (editing the row
    /// and items it is given into what they will be), and the change is written only if the
    /// cart is still the version read; when another write got in first it is planned again on
    /// the cart as the writer then sees it, and after [`PLAN_ATTEMPTS`] the caller gets
    /// `CartChanged`. Planning first keeps the reads of other contexts (catalog, stock, prices)
    /// out of the write transaction, which then holds the writer (and, on PostgreSQL, a pooled
    /// connection) only for its own statements. Answers the cart as changed.
    ///
    /// A replan reads through the writer, not a reader: on SQLite a write waiting in a group
    /// commit is seen by the writer before readers, so a reader could hand back the version
    /// that just lost again and again. Planned on what the writer saw, an attempt fails only
    /// when another write commits after that read, so a request that races N other writes
    /// (each writing once) needs at most N + 1 attempts.
    async fn change<F, Fut>(
        &self,
        id: CartId,
        access: Access<'_>,
        plan: F,
    ) -> Result<Cart, CartError>
    where
        F: Fn(CartRow, Vec<ItemRow>) -> Fut,
        Fut: Future<Output = Result<(CartRow, Vec<ItemRow>, Change), CartError>>,
    {
        let mut seen = None;
        for _ in 0..PLAN_ATTEMPTS {
            match self.try_change(id, access, &plan, seen.take()).await? {
                Attempt::Done(cart) => return Ok(*cart),
                Attempt::Changed(row, items) => seen = Some((row, items)),
            }
        }
        Err(CartError::CartChanged)
    }

    /// One attempt of [`CartService::change`], planned on `seen` (the cart as the writer saw it
    /// when the previous attempt lost) or else on a read.
    async fn try_change<F, Fut>(
        &self,
        id: CartId,
        access: Access<'_>,
        plan: &F,
        seen: Option<(Option<Box<CartRow>>, Vec<ItemRow>)>,
    ) -> Result<Attempt, CartError>
    where
        F: Fn(CartRow, Vec<ItemRow>) -> Fut,
        Fut: Future<Output = Result<(CartRow, Vec<ItemRow>, Change), CartError>>,
    {
        let (mut row, items) = match seen {
            Some((row, items)) => {
                let row = authorise(row.map(|r| *r), access)?;
                writable(&row)?;
                (row, items)
            }
            None => self.read_for_change(id, access).await?,
        };
        let read_at = row.updated_at;
        row.updated_at = self.clock.now();
        let (mut row, items, change) = plan(row, items).await?;
        let Change::Write {
            items: writes,
            answer,
        } = change
        else {
            row.updated_at = read_at;
            return self.view(row, items).await.map(Attempt::done);
        };
        let mut tx = self.db.begin_write_relaxed().await?;
        // The cart's row first: it matches only the version planned on, and holds the cart
        // (on PostgreSQL, its row lock) for the item writes.
        if !store::update_cart(&mut tx, &row).await? {
            let now = store::find_cart(&mut tx, id.0).await?.map(Box::new);
            let items = store::list_items(&mut tx, id.0).await?;
            return Ok(Attempt::Changed(now, items));
        }
        for write in writes {
            match write {
                ItemWrite::Insert(item) => store::insert_item(&mut tx, &item).await?,
                ItemWrite::SetQuantity(item, quantity) => {
                    store::set_quantity(&mut tx, item, quantity).await?;
                }
                ItemWrite::Delete(item) => store::delete_item(&mut tx, item).await?,
            }
        }
        tx.commit().await?;
        row.version += 1;
        match answer {
            Some(cart) => Ok(Attempt::Done(cart)),
            None => self.view(row, items).await.map(Attempt::done),
        }
    }

    /// Fails with `OutOfStock` naming every `(variant, units)` asking for more than is
    /// available.
    async fn check_stock(&self, wanted: &[(VariantId, i64)]) -> Result<(), CartError> {
        let ids: Vec<VariantId> = wanted.iter().map(|(v, _)| *v).collect();
        let available = self.inventory.availability(&ids).await?;
        let short: Vec<Short> = wanted
            .iter()
            .zip(&available)
            .filter(|((_, n), a)| *n > a.available)
            .map(|((v, n), a)| Short {
                variant_id: *v,
                requested: *n,
                available: a.available.max(0),
            })
            .collect();
        if short.is_empty() {
            Ok(())
        } else {
            Err(CartError::OutOfStock(short))
        }
    }

    async fn offered(
        &self,
        row: &CartRow,
        items: &[ItemRow],
    ) -> Result<Vec<OfferedShipping>, CartError> {
        let (cart, _, _) = self.pricing_cart(row, items).await?;
        let rules = self.pricing.rules().await?;
        Ok(emporium_pricing::shipping_options(&cart, &rules)
            .into_iter()
            .map(|(o, amount)| OfferedShipping {
                id: o.id,
                name: o.name.clone(),
                amount,
                currency: cart.currency,
            })
            .collect())
    }

    /// The cart as pricing sees it (purchasable lines only), what the catalog said of each
    /// item, and when that was read if it is not fresh (the catalog did not answer).
    async fn pricing_cart(
        &self,
        row: &CartRow,
        items: &[ItemRow],
    ) -> Result<
        (
            emporium_pricing::Cart,
            Vec<Option<Purchasable>>,
            Option<OffsetDateTime>,
        ),
        CartError,
    > {
        let currency: Currency = row
            .currency
            .parse()
            .map_err(|_| CartError::Corrupt(format!("currency {}", row.currency)))?;
        let ids: Vec<VariantId> = items.iter().map(|i| VariantId(i.variant_id)).collect();
        let (info, as_of) = if ids.is_empty() {
            (Vec::new(), None)
        } else {
            self.catalog.purchasable_or_known(&ids).await?
        };
        let mut lines = Vec::new();
        for (item, p) in items.iter().zip(&info) {
            let Some(p) = p else { continue };
            let Some(price) = p.prices.iter().find(|m| m.currency == currency) else {
                continue;
            };
            lines.push(emporium_pricing::Item {
                variant_id: p.variant_id,
                product_id: p.product_id,
                category_ids: p.category_ids.clone(),
                quantity: u32::try_from(item.quantity).unwrap_or(u32::MAX),
                unit_price: price.amount,
                weight_grams: p.weight_grams,
            });
        }
        let address = address_of(row)?;
        let customer_groups = match (&self.groups, &row.customer_id) {
            (Some(groups), Some(customer)) => groups.groups_of(customer).await?,
            _ => Vec::new(),
        };
        let cart = emporium_pricing::Cart {
            currency,
            items: lines,
            customer_groups,
            shipping_address: address.map(|a| Region {
                country: a.country,
                state: a.state,
            }),
            shipping_option: row.shipping_option_id.map(ShippingOptionId),
            coupons: Vec::new(),
            now: self.clock.now(),
        };
        Ok((cart, info, as_of))
    }

    async fn view(&self, row: CartRow, items: Vec<ItemRow>) -> Result<Cart, CartError> {
        let (cart, info, catalog_as_of) = self.pricing_cart(&row, &items).await?;
        let codes = codes_of(&row)?;
        let currency = cart.currency;
        let totals = match self.pricing.quote(cart, &codes).await? {
            Ok(q) => q,
            Err(e) => return Err(CartError::invalid("/items", "out_of_range", e.to_string())),
        };
        let mut quoted: HashMap<VariantId, &emporium_pricing::QuotedItem> =
            totals.items.iter().map(|q| (q.variant_id, q)).collect();
        let lines = items
            .iter()
            .zip(info.iter().chain(std::iter::repeat(&None)))
            .map(|(item, p)| {
                let q = quoted.remove(&VariantId(item.variant_id));
                CartItem {
                    id: CartItemId(item.id),
                    variant_id: VariantId(item.variant_id),
                    quantity: item.quantity,
                    purchasable: q.is_some(),
                    product_id: p.as_ref().map(|p| p.product_id),
                    product_title: p.as_ref().map(|p| p.product_title.clone()),
                    variant_title: p.as_ref().map(|p| p.variant_title.clone()),
                    sku: p.as_ref().map(|p| p.sku.clone()),
                    unit_price: q.map(|q| q.unit_price),
                    compare_at_price: q.and_then(|q| q.compare_at_price),
                    subtotal: q.map_or(0, |q| q.subtotal),
                    discount: q.map_or(0, |q| q.discount),
                    tax: q.map_or(0, |q| q.tax),
                    total: q.map_or(0, |q| q.total),
                }
            })
            .collect();
        let shipping_address = address_of(&row)?;
        Ok(Cart {
            id: CartId(row.id),
            customer_id: row.customer_id,
            currency,
            email: row.email,
            shipping_address,
            shipping_option_id: row.shipping_option_id.map(ShippingOptionId),
            coupon_codes: codes,
            items: lines,
            totals,
            checkout_id: row.checkout_id.map(CheckoutId),
            catalog_as_of,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// What a planned change writes besides the cart's row.
enum ItemWrite {
    Insert(ItemRow),
    SetQuantity(Uuid, i64),
    Delete(Uuid),
}

/// How an attempt of [`CartService::change`] ended.
enum Attempt {
    /// Written (or nothing to write): the answer.
    Done(Box<Cart>),
    /// Another write got in first: the cart (if still there) and its items as the writer saw
    /// them then, to plan on again.
    Changed(Option<Box<CartRow>>, Vec<ItemRow>),
}

impl Attempt {
    fn done(cart: Cart) -> Self {
        Self::Done(Box::new(cart))
    }
}

/// What a plan decided (see [`CartService::change`]).
enum Change {
    /// Nothing to write: the answer is the cart as read.
    None,
    /// Write the edited row (a new version) and `items`; answer `answer` when the plan made it
    /// already, the edited cart otherwise.
    Write {
        items: Vec<ItemWrite>,
        answer: Option<Box<Cart>>,
    },
}

impl Change {
    fn write(items: Vec<ItemWrite>) -> Self {
        Self::Write {
            items,
            answer: None,
        }
    }
}

/// Runs `attempt` until it answers (`Some`), at most [`PLAN_ATTEMPTS`] times: an attempt
/// answers `None` when the cart it planned on changed before its write. `CartChanged` when
/// every attempt met a change.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, CartError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, CartError>>,
{
    for _ in 0..PLAN_ATTEMPTS {
        if let Some(answer) = attempt().await? {
            return Ok(answer);
        }
    }
    Err(CartError::CartChanged)
}

/// The cart when `access` opens it; `CartNotFound` otherwise (also for a missing cart).
/// A cart a checkout holds takes no change.
fn writable(row: &CartRow) -> Result<(), CartError> {
    match row.checkout_id {
        Some(_) => Err(CartError::CheckedOut),
        None => Ok(()),
    }
}

fn authorise(row: Option<CartRow>, access: Access<'_>) -> Result<CartRow, CartError> {
    let row = row.ok_or(CartError::CartNotFound)?;
    let by_token = access.token.is_some_and(|t| hash(t) == row.token_hash);
    let by_customer = access
        .customer
        .is_some_and(|c| row.customer_id.as_deref() == Some(c));
    if by_token || by_customer {
        Ok(row)
    } else {
        Err(CartError::CartNotFound)
    }
}

fn check_quantity(quantity: i64) -> Result<(), CartError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(CartError::invalid(
            "/quantity",
            "out_of_range",
            format!("1 to {MAX_QUANTITY}"),
        ))
    }
}

fn check_email(v: &mut Violations, email: &str) {
    if v.check("/email", emporium_kernel::text::single_line(email))
        .is_none()
    {
        return;
    }
    let well_formed = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !well_formed {
        v.push("/email", "invalid_format", "an e-mail address");
    }
}

fn check_address(v: &mut Violations, a: &Address) {
    for (pointer, value, max) in [
        ("/shipping_address/name", &a.name, 200),
        ("/shipping_address/line1", &a.line1, 200),
        ("/shipping_address/city", &a.city, 100),
        ("/shipping_address/postal_code", &a.postal_code, 20),
    ] {
        v.check(pointer, emporium_kernel::text::single_line(value));
        let n = value.trim().chars().count();
        if n == 0 {
            v.push(pointer, "required", "must not be empty");
        } else if n > max {
            v.push(pointer, "too_long", format!("at most {max} characters"));
        }
    }
    if let Some(line2) = &a.line2 {
        v.check(
            "/shipping_address/line2",
            emporium_kernel::text::single_line(line2),
        );
    }
    if a.line2.as_ref().is_some_and(|l| l.chars().count() > 200) {
        v.push(
            "/shipping_address/line2",
            "too_long",
            "at most 200 characters",
        );
    }
    if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_uppercase()) {
        v.push(
            "/shipping_address/country",
            "invalid_format",
            "an ISO 3166-1 alpha-2 code in upper case, e.g. DE",
        );
    }
    if let Some(state) = &a.state
        && (state.is_empty()
            || state.len() > 3
            || !state
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    {
        v.push(
            "/shipping_address/state",
            "invalid_format",
            "an ISO 3166-2 subdivision code without the country, e.g. NY",
        );
    }
}

fn address_of(row: &CartRow) -> Result<Option<Address>, CartError> {
    row.shipping_address
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| CartError::Corrupt(e.to_string()))
}

fn codes_of(row: &CartRow) -> Result<Vec<String>, CartError> {
    serde_json::from_str(&row.coupon_codes).map_err(|e| CartError::Corrupt(e.to_string()))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, CartError> {
    serde_json::to_string(value).map_err(|e| CartError::Corrupt(e.to_string()))
}
