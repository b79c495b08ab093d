//! Hashtag carts: merchant links (consent), cart items, the cart-hashtag lookup and the jobs
//! the cart answerer claims and finishes.

use super::StoreResult;
use crate::order::CheckoutRecord;
use async_trait::async_trait;

/// Merchant links, cart items, cart hashtags and cart jobs.
#[async_trait]
pub trait CartStore: Send + Sync {
    /// The cart items of these accounts, oldest first.
    async fn find_cart_items(&self, account_ids: &[String]) -> StoreResult<Vec<crate::cart::CartItemRecord>>;

    /// The cart hashtags with these keys (see [`crate::cart::tag_key`]).
    async fn find_cart_tags(&self, keys: &[String]) -> StoreResult<Vec<crate::cart::CartTag>>;

    /// Idempotent: linking twice keeps the first consent time.
    async fn insert_merchant_link(&self, account_id: &str, merchant_id: &str, now: i64) -> StoreResult<()>;

    /// True if there was a link to revoke.
    async fn delete_merchant_link(&self, account_id: &str, merchant_id: &str) -> StoreResult<bool>;

    /// `(account_id, merchant_id, linked_at)` of these accounts' links, oldest first.
    async fn find_merchant_links(&self, account_ids: &[String]) -> StoreResult<Vec<(String, String, i64)>>;

    /// When the shopper's last `limit` cart-hashtag posts since `since` were written, newest first.
    async fn find_recent_cart_jobs(&self, account_id: &str, since: i64, limit: i64) -> StoreResult<Vec<i64>>;

    /// Leases up to `limit` pending jobs until `lease_until`, each to one worker.
    async fn claim_cart_jobs(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<crate::cart::CartJob>>;

    /// Writes each result (cart item, reply, notification, event) with its job's `done` mark,
    /// all in one transaction; a job already done is skipped. Returns how many were written.
    async fn finish_cart_jobs(&self, results: &[crate::cart::CartResult], now: i64) -> StoreResult<usize>;

    /// False if it is not the shopper's item with that merchant.
    async fn delete_cart_item(&self, account_id: &str, merchant_id: &str, item_id: &str) -> StoreResult<bool>;

    /// Writes the checkout and marks the cart items it came from: the order it becomes
    /// removes them (in [`CheckoutStore::commit_order`](super::CheckoutStore::commit_order)'s transaction).
    async fn insert_cart_checkout(&self, c: &CheckoutRecord, item_ids: &[String]) -> StoreResult<()>;
}
