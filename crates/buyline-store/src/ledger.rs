//! Ledger entries on SQL: postings and the trial balance.

use crate::{other, Db};
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
    let txn = new_id("txn");
    for p in postings {
        sqlx::query(
            "insert into ledger_entries (id, txn_id, account, currency, amount, order_id, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id("le"))
        .bind(&txn)
        .bind(&p.account)
        .bind(currency)
        .bind(p.amount)
        .bind(order_id)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(other)?;
    }
    Ok(())
}

#[async_trait]
impl LedgerStore for Db {
    async fn mark_captured(&self, order_id: &str, currency: &str, postings: &[Posting], now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_grouped().await?;
        let r =
            sqlx::query("update orders set captured_at = $1, updated_at = $1 where id = $2 and captured_at is null")
                .bind(now)
                .bind(order_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        post_ledger(&mut tx, order_id, currency, postings, now).await?;
        tx.commit().await.map_err(other)?;
        Ok(true)
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
