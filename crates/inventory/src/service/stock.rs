//! Staff use cases: stock locations, setting and adjusting levels, the ledger.

use emporium_db::{Db, WriteTx};
use emporium_kernel::ids::{LocationId, VariantId};
use emporium_kernel::{Cursor, Violations};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AdjustLevel, CreateLocation, DEFAULT_SET_REASON, InventoryService, SetLevel, StockMove,
    UpdateLocation, entry_of, level_of, location_of, page_limit, page_of, record_move,
};
use crate::api::{LedgerEntry, Location, Page, StockLevel, VariantStock};
use crate::domain;
use crate::error::InventoryError;
use crate::events;
use crate::store::{self, LevelRow, LocationRow};

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
        reservation: None,
    };
    record_move(&mut tx, change, now).await?;
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
