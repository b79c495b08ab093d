//! Posts, replies, follows, timelines and profiles.

use super::{Principal, Services};
use crate::error::{Error, Errors, Result};
use crate::ids::{has_prefix, new_id};
use crate::model::{Account, NewPost, Page, Post, Product, Profile, TimelineItem};
use crate::rollout::{Arm, BuyButtonFlag};
use crate::store::Before;
use crate::text::PostText;
use crate::types::{now_micros, Handle};
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct PostInput {
    pub text: String,
    pub reply_to: Option<String>,
    pub product_id: Option<String>,
}

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

/// Cursors are opaque to clients: base64url of `created_at:id` of the last item.
pub(crate) fn encode_cursor(created_at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

pub(crate) fn decode_cursor(cursor: Option<&str>) -> Result<Option<(i64, String)>> {
    let Some(c) = cursor.filter(|c| !c.is_empty()) else { return Ok(None) };
    let bad = || Error::field("cursor", "is not a cursor this API returned");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (ts, id) = raw.split_once(':').ok_or_else(bad)?;
    Ok(Some((ts.parse().map_err(|_| bad())?, id.to_string())))
}

pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::field("limit", "must be between 1 and 100")),
    }
}

impl Services {
    /// Publishes a post or a reply as the caller's account.
    pub async fn create_post(&self, who: &Principal, input: PostInput) -> Result<Post> {
        let account = who.account()?;
        let mut e = Errors::default();
        let text = e.take(PostText::parse("text", &input.text));
        let reply_to = input.reply_to.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(parent) = reply_to {
            if !has_prefix(parent, "post") || self.store.find_post(parent).await?.is_none() {
                e.push("reply_to", "is not a post that exists");
            }
        }
        let product_id = input.product_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(pid) = product_id {
            match who {
                Principal::Merchant { merchant, .. } => {
                    let owned = has_prefix(pid, "prod")
                        && self
                            .store
                            .find_products(&[pid.to_string()])
                            .await?
                            .iter()
                            .any(|p| p.merchant_id == merchant.id);
                    if !owned {
                        e.push("product_id", "is not one of this merchant's products");
                    }
                }
                _ => e.push("product_id", "only a merchant's posts can carry a product"),
            }
        }
        e.finish()?;
        let text = text.unwrap();
        let new = NewPost {
            id: new_id("post"),
            author_id: account.id.clone(),
            text: text.text,
            created_at: now_micros(),
            reply_to: reply_to.map(str::to_string),
            product_id: product_id.map(str::to_string),
            entities: text.entities,
        };
        self.store.insert_post(&new).await?;
        self.store.find_post(&new.id).await?.ok_or_else(|| Error::Internal("post vanished".into()))
    }

    /// A post with its direct replies (oldest first) and its timeline decoration for the viewer.
    pub async fn post_thread(&self, id: &str, viewer: Option<&Account>) -> Result<(TimelineItem, Vec<Post>)> {
        if !has_prefix(id, "post") {
            return Err(Error::NotFound("post"));
        }
        let post = self.store.find_post(id).await?.ok_or(Error::NotFound("post"))?;
        let replies = self.store.find_replies(id, 200).await?;
        let item = self.decorate(vec![post], viewer).await?.pop().expect("one in, one out");
        Ok((item, replies))
    }

