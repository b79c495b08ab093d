//! Hashtag carts: merchant links (the shopper's consent), the jobs that answer posts with a
//! cart hashtag, the carts themselves and their checkout.
//!
//! A post with a cart hashtag is written with its job in one transaction (see
//! [`Services::create_post`]); [`Services::process_cart_jobs`] answers jobs in batches off
//! the request path. A job is leased to one worker and marked done in the same transaction
//! that writes its answer, so a reply is answered once even with several processes, and a
//! job left by a crash is taken up again when its lease runs out.

use super::{Principal, Services};
use crate::cart::{
    decide, item_label, product_links, reply_text, tag_key, Cart, CartItem, CartItemRecord, CartJob, CartMerchant,
    CartResult, CartTag, MerchantLink, Outcome, Situation,
};
use crate::error::{Error, Result};
use crate::ids::{has_prefix, new_id};
use crate::model::{Account, AccountKind, Merchant, NewPost, Post, Product};
use crate::order::{Checkout, NewEvent, Receipt};
use crate::service::checkout::LineInput;
use crate::text::{extract_entities, Entities};
use crate::types::now_micros;
use std::collections::HashMap;

/// How long a worker holds a claimed job before another may take it.
const JOB_LEASE: i64 = 30 * 1_000_000;
/// Cart-hashtag posts are counted per shopper over this window for rate limiting.
const RATE_WINDOW: i64 = 60 * 1_000_000;
/// A job that failed this often (a bug, not a state) is closed without an answer.
const MAX_ATTEMPTS: i64 = 10;

impl Services {
    /// Wakes the cart worker of this process; another process's jobs are found by polling.
    pub fn cart_wakeup(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.cart_wakeup.clone()
    }

    /// The cart hashtag a person's post carries, if any: the first of its hashtags that is a
    /// merchant's. Merchants' own posts (which may well mention their hashtag) queue nothing.
    pub(super) async fn cart_tag_of(&self, author: &Account, entities: &Entities) -> Result<Option<CartTag>> {
        if author.kind != AccountKind::Person || entities.hashtags.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = entities.hashtags.iter().map(|h| tag_key(&h.tag)).collect();
        let found = self.store.find_cart_tags(&keys).await?;
        Ok(keys.iter().find_map(|k| found.iter().find(|t| t.key == *k)).cloned())
    }

    /// A burst of cart-hashtag posts from one shopper is refused with 429 before anything is
    /// written; the count lives in the database, so it holds across processes.
    pub(super) async fn limit_cart_posts(&self, author: &Account) -> Result<()> {
        let max = i64::from(self.config.cart_replies_per_minute.max(1));
        let now = now_micros();
        let recent = self.store.find_recent_cart_jobs(&author.id, now - RATE_WINDOW, max).await?;
        if recent.len() as i64 >= max {
            let oldest = recent.last().copied().unwrap_or(now);
            let wait = ((oldest + RATE_WINDOW - now) / 1_000_000).max(1) as u64;
            return Err(Error::RateLimited { retry_after: wait });
        }
        Ok(())
    }

    /// Claims up to `limit` due jobs, answers each, and writes the answers in one
    /// transaction. Returns how many jobs it claimed.
    pub async fn process_cart_jobs(&self, limit: i64) -> Result<usize> {
        let now = now_micros();
        let jobs = self.store.claim_cart_jobs(now, now + JOB_LEASE, limit).await?;
        if jobs.is_empty() {
            return Ok(0);
        }
        let mut results = Vec::with_capacity(jobs.len());
        // Items this batch adds: a second reply for the same item in the batch finds it there.
        let mut adding: Vec<(String, String)> = Vec::new();
        for job in &jobs {
            if job.attempts > MAX_ATTEMPTS {
                tracing::error!(post_id = %job.post_id, attempts = job.attempts, "cart job keeps failing; closed unanswered");
                results.push(self.silent_result(job));
                continue;
            }
            match self.answer_cart_job(job, &adding).await {
                Ok(Some(r)) => {
                    if let Some(i) = &r.item {
                        adding.push((i.account_id.clone(), i.variant_id.clone()));
                    }
                    results.push(r);
                }
                // Nothing to answer (the post or its author is gone): close the job quietly.
                Ok(None) => results.push(self.silent_result(job)),
                Err(e) => {
                    tracing::warn!(post_id = %job.post_id, attempts = job.attempts, error = %e, "cart job failed; will retry")
                }
            }
        }
        self.store.finish_cart_jobs(&results, now_micros()).await?;
        Ok(jobs.len())
    }

