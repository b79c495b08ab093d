//! The outbox on SQL: events with their webhook deliveries and attempts, signing secrets,
//! notifications and the e-mail outbox.

use crate::vault::vault_record_insert;
use crate::write::{insert_rows, run_steps, Job, Step};
use crate::{args, json_err, other, placeholders, Backend, Db};
use async_trait::async_trait;
use buyline_core::error::StoreError;
use buyline_core::ids::new_id;
use buyline_core::order::{
    Delivery, DeliveryAttempt, DeliveryJob, DeliveryOutcome, DeliveryStatus, NewEvent, OutgoingEmail, Receipt,
};
use buyline_core::store::{Before, OutboxStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

/// What a change tells people, in the change's transaction: the shopper's receipt and the
/// merchant's event, either, both or neither.
pub(crate) async fn insert_receipt_and_event(
    tx: &mut (impl std::ops::DerefMut<Target = sqlx::AnyConnection> + Send),
    receipt: Option<&Receipt>,
    event: Option<&NewEvent>,
    now: i64,
) -> StoreResult<()> {
    let mut steps = receipt_steps(receipt.as_slice(), now);
    steps.extend(event_steps(event.as_slice()));
    run_steps(tx, &steps).await.map(drop)
}

/// In-app notifications and the e-mails that go with them.
pub(crate) async fn insert_receipts(
    tx: &mut (impl std::ops::DerefMut<Target = sqlx::AnyConnection> + Send),
    rs: &[&Receipt],
    now: i64,
) -> StoreResult<()> {
    run_steps(tx, &receipt_steps(rs, now)).await.map(drop)
}

/// Events with their deliveries (see [`event_steps`]).
pub(crate) async fn insert_events(
    tx: &mut (impl std::ops::DerefMut<Target = sqlx::AnyConnection> + Send),
    events: &[&NewEvent],
) -> StoreResult<()> {
    run_steps(tx, &event_steps(events)).await.map(drop)
}

/// The statements that write in-app notifications and their e-mails: one per table. A
/// receipt whose notice is its order (`in_order`) writes no notification row: the order's
/// own insert marks it (`receipt_in_place`, `commit_order`).
pub(crate) fn receipt_steps(rs: &[&Receipt], now: i64) -> Vec<Step> {
    let mut steps = Vec::new();
    if rs.is_empty() {
        return steps;
    }
    let notices: Vec<&Receipt> = rs.iter().copied().filter(|r| !r.in_order).collect();
    if !notices.is_empty() {
        steps.push(insert_rows("notifications (id, account_id, text, link, created_at)", 5, &notices, |r| {
            args![new_id("ntf"), &r.account_id, &r.text, &r.link, now]
        }));
    }
    let mails: Vec<(&Receipt, &(String, String, String))> =
        rs.iter().filter_map(|r| r.email.as_ref().map(|m| (*r, m))).collect();
    if !mails.is_empty() {
        steps.push(insert_rows(
            "emails (id, to_address, subject, body, created_at, account_id, order_id)",
            7,
            &mails,
            |(r, (to, subject, body))| args![new_id("eml"), to, subject, body, now, &r.account_id, &r.order_id],
        ));
    }
    steps
}

/// The statements that write events and, for each whose merchant has a live webhook
/// endpoint, its delivery: in the caller's transaction, so an event exists exactly when the
/// change it reports does.
pub(crate) fn event_steps(events: &[&NewEvent]) -> Vec<Step> {
    if events.is_empty() {
        return Vec::new();
    }
    let insert =
        insert_rows("events (id, merchant_id, type, payload, created_at, account_id, order_id)", 7, events, |e| {
            args![&e.id, &e.merchant_id, &e.kind, &e.payload, e.created_at, &e.account_id, &e.order_id]
        });
    let selects = (0..events.len())
        .map(|k| {
            let b = 4 * k;
            format!(
                "select ${}, ${}, id, '{}', 0, ${}, 0, ${} from merchants \
                 where id = ${} and webhook_url is not null and webhook_disabled_at is null",
                b + 1,
                b + 2,
                DeliveryStatus::Pending.as_str(),
                b + 3,
                b + 3,
                b + 4
            )
        })
        .collect::<Vec<_>>()
        .join(" union all ");
    let sql = format!(
        "insert into webhook_deliveries (id, event_id, merchant_id, status, attempts, next_attempt_at, locked_until, \
         created_at) {selects}"
    );
    let mut args = Vec::with_capacity(events.len() * 4);
    for e in events {
        args.extend(args![new_id("dlv"), &e.id, e.created_at, &e.merchant_id]);
    }
    vec![insert, Step::new(sql, args)]
}

fn event_row(r: &AnyRow) -> StoreResult<buyline_core::order::Event> {
    let payload: String = r.try_get("payload").map_err(other)?;
    Ok(buyline_core::order::Event {
        id: r.try_get("id").map_err(other)?,
        kind: r.try_get("type").map_err(other)?,
        payload: serde_json::from_str(&payload).map_err(json_err)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

/// E-mails not yet sent and not claimed by a live sender, oldest first (the partial index
/// `emails_unsent`).
pub(crate) const UNSENT_EMAILS: &str =
    "select id from emails where sent_at is null and locked_until <= $1 order by created_at limit $2";

#[async_trait]
impl OutboxStore for Db {
    async fn claim_pending_emails(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<OutgoingEmail>> {
        // An e-mail goes out only once the commit that wrote it is durable.
        self.durable().await?;
        // On PostgreSQL several processes claim side by side: `skip locked` hands each row to
        // one of them. SQLite has one writer at a time, so the update alone is enough.
        let lock = if self.backend == Backend::Postgres { "for update skip locked" } else { "" };
        let sql = format!(
            "update emails set locked_until = $3 where id in ({UNSENT_EMAILS} {lock}) \
             returning id, to_address, subject, body, created_at"
        );
        let rows =
            sqlx::query(&sql).bind(now).bind(limit).bind(lease_until).fetch_all(self.writer()).await.map_err(other)?;
        let mut mails = rows
            .iter()
            .map(|r| {
                let created_at: i64 = r.try_get("created_at").map_err(other)?;
                let mail = OutgoingEmail {
                    id: r.try_get("id").map_err(other)?,
                    to: r.try_get("to_address").map_err(other)?,
                    subject: r.try_get("subject").map_err(other)?,
                    body: r.try_get("body").map_err(other)?,
                };
                Ok((created_at, mail))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // `returning` keeps no order: oldest first, as claimed.
        mails.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        Ok(mails.into_iter().map(|(_, m)| m).collect())
    }

    async fn mark_email_sent(&self, id: &str, now: i64) -> StoreResult<()> {
        self.run(Job::from(vec![Step::new(
            "update emails set sent_at = $1 where id = $2 and sent_at is null",
            args![now, id],
        )]))
        .await?;
        Ok(())
    }

    async fn find_event(&self, id: &str) -> StoreResult<Option<buyline_core::order::Event>> {
        let row = sqlx::query("select * from events where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        row.as_ref().map(event_row).transpose()
    }

    async fn find_events_after(
        &self,
        merchant_id: &str,
        after: Before<'_>,
        visible_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<buyline_core::order::Event>> {
        let (ts, id) = after.unwrap_or((i64::MIN, ""));
        let rows = sqlx::query(
            "select * from events where merchant_id = $1 and (created_at > $2 or (created_at = $2 and id > $3)) \
             and created_at < $4 order by created_at, id limit $5",
        )
        .bind(merchant_id)
        .bind(ts)
        .bind(id)
        .bind(visible_before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(event_row).collect()
    }

    async fn claim_deliveries(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<DeliveryJob>> {
        // On PostgreSQL several processes claim side by side: `skip locked` hands each row to
        // one of them. SQLite has one writer at a time, so the update alone is enough.
        let lock = if self.backend == Backend::Postgres { "for update skip locked" } else { "" };
        let sql = format!(
            "update webhook_deliveries set locked_until = $1, attempts = attempts + 1 where id in ( \
               select id from webhook_deliveries where status = $4 and next_attempt_at <= $2 and locked_until <= $2 \
               order by next_attempt_at limit $3 {lock}) returning id"
        );
        let claimed = sqlx::query(&sql)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .bind(DeliveryStatus::Pending.as_str())
            .fetch_all(self.writer())
            .await
            .map_err(other)?;
        let ids: Vec<String> = claimed.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>().map_err(other)?;
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&String> = ids.iter().collect();
        let sql = format!(
            "select d.id, d.event_id, d.merchant_id, d.attempts, e.payload, m.webhook_url, m.webhook_secret, \
                    m.webhook_secret_old, m.webhook_secret_old_until \
             from webhook_deliveries d join events e on e.id = d.event_id join merchants m on m.id = d.merchant_id \
             where d.id in ({})",
            placeholders(1, refs.len())
        );
        let rows = self.fetch_in(&sql, &refs).await?;
        rows.iter()
            .map(|r| {
                let old: Option<String> = r.try_get("webhook_secret_old").map_err(other)?;
                let until: Option<i64> = r.try_get("webhook_secret_old_until").map_err(other)?;
                Ok(DeliveryJob {
                    delivery_id: r.try_get("id").map_err(other)?,
                    event_id: r.try_get("event_id").map_err(other)?,
                    merchant_id: r.try_get("merchant_id").map_err(other)?,
                    url: r.try_get::<Option<String>, _>("webhook_url").map_err(other)?.unwrap_or_default(),
                    payload: r.try_get("payload").map_err(other)?,
                    secret: r.try_get("webhook_secret").map_err(other)?,
                    old_secret: old.filter(|_| until.is_some_and(|u| u > now)),
                    attempts: r.try_get("attempts").map_err(other)?,
                })
            })
            .collect()
    }

    async fn record_delivery_attempts(
        &self,
        attempts: &[(&DeliveryJob, DeliveryAttempt, DeliveryOutcome)],
    ) -> StoreResult<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        // One job for a worker's whole batch: it shares a durable commit with everything else.
        let insert = insert_rows(
            "webhook_attempts (id, delivery_id, merchant_id, url, attempted_at, status_code, latency_ms, excerpt, error)",
            9,
            attempts,
            |(job, a, _)| {
                args![
                    new_id("att"),
                    &job.delivery_id,
                    &job.merchant_id,
                    &a.url,
                    a.attempted_at,
                    a.status_code,
                    a.latency_ms,
                    &a.excerpt,
                    &a.error
                ]
            },
        );
        let mut job = Job::from(vec![insert]);
        for (d, a, outcome) in attempts {
            let (status, next, delivered) = match outcome {
                DeliveryOutcome::Delivered => (DeliveryStatus::Delivered, a.attempted_at, Some(a.attempted_at)),
                DeliveryOutcome::Retry { at } => (DeliveryStatus::Pending, *at, None),
                DeliveryOutcome::Failed => (DeliveryStatus::Failed, a.attempted_at, None),
                DeliveryOutcome::Disabled => (DeliveryStatus::Disabled, a.attempted_at, None),
            };
            job.push(Step::new(
                "update webhook_deliveries set status = $1, next_attempt_at = $2, locked_until = 0, last_status = $3, \
                 last_error = $4, delivered_at = coalesce($5, delivered_at) where id = $6 and status = $7",
                args![
                    status.as_str(),
                    next,
                    a.status_code,
                    &a.error,
                    delivered,
                    &d.delivery_id,
                    DeliveryStatus::Pending.as_str()
                ],
            ));
            if matches!(outcome, DeliveryOutcome::Disabled) {
                job.push(Step::new(
                    "update merchants set webhook_disabled_at = $1 where id = $2",
                    args![a.attempted_at, &d.merchant_id],
                ));
            }
        }
        self.run(job).await?;
        Ok(())
    }

    async fn find_deliveries(&self, merchant_id: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Delivery>> {
        let (ts, id) = before.unwrap_or((i64::MAX, "\u{10FFFF}"));
        let rows = sqlx::query(
            "select d.*, e.type as event_type from webhook_deliveries d join events e on e.id = d.event_id \
             where d.merchant_id = $1 and (d.created_at < $2 or (d.created_at = $2 and d.id < $3)) \
             order by d.created_at desc, d.id desc limit $4",
        )
        .bind(merchant_id)
        .bind(ts)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let mut out = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id").map_err(other)?;
            let attempts =
                sqlx::query("select * from webhook_attempts where delivery_id = $1 order by attempted_at, id")
                    .bind(&id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(other)?;
            let attempt_log = attempts
                .iter()
                .map(|a| {
                    Ok(DeliveryAttempt {
                        attempted_at: a.try_get("attempted_at").map_err(other)?,
                        url: a.try_get("url").map_err(other)?,
                        status_code: a.try_get("status_code").map_err(other)?,
                        latency_ms: a.try_get("latency_ms").map_err(other)?,
                        excerpt: a.try_get("excerpt").map_err(other)?,
                        error: a.try_get("error").map_err(other)?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            out.push(Delivery {
                id,
                event_id: r.try_get("event_id").map_err(other)?,
                event_type: r.try_get("event_type").map_err(other)?,
                status: {
                    let s: String = r.try_get("status").map_err(other)?;
                    DeliveryStatus::parse(&s).ok_or_else(|| StoreError::Other(format!("delivery status {s}")))?
                },
                attempts: r.try_get("attempts").map_err(other)?,
                last_status: r.try_get("last_status").map_err(other)?,
                last_error: r.try_get("last_error").map_err(other)?,
                next_attempt_at: r.try_get("next_attempt_at").map_err(other)?,
                created_at: r.try_get("created_at").map_err(other)?,
                attempt_log,
            });
        }
        Ok(out)
    }

    async fn retry_delivery(&self, id: &str, merchant_id: &str, now: i64) -> StoreResult<bool> {
        let r = sqlx::query(
            "update webhook_deliveries set status = $4, next_attempt_at = $1, locked_until = 0 \
             where id = $2 and merchant_id = $3",
        )
        .bind(now)
        .bind(id)
        .bind(merchant_id)
        .bind(DeliveryStatus::Pending.as_str())
        .execute(self.writer())
        .await
        .map_err(other)?;
        Ok(r.rows_affected() == 1)
    }

    async fn count_pending_deliveries(&self) -> StoreResult<i64> {
        let r = sqlx::query("select count(*) as n from webhook_deliveries where status = $1")
            .bind(DeliveryStatus::Pending.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(other)?;
        r.try_get("n").map_err(other)
    }

    async fn rotate_webhook_secret(
        &self,
        merchant_id: &str,
        secret: &buyline_core::saved::VaultRecord,
        old_until: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        vault_record_insert(secret)?.execute(&mut *tx).await.map_err(other)?;
        sqlx::query(
            "update merchants set webhook_secret_old = webhook_secret, webhook_secret_old_until = $1, webhook_secret = $2 \
             where id = $3",
        )
        .bind(old_until)
        .bind(&secret.id)
        .bind(merchant_id)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        tx.commit().await.map_err(other)
    }

    async fn find_plain_webhook_secrets(&self, limit: i64) -> StoreResult<Vec<(String, bool, String)>> {
        let rows = sqlx::query(
            "select id, webhook_secret, webhook_secret_old from merchants \
             where webhook_secret like 'whsec\\_%' escape '\\' or webhook_secret_old like 'whsec\\_%' escape '\\' limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        let mut out = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id").map_err(other)?;
            let current: String = r.try_get("webhook_secret").map_err(other)?;
            let old: Option<String> = r.try_get("webhook_secret_old").map_err(other)?;
            if current.starts_with("whsec_") {
                out.push((id.clone(), false, current));
            }
            if let Some(old) = old.filter(|o| o.starts_with("whsec_")) {
                out.push((id, true, old));
            }
        }
        Ok(out)
    }

    async fn seal_plain_webhook_secret(
        &self,
        merchant_id: &str,
        old: bool,
        plain: &str,
        sealed: &buyline_core::saved::VaultRecord,
    ) -> StoreResult<bool> {
        let column = if old { "webhook_secret_old" } else { "webhook_secret" };
        let mut tx = self.begin().await?;
        let r = sqlx::query(&format!("update merchants set {column} = $1 where id = $2 and {column} = $3"))
            .bind(&sealed.id)
            .bind(merchant_id)
            .bind(plain)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        vault_record_insert(sealed)?.execute(&mut *tx).await.map_err(other)?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }
}
