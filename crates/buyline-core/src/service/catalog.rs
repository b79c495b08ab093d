//! Merchants and their catalog: products, options, variants, stock, shipping rates.

use super::{accounts::account_conflict, Principal, Services};
use crate::error::{Error, Errors, Result};
use crate::ids::{has_prefix, new_id, new_secret};
use crate::limits::{
    self, MAX_CART_KINDS, MAX_COUNTRIES, MAX_HASHTAG_CHARS, MAX_OPTIONS, MAX_OPTION_VALUES, MAX_SHIPPING_RATES,
    MAX_URL_BYTES, MAX_VARIANTS,
};
use crate::model::{
    Account, AccountKind, DonationRange, Inventory, InventoryType, Merchant, Product, ProductOption, ShippingRate,
    Variant,
};
use crate::text::extract_entities;
use crate::types::{now_micros, Country, Handle, MerchantKind, Money, ProductKind};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

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

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct OptionInput {
    #[schema(min_length = 1, max_length = 30)]
    pub name: String,
    #[schema(min_items = 1, max_items = 30)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct VariantInput {
    #[schema(min_length = 1, max_length = 64)]
    pub sku: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[schema(minimum = 0, maximum = 9_999_999_999_i64)]
    pub price: Option<i64>,
    pub inventory: Option<Inventory>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ShippingRateInput {
    #[schema(min_length = 1, max_length = 60)]
    pub name: String,
    #[schema(minimum = 0, maximum = 9_999_999_999_i64)]
    pub price: i64,
    #[schema(value_type = Vec<crate::types::CountryCode>, min_items = 1)]
    pub countries: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ProductInput {
    #[schema(min_length = 1, max_length = 120)]
    pub name: String,
    #[schema(value_type = crate::types::ProductKind)]
    pub kind: String,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    pub image_url: Option<String>,
    #[schema(max_length = 2000)]
    pub return_policy: Option<String>,
    #[serde(default)]
    #[schema(max_items = 3)]
    pub options: Vec<OptionInput>,
    /// Omit to get one variant per combination of option values, each with `price` and
    /// `inventory` below.
    #[schema(min_items = 1, max_items = 100)]
    pub variants: Option<Vec<VariantInput>>,
    /// Default price in minor units for variants that name none.
    #[schema(minimum = 0, maximum = 9_999_999_999_i64)]
    pub price: Option<i64>,
    /// Default inventory for variants that name none (infinite if omitted).
    pub inventory: Option<Inventory>,
    #[serde(default)]
    pub shipping_rates: Vec<ShippingRateInput>,
    /// Donations only: the range the shopper picks from, in minor units.
    pub donation: Option<DonationRange>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ProductUpdate {
    #[schema(min_length = 1, max_length = 120)]
    pub name: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    pub image_url: Option<String>,
    #[schema(max_length = 2000)]
    pub return_policy: Option<String>,
    /// Replaces every shipping rate.
    pub shipping_rates: Option<Vec<ShippingRateInput>>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct VariantUpdate {
    #[schema(min_length = 1, max_length = 64)]
    pub sku: Option<String>,
    #[schema(minimum = 0, maximum = 9_999_999_999_i64)]
    pub price: Option<i64>,
    pub inventory: Option<Inventory>,
}

fn short_text(e: &mut Errors, field: &str, s: &str, max: usize, required: bool) -> String {
    let s = s.trim();
    if required && s.is_empty() {
        e.push(field, "is required");
    } else if limits::too_many_bytes_for(s, max) || s.chars().count() > max {
        e.push(field, format!("must be at most {max} characters"));
    } else if s.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        e.push(field, "must not contain control characters");
    }
    s.to_string()
}

fn web_url(e: &mut Errors, field: &str, s: &str) -> Option<String> {
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

fn inventory(e: &mut Errors, field: &str, inv: &Inventory) -> Inventory {
    match inv.kind {
        InventoryType::Infinite => Inventory { kind: InventoryType::Infinite, quantity: None },
        InventoryType::Finite => match inv.quantity {
            Some(q) if (0..=1_000_000_000).contains(&q) => Inventory { kind: InventoryType::Finite, quantity: Some(q) },
            Some(_) => {
                e.push(&format!("{field}.quantity"), "must be between 0 and 1000000000");
                inv.clone()
            }
            None => {
                e.push(&format!("{field}.quantity"), "is required for finite inventory");
                inv.clone()
            }
        },
    }
}

fn shipping_rates(e: &mut Errors, input: &[ShippingRateInput], merchant: &Merchant) -> Vec<ShippingRate> {
    if input.len() > MAX_SHIPPING_RATES {
        e.push("shipping_rates", format!("at most {MAX_SHIPPING_RATES} shipping rates"));
        return Vec::new();
    }
    input
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let f = format!("shipping_rates[{i}]");
            let name = short_text(e, &format!("{f}.name"), &r.name, 60, true);
            if let Err(fe) = Money::parse_minor(&format!("{f}.price"), r.price, merchant.currency) {
                e.0.push(fe);
            }
            let mut countries = Vec::new();
            if r.countries.is_empty() || r.countries.len() > MAX_COUNTRIES {
                e.push(&format!("{f}.countries"), format!("must name 1 to {MAX_COUNTRIES} countries"));
                return ShippingRate { id: new_id("ship"), name, price: r.price, countries };
            }
            for (j, c) in r.countries.iter().enumerate() {
                match Country::parse(&format!("{f}.countries[{j}]"), c) {
                    Ok(c) => countries.push(c.as_str().to_string()),
                    Err(fe) => e.0.push(fe),
                }
            }
            ShippingRate { id: new_id("ship"), name, price: r.price, countries }
        })
        .collect()
}

fn variant_available(inv: &Inventory) -> bool {
    match inv.kind {
        InventoryType::Infinite => true,
        InventoryType::Finite => inv.quantity.unwrap_or(0) > 0,
    }
}

fn default_sku(options: &BTreeMap<String, String>, order: &[ProductOption]) -> String {
    let mut parts = vec!["SKU".to_string()];
    for o in order {
        if let Some(v) = options.get(&o.name) {
            parts.push(v.to_uppercase().replace(' ', ""));
        }
    }
    parts.join("-")
}

/// The product's options and the variants to validate: those given, or one per combination
/// of option values. Every size is checked before anything grows with it: the number of
/// options and of each option's values first, then the number of variants — for made ones,
/// the product of the value counts, computed without making any. `None` (with the errors
/// in `e`) when a size is out of bounds, and then no variant is built at all.
pub(crate) fn plan_variants(
    e: &mut Errors,
    input: &[OptionInput],
    variants: Option<&[VariantInput]>,
) -> Option<(Vec<ProductOption>, Vec<VariantInput>)> {
    let mut sizes_ok = true;
    if input.len() > MAX_OPTIONS {
        // Only the first few are looked at: a long list is not walked.
        e.push("options", format!("at most {MAX_OPTIONS} options"));
        sizes_ok = false;
    }
    for (i, o) in input.iter().enumerate().take(MAX_OPTIONS) {
        if o.values.is_empty() || o.values.len() > MAX_OPTION_VALUES {
            e.push(&format!("options[{i}].values"), format!("must list 1 to {MAX_OPTION_VALUES} values"));
            sizes_ok = false;
        }
    }
    if let Some(v) = variants {
        if v.is_empty() || v.len() > MAX_VARIANTS {
            e.push("variants", format!("must list 1 to {MAX_VARIANTS} variants"));
            sizes_ok = false;
        }
    }
    if !sizes_ok {
        return None;
    }
    if variants.is_none() {
        match limits::combinations(input.iter().map(|o| o.values.len())) {
            Some(n) if n <= MAX_VARIANTS => {}
            n => {
                let n = n.map_or_else(|| "too many".to_string(), |n| n.to_string());
                e.push(
                    "options",
                    format!("these options make {n} combinations; a product has at most {MAX_VARIANTS} variants"),
                );
                return None;
            }
        }
    }

    // Sizes are in bounds: now the contents, each option's values distinct.
    let mut options = Vec::with_capacity(input.len());
    let mut names = BTreeSet::new();
    for (i, o) in input.iter().enumerate() {
        let f = format!("options[{i}]");
        let name = short_text(e, &format!("{f}.name"), &o.name, 30, true);
        if !names.insert(name.to_lowercase()) {
            e.push(&format!("{f}.name"), "is used twice");
        }
        let mut values = Vec::with_capacity(o.values.len());
        for (j, v) in o.values.iter().enumerate() {
            let v = short_text(e, &format!("{f}.values[{j}]"), v, 30, true);
            if values.contains(&v) {
                e.push(&format!("{f}.values[{j}]"), "is listed twice");
            }
            values.push(v);
        }
        options.push(ProductOption { name, values });
    }

    let given = match variants {
        Some(v) => v.to_vec(),
        None => {
            let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
            for o in &options {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        o.values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.insert(o.name.clone(), v.clone());
                            c
                        })
                    })
                    .collect();
            }
            combos.into_iter().map(|options| VariantInput { options, ..Default::default() }).collect()
        }
    };
    Some((options, given))
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
        Ok(m)
    }

    pub async fn merchant(&self, id: &str) -> Result<Merchant> {
        if !has_prefix(id, "mer") {
            return Err(Error::NotFound("merchant"));
        }
        self.store.find_merchant(id).await?.ok_or(Error::NotFound("merchant"))
    }

    pub async fn merchants_owned_by(&self, owner: &Account) -> Result<Vec<Merchant>> {
        Ok(self.store.find_merchants_by_owner(&owner.id).await?)
    }

    /// Fills the fields derived from configuration: the page URL and a default image.
    pub(crate) fn finish_product(&self, mut p: Product) -> Product {
        p.url = format!("{}/p/{}", self.config.public_url, p.id);
        if p.image_url.is_empty() {
            p.image_url = format!("{}/p/{}/image.svg", self.config.public_url, p.id);
        } else if p.image_url.starts_with('/') {
            // An uploaded image: stored as its path here, so a new public URL still finds it.
            p.image_url = format!("{}{}", self.config.public_url, p.image_url);
        }
        p
    }

    pub async fn product(&self, id: &str) -> Result<Product> {
        if !has_prefix(id, "prod") {
            return Err(Error::NotFound("product"));
        }
        let p = self.store.find_products(&[id.to_string()]).await?.pop().ok_or(Error::NotFound("product"))?;
        Ok(self.finish_product(p))
    }

    pub async fn merchant_products(&self, merchant_id: &str) -> Result<Vec<Product>> {
        let list = self.store.find_products_by_merchant(merchant_id).await?;
        Ok(list.into_iter().map(|p| self.finish_product(p)).collect())
    }

    /// The merchant's own product, or 404: another merchant's product is never revealed.
    async fn own_product(&self, who: &Principal, id: &str) -> Result<Product> {
        let merchant = who.merchant()?;
        let p = self.product(id).await?;
        if p.merchant_id != merchant.id {
            return Err(Error::NotFound("product"));
        }
        Ok(p)
    }

    pub async fn create_product(&self, who: &Principal, input: ProductInput) -> Result<Product> {
        let merchant = who.merchant()?.clone();
        let mut e = Errors::default();
        let name = short_text(&mut e, "name", &input.name, 120, true);
        let description = short_text(&mut e, "description", input.description.as_deref().unwrap_or(""), 5000, false);
        let kind = e.take(ProductKind::parse("kind", &input.kind));
        let image_url = input.image_url.as_deref().and_then(|u| web_url(&mut e, "image_url", u)).unwrap_or_default();
        let return_policy = match input.return_policy.as_deref() {
            Some(r) => short_text(&mut e, "return_policy", r, 2000, false),
            None => merchant.return_policy.clone(),
        };

        let planned = plan_variants(&mut e, &input.options, input.variants.as_deref());
        let sizes_ok = planned.is_some();
        let (options, given) = planned.unwrap_or_default();
        let donation = match (kind, &input.donation) {
            (Some(ProductKind::Donation), Some(d)) => {
                if d.min < 1 || d.max < d.min || d.max >= 10_000_000_000 {
                    e.push("donation", "needs 1 ≤ min ≤ max (minor units)");
                }
                if sizes_ok && (given.len() != 1 || !options.is_empty()) {
                    e.push("options", "a donation has no options");
                }
                Some(d.clone())
            }
            (Some(ProductKind::Donation), None) => {
                e.push("donation", "is required for a donation: {\"min\": …, \"max\": …}");
                None
            }
            (_, Some(_)) => {
                e.push("donation", "is only for donation products");
                None
            }
            _ => None,
        };
        let mut seen = BTreeSet::new();
        let mut variants = Vec::new();
        for (i, v) in given.iter().enumerate() {
            let f = format!("variants[{i}]");
            let keys: BTreeSet<&String> = v.options.keys().collect();
            let want: BTreeSet<&String> = options.iter().map(|o| &o.name).collect();
            if keys != want {
                e.push(&format!("{f}.options"), "must give one value for each product option");
            }
            for (k, val) in &v.options {
                if let Some(o) = options.iter().find(|o| &o.name == k) {
                    if !o.values.contains(val) {
                        e.push(&format!("{f}.options.{k}"), format!("{val:?} is not a value of {k}"));
                    }
                }
            }
            if !seen.insert(v.options.clone()) {
                e.push(&format!("{f}.options"), "this combination is listed twice");
            }
            let price = match (&donation, v.price.or(input.price)) {
                (Some(d), _) => d.min,
                (None, Some(p)) => {
                    if let Err(fe) = Money::parse_minor(&format!("{f}.price"), p, merchant.currency) {
                        e.0.push(fe);
                    }
                    p
                }
                // A donation without its range is reported once, on `donation`.
                (None, None) if kind == Some(ProductKind::Donation) => 0,
                (None, None) => {
                    e.push(&format!("{f}.price"), "is required (or give a product-level price)");
                    0
                }
            };
            let inv = v.inventory.clone().or_else(|| input.inventory.clone());
            let inv = match inv {
                Some(i) => inventory(&mut e, &format!("{f}.inventory"), &i),
                None => Inventory { kind: InventoryType::Infinite, quantity: None },
            };
            let sku = match &v.sku {
                Some(s) => short_text(&mut e, &format!("{f}.sku"), s, 64, true),
                None => default_sku(&v.options, &options),
            };
            variants.push(Variant {
                id: new_id("var"),
                sku,
                options: v.options.clone(),
                price,
                available: variant_available(&inv),
                inventory: inv,
            });
        }
        let rates = shipping_rates(&mut e, &input.shipping_rates, &merchant);
        match kind {
            Some(ProductKind::Physical) if input.shipping_rates.is_empty() => {
                e.push("shipping_rates", "a physical product needs at least one shipping rate")
            }
            Some(ProductKind::Digital | ProductKind::Donation) if !input.shipping_rates.is_empty() => {
                e.push("shipping_rates", "only physical products ship")
            }
            _ => {}
        }
        e.finish()?;
        let product = Product {
            id: new_id("prod"),
            merchant_id: merchant.id.clone(),
            name,
            description,
            kind: kind.unwrap(),
            url: String::new(),
            image_url,
            currency: merchant.currency,
            options,
            variants,
            shipping_rates: rates,
            return_policy,
            donation,
            file: None,
            created_at: now_micros(),
        };
        self.store.insert_product(&product).await?;
        tracing::info!(product_id = %product.id, merchant_id = %merchant.id, "product created");
        Ok(self.finish_product(product))
    }

    pub async fn update_product(&self, who: &Principal, id: &str, input: ProductUpdate) -> Result<Product> {
        let mut p = self.own_product(who, id).await?;
        let merchant = who.merchant()?;
        let mut e = Errors::default();
        if let Some(n) = &input.name {
            p.name = short_text(&mut e, "name", n, 120, true);
        }
        if let Some(d) = &input.description {
            p.description = short_text(&mut e, "description", d, 5000, false);
        }
        if let Some(u) = &input.image_url {
            p.image_url = web_url(&mut e, "image_url", u).unwrap_or_default();
        }
        if let Some(r) = &input.return_policy {
            p.return_policy = short_text(&mut e, "return_policy", r, 2000, false);
        }
        if let Some(rates) = &input.shipping_rates {
            p.shipping_rates = shipping_rates(&mut e, rates, merchant);
            match p.kind {
                ProductKind::Physical if rates.is_empty() => {
                    e.push("shipping_rates", "a physical product needs at least one shipping rate")
                }
                ProductKind::Digital | ProductKind::Donation if !rates.is_empty() => {
                    e.push("shipping_rates", "only physical products ship")
                }
                _ => {}
            }
        }
        e.finish()?;
        // Stored as given: the default image is derived on every read.
        if p.image_url.ends_with(&format!("/p/{}/image.svg", p.id)) {
            p.image_url.clear();
        } else if let Some(path) =
            p.image_url.strip_prefix(&self.config.public_url).filter(|r| r.starts_with("/api/v1/media/"))
        {
            p.image_url = path.to_string();
        }
        self.store.update_product(&p).await?;
        self.forget_products([&p.id]);
        self.product(id).await
    }

    pub async fn update_variant(
        &self,
        who: &Principal,
        id: &str,
        variant_id: &str,
        input: VariantUpdate,
    ) -> Result<Product> {
        let p = self.own_product(who, id).await?;
        let mut v = p.variants.iter().find(|v| v.id == variant_id).cloned().ok_or(Error::NotFound("variant"))?;
        let mut e = Errors::default();
        if let Some(s) = &input.sku {
            v.sku = short_text(&mut e, "sku", s, 64, true);
        }
        if let Some(price) = input.price {
            if p.kind == ProductKind::Donation {
                e.push("price", "a donation's amount is chosen by the shopper; change the product's donation range");
            } else if let Err(fe) = Money::parse_minor("price", price, p.currency) {
                e.0.push(fe);
            }
            v.price = price;
        }
        if let Some(inv) = &input.inventory {
            v.inventory = inventory(&mut e, "inventory", inv);
        }
        e.finish()?;
        self.store.update_variant(&p.id, &v).await?;
        self.forget_products([&p.id]);
        self.product(id).await
    }
}

