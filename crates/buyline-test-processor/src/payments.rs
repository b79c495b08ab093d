//! The test processor's own records: `processor_payments` and `processor_refunds`, in the
//! product's database (their migrations live with the store's) but read and written only
//! here, as a remote processor would keep its books apart from the merchant's.
//!
//! SQL is one text for SQLite and PostgreSQL, as in the store. Reads use the read pool;
//! every write goes through the store's group writer (`buyline_store::GroupWriter`): on
//! SQLite the one writer connection, where these writes share group commits with the
//! store's instead of each paying its own fsync.

use buyline_core::payment::PaymentStatus;
use buyline_store::write::Arg;
use buyline_store::{GroupWriter, Job, Outcome, Step};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// Authorised or awaiting a challenge, created before `$1`, oldest first. The states are
/// literals, as in the definition of the partial index `processor_payments_open`, so the
/// planner can use it.
pub const OPEN_PAYMENTS: &str = "select * from processor_payments where status in ('authorized', 'requires_action') \
     and created_at < $1 order by created_at limit 500";

/// A payment as the test processor records it: never the card number, only brand and last four.
#[derive(Debug, Clone)]
pub struct ProcessorPayment {
    pub id: String,
    pub idempotency_key: String,
    pub amount: i64,
    pub currency: String,
    pub status: PaymentStatus,
    pub brand: String,
    pub last4: String,
    /// For a refused card: `code` and optional `decline_code`.
    pub error_code: Option<String>,
    pub decline_code: Option<String>,
    pub return_url: String,
    pub created_at: i64,
}

/// Why the records could not be read or written (the processor answers "unavailable").
pub type DbResult<T> = Result<T, String>;

fn err(e: sqlx::Error) -> String {
    format!("storage: {e}")
}

fn payment_row(r: &AnyRow) -> DbResult<ProcessorPayment> {
    let status: String = r.try_get("status").map_err(err)?;
    Ok(ProcessorPayment {
        id: r.try_get("id").map_err(err)?,
        idempotency_key: r.try_get("idempotency_key").map_err(err)?,
        amount: r.try_get("amount").map_err(err)?,
        currency: r.try_get("currency").map_err(err)?,
        status: PaymentStatus::parse(&status).ok_or_else(|| format!("payment status {status}"))?,
        brand: r.try_get("brand").map_err(err)?,
        last4: r.try_get("last4").map_err(err)?,
        error_code: r.try_get("error_code").map_err(err)?,
        decline_code: r.try_get("decline_code").map_err(err)?,
        return_url: r.try_get("return_url").map_err(err)?,
        created_at: r.try_get("created_at").map_err(err)?,
    })
}

