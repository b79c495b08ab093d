//! The social graph and posts: follows, profiles, posts and replies, timelines.

use super::{Before, StoreResult};
use crate::model::{NewPost, Post, Profile};
use async_trait::async_trait;

/// Follows, profiles, posts and timelines.
#[async_trait]
pub trait SocialStore: Send + Sync {
    /// Idempotent: following twice is one follow.
    async fn insert_follow(&self, follower: &str, followee: &str, at: i64) -> StoreResult<()>;

    async fn delete_follow(&self, follower: &str, followee: &str) -> StoreResult<()>;

    async fn find_profile(&self, handle: &str, viewer: Option<&str>) -> StoreResult<Option<Profile>>;

    /// With `cart_job`, also queues the post's hashtag-cart job, in the same transaction.
    async fn insert_post(&self, post: &NewPost, cart_job: bool) -> StoreResult<()>;

    /// Deletes the author's post; its replies stay, no longer attached. False if not theirs.
    async fn delete_post(&self, id: &str, author_id: &str) -> StoreResult<bool>;

    async fn find_post(&self, id: &str) -> StoreResult<Option<Post>>;

    /// Direct replies, oldest first.
    async fn find_replies(&self, id: &str, limit: i64) -> StoreResult<Vec<Post>>;

    /// The viewer's own posts and those of accounts they follow, newest first.
    async fn find_home_timeline(&self, viewer: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;

    async fn find_posts_by_author(&self, author: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;

    /// Everyone's top-level posts, newest first: the page a signed-out visitor sees.
    async fn find_recent_posts(&self, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;

    /// Posts by id, in any order; unknown ids are skipped.
    async fn find_posts(&self, ids: &[String]) -> StoreResult<Vec<Post>>;

    async fn find_follow_handles(&self, account_id: &str) -> StoreResult<(Vec<String>, Vec<String>)>;

    /// The ids of the accounts `follower` follows.
    async fn find_followee_ids(&self, follower: &str) -> StoreResult<Vec<String>>;
}
