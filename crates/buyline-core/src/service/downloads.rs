//! Digital delivery: the merchant's uploads recorded on its product (the bytes live in the
//! blob store, which the web layer holds), and the download links of paid digital lines.
//!
//! A link's token is `{order}.{line}.{generation}.{mac}`: the MAC (HMAC-SHA256 under a key
//! shared by every process on the database, 192 bits kept) makes it unguessable, so the
//! receipt, written in the order's own transaction, can carry the first link (generation
//! 0) without a write of its own. The grant row that counts downloads is written after the
//! order committed — on first use for generation 0, when the shopper asks for a fresh link
//! for the others — and keeps only the token's SHA-256.

use super::{Principal, Services};
use crate::error::{Error, Result};
use crate::ids::{constant_time_eq, has_prefix, hash_secret};
use crate::model::{Product, ProductFile};
use crate::order::{Download, Order, OrderStatus};
use crate::store::DownloadGrant;
use crate::types::{now_micros, rfc3339, ProductKind};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a download link lasts, and how many downloads it allows, unless configured.
pub const DEFAULT_DOWNLOAD_TTL_MICROS: i64 = 24 * 3600 * 1_000_000;
pub const DEFAULT_DOWNLOADS_PER_LINK: i64 = 5;

/// Settings and the per-process cache of the link-signing key.
#[derive(Debug)]
pub struct DownloadSettings {
    pub ttl_micros: i64,
    pub per_link: i64,
    key: tokio::sync::OnceCell<zeroize::Zeroizing<String>>,
}

impl Default for DownloadSettings {
    fn default() -> Self {
        DownloadSettings {
            ttl_micros: DEFAULT_DOWNLOAD_TTL_MICROS,
            per_link: DEFAULT_DOWNLOADS_PER_LINK,
            key: tokio::sync::OnceCell::new(),
        }
    }
}

/// What `GET /downloads/{token}` gets: the file to stream, or why the link no longer works.
#[derive(Debug, Clone)]
pub enum DownloadOutcome {
    File {
        file: ProductFile,
        downloads_left: i64,
    },
    /// Expired, used up, or the order was refunded or canceled (410).
    Gone(String),
}

/// Orders whose digital lines deliver: paid and not (wholly) given back.
fn delivers(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::PartiallyRefunded)
}

impl Services {
    /// Links expire after `ttl_micros` and allow `per_link` downloads.
    pub fn with_download_limits(mut self, ttl_micros: i64, per_link: i64) -> Self {
        self.downloads = std::sync::Arc::new(DownloadSettings {
            ttl_micros: ttl_micros.max(1),
            per_link: per_link.max(1),
            key: tokio::sync::OnceCell::new(),
        });
        self
    }

    /// The caller's own product, checked before an upload's bytes are read; a file only
    /// for a digital product.
    pub async fn product_for_upload(&self, who: &Principal, id: &str, file: bool) -> Result<Product> {
        let p = self.own_product(who, id).await?;
        if file && p.kind != ProductKind::Digital {
            return Err(Error::field("kind", "only a digital product has a file to deliver"));
        }
        Ok(p)
    }

    /// The uploaded image (a blob served under `image_path`) becomes the product's image.
    pub async fn set_product_image(&self, who: &Principal, id: &str, image_path: &str) -> Result<Product> {
        let p = self.product_for_upload(who, id, false).await?;
        self.store.update_product_image(&p.id, image_path).await?;
        self.catalog_changed([&p.id]);
        self.product(&p.id).await
    }

    /// The uploaded file becomes what the digital product delivers.
    pub async fn set_product_file(&self, who: &Principal, id: &str, file: &ProductFile) -> Result<Product> {
        let p = self.product_for_upload(who, id, true).await?;
        self.store.update_product_file(&p.id, file).await?;
        self.catalog_changed([&p.id]);
        tracing::info!(product_id = %p.id, size = file.size, "product file uploaded");
        self.product(&p.id).await
    }

    /// As the demo seeds it: the file of one of a merchant's products, without a principal.
    pub async fn seed_product_file(&self, product_id: &str, file: &ProductFile) -> Result<()> {
        self.store.update_product_file(product_id, file).await?;
        self.catalog_changed([&product_id.to_string()]);
        Ok(())
    }

    async fn download_key(&self) -> Result<&zeroize::Zeroizing<String>> {
        self.downloads.key.get_or_try_init(|| self.shared_key("downloads")).await
    }

    async fn download_token(&self, order_id: &str, line: usize, generation: i64) -> Result<String> {
        Ok(sign(self.download_key().await?, order_id, line, generation))
    }

    fn download_url(&self, token: &str) -> String {
        format!("{}/api/v1/downloads/{token}", self.config.public_url)
    }

    /// Fills `download` on each paid digital line: the newest link, its expiry and what is
    /// left of it. Reads only; the receipt's link needs no row until it is used.
    pub async fn attach_downloads(&self, order: &mut Order) -> Result<()> {
        if !delivers(order.status) || !order.lines.iter().any(|l| l.kind == ProductKind::Digital) {
            return Ok(());
        }
        let grants = self.store.find_download_grants(&order.id).await?;
        for (i, l) in order.lines.iter_mut().enumerate() {
            if l.kind != ProductKind::Digital {
                continue;
            }
            let g = grants
                .iter()
                .filter(|g| g.line == i as i64)
                .max_by_key(|g| g.generation)
                .cloned()
                .unwrap_or_else(|| self.first_grant(order.id.clone(), order.created_at, i as i64));
            let token = self.download_token(&order.id, i, g.generation).await?;
            l.download = Some(Download {
                url: self.download_url(&token),
                expires_at: rfc3339(g.expires_at),
                downloads_left: g.downloads_left,
            });
        }
        Ok(())
    }

