//! Hashtag carts on SQL: merchant links, cart items, cart hashtags and cart jobs.

use crate::checkout::checkout_insert;
use crate::outbox::{insert_events, insert_receipts};
use crate::social::write_posts;
use crate::{other, placeholders, rows_of, Backend, Db};
use async_trait::async_trait;
use buyline_core::cart::{CartItemRecord, CartJob, CartJobState, CartResult, CartTag};
use buyline_core::error::StoreError;
use buyline_core::model::{Merchant, NewPost};
use buyline_core::order::{CheckoutRecord, NewEvent, Receipt};
use buyline_core::store::{CartStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Replaces the merchant's rows in `cart_hashtags`, whose key makes a tag one merchant's.
pub(crate) async fn write_cart_tags(tx: &mut sqlx::Transaction<'static, sqlx::Any>, m: &Merchant) -> StoreResult<()> {
    sqlx::query("delete from cart_hashtags where merchant_id = $1")
        .bind(&m.id)
        .execute(&mut **tx)
        .await
        .map_err(other)?;
    for (country, tag) in &m.cart_hashtags {
        let key = buyline_core::cart::tag_key(tag);
        sqlx::query("insert into cart_hashtags (tag_key, merchant_id, country, tag) values ($1, $2, $3, $4)")
            .bind(&key)
            .bind(&m.id)
            .bind(country)
            .bind(tag)
            .execute(&mut **tx)
            .await
            .map_err(|e| match other(e) {
                StoreError::Unique(_) => StoreError::Unique(format!("cart_hashtags:{key}")),
                e => e,
            })?;
    }
    Ok(())
}

fn cart_item_row(r: &AnyRow) -> StoreResult<CartItemRecord> {
    Ok(CartItemRecord {
        id: r.try_get("id").map_err(other)?,
        account_id: r.try_get("account_id").map_err(other)?,
        merchant_id: r.try_get("merchant_id").map_err(other)?,
        product_id: r.try_get("product_id").map_err(other)?,
        variant_id: r.try_get("variant_id").map_err(other)?,
        quantity: r.try_get("quantity").map_err(other)?,
        source_post_id: r.try_get("source_post_id").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

#[async_trait]
impl CartStore for Db {
    async fn find_cart_items(&self, account_ids: &[String]) -> StoreResult<Vec<CartItemRecord>> {
        if account_ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = account_ids.iter().collect();
        let sql = format!(
            "select * from cart_items where account_id in ({}) order by created_at, id",
            placeholders(1, refs.len())
        );
        self.fetch_in(&sql, &refs).await?.iter().map(cart_item_row).collect()
    }

    async fn find_cart_tags(&self, keys: &[String]) -> StoreResult<Vec<CartTag>> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = keys.iter().collect();
        let sql = format!(
            "select tag_key, merchant_id, country, tag from cart_hashtags where tag_key in ({})",
            placeholders(1, refs.len())
        );
        let rows = self.fetch_in(&sql, &refs).await?;
        rows.iter()
            .map(|r| {
                Ok(CartTag {
                    key: r.try_get("tag_key").map_err(other)?,
                    merchant_id: r.try_get("merchant_id").map_err(other)?,
                    country: r.try_get("country").map_err(other)?,
                    tag: r.try_get("tag").map_err(other)?,
                })
            })
            .collect()
    }

    async fn insert_merchant_link(&self, account_id: &str, merchant_id: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "insert into merchant_links (account_id, merchant_id, created_at) values ($1, $2, $3) \
             on conflict (account_id, merchant_id) do nothing",
        )
        .bind(account_id)
        .bind(merchant_id)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn delete_merchant_link(&self, account_id: &str, merchant_id: &str) -> StoreResult<bool> {
        let r = sqlx::query("delete from merchant_links where account_id = $1 and merchant_id = $2")
            .bind(account_id)
            .bind(merchant_id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected() > 0)
    }

    async fn find_merchant_links(&self, account_ids: &[String]) -> StoreResult<Vec<(String, String, i64)>> {
        if account_ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = account_ids.iter().collect();
        let sql = format!(
            "select account_id, merchant_id, created_at from merchant_links where account_id in ({}) \
             order by created_at, merchant_id",
            placeholders(1, refs.len())
        );
        self.fetch_in(&sql, &refs)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("account_id").map_err(other)?,
                    r.try_get("merchant_id").map_err(other)?,
                    r.try_get("created_at").map_err(other)?,
                ))
            })
            .collect()
    }

    async fn find_recent_cart_jobs(&self, account_id: &str, since: i64, limit: i64) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query(
            "select created_at from cart_jobs where account_id = $1 and created_at > $2 \
             order by created_at desc limit $3",
        )
        .bind(account_id)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(|r| r.try_get("created_at").map_err(other)).collect()
    }

    async fn claim_cart_jobs(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<CartJob>> {
        // As with deliveries: `skip locked` shares the work between PostgreSQL processes.
        let lock = if self.backend == Backend::Postgres { "for update skip locked" } else { "" };
        let sql = format!(
            "update cart_jobs set lease_until = $1, attempts = attempts + 1 where post_id in ( \
               select post_id from cart_jobs where state = $4 and lease_until <= $2 \
               order by created_at limit $3 {lock}) \
             returning post_id, account_id, parent_id, attempts, created_at"
        );
        let rows = sqlx::query(&sql)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .bind(CartJobState::Pending.as_str())
            .fetch_all(self.writer())
            .await
            .map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(CartJob {
                    post_id: r.try_get("post_id").map_err(other)?,
                    account_id: r.try_get("account_id").map_err(other)?,
                    parent_id: r.try_get("parent_id").map_err(other)?,
                    attempts: r.try_get("attempts").map_err(other)?,
                    created_at: r.try_get("created_at").map_err(other)?,
                })
            })
            .collect()
    }

    async fn finish_cart_jobs(&self, results: &[CartResult], now: i64) -> StoreResult<usize> {
        if results.is_empty() {
            return Ok(0);
        }
        // One transaction and a handful of statements for the whole batch: one durable commit
        // answers many replies, and the single SQLite writer is held briefly.
        let mut tx = self.begin().await?;
        // Mark the jobs done, each with its outcome; only those still pending are ours.
        let n = results.len();
        let whens = |col: usize| -> String {
            (0..n).map(|k| format!("when ${} then ${}", 2 + 3 * k, 2 + 3 * k + col)).collect::<Vec<_>>().join(" ")
        };
        let sql = format!(
            "update cart_jobs set state = '{}', processed_at = $1, \
             outcome = case post_id {} end, reply_post_id = case post_id {} end \
             where state = '{}' and post_id in ({}) returning post_id",
            CartJobState::Done.as_str(),
            whens(1),
            whens(2),
            CartJobState::Pending.as_str(),
            (0..n).map(|k| format!("${}", 2 + 3 * k)).collect::<Vec<_>>().join(", ")
        );
        let mut q = sqlx::query(&sql).bind(now);
        for r in results {
            q = q.bind(&r.job_post_id).bind(r.outcome.as_str()).bind(r.reply.as_ref().map(|p| p.id.clone()));
        }
        let owned: std::collections::HashSet<String> = q
            .fetch_all(&mut *tx)
            .await
            .map_err(other)?
            .iter()
            .map(|r| r.try_get("post_id"))
            .collect::<Result<_, _>>()
            .map_err(other)?;
        let mine: Vec<&CartResult> = results.iter().filter(|r| owned.contains(&r.job_post_id)).collect();

        // Cart items; `returning` names those inserted (another process may have added one
        // a moment ago: that one gets no second event).
        let items: Vec<&CartItemRecord> = mine.iter().filter_map(|r| r.item.as_ref()).collect();
        let mut inserted = std::collections::HashSet::new();
        if !items.is_empty() {
            let sql = format!(
                "insert into cart_items (id, account_id, merchant_id, product_id, variant_id, quantity, source_post_id, \
                 created_at) values {} on conflict (account_id, variant_id) do nothing returning id",
                rows_of(items.len(), 8, 1)
            );
            let mut q = sqlx::query(&sql);
            for i in &items {
                q = q
                    .bind(&i.id)
                    .bind(&i.account_id)
                    .bind(&i.merchant_id)
                    .bind(&i.product_id)
                    .bind(&i.variant_id)
                    .bind(i.quantity)
                    .bind(&i.source_post_id)
                    .bind(i.created_at);
            }
            for r in q.fetch_all(&mut *tx).await.map_err(other)? {
                inserted.insert(r.try_get::<String, _>("id").map_err(other)?);
            }
        }

        let replies: Vec<(&NewPost, bool)> = mine.iter().filter_map(|r| r.reply.as_ref()).map(|p| (p, false)).collect();
        if !replies.is_empty() {
            write_posts(&mut tx, &replies).await?;
        }

        let notes: Vec<&Receipt> = mine.iter().filter_map(|r| r.notification.as_ref()).collect();
        insert_receipts(&mut tx, &notes, now).await?;
        let events: Vec<&NewEvent> = mine
            .iter()
            .filter(|r| r.item.as_ref().is_some_and(|i| inserted.contains(&i.id)))
            .filter_map(|r| r.event.as_ref())
            .collect();
        insert_events(&mut tx, &events).await?;
        tx.commit().await.map_err(other)?;
        Ok(mine.len())
    }

    async fn delete_cart_item(&self, account_id: &str, merchant_id: &str, item_id: &str) -> StoreResult<bool> {
        let r = sqlx::query("delete from cart_items where id = $1 and account_id = $2 and merchant_id = $3")
            .bind(item_id)
            .bind(account_id)
            .bind(merchant_id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected() > 0)
    }

    async fn insert_cart_checkout(&self, c: &CheckoutRecord, item_ids: &[String]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        crate::write::run_steps(&mut tx, &[checkout_insert(c)?]).await?;
        for id in item_ids {
            sqlx::query("update cart_items set checkout_id = $1 where id = $2 and account_id = $3")
                .bind(&c.id)
                .bind(id)
                .bind(&c.shopper_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        tx.commit().await.map_err(other)
    }
}
