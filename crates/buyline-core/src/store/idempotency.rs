//! `Idempotency-Key` records: begin, finish (the stored answer), abandon, expire.

use super::StoreResult;
use async_trait::async_trait;

/// `Idempotency-Key` records.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Records the key as in progress, or says what became of it. An in-progress record
    /// older than `abandoned_after` is taken over; a record created before `expired_before`
    /// is forgotten and the key starts afresh.
    #[allow(clippy::too_many_arguments)]
    async fn begin_idempotent(
        &self,
        scope: &str,
        account_id: Option<&str>,
        key: &str,
        request_hash: &str,
        now: i64,
        abandoned_after: i64,
        expired_before: i64,
    ) -> StoreResult<crate::service::Idempotency>;

    /// The recorded answer to a key, if it has one yet: `(status, content type, body)`. A
    /// read, for a duplicate waiting on the first request.
    async fn find_idempotent_answer(&self, scope: &str, key: &str) -> StoreResult<Option<(u16, String, String)>>;

    /// Deletes the records created before `before`; returns how many.
    async fn delete_idempotency_before(&self, before: i64) -> StoreResult<u64>;

    /// Records the answer; `account_id`, when given, names whose it is (a sign-up's new
    /// account), so erasing that account erases the replay.
    async fn finish_idempotent(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
        account_id: Option<&str>,
    ) -> StoreResult<()>;

    async fn abandon_idempotent(&self, scope: &str, key: &str) -> StoreResult<()>;
}