    /// The receipt's link: it runs from the time the order was placed.
    fn first_grant(&self, order_id: String, placed_at: i64, line: i64) -> DownloadGrant {
        DownloadGrant {
            order_id,
            line,
            generation: 0,
            expires_at: placed_at + self.downloads.ttl_micros,
            downloads_left: self.downloads.per_link,
        }
    }

    /// Loads the link-signing key now (start-up), so receipts, built without waiting, can
    /// sign their links.
    pub async fn prime_download_key(&self) -> Result<()> {
        self.download_key().await.map(|_| ())
    }

    /// The receipt e-mail's links, one per digital line (the receipt is written with the
    /// order, so these are the generation-0 links whose rows come on first use). Without
    /// the key loaded the e-mail points to the order page, which has the links.
    pub(super) fn receipt_downloads(&self, order: &Order) -> Vec<(String, String)> {
        let Some(key) = self.downloads.key.get() else {
            return vec![];
        };
        order
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.kind == ProductKind::Digital)
            .map(|(i, l)| (l.name.clone(), self.download_url(&sign(key, &order.id, i, 0))))
            .collect()
    }

    /// A fresh link for a digital line of the shopper's order (`line` counts from 0).
    pub async fn fresh_download(&self, who: &Principal, order_id: &str, line: usize) -> Result<Order> {
        let order = self.order(who, order_id).await?;
        if order.lines.get(line).is_none_or(|l| l.kind != ProductKind::Digital) {
            return Err(Error::field("line", "is not a digital line of this order"));
        }
        if !delivers(order.status) {
            return Err(Error::Conflict {
                message: format!("this order is {}; its downloads have ended", order.status.as_str()),
                errors: vec![],
            });
        }
        let now = now_micros();
        let generation =
            self.store.find_download_grants(&order.id).await?.iter().map(|g| g.generation).max().unwrap_or(0) + 1;
        let grant = DownloadGrant {
            order_id: order.id.clone(),
            line: line as i64,
            generation,
            expires_at: now + self.downloads.ttl_micros,
            downloads_left: self.downloads.per_link,
        };
        let token = self.download_token(&order.id, line, generation).await?;
        self.store.insert_download_grant(&grant, &hash_secret(&token), now).await?;
        let mut order = order;
        self.attach_downloads(&mut order).await?;
        Ok(order)
    }

    /// Counts one download of the link and answers the file to stream, or why not. With
    /// `count` false (a `HEAD`, such as a link preview) nothing is counted.
    pub async fn download(&self, token: &str, now: i64, count: bool) -> Result<DownloadOutcome> {
        let (order_id, line, generation) = self.check_token(token).await.ok_or(Error::NotFound("download"))?;
        let order = self.store.find_order(&order_id).await?.ok_or(Error::NotFound("download"))?;
        let l = order.lines.get(line).filter(|l| l.kind == ProductKind::Digital).ok_or(Error::NotFound("download"))?;
        match order.status {
            OrderStatus::RequiresAction => return Err(Error::NotFound("download")),
            s if !delivers(s) => {
                return Ok(DownloadOutcome::Gone(format!("This order was {}; its downloads have ended.", s.as_str())))
            }
            _ => {}
        }
        let grants = self.store.find_download_grants(&order.id).await?;
        let known = grants.iter().find(|g| g.line == line as i64 && g.generation == generation).cloned();
        let grant = match known {
            Some(g) => g,
            None if generation == 0 => {
                let g = self.first_grant(order.id.clone(), order.created_at, line as i64);
                self.store.insert_download_grant(&g, &hash_secret(token), now).await?
            }
            None => return Err(Error::NotFound("download")),
        };
        // Archived or not: what was paid for stays downloadable.
        let Some(file) = self.store.find_product_file(&l.product_id).await? else {
            return Err(Error::NotFound("download"));
        };
        let counted = if count {
            self.store.count_download(&order.id, line as i64, generation, now).await?
        } else {
            Some(grant.clone()).filter(|g| g.downloads_left > 0 && g.expires_at > now)
        };
        match counted {
            Some(g) => Ok(DownloadOutcome::File { file, downloads_left: g.downloads_left }),
            None if grant.expires_at <= now => Ok(DownloadOutcome::Gone(
                "This download link has expired. Get a fresh one from your order page.".into(),
            )),
            None => Ok(DownloadOutcome::Gone(
                "This download link has been used up. Get a fresh one from your order page.".into(),
            )),
        }
    }

    /// `(order, line, generation)` of a well-formed token whose MAC is right.
    async fn check_token(&self, token: &str) -> Option<(String, usize, i64)> {
        if token.len() > 120 {
            return None;
        }
        let mut parts = token.split('.');
        let (order_id, line, generation, _mac) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !has_prefix(order_id, "ord") {
            return None;
        }
        let line: usize = line.parse().ok().filter(|l| *l < 1000)?;
        let generation: i64 = generation.parse().ok().filter(|g| *g >= 0)?;
        let key = self.download_key().await.ok()?;
        constant_time_eq(&sign(key, order_id, line, generation), token)
            .then(|| (order_id.to_string(), line, generation))
    }
}

/// A download token: `{order_id}.{line}.{generation}.{mac}`.
fn sign(key: &str, order_id: &str, line: usize, generation: i64) -> String {
    let what = format!("{order_id}.{line}.{generation}");
    let m = mac(key, &what);
    format!("{what}.{m}")
}

/// The first 24 bytes of HMAC-SHA256, base64url.
fn mac(key: &str, what: &str) -> String {
    use base64::Engine;
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("any key length");
    m.update(b"download:");
    m.update(what.as_bytes());
    let out = m.finalize().into_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&out[..24])
}
