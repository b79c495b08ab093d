//! The purchase path: checkouts, stock reservations, and the order committed with its
//! receipt and event; the reconciler's questions about checkouts and held stock.

use super::StoreResult;
use crate::order::{CheckoutRecord, CheckoutStatus, NewEvent, Order, Receipt};
use async_trait::async_trait;

/// Checkouts, stock reservations and the order commit.
#[async_trait]
pub trait CheckoutStore: Send + Sync {
    async fn insert_checkout(&self, c: &CheckoutRecord) -> StoreResult<()>;

    /// The checkout (already `completing`) and its stock for `lines` in one transaction, with
    /// the audit rows of the vault records opened for it, if every version in `seen` is still
    /// the merchant's and products' own. If not (`Changed`), or when a line is short
    /// (`Short(variant_id)`), the audit rows alone: the opens happened whatever the stock. An
    /// error writes nothing; a `Unique` error says a checkout with that id exists.
    async fn insert_checkout_reserved(
        &self,
        c: &CheckoutRecord,
        lines: &[(String, i64)],
        expires_at: i64,
        audits: &[crate::saved::VaultAudit],
        seen: &crate::order::CatalogSeen,
    ) -> StoreResult<Result<(), crate::order::NotReserved>>;

    async fn find_checkout(&self, id: &str) -> StoreResult<Option<CheckoutRecord>>;

    /// `open` → `completing` for its shopper, counting the attempt; `None` if not open.
    async fn claim_checkout(&self, id: &str, shopper_id: &str, now: i64) -> StoreResult<Option<i64>>;

    /// Moves the checkout from `from` to `to`; true if it moved.
    async fn set_checkout_status(
        &self,
        id: &str,
        from: CheckoutStatus,
        to: CheckoutStatus,
        now: i64,
    ) -> StoreResult<bool>;

    /// Takes stock for every line, or none: `Err(variant_id)` names the first that is short.
    async fn reserve_stock(
        &self,
        checkout_id: &str,
        lines: &[(String, i64)],
        expires_at: i64,
    ) -> StoreResult<Result<(), String>>;

    /// Gives held stock back (once, however often it is called).
    async fn release_reservation(&self, checkout_id: &str) -> StoreResult<()>;

    /// Held stock becomes sold (a 3-D Secure check passed).
    async fn consume_reservation(&self, checkout_id: &str) -> StoreResult<()>;

    /// One transaction: the order, its reservation consumed (or, for an order waiting on a
    /// 3-D Secure check, held until `hold_until`), its checkout completed, its receipt and
    /// event, and (`from_cart`) the cart items it was checked out from removed.
    #[allow(clippy::too_many_arguments)]
    async fn commit_order(
        &self,
        order: &Order,
        from_cart: bool,
        receipt: Option<&Receipt>,
        event: Option<&NewEvent>,
        now: i64,
        hold_until: i64,
    ) -> StoreResult<()>;

    async fn find_expired_reservations(&self, now: i64) -> StoreResult<Vec<String>>;

    /// Checkouts left `completing` since before `before` (a crash mid-way).
    async fn find_stuck_checkouts(&self, before: i64) -> StoreResult<Vec<String>>;
}
