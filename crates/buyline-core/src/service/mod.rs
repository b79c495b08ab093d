//! The use cases. Pages and the JSON API call these same services.

mod accounts;
mod cache;
mod campaigns;
mod captures;
mod carts;
mod catalog;
mod checkout;
mod downloads;
mod fees;
mod funnel;
mod home_cache;
mod idempotency;
mod mail;
mod merchant_orders;
mod merchants;
mod operator;
mod orders;
mod paging;
mod payouts;
mod receipts;
mod reconcile;
mod saved;
mod search;
mod social;
mod webhooks;

pub use crate::fees::FeePolicy;
pub use accounts::{LoginInput, SignUpInput};
pub use campaigns::{CampaignInput, CampaignUpdate};
pub use catalog::{OptionInput, ProductInput, ProductUpdate, ShippingRateInput, VariantInput, VariantUpdate};
pub use checkout::{CheckoutInput, CompleteInput, LineInput, OrderInput, PaymentInput};
pub use downloads::{DownloadOutcome, DEFAULT_DOWNLOADS_PER_LINK, DEFAULT_DOWNLOAD_TTL_MICROS};
pub use funnel::{ArmFunnel, Funnel, FunnelArms, FunnelConversion};
pub use idempotency::Idempotency;
pub use mail::{MailSpool, MAIL_LEASE};
pub use merchant_orders::{FulfillInput, RefundInput};
pub use merchants::{MerchantInput, MerchantUpdate, NewMerchant};
pub use operator::{MerchantOverview, OPERATOR_SESSION_MICROS, VAULT_ROTATE};
pub use orders::TrialBalance;
pub use payouts::{payout_amount, Balance, Balances, Payout, PayoutInput, PayoutSettings, Payouts};
pub use reconcile::ReconcileReport;
pub use saved::Export;
pub use social::PostInput;
pub use webhooks::{allowed_target, erase_personal_data, merchant_view, AttemptResult};

use crate::edge::{Pause, Resolver};
use crate::error::{Error, Result};
use crate::model::{Account, Merchant};
use crate::payment::Processor;
use crate::store::Store;
use crate::vault::Sealer;
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person signed in with a session token or cookie.
    Shopper(Account),
    /// A merchant authenticated with its `sk_…` key; acts as its posting account.
    Merchant { merchant: Box<Merchant>, account: Account },
    /// The platform operator.
    Operator,
}

impl Principal {
    /// The account that posts, follows and reads a timeline.
    pub fn account(&self) -> Result<&Account> {
        match self {
            Principal::Shopper(a) | Principal::Merchant { account: a, .. } => Ok(a),
            Principal::Operator => Err(Error::Forbidden("the operator has no account".into())),
        }
    }

    pub fn shopper(&self) -> Result<&Account> {
        match self {
            Principal::Shopper(a) => Ok(a),
            _ => Err(Error::Forbidden("this needs a shopper session".into())),
        }
    }

    pub fn merchant(&self) -> Result<&Merchant> {
        match self {
            Principal::Merchant { merchant, .. } => Ok(merchant),
            _ => Err(Error::Forbidden("this needs a merchant API key".into())),
        }
    }

    pub fn operator(&self) -> Result<()> {
        match self {
            Principal::Operator => Ok(()),
            _ => Err(Error::Forbidden("this needs the operator token".into())),
        }
    }
}

/// Settings the services need from configuration.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Base of links in posts, pages and e-mails, without a trailing slash.
    pub public_url: String,
    /// How long a session lasts.
    pub session_ttl_micros: i64,
    /// Let webhook URLs point at loopback or private addresses.
    pub allow_private_webhooks: bool,
    /// Cart-hashtag posts one shopper may make per minute before getting 429.
    pub cart_replies_per_minute: u32,
    /// A checkout still `completing` after this long is taken to have died with its
    /// server: the reconciler reopens it and voids its authorisation if no order came of it.
    pub stuck_after_micros: i64,
}