    pub async fn home_timeline(
        &self,
        viewer: &Account,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<TimelineItem>> {
        let limit = page_limit(limit)?;
        let before = decode_cursor(cursor)?;
        let before: Before<'_> = before.as_ref().map(|(t, i)| (*t, i.as_str()));
        let posts = self.store.find_home_timeline(&viewer.id, before, limit + 1).await?;
        self.page(posts, limit, Some(viewer)).await
    }

    /// Recent posts by everyone: what a signed-out visitor sees on `/`.
    pub async fn public_timeline(&self, cursor: Option<&str>, limit: Option<i64>) -> Result<Page<TimelineItem>> {
        let limit = page_limit(limit)?;
        let before = decode_cursor(cursor)?;
        let before: Before<'_> = before.as_ref().map(|(t, i)| (*t, i.as_str()));
        let posts = self.store.find_recent_posts(before, limit + 1).await?;
        self.page(posts, limit, None).await
    }

    pub async fn profile_posts(
        &self,
        author: &Account,
        viewer: Option<&Account>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<TimelineItem>> {
        let limit = page_limit(limit)?;
        let before = decode_cursor(cursor)?;
        let before: Before<'_> = before.as_ref().map(|(t, i)| (*t, i.as_str()));
        let posts = self.store.find_posts_by_author(&author.id, before, limit + 1).await?;
        self.page(posts, limit, viewer).await
    }

    async fn page(&self, mut posts: Vec<Post>, limit: i64, viewer: Option<&Account>) -> Result<Page<TimelineItem>> {
        let next_cursor = if posts.len() as i64 > limit {
            posts.truncate(limit as usize);
            posts.last().map(|p| encode_cursor(p.created_at, &p.id))
        } else {
            None
        };
        Ok(Page { data: self.decorate(posts, viewer).await?, next_cursor })
    }

    /// Attaches buy cards per the rollout flag. A signed-out visitor sees the card; the
    /// checkout asks them to sign in and then applies the flag.
    async fn decorate(&self, posts: Vec<Post>, viewer: Option<&Account>) -> Result<Vec<TimelineItem>> {
        let ids: Vec<String> = posts.iter().filter_map(|p| p.product_id.clone()).collect();
        let mut products: HashMap<String, Product> = HashMap::new();
        let mut flag = None;
        if !ids.is_empty() {
            for p in self.store.find_products(&ids).await? {
                products.insert(p.id.clone(), self.finish_product(p));
            }
            flag = Some(self.buy_button_flag().await?);
        }
        Ok(posts
            .into_iter()
            .map(|post| {
                let product = post.product_id.as_ref().and_then(|id| products.get(id));
                let (buy, product_url) = match (product, &flag) {
                    (Some(p), Some(flag)) => {
                        let arm = match viewer {
                            Some(v) => flag.arm(&v.id, &v.country, &p.merchant_id),
                            None if flag.enabled => Arm::Buy,
                            None => Arm::Excluded,
                        };
                        match arm {
                            Arm::Buy => (Some(p.buy_card()), None),
                            Arm::Holdout | Arm::Excluded => (None, Some(p.url.clone())),
                        }
                    }
                    _ => (None, None),
                };
                TimelineItem { post, promoted: false, buy, product_url }
            })
            .collect())
    }

    pub async fn buy_button_flag(&self) -> Result<BuyButtonFlag> {
        Ok(match self.store.find_flag("buy_button").await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| Error::Internal(format!("bad flag: {e}")))?,
            None => BuyButtonFlag::default(),
        })
    }

    pub async fn set_buy_button_flag(&self, who: &Principal, flag: BuyButtonFlag) -> Result<BuyButtonFlag> {
        who.operator()?;
        flag.validate()?;
        let json = serde_json::to_string(&flag).map_err(|e| Error::Internal(e.to_string()))?;
        self.store.upsert_flag("buy_button", &json).await?;
        tracing::info!(flag = %json, "buy_button flag changed");
        Ok(flag)
    }

    async fn followee(&self, handle: &str) -> Result<Account> {
        let h = Handle::parse("handle", handle).map_err(|_| Error::NotFound("account"))?;
        self.store.find_account_by_handle(&h.key()).await?.ok_or(Error::NotFound("account"))
    }

    pub async fn follow(&self, who: &Principal, handle: &str) -> Result<Profile> {
        let me = who.account()?;
        let target = self.followee(handle).await?;
        if target.id == me.id {
            return Err(Error::field("handle", "you cannot follow yourself"));
        }
        self.store.insert_follow(&me.id, &target.id, now_micros()).await?;
        self.profile(&target.handle, Some(me)).await
    }

    pub async fn unfollow(&self, who: &Principal, handle: &str) -> Result<Profile> {
        let me = who.account()?;
        let target = self.followee(handle).await?;
        self.store.delete_follow(&me.id, &target.id).await?;
        self.profile(&target.handle, Some(me)).await
    }

    pub async fn profile(&self, handle: &str, viewer: Option<&Account>) -> Result<Profile> {
        let h = Handle::parse("handle", handle).map_err(|_| Error::NotFound("account"))?;
        self.store.find_profile(&h.key(), viewer.map(|v| v.id.as_str())).await?.ok_or(Error::NotFound("account"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_junk() {
        let c = encode_cursor(1_700_000_000_000_000, "post_abc");
        assert_eq!(decode_cursor(Some(&c)).unwrap(), Some((1_700_000_000_000_000, "post_abc".into())));
        assert!(decode_cursor(Some("!!")).is_err());
        assert!(decode_cursor(Some("Zm9v")).is_err());
        assert_eq!(decode_cursor(None).unwrap(), None);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }
}
