//! The outbox: events and their webhook deliveries (claimed by the worker, with each attempt
//! logged), the merchants' signing secrets, in-app notifications and the e-mail outbox.

use super::{Before, StoreResult};
use crate::order::{Delivery, DeliveryJob, DeliveryOutcome, OutgoingEmail};
use async_trait::async_trait;

/// Events, webhook deliveries and secrets, notifications and e-mails.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn find_event(&self, id: &str) -> StoreResult<Option<crate::order::Event>>;

    /// Events after `after`, oldest first, created before `visible_before`.
    async fn find_events_after(
        &self,
        merchant_id: &str,
        after: Before<'_>,
        visible_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::order::Event>>;

    /// Leases up to `limit` due deliveries until `lease_until`, each to one worker.
    async fn claim_deliveries(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<DeliveryJob>>;

    /// Logs each attempt and moves its delivery on, all in one transaction.
    async fn record_delivery_attempts(
        &self,
        attempts: &[(&DeliveryJob, crate::order::DeliveryAttempt, DeliveryOutcome)],
    ) -> StoreResult<()>;

    async fn find_deliveries(&self, merchant_id: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Delivery>>;

    /// Schedules a delivery of this merchant's again, now; false if it is not theirs.
    async fn retry_delivery(&self, id: &str, merchant_id: &str, now: i64) -> StoreResult<bool>;

    async fn count_pending_deliveries(&self) -> StoreResult<i64>;

    /// New secret; the old one keeps signing until `old_until`.
    /// Makes the sealed `secret` (inserted with it) the merchant's signing secret; the one
    /// before keeps signing until `old_until`.
    async fn rotate_webhook_secret(
        &self,
        merchant_id: &str,
        secret: &crate::saved::VaultRecord,
        old_until: i64,
    ) -> StoreResult<()>;

    /// Signing secrets still kept in plain text (from before they were sealed):
    /// `(merchant, is the previous secret, secret)`.
    async fn find_plain_webhook_secrets(&self, limit: i64) -> StoreResult<Vec<(String, bool, String)>>;

    /// Replaces a plain-text signing secret by its sealed record (inserted with it), unless
    /// it changed meanwhile.
    async fn seal_plain_webhook_secret(
        &self,
        merchant_id: &str,
        old: bool,
        plain: &str,
        sealed: &crate::saved::VaultRecord,
    ) -> StoreResult<bool>;

    /// Claims up to `limit` unsent e-mails, oldest first, for this sender until
    /// `lease_until`: no other sender gets them before the lease runs out (a sender that
    /// dies frees them so). Only e-mails whose commit is durable.
    async fn claim_pending_emails(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<OutgoingEmail>>;

    async fn mark_email_sent(&self, id: &str, now: i64) -> StoreResult<()>;
}
