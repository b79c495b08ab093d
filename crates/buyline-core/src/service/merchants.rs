//! Merchants: opening one (its posting account, API key and sealed webhook secret), its
//! settings (webhook URL, cart hashtags, tax rates, return policy), key rotation, and the
//! owner acting for one of their shops.

use super::catalog::short_text;
use super::{accounts::account_conflict, Principal, Services};
use crate::error::{Error, Errors, Result};
use crate::ids::{has_prefix, new_id, new_secret};
use crate::limits::{self, MAX_CART_KINDS, MAX_COUNTRIES, MAX_HASHTAG_CHARS, MAX_URL_BYTES};
use crate::model::{Account, AccountKind, Merchant};
use crate::text::extract_entities;
use crate::types::{now_micros, Country, Handle, MerchantKind, ProductKind};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct MerchantInput {
    #[schema(min_length = 1, max_length = 80)]
    pub name: String,
    #[schema(min_length = 1, max_length = 15)]
    pub handle: String,
    #[schema(value_type = crate::types::MerchantKind)]
    pub kind: String,
    #[schema(value_type = crate::types::CountryCode)]
    pub country: String,
    pub webhook_url: Option<String>,
    pub cart_hashtags: Option<BTreeMap<String, String>>,
    /// Product kinds shoppers may add by hashtag: `physical` (default) and/or `digital`.
    pub cart_kinds: Option<Vec<String>>,
    #[schema(max_length = 2000)]
    pub return_policy: Option<String>,
}

/// A new merchant with its secrets, which are shown this once.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NewMerchant {
    pub merchant: Merchant,
    pub api_key: String,
    pub webhook_secret: String,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct MerchantUpdate {
    #[schema(min_length = 1, max_length = 80)]
    pub name: Option<String>,
    /// An `https://` (or `http://`) URL; the empty string removes it.
    pub webhook_url: Option<String>,
    pub cart_hashtags: Option<BTreeMap<String, String>>,
    /// Product kinds shoppers may add by hashtag: `physical` and/or `digital`.
    pub cart_kinds: Option<Vec<String>>,
    /// Basis points per destination country, 0–10000.
    pub tax_rates: Option<BTreeMap<String, u32>>,
    #[schema(max_length = 2000)]
    pub return_policy: Option<String>,
}

pub(super) fn web_url(e: &mut Errors, field: &str, s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.len() > MAX_URL_BYTES {
        e.push(field, format!("must be at most {MAX_URL_BYTES} bytes"));
        return None;
    }
    match url::Url::parse(s) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => Some(u.to_string()),
        _ => {
            e.push(field, "must be an http:// or https:// URL");
            None
        }
    }
}

fn cart_hashtags(e: &mut Errors, input: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if input.len() > MAX_COUNTRIES {
        e.push("cart_hashtags", format!("at most {MAX_COUNTRIES} countries"));
        return out;
    }
    for (country, tag) in input {
        let field = format!("cart_hashtags.{country}");
        let Ok(c) = Country::parse(&field, country) else {
            e.push(&field, "key must be an ISO 3166 two-letter country code");
            continue;
        };
        // Length first: the hashtag parser's work grows with the text.
        if limits::too_many_bytes_for(tag.trim(), MAX_HASHTAG_CHARS) || tag.trim().chars().count() > MAX_HASHTAG_CHARS {
            e.push(&field, format!("must be at most {MAX_HASHTAG_CHARS} characters"));
            continue;
        }
        let entities = extract_entities(tag.trim());
        match entities.hashtags.as_slice() {
            [h] if tag.trim().chars().count() == h.tag.chars().count() + 1 => {
                out.insert(c.as_str().to_string(), format!("#{}", h.tag));
            }
            _ => e.push(&field, "must be a single hashtag such as #AcmeCart"),
        }
    }
    // One tag names one country: the reply's country check depends on it.
    let mut seen: BTreeMap<String, &String> = BTreeMap::new();
    for (country, tag) in &out {
        if let Some(first) = seen.insert(crate::cart::tag_key(tag), country) {
            e.push(&format!("cart_hashtags.{country}"), format!("is already the hashtag for {first}"));
        }
    }
    out
}

