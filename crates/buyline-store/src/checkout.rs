//! Checkouts, stock reservations and the order commit on SQL.

use crate::outbox::{event_steps, receipt_steps};
use crate::write::{Check, Job, Outcome, Step};
use crate::{args, json_err, other, Backend, Db};
use async_trait::async_trait;
use buyline_core::error::StoreError;
use buyline_core::order::{
    CatalogSeen, CheckoutRecord, CheckoutStatus, NewEvent, NotReserved, Order, OrderStatus, Receipt, ReservationState,
};
use buyline_core::rollout::Arm;
use buyline_core::store::{CheckoutStore, StoreResult};
use buyline_core::types::Currency;
use sqlx::any::AnyRow;
use sqlx::Row;

/// The columns of `checkouts` in the order [`checkout_insert`] gives their values (a macro,
/// so the insert's text stays a literal).
macro_rules! checkout_columns {
    () => {
        "id, shopper_id, merchant_id, post_id, lines, currency, status, attempt, order_id, created_at, updated_at, \
         expires_at, from_cart, arm"
    };
}
pub(crate) const CHECKOUT_COLUMNS: &str = checkout_columns!();

pub(crate) fn checkout_insert(c: &CheckoutRecord) -> StoreResult<Step> {
    Ok(Step::new(
        concat!(
            "insert into checkouts (",
            checkout_columns!(),
            ") values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13)"
        ),
        args![
            &c.id,
            &c.shopper_id,
            &c.merchant_id,
            &c.post_id,
            serde_json::to_string(&c.lines).map_err(json_err)?,
            c.currency.code(),
            c.status.as_str(),
            c.attempt,
            &c.order_id,
            c.created_at,
            c.expires_at,
            i64::from(c.from_cart),
            // funnel (issue 15): the experiment arm of a checkout from a post.
            c.arm.map(|a| a.as_str()),
        ],
    ))
}

/// The statements that reserve `lines` for a checkout, [`per_line`] of them per line: a
/// conditional decrement (`FailUnlessOne`: the whole guard against overselling, it cannot
/// take stock that is not there, whatever runs beside it) and the reservation row.
///
/// On PostgreSQL both are one statement, and a variant of infinite stock is not written at
/// all: an update there would lock its row until the commit, and every purchase of a
/// best-seller would queue behind the one before it. SQLite has one writer anyway.
fn reservation_steps(backend: Backend, checkout_id: &str, lines: &[(String, i64)], expires_at: i64) -> Vec<Step> {
    let mut steps = Vec::with_capacity(lines.len() * per_line(backend));
    for (variant_id, qty) in lines {
        let args = args![checkout_id, variant_id, *qty, expires_at, ReservationState::Held.as_str()];
        match backend {
            Backend::Postgres => steps.push(
                Step::new(
                    "with taken as (update variants set quantity = quantity - $3 \
                       where id = $2 and inventory_type = 'finite' and quantity >= $3 returning id) \
                     insert into reservations (checkout_id, attempt, variant_id, quantity, state, expires_at) \
                     select $1, (select attempt from checkouts where id = $1), $2, $3, $5, $4 \
                     where exists (select 1 from taken) \
                        or exists (select 1 from variants where id = $2 and inventory_type = 'infinite')",
                    args,
                )
                .check(Check::FailUnlessOne),
            ),
            Backend::Sqlite => {
                // Infinite stock has a null quantity, which the decrement leaves null.
                steps.push(
                    Step::new(
                        "update variants set quantity = quantity - $3 \
                         where id = $2 and (inventory_type = 'infinite' or quantity >= $3)",
                        args.clone(),
                    )
                    .check(Check::FailUnlessOne),
                );
                steps.push(Step::new(
                    "insert into reservations (checkout_id, attempt, variant_id, quantity, state, expires_at) \
                     values ($1, (select attempt from checkouts where id = $1), $2, $3, $5, $4)",
                    args,
                ));
            }
        }
    }
    steps
}

