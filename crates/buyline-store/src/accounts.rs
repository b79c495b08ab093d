//! Accounts, credentials, sessions and log-in failure counters on SQL; erasure of a person
//! in one transaction.

use crate::{other, placeholders, Db};
use async_trait::async_trait;
use buyline_core::model::{Account, AccountKind, Credentials};
use buyline_core::store::{AccountStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

pub(crate) const ACCOUNT_COLUMNS: &str = "id, handle, display_name, email, country, kind, bio, created_at";

/// The events about a shopper: those about her orders, found through her orders
/// (`orders_shopper`, then `events_order`), and the others (a cart answer) through the
/// partial index `events_account`, which holds only events about no order. An order's rows
/// have no index by account of their own: each would cost every order one more page at a
/// place of its shopper's (migration `20261206000006_order_rows_by_order.sql`).
pub(crate) const ACCOUNT_EVENTS: &str = "select id, payload from events where account_id = $1 and order_id is null \
     union all select e.id, e.payload from orders o join events e on e.order_id = o.id where o.shopper_id = $1";

/// The e-mails to a shopper, the same two ways as [`ACCOUNT_EVENTS`].
pub(crate) const ACCOUNT_EMAILS: &str = "select id from emails where account_id = $1 and order_id is null \
     union all select m.id from orders o join emails m on m.order_id = o.id where o.shopper_id = $1";

/// The insert of an account row, for the pool or a transaction.
pub(crate) fn account_insert<'a>(
    a: &'a Account,
    password_hash: Option<&'a str>,
) -> sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments<'a>> {
    sqlx::query(
        "insert into accounts (id, handle, handle_key, display_name, email, email_key, password_hash, country, kind, bio, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&a.id)
    .bind(&a.handle)
    .bind(a.handle.to_lowercase())
    .bind(&a.display_name)
    .bind(&a.email)
    .bind(a.email.as_ref().map(|e| e.to_lowercase()))
    .bind(password_hash)
    .bind(&a.country)
    .bind(match a.kind {
        AccountKind::Person => "person",
        AccountKind::Merchant => "merchant",
    })
    .bind(&a.bio)
    .bind(a.created_at)
}