fn status_list(from: &[PaymentStatus]) -> String {
    from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

/// The pools the records are read from and written through.
#[derive(Clone)]
pub struct Payments {
    read: AnyPool,
    write: GroupWriter,
}

impl Payments {
    /// `write` must be the pool the store writes through (on SQLite its one connection).
    pub fn new(read: AnyPool, write: AnyPool) -> Self {
        Payments { read, write: GroupWriter::new(write) }
    }

    /// Writes through the store's own group writer, so they join the store's groups.
    pub fn sharing(self, write: GroupWriter) -> Self {
        Payments { write, ..self }
    }

    async fn begin(&self) -> DbResult<buyline_store::Tx> {
        self.write.begin().await.map_err(err)
    }

    /// One statement as a write job (group-committed with the store's on SQLite); the rows
    /// it changed.
    async fn execute_step(&self, step: Step) -> DbResult<u64> {
        self.execute_job(Job::from(vec![step])).await
    }

    async fn execute_job(&self, job: Job) -> DbResult<u64> {
        match self.write.run(job).await.map_err(|e| format!("storage: {e}"))? {
            Outcome::Done { rows } => Ok(rows.first().copied().unwrap_or(0)),
            other => Err(format!("storage: unexpected {other:?}")),
        }
    }

    /// Inserts unless a payment with the same idempotency key exists; true if it did.
    ///
    /// Answered before the commit is synced (`Job::before_a_synced_write`): the store's
    /// purchase path commits the order (or releases the stock), synced, before it answers,
    /// and the WAL keeps commits in order. The authorisation leaves no trace outside this
    /// database: a crash that loses the record loses the authorisation with it.
    pub async fn insert(&self, p: &ProcessorPayment) -> DbResult<bool> {
        let n = self
            .execute_job(Job::from(vec![Step::new(
                "insert into processor_payments (id, idempotency_key, amount, currency, status, brand, last4, error_code, \
                 decline_code, return_url, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                 on conflict (idempotency_key) do nothing",
                vec![
                    Arg::from(&p.id),
                    Arg::from(&p.idempotency_key),
                    Arg::from(p.amount),
                    Arg::from(&p.currency),
                    Arg::from(p.status.as_str()),
                    Arg::from(&p.brand),
                    Arg::from(&p.last4),
                    Arg::from(&p.error_code),
                    Arg::from(&p.decline_code),
                    Arg::from(&p.return_url),
                    Arg::from(p.created_at),
                ],
            )])
            .before_a_synced_write())
            .await?;
        Ok(n == 1)
    }

    pub async fn find(&self, id: &str) -> DbResult<Option<ProcessorPayment>> {
        let row = sqlx::query("select * from processor_payments where id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(err)?;
        row.as_ref().map(payment_row).transpose()
    }

    pub async fn find_by_key(&self, key: &str) -> DbResult<Option<ProcessorPayment>> {
        let row = sqlx::query("select * from processor_payments where idempotency_key = $1")
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(err)?;
        row.as_ref().map(payment_row).transpose()
    }

    /// Moves the payment to `to` if it is in one of `from`; true if it moved.
    pub async fn update(
        &self,
        id: &str,
        from: &[PaymentStatus],
        to: PaymentStatus,
        error_code: Option<&str>,
        now: i64,
    ) -> DbResult<bool> {
        let sql = format!(
            "update processor_payments set status = $1, error_code = coalesce($2, error_code), updated_at = $3 \
             where id = $4 and status in ({})",
            status_list(from)
        );
        let moved = self
            .execute_step(Step::new(
                sql,
                vec![Arg::from(to.as_str()), Arg::from(error_code), Arg::from(now), Arg::from(id)],
            ))
            .await?;
        Ok(moved == 1)
    }

    /// Moves every one of `ids` that is `authorized` to `captured` in one write, then answers
    /// each id's status as it is after it (`None`: no such payment).
    pub async fn capture_many(&self, ids: &[String], now: i64) -> DbResult<Vec<Option<PaymentStatus>>> {
        let set = buyline_store::placeholders(4, ids.len());
        let mut args = vec![
            Arg::from(PaymentStatus::Captured.as_str()),
            Arg::from(now),
            Arg::from(PaymentStatus::Authorized.as_str()),
        ];
        args.extend(ids.iter().map(Arg::from));
        // Before a synced write: the store records the captures (their ledger postings)
        // next, synced, before any purchase hears it was captured.
        let capture = Step::new(
            format!("update processor_payments set status = $1, updated_at = $2 where status = $3 and id in ({set})"),
            args,
        );
        self.execute_job(Job::from(vec![capture]).before_a_synced_write()).await?;
        let sql = format!(
            "select id, status from processor_payments where id in ({})",
            buyline_store::placeholders(1, ids.len())
        );
        let rows = ids.iter().fold(sqlx::query(&sql), |q, id| q.bind(id)).fetch_all(&self.read).await.map_err(err)?;
        let mut now_in: std::collections::HashMap<String, PaymentStatus> = std::collections::HashMap::new();
        for r in &rows {
            let id: String = r.try_get("id").map_err(err)?;
            let status: String = r.try_get("status").map_err(err)?;
            let status = PaymentStatus::parse(&status).ok_or_else(|| format!("payment status {status}"))?;
            now_in.insert(id, status);
        }
        Ok(ids.iter().map(|id| now_in.get(id).copied()).collect())
    }

    /// Records a refund of a captured payment once per key; the inner `Err` if it would
    /// exceed the captured amount.
    pub async fn apply_refund(
        &self,
        key: &str,
        payment_id: &str,
        amount: i64,
        now: i64,
    ) -> DbResult<Result<(), String>> {
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
        .map_err(err)?;
        if fresh.rows_affected() == 0 {
            tx.rollback().await.map_err(err)?;
            return Ok(Ok(()));
        }
        let moved = sqlx::query(
            "update processor_payments set refunded = refunded + $1, updated_at = $2 \
             where id = $3 and status = $4 and refunded + $1 <= amount",
        )
        .bind(amount)
        .bind(now)
        .bind(payment_id)
        .bind(PaymentStatus::Captured.as_str())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if moved.rows_affected() != 1 {
            tx.rollback().await.map_err(err)?;
            return Ok(Err("the refund exceeds what was captured".into()));
        }
        tx.commit().await.map_err(err)?;
        Ok(Ok(()))
    }

    /// Authorised or awaiting a challenge, created before `before`.
    pub async fn find_open(&self, before: i64) -> DbResult<Vec<ProcessorPayment>> {
        let rows = sqlx::query(OPEN_PAYMENTS).bind(before).fetch_all(&self.read).await.map_err(err)?;
        rows.iter().map(payment_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reconciler's look for open payments reads the partial index made for it (see the
    /// store's `plan_tests`): its states are the ones the processor writes.
    #[tokio::test]
    async fn open_payments_are_read_through_their_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        let db = buyline_store::Db::connect(&url, 2).await.unwrap();
        let plan = db.query_plan(OPEN_PAYMENTS).await.unwrap();
        assert!(plan.contains("USING INDEX processor_payments_open"), "{plan}");
        for s in [PaymentStatus::Authorized, PaymentStatus::RequiresAction] {
            assert!(OPEN_PAYMENTS.contains(&format!("'{}'", s.as_str())));
        }
    }
}