/// PostgreSQL, a checkout of one line: its stock, the checkout and the vault opens' audit
/// rows in one statement (data-modifying CTEs), which writes the checkout and its
/// reservation if the stock was there and `seen` is current, and the audit rows either way.
/// It answers one row: how many reservations it wrote (1 or 0) and whether `seen` was
/// current, which tells a shortage from a changed catalogue.
///
/// One statement, not a transaction of several, because the variant's row stays locked from
/// the decrement to the commit, and every buyer of that variant waits for it. Inside one
/// statement in its own transaction that is PostgreSQL's own time; across a transaction it
/// also includes the client's round trips for the statements after it and the commit, each
/// behind whatever else the server's runtime has to do. In a flash sale (a thousand buyers
/// in flight) that made each hold milliseconds long, and the sale as slow as its holds in a
/// row.
pub(crate) fn reserved_checkout_statement(
    c: &CheckoutRecord,
    variant: &str,
    qty: i64,
    expires_at: i64,
    audits: &[buyline_core::saved::VaultAudit],
    seen: &CatalogSeen,
) -> StoreResult<Step> {
    let mut args = args![variant, qty, expires_at, ReservationState::Held.as_str()];
    let current = seen_current(seen, &mut args);
    let checkout = checkout_insert_where(c, &mut args, |_| "exists (select 1 from ok)".into())?;
    let mut sql = format!(
        "with taken as (update variants set quantity = quantity - $2 \
           where id = $1 and inventory_type = 'finite' and quantity >= $2 and {current} returning id), \
         ok as (select 1 where exists (select 1 from taken) \
           or exists (select 1 from variants where id = $1 and inventory_type = 'infinite' and {current})), \
         chk as ({checkout} returning id, attempt)"
    );
    if let Some(audit) = crate::vault::audit_step(audits) {
        let (columns, rows) = audit.sql.split_once(" values ").expect("an insert with values");
        sql.push_str(&format!(", aud as ({columns} values {})", crate::write::shift_placeholders(rows, args.len())));
        args.extend(audit.args);
    }
    sql.push_str(&format!(
        ", res as (insert into reservations (checkout_id, attempt, variant_id, quantity, state, expires_at) \
           select chk.id, chk.attempt, $1, $2, $4, $3 from chk returning 1) \
         select (select count(*) from res) as reserved, {current} as current"
    ));
    Ok(Step::new(sql, args))
}

/// [`checkout_insert`] as an `insert … select` that writes the row only where a condition
/// holds: its arguments go on the end of `args` (those of the statement it is part of),
/// then `condition` adds its own and gives its text.
fn checkout_insert_where(
    c: &CheckoutRecord,
    args: &mut Vec<crate::write::Arg>,
    condition: impl FnOnce(&mut Vec<crate::write::Arg>) -> String,
) -> StoreResult<String> {
    let insert = checkout_insert(c)?;
    let (columns, values) = insert.sql.split_once(" values (").expect("an insert with values");
    let values = crate::write::shift_placeholders(values.strip_suffix(')').expect("values in parentheses"), args.len());
    args.extend(insert.args);
    Ok(format!("{columns} select {values} where {}", condition(args)))
}

/// A condition that holds while every version in `seen` is current, its arguments appended
/// to `args`.
pub(crate) fn seen_current(seen: &CatalogSeen, args: &mut Vec<crate::write::Arg>) -> String {
    let mut terms = Vec::with_capacity(1 + seen.products.len());
    let mut term = |table: &str, id: &str, version: i64, args: &mut Vec<crate::write::Arg>| {
        args.extend(args![id, version]);
        terms.push(format!("(select version from {table} where id = ${}) = ${}", args.len() - 1, args.len()));
    };
    term("merchants", &seen.merchant.0, seen.merchant.1, args);
    for (id, version) in &seen.products {
        term("products", id, *version, args);
    }
    format!("({})", terms.join(" and "))
}

/// How many statements [`reservation_steps`] writes per line.
fn per_line(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 1,
        Backend::Sqlite => 2,
    }
}

