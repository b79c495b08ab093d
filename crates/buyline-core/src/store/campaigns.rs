//! Campaigns: merchants' promotions of their posts, and the active ones a timeline weaves in.

use super::{Before, StoreResult};
use crate::discovery::{Campaign, CampaignStatus, Promotion};
use async_trait::async_trait;

#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// The campaign and its one row per country, in one transaction.
    async fn insert_campaign(&self, c: &Campaign, now: i64) -> StoreResult<()>;

    async fn find_campaign(&self, id: &str) -> StoreResult<Option<Campaign>>;

    /// A merchant's campaigns, newest first.
    async fn find_campaigns(&self, merchant_id: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Campaign>>;

    /// Sets the status unless the campaign has ended meanwhile (guarded in the statement).
    /// False if nothing changed because it had.
    async fn update_campaign_status(&self, id: &str, to: CampaignStatus, now: i64) -> StoreResult<bool>;

    /// Active campaigns for `country` whose post still exists, oldest campaign first,
    /// after the campaign at `(created_at, id)` when given.
    async fn find_promotions(
        &self,
        country: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<Promotion>>;
}
