//! The experiment funnel (SPEC §2 Experiment, §3 funnel shape): counting and reading.
//!
//! Counting never writes on the request path. Impressions (a post with a product served to a
//! shopper in the `buy` or `holdout` arm), the shoppers reached and the shoppers who opened
//! the buy sheet (holdout: the product page from the post's link) are gathered in memory by
//! [`FunnelCounter`] — one short mutex hold per request — and written in one batch per pass
//! by the flusher (`buyline/src/workers.rs`, every 500 ms and once at shutdown). A crash
//! loses at most the last unflushed half-second of impressions and opens; orders, buyers and
//! revenue are never counted here: they are read from the orders themselves (`post_id`, and
//! the arm their checkout recorded), so an order is never lost from the funnel.

use super::{Principal, Services};
use crate::error::{Error, Result};
use crate::experiment::{compare, Comparison, Sample};
use crate::ids::has_prefix;
use crate::model::{Account, AccountKind, Post, Product};
use crate::rollout::Arm;
use crate::store::{ArmTotals, FunnelBatch};
use crate::types::now_micros;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Past this many distinct entries waiting, new reach/open rows are dropped until the next
/// flush (impressions still count): memory stays bounded if the database is down for long.
const MAX_PENDING: usize = 500_000;

/// What was counted since the last flush.
#[derive(Default)]
struct Pending {
    impressions: HashMap<(String, Arm), i64>,
    reach: HashSet<(String, Arm, String)>,
    opens: HashSet<(String, Arm, String)>,
}

/// The in-memory side of the funnel: counts gathered between flushes.
#[derive(Default)]
pub(crate) struct FunnelCounter {
    pending: Mutex<Pending>,
    /// `--no-funnel-counting`: count nothing (the benchmark's comparison).
    off: AtomicBool,
}

impl FunnelCounter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn served<'a>(&self, account_id: &str, served: impl IntoIterator<Item = (&'a str, Arm)>) {
        if self.off.load(Ordering::Relaxed) {
            return;
        }
        let mut p = self.lock();
        for (post, arm) in served {
            *p.impressions.entry((post.to_string(), arm)).or_default() += 1;
            if p.reach.len() < MAX_PENDING {
                p.reach.insert((post.to_string(), arm, account_id.to_string()));
            }
        }
    }

    fn opened(&self, post: &str, arm: Arm, account_id: &str) {
        if self.off.load(Ordering::Relaxed) {
            return;
        }
        let mut p = self.lock();
        if p.opens.len() < MAX_PENDING {
            // Opening implies the post reached them.
            p.reach.insert((post.to_string(), arm, account_id.to_string()));
            p.opens.insert((post.to_string(), arm, account_id.to_string()));
        }
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back a batch that could not be written, so the next flush tries it again.
    fn restore(&self, back: Pending) {
        let mut p = self.lock();
        for (k, n) in back.impressions {
            *p.impressions.entry(k).or_default() += n;
        }
        p.reach.extend(back.reach);
        p.opens.extend(back.opens);
    }
}

/// One arm of a post's funnel (SPEC §3). `reach`, `opens` and `buyers` are distinct
/// shoppers; `impressions` and `orders` are counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ArmFunnel {
    pub impressions: i64,
    pub reach: i64,
    pub opens: i64,
    pub orders: i64,
    pub buyers: i64,
    /// Total of the arm's paid orders per ISO 4217 currency, in minor units.
    pub revenue: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FunnelArms {
    pub buy: ArmFunnel,
    pub holdout: ArmFunnel,
}

/// Buyers over reach per arm; `null` with no reach.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FunnelConversion {
    pub buy: Option<f64>,
    pub holdout: Option<f64>,
}