/// A reservation job's outcome: `Err(variant)` for the line that was short.
fn reserved(backend: Backend, out: Outcome, skip: usize, lines: &[(String, i64)]) -> StoreResult<Result<(), String>> {
    match out {
        Outcome::Done { .. } => Ok(Ok(())),
        Outcome::Failed { at } if at >= skip => Ok(Err(lines[(at - skip) / per_line(backend)].0.clone())),
        other => Err(StoreError::Other(format!("reserving stock: unexpected {other:?}"))),
    }
}

fn checkout_row(r: &AnyRow) -> StoreResult<CheckoutRecord> {
    let lines: String = r.try_get("lines").map_err(other)?;
    let currency: String = r.try_get("currency").map_err(other)?;
    let status: String = r.try_get("status").map_err(other)?;
    Ok(CheckoutRecord {
        id: r.try_get("id").map_err(other)?,
        shopper_id: r.try_get("shopper_id").map_err(other)?,
        merchant_id: r.try_get("merchant_id").map_err(other)?,
        post_id: r.try_get("post_id").map_err(other)?,
        lines: serde_json::from_str(&lines).map_err(json_err)?,
        currency: Currency::parse(&currency).ok_or_else(|| StoreError::Other(format!("currency {currency}")))?,
        status: CheckoutStatus::parse(&status).ok_or_else(|| StoreError::Other(format!("checkout status {status}")))?,
        attempt: r.try_get("attempt").map_err(other)?,
        order_id: r.try_get("order_id").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
        expires_at: r.try_get("expires_at").map_err(other)?,
        from_cart: r.try_get::<i64, _>("from_cart").map_err(other)? != 0,
        // funnel (issue 15)
        arm: r.try_get::<Option<String>, _>("arm").map_err(other)?.as_deref().and_then(Arm::parse),
    })
}

/// Reservations held past their expiry, by their checkouts (one row per variant: the caller
/// drops repeats, so the planner need not sort for `distinct` and reads the index alone).
/// The state is a literal, as in the definition of the partial index `reservations_held`,
/// so the planner can use it.
pub(crate) const EXPIRED_RESERVATIONS: &str =
    "select checkout_id from reservations where state = 'held' and expires_at < $1 limit 500";

/// Checkouts left completing (their request died). The state is a literal, as in the
/// definition of the partial index `checkouts_completing`.
pub(crate) const STUCK_CHECKOUTS: &str =
    "select id from checkouts where status = 'completing' and updated_at < $1 limit 500";

#[async_trait]
impl CheckoutStore for Db {
    async fn insert_checkout(&self, c: &CheckoutRecord) -> StoreResult<()> {
        self.run(Job::from(vec![checkout_insert(c)?])).await?;
        Ok(())
    }

    async fn insert_checkout_reserved(
        &self,
        c: &CheckoutRecord,
        lines: &[(String, i64)],
        expires_at: i64,
        audits: &[buyline_core::saved::VaultAudit],
        seen: &CatalogSeen,
    ) -> StoreResult<Result<(), NotReserved>> {
        if let (Some(batch), [(variant, qty)]) = (&self.reservations, lines) {
            // PostgreSQL: with the other buyers of its variant waiting beside it, in one
            // statement (`reserve_batch.rs`), committed without waiting for the flush (a
            // synced write follows, as below).
            let want = crate::reserve_batch::Want {
                checkout: c.clone(),
                variant: variant.clone(),
                qty: *qty,
                expires_at,
                audits: audits.to_vec(),
                seen: seen.clone(),
            };
            // (A refusal is made durable before it is answered: `reserve_batch::run_group`.)
            return batch.reserve(want).await;
        }
        let mut job = Job::new();
        job.extend(crate::vault::audit_step(audits));
        // The checkout is written only while the catalogue it was priced from is current.
        let mut args = Vec::new();
        let checkout = checkout_insert_where(c, &mut args, |args| seen_current(seen, args))?;
        job.push(Step::new(checkout, args).check(Check::FailUnlessOne));
        let skip = job.steps.len();
        job.extend(reservation_steps(self.backend, &c.id, lines, expires_at));
        // Its answer need not wait for the disk: the purchase goes on to the order's commit,
        // synced, before anything leaves the server; a shortage writes the audit rows alone,
        // synced, below.
        let out = match self.run(job.before_a_synced_write()).await? {
            // The catalogue changed since it was read.
            Outcome::Failed { at } if at + 1 == skip => Err(NotReserved::Changed),
            out => reserved(self.backend, out, skip, lines)?.map_err(NotReserved::Short),
        };
        if out.is_err() {
            // Not reserved: the job was undone, its audit rows with it; they are written alone.
            if let Some(audit) = crate::vault::audit_step(audits) {
                self.run(Job::from(vec![audit])).await?;
            }
        }
        Ok(out)
    }

