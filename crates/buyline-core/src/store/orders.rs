//! Orders after they are placed: lookups, status moves, the merchant's acknowledge and fulfil,
//! refunds (reserve, complete, fail); the reconciler's questions about orders.

use super::{Before, StoreResult};
use crate::checkout::Posting;
use crate::order::{NewEvent, Order, OrderStatus, Receipt, RefundRecord};
use async_trait::async_trait;

/// Orders, their status and refunds.
#[async_trait]
pub trait OrderStore: Send + Sync {
    async fn find_order(&self, id: &str) -> StoreResult<Option<Order>>;

    async fn find_order_by_checkout(&self, checkout_id: &str) -> StoreResult<Option<Order>>;

    async fn find_order_by_payment(&self, payment_id: &str) -> StoreResult<Option<Order>>;

    async fn find_orders_by_shopper(&self, shopper_id: &str, before: Before<'_>, limit: i64)
        -> StoreResult<Vec<Order>>;

    /// Moves the order from `from` to `to` (true if it moved), with an optional receipt.
    async fn update_order_status(
        &self,
        id: &str,
        from: OrderStatus,
        to: OrderStatus,
        receipt: Option<&Receipt>,
        event: Option<&NewEvent>,
        now: i64,
    ) -> StoreResult<bool>;

    async fn find_orders_by_merchant(
        &self,
        merchant_id: &str,
        status: Option<OrderStatus>,
        before: Before<'_>,
        limit: i64,
    ) -> StoreResult<Vec<Order>>;

    /// Marks the order seen by its merchant; false if it is not theirs.
    async fn acknowledge_order(&self, id: &str, merchant_id: &str, now: i64) -> StoreResult<bool>;

    /// `paid` → `fulfilled` with carrier and tracking, and the shopper's receipt; a
    /// `partially_refunded` order not yet shipped keeps its status and gains the tracking.
    async fn fulfill_order(
        &self,
        id: &str,
        fulfillment: &crate::order::Fulfillment,
        receipt: Option<&Receipt>,
        now: i64,
    ) -> StoreResult<bool>;

    /// Reserves `amount` of the order for a refund (it cannot exceed what is left) and records
    /// the refund as pending; false if the order cannot take it.
    async fn begin_refund(&self, r: &RefundRecord, allowed_from: &[OrderStatus]) -> StoreResult<bool>;

    /// The processor has refunded: the order's new status, the ledger, the event, the receipt
    /// and (for a cancellation) the stock, in one transaction; false if already done.
    #[allow(clippy::too_many_arguments)]
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
    ) -> StoreResult<bool>;

    /// The processor refused: give the reserved amount back to the order.
    async fn fail_refund(&self, r: &RefundRecord, now: i64) -> StoreResult<()>;

    async fn find_pending_refunds(&self, before: i64) -> StoreResult<Vec<RefundRecord>>;

    async fn find_refund_total_fee_back(&self, order_id: &str) -> StoreResult<i64>;

    async fn find_uncaptured_orders(&self, before: i64) -> StoreResult<Vec<String>>;

    async fn find_stale_requires_action(&self, before: i64) -> StoreResult<Vec<String>>;
}
