//! The event envelope every domain event travels in, from the outbox to every consumer.
//!
//! Consumers must accept unknown fields and older versions, so `data` stays raw JSON until the
//! consumer that understands the type decodes it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A domain event payload: knows its type name and version.
pub trait Event: Serialize {
    /// `<aggregate>.<past-tense verb>`, e.g. `customer.registered`.
    const TYPE: &'static str;
    /// Bumped on a breaking change of the payload.
    const VERSION: i32;
    /// The id of the aggregate the event belongs to, as shown in the API.
    fn aggregate_id(&self) -> String;
}

/// The envelope: identity, ordering and tracing around a JSON payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique event id (UUIDv7); consumers de-duplicate on it.
    pub id: Uuid,
    /// Event type, e.g. `customer.registered`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload version.
    pub version: i32,
    /// The aggregate the event belongs to.
    pub aggregate_id: String,
    /// Position of the event in its aggregate's history, from 1.
    pub sequence: i64,
    /// When the change happened (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// W3C traceparent of the request that caused the event, if any.
    pub trace: Option<String>,
    /// The payload.
    pub data: serde_json::Value,
}
