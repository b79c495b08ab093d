//! The storage interface services need. Each method is one atomic operation: where several
//! rows change together, the implementation writes them in one transaction.

use crate::error::StoreError;
use crate::model::{Account, Credentials, Merchant, NewPost, Post, Product, Profile, Variant};
use async_trait::async_trait;

pub type StoreResult<T> = Result<T, StoreError>;

/// A position in a newest-first list: `(created_at, id)` of the last item seen.
pub type Before<'a> = Option<(i64, &'a str)>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Is the database reachable and migrated?
    async fn ping(&self) -> StoreResult<()>;

    async fn insert_account(&self, account: &Account, password_hash: Option<&str>) -> StoreResult<()>;
    async fn find_account(&self, id: &str) -> StoreResult<Option<Account>>;
    async fn find_account_by_handle(&self, handle: &str) -> StoreResult<Option<Account>>;
    /// Looks up by handle or e-mail, case-insensitively.
    async fn find_credentials(&self, login: &str) -> StoreResult<Option<Credentials>>;
    async fn count_accounts(&self) -> StoreResult<i64>;

    async fn insert_session(&self, token_hash: &str, account_id: &str, expires_at: i64) -> StoreResult<()>;
    /// The account of a live session.
    async fn find_session_account(&self, token_hash: &str, now: i64) -> StoreResult<Option<Account>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    /// Idempotent: following twice is one follow.
    async fn insert_follow(&self, follower: &str, followee: &str, at: i64) -> StoreResult<()>;
    async fn delete_follow(&self, follower: &str, followee: &str) -> StoreResult<()>;
    async fn find_profile(&self, handle: &str, viewer: Option<&str>) -> StoreResult<Option<Profile>>;

    async fn insert_post(&self, post: &NewPost) -> StoreResult<()>;
    async fn find_post(&self, id: &str) -> StoreResult<Option<Post>>;
    /// Direct replies, oldest first.
    async fn find_replies(&self, id: &str, limit: i64) -> StoreResult<Vec<Post>>;
    /// The viewer's own posts and those of accounts they follow, newest first.
    async fn find_home_timeline(&self, viewer: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;
    async fn find_posts_by_author(&self, author: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;
    /// Everyone's top-level posts, newest first: the page a signed-out visitor sees.
    async fn find_recent_posts(&self, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;

    /// Writes the merchant, its posting account and its first API key together.
    async fn insert_merchant(
        &self,
        merchant: &Merchant,
        account: &Account,
        api_key_hash: &str,
        webhook_secret: &str,
    ) -> StoreResult<()>;
    async fn find_merchant(&self, id: &str) -> StoreResult<Option<Merchant>>;
    async fn find_merchant_by_account(&self, account_id: &str) -> StoreResult<Option<Merchant>>;
    async fn find_merchants_by_owner(&self, owner_account_id: &str) -> StoreResult<Vec<Merchant>>;
    async fn find_merchant_by_api_key(&self, key_hash: &str) -> StoreResult<Option<Merchant>>;
    /// Revokes every key of the merchant and stores the new one, atomically.
    async fn replace_api_key(&self, merchant_id: &str, key_hash: &str) -> StoreResult<()>;
    async fn update_merchant(&self, merchant: &Merchant) -> StoreResult<()>;

    /// Writes the product with its variants and shipping rates together.
    async fn insert_product(&self, product: &Product) -> StoreResult<()>;
    /// Products in any order; unknown ids are skipped. `url` is left empty for the service.
    async fn find_products(&self, ids: &[String]) -> StoreResult<Vec<Product>>;
    async fn find_products_by_merchant(&self, merchant_id: &str) -> StoreResult<Vec<Product>>;
    /// Rewrites the product's own fields and replaces its shipping rates.
    async fn update_product(&self, product: &Product) -> StoreResult<()>;
    async fn update_variant(&self, product_id: &str, variant: &Variant) -> StoreResult<()>;

    async fn find_flag(&self, name: &str) -> StoreResult<Option<String>>;
    async fn upsert_flag(&self, name: &str, value_json: &str) -> StoreResult<()>;
}
