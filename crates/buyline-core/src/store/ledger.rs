//! The double-entry ledger: capture posts an order's transaction once; the trial balance.

use super::StoreResult;
use crate::checkout::Posting;
use crate::order::TrialBalanceLine;
use async_trait::async_trait;

/// Ledger postings and the trial balance.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Marks the order captured and posts the ledger transaction, once: false if it already was.
    async fn mark_captured(&self, order_id: &str, currency: &str, postings: &[Posting], now: i64) -> StoreResult<bool>;

    async fn trial_balance(&self) -> StoreResult<Vec<TrialBalanceLine>>;
}
