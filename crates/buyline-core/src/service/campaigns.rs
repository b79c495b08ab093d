//! Campaigns: a merchant promotes one of its own top-level posts that carries a product to a
//! list of countries, and pauses, resumes or ends it. The timeline weaves active campaigns'
//! posts in (`social.rs`, rule in `crate::discovery::weave`).

use super::paging::PageArgs;
use super::{Principal, Services};
use crate::discovery::{Campaign, CampaignStatus, Promotion, MAX_CAMPAIGN_COUNTRIES, MAX_PROMOTIONS};
use crate::error::{Error, Errors, Result};
use crate::ids::{has_prefix, new_id};
use crate::model::Page;
use crate::types::{now_micros, Country};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CampaignInput {
    /// One of the merchant's own top-level posts that carries a product.
    #[schema(max_length = 64)]
    pub post_id: String,
    /// ISO 3166 alpha-2 codes of the shoppers' countries to promote to.
    #[schema(min_items = 1, max_items = 50, value_type = Vec<crate::types::CountryCode>)]
    pub countries: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CampaignUpdate {
    /// `active` (resume), `paused` or `ended` (final).
    pub status: CampaignStatus,
}

impl Services {
    pub async fn create_campaign(&self, who: &Principal, input: CampaignInput) -> Result<Campaign> {
        let merchant = who.merchant()?;
        let account = who.account()?;
        let mut e = Errors::default();
        let mut countries: Vec<String> = Vec::new();
        if input.countries.is_empty() {
            e.push("countries", "must name at least one country");
        } else if input.countries.len() > MAX_CAMPAIGN_COUNTRIES {
            e.push("countries", format!("at most {MAX_CAMPAIGN_COUNTRIES} countries"));
        } else {
            for (i, c) in input.countries.iter().enumerate() {
                if let Some(c) = e.take(Country::parse(&format!("countries[{i}]"), c)) {
                    let c = c.as_str().to_string();
                    if !countries.contains(&c) {
                        countries.push(c);
                    }
                }
            }
        }
        let post_id = input.post_id.trim();
        if post_id.len() > crate::limits::MAX_ID_BYTES || !has_prefix(post_id, "post") {
            return Err(Error::NotFound("post"));
        }
        let post = match self.store.find_post(post_id).await? {
            Some(p) if p.author.id == account.id => p,
            _ => return Err(Error::NotFound("post")),
        };
        if post.reply_to.is_some() {
            e.push("post_id", "is a reply: only a top-level post can be promoted");
        } else if post.product_id.is_none() {
            e.push("post_id", "carries no product: only a post with a product can be promoted");
        }
        e.finish()?;
        let now = now_micros();
        let c = Campaign {
            id: new_id("cmp"),
            merchant_id: merchant.id.clone(),
            post_id: post.id,
            countries,
            status: CampaignStatus::Active,
            created_at: now,
        };
        self.store.insert_campaign(&c, now).await?;
        self.caches.promotions.clear();
        Ok(c)
    }

    pub async fn campaigns(&self, who: &Principal, cursor: Option<&str>, limit: Option<i64>) -> Result<Page<Campaign>> {
        let merchant = who.merchant()?;
        let args = PageArgs::parse(cursor, limit)?;
        let list = self.store.find_campaigns(&merchant.id, args.before(), args.fetch()).await?;
        Ok(args.page(list, |c| (c.created_at, &c.id)))
    }

    /// Pause, resume or end. Ending is final: any later change but `ended` again is 409.
    pub async fn update_campaign(&self, who: &Principal, id: &str, input: CampaignUpdate) -> Result<Campaign> {
        let merchant = who.merchant()?;
        if !has_prefix(id, "cmp") {
            return Err(Error::NotFound("campaign"));
        }
        let mut c = match self.store.find_campaign(id).await? {
            Some(c) if c.merchant_id == merchant.id => c,
            _ => return Err(Error::NotFound("campaign")),
        };
        let ended = || Error::conflict_field("status", "cannot change: the campaign has ended");
        if !c.status.may_become(input.status) {
            return Err(ended());
        }
        if c.status != input.status {
            if !self.store.update_campaign_status(id, input.status, now_micros()).await? {
                return Err(ended());
            }
            c.status = input.status;
            self.caches.promotions.clear();
        }
        Ok(c)
    }

    /// The active campaigns of a country, through the one-second cache: a pause shows in
    /// every process within a second, at once in this one.
    pub(crate) async fn promotions(&self, country: &str) -> Result<Arc<Vec<Promotion>>> {
        let load = || async { self.promotion_window(country).await.map(|l| Some(Arc::new(l))) };
        Ok(self.caches.promotions.get_or_load(&country.to_string(), load).await?.unwrap_or_default())
    }

    /// The next window of at most [`MAX_PROMOTIONS`] active campaigns of a country: the ones
    /// after where the last window ended (by age, then id in byte order), then from the
    /// oldest again, so with more campaigns than a window each takes its turn (a window a
    /// second). With 50 or fewer the window is all of them, oldest first, every time. With
    /// more, a walk of a timeline that spans a reload may show a campaign on two pages
    /// (never twice on one page) while the window moves on.
    async fn promotion_window(&self, country: &str) -> crate::store::StoreResult<Vec<Promotion>> {
        let turns = || self.promotion_turns.lock().unwrap_or_else(|e| e.into_inner());
        let after = turns().get(country).cloned();
        let mut window = match &after {
            Some((at, id)) => self.store.find_promotions(country, Some((*at, id)), MAX_PROMOTIONS).await?,
            None => Vec::new(),
        };
        let rest = MAX_PROMOTIONS - window.len() as i64;
        if rest > 0 {
            // From the oldest again, up to where this window began.
            let from_start = self.store.find_promotions(country, None, rest).await?;
            let end = after.as_ref();
            window.extend(from_start.into_iter().take_while(|p| end.is_none_or(|e| &p.campaign <= e)));
        }
        match window.last() {
            Some(last) => turns().insert(country.to_string(), last.campaign.clone()),
            None => turns().remove(country),
        };
        Ok(window)
    }
}
