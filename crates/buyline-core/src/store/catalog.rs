//! The catalog: merchants, their API keys, products with variants and shipping rates, and
//! the feature flags (the `buy_button` rollout).

use super::StoreResult;
use crate::model::{Account, Merchant, Product, Variant};
use async_trait::async_trait;

/// Merchants, API keys, products, variants and flags.
#[async_trait]
pub trait CatalogStore: Send + Sync {
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
    async fn replace_api_key(&self, merchant_id: &str, key_hash: &str, now: i64) -> StoreResult<()>;

    async fn update_merchant(&self, merchant: &Merchant) -> StoreResult<()>;

    /// Writes the product with its variants and shipping rates together.
    async fn insert_product(&self, product: &Product) -> StoreResult<()>;

    /// Products in any order; unknown ids are skipped. `url` is left empty for the service.
    async fn find_products(&self, ids: &[String]) -> StoreResult<Vec<Product>>;

    async fn find_products_by_merchant(&self, merchant_id: &str) -> StoreResult<Vec<Product>>;

    /// Archives the merchant's product unless an order still open (`open` statuses) holds
    /// it; `Ok(false)` when one does. Archived products are not found by `find_products`.
    async fn archive_product(
        &self,
        id: &str,
        merchant_id: &str,
        open: &[crate::order::OrderStatus],
        now: i64,
    ) -> StoreResult<bool>;

    /// A product's uploaded file, archived or not (paid downloads outlive the catalogue).
    async fn find_product_file(&self, id: &str) -> StoreResult<Option<crate::model::ProductFile>>;

    /// Rewrites the product's own fields and replaces its shipping rates.
    async fn update_product(&self, product: &Product) -> StoreResult<()>;

    async fn update_variant(&self, product_id: &str, variant: &Variant) -> StoreResult<()>;

    async fn find_flag(&self, name: &str) -> StoreResult<Option<String>>;

    async fn upsert_flag(&self, name: &str, value_json: &str, now: i64) -> StoreResult<()>;

    /// Writes the flag only if it does not exist yet, and returns the value it holds then:
    /// processes racing to create it all get the first one written.
    async fn insert_flag_once(&self, name: &str, value_json: &str, now: i64) -> StoreResult<String>;

    /// The live products that have these variants, with all their variants and rates (one
    /// read fewer than finding their ids first).
    async fn find_products_by_variants(&self, variant_ids: &[String]) -> StoreResult<Vec<Product>>;
}
