//! The built-in test processor's payments and refunds on SQL (its own tables).

use crate::{other, Db};
use async_trait::async_trait;
use buyline_core::error::StoreError;
use buyline_core::payment::PaymentStatus;
use buyline_core::store::{ProcessorPaymentStore, StoreResult};
use buyline_core::test_processor::ProcessorPayment;
use sqlx::any::AnyRow;
use sqlx::Row;

fn processor_payment_row(r: &AnyRow) -> StoreResult<ProcessorPayment> {
    let status: String = r.try_get("status").map_err(other)?;
    Ok(ProcessorPayment {
        id: r.try_get("id").map_err(other)?,
        idempotency_key: r.try_get("idempotency_key").map_err(other)?,
        amount: r.try_get("amount").map_err(other)?,
        currency: r.try_get("currency").map_err(other)?,
        status: PaymentStatus::parse(&status).ok_or_else(|| StoreError::Other(format!("payment status {status}")))?,
        brand: r.try_get("brand").map_err(other)?,
        last4: r.try_get("last4").map_err(other)?,
        error_code: r.try_get("error_code").map_err(other)?,
        decline_code: r.try_get("decline_code").map_err(other)?,
        return_url: r.try_get("return_url").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

fn status_list(from: &[PaymentStatus]) -> String {
    from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

#[async_trait]
impl ProcessorPaymentStore for Db {
    async fn insert_processor_payment(&self, p: &ProcessorPayment) -> StoreResult<()> {
        sqlx::query(
            "insert into processor_payments (id, idempotency_key, amount, currency, status, brand, last4, error_code, \
             decline_code, return_url, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             on conflict (idempotency_key) do nothing",
        )
        .bind(&p.id)
        .bind(&p.idempotency_key)
        .bind(p.amount)
        .bind(&p.currency)
        .bind(p.status.as_str())
        .bind(&p.brand)
        .bind(&p.last4)
        .bind(&p.error_code)
        .bind(&p.decline_code)
        .bind(&p.return_url)
        .bind(p.created_at)
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(())
    }

    async fn find_processor_payment(&self, id: &str) -> StoreResult<Option<ProcessorPayment>> {
        let row = sqlx::query("select * from processor_payments where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        row.as_ref().map(processor_payment_row).transpose()
    }

    async fn find_processor_payment_by_key(&self, key: &str) -> StoreResult<Option<ProcessorPayment>> {
        let row = sqlx::query("select * from processor_payments where idempotency_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        row.as_ref().map(processor_payment_row).transpose()
    }

    async fn update_processor_payment(
        &self,
        id: &str,
        from: &[PaymentStatus],
        to: PaymentStatus,
        error_code: Option<&str>,
    ) -> StoreResult<bool> {
        let sql = format!(
            "update processor_payments set status = $1, error_code = coalesce($2, error_code), updated_at = $3 \
             where id = $4 and status in ({})",
            status_list(from)
        );
        let r = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(error_code)
            .bind(buyline_core::types::now_micros())
            .bind(id)
            .execute(self.writer())
            .await
            .map_err(other)?;
        Ok(r.rows_affected() == 1)
    }

    async fn find_open_processor_payments(&self, before: i64) -> StoreResult<Vec<ProcessorPayment>> {
        let rows = sqlx::query(
            "select * from processor_payments where status in ('authorized', 'requires_action') and created_at < $1 \
             order by created_at limit 500",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(processor_payment_row).collect()
    }

    async fn apply_processor_refund(
        &self,
        key: &str,
        payment_id: &str,
        amount: i64,
        now: i64,
    ) -> StoreResult<Result<(), String>> {
        let mut tx = self.begin().await?;
        let fresh = sqlx::query(
            "insert into processor_refunds (idempotency_key, payment_id, amount, created_at) values ($1, $2, $3, $4) \
             on conflict (idempotency_key) do nothing",
        )
        .bind(key)
        .bind(payment_id)
        .bind(amount)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if fresh.rows_affected() == 0 {
            tx.rollback().await.map_err(other)?;
            return Ok(Ok(()));
        }
        let moved = sqlx::query(
            "update processor_payments set refunded = refunded + $1, updated_at = $2 \
             where id = $3 and status = 'captured' and refunded + $1 <= amount",
        )
        .bind(amount)
        .bind(now)
        .bind(payment_id)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if moved.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(Err("the refund exceeds what was captured".into()));
        }
        tx.commit().await.map_err(other)?;
        Ok(Ok(()))
    }
}