/// A post's experiment: both arms, their conversion, the lift of Buy over the plain link and
/// a pooled two-proportion z-test at 95 %.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Funnel {
    pub post_id: String,
    pub product_id: String,
    pub arms: FunnelArms,
    pub conversion: FunnelConversion,
    /// `buy / holdout − 1`; `null` when either arm has no reach (or the holdout no buyer).
    pub lift: Option<f64>,
    /// Two-sided p-value; `null` when either arm has no reach.
    #[schema(minimum = 0, maximum = 1)]
    pub p_value: Option<f64>,
    /// `p_value < 0.05`.
    pub significant: bool,
    /// When these counts last changed (the latest flush or order); the post's creation if
    /// nothing was counted yet.
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl Funnel {
    /// The statistics again, with the z statistic the page shows.
    pub fn comparison(&self) -> Comparison {
        let s = |a: &ArmFunnel| Sample { reach: a.reach.max(0) as u64, buyers: a.buyers.max(0) as u64 };
        compare(s(&self.arms.buy), s(&self.arms.holdout))
    }
}

fn arm_funnel(t: ArmTotals) -> ArmFunnel {
    ArmFunnel {
        impressions: t.impressions,
        reach: t.reach,
        opens: t.opens,
        orders: t.orders,
        buyers: t.buyers,
        revenue: t.revenue,
    }
}

impl Services {
    /// Turns impression and open counting on or off for this process (`--no-funnel-counting`).
    pub fn set_funnel_counting(&self, on: bool) {
        self.funnel.off.store(!on, Ordering::Relaxed);
    }

