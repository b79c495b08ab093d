//! Campaigns on SQL: the campaign row and its per-country rows, and the active campaigns of
//! a country for the timeline.

use crate::social::{post_row, POST_SELECT};
use crate::{json_err, other, Backend, Db};
use async_trait::async_trait;
use buyline_core::discovery::{Campaign, CampaignStatus, Promotion};
use buyline_core::store::{Before, CampaignStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

const CAMPAIGN_COLUMNS: &str = "id, merchant_id, post_id, countries, status, created_at";

fn campaign_row(r: &AnyRow) -> StoreResult<Campaign> {
    let countries: String = r.try_get("countries").map_err(other)?;
    let status: String = r.try_get("status").map_err(other)?;
    Ok(Campaign {
        id: r.try_get("id").map_err(other)?,
        merchant_id: r.try_get("merchant_id").map_err(other)?,
        post_id: r.try_get("post_id").map_err(other)?,
        countries: serde_json::from_str(&countries).map_err(json_err)?,
        status: CampaignStatus::parse(&status)
            .ok_or_else(|| buyline_core::error::StoreError::Other(format!("unknown campaign status {status:?}")))?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

#[async_trait]
impl CampaignStore for Db {
    async fn insert_campaign(&self, c: &Campaign, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into campaigns (id, merchant_id, post_id, countries, status, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(&c.merchant_id)
        .bind(&c.post_id)
        .bind(serde_json::to_string(&c.countries).map_err(json_err)?)
        .bind(c.status.as_str())
        .bind(c.created_at)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if !c.countries.is_empty() {
            let sql = format!(
                "insert into campaign_countries (country, campaign_id) values {}",
                crate::rows_of(c.countries.len(), 2, 1)
            );
            let mut q = sqlx::query(&sql);
            for country in &c.countries {
                q = q.bind(country).bind(&c.id);
            }
            q.execute(&mut *tx).await.map_err(other)?;
        }
        tx.commit().await.map_err(other)
    }

    async fn find_campaign(&self, id: &str) -> StoreResult<Option<Campaign>> {
        let sql = format!("select {CAMPAIGN_COLUMNS} from campaigns where id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(campaign_row).transpose()
    }

    async fn find_campaigns(&self, merchant_id: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Campaign>> {
        let (ts, id) = before.unwrap_or((i64::MAX, ""));
        let sql = format!(
            "select {CAMPAIGN_COLUMNS} from campaigns where merchant_id = $1 \
             and (created_at < $2 or (created_at = $2 and id < $3) or $4 = 0) \
             order by created_at desc, id desc limit $5"
        );
        let rows = sqlx::query(&sql)
            .bind(merchant_id)
            .bind(ts)
            .bind(id)
            .bind(before.is_some() as i64)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(campaign_row).collect()
    }

    async fn update_campaign_status(&self, id: &str, to: CampaignStatus, now: i64) -> StoreResult<bool> {
        let r = sqlx::query("update campaigns set status = $1, updated_at = $2 where id = $3 and status <> 'ended'")
            .bind(to.as_str())
            .bind(now)
            .bind(id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected() > 0)
    }

    async fn find_promotions(
        &self,
        country: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<Promotion>> {
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        // Ids in byte order on both backends, as the service compares them (PostgreSQL's
        // database collation could put `cmp_a` before `cmp_X`).
        let by_id = match self.backend {
            Backend::Sqlite => "c.id",
            Backend::Postgres => "c.id collate \"C\"",
        };
        let sql = format!(
            "{} join campaigns c on c.post_id = p.id \
             join campaign_countries cc on cc.campaign_id = c.id \
             where cc.country = $1 and c.status = 'active' \
             and (c.created_at > $3 or (c.created_at = $3 and {by_id} > $4)) \
             order by c.created_at, {by_id} limit $2",
            POST_SELECT.replacen("select ", "select c.id as campaign_id, c.created_at as campaign_created_at, ", 1)
        );
        let rows =
            sqlx::query(&sql).bind(country).bind(limit).bind(at).bind(id).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(Promotion {
                    post: post_row(r)?,
                    campaign: (
                        r.try_get("campaign_created_at").map_err(other)?,
                        r.try_get("campaign_id").map_err(other)?,
                    ),
                })
            })
            .collect()
    }
}
