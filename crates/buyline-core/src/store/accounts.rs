//! Accounts: sign-up rows, credentials for log-in, sessions, the log-in failure counters, and
//! erasure of a person (one transaction across every table that names them).

use super::StoreResult;
use crate::model::{Account, Credentials};
use async_trait::async_trait;

/// Accounts, credentials, sessions and log-in failures; erasure.
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn insert_account(&self, account: &Account, password_hash: Option<&str>) -> StoreResult<()>;

    async fn find_account(&self, id: &str) -> StoreResult<Option<Account>>;

    async fn find_account_by_handle(&self, handle: &str) -> StoreResult<Option<Account>>;

    /// Looks up by handle or e-mail, case-insensitively.
    async fn find_credentials(&self, login: &str) -> StoreResult<Option<Credentials>>;

    async fn count_accounts(&self) -> StoreResult<i64>;

    /// `(key, failures, window_start)` of the log-in failure counters under these keys
    /// whose window started at or after `since` (older windows have ended).
    async fn find_login_failures(&self, keys: &[String], since: i64) -> StoreResult<Vec<(String, i64, i64)>>;

    /// Counts one failed log-in under each key, atomically across processes: a window that
    /// started before `since` starts again at `now`. Ended windows are pruned.
    async fn record_login_failure(&self, keys: &[String], now: i64, since: i64) -> StoreResult<()>;

    async fn delete_login_failures(&self, key: &str) -> StoreResult<()>;

    async fn insert_session(&self, token_hash: &str, account_id: &str, now: i64, expires_at: i64) -> StoreResult<()>;

    /// The account of a live session.
    async fn find_session_account(&self, token_hash: &str, now: i64) -> StoreResult<Option<Account>>;

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    async fn find_accounts(&self, ids: &[String]) -> StoreResult<Vec<Account>>;

    /// Erases a person in one transaction: vault records shredded, sessions, follows,
    /// notifications, e-mails, cart and link records and posts deleted (with the
    /// merchants' automatic cart answers to them), orders kept with personal data removed,
    /// the payloads of their events rewritten by `erase_payload`, the account row reduced to
    /// a tombstone. Returns the ids of the deleted e-mails.
    async fn erase_account(
        &self,
        account_id: &str,
        now: i64,
        erase_payload: for<'p> fn(&'p str) -> Option<String>,
    ) -> StoreResult<Vec<String>>;
}
