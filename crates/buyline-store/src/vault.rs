//! Sealed vault records (bytes as base64 text) and the vault audit log on SQL.

use crate::write::{insert_rows, Job, Step};
use crate::{args, other, AnyQuery, Db};
use async_trait::async_trait;
use buyline_core::error::StoreError;
use buyline_core::ids::new_id;
use buyline_core::saved::VaultAudit;
use buyline_core::store::{StoreResult, VaultStore};
use sqlx::Row;

/// The insert of a new (sealed) vault record, to run alone or inside a transaction.
pub(crate) fn vault_record_insert(r: &buyline_core::saved::VaultRecord) -> StoreResult<AnyQuery<'_>> {
    let sealed = r.sealed.as_ref().ok_or_else(|| StoreError::Other("a new vault record must be sealed".into()))?;
    Ok(sqlx::query(
        "insert into vault_records (id, owner_id, kind, kek_id, wrapped_key, ciphertext, summary, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&r.id)
    .bind(&r.owner_id)
    .bind(&r.kind)
    .bind(sealed.kek_id.clone())
    .bind(b64(&sealed.wrapped_key))
    .bind(b64(&sealed.ciphertext))
    .bind(&r.summary)
    .bind(r.created_at))
}

fn vault_row(r: &impl crate::read::Cols) -> StoreResult<buyline_core::saved::VaultRecord> {
    let kek: Option<String> = r.col("kek_id")?;
    let wrapped: Option<String> = r.col("wrapped_key")?;
    let ct: Option<String> = r.col("ciphertext")?;
    let sealed = match (kek, wrapped, ct) {
        (Some(kek_id), Some(w), Some(c)) => {
            Some(buyline_core::vault::Sealed { kek_id, wrapped_key: unb64(&w)?, ciphertext: unb64(&c)? })
        }
        _ => None,
    };
    Ok(buyline_core::saved::VaultRecord {
        id: r.col("id")?,
        owner_id: r.col("owner_id")?,
        kind: r.col("kind")?,
        sealed,
        summary: r.col("summary")?,
        created_at: r.col("created_at")?,
    })
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &str) -> StoreResult<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| StoreError::Other(format!("sealed bytes: {e}")))
}

/// The audit rows of vault opens, in one statement (`None` for none).
pub(crate) fn audit_step(audits: &[VaultAudit]) -> Option<Step> {
    if audits.is_empty() {
        return None;
    }
    Some(insert_rows("vault_audit (id, record_id, owner_id, kind, purpose, actor, created_at)", 7, audits, |a| {
        args![new_id("aud"), &a.record_id, &a.owner_id, &a.kind, &a.purpose, &a.actor, a.at]
    }))
}

#[async_trait]
impl VaultStore for Db {
    async fn insert_vault_record(&self, r: &buyline_core::saved::VaultRecord) -> StoreResult<()> {
        self.execute_write(vault_record_insert(r)?).await?;
        Ok(())
    }

    async fn find_vault_record(&self, id: &str) -> StoreResult<Option<buyline_core::saved::VaultRecord>> {
        let sql = "select * from vault_records where id = $1 and deleted_at is null";
        Ok(self.read_rows(sql, args![id], vault_row, |r| vault_row(r)).await?.pop())
    }

    async fn find_vault_records_by_ids(&self, ids: &[String]) -> StoreResult<Vec<buyline_core::saved::VaultRecord>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "select * from vault_records where id in ({}) and deleted_at is null",
            crate::placeholders(1, ids.len())
        );
        self.read_rows(&sql, ids.iter().map(crate::write::Arg::from).collect(), vault_row, |r| vault_row(r)).await
    }

    async fn find_vault_records(
        &self,
        owner_id: &str,
        kind: &str,
    ) -> StoreResult<Vec<buyline_core::saved::VaultRecord>> {
        let rows = sqlx::query(
            "select * from vault_records where owner_id = $1 and kind = $2 and deleted_at is null order by created_at desc, id",
        )
        .bind(owner_id)
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(vault_row).collect()
    }

    async fn shred_vault_record(&self, id: &str, owner_id: &str, now: i64) -> StoreResult<bool> {
        let r = self.execute_write(
        sqlx::query(
            "update vault_records set wrapped_key = null, ciphertext = null, kek_id = null, summary = '{}', deleted_at = $1 \
             where id = $2 and owner_id = $3 and deleted_at is null",
        )
        .bind(now)
        .bind(id)
        .bind(owner_id)
    ).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn find_vault_records_not_under(
        &self,
        kek_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<buyline_core::saved::VaultRecord>> {
        let rows = sqlx::query(
            "select * from vault_records where deleted_at is null and kek_id is not null and kek_id <> $1 limit $2",
        )
        .bind(kek_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(vault_row).collect()
    }

    async fn update_vault_wrap(
        &self,
        id: &str,
        old_kek: &str,
        sealed: &buyline_core::vault::Sealed,
    ) -> StoreResult<bool> {
        let r = self.execute_write(
        sqlx::query(
            "update vault_records set kek_id = $1, wrapped_key = $2 where id = $3 and kek_id = $4 and deleted_at is null",
        )
        .bind(&sealed.kek_id)
        .bind(b64(&sealed.wrapped_key))
        .bind(id)
        .bind(old_kek)
    ).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn count_vault_records_by_kek(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "select kek_id, count(*) as n from vault_records where deleted_at is null and kek_id is not null group by kek_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(|r| Ok((r.try_get("kek_id").map_err(other)?, r.try_get("n").map_err(other)?))).collect()
    }

    async fn insert_vault_audits(&self, audits: &[VaultAudit]) -> StoreResult<()> {
        if let Some(step) = audit_step(audits) {
            self.run(Job::from(vec![step])).await?;
        }
        Ok(())
    }

    async fn find_vault_audit(&self, owner_id: &str) -> StoreResult<Vec<buyline_core::saved::AuditEntry>> {
        let rows = sqlx::query("select * from vault_audit where owner_id = $1 order by created_at, id")
            .bind(owner_id)
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter()
            .map(|r| {
                Ok(buyline_core::saved::AuditEntry {
                    record_id: r.try_get("record_id").map_err(other)?,
                    kind: r.try_get("kind").map_err(other)?,
                    purpose: r.try_get("purpose").map_err(other)?,
                    actor: r.try_get("actor").map_err(other)?,
                    created_at: r.try_get("created_at").map_err(other)?,
                })
            })
            .collect()
    }
}
