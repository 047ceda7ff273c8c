//! Staff use cases: stock locations, setting and adjusting levels, the ledger.

use emporium_db::{Db, WriteTx};
use emporium_kernel::ids::{LocationId, VariantId};
use emporium_kernel::{Cursor, FieldError, Violations};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AdjustLevel, CreateLocation, DEFAULT_SET_REASON, InventoryService, Moves, SetLevel, StockMove,
    UpdateLocation, entry_of, level_of, location_of, page_limit, page_of,
};
use crate::api::{LedgerEntry, Location, Page, StockImport, StockLevel, VariantStock};
use crate::domain::{self, LedgerEntryId};
use crate::error::InventoryError;
use crate::events;
use crate::store::{self, LedgerRow, LevelRow, LocationRow};

/// Opens the transaction of a staff change to the level of `variant` at `location`: takes the
/// variant's lock, then checks that the location exists (`LocationNotFound`).
async fn begin_level_change(
    db: &Db,
    variant: VariantId,
    location: LocationId,
) -> Result<WriteTx, InventoryError> {
    let mut tx = db.begin_write().await?;
    store::lock_variant(&mut tx, variant.0).await?;
    if store::find_location(&mut tx, location.0).await?.is_none() {
        return Err(InventoryError::LocationNotFound);
    }
    Ok(tx)
}

/// Creates the missing level of `variant` at `location` with `on_hand` units (the caller holds
/// the variant's lock, so nobody else creates it meanwhile).
async fn create_level(
    tx: &mut WriteTx,
    variant: VariantId,
    location: LocationId,
    on_hand: i64,
    now: OffsetDateTime,
) -> Result<LevelRow, InventoryError> {
    store::insert_level(&mut *tx, variant.0, location.0, on_hand, now)
        .await?
        .ok_or(InventoryError::Inconsistent(
            "a stock level appeared while it was created",
        ))
}

