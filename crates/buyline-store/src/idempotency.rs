//! `Idempotency-Key` records on SQL.

use crate::{other, Db};
use async_trait::async_trait;
use buyline_core::store::{IdempotencyStore, StoreResult};
use sqlx::Row;

#[async_trait]
impl IdempotencyStore for Db {
    async fn find_idempotent_answer(&self, scope: &str, key: &str) -> StoreResult<Option<(u16, String, String)>> {
        let row = sqlx::query(
            "select status, content_type, response from idempotency_keys \
             where scope = $1 and key = $2 and status is not null",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(other)?;
        row.map(|r| {
            Ok((
                r.try_get::<i64, _>("status").map_err(other)? as u16,
                r.try_get::<Option<String>, _>("content_type").map_err(other)?.unwrap_or_default(),
                r.try_get::<Option<String>, _>("response").map_err(other)?.unwrap_or_default(),
            ))
        })
        .transpose()
    }

    async fn begin_idempotent(
        &self,
        scope: &str,
        account_id: Option<&str>,
        key: &str,
        request_hash: &str,
        now: i64,
        abandoned_after: i64,
        expired_before: i64,
    ) -> StoreResult<buyline_core::service::Idempotency> {
        use buyline_core::service::Idempotency;
        let inserted = sqlx::query(
            "insert into idempotency_keys (scope, key, account_id, request_hash, created_at) values ($1, $2, $3, $4, $5) \
             on conflict (scope, key) do nothing",
        )
        .bind(scope)
        .bind(key)
        .bind(account_id)
        .bind(request_hash)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(other)?;
        if inserted.rows_affected() == 1 {
            return Ok(Idempotency::New);
        }
        let r = sqlx::query("select * from idempotency_keys where scope = $1 and key = $2")
            .bind(scope)
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(other)?;
        let created: i64 = r.try_get("created_at").map_err(other)?;
        if created < expired_before {
            // Past its replay window: the key is new again, for whatever request this is.
            let took = sqlx::query(
                "update idempotency_keys set request_hash = $1, account_id = $2, status = null, content_type = null, \
                 response = null, created_at = $3 where scope = $4 and key = $5 and created_at = $6",
            )
            .bind(request_hash)
            .bind(account_id)
            .bind(now)
            .bind(scope)
            .bind(key)
            .bind(created)
            .execute(self.writer())
            .await
            .map_err(other)?;
            return Ok(if took.rows_affected() == 1 { Idempotency::New } else { Idempotency::InProgress });
        }
        let hash: String = r.try_get("request_hash").map_err(other)?;
        if hash != request_hash {
            return Ok(Idempotency::Mismatch);
        }
        let status: Option<i64> = r.try_get("status").map_err(other)?;
        match status {
            Some(status) => Ok(Idempotency::Replay {
                status: status as u16,
                content_type: r.try_get::<Option<String>, _>("content_type").map_err(other)?.unwrap_or_default(),
                body: r.try_get::<Option<String>, _>("response").map_err(other)?.unwrap_or_default(),
            }),
            None => {
                if created < now - abandoned_after {
                    let took = sqlx::query(
                        "update idempotency_keys set created_at = $1 where scope = $2 and key = $3 and created_at = $4 \
                         and status is null",
                    )
                    .bind(now)
                    .bind(scope)
                    .bind(key)
                    .bind(created)
                    .execute(self.writer())
                    .await
                    .map_err(other)?;
                    if took.rows_affected() == 1 {
                        return Ok(Idempotency::New);
                    }
                }
                Ok(Idempotency::InProgress)
            }
        }
    }

    async fn delete_idempotency_before(&self, before: i64) -> StoreResult<u64> {
        let r = sqlx::query("delete from idempotency_keys where created_at < $1")
            .bind(before)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected())
    }

    async fn finish_idempotent(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
        account_id: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "update idempotency_keys set status = $1, content_type = $2, response = $3, \
             account_id = coalesce($6, account_id) where scope = $4 and key = $5",
        )
        .bind(status as i64)
        .bind(content_type)
        .bind(body)
        .bind(scope)
        .bind(key)
        .bind(account_id)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn abandon_idempotent(&self, scope: &str, key: &str) -> StoreResult<()> {
        sqlx::query("delete from idempotency_keys where scope = $1 and key = $2 and status is null")
            .bind(scope)
            .bind(key)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }
}
