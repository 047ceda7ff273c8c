//! What a checkout takes and answers, and the states it passes through.

use emporium_kernel::{DomainError, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::domain::Order;
use crate::error::OrderingError;
use crate::store::CheckoutRow;

/// How to pay, as the storefront says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentChoice {
    /// `manual` or `test` (or a provider added to the build).
    pub provider: String,
    /// The provider's payment token (for `test`: `tok_success`, `tok_decline`, …).
    #[serde(default)]
    pub token: Option<String>,
}

/// Body of a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub payment: PaymentChoice,
}

/// A placed order and the token with which a guest reads it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlacedOrder {
    /// Send as `X-Order-Token` to read the order without a customer session.
    pub order_token: String,
    pub order: Order,
}

/// Why a checkout failed; stored with the checkout so a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{detail}")]
pub struct CheckoutFailure {
    pub code: String,
    pub detail: String,
}

impl DomainError for CheckoutFailure {
    fn kind_and_code(&self) -> (ErrorKind, &'static str) {
        match self.code.as_str() {
            "out_of_stock" => (ErrorKind::Conflict, "out_of_stock"),
            "coupon_not_applicable" => (ErrorKind::Invalid, "coupon_not_applicable"),
            "payment_declined" => (ErrorKind::PaymentRequired, "payment_declined"),
            "payment_provider_unavailable" => {
                (ErrorKind::Unavailable, "payment_provider_unavailable")
            }
            "payment_unavailable" => (ErrorKind::Unavailable, "payment_unavailable"),
            "payment_provider_unknown" => (ErrorKind::Invalid, "payment_provider_unknown"),
            "checkout_incomplete" => (ErrorKind::Invalid, "checkout_incomplete"),
            "cart_empty" => (ErrorKind::Invalid, "cart_empty"),
            "checkout_interrupted" => (ErrorKind::Unavailable, "checkout_interrupted"),
            _ => (ErrorKind::Internal, "internal"),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        // The breaker lets one probe through once its open period is over; a retry may be it.
        (self.code == "payment_unavailable").then_some(1)
    }
}

/// What a checkout answers: the order, or why not.
#[derive(Debug)]
pub enum CheckoutOutcome {
    Placed(Box<PlacedOrder>),
    Failed(CheckoutFailure),
}

/// Where a checkout stands, in order; stored by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutState {
    /// Claimed: the cart is held; stock may be reserved (found by reference).
    Started,
    /// Coupons redeemed and the payment intent opened, in one transaction.
    Redeemed,
    /// The order is placed and answered; the completer takes it to `Completed`.
    Placed,
    Completed,
    /// Compensated, with its answer.
    Failed,
}

impl CheckoutState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Redeemed => "redeemed",
            Self::Placed => "placed",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The state a stored name names.
    pub fn parse(s: &str) -> Result<Self, OrderingError> {
        Ok(match s {
            "started" => Self::Started,
            "redeemed" => Self::Redeemed,
            "placed" => Self::Placed,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            other => return Err(OrderingError::Corrupt(format!("checkout state {other}"))),
        })
    }
}

pub(super) fn failure(code: &str, detail: &str) -> CheckoutFailure {
    CheckoutFailure {
        code: code.to_owned(),
        detail: detail.to_owned(),
    }
}

pub(super) fn status_of(failure: &CheckoutFailure) -> u16 {
    emporium_http::status_of(failure.kind_and_code().0).as_u16()
}

/// The stored answer of a finished (or placed) checkout.
pub(super) fn answer_of(row: &CheckoutRow) -> Result<Option<CheckoutOutcome>, OrderingError> {
    let Some(body) = &row.response_body else {
        return Ok(None);
    };
    let corrupt = |e: serde_json::Error| OrderingError::Corrupt(e.to_string());
    Ok(Some(if row.response_status == Some(201) {
        CheckoutOutcome::Placed(Box::new(serde_json::from_str(body).map_err(corrupt)?))
    } else {
        CheckoutOutcome::Failed(serde_json::from_str(body).map_err(corrupt)?)
    }))
}