pub(crate) fn account_row(r: &AnyRow) -> StoreResult<Account> {
    let kind: String = r.try_get("kind").map_err(other)?;
    Ok(Account {
        id: r.try_get("id").map_err(other)?,
        handle: r.try_get("handle").map_err(other)?,
        display_name: r.try_get("display_name").map_err(other)?,
        email: r.try_get("email").map_err(other)?,
        country: r.try_get("country").map_err(other)?,
        kind: if kind == "merchant" { AccountKind::Merchant } else { AccountKind::Person },
        bio: r.try_get("bio").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

#[async_trait]
impl AccountStore for Db {
    async fn insert_account(&self, a: &Account, password_hash: Option<&str>) -> StoreResult<()> {
        account_insert(a, password_hash).execute(self.writer()).await.map_err(other)?;
        Ok(())
    }

    async fn find_account(&self, id: &str) -> StoreResult<Option<Account>> {
        let sql = format!("select {ACCOUNT_COLUMNS} from accounts where id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn find_account_by_handle(&self, handle: &str) -> StoreResult<Option<Account>> {
        let sql = format!("select {ACCOUNT_COLUMNS} from accounts where handle_key = $1");
        let row = sqlx::query(&sql).bind(handle.to_lowercase()).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn find_credentials(&self, login: &str) -> StoreResult<Option<Credentials>> {
        let sql = format!(
            "select {ACCOUNT_COLUMNS}, password_hash from accounts \
             where (handle_key = $1 or email_key = $1) and password_hash is not null"
        );
        let row = sqlx::query(&sql).bind(login.to_lowercase()).fetch_optional(&self.pool).await.map_err(other)?;
        match row {
            Some(r) => Ok(Some(Credentials {
                account: account_row(&r)?,
                password_hash: r.try_get("password_hash").map_err(other)?,
            })),
            None => Ok(None),
        }
    }

    async fn count_accounts(&self) -> StoreResult<i64> {
        let r = sqlx::query("select count(*) as n from accounts").fetch_one(&self.pool).await.map_err(other)?;
        r.try_get("n").map_err(other)
    }

    async fn find_login_failures(&self, keys: &[String], since: i64) -> StoreResult<Vec<(String, i64, i64)>> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "select key, failures, window_start from login_failures where key in ({}) and window_start >= $1",
            placeholders(2, keys.len())
        );
        let mut q = sqlx::query(&sql).bind(since);
        for k in keys {
            q = q.bind(k);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("key").map_err(other)?,
                    r.try_get("failures").map_err(other)?,
                    r.try_get("window_start").map_err(other)?,
                ))
            })
            .collect()
    }

    async fn record_login_failure(&self, keys: &[String], now: i64, since: i64) -> StoreResult<()> {
        // Each statement commits on its own: a transaction holding one key's row while it
        // waits for another's could deadlock with a concurrent prune on PostgreSQL.
        for k in keys {
            sqlx::query(
                "insert into login_failures (key, window_start, failures) values ($1, $2, 1) \
                 on conflict (key) do update set \
                 failures = case when login_failures.window_start < $3 then 1 else login_failures.failures + 1 end, \
                 window_start = case when login_failures.window_start < $3 then $2 else login_failures.window_start end",
            )
            .bind(k)
            .bind(now)
            .bind(since)
            .execute(self.writer())
            .await
            .map_err(other)?;
        }
        // Bounded: only windows still running are kept.
        sqlx::query("delete from login_failures where window_start < $1")
            .bind(since)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn delete_login_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query("delete from login_failures where key = $1")
            .bind(key)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn insert_session(&self, token_hash: &str, account_id: &str, now: i64, expires_at: i64) -> StoreResult<()> {
        sqlx::query("insert into sessions (token_hash, account_id, created_at, expires_at) values ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(account_id)
            .bind(now)
            .bind(expires_at)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn find_session_account(&self, token_hash: &str, now: i64) -> StoreResult<Option<Account>> {
        let sql = "select a.id, a.handle, a.display_name, a.email, a.country, a.kind, a.bio, a.created_at \
             from sessions s join accounts a on a.id = s.account_id where s.token_hash = $1 and s.expires_at > $2";
        let row = sqlx::query(sql).bind(token_hash).bind(now).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from sessions where token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn find_accounts(&self, ids: &[String]) -> StoreResult<Vec<Account>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = ids.iter().collect();
        let sql = format!("select {ACCOUNT_COLUMNS} from accounts where id in ({})", placeholders(1, refs.len()));
        self.fetch_in(&sql, &refs).await?.iter().map(account_row).collect()
    }

    async fn erase_account(
        &self,
        account_id: &str,
        now: i64,
        erase_payload: for<'p> fn(&'p str) -> Option<String>,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        // Events about the shopper's orders and cart keep their place in the merchant's
        // history; their stored bodies, which the events API and every later delivery
        // (a retry, a replay) send, lose the personal data.
        let rows = sqlx::query(ACCOUNT_EVENTS).bind(account_id).fetch_all(&mut *tx).await.map_err(other)?;
        for r in &rows {
            let payload: String = r.try_get("payload").map_err(other)?;
            if let Some(erased) = erase_payload(&payload) {
                let id: String = r.try_get("id").map_err(other)?;
                sqlx::query("update events set payload = $1 where id = $2")
                    .bind(erased)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(other)?;
            }
        }
        let emails: Vec<String> = sqlx::query(ACCOUNT_EMAILS)
            .bind(account_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(other)?
            .iter()
            .map(|r| r.try_get("id").map_err(other))
            .collect::<StoreResult<_>>()?;
        let steps: &[&str] = &[
            "update vault_records set wrapped_key = null, ciphertext = null, kek_id = null, summary = '{}', deleted_at = $2 \
             where owner_id = $1 and deleted_at is null",
            "delete from sessions where account_id = $1 and $2 = $2",
            "delete from follows where (follower_id = $1 or followee_id = $1) and $2 = $2",
            "delete from notifications where account_id = $1 and $2 = $2",
            // Receipts, sent or not: they carry her address and what she bought.
            "delete from emails where account_id = $1 and order_id is null and $2 = $2",
            "delete from emails where order_id in (select id from orders where shopper_id = $1) and $2 = $2",
            "update events set account_id = null where account_id = $1 and order_id is null and $2 = $2",
            "update events set account_id = null where order_id in (select id from orders where shopper_id = $1) \
             and $2 = $2",
            "delete from cart_items where account_id = $1 and $2 = $2",
            "delete from merchant_links where account_id = $1 and $2 = $2",
            // The merchants' automatic answers to her cart hashtags name her (`@handle …`)
            // and answer posts that are going: they go too.
            "update posts set reply_to = null where reply_to in \
             (select reply_post_id from cart_jobs where account_id = $1 and reply_post_id is not null) and $2 = $2",
            "delete from posts where id in \
             (select reply_post_id from cart_jobs where account_id = $1 and reply_post_id is not null) and $2 = $2",
            "delete from cart_jobs where account_id = $1 and $2 = $2",
            // Her idempotency replays (her requests, and the sign-up that made her).
            "delete from idempotency_keys where account_id = $1 and $2 = $2",
            // Replies by others stay, no longer under a parent that is gone.
            "update posts set reply_to = null where reply_to in (select id from posts where author_id = $1) and $2 = $2",
            "delete from posts where author_id = $1 and $2 = $2",
            "update orders set shopper_id = null, shipping_address = null, contact_email = null, updated_at = $2 \
             where shopper_id = $1",
            "update accounts set handle = 'deleted', handle_key = 'deleted:' || id, display_name = 'Deleted account', \
             email = null, email_key = null, password_hash = null, bio = '', kind = 'deleted' where id = $1 and $2 = $2",
            // Her failed log-in count is keyed by her account id.
            "delete from login_failures where key = 'account:' || $1 and $2 = $2",
        ];
        for sql in steps {
            sqlx::query(sql).bind(account_id).bind(now).execute(&mut *tx).await.map_err(other)?;
        }
        tx.commit().await.map_err(other)?;
        Ok(emails)
    }
}
