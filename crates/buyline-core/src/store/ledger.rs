//! The double-entry ledger: capture posts an order's transaction once; the trial balance.

use super::StoreResult;
use crate::checkout::CaptureRecord;
use crate::order::TrialBalanceLine;
use async_trait::async_trait;

/// Ledger postings and the trial balance.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Marks these orders captured and posts each one's ledger transaction, in one write: an
    /// order already marked (by a capture that ran beside this one) gets no second posting.
    /// Answers the ids of those now marked captured, by this write or before it.
    async fn mark_captured(&self, captures: &[CaptureRecord], now: i64) -> StoreResult<Vec<String>>;

    async fn trial_balance(&self) -> StoreResult<Vec<TrialBalanceLine>>;
}
