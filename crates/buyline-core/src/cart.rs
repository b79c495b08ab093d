//! Hashtag carts (the #AmazonCart pattern): the records, and the rule that decides what a
//! post carrying a merchant's cart hashtag does. The rule is a pure function of what the
//! service read, so every edge case is tested without a database.

use crate::model::{Account, Merchant, NewPost, Post, Product, Variant};
use crate::order::{NewEvent, Receipt};
use crate::types::{Currency, ProductKind};
use serde::Serialize;
use std::collections::BTreeMap;

/// The key a hashtag is matched on: without `#`, lower-cased (twitter-text matches hashtags
/// case-insensitively, so `#AcmeCart` and `#acmecart` are one tag).
pub fn tag_key(tag: &str) -> String {
    tag.trim().trim_start_matches(['#', '＃']).to_lowercase()
}

/// A merchant's cart hashtag for one country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartTag {
    pub key: String,
    pub merchant_id: String,
    pub country: String,
    /// As the merchant wrote it, with `#`.
    pub tag: String,
}

/// A line in a shopper's cart with one merchant, as stored.
#[derive(Debug, Clone)]
pub struct CartItemRecord {
    pub id: String,
    pub account_id: String,
    pub merchant_id: String,
    pub product_id: String,
    pub variant_id: String,
    pub quantity: i64,
    pub source_post_id: Option<String>,
    pub created_at: i64,
}

/// A cart line as clients see it, priced at today's price.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CartItem {
    pub id: String,
    pub product_id: String,
    pub variant_id: String,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub quantity: i64,
    pub unit_price: i64,
    /// False when the variant has sold out since it was added.
    pub available: bool,
    pub image_url: String,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub added_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CartMerchant {
    pub id: String,
    pub handle: String,
    pub name: String,
}

/// The shopper's cart with one merchant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Cart {
    pub merchant_id: String,
    pub merchant: CartMerchant,
    pub currency: Currency,
    pub items: Vec<CartItem>,
    /// Sum of the available lines at today's prices.
    pub subtotal: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Carts {
    pub data: Vec<Cart>,
}

/// A shopper's consent for a merchant to fill their cart from hashtag replies.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MerchantLink {
    pub merchant_id: String,
    pub handle: String,
    pub name: String,
    /// Country → hashtag.
    pub cart_hashtags: BTreeMap<String, String>,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub linked_at: i64,
}

/// Where a hashtag reply's job stands: waiting for the cart worker, or answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartJobState {
    Pending,
    Done,
}

impl CartJobState {
    pub fn as_str(self) -> &'static str {
        match self {
            CartJobState::Pending => "pending",
            CartJobState::Done => "done",
        }
    }
}

/// A post with a cart hashtag waiting to be answered.
#[derive(Debug, Clone)]
pub struct CartJob {
    pub post_id: String,
    pub account_id: String,
    /// The post it replied to when it was written (`None`: not a reply).
    pub parent_id: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
}

/// Everything one processed job writes, in one transaction with the job's `done` mark.
#[derive(Debug, Clone)]
pub struct CartResult {
    pub job_post_id: String,
    pub outcome: Outcome,
    pub item: Option<CartItemRecord>,
    /// The merchant's answer in the thread (`None` closes a job whose post is gone).
    pub reply: Option<NewPost>,
    pub notification: Option<Receipt>,
    pub event: Option<NewEvent>,
}

/// What became of a post with a cart hashtag; stored as the job's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Added,
    AlreadyInCart,
    NotAReply,
    ParentDeleted,
    WrongCountry,
    NotLinked,
    NoProduct,
    ChooseVariant,
    KindRefused,
    SoldOut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Added => "added",
            Outcome::AlreadyInCart => "already_in_cart",
            Outcome::NotAReply => "not_a_reply",
            Outcome::ParentDeleted => "parent_deleted",
            Outcome::WrongCountry => "wrong_country",
            Outcome::NotLinked => "not_linked",
            Outcome::NoProduct => "no_product",
            Outcome::ChooseVariant => "choose_variant",
            Outcome::KindRefused => "kind_refused",
            Outcome::SoldOut => "sold_out",
        }
    }
}

/// A link to a product page found in a post: `/p/{product_id}`, optionally `?variant=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductLink {
    pub product_id: String,
    pub variant_id: Option<String>,
}

