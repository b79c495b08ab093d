//! The storage interface services need, cut by feature: one small trait per feature, in the
//! file of that name, and [`Store`], every one of them together, which `Services` holds as one
//! `Arc<dyn Store>`. Each method is one atomic operation: where several rows change together,
//! the implementation writes them in one transaction.

use async_trait::async_trait;

mod accounts;
mod campaigns;
mod carts;
mod catalog;
mod checkout;
mod discovery;
mod downloads;
mod funnel;
mod idempotency;
mod ledger;
mod operator;
mod orders;
mod outbox;
mod payouts;
mod social;
mod vault;

pub use accounts::AccountStore;
pub use campaigns::CampaignStore;
pub use carts::CartStore;
pub use catalog::CatalogStore;
pub use checkout::CheckoutStore;
pub use discovery::DiscoveryStore;
pub use downloads::{DownloadGrant, DownloadStore};
pub use funnel::{ArmTotals, FunnelBatch, FunnelStore, FunnelTotals};
pub use idempotency::IdempotencyStore;
pub use ledger::LedgerStore;
pub use operator::{AuditEntry, OperatorStore};
pub use orders::OrderStore;
pub use outbox::OutboxStore;
pub use payouts::{LedgerBalance, PayoutRecord, PayoutStore};
pub use social::SocialStore;
pub use vault::VaultStore;

pub type StoreResult<T> = Result<T, crate::error::StoreError>;

/// A position in a newest-first list: `(created_at, id)` of the last item seen.
pub type Before<'a> = Option<(i64, &'a str)>;

/// The database as a whole.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Is the database reachable and migrated?
    async fn ping(&self) -> StoreResult<()>;
}

/// All of storage: whatever implements every feature's trait is a `Store`.
pub trait Store:
    HealthStore
    + AccountStore
    + SocialStore
    + CatalogStore
    + CheckoutStore
    + OrderStore
    + LedgerStore
    + OutboxStore
    + CartStore
    + VaultStore
    + IdempotencyStore
    + OperatorStore
    + DownloadStore
    + PayoutStore
    + CampaignStore
    + DiscoveryStore
    + FunnelStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: HealthStore
        + AccountStore
        + SocialStore
        + CatalogStore
        + CheckoutStore
        + OrderStore
        + LedgerStore
        + OutboxStore
        + CartStore
        + VaultStore
        + IdempotencyStore
        + OperatorStore
        + DownloadStore
        + PayoutStore
        + CampaignStore
        + DiscoveryStore
        + FunnelStore
        + Send
        + Sync
        + 'static
{
}

/// Every storage trait, to call their methods on a concrete store (`use
/// buyline_core::store::prelude::*;`).
pub mod prelude {
    pub use super::{
        AccountStore, CampaignStore, CartStore, CatalogStore, CheckoutStore, DiscoveryStore, DownloadStore,
        FunnelStore, HealthStore, IdempotencyStore, LedgerStore, OperatorStore, OrderStore, OutboxStore, PayoutStore,
        SocialStore, Store, VaultStore,
    };
}