impl Services {
    /// The owner acting for one of their merchants (the merchant pages).
    pub async fn act_as_merchant(&self, owner: &Account, merchant_id: Option<&str>) -> Result<Option<Principal>> {
        let owned = self.store.find_merchants_by_owner(&owner.id).await?;
        let chosen = match merchant_id.filter(|m| !m.is_empty()) {
            Some(id) => owned.into_iter().find(|m| m.id == id),
            None => owned.into_iter().next(),
        };
        let Some(merchant) = chosen else { return Ok(None) };
        let account = self.account(&merchant.account_id).await?;
        Ok(Some(Principal::Merchant { merchant: Box::new(merchant), account }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any option set, up to 20 options of 50 values (50^20 combinations): the plan answers
        /// at once. A set out of bounds is refused with no variant made; one in bounds makes
        /// exactly the product of its value counts, at most 100.
        #[test]
        fn option_sets_are_sized_before_any_variant_is_made(counts in proptest::collection::vec(0usize..=50, 0..=20)) {
            let options: Vec<OptionInput> = counts
                .iter()
                .enumerate()
                .map(|(i, n)| OptionInput { name: format!("o{i}"), values: (0..*n).map(|j| format!("v{j}")).collect() })
                .collect();
            let mut e = Errors::default();
            let plan = plan_variants(&mut e, &options, None);
            let product = counts.iter().try_fold(1usize, |a, n| a.checked_mul(*n));
            let in_bounds = counts.len() <= 3 && counts.iter().all(|n| (1..=30).contains(n)) && product.is_some_and(|p| p <= 100);
            match plan {
                Some((opts, variants)) => {
                    prop_assert!(in_bounds, "{:?} accepted", counts);
                    prop_assert!(e.0.is_empty());
                    prop_assert_eq!(opts.len(), counts.len());
                    prop_assert_eq!(Some(variants.len()), product);
                }
                None => {
                    prop_assert!(!in_bounds, "{:?} refused: {:?}", counts, e.0);
                    prop_assert!(!e.0.is_empty());
                    prop_assert!(e.0.iter().all(|f| f.field == "options" || f.field == "variants" || f.field.starts_with("options[")));
                }
            }
        }

        /// Variants listed by the client: more than 100 are refused before any is looked at.
        #[test]
        fn given_variant_lists_are_sized_first(n in 0usize..300, opts in 0usize..5) {
            let options: Vec<OptionInput> =
                (0..opts).map(|i| OptionInput { name: format!("o{i}"), values: vec!["a".into()] }).collect();
            let variants = vec![VariantInput::default(); n];
            let mut e = Errors::default();
            let plan = plan_variants(&mut e, &options, Some(&variants));
            prop_assert_eq!(plan.is_some(), (1..=100).contains(&n) && opts <= 3);
            if let Some((_, v)) = plan {
                prop_assert_eq!(v.len(), n);
            }
        }
    }

    #[test]
    fn the_issue_option_set_is_refused_at_once() {
        // 8 options of 10 values: 10^8 combinations, which the old code built before counting.
        let options: Vec<OptionInput> = (0..8)
            .map(|i| OptionInput { name: format!("o{i}"), values: (0..10).map(|j| format!("v{j}")).collect() })
            .collect();
        let started = std::time::Instant::now();
        let mut e = Errors::default();
        assert!(plan_variants(&mut e, &options, None).is_none());
        assert_eq!(e.0[0].field, "options");
        // Three options of 30 values are each in bounds, but make 27 000 variants.
        let mut e = Errors::default();
        let big: Vec<OptionInput> = (0..3)
            .map(|i| OptionInput { name: format!("o{i}"), values: (0..30).map(|j| format!("v{j}")).collect() })
            .collect();
        assert!(plan_variants(&mut e, &big, None).is_none());
        assert_eq!(e.0.len(), 1);
        assert!(e.0[0].message.contains("27000 combinations"), "{}", e.0[0].message);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