/// The product links in a post (its `http(s)://` words, then its other URL entities), in
/// order. Any host is accepted (the post may carry the public URL of another deployment);
/// what matters is the product id, and the service checks that it is the merchant's.
pub fn product_links(post: &Post) -> Vec<ProductLink> {
    let mut out: Vec<ProductLink> = Vec::new();
    for u in crate::text::links(&post.text).iter().chain(&post.entities.urls) {
        let raw = if u.url.contains("://") { u.url.clone() } else { format!("http://{}", u.url) };
        let Ok(parsed) = url::Url::parse(&raw) else { continue };
        let mut segs = parsed.path_segments().into_iter().flatten().filter(|s| !s.is_empty());
        if let (Some("p"), Some(id), None) = (segs.next(), segs.next(), segs.next()) {
            if crate::ids::has_prefix(id, "prod") {
                let variant = parsed.query_pairs().find(|(k, _)| k == "variant").map(|(_, v)| v.to_string());
                let link = ProductLink { product_id: id.to_string(), variant_id: variant };
                if !out.contains(&link) {
                    out.push(link);
                }
            }
        }
    }
    out
}

/// What the service read about a post with a cart hashtag.
#[derive(Clone, Copy)]
pub struct Situation<'a> {
    pub shopper: &'a Account,
    pub tag: &'a CartTag,
    pub merchant: &'a Merchant,
    /// The post replied to; `None` with `is_reply` means it was deleted.
    pub is_reply: bool,
    pub parent: Option<&'a Post>,
    pub linked: bool,
    /// The first of the merchant's products the parent links (or carries), with the
    /// variant the link names.
    pub product: Option<(&'a Product, Option<&'a str>)>,
    /// Variant ids already in the shopper's cart with this merchant.
    pub in_cart: &'a [String],
}

/// The rule. Checked in this order, so the answer names the first thing to fix.
pub fn decide<'a>(s: &Situation<'a>) -> (Outcome, Option<&'a Variant>) {
    if !s.is_reply {
        return (Outcome::NotAReply, None);
    }
    if s.parent.is_none() {
        return (Outcome::ParentDeleted, None);
    }
    if s.tag.country != s.shopper.country {
        return (Outcome::WrongCountry, None);
    }
    if !s.linked {
        return (Outcome::NotLinked, None);
    }
    let Some((product, variant_id)) = s.product else { return (Outcome::NoProduct, None) };
    if product.kind == ProductKind::Donation || !s.merchant.cart_kinds.contains(&product.kind) {
        return (Outcome::KindRefused, None);
    }
    let variant = match variant_id {
        Some(id) => match product.variants.iter().find(|v| v.id == id) {
            Some(v) => v,
            None => return (Outcome::NoProduct, None),
        },
        None => match product.variants.as_slice() {
            [only] => only,
            many => {
                // Several choices but only one left to buy: that one is what they want.
                let mut available = many.iter().filter(|v| v.available);
                match (available.next(), available.next()) {
                    (None, _) => return (Outcome::SoldOut, None),
                    (Some(one), None) => one,
                    _ => return (Outcome::ChooseVariant, None),
                }
            }
        },
    };
    if !variant.available {
        return (Outcome::SoldOut, Some(variant));
    }
    if s.in_cart.contains(&variant.id) {
        return (Outcome::AlreadyInCart, Some(variant));
    }
    (Outcome::Added, Some(variant))
}

/// `Tee (M, red)`: the product name with the chosen options, kept short for a reply.
pub fn item_label(product: &Product, variant: Option<&Variant>) -> String {
    let mut name: String = product.name.chars().take(60).collect();
    if name.len() < product.name.len() {
        name.push('…');
    }
    match variant {
        Some(v) if !v.options.is_empty() && product.variants.len() > 1 => {
            // In the order the product lists its options.
            let opts: Vec<&str> =
                product.options.iter().filter_map(|o| v.options.get(&o.name).map(String::as_str)).collect();
            format!("{name} ({})", opts.join(", "))
        }
        _ => name,
    }
}

