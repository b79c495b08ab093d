//! The built-in test processor's own records: its payments and refunds. Only the test
//! processor uses these.

use super::StoreResult;
use crate::payment::PaymentStatus;
use crate::test_processor::ProcessorPayment;
use async_trait::async_trait;

/// The test processor's payments and refunds.
#[async_trait]
pub trait ProcessorPaymentStore: Send + Sync {
    /// Inserts unless a payment with the same idempotency key exists.
    async fn insert_processor_payment(&self, p: &ProcessorPayment) -> StoreResult<()>;

    async fn find_processor_payment(&self, id: &str) -> StoreResult<Option<ProcessorPayment>>;

    async fn find_processor_payment_by_key(&self, key: &str) -> StoreResult<Option<ProcessorPayment>>;

    /// Moves the payment to `to` if it is in one of `from`; true if it moved.
    async fn update_processor_payment(
        &self,
        id: &str,
        from: &[PaymentStatus],
        to: PaymentStatus,
        error_code: Option<&str>,
    ) -> StoreResult<bool>;

    /// Records a refund of a captured payment once per key; `Err` if it would exceed the
    /// captured amount.
    async fn apply_processor_refund(
        &self,
        key: &str,
        payment_id: &str,
        amount: i64,
        now: i64,
    ) -> StoreResult<Result<(), String>>;

    /// Authorised or awaiting a challenge, created before `before`.
    async fn find_open_processor_payments(&self, before: i64) -> StoreResult<Vec<ProcessorPayment>>;
}
