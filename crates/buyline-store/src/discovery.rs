//! Discovery on SQL: full-text search (SQLite FTS5, PostgreSQL `tsvector` with a GIN index,
//! the one place where the two backends need different SQL), hashtag pages, account search,
//! who to follow, and notifications page by page.
//!
//! The index follows `posts` by itself: on SQLite, triggers on `posts` write `posts_fts` in
//! the statement that inserts or deletes the post; on PostgreSQL the `search` column is a
//! stored generated column. Either way it is in step inside the post's own transaction, the
//! group commit's included. Every query joins `posts` and `accounts`, so a deleted post or
//! account cannot be found even for an instant.

use crate::social::{post_row, POST_SELECT};
use crate::write::{Job, Step};
use crate::{args, other, Backend, Db};
use async_trait::async_trait;
use buyline_core::discovery::AccountSummary;
use buyline_core::error::StoreError;
use buyline_core::model::{AccountKind, Post};
use buyline_core::order::{paid_notice, Notification};
use buyline_core::store::{Before, DiscoveryStore, StoreResult};
use buyline_core::types::{Currency, Money};
use sqlx::any::AnyRow;
use sqlx::Row;

const SUMMARY_COLUMNS: &str = "a.id, a.handle, a.display_name, a.kind, a.country, a.bio, a.created_at";

fn summary_row(r: &AnyRow) -> StoreResult<AccountSummary> {
    let kind: String = r.try_get("kind").map_err(other)?;
    Ok(AccountSummary {
        id: r.try_get("id").map_err(other)?,
        handle: r.try_get("handle").map_err(other)?,
        display_name: r.try_get("display_name").map_err(other)?,
        kind: if kind == "merchant" { AccountKind::Merchant } else { AccountKind::Person },
        country: r.try_get("country").map_err(other)?,
        bio: r.try_get("bio").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

/// `like` pattern text for `s`: its `%`, `_` and `\` taken literally (with `escape '\'`).
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The page condition on `(ts, id)` columns, numbered from `$n`: true on the first page.
fn page_cond(ts: &str, id: &str, n: usize) -> String {
    format!("(${f} = 0 or {ts} < ${a} or ({ts} = ${a} and {id} < ${b}))", f = n, a = n + 1, b = n + 2)
}

/// A page of a shopper's notifications, newest first: her notification rows and the orders
/// that are their own receipts (`receipt_in_place`: paid when placed, migration
/// `20261206000007_receipts_in_orders.sql`), each side read in order through its own index
/// (`notifications_account`, `orders_shopper`) up to the page's length. `$1` the account,
/// `$2`–`$4` the cursor ([`page_cond`]), `$5` the length.
pub(crate) fn notifications_page_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let cond = page_cond("created_at", "id", 2);
        format!(
        "select id, text, link, created_at, total, currency from (\
           select id, text, link, created_at, cast(null as bigint) as total, cast(null as text) as currency \
           from notifications where account_id = $1 and {cond} order by created_at desc, id desc limit $5) as rows_kept \
         union all select id, text, link, created_at, total, currency from (\
           select id, cast(null as text) as text, cast(null as text) as link, created_at, total, currency \
           from orders where shopper_id = $1 and receipt_in_place = 1 and {cond} \
           order by created_at desc, id desc limit $5) as orders_paid \
         order by created_at desc, id desc limit $5"
        )
    });
    &SQL
}

/// How many of a shopper's notifications are unread: rows not marked, and orders that are
/// their own receipts placed after her last look (`accounts.notifications_read_at`).
pub(crate) const UNREAD_NOTIFICATIONS: &str = "select \
     (select count(*) from notifications where account_id = $1 and read_at is null) + \
     (select count(*) from orders where shopper_id = $1 and receipt_in_place = 1 \
      and created_at > (select notifications_read_at from accounts where id = $1)) as n";

/// A notification row, or an order that is its own receipt (no text: worded here as its
/// receipt row would have been).
fn notification_row(r: &AnyRow) -> StoreResult<Notification> {
    let id: String = r.try_get("id").map_err(other)?;
    let (text, link) = match r.try_get::<Option<String>, _>("text").map_err(other)? {
        Some(text) => (text, r.try_get("link").map_err(other)?),
        None => {
            let total: i64 = r.try_get::<Option<i64>, _>("total").map_err(other)?.unwrap_or(0);
            let code: String = r.try_get::<Option<String>, _>("currency").map_err(other)?.unwrap_or_default();
            let currency = Currency::parse(&code).ok_or_else(|| StoreError::Other(format!("currency {code}")))?;
            (paid_notice(&id, Money::new(total, currency)), format!("/orders/{id}"))
        }
    };
    Ok(Notification { id, text, link, created_at: r.try_get("created_at").map_err(other)? })
}

