//! The catalog: products, options, variants, stock, shipping rates. (Merchants themselves
//! are in `merchants.rs`.)

use super::merchants::web_url;
use super::{Principal, Services};
use crate::error::{Error, Errors, Result};
use crate::ids::{has_prefix, new_id};
use crate::limits::{self, MAX_COUNTRIES, MAX_OPTIONS, MAX_OPTION_VALUES, MAX_SHIPPING_RATES, MAX_VARIANTS};
use crate::model::{DonationRange, Inventory, InventoryType, Merchant, Product, ProductOption, ShippingRate, Variant};
use crate::types::{now_micros, Country, Money, ProductKind};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

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

pub(super) fn short_text(e: &mut Errors, field: &str, s: &str, max: usize, required: bool) -> String {
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
    pub(super) async fn own_product(&self, who: &Principal, id: &str) -> Result<Product> {
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
            version: 0,
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
        self.stock_may_have_grown([&p.id]);
        self.product(id).await
    }

    /// Retires one of the merchant's products: it leaves the catalogue, its buy cards and
    /// checkout; paid orders keep their lines and their download links. Refused (409) while
    /// an order holding it is still open — awaiting its card check, paid and not shipped, or
    /// partly refunded.
    pub async fn archive_product(&self, who: &Principal, id: &str) -> Result<()> {
        let p = self.own_product(who, id).await?;
        let open = [
            crate::order::OrderStatus::RequiresAction,
            crate::order::OrderStatus::Paid,
            crate::order::OrderStatus::PartiallyRefunded,
        ];
        if !self.store.archive_product(&p.id, &p.merchant_id, &open, now_micros()).await? {
            return Err(Error::Conflict {
                message: "this product has open orders: fulfil, cancel or refund them first".into(),
                errors: vec![],
            });
        }
        self.catalog_changed([&p.id]);
        tracing::info!(product_id = %p.id, "product archived");
        Ok(())
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
        self.stock_may_have_grown([&p.id]);
        self.product(id).await
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
