//! The experiment funnel's counts: impressions and distinct shoppers reached or opening,
//! written in batches by the funnel flusher; orders, buyers and revenue read from the orders
//! themselves (their `post_id`, and the arm their checkout recorded).

use super::StoreResult;
use crate::rollout::Arm;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// What the in-memory counter gathered since its last flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelBatch {
    /// (post, arm, impressions to add).
    pub impressions: Vec<(String, Arm, i64)>,
    /// (post, arm, account) reached: insert-or-ignore.
    pub reach: Vec<(String, Arm, String)>,
    /// (post, arm, account) who opened the buy sheet (holdout: the product page from the
    /// post's link): insert-or-ignore.
    pub opens: Vec<(String, Arm, String)>,
}

impl FunnelBatch {
    pub fn is_empty(&self) -> bool {
        self.impressions.is_empty() && self.reach.is_empty() && self.opens.is_empty()
    }
}

/// One arm's stored counts for one post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArmTotals {
    pub impressions: i64,
    pub reach: i64,
    pub opens: i64,
    /// Paid orders (captured or refunded since), not those waiting for or failing 3-D Secure.
    pub orders: i64,
    pub buyers: i64,
    /// Sum of those orders' totals per currency, minor units.
    pub revenue: BTreeMap<String, i64>,
}

/// Both arms of one post, and when its counts last changed (0 if never).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelTotals {
    pub buy: ArmTotals,
    pub holdout: ArmTotals,
    pub updated_at: i64,
}

#[async_trait]
pub trait FunnelStore: Send + Sync {
    /// Adds one batch in one transaction: impressions summed onto what is there, reach and
    /// opens inserted unless already present.
    async fn write_funnel_batch(&self, batch: &FunnelBatch, now: i64) -> StoreResult<()>;

    /// The counts of one post, per arm.
    async fn find_funnel(&self, post_id: &str) -> StoreResult<FunnelTotals>;
}
