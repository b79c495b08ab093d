//! The storage interface services need. Each method is one atomic operation: where several
//! rows change together, the implementation writes them in one transaction.

use crate::checkout::Posting;
use crate::error::StoreError;
use crate::model::{Account, Credentials, Merchant, NewPost, Post, Product, Profile, Variant};
use crate::order::{
    CheckoutRecord, Delivery, DeliveryJob, DeliveryOutcome, NewEvent, Notification, Order, OutgoingEmail, Receipt,
    RefundRecord, TrialBalanceLine,
};
use async_trait::async_trait;

pub type StoreResult<T> = Result<T, StoreError>;

/// A position in a newest-first list: `(created_at, id)` of the last item seen.
pub type Before<'a> = Option<(i64, &'a str)>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Is the database reachable and migrated?
    async fn ping(&self) -> StoreResult<()>;

    async fn insert_account(&self, account: &Account, password_hash: Option<&str>) -> StoreResult<()>;
    async fn find_account(&self, id: &str) -> StoreResult<Option<Account>>;
    async fn find_account_by_handle(&self, handle: &str) -> StoreResult<Option<Account>>;
    /// Looks up by handle or e-mail, case-insensitively.
    async fn find_credentials(&self, login: &str) -> StoreResult<Option<Credentials>>;
    async fn count_accounts(&self) -> StoreResult<i64>;
    /// `(key, failures, window_start)` of the log-in failure counters under these keys
    /// whose window started at or after `since` (older windows have ended).
    async fn find_login_failures(&self, keys: &[String], since: i64) -> StoreResult<Vec<(String, i64, i64)>>;
    /// Counts one failed log-in under each key, atomically across processes: a window that
    /// started before `since` starts again at `now`. Ended windows are pruned.
    async fn record_login_failure(&self, keys: &[String], now: i64, since: i64) -> StoreResult<()>;
    async fn delete_login_failures(&self, key: &str) -> StoreResult<()>;

    async fn insert_session(&self, token_hash: &str, account_id: &str, expires_at: i64) -> StoreResult<()>;
    /// The account of a live session.
    async fn find_session_account(&self, token_hash: &str, now: i64) -> StoreResult<Option<Account>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    /// Idempotent: following twice is one follow.
    async fn insert_follow(&self, follower: &str, followee: &str, at: i64) -> StoreResult<()>;
    async fn delete_follow(&self, follower: &str, followee: &str) -> StoreResult<()>;
    async fn find_profile(&self, handle: &str, viewer: Option<&str>) -> StoreResult<Option<Profile>>;

    /// With `cart_job`, also queues the post's hashtag-cart job, in the same transaction.
    async fn insert_post(&self, post: &NewPost, cart_job: bool) -> StoreResult<()>;
    /// Deletes the author's post; its replies stay, no longer attached. False if not theirs.
    async fn delete_post(&self, id: &str, author_id: &str) -> StoreResult<bool>;
    async fn find_post(&self, id: &str) -> StoreResult<Option<Post>>;
    /// Direct replies, oldest first.
    async fn find_replies(&self, id: &str, limit: i64) -> StoreResult<Vec<Post>>;
    /// The viewer's own posts and those of accounts they follow, newest first.
    async fn find_home_timeline(&self, viewer: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;
    async fn find_posts_by_author(&self, author: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;
    /// Everyone's top-level posts, newest first: the page a signed-out visitor sees.
    async fn find_recent_posts(&self, before: Before<'_>, limit: i64) -> StoreResult<Vec<Post>>;

    /// Writes the merchant, its posting account and its first API key together.
    async fn insert_merchant(
        &self,
        merchant: &Merchant,
        account: &Account,
        api_key_hash: &str,
        webhook_secret: &crate::saved::VaultRecord,
    ) -> StoreResult<()>;
    async fn find_merchant(&self, id: &str) -> StoreResult<Option<Merchant>>;
    async fn find_merchant_by_account(&self, account_id: &str) -> StoreResult<Option<Merchant>>;
    async fn find_merchants_by_owner(&self, owner_account_id: &str) -> StoreResult<Vec<Merchant>>;
    async fn find_merchant_by_api_key(&self, key_hash: &str) -> StoreResult<Option<Merchant>>;
    /// Revokes every key of the merchant and stores the new one, atomically.
    async fn replace_api_key(&self, merchant_id: &str, key_hash: &str) -> StoreResult<()>;
    async fn update_merchant(&self, merchant: &Merchant) -> StoreResult<()>;

    /// Writes the product with its variants and shipping rates together.
    async fn insert_product(&self, product: &Product) -> StoreResult<()>;
    /// Products in any order; unknown ids are skipped. `url` is left empty for the service.
    async fn find_products(&self, ids: &[String]) -> StoreResult<Vec<Product>>;
    async fn find_products_by_merchant(&self, merchant_id: &str) -> StoreResult<Vec<Product>>;
    /// Rewrites the product's own fields and replaces its shipping rates.
    async fn update_product(&self, product: &Product) -> StoreResult<()>;
    async fn update_variant(&self, product_id: &str, variant: &Variant) -> StoreResult<()>;

    async fn find_flag(&self, name: &str) -> StoreResult<Option<String>>;
    async fn upsert_flag(&self, name: &str, value_json: &str) -> StoreResult<()>;
    /// Writes the flag only if it does not exist yet, and returns the value it holds then:
    /// processes racing to create it all get the first one written.
    async fn insert_flag_once(&self, name: &str, value_json: &str) -> StoreResult<String>;

    // --- checkouts, stock, orders
    async fn insert_checkout(&self, c: &CheckoutRecord) -> StoreResult<()>;
    async fn find_checkout(&self, id: &str) -> StoreResult<Option<CheckoutRecord>>;
    /// `open` → `completing` for its shopper, counting the attempt; `None` if not open.
    async fn claim_checkout(&self, id: &str, shopper_id: &str, now: i64) -> StoreResult<Option<i64>>;
    /// Moves the checkout from `from` to `to`; true if it moved.
    async fn set_checkout_status(&self, id: &str, from: &str, to: &str) -> StoreResult<bool>;
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
    /// `(variant_id, product_id)` for the variants that exist.
    async fn find_product_ids_by_variants(&self, variant_ids: &[String]) -> StoreResult<Vec<(String, String)>>;
    /// One transaction: the order, its reservation consumed, its checkout completed, its receipt
    /// and event, and (`from_cart`) the cart items it was checked out from removed.
    async fn commit_order(
        &self,
        order: &Order,
        from_cart: bool,
        receipt: Option<&Receipt>,
        event: Option<&NewEvent>,
    ) -> StoreResult<()>;
    async fn find_order(&self, id: &str) -> StoreResult<Option<Order>>;
    async fn find_order_by_checkout(&self, checkout_id: &str) -> StoreResult<Option<Order>>;
    async fn find_order_by_payment(&self, payment_id: &str) -> StoreResult<Option<Order>>;
    async fn find_orders_by_shopper(&self, shopper_id: &str, before: Before<'_>, limit: i64)
        -> StoreResult<Vec<Order>>;
    /// Moves the order from `from` to `to` (true if it moved), with an optional receipt.
    async fn update_order_status(
        &self,
        id: &str,
        from: &str,
        to: &str,
        receipt: Option<&Receipt>,
        event: Option<&NewEvent>,
    ) -> StoreResult<bool>;
    async fn find_orders_by_merchant(
        &self,
        merchant_id: &str,
        status: Option<&str>,
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
    ) -> StoreResult<bool>;
    /// Reserves `amount` of the order for a refund (it cannot exceed what is left) and records
    /// the refund as pending; false if the order cannot take it.
    async fn begin_refund(&self, r: &RefundRecord, allowed_from: &[&str]) -> StoreResult<bool>;
    /// The processor has refunded: the order's new status, the ledger, the event, the receipt
    /// and (for a cancellation) the stock, in one transaction; false if already done.
    #[allow(clippy::too_many_arguments)]
    async fn complete_refund(
        &self,
        r: &RefundRecord,
        new_status: &str,
        currency: &str,
        postings: &[Posting],
        event: Option<&NewEvent>,
        receipt: Option<&Receipt>,
        restock: &[(String, i64)],
    ) -> StoreResult<bool>;
    /// The processor refused: give the reserved amount back to the order.
    async fn fail_refund(&self, r: &RefundRecord) -> StoreResult<()>;
    async fn find_pending_refunds(&self, before: i64) -> StoreResult<Vec<RefundRecord>>;
    async fn find_refund_total_fee_back(&self, order_id: &str) -> StoreResult<i64>;

    // --- outbox and webhook deliveries
    async fn find_event(&self, id: &str) -> StoreResult<Option<crate::order::Event>>;
    /// Events after `after`, oldest first, created before `visible_before`.
    async fn find_events_after(
        &self,
        merchant_id: &str,
        after: Before<'_>,
        visible_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::order::Event>>;
    /// Leases up to `limit` due deliveries until `lease_until`, each to one worker.
    async fn claim_deliveries(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<DeliveryJob>>;
    /// Logs each attempt and moves its delivery on, all in one transaction.
    async fn record_delivery_attempts(
        &self,
        attempts: &[(&DeliveryJob, crate::order::DeliveryAttempt, DeliveryOutcome)],
    ) -> StoreResult<()>;
    async fn find_deliveries(&self, merchant_id: &str, before: Before<'_>, limit: i64) -> StoreResult<Vec<Delivery>>;
    /// Schedules a delivery of this merchant's again, now; false if it is not theirs.
    async fn retry_delivery(&self, id: &str, merchant_id: &str, now: i64) -> StoreResult<bool>;
    async fn count_pending_deliveries(&self) -> StoreResult<i64>;
    /// New secret; the old one keeps signing until `old_until`.
    /// Makes the sealed `secret` (inserted with it) the merchant's signing secret; the one
    /// before keeps signing until `old_until`.
    async fn rotate_webhook_secret(
        &self,
        merchant_id: &str,
        secret: &crate::saved::VaultRecord,
        old_until: i64,
    ) -> StoreResult<()>;
    /// Signing secrets still kept in plain text (from before they were sealed):
    /// `(merchant, is the previous secret, secret)`.
    async fn find_plain_webhook_secrets(&self, limit: i64) -> StoreResult<Vec<(String, bool, String)>>;
    /// Replaces a plain-text signing secret by its sealed record (inserted with it), unless
    /// it changed meanwhile.
    async fn seal_plain_webhook_secret(
        &self,
        merchant_id: &str,
        old: bool,
        plain: &str,
        sealed: &crate::saved::VaultRecord,
    ) -> StoreResult<bool>;
    /// Marks the order captured and posts the ledger transaction, once: false if it already was.
    async fn mark_captured(&self, order_id: &str, currency: &str, postings: &[Posting], now: i64) -> StoreResult<bool>;

    // --- the reconciler's questions
    async fn find_expired_reservations(&self, now: i64) -> StoreResult<Vec<String>>;
    async fn find_uncaptured_orders(&self, before: i64) -> StoreResult<Vec<String>>;
    async fn find_stale_requires_action(&self, before: i64) -> StoreResult<Vec<String>>;
    /// Checkouts left `completing` since before `before` (a crash mid-way).
    async fn find_stuck_checkouts(&self, before: i64) -> StoreResult<Vec<String>>;

    // --- ledger, notifications, mail
    async fn trial_balance(&self) -> StoreResult<Vec<TrialBalanceLine>>;
    async fn find_notifications(&self, account_id: &str, limit: i64) -> StoreResult<Vec<Notification>>;
    async fn find_pending_emails(&self, limit: i64) -> StoreResult<Vec<OutgoingEmail>>;
    async fn mark_email_sent(&self, id: &str, now: i64) -> StoreResult<()>;

    // --- Idempotency-Key
    /// Records the key as in progress, or says what became of it. An in-progress record
    /// older than `abandoned_after` is taken over; a record created before `expired_before`
    /// is forgotten and the key starts afresh.
    #[allow(clippy::too_many_arguments)]
    async fn begin_idempotent(
        &self,
        scope: &str,
        account_id: Option<&str>,
        key: &str,
        request_hash: &str,
        now: i64,
        abandoned_after: i64,
        expired_before: i64,
    ) -> StoreResult<crate::service::Idempotency>;
    /// Deletes the records created before `before`; returns how many.
    async fn delete_idempotency_before(&self, before: i64) -> StoreResult<u64>;
    /// Records the answer; `account_id`, when given, names whose it is (a sign-up's new
    /// account), so erasing that account erases the replay.
    async fn finish_idempotent(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &str,
        account_id: Option<&str>,
    ) -> StoreResult<()>;
    async fn abandon_idempotent(&self, scope: &str, key: &str) -> StoreResult<()>;

    // --- the vault's sealed records and its audit log
    async fn insert_vault_record(&self, r: &crate::saved::VaultRecord) -> StoreResult<()>;
    /// A live (not shredded) record.
    async fn find_vault_record(&self, id: &str) -> StoreResult<Option<crate::saved::VaultRecord>>;
    async fn find_vault_records(&self, owner_id: &str, kind: &str) -> StoreResult<Vec<crate::saved::VaultRecord>>;
    /// Destroys the record's wrapped key and ciphertext (crypto-shredding); true if it was live.
    async fn shred_vault_record(&self, id: &str, owner_id: &str, now: i64) -> StoreResult<bool>;
    /// Live records not wrapped under `kek_id`, a page at a time.
    async fn find_vault_records_not_under(
        &self,
        kek_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<crate::saved::VaultRecord>>;
    /// Replaces the wrapped key if the record is still under `old_kek`.
    async fn update_vault_wrap(&self, id: &str, old_kek: &str, sealed: &crate::vault::Sealed) -> StoreResult<bool>;
    /// Live records per key-encryption key id.
    async fn count_vault_records_by_kek(&self) -> StoreResult<Vec<(String, i64)>>;
    async fn insert_vault_audit(
        &self,
        record_id: &str,
        owner_id: &str,
        kind: &str,
        purpose: &str,
        actor: &str,
        now: i64,
    ) -> StoreResult<()>;
    async fn find_vault_audit(&self, owner_id: &str) -> StoreResult<Vec<crate::saved::AuditEntry>>;

    // --- hashtag carts
    /// Posts by id, in any order; unknown ids are skipped.
    async fn find_posts(&self, ids: &[String]) -> StoreResult<Vec<Post>>;
    async fn find_accounts(&self, ids: &[String]) -> StoreResult<Vec<Account>>;
    /// The cart items of these accounts, oldest first.
    async fn find_cart_items(&self, account_ids: &[String]) -> StoreResult<Vec<crate::cart::CartItemRecord>>;
    /// The cart hashtags with these keys (see [`crate::cart::tag_key`]).
    async fn find_cart_tags(&self, keys: &[String]) -> StoreResult<Vec<crate::cart::CartTag>>;
    /// Idempotent: linking twice keeps the first consent time.
    async fn insert_merchant_link(&self, account_id: &str, merchant_id: &str, now: i64) -> StoreResult<()>;
    /// True if there was a link to revoke.
    async fn delete_merchant_link(&self, account_id: &str, merchant_id: &str) -> StoreResult<bool>;
    /// `(account_id, merchant_id, linked_at)` of these accounts' links, oldest first.
    async fn find_merchant_links(&self, account_ids: &[String]) -> StoreResult<Vec<(String, String, i64)>>;
    /// When the shopper's last `limit` cart-hashtag posts since `since` were written, newest first.
    async fn find_recent_cart_jobs(&self, account_id: &str, since: i64, limit: i64) -> StoreResult<Vec<i64>>;
    /// Leases up to `limit` pending jobs until `lease_until`, each to one worker.
    async fn claim_cart_jobs(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<crate::cart::CartJob>>;
    /// Writes each result (cart item, reply, notification, event) with its job's `done` mark,
    /// all in one transaction; a job already done is skipped. Returns how many were written.
    async fn finish_cart_jobs(&self, results: &[crate::cart::CartResult], now: i64) -> StoreResult<usize>;
    /// False if it is not the shopper's item with that merchant.
    async fn delete_cart_item(&self, account_id: &str, merchant_id: &str, item_id: &str) -> StoreResult<bool>;
    /// Writes the checkout and marks the cart items it came from: the order it becomes
    /// removes them (in [`Store::commit_order`]'s transaction).
    async fn insert_cart_checkout(&self, c: &CheckoutRecord, item_ids: &[String]) -> StoreResult<()>;

    // --- data rights
    async fn find_follow_handles(&self, account_id: &str) -> StoreResult<(Vec<String>, Vec<String>)>;
    /// Erases a person in one transaction: vault records shredded, sessions, follows,
    /// notifications, e-mails, cart and link records and posts deleted (with the
    /// merchants' automatic cart answers to them), orders kept with personal data removed,
    /// the payloads of their events rewritten by `erase_payload`, the account row reduced to
    /// a tombstone. Returns the ids of the deleted e-mails.
    async fn erase_account(
        &self,
        account_id: &str,
        now: i64,
        erase_payload: for<'p> fn(&'p str) -> Option<String>,
    ) -> StoreResult<Vec<String>>;
}
