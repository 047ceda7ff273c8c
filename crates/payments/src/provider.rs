//! The provider trait and the two built-in providers.
//!
//! **Adding a provider** (a card processor, a wallet) is one module: implement
//! [`PaymentProvider`] over its HTTP API (a timeout on every call; map its answers to
//! [`Authorization`] and its failures to [`ProviderError`]), and register it with
//! `PaymentService::with_provider`. The service persists every state before and after each call,
//! so a provider never needs storage of its own. Every call carries an idempotency key (the intent
//! id for an authorisation, the operation's key for a capture, void or refund) that the provider
//! must pass on to its API, so that a call retried after a lost answer or a crash does not move
//! the money twice.

use emporium_kernel::Money;
use emporium_kernel::ids::PaymentId;

/// What a provider answered to an authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The money is held; `reference` names the authorisation at the provider.
    Approved { reference: String },
    /// The provider refused; `code` is `card_declined` or `insufficient_funds`.
    Declined { code: &'static str },
}

/// A provider call that did not give an answer to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached, or its answer was lost: whether it acted is unknown.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the operation (capture of a voided authorisation, say).
    #[error("payment provider refused: {0}")]
    Refused(String),
}

/// A payment provider: the four operations on an amount.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The name intents record (`manual`, `test`).
    fn name(&self) -> &'static str;
    /// Holds `amount` for intent `intent`; `token` is the storefront's payment token.
    async fn authorize(
        &self,
        intent: PaymentId,
        amount: Money,
        token: Option<&str>,
    ) -> Result<Authorization, ProviderError>;
    /// Takes `amount` (at most what was held) of authorisation `reference`; `key` makes a
    /// repeated call a no-op.
    async fn capture(&self, reference: &str, amount: Money, key: &str)
    -> Result<(), ProviderError>;
    /// Releases authorisation `reference` (or the one made for `intent` when its answer was
    /// lost and the reference is unknown); `key` makes a repeated call a no-op.
    async fn void(
        &self,
        intent: PaymentId,
        reference: Option<&str>,
        key: &str,
    ) -> Result<(), ProviderError>;
    /// Pays back `amount` of what was captured under `reference`; `key` makes a repeated call
    /// a no-op (a second refund of the same amount needs another key).
    async fn refund(&self, reference: &str, amount: Money, key: &str) -> Result<(), ProviderError>;
}

/// Offline payment (bank transfer, cash on delivery): authorising always succeeds and holds
/// nothing; staff capture once the money has arrived.
#[derive(Debug, Default)]
pub struct ManualProvider;

#[async_trait::async_trait]
impl PaymentProvider for ManualProvider {
    fn name(&self) -> &'static str {
        "manual"
    }

    async fn authorize(
        &self,
        intent: PaymentId,
        _amount: Money,
        _token: Option<&str>,
    ) -> Result<Authorization, ProviderError> {
        Ok(Authorization::Approved {
            reference: format!("manual_{}", intent.0.simple()),
        })
    }

    async fn capture(
        &self,
        _reference: &str,
        _amount: Money,
        _key: &str,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn void(
        &self,
        _intent: PaymentId,
        _reference: Option<&str>,
        _key: &str,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn refund(
        &self,
        _reference: &str,
        _amount: Money,
        _key: &str,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// A provider with outcomes chosen by the payment token, so a storefront can walk every path:
///
/// | token | authorisation |
/// | --- | --- |
/// | `tok_success` (or none) | approved |
/// | `tok_decline` | declined, `card_declined` |
/// | `tok_insufficient_funds` | declined, `insufficient_funds` |
/// | `tok_error_after_auth` | approved at the "provider", but the answer is lost: `Unavailable` |
///
/// Any other token is declined (`card_declined`). Capture, void and refund succeed. References
/// are derived from the intent id, so a lost answer can still be voided.
#[derive(Debug, Default)]
pub struct TestProvider;

/// The `tok_…` tokens [`TestProvider`] knows.
pub const TEST_TOKENS: [&str; 4] = [
    "tok_success",
    "tok_decline",
    "tok_insufficient_funds",
    "tok_error_after_auth",
];

#[async_trait::async_trait]
impl PaymentProvider for TestProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn authorize(
        &self,
        intent: PaymentId,
        _amount: Money,
        token: Option<&str>,
    ) -> Result<Authorization, ProviderError> {
        let reference = format!("test_{}", intent.0.simple());
        match token.unwrap_or("tok_success") {
            "tok_success" => Ok(Authorization::Approved { reference }),
            "tok_insufficient_funds" => Ok(Authorization::Declined {
                code: "insufficient_funds",
            }),
            "tok_error_after_auth" => Err(ProviderError::Unavailable(
                "the authorisation was made but its answer was lost".to_owned(),
            )),
            _ => Ok(Authorization::Declined {
                code: "card_declined",
            }),
        }
    }

    async fn capture(
        &self,
        _reference: &str,
        _amount: Money,
        _key: &str,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn void(
        &self,
        _intent: PaymentId,
        _reference: Option<&str>,
        _key: &str,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn refund(
        &self,
        _reference: &str,
        _amount: Money,
        _key: &str,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
}
