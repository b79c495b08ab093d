//! Checkouts, stock reservations and the order commit on SQL.

use crate::outbox::insert_receipt_and_event;
use crate::{json_err, other, AnyQuery, Db};
use async_trait::async_trait;
use buyline_core::error::StoreError;
use buyline_core::order::{CheckoutRecord, CheckoutStatus, NewEvent, Order, OrderStatus, Receipt, ReservationState};
use buyline_core::rollout::Arm;
use buyline_core::store::{CheckoutStore, StoreResult};
use buyline_core::types::Currency;
use sqlx::any::AnyRow;
use sqlx::Row;

pub(crate) fn checkout_insert(c: &CheckoutRecord) -> StoreResult<AnyQuery<'_>> {
    Ok(sqlx::query(
        "insert into checkouts (id, shopper_id, merchant_id, post_id, lines, currency, status, attempt, order_id, \
         created_at, updated_at, expires_at, from_cart, arm) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13)",
    )
    .bind(&c.id)
    .bind(&c.shopper_id)
    .bind(&c.merchant_id)
    .bind(&c.post_id)
    .bind(serde_json::to_string(&c.lines).map_err(json_err)?)
    .bind(c.currency.code())
    .bind(c.status.as_str())
    .bind(c.attempt)
    .bind(&c.order_id)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(i64::from(c.from_cart))
    // funnel (issue 15): the experiment arm of a checkout from a post.
    .bind(c.arm.map(|a| a.as_str())))
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

#[async_trait]
impl CheckoutStore for Db {
    async fn insert_checkout(&self, c: &CheckoutRecord) -> StoreResult<()> {
        self.execute_grouped(checkout_insert(c)?).await?;
        Ok(())
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
            .execute_grouped(
                sqlx::query(
                    "update checkouts set status = $4, attempt = attempt + 1, updated_at = $1 \
             where id = $2 and shopper_id = $3 and status = $5 and expires_at > $1",
                )
                .bind(now)
                .bind(id)
                .bind(shopper_id)
                .bind(CheckoutStatus::Completing.as_str())
                .bind(CheckoutStatus::Open.as_str()),
            )
            .await?;
        if r.rows_affected() != 1 {
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
            .execute_grouped(
                sqlx::query("update checkouts set status = $1, updated_at = $2 where id = $3 and status = $4")
                    .bind(to.as_str())
                    .bind(now)
                    .bind(id)
                    .bind(from.as_str()),
            )
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn reserve_stock(
        &self,
        checkout_id: &str,
        lines: &[(String, i64)],
        expires_at: i64,
    ) -> StoreResult<Result<(), String>> {
        let mut tx = self.begin_grouped().await?;
        for (variant_id, qty) in lines {
            // The conditional decrement is the whole guard against overselling: it cannot take
            // stock that is not there, whatever runs beside it.
            // Infinite stock has a null quantity, which the decrement leaves null.
            let r = sqlx::query(
                "update variants set quantity = quantity - $1 \
                 where id = $2 and (inventory_type = 'infinite' or quantity >= $1)",
            )
            .bind(*qty)
            .bind(variant_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
            if r.rows_affected() != 1 {
                tx.rollback().await.map_err(other)?;
                return Ok(Err(variant_id.clone()));
            }
            sqlx::query(
                "insert into reservations (checkout_id, attempt, variant_id, quantity, state, expires_at) \
                 values ($1, (select attempt from checkouts where id = $1), $2, $3, $5, $4)",
            )
            .bind(checkout_id)
            .bind(variant_id)
            .bind(*qty)
            .bind(expires_at)
            .bind(ReservationState::Held.as_str())
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        }
        tx.commit().await.map_err(other)?;
        Ok(Ok(()))
    }

    async fn release_reservation(&self, checkout_id: &str) -> StoreResult<()> {
        let mut tx = self.begin_grouped().await?;
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
        let mut tx = self.begin_grouped().await?;
        sqlx::query(
            "insert into orders (id, checkout_id, shopper_id, merchant_id, status, currency, subtotal, shipping_amount, tax, \
             total, platform_fee, fee_bps, lines, shipping_address, shipping, fulfillment, payment_id, card_brand, card_last4, \
             challenge_url, post_id, contact_email, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23)",
        )
        .bind(&o.id)
        .bind(&o.checkout_id)
        .bind(&o.shopper_id)
        .bind(&o.merchant_id)
        .bind(o.status.as_str())
        .bind(o.totals.currency.code())
        .bind(o.totals.subtotal)
        .bind(o.totals.shipping)
        .bind(o.totals.tax)
        .bind(o.totals.total)
        .bind(o.platform_fee)
        .bind(o.fee_bps as i64)
        .bind(serde_json::to_string(&o.lines).map_err(json_err)?)
        .bind(o.shipping_address.as_ref().map(serde_json::to_string).transpose().map_err(json_err)?)
        .bind(o.shipping.as_ref().map(serde_json::to_string).transpose().map_err(json_err)?)
        .bind(serde_json::to_string(&o.fulfillment).map_err(json_err)?)
        .bind(&o.payment_id)
        .bind(&o.payment.brand)
        .bind(&o.payment.last4)
        .bind(&o.challenge_url)
        .bind(&o.post_id)
        .bind(&o.contact_email)
        .bind(o.created_at)
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if o.status == OrderStatus::RequiresAction {
            // Stock stays held while the shopper passes the card check.
            sqlx::query("update reservations set expires_at = $1 where checkout_id = $2 and state = $3")
                .bind(hold_until)
                .bind(&o.checkout_id)
                .bind(ReservationState::Held.as_str())
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        } else {
            sqlx::query("update reservations set state = $2 where checkout_id = $1 and state = $3")
                .bind(&o.checkout_id)
                .bind(ReservationState::Consumed.as_str())
                .bind(ReservationState::Held.as_str())
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        let done = sqlx::query(
            "update checkouts set status = $4, order_id = $1, updated_at = $2 where id = $3 and status = $5",
        )
        .bind(&o.id)
        .bind(now)
        .bind(&o.checkout_id)
        .bind(CheckoutStatus::Completed.as_str())
        .bind(CheckoutStatus::Completing.as_str())
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if done.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Err(StoreError::Other(format!("checkout {} was not completing", o.checkout_id)));
        }
        if from_cart {
            // Bought from the cart: those items leave it with the order.
            sqlx::query("delete from cart_items where checkout_id = $1")
                .bind(&o.checkout_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        insert_receipt_and_event(&mut tx, receipt, event, now).await?;
        tx.commit().await.map_err(other)
    }

    async fn consume_reservation(&self, checkout_id: &str) -> StoreResult<()> {
        self.execute_grouped(
            sqlx::query("update reservations set state = $2 where checkout_id = $1 and state = $3")
                .bind(checkout_id)
                .bind(ReservationState::Consumed.as_str())
                .bind(ReservationState::Held.as_str()),
        )
        .await?;
        Ok(())
    }

    async fn find_expired_reservations(&self, now: i64) -> StoreResult<Vec<String>> {
        let rows =
            sqlx::query("select distinct checkout_id from reservations where state = $2 and expires_at < $1 limit 500")
                .bind(now)
                .bind(ReservationState::Held.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(other)?;
        rows.iter().map(|r| r.try_get("checkout_id").map_err(other)).collect()
    }

    async fn find_stuck_checkouts(&self, before: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("select id from checkouts where status = $2 and updated_at < $1 limit 500")
            .bind(before)
            .bind(CheckoutStatus::Completing.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(other)?;
        rows.iter().map(|r| r.try_get("id").map_err(other)).collect()
    }
}
