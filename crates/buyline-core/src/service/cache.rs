//! Short-lived in-process caches for hot reads that change rarely: the rollout flag and fee
//! policy, products as the timeline's buy cards show them, and sessions; and the home
//! timelines (`home_cache.rs`, with rules of its own).
//!
//! An entry lives one second. A change made through this process drops its entry at once;
//! a change made by another process (or stock sold anywhere) shows within that second. What
//! must be exact reads the database: checkout reads products afresh and stock is taken by a
//! conditional write, so a stale buy card can offer, never sell, what is gone.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const TTL: Duration = Duration::from_secs(1);
/// Past this many entries the cache starts over rather than grow.
const MAX_ENTRIES: usize = 10_000;

pub(crate) struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn get(&self, k: &K) -> Option<V> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(k).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }

    pub(crate) fn put(&self, k: K, v: V) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(k, (Instant::now(), v));
    }

    pub(crate) fn forget(&self, k: &K) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(k);
    }

    /// Keeps only the entries `keep` says yes to.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, (_, v)| keep(k, v));
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The caches a `Services` holds.
#[derive(Default)]
pub(crate) struct Caches {
    /// Flag name → its JSON (`None`: not set).
    pub(crate) flags: TtlCache<&'static str, Option<String>>,
    /// Product id → the product, finished (its `url` set).
    pub(crate) products: TtlCache<String, crate::model::Product>,
    /// Session token hash → its account, for live sessions only. Log-out and account
    /// deletion drop entries here at once; on another process a session ended there is
    /// still honoured for up to a second.
    pub(crate) sessions: TtlCache<String, crate::model::Account>,
    /// Viewer → the newest posts of their home timeline (see `home_cache.rs`).
    pub(crate) home: super::home_cache::HomeCache,
    /// Country → its active campaigns (oldest first), as the timeline weaves them.
    pub(crate) promotions: TtlCache<String, std::sync::Arc<Vec<crate::discovery::Promotion>>>,
    /// Sealed webhook signing secret (vault record id) → the secret, opened once per process
    /// (each open is audited); records never change, so entries need no expiry.
    pub(crate) webhook_secrets: std::sync::Mutex<std::collections::HashMap<String, zeroize::Zeroizing<String>>>,
    /// Variant id → it was found sold out (see `service/checkout.rs`, `SoldOut`).
    pub(crate) sold_out: TtlCache<String, super::checkout::SoldOut>,
    /// Counts stock given back by this process: a sold-out finding older than a give-back
    /// is not marked.
    pub(crate) stock_returns: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let c: TtlCache<String, u32> = TtlCache::default();
        c.put("a".into(), 1);
        assert_eq!(c.get(&"a".into()), Some(1));
        c.forget(&"a".into());
        assert_eq!(c.get(&"a".into()), None);
        c.entries.lock().unwrap().insert("b".into(), (Instant::now() - TTL, 2));
        assert_eq!(c.get(&"b".into()), None, "an entry a second old is not served");
    }
}
