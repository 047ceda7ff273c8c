//! `WebhookService`: staff's endpoints, their deliveries, and replays. Every change is one
//! transaction with its `webhook_endpoint.changed` event.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use emporium_db::Db;
use emporium_kernel::{Clock, Cursor, FieldError, Violations};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::{
    Attempt, Delivery, DeliveryDetail, DeliveryStatus, Endpoint, EndpointPatch, EndpointWithSecret,
    NewEndpoint, Page, ReplayRange, Replayed, RotateSecret,
};
use crate::domain::{self, DeliveryId, Destinations, EndpointId};
use crate::error::NotifyError;
use crate::events::EndpointChanged;
use crate::store::{self, AttemptRow, DeliveryRow, EndpointRow};

/// Default overlap of a rotated secret with its successor.
const DEFAULT_OVERLAP_SECS: i64 = 86_400;
/// Longest overlap staff may ask for.
const MAX_OVERLAP_SECS: i64 = 7 * 86_400;
const MAX_PAGE: u32 = 200;
const MAX_DESCRIPTION: usize = 500;

/// How deliveries are made; from `notify.webhooks` in the configuration.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// One attempt's whole time: connect, send, and read the answer.
    pub timeout: Duration,
    /// Attempts under way at once, over every endpoint.
    pub max_in_flight: usize,
    /// Attempts under way at once to one endpoint.
    pub per_endpoint: usize,
    /// The waits between attempts; when spent, the delivery is dead-lettered (`failed`).
    pub retry_delays_ms: Vec<u64>,
    /// An endpoint with no success for this long is disabled, and staff are told.
    pub disable_after: Duration,
    /// Where deliveries may connect beside public addresses.
    pub destinations: Destinations,
    /// The most of an answer's body read (the rest is dropped unread).
    pub response_max_bytes: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_in_flight: 64,
            per_endpoint: 4,
            retry_delays_ms: domain::WEBHOOK_RETRY_DELAYS_MS.to_vec(),
            disable_after: Duration::from_secs(5 * 86_400),
            destinations: Destinations::default(),
            response_max_bytes: 64 * 1024,
        }
    }
}

/// Staff's side of webhooks.
pub struct WebhookService {
    pub(crate) db: Db,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: WebhookSettings,
}

impl WebhookService {
    pub fn new(db: Db, clock: Arc<dyn Clock>, settings: WebhookSettings) -> Self {
        Self {
            db,
            clock,
            settings,
        }
    }

