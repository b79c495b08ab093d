//! The records services read and write, in the shapes clients see (SPEC §3).

use crate::text::Entities;
use crate::types::{Currency, MerchantKind, ProductKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// A person: shopper, and possibly the owner of merchants.
    Person,
    /// The posting account of a merchant.
    Merchant,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Account {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    /// Only shown to the account itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub country: String,
    pub kind: AccountKind,
    pub bio: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// What storage holds to let someone log in; never serialised.
pub struct Credentials {
    pub account: Account,
    pub password_hash: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Author {
    pub id: String,
    pub handle: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Post {
    pub id: String,
    pub author: Author,
    pub text: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    pub reply_to: Option<String>,
    pub product_id: Option<String>,
    pub entities: Entities,
}

#[derive(Debug, Clone)]
pub struct NewPost {
    pub id: String,
    pub author_id: String,
    pub text: String,
    pub created_at: i64,
    pub reply_to: Option<String>,
    pub product_id: Option<String>,
    pub entities: Entities,
}

/// The buy card a timeline item carries when the viewer gets the Buy button.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BuyCard {
    pub product_id: String,
    pub name: String,
    pub image_url: String,
    pub price_min: i64,
    pub price_max: i64,
    pub currency: Currency,
    pub available: bool,
}

#[derive(Debug, Clone, utoipa::ToSchema)]
pub struct TimelineItem {
    /// Shared with the home timeline cache, which hands out the same post to every request.
    #[schema(value_type = Post)]
    pub post: std::sync::Arc<Post>,
    pub promoted: bool,
    /// `null` when the viewer gets no Buy button.
    pub buy: Option<BuyCard>,
    /// For a post with a product whose viewer gets no Buy button (holdout, other market):
    /// the plain product page link.
    pub product_url: Option<String>,
    /// `post` as JSON, rendered once by the home timeline cache: written as it is instead
    /// of serialising `post` again on every request. Always `post`'s own rendering.
    #[schema(ignore)]
    pub post_json: Option<std::sync::Arc<serde_json::value::RawValue>>,
}

impl Serialize for TimelineItem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("TimelineItem", 4)?;
        match &self.post_json {
            Some(json) => m.serialize_field("post", &**json)?,
            None => m.serialize_field("post", &*self.post)?,
        }
        m.serialize_field("promoted", &self.promoted)?;
        m.serialize_field("buy", &self.buy)?;
        m.serialize_field("product_url", &self.product_url)?;
        m.end()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Merchant {
    pub id: String,
    /// The merchant's own posting account.
    pub account_id: String,
    /// The person who created and runs it.
    #[serde(skip)]
    pub owner_account_id: String,
    pub handle: String,
    pub name: String,
    pub kind: MerchantKind,
    pub country: String,
    pub currency: Currency,
    pub webhook_url: Option<String>,
    /// Cart hashtag per shopper country, e.g. `{"US": "#AcmeCart"}`.
    pub cart_hashtags: BTreeMap<String, String>,
    /// The product kinds shoppers may add by hashtag (`physical` by default; `digital` if the
    /// merchant allows it; never `donation`, whose amount the shopper picks at checkout).
    pub cart_kinds: Vec<crate::types::ProductKind>,
    /// Tax rate per destination country in basis points, e.g. `{"US": 825}`.
    pub tax_rates: BTreeMap<String, u32>,
    pub return_policy: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Counts the changes to what a purchase reads of the merchant (see `CatalogSeen`).
    #[serde(skip)]
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ProductOption {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InventoryType {
    Finite,
    Infinite,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Inventory {
    #[serde(rename = "type")]
    pub kind: InventoryType,
    /// Units in stock; `null` for infinite inventory.
    pub quantity: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Variant {
    pub id: String,
    pub sku: String,
    /// Option name → value, e.g. `{"size": "M", "colour": "red"}`.
    pub options: BTreeMap<String, String>,
    pub price: i64,
    pub inventory: Inventory,
    pub available: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShippingRate {
    pub id: String,
    pub name: String,
    pub price: i64,
    pub countries: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DonationRange {
    pub min: i64,
    pub max: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub description: String,
    pub kind: ProductKind,
    /// The public product page.
    pub url: String,
    pub image_url: String,
    pub currency: Currency,
    pub options: Vec<ProductOption>,
    pub variants: Vec<Variant>,
    pub shipping_rates: Vec<ShippingRate>,
    pub return_policy: String,
    /// For donations: the range the shopper picks the amount from, in minor units.
    pub donation: Option<DonationRange>,
    /// A digital product's uploaded file (`null` until the merchant uploads it).
    pub file: Option<ProductFile>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Counts the changes to what a purchase reads of the product: its row, its variants
    /// (their stock aside), its shipping rates and file (see `CatalogSeen`).
    #[serde(skip)]
    pub version: i64,
}

/// The file a digital product delivers, kept in the blob store under its content's name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ProductFile {
    pub name: String,
    pub content_type: String,
    pub size: i64,
    /// The blob's name (`files/{sha256}`); never shown.
    #[serde(skip)]
    pub blob: String,
}

impl Product {
    pub fn price_range(&self) -> (i64, i64) {
        if let Some(d) = &self.donation {
            return (d.min, d.max);
        }
        let min = self.variants.iter().map(|v| v.price).min().unwrap_or(0);
        let max = self.variants.iter().map(|v| v.price).max().unwrap_or(0);
        (min, max)
    }

    pub fn available(&self) -> bool {
        self.variants.iter().any(|v| v.available)
    }

    pub fn buy_card(&self) -> BuyCard {
        let (price_min, price_max) = self.price_range();
        BuyCard {
            product_id: self.id.clone(),
            name: self.name.clone(),
            image_url: self.image_url.clone(),
            price_min,
            price_max,
            currency: self.currency,
            available: self.available(),
        }
    }
}

/// A profile page: the account, its counts and whether the viewer follows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub account: Account,
    pub followers: i64,
    pub following: i64,
    pub followed_by_viewer: bool,
    pub merchant_id: Option<String>,
}

pub fn ser_time<S: serde::Serializer>(micros: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::types::rfc3339(*micros))
}
