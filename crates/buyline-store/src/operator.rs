//! Operator sessions, the operator audit log and the merchant search on SQL.

use crate::catalog::{merchant_row, MERCHANT_SELECT};
use crate::{other, Db};
use async_trait::async_trait;
use buyline_core::model::Merchant;
use buyline_core::store::{AuditEntry, OperatorStore, StoreResult};
use sqlx::Row;

#[async_trait]
impl OperatorStore for Db {
    async fn insert_operator_session(&self, token_hash: &str, now: i64, expires_at: i64) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(other)?;
        sqlx::query("delete from operator_sessions where expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        sqlx::query("insert into operator_sessions (token_hash, created_at, expires_at) values ($1, $2, $3)")
            .bind(token_hash)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        tx.commit().await.map_err(other)
    }

    async fn operator_session_open(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
        let row = sqlx::query("select 1 as one from operator_sessions where token_hash = $1 and expires_at > $2")
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        Ok(row.is_some())
    }

    async fn delete_operator_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from operator_sessions where token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn append_operator_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query("insert into operator_audit (id, at, action, detail) values ($1, $2, $3, $4)")
            .bind(&e.id)
            .bind(e.at)
            .bind(&e.action)
            .bind(&e.detail)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn list_operator_audit(&self, action: Option<&str>, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let rows = match action {
            Some(a) => {
                sqlx::query(
                    "select id, at, action, detail from operator_audit where action = $1 \
                     order by at desc, id desc limit $2",
                )
                .bind(a)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query("select id, at, action, detail from operator_audit order by at desc, id desc limit $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id").map_err(other)?,
                    at: r.try_get("at").map_err(other)?,
                    action: r.try_get("action").map_err(other)?,
                    detail: r.try_get("detail").map_err(other)?,
                })
            })
            .collect()
    }

    async fn search_merchants(&self, q: &str, limit: i64) -> StoreResult<Vec<Merchant>> {
        // A plain containment match, case-insensitive on both backends; `%` and `_` typed
        // by the operator are matched as themselves.
        let pattern = format!("%{}%", q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let rows = sqlx::query(&format!(
            "{MERCHANT_SELECT} where lower(a.handle) like $1 escape '\\' or lower(m.name) like $1 escape '\\' \
             order by m.created_at desc, m.id desc limit $2"
        ))
        .bind(pattern)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(merchant_row).collect()
    }
}
