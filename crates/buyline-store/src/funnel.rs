//! The experiment funnel on SQL: the flusher's batches (impressions summed with
//! `on conflict do update`, distinct reach and opens with `on conflict do nothing`, one
//! statement per table and chunk, one transaction) and one post's counts per arm.

use crate::{other, rows_of, Db};
use async_trait::async_trait;
use buyline_core::rollout::Arm;
use buyline_core::store::{ArmTotals, FunnelBatch, FunnelStore, FunnelTotals, StoreResult};
use sqlx::Row;

/// Rows per statement: well under SQLite's bound-parameter limit.
const CHUNK: usize = 250;

fn arm_of<'a>(totals: &'a mut FunnelTotals, arm: &str) -> Option<&'a mut ArmTotals> {
    match Arm::parse(arm)? {
        Arm::Buy => Some(&mut totals.buy),
        Arm::Holdout => Some(&mut totals.holdout),
        Arm::Excluded => None,
    }
}

/// Orders that were paid: not waiting for 3-D Secure, not canceled before payment. Built
/// from the typed statuses (fixed words of ours, never input).
static PAID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use buyline_core::order::OrderStatus::*;
    let paid = [Paid, Fulfilled, Refunded, PartiallyRefunded].map(|s| format!("'{}'", s.as_str())).join(", ");
    format!("(o.status in ({paid}) or (o.status = '{}' and o.captured_at is not null))", Canceled.as_str())
});

#[async_trait]
impl FunnelStore for Db {
    async fn write_funnel_batch(&self, batch: &FunnelBatch, now: i64) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for chunk in batch.impressions.chunks(CHUNK) {
            let sql = format!(
                "insert into funnel_counts (post_id, arm, impressions, updated_at) values {} \
                 on conflict (post_id, arm) do update set impressions = funnel_counts.impressions + excluded.impressions, \
                 updated_at = excluded.updated_at",
                rows_of(chunk.len(), 4, 1)
            );
            let mut q = sqlx::query(&sql);
            for (post, arm, n) in chunk {
                q = q.bind(post.as_str()).bind(arm.as_str()).bind(*n).bind(now);
            }
            q.execute(&mut *tx).await.map_err(other)?;
        }
        for (table, rows) in [("funnel_reach", &batch.reach), ("funnel_opens", &batch.opens)] {
            for chunk in rows.chunks(CHUNK) {
                let sql = format!(
                    "insert into {table} (post_id, arm, account_id) values {} on conflict do nothing",
                    rows_of(chunk.len(), 3, 1)
                );
                let mut q = sqlx::query(&sql);
                for (post, arm, account) in chunk {
                    q = q.bind(post.as_str()).bind(arm.as_str()).bind(account.as_str());
                }
                q.execute(&mut *tx).await.map_err(other)?;
            }
        }
        tx.commit().await.map_err(other)?;
        Ok(())
    }

    async fn find_funnel(&self, post_id: &str) -> StoreResult<FunnelTotals> {
        let mut t = FunnelTotals::default();
        let rows = sqlx::query("select arm, impressions, updated_at from funnel_counts where post_id = $1")
            .bind(post_id)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        for r in &rows {
            let arm: String = r.try_get("arm").map_err(other)?;
            let at: i64 = r.try_get("updated_at").map_err(other)?;
            t.updated_at = t.updated_at.max(at);
            if let Some(a) = arm_of(&mut t, &arm) {
                a.impressions = r.try_get("impressions").map_err(other)?;
            }
        }
        for (table, is_reach) in [("funnel_reach", true), ("funnel_opens", false)] {
            let rows = sqlx::query(&format!(
                "select arm, cast(count(*) as bigint) as n from {table} where post_id = $1 group by arm"
            ))
            .bind(post_id)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
            for r in &rows {
                let arm: String = r.try_get("arm").map_err(other)?;
                let n: i64 = r.try_get("n").map_err(other)?;
                if let Some(a) = arm_of(&mut t, &arm) {
                    if is_reach {
                        a.reach = n;
                    } else {
                        a.opens = n;
                    }
                }
            }
        }
        let rows = sqlx::query(&format!(
            "select c.arm as arm, cast(count(*) as bigint) as orders, \
             cast(count(distinct o.shopper_id) as bigint) as buyers, cast(max(o.created_at) as bigint) as last \
             from orders o join checkouts c on c.id = o.checkout_id \
             where o.post_id = $1 and c.arm is not null and {paid} group by c.arm",
            paid = *PAID
        ))
        .bind(post_id)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        for r in &rows {
            let arm: String = r.try_get("arm").map_err(other)?;
            let last: i64 = r.try_get("last").map_err(other)?;
            t.updated_at = t.updated_at.max(last);
            if let Some(a) = arm_of(&mut t, &arm) {
                a.orders = r.try_get("orders").map_err(other)?;
                a.buyers = r.try_get("buyers").map_err(other)?;
            }
        }
        let rows = sqlx::query(&format!(
            "select c.arm as arm, o.currency as currency, cast(sum(o.total) as bigint) as revenue \
             from orders o join checkouts c on c.id = o.checkout_id \
             where o.post_id = $1 and c.arm is not null and {paid} group by c.arm, o.currency",
            paid = *PAID
        ))
        .bind(post_id)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        for r in &rows {
            let arm: String = r.try_get("arm").map_err(other)?;
            let currency: String = r.try_get("currency").map_err(other)?;
            let revenue: i64 = r.try_get("revenue").map_err(other)?;
            if let Some(a) = arm_of(&mut t, &arm) {
                a.revenue.insert(currency, revenue);
            }
        }
        Ok(t)
    }
}
