//! Saved cards and addresses as storage keeps them (sealed) and as shoppers see them.

use crate::checkout::Address;
use crate::payment::Brand;
use crate::vault::Sealed;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct VaultRecord {
    /// `pm_…` for a card, `addr_…` for an address.
    pub id: String,
    pub owner_id: String,
    /// `card` or `address`.
    pub kind: String,
    /// `None` once shredded.
    pub sealed: Option<Sealed>,
    /// What may be shown without decrypting: for a card its brand, last four and expiry.
    pub summary: String,
    pub created_at: i64,
}

/// A saved card as anyone ever sees it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentMethod {
    pub id: String,
    pub brand: Brand,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SavedAddress {
    pub id: String,
    #[serde(flatten)]
    pub address: Address,
}

/// A decrypt of a vault record, for the audit log: written before the decrypted data leaves
/// the process (before a card reaches the processor, or an address an order).
#[derive(Debug, Clone)]
pub struct VaultAudit {
    pub record_id: String,
    pub owner_id: String,
    pub kind: String,
    pub purpose: String,
    pub actor: String,
    pub at: i64,
}

/// One decrypt of a vault record: what, for whom, why, when.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub record_id: String,
    pub kind: String,
    pub purpose: String,
    pub actor: String,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}