/// Records the staff change that moved `level` by `delta` units on hand (its ledger row and
/// event), then commits.
async fn finish_level_change(
    mut tx: WriteTx,
    level: &LevelRow,
    delta: i64,
    reason: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<StockLevel, InventoryError> {
    let change = StockMove {
        level,
        delta_on_hand: delta,
        delta_reserved: 0,
        reason,
        actor: by,
        totals_after: None,
        reservation: None,
    };
    let mut moves = Moves::default();
    moves.record(&mut tx, change, now).await?;
    moves.write(&mut tx)?;
    tx.commit().await?;
    Ok(level_of(level))
}

impl InventoryService {
    // ---- Locations ---------------------------------------------------------------------------

    /// Creates a stock location and records `inventory.location_created`. A code in use is
    /// `LocationCodeTaken`.
    pub async fn create_location(
        &self,
        cmd: CreateLocation,
        by: &str,
    ) -> Result<Location, InventoryError> {
        let mut v = Violations::new();
        let code = v.check("/code", domain::parse_location_code(&cmd.code));
        let name = v.check("/name", domain::parse_text(&cmd.name));
        v.finish().map_err(InventoryError::Invalid)?;
        let (Some(code), Some(name)) = (code, name) else {
            return Err(InventoryError::Invalid(Vec::new()));
        };
        let now = self.clock.now();
        let row = LocationRow {
            id: LocationId::generate().0,
            code,
            name,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin_write().await?;
        store::insert_location(&mut tx, &row)
            .await
            .map_err(InventoryError::code_taken_or_storage)?;
        let event = events::LocationCreated {
            id: LocationId(row.id),
            code: row.code.clone(),
            name: row.name.clone(),
            created_by: by.to_owned(),
        };
        tx.record(&event, row.version, now).await?;
        tx.commit().await?;
        Ok(location_of(&row))
    }

    /// Changes a location's code and/or name and records `inventory.location_updated`. Nothing
    /// to change returns the location as it is.
    pub async fn update_location(
        &self,
        id: LocationId,
        cmd: UpdateLocation,
        by: &str,
    ) -> Result<Location, InventoryError> {
        let mut v = Violations::new();
        let code = cmd
            .code
            .as_deref()
            .and_then(|c| v.check("/code", domain::parse_location_code(c)));
        let name = cmd
            .name
            .as_deref()
            .and_then(|n| v.check("/name", domain::parse_text(n)));
        v.finish().map_err(InventoryError::Invalid)?;
        if code.is_none() && name.is_none() {
            return self.get_location(id).await;
        }
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let row = store::update_location(&mut tx, id.0, code.as_deref(), name.as_deref(), now)
            .await
            .map_err(InventoryError::code_taken_or_storage)?
            .ok_or(InventoryError::LocationNotFound)?;
        let event = events::LocationUpdated {
            id,
            code: row.code.clone(),
            name: row.name.clone(),
            updated_by: by.to_owned(),
        };
        tx.record(&event, row.version, now).await?;
        tx.commit().await?;
        Ok(location_of(&row))
    }

    /// The location with `id`.
    pub async fn get_location(&self, id: LocationId) -> Result<Location, InventoryError> {
        let mut conn = self.db.read().await?;
        store::find_location(&mut conn, id.0)
            .await?
            .map(|r| location_of(&r))
            .ok_or(InventoryError::LocationNotFound)
    }

    /// Locations by code.
    pub async fn list_locations(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Location>, InventoryError> {
        let after = match cursor {
            None => String::new(),
            Some(c) => Cursor::decode::<String>(c).map_err(|e| InventoryError::Invalid(vec![e]))?,
        };
        let limit = page_limit(limit)?;
        let mut conn = self.db.read().await?;
        let rows = store::list_locations(&mut conn, &after, limit).await?;
        Ok(page_of(rows, limit, |r| r.code.clone(), location_of))
    }

    // ---- Levels ------------------------------------------------------------------------------

    /// The stock of `variant`: totals and the level at each location that has one.
    pub async fn variant_stock(&self, variant: VariantId) -> Result<VariantStock, InventoryError> {
        let mut conn = self.db.read().await?;
        let rows = store::levels_of_variant(&mut conn, variant.0).await?;
        let on_hand = rows.iter().map(|r| r.on_hand).sum::<i64>();
        let reserved = rows.iter().map(|r| r.reserved).sum::<i64>();
        Ok(VariantStock {
            variant_id: variant,
            on_hand,
            reserved,
            available: on_hand - reserved,
            locations: rows.iter().map(level_of).collect(),
        })
    }

    /// Variants with fewer than `below` units available over all their locations, fewest
    /// first (a page; `locations` is left empty). `below` must be 1 to 1 000 000 000.
    pub async fn low_stock(
        &self,
        below: i64,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<VariantStock>, InventoryError> {
        let mut problems = Vec::new();
        if !(1..=1_000_000_000).contains(&below) {
            problems.push(FieldError::new("/below", "out_of_range", "1 to 1000000000"));
        }
        let after = match cursor.map(Cursor::decode::<(i64, Uuid)>) {
            None => None,
            Some(Ok(after)) => Some(after),
            Some(Err(e)) => {
                problems.push(e);
                None
            }
        };
        let limit = match page_limit(limit) {
            Ok(limit) => limit,
            Err(InventoryError::Invalid(e)) => {
                problems.extend(e);
                0
            }
            Err(e) => return Err(e),
        };
        if !problems.is_empty() {
            return Err(InventoryError::Invalid(problems));
        }
        let mut conn = self.db.read().await?;
        let rows = store::low_stock(&mut conn, below, after, limit).await?;
        Ok(page_of(
            rows,
            limit,
            |(variant, on_hand, reserved)| (on_hand - reserved, *variant),
            |(variant, on_hand, reserved)| VariantStock {
                variant_id: VariantId(*variant),
                on_hand: *on_hand,
                reserved: *reserved,
                available: on_hand - reserved,
                locations: Vec::new(),
            },
        ))
    }

    /// Sets the absolute level of `variant` at `location`, creating the level when absent.
    /// Below what is reserved there is `BelowReserved`; an unknown location `LocationNotFound`.
    pub async fn set_level(
        &self,
        variant: VariantId,
        location: LocationId,
        cmd: SetLevel,
        by: &str,
    ) -> Result<StockLevel, InventoryError> {
        let mut v = Violations::new();
        let on_hand = v.check("/on_hand", domain::parse_on_hand(cmd.on_hand));
        let reason = match cmd.reason.as_deref() {
            Some(r) => v.check("/reason", domain::parse_text(r)),
            None => Some(DEFAULT_SET_REASON.to_owned()),
        };
        v.finish().map_err(InventoryError::Invalid)?;
        let (Some(on_hand), Some(reason)) = (on_hand, reason) else {
            return Err(InventoryError::Invalid(Vec::new()));
        };
        let now = self.clock.now();
        let mut tx = begin_level_change(&self.db, variant, location).await?;
        // The variant's lock is held, so the level read here is the one the update changes.
        let (level, delta) = match store::find_level(&mut tx, variant.0, location.0).await? {
            None => {
                let level = create_level(&mut tx, variant, location, on_hand, now).await?;
                (level, on_hand)
            }
            Some(before) => {
                let level = store::set_on_hand(&mut tx, variant.0, location.0, on_hand, now)
                    .await?
                    .ok_or(InventoryError::BelowReserved {
                        requested: on_hand,
                        reserved: before.reserved,
                    })?;
                let delta = level.on_hand - before.on_hand;
                (level, delta)
            }
        };
        finish_level_change(tx, &level, delta, &reason, by, now).await
    }

    /// Adds `delta` units to (or takes them from) the level of `variant` at `location`. A
    /// result below what is reserved (and so below zero) is `InsufficientStock`; a positive
    /// delta creates a missing level.
    pub async fn adjust_level(
        &self,
        variant: VariantId,
        location: LocationId,
        cmd: AdjustLevel,
        by: &str,
    ) -> Result<StockLevel, InventoryError> {
        let mut v = Violations::new();
        let delta = v.check("/delta", domain::parse_delta(cmd.delta));
        let reason = v.check("/reason", domain::parse_text(&cmd.reason));
        v.finish().map_err(InventoryError::Invalid)?;
        let (Some(delta), Some(reason)) = (delta, reason) else {
            return Err(InventoryError::Invalid(Vec::new()));
        };
        let now = self.clock.now();
        let mut tx = begin_level_change(&self.db, variant, location).await?;
        let level = match store::adjust_on_hand(&mut tx, variant.0, location.0, delta, now).await? {
            Some(level) => level,
            None => match store::find_level(&mut tx, variant.0, location.0).await? {
                None if delta > 0 => create_level(&mut tx, variant, location, delta, now).await?,
                None => {
                    return Err(InventoryError::InsufficientStock {
                        delta,
                        on_hand: 0,
                        reserved: 0,
                    });
                }
                Some(current) => {
                    return Err(InventoryError::InsufficientStock {
                        delta,
                        on_hand: current.on_hand,
                        reserved: current.reserved,
                    });
                }
            },
        };
        finish_level_change(tx, &level, delta, &reason, by, now).await
    }

    /// Sets the levels of many variants at `location` in one transaction, with a few
    /// statements for the whole batch: what a bulk import uses instead of [`Self::set_level`].
    /// Each `(variant, on_hand)` gets its own outcome, in order: `Ok(true)` when its level
    /// changed, `Ok(false)` when it already held that many (a missing level counts as 0
    /// units, so setting 0 there writes nothing), or why it was refused (a bad count,
    /// `BelowReserved`, a variant named twice). Every change gets its ledger row and
    /// `inventory.stock_changed` event, as a single set does.
    pub async fn set_levels(
        &self,
        location: LocationId,
        items: &[(VariantId, i64)],
        reason: &str,
        by: &str,
    ) -> Result<Vec<Result<bool, InventoryError>>, InventoryError> {
        let reason = domain::parse_text(reason)
            .map_err(|e| InventoryError::invalid("/reason", &e.code, e.detail))?;
        let mut outcomes: Vec<Result<bool, InventoryError>> = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::new();
        for (variant, on_hand) in items {
            outcomes.push(if !seen.insert(variant.0) {
                Err(InventoryError::invalid(
                    "/variant_id",
                    "duplicate",
                    "this variant is named earlier in the batch",
                ))
            } else {
                domain::parse_on_hand(*on_hand)
                    .map(|_| false)
                    .map_err(|e| InventoryError::invalid("/on_hand", &e.code, e.detail))
            });
        }
        let wanted: Vec<(usize, Uuid, i64)> = items
            .iter()
            .enumerate()
            .filter(|(i, _)| outcomes[*i].is_ok())
            .map(|(i, (v, n))| (i, v.0, *n))
            .collect();
        if wanted.is_empty() {
            return Ok(outcomes);
        }
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        if store::find_location(&mut tx, location.0).await?.is_none() {
            return Err(InventoryError::LocationNotFound);
        }
        let mut ids: Vec<Uuid> = wanted.iter().map(|(_, v, _)| *v).collect();
        ids.sort_unstable();
        for id in &ids {
            store::lock_variant(&mut tx, *id).await?;
        }
        let current: std::collections::HashMap<Uuid, LevelRow> =
            store::levels_at(&mut tx, location.0, &ids)
                .await?
                .into_iter()
                .map(|l| (l.variant_id, l))
                .collect();

        // (level after, units it moved by) of each change, in input order.
        let mut changed: Vec<(LevelRow, i64)> = Vec::new();
        let mut created = Vec::new();
        for (i, variant, on_hand) in wanted {
            match current.get(&variant) {
                None if on_hand == 0 => {}
                None => {
                    let level = LevelRow {
                        variant_id: variant,
                        location_id: location.0,
                        on_hand,
                        reserved: 0,
                        version: 1,
                        updated_at: now,
                    };
                    created.push(level.clone());
                    changed.push((level, on_hand));
                    outcomes[i] = Ok(true);
                }
                Some(before) if before.on_hand == on_hand => {}
                Some(before) => {
                    match store::set_on_hand(&mut tx, variant, location.0, on_hand, now).await? {
                        Some(level) => {
                            let delta = level.on_hand - before.on_hand;
                            changed.push((level, delta));
                            outcomes[i] = Ok(true);
                        }
                        None => {
                            outcomes[i] = Err(InventoryError::BelowReserved {
                                requested: on_hand,
                                reserved: before.reserved,
                            })
                        }
                    }
                }
            }
        }
        if changed.is_empty() {
            return Ok(outcomes);
        }
        store::insert_levels(&mut tx, &created).await?;
        let moved: Vec<Uuid> = changed.iter().map(|(l, _)| l.variant_id).collect();
        let totals: std::collections::HashMap<Uuid, (i64, i64)> = store::totals_of(&mut tx, &moved)
            .await?
            .into_iter()
            .map(|(v, on_hand, reserved)| (v, (on_hand, reserved)))
            .collect();
        let mut ledger = Vec::with_capacity(changed.len());
        let mut recorded = Vec::with_capacity(changed.len());
        for (level, delta) in &changed {
            ledger.push(LedgerRow {
                id: LedgerEntryId::generate().0,
                variant_id: level.variant_id,
                location_id: level.location_id,
                delta_on_hand: *delta,
                delta_reserved: 0,
                on_hand_after: level.on_hand,
                reserved_after: level.reserved,
                reason: reason.clone(),
                actor: by.to_owned(),
                reservation_id: None,
                created_at: now,
            });
            let (on_hand, reserved) = totals.get(&level.variant_id).copied().unwrap_or_default();
            recorded.push((
                events::StockChanged {
                    variant_id: VariantId(level.variant_id),
                    location_id: location,
                    on_hand: level.on_hand,
                    reserved: level.reserved,
                    available: level.on_hand - level.reserved,
                    variant_available: on_hand - reserved,
                    reason: reason.clone(),
                },
                level.version,
            ));
        }
        store::insert_ledger_rows(&mut tx, &ledger)?;
        tx.record_many(recorded.iter().map(|(e, seq)| (e, *seq)), now)
            .await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// The stock ledger, newest first, optionally of one variant.
    pub async fn list_ledger(
        &self,
        variant: Option<VariantId>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<LedgerEntry>, InventoryError> {
        let before = match cursor {
            None => Uuid::max(),
            Some(c) => Cursor::decode::<Uuid>(c).map_err(|e| InventoryError::Invalid(vec![e]))?,
        };
        let limit = page_limit(limit)?;
        let mut conn = self.db.read().await?;
        let rows = match variant {
            Some(v) => store::list_ledger_of_variant(&mut conn, v.0, before, limit).await?,
            None => store::list_ledger(&mut conn, before, limit).await?,
        };
        Ok(page_of(rows, limit, |r| r.id, entry_of))
    }
}

#[async_trait::async_trait]
impl StockImport for InventoryService {
    async fn ensure_location(
        &self,
        code: &str,
        name: &str,
        by: &str,
    ) -> Result<LocationId, InventoryError> {
        if let Some(id) = self.location_by_code(code).await? {
            return Ok(id);
        }
        let made = self
            .create_location(
                CreateLocation {
                    code: code.to_owned(),
                    name: name.to_owned(),
                },
                by,
            )
            .await;
        match made {
            Ok(location) => Ok(location.id),
            // Made meanwhile by another import.
            Err(InventoryError::LocationCodeTaken) => self
                .location_by_code(code)
                .await?
                .ok_or(InventoryError::LocationNotFound),
            Err(e) => Err(e),
        }
    }

    async fn set_levels(
        &self,
        location: LocationId,
        items: &[(VariantId, i64)],
        reason: &str,
        by: &str,
    ) -> Result<Vec<Result<bool, InventoryError>>, InventoryError> {
        InventoryService::set_levels(self, location, items, reason, by).await
    }
}

impl InventoryService {
    /// The location with `code`, if any.
    async fn location_by_code(&self, code: &str) -> Result<Option<LocationId>, InventoryError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_locations(cursor.as_deref(), Some(200)).await?;
            if let Some(l) = page.items.iter().find(|l| l.code == code) {
                return Ok(Some(l.id));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }
}
