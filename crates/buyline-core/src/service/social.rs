//! Posts, replies, follows, timelines and profiles.

use super::home_cache::{self, Shown};
use super::paging::{page_limit, PageArgs};
use super::{Principal, Services};
use crate::discovery::{viewer_seed, weave, Slot, TimelineCursor};
use crate::error::{Error, Errors, Result};
use crate::ids::{has_prefix, new_id};
use crate::limits::MAX_POST_BYTES;
use crate::model::{Account, Author, NewPost, Page, Post, Product, Profile, TimelineItem};
use crate::rollout::{Arm, BuyButtonFlag};
use crate::text::PostText;
use crate::types::{now_micros, Handle};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct PostInput {
    /// At most 280 by twitter-text's weighted length (URLs count 23, CJK characters 2).
    #[schema(min_length = 1)]
    pub text: String,
    pub reply_to: Option<String>,
    pub product_id: Option<String>,
}

impl Services {
    /// Publishes a post or a reply as the caller's account.
    pub async fn create_post(&self, who: &Principal, input: PostInput) -> Result<Post> {
        let account = who.account()?;
        let mut e = Errors::default();
        // Bytes first: twitter-text's work grows with the text, and no post near this size
        // is under its weighted limit.
        let text = if input.text.trim().len() > MAX_POST_BYTES {
            e.push("text", format!("is too long: at most {MAX_POST_BYTES} bytes"));
            None
        } else {
            e.take(PostText::parse("text", &input.text))
        };
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
                    let found = if has_prefix(pid, "prod") {
                        self.store.find_products(&[pid.to_string()]).await?.pop()
                    } else {
                        None
                    };
                    match found {
                        Some(p) if p.merchant_id == merchant.id => {
                            if p.kind == crate::types::ProductKind::Digital && p.file.is_none() {
                                e.push("product_id", "upload this digital product's file before posting it");
                            }
                        }
                        _ => e.push("product_id", "is not one of this merchant's products"),
                    }
                }
                _ => e.push("product_id", "only a merchant's posts can carry a product"),
            }
        }
        e.finish()?;
        let text = text.unwrap();
        let cart_tag = self.cart_tag_of(account, &text.entities).await?;
        if cart_tag.is_some() {
            self.limit_cart_posts(account).await?;
        }
        let new = NewPost {
            id: new_id("post"),
            author_id: account.id.clone(),
            text: text.text,
            created_at: now_micros(),
            reply_to: reply_to.map(str::to_string),
            product_id: product_id.map(str::to_string),
            entities: text.entities,
        };
        self.store.insert_post(&new, cart_tag.is_some()).await?;
        self.caches.home.author_changed(&new.author_id);
        if cart_tag.is_some() {
            self.cart_wakeup.notify_one();
        }
        Ok(Post {
            id: new.id,
            author: Author {
                id: account.id.clone(),
                handle: account.handle.clone(),
                display_name: account.display_name.clone(),
            },
            text: new.text,
            created_at: new.created_at,
            reply_to: new.reply_to,
            product_id: new.product_id,
            entities: new.entities,
        })
    }

    /// Deletes one of the caller's posts. Its replies stay, detached from it.
    pub async fn delete_post(&self, who: &Principal, id: &str) -> Result<()> {
        let account = who.account()?;
        if !has_prefix(id, "post") || !self.store.delete_post(id, &account.id).await? {
            return Err(Error::NotFound("post"));
        }
        // It may be a campaign's: the cached promotions hold the post itself.
        self.caches.promotions.clear();
        // Replies to it may now show in timelines that did not show them.
        self.caches.home.clear();
        Ok(())
    }

    /// A post with its direct replies (oldest first) and its timeline decoration for the viewer.
    pub async fn post_thread(&self, id: &str, viewer: Option<&Account>) -> Result<(TimelineItem, Vec<Post>)> {
        if !has_prefix(id, "post") {
            return Err(Error::NotFound("post"));
        }
        let post = self.store.find_post(id).await?.ok_or(Error::NotFound("post"))?;
        let replies = self.store.find_replies(id, 200).await?;
        let item = self.decorate(vec![Shown::plain(post)], viewer).await?.pop().expect("one in, one out");
        Ok((item, replies))
    }

    /// The home timeline: the viewer's own posts and those of accounts they follow (replies
    /// only under Twitter's rule, see the store), newest first, with active campaigns' posts
    /// of the viewer's country woven in (`promoted: true`) by [`weave`]'s scheme: at most one
    /// promoted item in five, each at most once per page, organic paging unaffected.
    pub async fn home_timeline(
        &self,
        viewer: &Account,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<TimelineItem>> {
        let limit = page_limit(limit)?;
        let cur = TimelineCursor::decode(cursor)?;
        let before = cur.before.as_ref().map(|(t, i)| (*t, i.as_str()));
        let organic = self.home_posts(viewer, before, limit + 1).await?;
        let promotions = self.promotions(&viewer.country).await?;
        let ids: Vec<&str> = organic.iter().map(|p| p.post.id.as_str()).collect();
        let woven = weave(&ids, &promotions, &viewer.id, cur.served, limit as usize, viewer_seed(&viewer.id));
        let mut promoted: HashMap<&str, &Post> = promotions.iter().map(|p| (p.post_id(), &p.post)).collect();
        let mut organic: Vec<Option<Shown>> = organic.into_iter().map(Some).collect();
        let mut posts = Vec::with_capacity(woven.slots.len());
        let mut flags = Vec::with_capacity(woven.slots.len());
        let mut last_organic = None;
        for slot in &woven.slots {
            match slot {
                Slot::Organic(i) => {
                    if let Some(p) = organic[*i].take() {
                        last_organic = Some((p.post.created_at, p.post.id.clone()));
                        posts.push(p);
                        flags.push(false);
                    }
                }
                Slot::Promoted(id) => {
                    if let Some(p) = promoted.remove(id.as_str()) {
                        posts.push(Shown::plain(p.clone()));
                        flags.push(true);
                    }
                }
            }
        }
        let next_cursor = woven.more.then(|| {
            TimelineCursor { before: last_organic.or(cur.before), served: cur.served + woven.slots.len() as u64 }
                .encode()
        });
        let mut items = self.decorate(posts, Some(viewer)).await?;
        for (item, flag) in items.iter_mut().zip(flags) {
            item.promoted = flag;
        }
        Ok(Page { data: items, next_cursor })
    }

    /// `find_home_timeline`'s answer, through the per-viewer cache (`home_cache.rs`): a first
    /// page fills it (at least [`home_cache::DEPTH`] posts deep), and later pages inside what
    /// it holds are answered from it.
    async fn home_posts(&self, viewer: &Account, before: Option<(i64, &str)>, n: i64) -> Result<Vec<Shown>> {
        let cache = &self.caches.home;
        if let Some(posts) = cache.get(&viewer.id, before, n as usize) {
            return Ok(posts);
        }
        if before.is_some() {
            let posts = self.store.find_home_timeline(&viewer.id, before, n).await?;
            return Ok(posts.into_iter().map(Shown::plain).collect());
        }
        let ticket = cache.ticket();
        let depth = n.max(home_cache::DEPTH as i64);
        let (posts, followees) = tokio::try_join!(
            self.store.find_home_timeline(&viewer.id, None, depth),
            self.store.find_followee_ids(&viewer.id)
        )?;
        let complete = (posts.len() as i64) < depth;
        let mut authors: HashSet<String> = followees.into_iter().collect();
        authors.insert(viewer.id.clone());
        let posts: Vec<Shown> = posts.into_iter().map(Shown::rendered).collect();
        let first = posts[..posts.len().min(n as usize)].to_vec();
        cache.put(ticket, &viewer.id, posts, complete, authors);
        Ok(first)
    }

    /// Recent posts by everyone: what a signed-out visitor sees on `/`.
    pub async fn public_timeline(&self, cursor: Option<&str>, limit: Option<i64>) -> Result<Page<TimelineItem>> {
        let args = PageArgs::parse(cursor, limit)?;
        let posts = self.store.find_recent_posts(args.before(), args.fetch()).await?;
        self.page(&args, posts, None).await
    }

    pub async fn profile_posts(
        &self,
        author: &Account,
        viewer: Option<&Account>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<TimelineItem>> {
        let args = PageArgs::parse(cursor, limit)?;
        let posts = self.store.find_posts_by_author(&author.id, args.before(), args.fetch()).await?;
        self.page(&args, posts, viewer).await
    }

    pub(crate) async fn page(
        &self,
        args: &PageArgs,
        posts: Vec<Post>,
        viewer: Option<&Account>,
    ) -> Result<Page<TimelineItem>> {
        let page = args.page(posts, |p| (p.created_at, &p.id));
        let posts = page.data.into_iter().map(Shown::plain).collect();
        Ok(Page { data: self.decorate(posts, viewer).await?, next_cursor: page.next_cursor })
    }

    /// Attaches buy cards per the rollout flag. A signed-out visitor sees the card; the
    /// checkout asks them to sign in and then applies the flag.
    async fn decorate(&self, posts: Vec<Shown>, viewer: Option<&Account>) -> Result<Vec<TimelineItem>> {
        let ids: Vec<String> = posts.iter().filter_map(|p| p.post.product_id.clone()).collect();
        let mut products: HashMap<String, Product> = HashMap::new();
        let mut flag = None;
        if !ids.is_empty() {
            for p in self.display_products(&ids).await? {
                products.insert(p.id.clone(), p);
            }
            flag = Some(self.buy_button_flag().await?);
        }
        let mut served = Vec::new(); // funnel (issue 15): (post, arm) for impressions
        let items = posts
            .into_iter()
            .map(|Shown { post, json }| {
                let product = post.product_id.as_ref().and_then(|id| products.get(id));
                let (buy, product_url) = match (product, &flag) {
                    (Some(p), Some(flag)) => {
                        let arm = match viewer {
                            Some(v) => flag.arm(&v.id, &v.country, &p.merchant_id),
                            None if flag.enabled => Arm::Buy,
                            None => Arm::Excluded,
                        };
                        served.push((post.id.clone(), arm));
                        match arm {
                            Arm::Buy => (Some(p.buy_card()), None),
                            // funnel (issue 15): the link says which post it came from.
                            Arm::Holdout => (None, Some(format!("{}?via={}", p.url, post.id))),
                            Arm::Excluded => (None, Some(p.url.clone())),
                        }
                    }
                    _ => (None, None),
                };
                TimelineItem { post, promoted: false, buy, product_url, post_json: json }
            })
            .collect();
        if let Some(v) = viewer {
            let served: Vec<(&str, Arm)> = served.iter().map(|(p, a)| (p.as_str(), *a)).collect();
            self.count_served(v, &served);
        }
        Ok(items)
    }

    pub async fn buy_button_flag(&self) -> Result<BuyButtonFlag> {
        Ok(match self.flag_json("buy_button").await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| Error::Internal(format!("bad flag: {e}")))?,
            None => BuyButtonFlag::default(),
        })
    }

    pub async fn set_buy_button_flag(&self, who: &Principal, flag: BuyButtonFlag) -> Result<BuyButtonFlag> {
        who.operator()?;
        flag.validate()?;
        let json = serde_json::to_string(&flag).map_err(|e| Error::Internal(e.to_string()))?;
        self.set_flag_json("buy_button", &json).await?;
        tracing::info!(flag = %json, "buy_button flag changed");
        self.audit("flag.buy_button", &json).await?;
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
        self.caches.home.viewer_changed(&me.id);
        self.profile(&target.handle, Some(me)).await
    }

    pub async fn unfollow(&self, who: &Principal, handle: &str) -> Result<Profile> {
        let me = who.account()?;
        let target = self.followee(handle).await?;
        self.store.delete_follow(&me.id, &target.id).await?;
        self.caches.home.viewer_changed(&me.id);
        self.profile(&target.handle, Some(me)).await
    }

    pub async fn profile(&self, handle: &str, viewer: Option<&Account>) -> Result<Profile> {
        let h = Handle::parse("handle", handle).map_err(|_| Error::NotFound("account"))?;
        self.store.find_profile(&h.key(), viewer.map(|v| v.id.as_str())).await?.ok_or(Error::NotFound("account"))
    }
}
