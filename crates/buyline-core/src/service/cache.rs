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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

pub(crate) const TTL: Duration = Duration::from_secs(1);
/// Past this many entries the cache starts over rather than grow.
const MAX_ENTRIES: usize = 10_000;

/// Key → when its entry was made, and the entry's cell.
type Entries<K, V> = HashMap<K, (Instant, Arc<OnceCell<V>>)>;

pub(crate) struct TtlCache<K, V> {
    /// Each entry is a cell that a load fills: the requests that miss together wait on the
    /// one load the first of them started (single flight), instead of each reading the
    /// database. A flash sale's thousand buyers at once used to make a thousand reads of
    /// each flag and session here.
    entries: Mutex<Entries<K, V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    fn map(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, k: &K) -> Option<V> {
        self.map().get(k).filter(|(at, _)| at.elapsed() < TTL).and_then(|(_, cell)| cell.get().cloned())
    }

    pub(crate) fn put(&self, k: K, v: V) {
        let mut map = self.map();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(k, (Instant::now(), Arc::new(OnceCell::new_with(Some(v)))));
    }

    /// The entry for `k`, or what `load` finds, loaded once for every caller that misses
    /// meanwhile. A load that finds nothing (`None`) or fails is not kept: the next caller
    /// loads again. An entry forgotten while its load runs stays forgotten (the load's
    /// callers still get what it read, as a read begun before the change would).
    pub(crate) async fn get_or_load<E, F, Fut>(&self, k: &K, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, E>>,
    {
        let cell = {
            let mut map = self.map();
            match map.get(k) {
                Some((at, cell)) if at.elapsed() < TTL => cell.clone(),
                _ => {
                    if map.len() >= MAX_ENTRIES {
                        map.clear();
                    }
                    let cell = Arc::new(OnceCell::new());
                    map.insert(k.clone(), (Instant::now(), cell.clone()));
                    cell
                }
            }
        };
        let found = cell
            .get_or_try_init(|| async {
                match load().await {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            })
            .await;
        match found {
            Ok(v) => Ok(Some(v.clone())),
            Err(e) => {
                // Not kept: drop this cell (if it is still the entry) so the next caller loads.
                let mut map = self.map();
                if map.get(k).is_some_and(|(_, c)| Arc::ptr_eq(c, &cell)) {
                    map.remove(k);
                }
                match e {
                    None => Ok(None),
                    Some(e) => Err(e),
                }
            }
        }
    }

    pub(crate) fn forget(&self, k: &K) {
        self.map().remove(k);
    }

    /// Keeps only the entries `keep` says yes to (an entry still loading goes: its load may
    /// have read what the caller is dropping entries for).
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.map().retain(|k, (_, cell)| cell.get().is_some_and(|v| keep(k, v)));
    }

    pub(crate) fn clear(&self) {
        self.map().clear();
    }
}

/// The caches a `Services` holds.
#[derive(Default)]
pub(crate) struct Caches {
    /// Flag name → its JSON (`None`: not set).
    pub(crate) flags: TtlCache<&'static str, Option<String>>,
    /// Product id → the product, finished (its `url` set).
    pub(crate) products: TtlCache<String, crate::model::Product>,
    /// Variant id → its product, as a purchase prices itself from (not finished). Its stock
    /// may be a second old: a purchase's reservation is what takes stock, and it checks the
    /// product's version (see `service/checkout.rs`).
    pub(crate) catalog: TtlCache<String, crate::model::Product>,
    /// Merchant id → the merchant, as a purchase reads it (checked the same way).
    pub(crate) merchants: TtlCache<String, crate::model::Merchant>,
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
        c.entries.lock().unwrap().insert("b".into(), (Instant::now() - TTL, Arc::new(OnceCell::new_with(Some(2)))));
        assert_eq!(c.get(&"b".into()), None, "an entry a second old is not served");
    }

    #[tokio::test]
    async fn callers_that_miss_together_share_one_load() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let c: Arc<TtlCache<String, u32>> = Arc::default();
        let loads = Arc::new(AtomicUsize::new(0));
        let (go, wait) = tokio::sync::watch::channel(false);
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (c, loads, mut wait) = (c.clone(), loads.clone(), wait.clone());
            calls.spawn(async move {
                c.get_or_load(&"k".to_string(), || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    let _ = wait.wait_for(|go| *go).await;
                    Ok::<_, ()>(Some(7))
                })
                .await
            });
        }
        tokio::task::yield_now().await;
        go.send(true).unwrap();
        while let Some(r) = calls.join_next().await {
            assert_eq!(r.unwrap(), Ok(Some(7)));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for twenty callers");
        assert_eq!(c.get(&"k".into()), Some(7), "and it is kept");
    }

    #[tokio::test]
    async fn nothing_found_or_a_failed_load_is_not_kept() {
        let c: TtlCache<String, u32> = TtlCache::default();
        let k = "k".to_string();
        assert_eq!(c.get_or_load(&k, || async { Ok::<_, ()>(None) }).await, Ok(None));
        assert_eq!(c.get_or_load(&k, || async { Err::<Option<u32>, _>("down") }).await, Err("down"));
        assert_eq!(c.get(&k), None);
        assert_eq!(c.get_or_load(&k, || async { Ok::<_, ()>(Some(3)) }).await, Ok(Some(3)), "loaded again");
        assert_eq!(c.get_or_load(&k, || async { Ok::<_, ()>(Some(4)) }).await, Ok(Some(3)), "served, not loaded");
    }

    #[tokio::test]
    async fn an_entry_forgotten_while_loading_stays_forgotten() {
        let c: TtlCache<String, u32> = TtlCache::default();
        let k = "k".to_string();
        let got = c
            .get_or_load(&k, || async {
                c.forget(&k);
                Ok::<_, ()>(Some(1))
            })
            .await;
        assert_eq!(got, Ok(Some(1)), "the load's caller gets what it read");
        assert_eq!(c.get(&k), None, "but it is not kept");
    }
}
