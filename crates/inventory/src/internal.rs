//! [`InventoryApi`] across processes: the internal routes an inventory process serves
//! (`/internal/v1/inventory/…`, service credential required, never routed by the gateway) and
//! [`InventoryClient`], the same trait implemented over them for a caller in another process.
//!
//! Every call is idempotent but `reserve` (a lost answer may have left a hold; the checkout
//! finds it by its reference), so only `reserve` is never retried after an ambiguous failure.
//! A refusal crosses the wire as its code plus data (the lines out of stock) and becomes the
//! same `InventoryError` variant on the caller's side.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use emporium_http::service::{CallError, Failure, ServiceClient};
use emporium_kernel::ids::{LocationId, ReservationId, VariantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api::{Availability, InventoryApi, Reservation, ReserveLine, Shortage, StockImport};
use crate::error::InventoryError;
use crate::service::InventoryService;

const RESERVE: &str = "/internal/v1/inventory/reserve";
const RELEASE: &str = "/internal/v1/inventory/release";
const COMMIT: &str = "/internal/v1/inventory/commit";
const COMMIT_ALL: &str = "/internal/v1/inventory/commit-all";
const RESTOCK: &str = "/internal/v1/inventory/restock";
const RESERVATIONS_FOR: &str = "/internal/v1/inventory/reservations-for";
const RESERVATION: &str = "/internal/v1/inventory/reservation";
const AVAILABILITY: &str = "/internal/v1/inventory/availability";
const RELEASE_EXPIRED: &str = "/internal/v1/inventory/release-expired";
const ENSURE_LOCATION: &str = "/internal/v1/inventory/ensure-location";
const SET_LEVELS: &str = "/internal/v1/inventory/set-levels";

#[derive(Serialize, Deserialize)]
struct ReserveCall {
    lines: Vec<ReserveLine>,
    ttl_ms: i64,
    reference: String,
}

#[derive(Serialize, Deserialize)]
struct ById {
    id: ReservationId,
}

#[derive(Serialize, Deserialize)]
struct ByIds {
    ids: Vec<ReservationId>,
}

#[derive(Serialize, Deserialize)]
struct RestockCall {
    id: ReservationId,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct ByReference {
    reference: String,
}

#[derive(Serialize, Deserialize)]
struct ByVariants {
    variant_ids: Vec<VariantId>,
}

#[derive(Serialize, Deserialize)]
struct At {
    #[serde(with = "time::serde::rfc3339")]
    now: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
struct EnsureLocation {
    code: String,
    name: String,
    by: String,
}

#[derive(Serialize, Deserialize)]
struct SetLevels {
    location: LocationId,
    items: Vec<(VariantId, i64)>,
    reason: String,
    by: String,
}

/// One outcome of a call on many items.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome<T> {
    Ok(T),
    Err(Failure),
}

impl<T> Outcome<T> {
    fn of(result: Result<T, InventoryError>) -> Self {
        match result {
            Ok(value) => Self::Ok(value),
            Err(e) => Self::Err(failure_of(&e)),
        }
    }

    fn into_result(self, service: &'static str) -> Result<T, InventoryError> {
        match self {
            Self::Ok(value) => Ok(value),
            Self::Err(failure) => Err(error_of(service, failure)),
        }
    }
}

/// The data a refusal carries, for the variants that hold some.
fn failure_of(e: &InventoryError) -> Failure {
    let data = match e {
        InventoryError::OutOfStock { lines } => serde_json::to_value(lines).unwrap_or_default(),
        _ => serde_json::Value::Null,
    };
    Failure::of(e, data)
}

/// The caller's side of a refusal: the variant it came from, or the refusal itself.
fn error_of(service: &'static str, failure: Failure) -> InventoryError {
    match failure.code.as_str() {
        "validation_failed" => InventoryError::Invalid(failure.errors),
        "reservation_not_found" => InventoryError::ReservationNotFound,
        "reservation_committed" => InventoryError::ReservationCommitted,
        "reservation_expired" => InventoryError::ReservationExpired,
        "reservation_not_committed" => InventoryError::ReservationNotCommitted,
        "out_of_stock" => match serde_json::from_value::<Vec<Shortage>>(failure.data.clone()) {
            Ok(lines) => InventoryError::OutOfStock { lines },
            Err(_) => InventoryError::Remote(CallError::Rejected {
                service,
                failure: Box::new(failure),
            }),
        },
        _ => InventoryError::Remote(CallError::Rejected {
            service,
            failure: Box::new(failure),
        }),
    }
}

impl From<CallError> for InventoryError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rejected { service, failure } => error_of(service, *failure),
            e @ CallError::Unavailable { .. } => Self::Remote(e),
        }
    }
}

