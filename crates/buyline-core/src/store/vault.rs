//! The vault's sealed records (wrapped key and ciphertext, never plaintext) and its audit log.

use super::StoreResult;
use async_trait::async_trait;

/// Sealed vault records and their audit log.
#[async_trait]
pub trait VaultStore: Send + Sync {
    async fn insert_vault_record(&self, r: &crate::saved::VaultRecord) -> StoreResult<()>;

    /// A live (not shredded) record.
    async fn find_vault_record(&self, id: &str) -> StoreResult<Option<crate::saved::VaultRecord>>;

    async fn find_vault_records(&self, owner_id: &str, kind: &str) -> StoreResult<Vec<crate::saved::VaultRecord>>;

    /// The live records among these ids, in one read (a purchase's saved address and card).
    async fn find_vault_records_by_ids(&self, ids: &[String]) -> StoreResult<Vec<crate::saved::VaultRecord>>;

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

    async fn insert_vault_audits(&self, audits: &[crate::saved::VaultAudit]) -> StoreResult<()>;

    async fn find_vault_audit(&self, owner_id: &str) -> StoreResult<Vec<crate::saved::AuditEntry>>;
}