    /// How deliveries are made.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Registers an endpoint; the answer holds its secret, shown only here.
    pub async fn create(
        &self,
        cmd: NewEndpoint,
        by: &str,
    ) -> Result<EndpointWithSecret, NotifyError> {
        let mut v = Violations::new();
        let url = v.check("/url", self.check_url(&cmd.url));
        let description = v.check("/description", check_description(&cmd.description));
        let types = v.check("/event_types", domain::parse_event_types(&cmd.event_types));
        v.finish().map_err(NotifyError::Invalid)?;
        let (Some(url), Some(description), Some(types)) = (url, description, types) else {
            return Err(NotifyError::Invalid(Vec::new()));
        };
        let secret = domain::new_secret().map_err(|_| NotifyError::Random)?;
        let now = self.clock.now();
        let row = EndpointRow {
            id: EndpointId::generate().0,
            url,
            description,
            event_types: serde_json::to_string(&types).unwrap_or_default(),
            enabled: cmd.enabled,
            disabled_reason: None,
            secret: secret.clone(),
            previous_secret: None,
            previous_expires_at: None,
            failing_since: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin_write().await?;
        store::insert_endpoint(&mut tx, &row).await?;
        tx.record(&changed(&row, "created", by), row.version, now)
            .await?;
        tx.commit().await?;
        Ok(EndpointWithSecret {
            endpoint: endpoint_of(&row),
            secret,
        })
    }

    pub async fn get(&self, id: EndpointId) -> Result<Endpoint, NotifyError> {
        Ok(endpoint_of(&self.find(id).await?))
    }

    /// Endpoints by id, a page at a time.
    pub async fn list(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Endpoint>, NotifyError> {
        let limit = page_limit(limit)?;
        let after = match cursor {
            Some(c) => decode_cursor::<Uuid>(c)?,
            None => Uuid::nil(),
        };
        let mut conn = self.db.read().await?;
        let rows = store::list_endpoints(&mut conn, after, limit).await?;
        Ok(page_of(&rows, limit, |r| r.id, endpoint_of))
    }

    /// Changes an endpoint. With `if_match`, only the endpoint at that version.
    pub async fn update(
        &self,
        id: EndpointId,
        patch: EndpointPatch,
        if_match: Option<i64>,
        by: &str,
    ) -> Result<Endpoint, NotifyError> {
        let mut v = Violations::new();
        let url = patch
            .url
            .as_deref()
            .and_then(|u| v.check("/url", self.check_url(u)));
        let description = patch
            .description
            .as_deref()
            .and_then(|d| v.check("/description", check_description(d)));
        let types = patch
            .event_types
            .as_deref()
            .and_then(|t| v.check("/event_types", domain::parse_event_types(t)));
        v.finish().map_err(NotifyError::Invalid)?;
        let mut row = self.find(id).await?;
        if if_match.is_some_and(|version| version != row.version) {
            return Err(NotifyError::VersionMismatch);
        }
        if let Some(url) = url {
            row.url = url;
        }
        if let Some(description) = description {
            row.description = description;
        }
        if let Some(types) = types {
            row.event_types = serde_json::to_string(&types).unwrap_or_default();
        }
        if let Some(enabled) = patch.enabled {
            if enabled && !row.enabled {
                // Staff turned it back on: its failures start counting afresh.
                row.failing_since = None;
            }
            row.enabled = enabled;
            row.disabled_reason = None;
        }
        self.write(row, "updated", by).await
    }

    /// Removes an endpoint with its deliveries.
    pub async fn delete(&self, id: EndpointId, by: &str) -> Result<(), NotifyError> {
        let row = self.find(id).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        if !store::delete_endpoint(&mut tx, id.0).await? {
            return Err(NotifyError::EndpointNotFound);
        }
        tx.record(&changed(&row, "deleted", by), row.version + 1, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new secret; the old one keeps signing beside it for the overlap.
    pub async fn rotate(
        &self,
        id: EndpointId,
        cmd: RotateSecret,
        by: &str,
    ) -> Result<EndpointWithSecret, NotifyError> {
        let overlap = cmd.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
        if !(0..=MAX_OVERLAP_SECS).contains(&overlap) {
            return Err(NotifyError::invalid(
                FieldError::new(
                    "/overlap_secs",
                    "out_of_range",
                    format!("0 to {MAX_OVERLAP_SECS} seconds"),
                ),
                "/overlap_secs",
            ));
        }
        let mut row = self.find(id).await?;
        let secret = domain::new_secret().map_err(|_| NotifyError::Random)?;
        let now = self.clock.now();
        let old = std::mem::replace(&mut row.secret, secret.clone());
        if overlap > 0 {
            row.previous_secret = Some(old);
            row.previous_expires_at = Some(now + time::Duration::seconds(overlap));
        } else {
            row.previous_secret = None;
            row.previous_expires_at = None;
        }
        let endpoint = self.write(row, "secret_rotated", by).await?;
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// An endpoint's deliveries, newest first, optionally of one status.
    pub async fn deliveries(
        &self,
        id: EndpointId,
        status: Option<DeliveryStatus>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Delivery>, NotifyError> {
        let limit = page_limit(limit)?;
        let before = cursor.map(decode_cursor::<Uuid>).transpose()?;
        self.find(id).await?;
        let mut conn = self.db.read().await?;
        let rows = store::list_deliveries(
            &mut conn,
            id.0,
            status.map(DeliveryStatus::as_str),
            before,
            limit,
        )
        .await?;
        Ok(page_of(&rows, limit, |r| r.id, delivery_of))
    }

    /// One delivery with its body and every attempt.
    pub async fn delivery(
        &self,
        id: EndpointId,
        delivery: DeliveryId,
    ) -> Result<DeliveryDetail, NotifyError> {
        let mut conn = self.db.read().await?;
        let row = store::find_delivery(&mut conn, id.0, delivery.0)
            .await?
            .ok_or(NotifyError::DeliveryNotFound)?;
        let payload = store::payload_of(&mut conn, delivery.0).await?;
        let mut attempts: Vec<Attempt> = store::attempts_of(&mut conn, delivery.0)
            .await?
            .iter()
            .map(attempt_of)
            .collect();
        // Failures are kept one by one; a success is the delivery's last attempt.
        if let (Some(at), Some(duration_ms)) = (row.last_attempt_at, row.last_duration_ms)
            && row.last_error.is_none()
            && attempts.last().is_none_or(|a| a.attempt < row.attempts)
        {
            attempts.push(Attempt {
                attempt: row.attempts,
                at,
                status_code: row.last_status_code.and_then(|c| i32::try_from(c).ok()),
                duration_ms,
                error: None,
                response: row.last_response.clone(),
            });
        }
        Ok(DeliveryDetail {
            delivery: delivery_of(&row),
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            attempts,
        })
    }

    /// Sends a delivery again now, whatever its state, with a fresh retry schedule.
    pub async fn replay(&self, id: EndpointId, delivery: DeliveryId) -> Result<(), NotifyError> {
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        if !store::replay_one(&mut tx, id.0, delivery.0, now).await? {
            return Err(NotifyError::DeliveryNotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sends again every delivery of the endpoint made in a time range (by default the failed
    /// ones).
    pub async fn replay_range(
        &self,
        id: EndpointId,
        range: ReplayRange,
    ) -> Result<Replayed, NotifyError> {
        if range.until <= range.since {
            return Err(NotifyError::invalid(
                FieldError::new("/until", "invalid_range", "`until` must be after `since`"),
                "/until",
            ));
        }
        self.find(id).await?;
        let status = range.status.unwrap_or(DeliveryStatus::Failed);
        let now = self.clock.now();
        let mut tx = self.db.begin_write().await?;
        let queued = store::replay_range(
            &mut tx,
            id.0,
            range.since,
            range.until,
            status.as_str(),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Replayed { queued })
    }

    async fn find(&self, id: EndpointId) -> Result<EndpointRow, NotifyError> {
        let mut conn = self.db.read().await?;
        store::find_endpoint(&mut conn, id.0)
            .await?
            .ok_or(NotifyError::EndpointNotFound)
    }

    /// Writes `row` as the next version with its event.
    async fn write(
        &self,
        mut row: EndpointRow,
        action: &str,
        by: &str,
    ) -> Result<Endpoint, NotifyError> {
        let now = self.clock.now();
        row.version += 1;
        row.updated_at = now;
        let mut tx = self.db.begin_write().await?;
        if !store::update_endpoint(&mut tx, &row).await? {
            return Err(NotifyError::VersionMismatch);
        }
        tx.record(&changed(&row, action, by), row.version, now)
            .await?;
        tx.commit().await?;
        Ok(endpoint_of(&row))
    }

    /// A URL staff may register: well-formed, and not an address literal deliveries may not
    /// reach. A host name is checked when a delivery resolves it.
    fn check_url(&self, raw: &str) -> Result<String, FieldError> {
        let url = domain::parse_url(raw)?;
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !self.settings.destinations.permits(ip)) {
            return Err(FieldError::new(
                "",
                "destination_not_allowed",
                "loopback, private and link-local addresses are not called unless allowed in \
                 notify.webhooks.allowed_networks",
            ));
        }
        Ok(url.to_string())
    }
}

/// Marks an endpoint disabled by the store after failing too long, with its event. False when
/// it was not enabled any more.
pub(crate) async fn disable_failing(
    db: &Db,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, NotifyError> {
    let mut conn = db.read().await?;
    let Some(mut row) = store::find_endpoint(&mut conn, id).await? else {
        return Ok(false);
    };
    drop(conn);
    if !row.enabled {
        return Ok(false);
    }
    row.enabled = false;
    row.disabled_reason = Some("failing".to_owned());
    row.version += 1;
    row.updated_at = now;
    let mut tx = db.begin_write().await?;
    if !store::update_endpoint(&mut tx, &row).await? {
        return Ok(false);
    }
    tx.record(&changed(&row, "disabled", "store"), row.version, now)
        .await?;
    tx.commit().await?;
    Ok(true)
}

fn changed(row: &EndpointRow, action: &str, by: &str) -> EndpointChanged {
    EndpointChanged {
        id: EndpointId(row.id),
        url: row.url.clone(),
        action: action.to_owned(),
        enabled: row.enabled,
        by: by.to_owned(),
    }
}

fn check_description(d: &str) -> Result<String, FieldError> {
    let d = d.trim();
    emporium_kernel::text::single_line(d)?;
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(FieldError::new(
            "",
            "too_long",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(d.to_owned())
}

fn page_limit(limit: Option<u32>) -> Result<i64, NotifyError> {
    emporium_kernel::cursor::page_limit(limit, 50, MAX_PAGE)
        .map_err(|e| NotifyError::Invalid(vec![e]))
}

fn decode_cursor<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, NotifyError> {
    Cursor::decode(raw).map_err(|e| NotifyError::Invalid(vec![e]))
}

fn page_of<R, T, K: serde::Serialize>(
    rows: &[R],
    limit: i64,
    key: impl Fn(&R) -> K,
    map: impl Fn(&R) -> T,
) -> Page<T> {
    let full = usize::try_from(limit).is_ok_and(|l| rows.len() == l);
    Page {
        items: rows.iter().map(map).collect(),
        next_cursor: if full {
            rows.last().map(|r| Cursor::encode(&key(r)).into_string())
        } else {
            None
        },
    }
}

pub(crate) fn endpoint_of(row: &EndpointRow) -> Endpoint {
    Endpoint {
        id: EndpointId(row.id),
        url: row.url.clone(),
        description: row.description.clone(),
        event_types: serde_json::from_str(&row.event_types).unwrap_or_default(),
        enabled: row.enabled,
        disabled_reason: row.disabled_reason.clone(),
        failing_since: row.failing_since,
        previous_secret_expires_at: row.previous_expires_at,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn delivery_of(row: &DeliveryRow) -> Delivery {
    let status = DeliveryStatus::parse(&row.status).unwrap_or(DeliveryStatus::Pending);
    Delivery {
        id: DeliveryId(row.id),
        endpoint_id: EndpointId(row.endpoint_id),
        event_id: row.event_id,
        event_type: row.event_type.clone(),
        aggregate_id: row.aggregate_id.clone(),
        status,
        attempts: row.attempts,
        next_attempt_at: (status == DeliveryStatus::Pending).then_some(row.next_attempt_at),
        last_attempt_at: row.last_attempt_at,
        last_status_code: row.last_status_code.and_then(|c| i32::try_from(c).ok()),
        last_duration_ms: row.last_duration_ms,
        last_error: row.last_error.clone(),
        last_response: row.last_response.clone(),
        created_at: row.created_at,
    }
}

fn attempt_of(row: &AttemptRow) -> Attempt {
    Attempt {
        attempt: row.attempt,
        at: row.at,
        status_code: row.status_code.and_then(|c| i32::try_from(c).ok()),
        duration_ms: row.duration_ms,
        error: row.error.clone(),
        response: row.response.clone(),
    }
}