type Answer<T> = Result<axum::Json<T>, Failure>;

fn answer<T>(result: Result<T, InventoryError>) -> Answer<T> {
    result.map(axum::Json).map_err(|e| failure_of(&e))
}

/// The internal routes of an inventory process. The caller mounts them behind the service
/// credential guard.
pub fn internal_router(service: Arc<InventoryService>) -> Router {
    Router::new()
        .route(RESERVE, post(reserve))
        .route(RELEASE, post(release))
        .route(COMMIT, post(commit))
        .route(COMMIT_ALL, post(commit_all))
        .route(RESTOCK, post(restock))
        .route(RESERVATIONS_FOR, post(reservations_for))
        .route(RESERVATION, post(reservation))
        .route(AVAILABILITY, post(availability))
        .route(RELEASE_EXPIRED, post(release_expired))
        .route(ENSURE_LOCATION, post(ensure_location))
        .route(SET_LEVELS, post(set_levels))
        .with_state(service)
}

type Inventory = State<Arc<InventoryService>>;

async fn reserve(
    State(s): Inventory,
    axum::Json(c): axum::Json<ReserveCall>,
) -> Answer<Reservation> {
    let ttl = time::Duration::milliseconds(c.ttl_ms);
    answer(s.reserve(&c.lines, ttl, &c.reference).await)
}

async fn release(State(s): Inventory, axum::Json(c): axum::Json<ById>) -> Answer<Reservation> {
    answer(s.release(c.id).await)
}

async fn commit(State(s): Inventory, axum::Json(c): axum::Json<ById>) -> Answer<Reservation> {
    answer(s.commit(c.id).await)
}

async fn commit_all(
    State(s): Inventory,
    axum::Json(c): axum::Json<ByIds>,
) -> Answer<Vec<Outcome<Reservation>>> {
    answer(
        s.commit_all(&c.ids)
            .await
            .map(|all| all.into_iter().map(Outcome::of).collect()),
    )
}

async fn ensure_location(
    State(s): Inventory,
    axum::Json(c): axum::Json<EnsureLocation>,
) -> Answer<LocationId> {
    answer(s.ensure_location(&c.code, &c.name, &c.by).await)
}

async fn set_levels(
    State(s): Inventory,
    axum::Json(c): axum::Json<SetLevels>,
) -> Answer<Vec<Outcome<bool>>> {
    answer(
        StockImport::set_levels(s.as_ref(), c.location, &c.items, &c.reason, &c.by)
            .await
            .map(|all| all.into_iter().map(Outcome::of).collect()),
    )
}

async fn restock(State(s): Inventory, axum::Json(c): axum::Json<RestockCall>) -> Answer<bool> {
    answer(s.restock(c.id, &c.reason).await)
}

async fn reservations_for(
    State(s): Inventory,
    axum::Json(c): axum::Json<ByReference>,
) -> Answer<Vec<Reservation>> {
    answer(s.reservations_for(&c.reference).await)
}

async fn reservation(State(s): Inventory, axum::Json(c): axum::Json<ById>) -> Answer<Reservation> {
    answer(s.get_reservation(c.id).await)
}

