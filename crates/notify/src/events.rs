//! Notify's events, recorded in the outbox with the change they describe. They are the staff's
//! audit trail of endpoints; an endpoint cannot subscribe to them.

use emporium_kernel::Event;
use serde::{Deserialize, Serialize};

use crate::domain::EndpointId;

/// An endpoint was created, changed, deleted, or had its secret rotated, by staff or (when it
/// kept failing) by the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointChanged {
    pub id: EndpointId,
    pub url: String,
    /// `created`, `updated`, `deleted`, `secret_rotated` or `disabled` (by the store, after
    /// failing for `notify.webhooks.disable_after_ms`).
    pub action: String,
    pub enabled: bool,
    /// The caller's token subject, or `store` when the store disabled it.
    pub by: String,
}

impl Event for EndpointChanged {
    const TYPE: &'static str = "webhook_endpoint.changed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}
