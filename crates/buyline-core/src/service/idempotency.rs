//! `Idempotency-Key`: the first response to a key is kept and replayed for the same request;
//! the same key with another request is refused.

use super::Services;
use crate::error::Result;
use crate::types::now_micros;

/// What to do with a request carrying an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotency {
    /// First time: run it, then record the response.
    New,
    /// Seen and answered: send this again.
    Replay { status: u16, content_type: String, body: String },
    /// Seen, still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// A request still marked in progress after this is taken to have died with its process.
/// (A purchase does not depend on it: it is bound to its key and settled through that.)
const ABANDONED_AFTER: i64 = 60 * 1_000_000;
/// How long a response is kept for replays; after that the key may be used afresh.
pub const REPLAY_TTL: i64 = 24 * 3600 * 1_000_000;

impl Services {
    /// Records the start of a keyed request; `account_id` is whose it is, so erasing the
    /// account erases its replays.
    pub async fn idempotency_begin(
        &self,
        scope: &str,
        account_id: Option<&str>,
        key: &str,
        request_hash: &str,
    ) -> Result<Idempotency> {
        let now = now_micros();
        Ok(self
            .store
            .begin_idempotent(scope, account_id, key, request_hash, now, ABANDONED_AFTER, now - REPLAY_TTL)
            .await?)
    }

    /// The answer a duplicate is waiting for, once the first request has recorded it: a
    /// read, so waiting does not queue on the writer.
    pub async fn idempotency_answer(&self, scope: &str, key: &str) -> Result<Option<Idempotency>> {
        Ok(self
            .store
            .find_idempotent_answer(scope, key)
            .await?
            .map(|(status, content_type, body)| Idempotency::Replay { status, content_type, body }))
    }

    /// Forgets replays older than [`REPLAY_TTL`]; the reconciler calls it.
    pub async fn prune_idempotency(&self, now: i64) -> Result<u64> {
        Ok(self.store.delete_idempotency_before(now - REPLAY_TTL).await?)
    }

    pub async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
        account_id: Option<&str>,
    ) -> Result<()> {
        Ok(self.store.finish_idempotent(scope, key, status, content_type, body, account_id).await?)
    }

    /// Forgets a key whose request failed on our side, so a retry runs again.
    pub async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<()> {
        Ok(self.store.abandon_idempotent(scope, key).await?)
    }
}