    /// Counts one serving of each of these posts to `viewer`, for posts that reach a shopper
    /// without the decoration every list goes through (timelines, threads, profiles, search
    /// and hashtag pages all count there, through `count_served`). Posts without a product, signed-out viewers and excluded shoppers count
    /// nothing. Reads only the one-second caches; writes nothing.
    pub async fn count_impressions(&self, viewer: Option<&Account>, posts: &[&Post]) -> Result<()> {
        let Some(viewer) = viewer else { return Ok(()) };
        let ids: Vec<String> = posts.iter().filter_map(|p| p.product_id.clone()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let products: HashMap<String, Product> =
            self.display_products(&ids).await?.into_iter().map(|p| (p.id.clone(), p)).collect();
        let flag = self.buy_button_flag().await?;
        let served: Vec<(&str, Arm)> = posts
            .iter()
            .filter_map(|post| {
                let p = products.get(post.product_id.as_deref()?)?;
                Some((post.id.as_str(), flag.arm(&viewer.id, &viewer.country, &p.merchant_id)))
            })
            .collect();
        self.count_served(viewer, &served);
        Ok(())
    }

    /// Counts posts whose arm for `viewer` is already known (the timeline's decoration).
    pub(crate) fn count_served(&self, viewer: &Account, served: &[(&str, Arm)]) {
        // A merchant's posting account reading a feed is not a shopper.
        if viewer.kind == AccountKind::Merchant {
            return;
        }
        let counted = served.iter().filter(|(_, arm)| *arm != Arm::Excluded).copied();
        self.funnel.served(&viewer.id, counted);
    }

    /// The buy sheet of `post_id` opened by a shopper in `arm` (a checkout with that post).
    pub fn count_open(&self, post_id: &str, arm: Arm, account_id: &str) {
        if arm != Arm::Excluded {
            self.funnel.opened(post_id, arm, account_id);
        }
    }

    /// A shopper opened `product`'s page following the link of post `via`: an open for the
    /// holdout arm when they are in it and that post carries this product. Anything else
    /// (another arm, a made-up `via`) counts nothing. Returns the post id the page should
    /// carry into its purchase (for attribution), if `via` names a post with this product.
    pub async fn count_product_page_open(
        &self,
        viewer: &Account,
        product: &Product,
        via: &str,
    ) -> Result<Option<String>> {
        let via = via.trim();
        if !has_prefix(via, "post") || via.len() > crate::limits::MAX_ID_BYTES {
            return Ok(None);
        }
        let Some(post) = self.store.find_post(via).await? else { return Ok(None) };
        if post.product_id.as_deref() != Some(product.id.as_str()) {
            return Ok(None);
        }
        let arm = self.buy_button_flag().await?.arm(&viewer.id, &viewer.country, &product.merchant_id);
        if arm == Arm::Holdout {
            self.count_open(&post.id, arm, &viewer.id);
        }
        Ok(Some(post.id))
    }

    /// Writes what was counted since the last flush, in one transaction; on failure the
    /// counts go back to wait for the next. Returns how many rows the batch held.
    pub async fn flush_funnel(&self) -> Result<usize> {
        let pending = self.funnel.take();
        let batch = FunnelBatch {
            impressions: pending.impressions.iter().map(|((p, a), n)| (p.clone(), *a, *n)).collect(),
            reach: pending.reach.iter().cloned().collect(),
            opens: pending.opens.iter().cloned().collect(),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let rows = batch.impressions.len() + batch.reach.len() + batch.opens.len();
        if let Err(e) = self.store.write_funnel_batch(&batch, now_micros()).await {
            self.funnel.restore(pending);
            return Err(e.into());
        }
        Ok(rows)
    }

    /// One post's funnel: a merchant sees its own posts' (another's is 404), the operator
    /// every post's. The post must carry a product (else 422).
    pub async fn funnel(&self, who: &Principal, post_id: Option<&str>) -> Result<Funnel> {
        let owner = match who {
            Principal::Merchant { merchant, .. } => Some(merchant.account_id.clone()),
            Principal::Operator => None,
            Principal::Shopper(_) => return Err(Error::Forbidden("this needs a merchant API key".into())),
        };
        let post_id = post_id.map(str::trim).filter(|s| !s.is_empty());
        let Some(post_id) = post_id else { return Err(Error::field("post_id", "is required")) };
        if !has_prefix(post_id, "post") || post_id.len() > crate::limits::MAX_ID_BYTES {
            return Err(Error::NotFound("post"));
        }
        let post = self.store.find_post(post_id).await?.ok_or(Error::NotFound("post"))?;
        if owner.is_some_and(|o| o != post.author.id) {
            return Err(Error::NotFound("post"));
        }
        let Some(product_id) = post.product_id.clone() else {
            return Err(Error::field("post_id", "this post carries no product, so it has no funnel"));
        };
        let totals = self.store.find_funnel(&post.id).await?;
        let mut f = Funnel {
            post_id: post.id,
            product_id,
            arms: FunnelArms { buy: arm_funnel(totals.buy), holdout: arm_funnel(totals.holdout) },
            conversion: FunnelConversion { buy: None, holdout: None },
            lift: None,
            p_value: None,
            significant: false,
            updated_at: if totals.updated_at > 0 { totals.updated_at } else { post.created_at },
        };
        let c = f.comparison();
        f.conversion = FunnelConversion { buy: c.conversion_buy, holdout: c.conversion_holdout };
        f.lift = c.lift;
        f.p_value = c.p_value;
        f.significant = c.significant;
        Ok(f)
    }

    /// A merchant's posts that carry a product, newest first: the ones with a funnel.
    pub async fn funnel_posts(&self, who: &Principal, limit: i64) -> Result<Vec<Post>> {
        let merchant = who.merchant()?;
        let posts = self.store.find_posts_by_author(&merchant.account_id, None, limit.clamp(1, 200)).await?;
        Ok(posts.into_iter().filter(|p| p.product_id.is_some()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_aggregates_and_restores() {
        let c = FunnelCounter::default();
        c.served("acct_a", [("post_1", Arm::Buy), ("post_2", Arm::Holdout)]);
        c.served("acct_a", [("post_1", Arm::Buy)]);
        c.served("acct_b", [("post_1", Arm::Buy)]);
        c.opened("post_2", Arm::Holdout, "acct_c");
        let p = c.take();
        assert_eq!(p.impressions[&("post_1".to_string(), Arm::Buy)], 3);
        assert_eq!(p.impressions[&("post_2".to_string(), Arm::Holdout)], 1);
        // Distinct: acct_a twice on post_1 is one; an opener is reached.
        assert_eq!(p.reach.len(), 4);
        assert_eq!(p.opens.len(), 1);
        assert!(c.take().impressions.is_empty());
        c.served("acct_a", [("post_1", Arm::Buy)]);
        c.restore(p);
        let p = c.take();
        assert_eq!(p.impressions[&("post_1".to_string(), Arm::Buy)], 4);
        assert_eq!(p.reach.len(), 4);
    }
}
