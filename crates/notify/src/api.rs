//! The plain data of notify's API: webhook endpoints, their deliveries and attempts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::domain::{DeliveryId, EndpointId};

/// A webhook endpoint as staff see it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    pub id: EndpointId,
    pub url: String,
    pub description: String,
    /// Event types or patterns (`order.*`, `*`) it receives.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why the store disabled it (`failing`: no delivery succeeded for the configured time);
    /// `null` when enabled or disabled by staff.
    pub disabled_reason: Option<String>,
    /// The first failure since its last success; `null` while deliveries succeed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    /// Until when the secret before the last rotation still signs; `null` when none does.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// Bumped by every change; send it back in `If-Match` to change the endpoint safely.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// An endpoint with its signing secret: the answer of a creation or a rotation, the only
/// answers that show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EndpointWithSecret {
    pub endpoint: Endpoint,
    /// `whsec_…`: verify each delivery's `webhook-signature` with it. Shown once.
    pub secret: String,
}

/// A new endpoint.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `http` or `https` URL the store POSTs deliveries to.
    #[schema(max_length = 2000)]
    pub url: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// Event types, `<aggregate>.*` patterns, or `*`.
    #[schema(min_items = 1, max_items = 50)]
    pub event_types: Vec<String>,
    /// Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A change to an endpoint; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(min_items = 1, max_items = 50)]
    pub event_types: Option<Vec<String>>,
    /// Enabling an endpoint the store disabled clears its failure record.
    pub enabled: Option<bool>,
}

/// A secret rotation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing beside the new one, in seconds (0 to 604800;
    /// default 86400).
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_secs: Option<i64>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Every attempt failed: the dead letter, kept until replayed.
    Failed,
}

impl DeliveryStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// The `webhook-id` header of every attempt.
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    /// The event delivered (`GET /v1/admin/events` shows it).
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub aggregate_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// The last answer's status code; `null` when none came (timeout, refused, blocked).
    pub last_status_code: Option<i32>,
    pub last_duration_ms: Option<i64>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    /// The start of the last answer's body (at most 1 KiB, as text).
    pub last_response: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub attempt: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// The start of the answer's body (at most 1 KiB).
    pub response: Option<String>,
}

/// A delivery with its message and every attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    pub delivery: Delivery,
    /// The body as sent.
    pub payload: serde_json::Value,
    pub attempts: Vec<Attempt>,
}

/// A replay of every delivery of an endpoint created in a time range.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRange {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Replay only deliveries in this state (default: `failed`).
    pub status: Option<DeliveryStatus>,
}

/// How many deliveries a replay queued.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    pub queued: u64,
}

/// A page of a list (the one `Page` schema of the API).
pub use emporium_kernel::Page;
