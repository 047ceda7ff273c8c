//! Payments' events, recorded in the outbox with the change they describe. Payloads never deny
//! unknown fields, so older consumers keep reading newer events.

use emporium_kernel::Event;
use emporium_kernel::ids::PaymentId;
use serde::{Deserialize, Serialize};

/// A payment intent was created or moved to another status (authorised, declined, failed,
/// captured, voided, refunded). The sequence is the intent's version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentChanged {
    pub id: PaymentId,
    /// What it pays for (a checkout).
    pub reference: String,
    pub provider: String,
    /// The status after the change.
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    pub failure_code: Option<String>,
}

impl Event for PaymentChanged {
    const TYPE: &'static str = "payment.status_changed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.id.to_string()
    }
}