fn cart_kinds(e: &mut Errors, input: Option<&Vec<String>>) -> Option<Vec<ProductKind>> {
    let input = input?;
    let mut out = Vec::new();
    if input.len() > MAX_CART_KINDS {
        e.push("cart_kinds", format!("at most {MAX_CART_KINDS} kinds"));
        return Some(out);
    }
    for (i, k) in input.iter().enumerate() {
        let f = format!("cart_kinds[{i}]");
        match ProductKind::parse(&f, k) {
            Ok(ProductKind::Donation) => e.push(&f, "donations cannot go in a cart: the shopper picks the amount"),
            Ok(kind) if !out.contains(&kind) => out.push(kind),
            Ok(_) => {}
            Err(_) => e.push(&f, "must be physical or digital"),
        }
    }
    Some(out)
}

/// A clash with another merchant's cart hashtag, named on the field that holds it.
fn hashtag_conflict(m: &Merchant, e: crate::error::StoreError) -> Error {
    match e {
        crate::error::StoreError::Unique(what) if what.starts_with("cart_hashtags:") => {
            let key = &what["cart_hashtags:".len()..];
            let country = m.cart_hashtags.iter().find(|(_, t)| crate::cart::tag_key(t) == key).map(|(c, _)| c.clone());
            Error::conflict_field(
                &format!("cart_hashtags.{}", country.unwrap_or_default()),
                "is already another merchant's cart hashtag",
            )
        }
        other => account_conflict(other),
    }
}

impl Services {
    /// A person opens a merchant: a posting account with the merchant's handle, an API key
    /// and a webhook secret, all written together.
    pub async fn create_merchant(&self, who: &Principal, input: MerchantInput) -> Result<NewMerchant> {
        let owner = who.shopper()?;
        let mut e = Errors::default();
        let name = short_text(&mut e, "name", &input.name, 80, true);
        let handle = e.take(Handle::parse("handle", &input.handle));
        let kind = e.take(MerchantKind::parse("kind", &input.kind));
        let country = e.take(Country::parse("country", &input.country));
        let currency = match country.map(|c| (c, c.merchant_currency())) {
            Some((_, Some(cur))) => Some(cur),
            Some((c, None)) => {
                e.push("country", format!("Buyline does not yet serve merchants in {c}; US and GB are open"));
                None
            }
            None => None,
        };
        let webhook_url = input.webhook_url.as_deref().and_then(|u| web_url(&mut e, "webhook_url", u));
        let hashtags = cart_hashtags(&mut e, &input.cart_hashtags.unwrap_or_default());
        let kinds = cart_kinds(&mut e, input.cart_kinds.as_ref()).unwrap_or_else(|| vec![ProductKind::Physical]);
        let return_policy =
            short_text(&mut e, "return_policy", input.return_policy.as_deref().unwrap_or(""), 2000, false);
        if let Some(u) = &webhook_url {
            if let Err(fe) = super::webhooks::check_webhook_target(
                "webhook_url",
                u,
                self.config.allow_private_webhooks,
                &*self.resolver,
            )
            .await
            {
                e.0.push(fe);
            }
        }
        e.finish()?;
        let (handle, kind, country, currency) = (handle.unwrap(), kind.unwrap(), country.unwrap(), currency.unwrap());
        if self.store.find_account_by_handle(&handle.key()).await?.is_some() {
            return Err(Error::conflict_field("handle", "is already taken"));
        }
        let now = now_micros();
        let account = Account {
            id: new_id("acct"),
            handle: handle.as_str().to_string(),
            display_name: name.clone(),
            email: None,
            country: country.as_str().to_string(),
            kind: AccountKind::Merchant,
            bio: String::new(),
            created_at: now,
        };
        let merchant = Merchant {
            id: new_id("mer"),
            account_id: account.id.clone(),
            owner_account_id: owner.id.clone(),
            handle: account.handle.clone(),
            name,
            kind,
            country: country.as_str().to_string(),
            currency,
            webhook_url,
            cart_hashtags: hashtags,
            cart_kinds: kinds,
            tax_rates: BTreeMap::new(),
            return_policy: if return_policy.is_empty() {
                "Returns accepted within 30 days of delivery.".into()
            } else {
                return_policy
            },
            created_at: now,
            version: 0,
        };
        let api_key = new_secret("sk");
        let webhook_secret = super::webhooks::new_webhook_secret();
        let sealed_secret = self.seal_webhook_secret(&merchant.id, &webhook_secret)?;
        self.store
            .insert_merchant(&merchant, &account, &crate::ids::hash_secret(&api_key), &sealed_secret)
            .await
            .map_err(|e| hashtag_conflict(&merchant, e))?;
        tracing::info!(merchant_id = %merchant.id, owner = %owner.id, "merchant created");
        Ok(NewMerchant { merchant, api_key, webhook_secret })
    }

