//! Ledger entries on SQL: postings and the trial balance.

use crate::write::{insert_rows, run_steps, Check, Job, Step};
use crate::{args, other, Db};
use async_trait::async_trait;
use buyline_core::checkout::Posting;
use buyline_core::ids::new_id;
use buyline_core::order::TrialBalanceLine;
use buyline_core::store::{LedgerStore, StoreResult};
use sqlx::Row;

pub(crate) async fn post_ledger(
    tx: &mut (impl std::ops::DerefMut<Target = sqlx::AnyConnection> + Send),
    order_id: &str,
    currency: &str,
    postings: &[Posting],
    now: i64,
) -> StoreResult<()> {
    if postings.is_empty() {
        return Ok(());
    }
    run_steps(tx, &[ledger_step(order_id, currency, postings, now)]).await.map(drop)
}

/// One balanced ledger transaction: its postings in one statement.
pub(crate) fn ledger_step(order_id: &str, currency: &str, postings: &[Posting], now: i64) -> Step {
    let txn = new_id("txn");
    insert_rows("ledger_entries (id, txn_id, account, currency, amount, order_id, created_at)", 7, postings, |p| {
        args![new_id("le"), &txn, &p.account, currency, p.amount, order_id, now]
    })
}

#[async_trait]
impl LedgerStore for Db {
    async fn mark_captured(&self, order_id: &str, currency: &str, postings: &[Posting], now: i64) -> StoreResult<bool> {
        let mut job = Job::new();
        job.push(
            Step::new(
                "update orders set captured_at = $1, updated_at = $1 where id = $2 and captured_at is null",
                args![now, order_id],
            )
            .check(Check::FailUnlessOne),
        );
        if !postings.is_empty() {
            job.push(ledger_step(order_id, currency, postings, now));
        }
        job.as_one_statement();
        Ok(self.run(job).await?.done())
    }

    async fn trial_balance(&self) -> StoreResult<Vec<TrialBalanceLine>> {
        let rows = sqlx::query(
            "select account, currency, cast(sum(amount) as bigint) as balance from ledger_entries group by account, currency order by account, currency",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(TrialBalanceLine {
                    account: r.try_get("account").map_err(other)?,
                    currency: r.try_get("currency").map_err(other)?,
                    balance: r.try_get("balance").map_err(other)?,
                })
            })
            .collect()
    }
}
