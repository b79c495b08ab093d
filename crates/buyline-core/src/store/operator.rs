//! The operator console: its cookie sessions, its audit log, and finding merchants.

use super::StoreResult;
use crate::model::Merchant;
use async_trait::async_trait;

/// One operator action, as the audit log keeps it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub action: String,
    pub detail: String,
}

/// Operator sessions and the audit log.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Opens a session (its token's hash) until `expires_at`, and forgets sessions that
    /// expired before `now`.
    async fn insert_operator_session(&self, token_hash: &str, now: i64, expires_at: i64) -> StoreResult<()>;

    /// Whether a session with this token hash is open at `now`.
    async fn operator_session_open(&self, token_hash: &str, now: i64) -> StoreResult<bool>;

    async fn delete_operator_session(&self, token_hash: &str) -> StoreResult<()>;

    async fn append_operator_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// The newest entries first; `action`, when given, keeps only that action.
    async fn list_operator_audit(&self, action: Option<&str>, limit: i64) -> StoreResult<Vec<AuditEntry>>;

    /// Merchants whose handle or name contains `q` (all when empty), newest first.
    async fn search_merchants(&self, q: &str, limit: i64) -> StoreResult<Vec<Merchant>>;
}