    /// Replaces the merchant's API key; the old one stops working at once.
    pub async fn rotate_api_key(&self, who: &Principal) -> Result<String> {
        let merchant = who.merchant()?;
        let key = new_secret("sk");
        self.store.replace_api_key(&merchant.id, &crate::ids::hash_secret(&key), crate::types::now_micros()).await?;
        tracing::info!(merchant_id = %merchant.id, "api key rotated");
        Ok(key)
    }

    pub async fn update_merchant(&self, who: &Principal, input: MerchantUpdate) -> Result<Merchant> {
        let mut m = who.merchant()?.clone();
        let mut e = Errors::default();
        if let Some(n) = &input.name {
            m.name = short_text(&mut e, "name", n, 80, true);
        }
        if let Some(u) = &input.webhook_url {
            m.webhook_url = web_url(&mut e, "webhook_url", u);
            if let Some(u) = &m.webhook_url {
                if let Err(fe) = super::webhooks::check_webhook_target(
                    "webhook_url",
                    u,
                    self.config.allow_private_webhooks,
                    &*self.resolver,
                )
                .await
                {
                    e.0.push(fe);
                }
            }
        }
        if let Some(h) = &input.cart_hashtags {
            m.cart_hashtags = cart_hashtags(&mut e, h);
        }
        if let Some(kinds) = cart_kinds(&mut e, input.cart_kinds.as_ref()) {
            m.cart_kinds = kinds;
        }
        if let Some(rates) = &input.tax_rates {
            m.tax_rates = BTreeMap::new();
            if rates.len() > MAX_COUNTRIES {
                e.push("tax_rates", format!("at most {MAX_COUNTRIES} countries"));
            } else {
                for (c, bps) in rates {
                    let f = format!("tax_rates.{c}");
                    match Country::parse(&f, c) {
                        Ok(country) if *bps <= 10_000 => {
                            m.tax_rates.insert(country.as_str().to_string(), *bps);
                        }
                        Ok(_) => e.push(&f, "must be between 0 and 10000 basis points"),
                        Err(_) => e.push(&f, "key must be an ISO 3166 two-letter country code"),
                    }
                }
            }
        }
        if let Some(r) = &input.return_policy {
            m.return_policy = short_text(&mut e, "return_policy", r, 2000, false);
        }
        e.finish()?;
        self.store.update_merchant(&m).await.map_err(|e| hashtag_conflict(&m, e))?;
        m.version += 1;
        self.caches.merchants.forget(&m.id);
        Ok(m)
    }

    /// A merchant as a purchase prices itself from: through the one-second cache when
    /// `cached` (the purchase's reservation checks its version), else read afresh (and kept
    /// there as the newest copy).
    pub(super) async fn purchase_merchant(&self, id: &str, cached: bool) -> Result<Merchant> {
        if !has_prefix(id, "mer") || id.len() > crate::limits::MAX_ID_BYTES {
            return Err(Error::NotFound("merchant"));
        }
        let found = if cached {
            self.caches.merchants.get_or_load(&id.to_string(), || self.store.find_merchant(id)).await?
        } else {
            let m = self.store.find_merchant(id).await?;
            if let Some(m) = &m {
                self.caches.merchants.put(m.id.clone(), m.clone());
            }
            m
        };
        found.ok_or(Error::NotFound("merchant"))
    }

    /// A merchant, read afresh.
    pub async fn merchant(&self, id: &str) -> Result<Merchant> {
        self.purchase_merchant(id, false).await
    }

    /// Whether `id` names a merchant (for validating a form or body that lists some).
    pub(super) async fn is_merchant(&self, id: &str) -> Result<bool> {
        match self.merchant(id).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn merchants_owned_by(&self, owner: &Account) -> Result<Vec<Merchant>> {
        Ok(self.store.find_merchants_by_owner(&owner.id).await?)
    }

    /// The owner acting for one of their merchants (the merchant pages).
    pub async fn act_as_merchant(&self, owner: &Account, merchant_id: Option<&str>) -> Result<Option<Principal>> {
        let owned = self.store.find_merchants_by_owner(&owner.id).await?;
        let chosen = match merchant_id.filter(|m| !m.is_empty()) {
            // A shop named that is not theirs: as the API answers for another's resource.
            Some(id) => Some(owned.into_iter().find(|m| m.id == id).ok_or(Error::NotFound("merchant"))?),
            None => owned.into_iter().next(),
        };
        let Some(merchant) = chosen else { return Ok(None) };
        let account = self.account(&merchant.account_id).await?;
        Ok(Some(Principal::Merchant { merchant: Box::new(merchant), account }))
    }
}
