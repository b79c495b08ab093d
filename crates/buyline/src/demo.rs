//! Demo content for a first run on an empty database: a merchant of each kind with products
//! and posts, and a US shopper who follows them. Everything goes through the same services
//! the API uses, so the demo is also a smoke test of them.

use anyhow::Context;
use buyline_core::model::{DonationRange, Inventory, InventoryType};
use buyline_core::service::{
    MerchantInput, OptionInput, PostInput, ProductInput, ShippingRateInput, SignUpInput, VariantInput,
};
use buyline_core::{Principal, Services};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What a person needs to try the demo; kept (0600) in the data dir and printed at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoCredentials {
    pub shopper_handle: String,
    pub shopper_password: String,
    pub owner_handle: String,
    pub owner_password: String,
    /// Merchant handle → its secret API key.
    pub merchant_keys: BTreeMap<String, String>,
}

impl DemoCredentials {
    pub fn banner(&self) -> String {
        let mut s = format!(
            "Demo shopper: log in as {} with password {}\nDemo merchant owner: {} / {}\n",
            self.shopper_handle, self.shopper_password, self.owner_handle, self.owner_password
        );
        for (h, k) in &self.merchant_keys {
            s.push_str(&format!("Merchant @{h} API key: {k}\n"));
        }
        s
    }
}

const FILE: &str = "demo-credentials.json";

fn password() -> String {
    // Readable but unguessable: the demo may run on a reachable host.
    buyline_core::ids::new_secret("demo")[..17].to_string()
}

fn shirt_stock(size: &str, colour: &str) -> i64 {
    match (size, colour) {
        ("L", "blue") => 0, // shows a sold-out combination in the picker
        ("M", "red") => 12,
        _ => 5,
    }
}

/// Seeds the demo when the database has no accounts yet; otherwise returns the saved
/// credentials, if any.
pub async fn seed_if_empty(
    services: &Services,
    data_dir: &Path,
    blobs: &buyline_web::blobs::Blobs,
) -> anyhow::Result<Option<DemoCredentials>> {
    let path = data_dir.join(FILE);
    if services.account_count().await? > 0 {
        return Ok(std::fs::read_to_string(&path).ok().and_then(|s| serde_json::from_str(&s).ok()));
    }
    let creds = match seed(services, blobs).await {
        Ok(c) => c,
        // Another process sharing this database seeded it first (scale-out start-up).
        Err(e)
            if e.downcast_ref::<buyline_core::Error>()
                .is_some_and(|e| matches!(e, buyline_core::Error::Conflict { .. })) =>
        {
            tracing::info!("demo content was created by another process");
            return Ok(None);
        }
        Err(e) => return Err(e).context("seeding demo content"),
    };
    crate::config::write_private(&path, &serde_json::to_string_pretty(&creds)?)?;
    tracing::info!("demo content created");
    Ok(Some(creds))
}

