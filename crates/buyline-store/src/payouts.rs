//! Balances from the ledger and payouts on SQL. A payout locks its (merchant, currency) row
//! in `payout_locks` first: on PostgreSQL the upsert holds the row lock to commit, so a
//! second payout waits and then (read committed: each statement sees what committed before
//! it) reads the balance the first left; on SQLite every write transaction is already one
//! at a time (`begin immediate`).

use crate::{other, Db};
use async_trait::async_trait;
use buyline_core::checkout::payable;
use buyline_core::checkout::Posting;
use buyline_core::checkout::{merchant_bank, payout_postings};
use buyline_core::ids::new_id;
use buyline_core::order::NewEvent;
use buyline_core::service::payout_amount;
use buyline_core::store::{Before, LedgerBalance, PayoutRecord, PayoutStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::BTreeMap;

const PAYABLE_PREFIX: &str = "merchant_payable:";

fn payout_of(r: &AnyRow) -> StoreResult<PayoutRecord> {
    Ok(PayoutRecord {
        id: r.try_get("id").map_err(other)?,
        merchant_id: r.try_get("merchant_id").map_err(other)?,
        currency: r.try_get("currency").map_err(other)?,
        amount: r.try_get("amount").map_err(other)?,
        status: r.try_get("status").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

#[async_trait]
impl PayoutStore for Db {
    async fn find_balances(&self, merchant_id: Option<&str>) -> StoreResult<Vec<LedgerBalance>> {
        let rows = match merchant_id {
            Some(m) => sqlx::query(
                "select account, currency, cast(sum(amount) as bigint) as total from ledger_entries \
                 where account = $1 or account = $2 group by account, currency",
            )
            .bind(payable(m))
            .bind(merchant_bank(m))
            .fetch_all(&self.pool)
            .await
            .map_err(other)?,
            None => sqlx::query(
                "select account, currency, cast(sum(amount) as bigint) as total from ledger_entries \
                 where account like 'merchant_payable:%' group by account, currency having sum(amount) < 0",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(other)?,
        };
        let mut by: BTreeMap<(String, String), LedgerBalance> = BTreeMap::new();
        for r in &rows {
            let account: String = r.try_get("account").map_err(other)?;
            let currency: String = r.try_get("currency").map_err(other)?;
            let total: i64 = r.try_get("total").map_err(other)?;
            let (merchant, payable_side) = match account.strip_prefix(PAYABLE_PREFIX) {
                Some(m) => (m.to_string(), true),
                None => match account.strip_prefix("merchant_bank:") {
                    Some(m) => (m.to_string(), false),
                    None => continue,
                },
            };
            let b = by.entry((merchant.clone(), currency.clone())).or_insert(LedgerBalance {
                merchant_id: merchant,
                currency,
                balance: 0,
                paid_out: 0,
            });
            // Both accounts carry credit balances: what is owed, what was paid to the bank.
            if payable_side {
                b.balance = -total;
            } else {
                b.paid_out = -total;
            }
        }
        Ok(by.into_values().collect())
    }

    async fn pay_out(
        &self,
        id: &str,
        merchant_id: &str,
        currency: &str,
        settled_before: i64,
        now: i64,
        event: &(dyn for<'p> Fn(&'p PayoutRecord) -> NewEvent + Send + Sync),
    ) -> StoreResult<Option<PayoutRecord>> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into payout_locks (merchant_id, currency, locked_at) values ($1, $2, $3) \
             on conflict (merchant_id, currency) do update set locked_at = excluded.locked_at",
        )
        .bind(merchant_id)
        .bind(currency)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        let row = sqlx::query(
            "select cast(coalesce(sum(amount), 0) as bigint) as owed, \
             cast(coalesce(sum(case when order_id is null or created_at <= $3 then amount else 0 end), 0) as bigint) \
             as settled from ledger_entries where account = $1 and currency = $2",
        )
        .bind(payable(merchant_id))
        .bind(currency)
        .bind(settled_before)
        .fetch_one(&mut *tx)
        .await
        .map_err(other)?;
        let owed: i64 = -row.try_get::<i64, _>("owed").map_err(other)?;
        let settled: i64 = -row.try_get::<i64, _>("settled").map_err(other)?;
        let amount = payout_amount(owed, settled);
        if amount <= 0 {
            tx.rollback().await.map_err(other)?;
            return Ok(None);
        }
        let payout = PayoutRecord {
            id: id.to_string(),
            merchant_id: merchant_id.to_string(),
            currency: currency.to_string(),
            amount,
            status: "paid".into(),
            created_at: now,
        };
        sqlx::query(
            "insert into payouts (id, merchant_id, currency, amount, status, created_at) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&payout.id)
        .bind(&payout.merchant_id)
        .bind(&payout.currency)
        .bind(payout.amount)
        .bind(&payout.status)
        .bind(payout.created_at)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        let txn = new_id("txn");
        for Posting { account, amount } in payout_postings(merchant_id, amount) {
            sqlx::query(
                "insert into ledger_entries (id, txn_id, account, currency, amount, payout_id, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(new_id("le"))
            .bind(&txn)
            .bind(account)
            .bind(currency)
            .bind(amount)
            .bind(&payout.id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        }
        let e = event(&payout);
        crate::outbox::insert_events(&mut tx, &[&e]).await?;
        tx.commit().await.map_err(other)?;
        Ok(Some(payout))
    }

    async fn find_payouts(
        &self,
        merchant_id: Option<&str>,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<PayoutRecord>> {
        let (at, id) = before.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(
            "select id, merchant_id, currency, amount, status, created_at from payouts \
             where ($1 = '' or merchant_id = $1) and (created_at < $2 or (created_at = $2 and id < $3)) \
             order by created_at desc, id desc limit $4",
        )
        .bind(merchant_id.unwrap_or(""))
        .bind(at)
        .bind(if before.is_some() { id } else { "\u{10FFFF}" })
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(payout_of).collect()
    }
}