#[derive(Clone)]
pub struct Services {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) processor: Arc<dyn Processor>,
    pub(crate) vault: Arc<dyn Sealer>,
    pub(crate) config: ServiceConfig,
    pub(crate) cart_wakeup: Arc<tokio::sync::Notify>,
    pub(crate) caches: Arc<cache::Caches>,
    pub(crate) mail_spool: Option<Arc<dyn MailSpool>>,
    /// Looks up a webhook URL's host for the SSRF guard.
    pub(crate) resolver: Arc<dyn Resolver>,
    /// Waits between looks at a checkout another request is completing.
    pub(crate) pause: Arc<dyn Pause>,
    /// Download links' lifetime and count, and the key that signs them.
    pub(crate) downloads: Arc<downloads::DownloadSettings>,
    /// The experiment's counts gathered in memory until the flusher writes them.
    pub(crate) funnel: Arc<funnel::FunnelCounter>,
    /// The orders waiting to be captured together (`captures.rs`).
    pub(crate) captures: Arc<captures::CaptureQueue>,
    /// Per country, the last campaign of the window of promotions loaded last
    /// (`campaigns.rs`): the next load starts after it.
    pub(crate) promotion_turns: Arc<std::sync::Mutex<std::collections::HashMap<String, (i64, String)>>>,
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        processor: Arc<dyn Processor>,
        vault: Arc<dyn Sealer>,
        resolver: Arc<dyn Resolver>,
        pause: Arc<dyn Pause>,
        config: ServiceConfig,
    ) -> Self {
        Services {
            store,
            processor,
            vault,
            config,
            cart_wakeup: Arc::default(),
            caches: Arc::default(),
            mail_spool: None,
            resolver,
            pause,
            downloads: Arc::default(),
            funnel: Arc::default(),
            captures: Arc::default(),
            promotion_turns: Arc::default(),
        }
    }

    /// A flag's JSON, through the one-second cache.
    pub(crate) async fn flag_json(&self, name: &'static str) -> Result<Option<String>> {
        let v = self.caches.flags.get_or_load(&name, || async { self.store.find_flag(name).await.map(Some) }).await?;
        Ok(v.flatten())
    }

    pub(crate) async fn set_flag_json(&self, name: &'static str, json: &str) -> Result<()> {
        self.store.upsert_flag(name, json, crate::types::now_micros()).await?;
        self.caches.flags.forget(&name);
        Ok(())
    }

    /// A random secret the server processes sharing this database all use for `purpose`
    /// (such as signing CSRF tokens): created by the first process that asks, kept in
    /// `flags` under `key:{purpose}`. Never exposed through the flag API, which knows only
    /// named flags.
    pub async fn shared_key(&self, purpose: &str) -> Result<zeroize::Zeroizing<String>> {
        let name = format!("key:{purpose}");
        let fresh =
            serde_json::to_string(&crate::ids::new_secret("key")).map_err(|e| Error::Internal(e.to_string()))?;
        let json =
            zeroize::Zeroizing::new(self.store.insert_flag_once(&name, &fresh, crate::types::now_micros()).await?);
        let key: String = serde_json::from_str(&json).map_err(|e| Error::Internal(format!("flag {name}: {e}")))?;
        Ok(zeroize::Zeroizing::new(key))
    }

    /// Products for display (buy cards), through the one-second cache; unknown ids skipped.
    pub(crate) async fn display_products(&self, ids: &[String]) -> Result<Vec<crate::model::Product>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.caches.products.get(id) {
                Some(p) => out.push(p),
                None => missing.push(id.clone()),
            }
        }
        if !missing.is_empty() {
            for p in self.store.find_products(&missing).await? {
                let p = self.finish_product(p);
                self.caches.products.put(p.id.clone(), p.clone());
                out.push(p);
            }
        }
        Ok(out)
    }

    /// A change to these products made here shows at once in this process's buy cards.
    /// A sale calls only this: it never makes anything available again.
    pub(crate) fn forget_products<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        for id in ids {
            self.caches.products.forget(id);
        }
    }

    /// A merchant changed these products: this process's buy cards and purchases read them
    /// afresh at once (another process's within a second; its purchases check the product's
    /// version when they reserve, so none is priced from the old product).
    pub(crate) fn catalog_changed<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let ids: Vec<&String> = ids.into_iter().collect();
        self.forget_products(ids.iter().copied());
        self.caches.catalog.retain(|_, p| !ids.contains(&&p.id));
    }

    /// A merchant's edit of these products may have added stock: besides the caches, their
    /// sold-out marks go, and a shortage read before now is no longer marked (see
    /// `checkout::mark_sold_out`).
    pub(crate) fn stock_may_have_grown<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let ids: Vec<&String> = ids.into_iter().collect();
        self.catalog_changed(ids.iter().copied());
        self.caches.stock_returns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.caches.sold_out.retain(|_, m| !ids.contains(&&m.product_id));
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }
}