async fn seed(s: &Services, blobs: &buyline_web::blobs::Blobs) -> anyhow::Result<DemoCredentials> {
    let owner_password = password();
    let (owner, _) = s
        .sign_up(SignUpInput {
            handle: "demo_owner".into(),
            email: "owner@demo.buyline.test".into(),
            password: owner_password.clone(),
            country: "US".into(),
            display_name: Some("Demo Merchant Owner".into()),
        })
        .await?;
    let owner = Principal::Shopper(owner);
    let mut keys = BTreeMap::new();
    let merchant = |handle: &str, name: &str, kind: &str| MerchantInput {
        name: name.into(),
        handle: handle.into(),
        kind: kind.into(),
        country: "US".into(),
        webhook_url: None,
        cart_hashtags: Some(BTreeMap::from([("US".to_string(), format!("#{}Cart", handle_title(handle)))])),
        // The artist sells downloads, and lets shoppers put them in the cart too.
        cart_kinds: (kind == "artist").then(|| vec!["physical".into(), "digital".into()]),
        return_policy: None,
    };
    let specs = [
        merchant("acme", "Acme Outfitters", "retailer"),
        merchant("northwind", "Northwind Coffee", "brand"),
        merchant("mayaprints", "Maya Lin Prints", "artist"),
        merchant("cleanrivers", "Clean Rivers Fund", "nonprofit"),
    ];
    let mut principals = Vec::new();
    for spec in specs {
        let created = s.create_merchant(&owner, spec).await?;
        keys.insert(created.merchant.handle.clone(), created.api_key.clone());
        principals.push(s.authenticate(&created.api_key, None).await?);
    }
    let [acme, northwind, maya, rivers] = <[Principal; 4]>::try_from(principals).expect("four merchants");

    let us = |name: &str, price: i64| ShippingRateInput { name: name.into(), price, countries: vec!["US".into()] };
    let tee = s
        .create_product(
            &acme,
            ProductInput {
                name: "Buyline Tee".into(),
                kind: "physical".into(),
                description: Some("Soft organic-cotton T-shirt with a small embroidered cart.".into()),
                return_policy: Some("Free returns within 30 days, unworn with tags.".into()),
                options: vec![
                    OptionInput { name: "size".into(), values: vec!["S".into(), "M".into(), "L".into()] },
                    OptionInput { name: "colour".into(), values: vec!["red".into(), "blue".into()] },
                ],
                variants: Some(
                    ["S", "M", "L"]
                        .iter()
                        .flat_map(|size| {
                            ["red", "blue"].iter().map(move |colour| VariantInput {
                                sku: Some(format!("TEE-{size}-{}", colour.to_uppercase())),
                                options: BTreeMap::from([
                                    ("size".to_string(), size.to_string()),
                                    ("colour".to_string(), colour.to_string()),
                                ]),
                                price: Some(if *size == "L" { 2700 } else { 2500 }),
                                inventory: Some(Inventory {
                                    kind: InventoryType::Finite,
                                    quantity: Some(shirt_stock(size, colour)),
                                }),
                            })
                        })
                        .collect(),
                ),
                shipping_rates: vec![
                    us("Standard (3–5 days)", 500),
                    us("Express (1–2 days)", 1500),
                    ShippingRateInput { name: "International".into(), price: 1200, countries: vec!["GB".into()] },
                ],
                ..Default::default()
            },
        )
        .await?;
    let beans = s
        .create_product(
            &northwind,
            ProductInput {
                name: "House Blend Beans, 340 g".into(),
                kind: "physical".into(),
                description: Some("Chocolatey medium roast, roasted the day it ships.".into()),
                options: vec![OptionInput { name: "grind".into(), values: vec!["whole bean".into(), "ground".into()] }],
                price: Some(1800),
                inventory: Some(Inventory { kind: InventoryType::Infinite, quantity: None }),
                shipping_rates: vec![us("Standard", 600)],
                ..Default::default()
            },
        )
        .await?;
    let print = s
        .create_product(
            &maya,
            ProductInput {
                name: "Desert Dawn — digital print".into(),
                kind: "digital".into(),
                description: Some("High-resolution 6000×4000 PNG, personal-use licence.".into()),
                return_policy: Some("Digital downloads are non-refundable once downloaded.".into()),
                price: Some(1200),
                ..Default::default()
            },
        )
        .await?;
    // The print delivers a file, so it can be bought and downloaded from the start.
    let stored = blobs
        .put_file(DESERT_DAWN_PNG.to_vec())
        .await
        .map_err(|e| anyhow::anyhow!("storing the demo print's file failed: {e:?}"))?;
    let file = buyline_core::model::ProductFile {
        name: "desert-dawn.png".into(),
        content_type: "image/png".into(),
        size: stored.size as i64,
        blob: stored.name,
    };
    s.seed_product_file(&print.id, &file).await?;
    let donation = s
        .create_product(
            &rivers,
            ProductInput {
                name: "Donate to river clean-ups".into(),
                kind: "donation".into(),
                description: Some("Every dollar funds volunteer clean-up days.".into()),
                return_policy: Some("Donations are not refundable.".into()),
                donation: Some(DonationRange { min: 500, max: 50_000 }),
                ..Default::default()
            },
        )
        .await?;
    let post = |text: &str, product: Option<&str>| PostInput {
        text: text.into(),
        reply_to: None,
        product_id: product.map(str::to_string),
    };
    s.create_post(&acme, post("Welcome to Acme Outfitters on Buyline! New drops every Friday.", None)).await?;
    s.create_post(&northwind, post("Fresh roast day ☕ #coffee", None)).await?;
    s.create_post(
        &rivers,
        post(
            "Last weekend 40 volunteers pulled 300 kg of litter from the river. Thank you! #CleanRivers",
            Some(&donation.id),
        ),
    )
    .await?;
    s.create_post(&maya, post("New print: Desert Dawn. Instant download. #art", Some(&print.id))).await?;
    let beans_post = s
        .create_post(&northwind, post("Our House Blend is back in stock. Whole bean or ground.", Some(&beans.id)))
        .await?;
    let tee_post = s
        .create_post(&acme, post("The Buyline Tee is here: red or blue, S to L. Tap Buy to get yours.", Some(&tee.id)))
        .await?;
    // Promoted to US shoppers, so a brand-new one's first timeline has something to buy.
    for (merchant, post_id) in [(&acme, &tee_post.id), (&northwind, &beans_post.id)] {
        s.create_campaign(
            merchant,
            buyline_core::service::CampaignInput { post_id: post_id.clone(), countries: vec!["US".into()] },
        )
        .await?;
    }
    let medium_red = tee.variants.iter().find(|v| v.sku == "TEE-M-RED").map(|v| v.id.clone()).unwrap_or_default();
    s.create_post(
        &acme,
        post(
            &format!(
                "Reply #AcmeCart to put the Buyline Tee (M, red) in your cart: {}/p/{}?variant={medium_red}",
                s.config().public_url,
                tee.id
            ),
            None,
        ),
    )
    .await?;

    let shopper_password = password();
    let (shopper, _) = s
        .sign_up(SignUpInput {
            handle: "demo".into(),
            email: "shopper@demo.buyline.test".into(),
            password: shopper_password.clone(),
            country: "US".into(),
            display_name: Some("Demo Shopper".into()),
        })
        .await?;
    let shopper = Principal::Shopper(shopper);
    for h in ["acme", "northwind", "mayaprints", "cleanrivers"] {
        s.follow(&shopper, h).await?;
    }
    s.create_post(&shopper, post("Just joined Buyline. Following a few shops.", None)).await?;
    Ok(DemoCredentials {
        shopper_handle: "demo".into(),
        shopper_password,
        owner_handle: "demo_owner".into(),
        owner_password,
        merchant_keys: keys,
    })
}

fn handle_title(h: &str) -> String {
    let mut c = h.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The demo print's file: a 1×1 PNG (the demo ships no photographs).
const DESERT_DAWN_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xDE, 0x00, 0x00, 0x00, 0x0C, 0x49,
    0x44, 0x41, 0x54, 0x08, 0xD7, 0x63, 0xF8, 0xCF, 0xC0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xDD, 0x8D, 0xB0,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];
