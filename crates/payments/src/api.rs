//! What other contexts call: [`PaymentsApi`], implemented by [`PaymentService`] in one process
//! (and by a network client once payments run as their own service).

use emporium_db::WriteTx;
use emporium_kernel::Money;
use emporium_kernel::ids::PaymentId;

use crate::service::{OpenedPayment, Operation, PaymentError, PaymentIntent, PaymentService};

/// Payments as the checkout and the order lifecycle use them.
#[async_trait::async_trait]
pub trait PaymentsApi: Send + Sync {
    /// Whether a new payment may use `provider` (`UnknownProvider`, `ProviderNotEnabled`).
    fn check_enabled(&self, provider: &str) -> Result<(), PaymentError>;

    /// The providers new payments may use, by name.
    fn enabled_providers(&self) -> Vec<String>;

    /// Records a `pending` intent for `reference`, which has none yet, in the caller's
    /// transaction: written with its commit, without a statement of its own (a used reference
    /// fails the commit). [`Self::authorize_opened`] asks the provider once committed.
    async fn open_new_in(
        &self,
        tx: &mut WriteTx,
        reference: &str,
        provider: &str,
        amount: Money,
    ) -> Result<OpenedPayment, PaymentError>;

    /// Asks the provider to authorise an intent [`Self::open_new_in`] recorded, and records the
    /// answer.
    async fn authorize_opened(
        &self,
        opened: OpenedPayment,
        token: Option<&str>,
    ) -> Result<PaymentIntent, PaymentError>;

    /// Captures, voids or refunds under `key`, recorded before the provider call and settled
    /// after it (see `PaymentService::operate`).
    async fn operate(
        &self,
        id: PaymentId,
        operation: Operation,
        key: &str,
    ) -> Result<PaymentIntent, PaymentError>;

    /// The intent for `reference`, if any.
    async fn find_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<PaymentIntent>, PaymentError>;
}

#[async_trait::async_trait]
impl PaymentsApi for PaymentService {
    fn check_enabled(&self, provider: &str) -> Result<(), PaymentError> {
        PaymentService::check_enabled(self, provider)
    }

    fn enabled_providers(&self) -> Vec<String> {
        PaymentService::enabled_providers(self)
    }

    async fn open_new_in(
        &self,
        tx: &mut WriteTx,
        reference: &str,
        provider: &str,
        amount: Money,
    ) -> Result<OpenedPayment, PaymentError> {
        PaymentService::open_new_in(self, tx, reference, provider, amount).await
    }

    async fn authorize_opened(
        &self,
        opened: OpenedPayment,
        token: Option<&str>,
    ) -> Result<PaymentIntent, PaymentError> {
        PaymentService::authorize_opened(self, opened, token).await
    }

    async fn operate(
        &self,
        id: PaymentId,
        operation: Operation,
        key: &str,
    ) -> Result<PaymentIntent, PaymentError> {
        PaymentService::operate(self, id, operation, key).await
    }

    async fn find_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<PaymentIntent>, PaymentError> {
        PaymentService::find_by_reference(self, reference).await
    }
}