async fn availability(
    State(s): Inventory,
    axum::Json(c): axum::Json<ByVariants>,
) -> Answer<Vec<Availability>> {
    answer(s.availability(&c.variant_ids).await)
}

async fn release_expired(State(s): Inventory, axum::Json(c): axum::Json<At>) -> Answer<u64> {
    answer(s.release_expired(c.now).await)
}

/// [`InventoryApi`] over the network, for a process that does not run inventory.
pub struct InventoryClient {
    client: ServiceClient,
}

impl InventoryClient {
    /// A client over `client` (whose service is `inventory`).
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }

    async fn call<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotent: bool,
    ) -> Result<T, InventoryError> {
        Ok(self.client.call(path, body, idempotent).await?)
    }
}

#[async_trait::async_trait]
impl InventoryApi for InventoryClient {
    async fn reserve(
        &self,
        lines: &[ReserveLine],
        ttl: time::Duration,
        reference: &str,
    ) -> Result<Reservation, InventoryError> {
        let call = ReserveCall {
            lines: lines.to_vec(),
            ttl_ms: i64::try_from(ttl.whole_milliseconds()).unwrap_or(i64::MAX),
            reference: reference.to_owned(),
        };
        self.call(RESERVE, &call, false).await
    }

    async fn release(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        self.call(RELEASE, &ById { id }, true).await
    }

    async fn commit(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        self.call(COMMIT, &ById { id }, true).await
    }

    async fn commit_all(
        &self,
        ids: &[ReservationId],
    ) -> Result<Vec<Result<Reservation, InventoryError>>, InventoryError> {
        let all: Vec<Outcome<Reservation>> = self
            .call(COMMIT_ALL, &ByIds { ids: ids.to_vec() }, true)
            .await?;
        let service = self.client.service();
        Ok(all.into_iter().map(|o| o.into_result(service)).collect())
    }

    async fn restock(&self, id: ReservationId, reason: &str) -> Result<bool, InventoryError> {
        let call = RestockCall {
            id,
            reason: reason.to_owned(),
        };
        self.call(RESTOCK, &call, true).await
    }

    async fn reservations_for(&self, reference: &str) -> Result<Vec<Reservation>, InventoryError> {
        let call = ByReference {
            reference: reference.to_owned(),
        };
        self.call(RESERVATIONS_FOR, &call, true).await
    }

    async fn get_reservation(&self, id: ReservationId) -> Result<Reservation, InventoryError> {
        self.call(RESERVATION, &ById { id }, true).await
    }

    async fn availability(
        &self,
        variant_ids: &[VariantId],
    ) -> Result<Vec<Availability>, InventoryError> {
        let call = ByVariants {
            variant_ids: variant_ids.to_vec(),
        };
        self.call(AVAILABILITY, &call, true).await
    }

    async fn release_expired(&self, now: OffsetDateTime) -> Result<u64, InventoryError> {
        self.call(RELEASE_EXPIRED, &At { now }, true).await
    }
}

#[async_trait::async_trait]
impl StockImport for InventoryClient {
    async fn ensure_location(
        &self,
        code: &str,
        name: &str,
        by: &str,
    ) -> Result<LocationId, InventoryError> {
        let call = EnsureLocation {
            code: code.to_owned(),
            name: name.to_owned(),
            by: by.to_owned(),
        };
        self.call(ENSURE_LOCATION, &call, true).await
    }

    async fn set_levels(
        &self,
        location: LocationId,
        items: &[(VariantId, i64)],
        reason: &str,
        by: &str,
    ) -> Result<Vec<Result<bool, InventoryError>>, InventoryError> {
        let call = SetLevels {
            location,
            items: items.to_vec(),
            reason: reason.to_owned(),
            by: by.to_owned(),
        };
        let all: Vec<Outcome<bool>> = self.call(SET_LEVELS, &call, true).await?;
        let service = self.client.service();
        Ok(all.into_iter().map(|o| o.into_result(service)).collect())
    }
}
