//! Orders, their status moves and refunds on SQL.

use crate::ledger::post_ledger;
use crate::outbox::insert_receipt_and_event;
use crate::{json_err, other, Db};
use async_trait::async_trait;
use buyline_core::checkout::{Address, Posting, Totals};
use buyline_core::error::StoreError;
use buyline_core::order::{
    Fulfillment, NewEvent, Order, OrderLine, OrderStatus, PaymentSummary, Receipt, RefundRecord, RefundStatus,
    ShippingChoice,
};
use buyline_core::store::{Before, OrderStore, StoreResult};
use buyline_core::types::Currency;
use sqlx::any::AnyRow;
use sqlx::Row;

const ORDER_SELECT: &str = "select * from orders";

fn order_row(r: &AnyRow) -> StoreResult<Order> {
    let status: String = r.try_get("status").map_err(other)?;
    let currency: String = r.try_get("currency").map_err(other)?;
    let lines: String = r.try_get("lines").map_err(other)?;
    let address: Option<String> = r.try_get("shipping_address").map_err(other)?;
    let shipping: Option<String> = r.try_get("shipping").map_err(other)?;
    let fulfillment: String = r.try_get("fulfillment").map_err(other)?;
    let captured_at: Option<i64> = r.try_get("captured_at").map_err(other)?;
    let fee_bps: i64 = r.try_get("fee_bps").map_err(other)?;
    Ok(Order {
        id: r.try_get("id").map_err(other)?,
        status: OrderStatus::parse(&status).ok_or_else(|| StoreError::Other(format!("order status {status}")))?,
        merchant_id: r.try_get("merchant_id").map_err(other)?,
        shopper_id: r.try_get("shopper_id").map_err(other)?,
        checkout_id: r.try_get("checkout_id").map_err(other)?,
        lines: serde_json::from_str::<Vec<OrderLine>>(&lines).map_err(json_err)?,
        shipping_address: address.map(|a| serde_json::from_str::<Address>(&a)).transpose().map_err(json_err)?,
        shipping: shipping.map(|a| serde_json::from_str::<ShippingChoice>(&a)).transpose().map_err(json_err)?,
        totals: Totals {
            subtotal: r.try_get("subtotal").map_err(other)?,
            shipping: r.try_get("shipping_amount").map_err(other)?,
            tax: r.try_get("tax").map_err(other)?,
            total: r.try_get("total").map_err(other)?,
            currency: Currency::parse(&currency).ok_or_else(|| StoreError::Other(format!("currency {currency}")))?,
        },
        platform_fee: r.try_get("platform_fee").map_err(other)?,
        fee_bps: fee_bps as u32,
        fulfillment: serde_json::from_str::<Fulfillment>(&fulfillment).map_err(json_err)?,
        payment: PaymentSummary {
            brand: r.try_get("card_brand").map_err(other)?,
            last4: r.try_get("card_last4").map_err(other)?,
        },
        payment_id: r.try_get("payment_id").map_err(other)?,
        challenge_url: r.try_get("challenge_url").map_err(other)?,
        post_id: r.try_get("post_id").map_err(other)?,
        contact_email: r.try_get("contact_email").map_err(other)?,
        captured: captured_at.is_some(),
        acknowledged: r.try_get::<Option<i64>, _>("acknowledged_at").map_err(other)?.is_some(),
        refunded_amount: r.try_get("refunded_amount").map_err(other)?,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

fn refund_row(r: &AnyRow) -> StoreResult<RefundRecord> {
    let cancel: i64 = r.try_get("cancel").map_err(other)?;
    Ok(RefundRecord {
        id: r.try_get("id").map_err(other)?,
        order_id: r.try_get("order_id").map_err(other)?,
        amount: r.try_get("amount").map_err(other)?,
        fee_back: r.try_get("fee_back").map_err(other)?,
        reason: r.try_get("reason").map_err(other)?,
        cancel: cancel != 0,
        created_at: r.try_get("created_at").map_err(other)?,
    })
}

/// Paid orders whose capture did not finish, oldest first. The states are literals, as in
/// the definition of the partial index `orders_uncaptured`, so the planner can use it.
pub(crate) const UNCAPTURED_ORDERS: &str = "select id from orders where status = 'paid' and captured_at is null \
     and updated_at < $1 order by created_at limit 500";

/// Orders left waiting on a 3-D Secure challenge since before `$1` (the partial index
/// `orders_awaiting_challenge`; the state is a literal, as in its definition).
pub(crate) const STALE_REQUIRES_ACTION: &str =
    "select id from orders where status = 'requires_action' and created_at < $1 limit 500";

#[async_trait]
impl OrderStore for Db {
    async fn find_order(&self, id: &str) -> StoreResult<Option<Order>> {
        let sql = format!("{ORDER_SELECT} where id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(order_row).transpose()
    }

    async fn find_order_by_checkout(&self, checkout_id: &str) -> StoreResult<Option<Order>> {
        let sql = format!("{ORDER_SELECT} where checkout_id = $1");
        let row = sqlx::query(&sql).bind(checkout_id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(order_row).transpose()
    }

    async fn find_order_by_payment(&self, payment_id: &str) -> StoreResult<Option<Order>> {
        let sql = format!("{ORDER_SELECT} where payment_id = $1");
        let row = sqlx::query(&sql).bind(payment_id).fetch_optional(&self.pool).await.map_err(other)?;
        row.as_ref().map(order_row).transpose()
    }

    async fn find_orders_by_shopper(
        &self,
        shopper_id: &str,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        let rows = match before {
            Some((ts, id)) => {
                let sql = format!(
                    "{ORDER_SELECT} where shopper_id = $1 and (created_at < $2 or (created_at = $2 and id < $3)) \
                     order by created_at desc, id desc limit $4"
                );
                sqlx::query(&sql).bind(shopper_id).bind(ts).bind(id).bind(limit).fetch_all(&self.pool).await
            }
            None => {
                let sql = format!("{ORDER_SELECT} where shopper_id = $1 order by created_at desc, id desc limit $2");
                sqlx::query(&sql).bind(shopper_id).bind(limit).fetch_all(&self.pool).await
            }
        }
        .map_err(other)?;
        rows.iter().map(order_row).collect()
    }

    async fn update_order_status(
        &self,
        id: &str,
        from: OrderStatus,
        to: OrderStatus,
        receipt: Option<&Receipt>,
        event: Option<&NewEvent>,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("update orders set status = $1, updated_at = $2 where id = $3 and status = $4")
            .bind(to.as_str())
            .bind(now)
            .bind(id)
            .bind(from.as_str())
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        insert_receipt_and_event(&mut tx, receipt, event, now).await?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn find_uncaptured_orders(&self, before: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(UNCAPTURED_ORDERS).bind(before).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter().map(|r| r.try_get("id").map_err(other)).collect()
    }

    async fn find_stale_requires_action(&self, before: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(STALE_REQUIRES_ACTION).bind(before).fetch_all(&self.pool).await.map_err(other)?;
        rows.iter().map(|r| r.try_get("id").map_err(other)).collect()
    }

    async fn find_orders_by_merchant(
        &self,
        merchant_id: &str,
        status: Option<OrderStatus>,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Order>> {
        let (ts, id) = before.unwrap_or((i64::MAX, "\u{10FFFF}"));
        let rows = sqlx::query(
            "select * from orders where merchant_id = $1 and ($2 = '' or status = $2) \
             and (created_at < $3 or (created_at = $3 and id < $4)) and status <> $6 \
             order by created_at desc, id desc limit $5",
        )
        .bind(merchant_id)
        .bind(status.map(OrderStatus::as_str).unwrap_or(""))
        .bind(ts)
        .bind(id)
        .bind(limit)
        .bind(OrderStatus::RequiresAction.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(other)?;
        rows.iter().map(order_row).collect()
    }

    async fn acknowledge_order(&self, id: &str, merchant_id: &str, now: i64) -> StoreResult<bool> {
        let r = self
            .execute_write(
                sqlx::query(
                    "update orders set acknowledged_at = coalesce(acknowledged_at, $1), updated_at = $1 \
             where id = $2 and merchant_id = $3 and status <> $4",
                )
                .bind(now)
                .bind(id)
                .bind(merchant_id)
                .bind(OrderStatus::RequiresAction.as_str()),
            )
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn fulfill_order(&self, id: &str, f: &Fulfillment, receipt: Option<&Receipt>, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // A partly refunded order still ships the rest: it keeps its status (the refund
        // stays on record) and gains its tracking, once — `$4` is the unshipped fulfilment.
        let unshipped = Fulfillment { carrier: None, tracking_number: None };
        let r = sqlx::query(
            "update orders set status = case when status = $5 then $6 else status end, \
             fulfillment = $1, updated_at = $2 \
             where id = $3 and (status = $5 or (status = $7 and fulfillment = $4))",
        )
        .bind(serde_json::to_string(f).map_err(json_err)?)
        .bind(now)
        .bind(id)
        .bind(serde_json::to_string(&unshipped).map_err(json_err)?)
        .bind(OrderStatus::Paid.as_str())
        .bind(OrderStatus::Fulfilled.as_str())
        .bind(OrderStatus::PartiallyRefunded.as_str())
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        insert_receipt_and_event(&mut tx, receipt, None, now).await?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn begin_refund(&self, r: &RefundRecord, allowed_from: &[OrderStatus]) -> StoreResult<bool> {
        // Typed statuses: only our own fixed words reach the SQL text.
        let statuses = allowed_from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let mut tx = self.begin().await?;
        // The amount is taken from the order in the same statement that checks it, so two
        // refunds at once can never together exceed the total.
        let sql = format!(
            "update orders set refunded_amount = refunded_amount + $1, updated_at = $2 \
             where id = $3 and refunded_amount + $1 <= total and status in ({statuses})"
        );
        let moved = sqlx::query(&sql)
            .bind(r.amount)
            .bind(r.created_at)
            .bind(&r.order_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        if moved.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        sqlx::query(
            "insert into refunds (id, order_id, amount, fee_back, reason, cancel, status, created_at) \
             values ($1, $2, $3, $4, $5, $6, $8, $7)",
        )
        .bind(&r.id)
        .bind(&r.order_id)
        .bind(r.amount)
        .bind(r.fee_back)
        .bind(&r.reason)
        .bind(r.cancel as i64)
        .bind(r.created_at)
        .bind(RefundStatus::Pending.as_str())
        .execute(&mut *tx)
        .await
        .map_err(other)?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn complete_refund(
        &self,
        r: &RefundRecord,
        new_status: OrderStatus,
        currency: &str,
        postings: &[Posting],
        event: Option<&NewEvent>,
        receipt: Option<&Receipt>,
        restock: &[(String, i64)],
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("update refunds set status = $3, completed_at = $1 where id = $2 and status = $4")
            .bind(now)
            .bind(&r.id)
            .bind(RefundStatus::Succeeded.as_str())
            .bind(RefundStatus::Pending.as_str())
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        if done.rows_affected() != 1 {
            tx.rollback().await.map_err(other)?;
            return Ok(false);
        }
        sqlx::query("update orders set status = $1, updated_at = $2 where id = $3")
            .bind(new_status.as_str())
            .bind(now)
            .bind(&r.order_id)
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        post_ledger(&mut tx, &r.order_id, currency, postings, now).await?;
        for (variant, qty) in restock {
            sqlx::query("update variants set quantity = quantity + $1 where id = $2 and inventory_type = 'finite'")
                .bind(*qty)
                .bind(variant)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        insert_receipt_and_event(&mut tx, receipt, event, now).await?;
        tx.commit().await.map_err(other)?;
        Ok(true)
    }

    async fn fail_refund(&self, r: &RefundRecord, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("update refunds set status = $3, completed_at = $1 where id = $2 and status = $4")
            .bind(now)
            .bind(&r.id)
            .bind(RefundStatus::Failed.as_str())
            .bind(RefundStatus::Pending.as_str())
            .execute(&mut *tx)
            .await
            .map_err(other)?;
        if done.rows_affected() == 1 {
            sqlx::query("update orders set refunded_amount = refunded_amount - $1 where id = $2")
                .bind(r.amount)
                .bind(&r.order_id)
                .execute(&mut *tx)
                .await
                .map_err(other)?;
        }
        tx.commit().await.map_err(other)
    }

    async fn find_pending_refunds(&self, before: i64) -> StoreResult<Vec<RefundRecord>> {
        let rows =
            sqlx::query("select * from refunds where status = $2 and created_at < $1 order by created_at limit 200")
                .bind(before)
                .bind(RefundStatus::Pending.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(other)?;
        rows.iter().map(refund_row).collect()
    }

    async fn find_refund_total_fee_back(&self, order_id: &str) -> StoreResult<i64> {
        let r = sqlx::query(
            "select cast(coalesce(sum(fee_back), 0) as bigint) as n from refunds \
             where order_id = $1 and status in ($2, $3)",
        )
        .bind(order_id)
        .bind(RefundStatus::Pending.as_str())
        .bind(RefundStatus::Succeeded.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(other)?;
        r.try_get("n").map_err(other)
    }
}
