//! Ledger entries on SQL: postings and the trial balance.

use crate::read::Cols;
use crate::write::{insert_rows, run_steps, Arg, Job, Step};
use crate::{args, other, placeholders, Backend, Db};
use async_trait::async_trait;
use buyline_core::checkout::{CaptureRecord, Posting};
use buyline_core::ids::new_id;
use buyline_core::order::TrialBalanceLine;
use buyline_core::store::{LedgerStore, StoreResult};
use sqlx::any::AnyRow;
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
    async fn mark_captured(&self, captures: &[CaptureRecord], now: i64) -> StoreResult<Vec<String>> {
        if captures.is_empty() {
            return Ok(vec![]);
        }
        // In one order, so two groups that share orders take their row locks alike.
        let mut captures: Vec<&CaptureRecord> = captures.iter().collect();
        captures.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        captures.dedup_by(|a, b| a.order_id == b.order_id);
        let ids: Vec<&String> = captures.iter().map(|c| &c.order_id).collect();
        let mut args = args![now];
        args.extend(ids.iter().map(|id| Arg::from(*id)));
        let update = format!(
            "update orders set captured_at = $1, updated_at = $1 where captured_at is null and id in ({})",
            placeholders(2, ids.len())
        );
        // Every order's postings, one balanced transaction (`txn_id`) each.
        let mut legs = Vec::new();
        for c in &captures {
            let txn = new_id("txn");
            for p in &c.postings {
                legs.push(args![new_id("le"), &txn, &p.account, &c.currency, p.amount, &c.order_id, now]);
            }
        }
        const COLUMNS: &str = "id, txn_id, account, currency, amount, order_id, created_at";
        let job = match (self.backend, legs.is_empty()) {
            (_, true) => Job::from(vec![Step::new(update, args)]),
            // One statement: the postings join the orders the update changed, so an order that
            // another capture marked first (its row lock waited for, then found marked) gets none.
            (Backend::Postgres, false) => {
                // Typed where PostgreSQL cannot tell from a bare `values` list: amount, time.
                let mut rows = Vec::with_capacity(legs.len());
                for leg in legs {
                    let n = args.len();
                    let col = |k: usize| match k {
                        5 | 7 => format!("cast(${} as bigint)", n + k),
                        _ => format!("${}", n + k),
                    };
                    rows.push(format!("({})", (1..=7).map(col).collect::<Vec<_>>().join(", ")));
                    args.extend(leg);
                }
                Job::from(vec![Step::new(
                    format!(
                        "with up as ({update} returning id) insert into ledger_entries ({COLUMNS}) \
                         select v.* from (values {}) as v({COLUMNS}) join up on up.id = v.order_id",
                        rows.join(", ")
                    ),
                    args,
                )])
            }
            // The one writer: the postings of the orders not yet marked, then the marks.
            (Backend::Sqlite, false) => {
                let n = legs.len();
                let legs: Vec<Arg> = legs.into_iter().flatten().collect();
                let insert = Step::new(
                    format!(
                        "insert into ledger_entries ({COLUMNS}) select * from (values {}) as v \
                         where exists (select 1 from orders o where o.id = v.column6 and o.captured_at is null)",
                        crate::rows_of(n, 7, 1)
                    ),
                    legs,
                );
                Job::from(vec![insert, Step::new(update, args)])
            }
        };
        self.run(job).await?;
        let sql =
            format!("select id from orders where captured_at is not null and id in ({})", placeholders(1, ids.len()));
        let id_of = |r: &AnyRow| -> StoreResult<String> { r.col("id") };
        self.read_rows(&sql, ids.iter().map(|id| Arg::from(*id)).collect(), id_of, |r| r.col("id")).await
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
