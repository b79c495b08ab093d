//! Discovery: full-text search over posts, a hashtag's posts, accounts by handle or name,
//! who to follow, and a person's notifications page by page.

use super::{Before, StoreResult};
use crate::discovery::AccountSummary;
use crate::model::Post;
use crate::order::Notification;
use async_trait::async_trait;

#[async_trait]
pub trait DiscoveryStore: Send + Sync {
    /// Posts whose text holds every word (already reduced to letters and digits), newest
    /// first, through the database's own full-text index.
    async fn search_posts(&self, words: &[String], before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;

    /// Posts carrying the hashtag (its case-folded key), newest first.
    async fn find_hashtag_posts(&self, tag: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;

    /// Live accounts whose handle or display name starts with `prefix` (lower case), newest first.
    async fn search_accounts(&self, prefix: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<AccountSummary>>;

    /// Merchants and accounts that posted since `active_since`, in `country`, that `viewer`
    /// neither is, owns nor follows: merchants first, then the most recently active.
    async fn find_suggestions(
        &self,
        viewer: &str,
        country: &str,
        active_since: i64,
        limit: i64,
    ) -> StoreResult<Vec<AccountSummary>>;

    /// A page of notifications, newest first.
    async fn find_notifications_page(
        &self,
        account_id: &str,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Notification>>;

    async fn count_unread_notifications(&self, account_id: &str) -> StoreResult<i64>;

    async fn mark_notifications_read(&self, account_id: &str, now: i64) -> StoreResult<()>;
}