    async fn find_checkout(&self, id: &str) -> StoreResult<Option<CheckoutRecord>> {
        let row = sqlx::query("select * from checkouts where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(other)?;
        row.as_ref().map(checkout_row).transpose()
    }

    async fn claim_checkout(&self, id: &str, shopper_id: &str, now: i64) -> StoreResult<Option<i64>> {
        let r = self
            .run(Job::from(vec![Step::new(
                "update checkouts set status = $4, attempt = attempt + 1, updated_at = $1 \
                 where id = $2 and shopper_id = $3 and status = $5 and expires_at > $1",
                args![now, id, shopper_id, CheckoutStatus::Completing.as_str(), CheckoutStatus::Open.as_str()],
            )
            .check(Check::FailUnlessOne)]))
            .await?;
        if !r.done() {
            return Ok(None);
        }
        let row = sqlx::query("select attempt from checkouts where id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(other)?;
        Ok(Some(row.try_get("attempt").map_err(other)?))
    }

    async fn set_checkout_status(
        &self,
        id: &str,
        from: CheckoutStatus,
        to: CheckoutStatus,
        now: i64,
    ) -> StoreResult<bool> {
        let r = self
            .run(Job::from(vec![Step::new(
                "update checkouts set status = $1, updated_at = $2 where id = $3 and status = $4",
                args![to.as_str(), now, id, from.as_str()],
            )
            .check(Check::FailUnlessOne)]))
            .await?;
        Ok(r.done())
    }

    async fn reserve_stock(
        &self,
        checkout_id: &str,
        lines: &[(String, i64)],
        expires_at: i64,
    ) -> StoreResult<Result<(), String>> {
        let job = Job::from(reservation_steps(self.backend, checkout_id, lines, expires_at));
        reserved(self.backend, self.run(job).await?, 0, lines)
    }

    async fn release_reservation(&self, checkout_id: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let held =
            sqlx::query("select attempt, variant_id, quantity from reservations where checkout_id = $1 and state = $2")
                .bind(checkout_id)
                .bind(ReservationState::Held.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(other)?;
        for r in &held {
            let attempt: i64 = r.try_get("attempt").map_err(other)?;
            let variant: String = r.try_get("variant_id").map_err(other)?;
            let qty: i64 = r.try_get("quantity").map_err(other)?;
            let moved = sqlx::query(
                "update reservations set state = $4 where checkout_id = $1 and attempt = $2 and variant_id = $3 \
                 and state = $5",
            )
            .bind(checkout_id)
            .bind(attempt)
            .bind(&variant)
            .bind(ReservationState::Released.as_str())
            .bind(ReservationState::Held.as_str())
            .execute(&mut *tx)
            .await
            .map_err(other)?;
            if moved.rows_affected() == 1 {
                sqlx::query("update variants set quantity = quantity + $1 where id = $2 and inventory_type = 'finite'")
                    .bind(qty)
                    .bind(&variant)
                    .execute(&mut *tx)
                    .await
                    .map_err(other)?;
            }
        }
        tx.commit().await.map_err(other)
    }

    async fn commit_order(
        &self,
        o: &Order,
        from_cart: bool,
        receipt: Option<&Receipt>,
        event: Option<&NewEvent>,
        now: i64,
        hold_until: i64,
    ) -> StoreResult<()> {
        let mut job = Job::new();
        job.push(Step::new(
            "insert into orders (id, checkout_id, shopper_id, merchant_id, status, currency, subtotal, shipping_amount, tax, \
             total, platform_fee, fee_bps, lines, shipping_address, shipping, fulfillment, payment_id, card_brand, card_last4, \
             challenge_url, post_id, contact_email, created_at, updated_at, receipt_in_place) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23, \
             $24)",
            args![
                &o.id,
                &o.checkout_id,
                &o.shopper_id,
                &o.merchant_id,
                o.status.as_str(),
                o.totals.currency.code(),
                o.totals.subtotal,
                o.totals.shipping,
                o.totals.tax,
                o.totals.total,
                o.platform_fee,
                o.fee_bps as i64,
                serde_json::to_string(&o.lines).map_err(json_err)?,
                o.shipping_address.as_ref().map(serde_json::to_string).transpose().map_err(json_err)?,
                o.shipping.as_ref().map(serde_json::to_string).transpose().map_err(json_err)?,
                serde_json::to_string(&o.fulfillment).map_err(json_err)?,
                &o.payment_id,
                &o.payment.brand,
                &o.payment.last4,
                &o.challenge_url,
                &o.post_id,
                &o.contact_email,
                o.created_at,
                // The shopper's in-app receipt is this order (see `find_notifications_page`).
                receipt.is_some_and(|r| r.in_order && r.order_id.as_deref() == Some(o.id.as_str())) as i64,
            ],
        ));
        if o.status == OrderStatus::RequiresAction {
            // Stock stays held while the shopper passes the card check.
            job.push(Step::new(
                "update reservations set expires_at = $1 where checkout_id = $2 and state = $3",
                args![hold_until, &o.checkout_id, ReservationState::Held.as_str()],
            ));
        } else {
            job.push(Step::new(
                "update reservations set state = $2 where checkout_id = $1 and state = $3",
                args![&o.checkout_id, ReservationState::Consumed.as_str(), ReservationState::Held.as_str()],
            ));
        }
        let completed = job.steps.len();
        job.push(
            Step::new(
                "update checkouts set status = $4, order_id = $1, updated_at = $2 where id = $3 and status = $5",
                args![
                    &o.id,
                    now,
                    &o.checkout_id,
                    CheckoutStatus::Completed.as_str(),
                    CheckoutStatus::Completing.as_str()
                ],
            )
            .check(Check::FailUnlessOne),
        );
        if from_cart {
            // Bought from the cart: those items leave it with the order.
            job.push(Step::new("delete from cart_items where checkout_id = $1", args![&o.checkout_id]));
        }
        job.extend(receipt_steps(receipt.as_slice(), now));
        job.extend(event_steps(event.as_slice()));
        // Plain inserts and updates of rows no other step writes: one round trip on PostgreSQL.
        job.as_one_statement();
        match self.run(job).await? {
            Outcome::Done { .. } => Ok(()),
            Outcome::Failed { at } if at == completed => {
                Err(StoreError::Other(format!("checkout {} was not completing", o.checkout_id)))
            }
            other => Err(StoreError::Other(format!("committing an order: unexpected {other:?}"))),
        }
    }

    async fn consume_reservation(&self, checkout_id: &str) -> StoreResult<()> {
        self.run(Job::from(vec![Step::new(
            "update reservations set state = $2 where checkout_id = $1 and state = $3",
            args![checkout_id, ReservationState::Consumed.as_str(), ReservationState::Held.as_str()],
        )]))
        .await?;
        Ok(())
    }

    async fn find_expired_reservations(&self, now: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(EXPIRED_RESERVATIONS).bind(now).fetch_all(&self.pool).await.map_err(other)?;
        let mut seen = std::collections::HashSet::new();
        let mut ids = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("checkout_id").map_err(other)?;
            if seen.insert(id.clone()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    async fn find_stuck_checkouts(&self, before: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(STUCK_CHECKOUTS).bind(before).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter().map(|r| r.try_get("id").map_err(other)).collect()
    }
}