    /// A job whose post was deleted before it was answered: marked done with no reply.
    fn silent_result(&self, job: &CartJob) -> CartResult {
        CartResult {
            job_post_id: job.post_id.clone(),
            outcome: Outcome::ParentDeleted,
            item: None,
            reply: None,
            notification: None,
            event: None,
        }
    }

    async fn answer_cart_job(&self, job: &CartJob, adding: &[(String, String)]) -> Result<Option<CartResult>> {
        let Some(post) = self.store.find_post(&job.post_id).await? else { return Ok(None) };
        let Some(shopper) = self.store.find_account(&job.account_id).await? else { return Ok(None) };
        let Some(tag) = self.cart_tag_of(&shopper, &post.entities).await? else { return Ok(None) };
        let Some(merchant) = self.store.find_merchant(&tag.merchant_id).await? else { return Ok(None) };
        let parent = match &job.parent_id {
            Some(id) => self.store.find_post(id).await?,
            None => None,
        };
        let linked = self.store.find_merchant_links(&shopper.id).await?.iter().any(|(m, _)| *m == merchant.id);
        let (product, variant_id) = match &parent {
            Some(p) => self.linked_product(p, &merchant).await?,
            None => (None, None),
        };
        let cart = self.store.find_cart_items(&shopper.id).await?;
        let in_cart: Vec<String> = cart
            .iter()
            .filter(|i| i.merchant_id == merchant.id)
            .map(|i| i.variant_id.clone())
            .chain(adding.iter().filter(|(a, _)| *a == shopper.id).map(|(_, v)| v.clone()))
            .collect();
        let situation = Situation {
            shopper: &shopper,
            tag: &tag,
            merchant: &merchant,
            is_reply: job.parent_id.is_some(),
            parent: parent.as_ref(),
            linked,
            product: product.as_ref().map(|p| (p, variant_id.as_deref())),
            in_cart: &in_cart,
        };
        let (outcome, variant) = decide(&situation);
        let base = &self.config.public_url;
        let own_tag = merchant.cart_hashtags.get(&shopper.country).map(String::as_str);
        let text = reply_text(outcome, &situation, variant, base, own_tag);
        let now = now_micros();
        let reply = NewPost {
            id: new_id("post"),
            author_id: merchant.account_id.clone(),
            entities: extract_entities(&text),
            text,
            created_at: now,
            reply_to: Some(post.id.clone()),
            product_id: None,
        };
        let label = product.as_ref().map(|p| item_label(p, variant)).unwrap_or_default();
        let (item, event, note) = match (outcome, &product, variant) {
            (Outcome::Added, Some(p), Some(v)) => {
                let item = CartItemRecord {
                    id: new_id("citem"),
                    account_id: shopper.id.clone(),
                    merchant_id: merchant.id.clone(),
                    product_id: p.id.clone(),
                    variant_id: v.id.clone(),
                    quantity: 1,
                    source_post_id: Some(post.id.clone()),
                    created_at: now,
                };
                let data = serde_json::json!({
                    "cart_item": {
                        "id": item.id, "product_id": p.id, "variant_id": v.id, "sku": v.sku, "name": p.name,
                        "options": v.options, "quantity": 1, "unit_price": v.price, "currency": p.currency.code(),
                    },
                    "shopper": {"id": shopper.id, "handle": shopper.handle},
                    "post_id": post.id,
                    "parent_post_id": job.parent_id,
                });
                let event = NewEvent {
                    id: new_id("evt"),
                    merchant_id: merchant.id.clone(),
                    kind: "cart.item_added".into(),
                    payload: serde_json::json!({
                        "type": "cart.item_added", "timestamp": crate::types::rfc3339(now), "data": data,
                    })
                    .to_string(),
                    created_at: now,
                };
                (Some(item), Some(event), format!("{}: added {label} to your cart", merchant.name))
            }
            (Outcome::AlreadyInCart, ..) => (None, None, format!("{}: {label} is already in your cart", merchant.name)),
            _ => (None, None, format!("{} answered your {}", merchant.name, tag.tag)),
        };
        let link = if matches!(outcome, Outcome::Added | Outcome::AlreadyInCart) {
            "/cart".to_string()
        } else {
            format!("/posts/{}", post.id)
        };
        tracing::info!(post_id = %post.id, merchant_id = %merchant.id, outcome = outcome.as_str(), "cart hashtag answered");
        Ok(Some(CartResult {
            job_post_id: post.id.clone(),
            outcome,
            item,
            reply: Some(reply),
            notification: Some(Receipt { account_id: shopper.id.clone(), text: note, link, email: None }),
            event,
        }))
    }

