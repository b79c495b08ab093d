//! Money out: merchant balances read from the ledger, and payouts, each a balanced ledger
//! transaction written with its payout record and its `payout.paid` event.

use super::{Before, StoreResult};
use crate::order::NewEvent;
use async_trait::async_trait;

/// What the ledger says about one merchant in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerBalance {
    pub merchant_id: String,
    pub currency: String,
    /// What the merchant is owed now (its payable account's credit balance).
    pub balance: i64,
    /// What has been paid out so far.
    pub paid_out: i64,
}

/// A payout as storage keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRecord {
    pub id: String,
    pub merchant_id: String,
    pub currency: String,
    pub amount: i64,
    pub status: String,
    pub created_at: i64,
}

/// Balances and payouts.
#[async_trait]
pub trait PayoutStore: Send + Sync {
    /// Balances per merchant and currency; one merchant's, or every merchant's with a
    /// positive balance when `merchant_id` is `None`.
    async fn find_balances(&self, merchant_id: Option<&str>) -> StoreResult<Vec<LedgerBalance>>;

    /// Pays the merchant in `currency`, in one transaction that first takes the
    /// (merchant, currency) payout lock, so a concurrent payout waits and then sees this one:
    /// the amount is what the payable account owes now, but no more than it owed counting
    /// only order money posted at or before `settled_before` (money still open to refund is
    /// kept). Nothing positive to pay: `None`, nothing written. Otherwise the payout row, the
    /// ledger transaction (payable debited, the merchant's bank account credited) and the
    /// event `event(&payout)` are written together.
    async fn pay_out(
        &self,
        id: &str,
        merchant_id: &str,
        currency: &str,
        settled_before: i64,
        now: i64,
        event: &(dyn for<'p> Fn(&'p PayoutRecord) -> NewEvent + Send + Sync),
    ) -> StoreResult<Option<PayoutRecord>>;

    /// Payouts newest first: one merchant's, or all.
    async fn find_payouts(
        &self,
        merchant_id: Option<&str>,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<PayoutRecord>>;
}