impl Db {
    async fn posts_page(&self, sql: &str, first: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        let (ts, id) = before.unwrap_or((0, ""));
        let rows = sqlx::query(sql)
            .bind(first)
            .bind(before.is_some() as i64)
            .bind(ts)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(post_row).collect()
    }
}

#[async_trait]
impl DiscoveryStore for Db {
    async fn search_posts(&self, words: &[String], before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        if words.is_empty() {
            return Ok(vec![]);
        }
        let (matches, query) = match self.backend {
            // Every word quoted: a phrase of one word each, implicitly AND-ed. The words hold
            // only letters and digits, so no FTS5 syntax can reach the index.
            Backend::Sqlite => (
                "p.id in (select post_id from posts_fts where posts_fts match $1)",
                words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" "),
            ),
            Backend::Postgres => ("p.search @@ plainto_tsquery('simple', search_fold($1))", words.join(" ")),
        };
        let sql = format!(
            "{POST_SELECT} where {matches} and {} order by p.created_at desc, p.id desc limit $5",
            page_cond("p.created_at", "p.id", 2)
        );
        self.posts_page(&sql, &query, before, limit).await
    }

    async fn find_hashtag_posts(&self, tag: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>> {
        let sql = format!(
            "{POST_SELECT} join post_tags t on t.post_id = p.id where t.tag = $1 and {} \
             order by t.created_at desc, t.post_id desc limit $5",
            page_cond("t.created_at", "t.post_id", 2)
        );
        self.posts_page(&sql, tag, before, limit).await
    }

    async fn search_accounts(&self, prefix: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<AccountSummary>> {
        let lit = like_literal(prefix);
        let (ts, id) = before.unwrap_or((0, ""));
        let sql = format!(
            "select {SUMMARY_COLUMNS} from accounts a where a.kind <> 'deleted' \
             and (a.handle_key like $1 escape '\\' or lower(a.display_name) like $1 escape '\\' \
                  or lower(a.display_name) like $2 escape '\\') \
             and {} order by a.created_at desc, a.id desc limit $6",
            page_cond("a.created_at", "a.id", 3)
        );
        let rows = sqlx::query(&sql)
            .bind(format!("{lit}%"))
            .bind(format!("% {lit}%"))
            .bind(before.is_some() as i64)
            .bind(ts)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(summary_row).collect()
    }

    async fn find_suggestions(
        &self,
        viewer: &str,
        country: &str,
        active_since: i64,
        limit: i64,
    ) -> StoreResult<Vec<AccountSummary>> {
        let sql = format!(
            "select {SUMMARY_COLUMNS}, \
                    coalesce((select max(p.created_at) from posts p where p.author_id = a.id), 0) as last_post \
             from accounts a \
             where a.country = $1 and a.id <> $2 and a.kind in ('person', 'merchant') \
               and not exists (select 1 from follows f where f.follower_id = $2 and f.followee_id = a.id) \
               and not exists (select 1 from merchants m where m.account_id = a.id and m.owner_account_id = $2) \
               and (a.kind = 'merchant' \
                    or exists (select 1 from posts p where p.author_id = a.id and p.created_at >= $3)) \
             order by case when a.kind = 'merchant' then 0 else 1 end, last_post desc, a.id \
             limit $4"
        );
        let rows = sqlx::query(&sql)
            .bind(country)
            .bind(viewer)
            .bind(active_since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(summary_row).collect()
    }

    async fn find_notifications_page(
        &self,
        account_id: &str,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Notification>> {
        let (ts, id) = before.unwrap_or((0, ""));
        let rows = sqlx::query(notifications_page_sql())
            .bind(account_id)
            .bind(before.is_some() as i64)
            .bind(ts)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(notification_row).collect()
    }

    async fn count_unread_notifications(&self, account_id: &str) -> StoreResult<i64> {
        let r = sqlx::query(UNREAD_NOTIFICATIONS).bind(account_id).fetch_one(&self.pool).await.map_err(other)?;
        r.try_get("n").map_err(other)
    }

    async fn mark_notifications_read(&self, account_id: &str, now: i64) -> StoreResult<()> {
        self.run(Job::from(vec![
            Step::new(
                "update notifications set read_at = $2 where account_id = $1 and read_at is null",
                args![account_id, now],
            ),
            // Read up to the newest order she could see, not up to the clock: an order whose
            // time was taken before her look (before its payment) and committed after it
            // stays unread, unless a later one of hers was already there.
            Step::new(
                "update accounts set notifications_read_at = coalesce((select created_at from orders \
                 where shopper_id = $1 and receipt_in_place = 1 order by created_at desc, id desc limit 1), \
                 notifications_read_at) where id = $1",
                args![account_id],
            ),
        ]))
        .await?;
        Ok(())
    }
}