    /// The first of the merchant's products the post links (or carries as its buy card), and
    /// the variant the link names.
    async fn linked_product(&self, post: &Post, merchant: &Merchant) -> Result<(Option<Product>, Option<String>)> {
        let mut links: Vec<(String, Option<String>)> =
            product_links(post).into_iter().map(|l| (l.product_id, l.variant_id)).collect();
        if let (Some(pid), true) = (&post.product_id, post.author.id == merchant.account_id) {
            links.push((pid.clone(), None));
        }
        if links.is_empty() {
            return Ok((None, None));
        }
        let ids: Vec<String> = links.iter().map(|(p, _)| p.clone()).collect();
        let products = self.store.find_products(&ids).await?;
        for (pid, variant) in links {
            if let Some(p) = products.iter().find(|p| p.id == pid && p.merchant_id == merchant.id) {
                return Ok((Some(self.finish_product(p.clone())), variant));
            }
        }
        Ok((None, None))
    }

    // --- links

    /// A merchant by its handle, for `/connect/{handle}`.
    pub async fn merchant_by_handle(&self, handle: &str) -> Result<Merchant> {
        let h = crate::types::Handle::parse("handle", handle).map_err(|_| Error::NotFound("merchant"))?;
        let account = self.store.find_account_by_handle(&h.key()).await?.ok_or(Error::NotFound("merchant"))?;
        self.store.find_merchant_by_account(&account.id).await?.ok_or(Error::NotFound("merchant"))
    }

    /// The shopper consents to the merchant filling their cart from hashtag replies.
    pub async fn link_merchant(&self, who: &Principal, merchant_id: &str) -> Result<MerchantLink> {
        let me = who.shopper()?;
        let m = self.merchant(merchant_id).await?;
        self.store.insert_merchant_link(&me.id, &m.id, now_micros()).await?;
        tracing::info!(account_id = %me.id, merchant_id = %m.id, "merchant linked");
        self.merchant_links(who).await?.into_iter().find(|l| l.merchant_id == m.id).ok_or(Error::NotFound("link"))
    }

    /// Revokes the consent; the cart stays (it is the shopper's).
    pub async fn unlink_merchant(&self, who: &Principal, merchant_id: &str) -> Result<()> {
        let me = who.shopper()?;
        let m = self.merchant(merchant_id).await?;
        if !self.store.delete_merchant_link(&me.id, &m.id).await? {
            return Err(Error::NotFound("link"));
        }
        tracing::info!(account_id = %me.id, merchant_id = %m.id, "merchant unlinked");
        Ok(())
    }

