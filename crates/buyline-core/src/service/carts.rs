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
use std::collections::{HashMap, HashSet};

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

    /// Claims up to `limit` due jobs, reads what they need in a few queries for the whole
    /// batch, answers each, and writes the answers in one transaction. Returns how many jobs
    /// it claimed.
    pub async fn process_cart_jobs(&self, limit: i64) -> Result<usize> {
        let now = now_micros();
        let mut jobs = self.store.claim_cart_jobs(now, now + JOB_LEASE, limit).await?;
        if jobs.is_empty() {
            return Ok(0);
        }
        // In the order the posts were written (`returning` keeps no order): the first of two
        // replies for one item is the one that adds it.
        jobs.sort_by(|a, b| (a.created_at, &a.post_id).cmp(&(b.created_at, &b.post_id)));
        let mut batch = self.load_batch(&jobs).await?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in &jobs {
            if job.attempts > MAX_ATTEMPTS {
                tracing::error!(post_id = %job.post_id, attempts = job.attempts, "cart job keeps failing; closed unanswered");
                results.push(silent_result(job));
                continue;
            }
            // Nothing to answer (the post or its author is gone): close the job quietly.
            results.push(self.answer(job, &mut batch).unwrap_or_else(|| silent_result(job)));
        }
        self.store.finish_cart_jobs(&results, now_micros()).await?;
        // The merchants' answers are posts: timelines that may show them show them now.
        for reply in results.iter().filter_map(|r| r.reply.as_ref()) {
            self.caches.home.author_changed(&reply.author_id);
        }
        Ok(jobs.len())
    }

    /// Everything a batch of jobs reads, fetched together.
    async fn load_batch(&self, jobs: &[CartJob]) -> Result<Batch> {
        let mut post_ids: Vec<String> = jobs.iter().map(|j| j.post_id.clone()).collect();
        post_ids.extend(jobs.iter().filter_map(|j| j.parent_id.clone()));
        post_ids.sort();
        post_ids.dedup();
        let posts: HashMap<String, Post> =
            self.store.find_posts(&post_ids).await?.into_iter().map(|p| (p.id.clone(), p)).collect();
        let mut account_ids: Vec<String> = jobs.iter().map(|j| j.account_id.clone()).collect();
        account_ids.sort();
        account_ids.dedup();
        let accounts: HashMap<String, Account> =
            self.store.find_accounts(&account_ids).await?.into_iter().map(|a| (a.id.clone(), a)).collect();
        let mut keys: Vec<String> = jobs
            .iter()
            .filter_map(|j| posts.get(&j.post_id))
            .flat_map(|p| p.entities.hashtags.iter().map(|h| tag_key(&h.tag)))
            .collect();
        keys.sort();
        keys.dedup();
        let tags = self.store.find_cart_tags(&keys).await?;
        let mut merchants = HashMap::new();
        for t in &tags {
            if !merchants.contains_key(&t.merchant_id) {
                if let Some(m) = self.store.find_merchant(&t.merchant_id).await? {
                    merchants.insert(m.id.clone(), m);
                }
            }
        }
        let mut product_ids: Vec<String> = jobs
            .iter()
            .filter_map(|j| j.parent_id.as_ref().and_then(|id| posts.get(id)))
            .flat_map(|p| product_links(p).into_iter().map(|l| l.product_id).chain(p.product_id.clone()))
            .collect();
        product_ids.sort();
        product_ids.dedup();
        let products = self
            .store
            .find_products(&product_ids)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), self.finish_product(p)))
            .collect();
        let links = self.store.find_merchant_links(&account_ids).await?.into_iter().map(|(a, m, _)| (a, m)).collect();
        let cart = self
            .store
            .find_cart_items(&account_ids)
            .await?
            .into_iter()
            .map(|i| (i.account_id, i.merchant_id, i.variant_id))
            .collect();
        Ok(Batch { posts, accounts, tags, merchants, products, links, cart })
    }

    fn answer(&self, job: &CartJob, b: &mut Batch) -> Option<CartResult> {
        let post = b.posts.get(&job.post_id)?;
        let shopper = b.accounts.get(&job.account_id)?;
        let keys: Vec<String> = post.entities.hashtags.iter().map(|h| tag_key(&h.tag)).collect();
        let tag = keys.iter().find_map(|k| b.tags.iter().find(|t| t.key == *k))?;
        let merchant = b.merchants.get(&tag.merchant_id)?;
        let parent = job.parent_id.as_ref().and_then(|id| b.posts.get(id));
        let linked = b.links.contains(&(shopper.id.clone(), merchant.id.clone()));
        let (product, variant_id) = match parent {
            Some(p) => linked_product(p, merchant, &b.products),
            None => (None, None),
        };
        let in_cart: Vec<String> = b
            .cart
            .iter()
            .filter(|(a, m, _)| *a == shopper.id && *m == merchant.id)
            .map(|(_, _, v)| v.clone())
            .collect();
        let situation = Situation {
            shopper,
            tag,
            merchant,
            is_reply: job.parent_id.is_some(),
            parent,
            linked,
            product: product.map(|p| (p, variant_id.as_deref())),
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
        let label = product.map(|p| item_label(p, variant)).unwrap_or_default();
        let (item, event, note) = match (outcome, product, variant) {
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
                    account_id: Some(shopper.id.clone()),
                    order_id: None,
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
        let result = CartResult {
            job_post_id: post.id.clone(),
            outcome,
            item,
            reply: Some(reply),
            notification: Some(Receipt {
                account_id: shopper.id.clone(),
                order_id: None,
                in_order: false,
                text: note,
                link,
                email: None,
            }),
            event,
        };
        // Later jobs of the batch see this item in the cart.
        if let Some(i) = &result.item {
            b.cart.push((i.account_id.clone(), i.merchant_id.clone(), i.variant_id.clone()));
        }
        Some(result)
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
        for (_, merchant_id, linked_at) in self.store.find_merchant_links(std::slice::from_ref(&me.id)).await? {
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
        let items = self.store.find_cart_items(std::slice::from_ref(&me.id)).await?;
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
        let items: Vec<CartItemRecord> = self
            .store
            .find_cart_items(std::slice::from_ref(&me.id))
            .await?
            .into_iter()
            .filter(|i| i.merchant_id == merchant_id)
            .collect();
        if items.is_empty() {
            return Err(Error::NotFound("cart"));
        }
        let lines: Vec<LineInput> = items
            .iter()
            .map(|i| LineInput { variant_id: i.variant_id.clone(), quantity: Some(i.quantity), amount: None })
            .collect();
        let mut o = self.new_checkout(me, &lines, None, false).await?;
        o.record.from_cart = true;
        let ids: Vec<String> = items.into_iter().map(|i| i.id).collect();
        self.store.insert_cart_checkout(&o.record, &ids).await?;
        Ok(Self::checkout_view(&o.record, &me.country, &o.merchant, &o.products))
    }
}

/// What one batch of jobs reads.
struct Batch {
    /// The jobs' posts and the posts they reply to.
    posts: HashMap<String, Post>,
    accounts: HashMap<String, Account>,
    tags: Vec<CartTag>,
    merchants: HashMap<String, Merchant>,
    products: HashMap<String, Product>,
    /// `(account, merchant)` consents.
    links: HashSet<(String, String)>,
    /// `(account, merchant, variant)` in carts, with what this batch adds.
    cart: Vec<(String, String, String)>,
}

/// Closes a job whose post is gone: marked done with no reply.
fn silent_result(job: &CartJob) -> CartResult {
    CartResult {
        job_post_id: job.post_id.clone(),
        outcome: Outcome::ParentDeleted,
        item: None,
        reply: None,
        notification: None,
        event: None,
    }
}

/// The first of the merchant's products the post links (or carries as its buy card), and
/// the variant the link names.
fn linked_product<'a>(
    post: &Post,
    merchant: &Merchant,
    products: &'a HashMap<String, Product>,
) -> (Option<&'a Product>, Option<String>) {
    let attached = post.product_id.iter().filter(|_| post.author.id == merchant.account_id);
    let links = product_links(post).into_iter().map(|l| (l.product_id, l.variant_id));
    for (pid, variant) in links.chain(attached.map(|p| (p.clone(), None))) {
        if let Some(p) = products.get(&pid).filter(|p| p.merchant_id == merchant.id) {
            return (Some(p), variant);
        }
    }
    (None, None)
}