/// The merchant's answer in the thread, addressed to the shopper. `base` is the public URL.
pub fn reply_text(
    outcome: Outcome,
    s: &Situation<'_>,
    variant: Option<&Variant>,
    base: &str,
    own_tag: Option<&str>,
) -> String {
    let who = format!("@{}", s.shopper.handle);
    let m = &s.merchant.name;
    let tag = &s.tag.tag;
    let label = s.product.map(|(p, _)| item_label(p, variant)).unwrap_or_default();
    let product_url = s.product.map(|(p, _)| format!("{base}/p/{}", p.id)).unwrap_or_default();
    match outcome {
        Outcome::Added => format!("{who} Added {label} to your cart. Check out when you're ready: {base}/cart"),
        Outcome::AlreadyInCart => format!("{who} {label} is already in your cart: {base}/cart"),
        Outcome::NotAReply => {
            format!("{who} Reply with {tag} to a post of ours that links a product, and we'll add it to your cart.")
        }
        Outcome::ParentDeleted => format!("{who} That post was deleted, so nothing was added to your cart."),
        Outcome::WrongCountry => match own_tag {
            Some(t) => format!("{who} {tag} is our cart for {}. Where you are, reply with {t} instead.", s.tag.country),
            None => format!(
                "{who} {tag} is our cart for {}; {m} has no hashtag cart for {} yet, so nothing was added.",
                s.tag.country, s.shopper.country
            ),
        },
        Outcome::NotLinked => format!(
            "{who} To add items with {tag}, link your account to {m} first: {base}/connect/{} and then reply again.",
            s.merchant.handle
        ),
        Outcome::NoProduct => format!(
            "{who} That post doesn't link one of {m}'s products, so nothing was added. Reply with {tag} to one that does."
        ),
        Outcome::ChooseVariant => format!("{who} {label} comes in several options. Pick yours here: {product_url}"),
        Outcome::KindRefused => match s.product.map(|(p, _)| p.kind) {
            Some(ProductKind::Donation) => {
                format!("{who} Donations can't go in a cart. You can give here: {product_url}")
            }
            Some(kind) => format!(
                "{who} {m} doesn't add {} products to carts by hashtag. You can buy {label} here: {product_url}",
                kind.as_str()
            ),
            None => format!("{who} That can't go in a cart."),
        },
        Outcome::SoldOut => format!("{who} Sorry, {label} is sold out, so it wasn't added to your cart."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountKind, Author, Inventory, InventoryType, ProductOption};
    use crate::text::PostText;
    use crate::types::MerchantKind;

    fn shopper(country: &str) -> Account {
        Account {
            id: "acct_1".into(),
            handle: "ann".into(),
            display_name: "Ann".into(),
            email: None,
            country: country.into(),
            kind: AccountKind::Person,
            bio: String::new(),
            created_at: 0,
        }
    }

    fn merchant() -> Merchant {
        Merchant {
            id: "mer_1".into(),
            account_id: "acct_m".into(),
            owner_account_id: "acct_o".into(),
            handle: "acme".into(),
            name: "Acme".into(),
            kind: MerchantKind::Retailer,
            country: "US".into(),
            currency: Currency::Usd,
            webhook_url: None,
            cart_hashtags: BTreeMap::from([("US".into(), "#AcmeCart".into()), ("GB".into(), "#AcmeBasket".into())]),
            cart_kinds: vec![ProductKind::Physical],
            tax_rates: BTreeMap::new(),
            return_policy: String::new(),
            created_at: 0,
            version: 0,
        }
    }

    fn variant(id: &str, size: &str, qty: Option<i64>) -> Variant {
        Variant {
            id: id.into(),
            sku: id.into(),
            options: BTreeMap::from([("size".into(), size.into())]),
            price: 2500,
            inventory: Inventory {
                kind: if qty.is_some() { InventoryType::Finite } else { InventoryType::Infinite },
                quantity: qty,
            },
            available: qty.is_none_or(|q| q > 0),
        }
    }

    fn product(kind: ProductKind, variants: Vec<Variant>) -> Product {
        Product {
            id: "prod_1".into(),
            merchant_id: "mer_1".into(),
            name: "Tee".into(),
            description: String::new(),
            kind,
            url: String::new(),
            image_url: String::new(),
            currency: Currency::Usd,
            options: vec![ProductOption { name: "size".into(), values: vec!["S".into(), "M".into()] }],
            variants,
            shipping_rates: vec![],
            return_policy: String::new(),
            donation: None,
            file: None,
            created_at: 0,
            version: 0,
        }
    }

    fn post(text: &str) -> Post {
        let t = PostText::parse("text", text).unwrap();
        Post {
            id: "post_1".into(),
            author: Author { id: "acct_m".into(), handle: "acme".into(), display_name: "Acme".into() },
            text: t.text,
            created_at: 0,
            reply_to: None,
            product_id: None,
            entities: t.entities,
        }
    }

    fn us_tag() -> CartTag {
        CartTag { key: "acmecart".into(), merchant_id: "mer_1".into(), country: "US".into(), tag: "#AcmeCart".into() }
    }

    #[test]
    fn keys_ignore_case_and_the_hash() {
        assert_eq!(tag_key("#AcmeCart"), "acmecart");
        assert_eq!(tag_key("ACMECART"), "acmecart");
        assert_eq!(tag_key("＃AcmeCart"), "acmecart");
    }

    #[test]
    fn finds_product_links_with_and_without_scheme() {
        let p = post("New tee! https://shop.example/p/prod_abc?variant=var_m and https://buyline.com/p/prod_def.");
        assert_eq!(
            product_links(&p),
            vec![
                ProductLink { product_id: "prod_abc".into(), variant_id: Some("var_m".into()) },
                ProductLink { product_id: "prod_def".into(), variant_id: None },
            ]
        );
        assert!(product_links(&post("https://x.example/u/acme and https://x.example/p/")).is_empty());
    }

    #[test]
    fn each_edge_case_gets_its_answer() {
        let (ann, m, tag, parent) = (shopper("US"), merchant(), us_tag(), post("x"));
        let tee = product(ProductKind::Physical, vec![variant("var_s", "S", Some(0)), variant("var_m", "M", Some(3))]);
        let s = Situation {
            shopper: &ann,
            tag: &tag,
            merchant: &m,
            is_reply: true,
            parent: Some(&parent),
            linked: true,
            product: Some((&tee, Some("var_m"))),
            in_cart: &[],
        };
        assert_eq!(decide(&s).0, Outcome::Added);
        let in_cart = vec!["var_m".to_string()];
        assert_eq!(decide(&Situation { in_cart: &in_cart, ..s }).0, Outcome::AlreadyInCart);
        assert_eq!(decide(&Situation { product: Some((&tee, Some("var_s"))), ..s }).0, Outcome::SoldOut);
        // No variant named, one left: that one.
        let (o, v) = decide(&Situation { product: Some((&tee, None)), ..s });
        assert_eq!((o, v.map(|v| v.id.as_str())), (Outcome::Added, Some("var_m")));
        assert_eq!(decide(&Situation { product: Some((&tee, Some("var_zzz"))), ..s }).0, Outcome::NoProduct);
        assert_eq!(decide(&Situation { product: None, ..s }).0, Outcome::NoProduct);
        assert_eq!(decide(&Situation { linked: false, ..s }).0, Outcome::NotLinked);
        assert_eq!(decide(&Situation { is_reply: false, parent: None, ..s }).0, Outcome::NotAReply);
        assert_eq!(decide(&Situation { parent: None, ..s }).0, Outcome::ParentDeleted);
        let gb = shopper("GB");
        assert_eq!(decide(&Situation { shopper: &gb, ..s }).0, Outcome::WrongCountry);
        let digital = product(ProductKind::Digital, vec![variant("var_d", "S", None)]);
        assert_eq!(decide(&Situation { product: Some((&digital, None)), ..s }).0, Outcome::KindRefused);
        let mut open = merchant();
        open.cart_kinds.push(ProductKind::Digital);
        assert_eq!(decide(&Situation { merchant: &open, product: Some((&digital, None)), ..s }).0, Outcome::Added);
        let donation = product(ProductKind::Donation, vec![variant("var_g", "S", None)]);
        assert_eq!(
            decide(&Situation { merchant: &open, product: Some((&donation, None)), ..s }).0,
            Outcome::KindRefused
        );
        let two = product(ProductKind::Physical, vec![variant("var_a", "S", None), variant("var_b", "M", None)]);
        assert_eq!(decide(&Situation { product: Some((&two, None)), ..s }).0, Outcome::ChooseVariant);
    }

    #[test]
    fn replies_fit_a_post_and_name_what_to_do() {
        let (ann, m, tag, parent) = (shopper("GB"), merchant(), us_tag(), post("x"));
        let mut tee = product(ProductKind::Physical, vec![variant("var_m", "M", None), variant("var_l", "L", None)]);
        tee.name = "A very long product name that goes on and on and on and on and on and on and on".into();
        let s = Situation {
            shopper: &ann,
            tag: &tag,
            merchant: &m,
            is_reply: true,
            parent: Some(&parent),
            linked: true,
            product: Some((&tee, None)),
            in_cart: &[],
        };
        let base = "https://buyline.example";
        let all = [
            Outcome::Added,
            Outcome::AlreadyInCart,
            Outcome::NotAReply,
            Outcome::ParentDeleted,
            Outcome::WrongCountry,
            Outcome::NotLinked,
            Outcome::NoProduct,
            Outcome::ChooseVariant,
            Outcome::KindRefused,
            Outcome::SoldOut,
        ];
        for o in all {
            let text = reply_text(o, &s, tee.variants.first(), base, Some("#AcmeBasket"));
            assert!(PostText::parse("text", &text).is_ok(), "{o:?} reply too long: {text}");
            assert!(text.starts_with("@ann "), "{text}");
        }
        let added = reply_text(Outcome::Added, &s, tee.variants.first(), base, None);
        assert!(added.contains("Added A very long") && added.contains("… (M)") && added.ends_with("/cart"), "{added}");
        let wrong = reply_text(Outcome::WrongCountry, &s, None, base, Some("#AcmeBasket"));
        assert!(wrong.contains("reply with #AcmeBasket"), "{wrong}");
        let link = reply_text(Outcome::NotLinked, &s, None, base, None);
        assert!(link.contains("https://buyline.example/connect/acme"), "{link}");
    }
}