    pub async fn merchant_links(&self, who: &Principal) -> Result<Vec<MerchantLink>> {
        let me = who.shopper()?;
        let mut out = Vec::new();
        for (merchant_id, linked_at) in self.store.find_merchant_links(&me.id).await? {
            if let Some(m) = self.store.find_merchant(&merchant_id).await? {
                out.push(MerchantLink {
                    merchant_id: m.id,
                    handle: m.handle,
                    name: m.name,
                    cart_hashtags: m.cart_hashtags,
                    linked_at,
                });
            }
        }
        Ok(out)
    }

    // --- carts

    /// The shopper's carts, one per merchant, at today's prices.
    pub async fn carts(&self, who: &Principal) -> Result<Vec<Cart>> {
        let me = who.shopper()?;
        let items = self.store.find_cart_items(&me.id).await?;
        let ids: Vec<String> = items.iter().map(|i| i.product_id.clone()).collect();
        let products: HashMap<String, Product> =
            self.store.find_products(&ids).await?.into_iter().map(|p| (p.id.clone(), p)).collect();
        let mut carts: Vec<Cart> = Vec::new();
        for i in items {
            let Some(p) = products.get(&i.product_id) else { continue };
            let Some(v) = p.variants.iter().find(|v| v.id == i.variant_id) else { continue };
            let pos = match carts.iter().position(|c| c.merchant_id == i.merchant_id) {
                Some(pos) => pos,
                None => {
                    let Some(m) = self.store.find_merchant(&i.merchant_id).await? else { continue };
                    carts.push(Cart {
                        merchant_id: m.id.clone(),
                        merchant: CartMerchant { id: m.id, handle: m.handle, name: m.name },
                        currency: m.currency,
                        items: vec![],
                        subtotal: 0,
                    });
                    carts.len() - 1
                }
            };
            let available = v.available && v.inventory.quantity.is_none_or(|q| q >= i.quantity);
            let cart = &mut carts[pos];
            if available {
                cart.subtotal += v.price * i.quantity;
            }
            cart.items.push(CartItem {
                id: i.id,
                product_id: p.id.clone(),
                variant_id: v.id.clone(),
                name: p.name.clone(),
                options: v.options.clone(),
                quantity: i.quantity,
                unit_price: v.price,
                available,
                image_url: format!("/p/{}/image.svg", p.id),
                added_at: i.created_at,
            });
        }
        Ok(carts)
    }

    pub async fn remove_cart_item(&self, who: &Principal, merchant_id: &str, item_id: &str) -> Result<()> {
        let me = who.shopper()?;
        if !has_prefix(item_id, "citem") || !self.store.delete_cart_item(&me.id, merchant_id, item_id).await? {
            return Err(Error::NotFound("cart item"));
        }
        Ok(())
    }

    /// Opens the normal checkout with every line of the cart with this merchant. The order
    /// it becomes takes those items out of the cart.
    pub async fn checkout_cart(&self, who: &Principal, merchant_id: &str) -> Result<Checkout> {
        let me = who.shopper()?;
        let items: Vec<CartItemRecord> =
            self.store.find_cart_items(&me.id).await?.into_iter().filter(|i| i.merchant_id == merchant_id).collect();
        if items.is_empty() {
            return Err(Error::NotFound("cart"));
        }
        let lines: Vec<LineInput> = items
            .iter()
            .map(|i| LineInput { variant_id: i.variant_id.clone(), quantity: Some(i.quantity), amount: None })
            .collect();
        let o = self.new_checkout(me, &lines, None).await?;
        let ids: Vec<String> = items.into_iter().map(|i| i.id).collect();
        self.store.insert_cart_checkout(&o.record, &ids).await?;
        Ok(Self::checkout_view(&o.record, &me.country, &o.merchant, &o.products))
    }
}
