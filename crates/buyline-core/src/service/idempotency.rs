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
const ABANDONED_AFTER: i64 = 60 * 1_000_000;

impl Services {
    pub async fn idempotency_begin(&self, scope: &str, key: &str, request_hash: &str) -> Result<Idempotency> {
        Ok(self.store.begin_idempotent(scope, key, request_hash, now_micros(), ABANDONED_AFTER).await?)
    }

    pub async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
    ) -> Result<()> {
        Ok(self.store.finish_idempotent(scope, key, status, content_type, body).await?)
    }

    /// Forgets a key whose request failed on our side, so a retry runs again.
    pub async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<()> {
        Ok(self.store.abandon_idempotent(scope, key).await?)
    }
}
