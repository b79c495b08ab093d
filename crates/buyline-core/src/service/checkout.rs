//! Buying: open a checkout, complete it (reserve stock → authorise → commit the order →
//! capture), resume after a 3-D Secure challenge, read orders, set fees, and reconcile what
//! a crash left half-done.
//!
//! Nothing is lost or charged twice because every step is guarded by a conditional write:
//! a checkout is claimed (`open` → `completing`) by one request at a time; stock moves only
//! by a conditional decrement; the processor call carries the key `{checkout}.{attempt}`, so
//! a retry gets the same answer; an order is unique per checkout and per payment; capture
//! posts to the ledger only on the `captured_at is null` → set transition.

use super::{Principal, Services};
use crate::checkout::{quantity, Address, Totals};
use crate::error::{Error, Errors, Result};
use crate::fees::platform_fee;
use crate::ids::{has_prefix, new_id};
use crate::model::{Account, Merchant, Product};
use crate::order::{
    CatalogSeen, Checkout, CheckoutRecord, CheckoutStatus, Fulfillment, NotReserved, Order, OrderLine, OrderStatus,
    PaymentSummary, Receipt, ShippingChoice,
};
use crate::payment::{Authorization, AuthorizeRequest, Card, CardInput, PaymentStatus, ProcessorError};
use crate::rollout::Arm;
use crate::saved::VaultAudit;
use crate::types::{now_micros, Money, ProductKind};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// How long an open checkout (and its price) holds.
const CHECKOUT_TTL: i64 = 30 * 60 * 1_000_000;
/// How long stock stays reserved for a completion in flight.
const RESERVATION_TTL: i64 = 10 * 60 * 1_000_000;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct LineInput {
    pub variant_id: String,
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: Option<i64>,
    /// Donations only: the amount the shopper gives, in minor units.
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct CheckoutInput {
    #[schema(min_items = 1, max_items = 20)]
    pub lines: Vec<LineInput>,
    pub post_id: Option<String>,
}

#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct PaymentInput {
    pub card: Option<CardInput>,
    /// Keep the card for next time (with the vault).
    #[serde(default)]
    pub save: bool,
    pub payment_method_id: Option<String>,
}

impl std::fmt::Debug for PaymentInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaymentInput(***)")
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct CompleteInput {
    pub shipping_address: Option<Address>,
    pub address_id: Option<String>,
    pub shipping_rate_id: Option<String>,
    pub payment: Option<PaymentInput>,
}

/// One tap: lines, address and payment in one call.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct OrderInput {
    #[schema(min_items = 1, max_items = 20)]
    pub lines: Vec<LineInput>,
    pub post_id: Option<String>,
    pub shipping_address: Option<Address>,
    pub address_id: Option<String>,
    pub shipping_rate_id: Option<String>,
    pub payment: Option<PaymentInput>,
}

/// A variant this process found sold out (its stock read short, or a reservation of it
/// failed), kept one second (`cache::TTL`) so a rush of buyers for it is answered
/// `out_of_stock` without touching the database, let alone its writer: a flash sale's
/// thousands of late buyers cost one read per second per process. A reservation this
/// process gives back forgets the mark at once; stock that returns elsewhere shows within
/// the second. It only ever refuses: every sale still takes its stock by the conditional
/// decrement, so the mark cannot oversell.
#[derive(Debug, Clone)]
pub(crate) struct SoldOut {
    pub(crate) product_id: String,
    /// Whose variant it is: the rollout answers before stock does, even on this path.
    merchant_id: String,
    /// The smallest quantity found short.
    quantity: i64,
    name: String,
    /// A donation's errors about its amount come before stock; it never takes this path.
    donation: bool,
}

/// A checkout just priced, with what pricing it read: the merchant and the products.
pub(super) struct Opened {
    pub(super) record: CheckoutRecord,
    pub(super) merchant: Merchant,
    pub(super) products: HashMap<String, Product>,
    /// The versions of the merchant and products it was priced from.
    pub(super) seen: CatalogSeen,
}

struct Validated {
    /// The saved address and card opened for it, to be audited with the write that uses them.
    audits: Vec<VaultAudit>,
    address: Option<Address>,
    shipping: Option<ShippingChoice>,
    card: Card,
    /// Keep the new card (and the new address with it) for one-tap purchases.
    save: bool,
    save_address: bool,
}

impl Services {
    /// The products behind these variants, by variant id, read afresh.
    async fn products_for(&self, variant_ids: &[String]) -> Result<HashMap<String, Product>> {
        let products = self.store.find_products_by_variants(variant_ids).await?;
        let mut by_variant = HashMap::new();
        for p in products {
            for v in p.variants.iter().filter(|v| variant_ids.contains(&v.id)) {
                by_variant.insert(v.id.clone(), p.clone());
            }
        }
        // What was just read is the newest copy for the purchases that follow.
        for (v, p) in &by_variant {
            self.caches.catalog.put(v.clone(), p.clone());
        }
        Ok(by_variant)
    }

    /// The products behind these variants as a purchase prices itself from: through the
    /// one-second cache when `cached` (one load for every buyer of a variant that misses at
    /// once), else afresh. A cached product's stock and even its price may be a second old;
    /// its version is checked where its stock is reserved.
    async fn purchase_products(&self, variant_ids: &[String], cached: bool) -> Result<HashMap<String, Product>> {
        if !cached {
            return self.products_for(variant_ids).await;
        }
        if let [id] = variant_ids {
            let load = || async {
                let mut found = self.store.find_products_by_variants(std::slice::from_ref(id)).await?;
                Ok::<_, crate::error::StoreError>(found.pop())
            };
            let found = self.caches.catalog.get_or_load(id, load).await?;
            return Ok(found.into_iter().map(|p| (id.clone(), p)).collect());
        }
        let hits: Option<HashMap<String, Product>> =
            variant_ids.iter().map(|id| self.caches.catalog.get(id).map(|p| (id.clone(), p))).collect();
        match hits {
            Some(hits) => Ok(hits),
            None => self.products_for(variant_ids).await,
        }
    }

    /// Rates that every physical line can ship to `country` with; one parcel, so a rate
    /// costs the most any of its products charge for it.
    fn shipping_options(products: &[&Product], country: &str) -> Vec<ShippingChoice> {
        let physical: Vec<&&Product> = products.iter().filter(|p| p.kind == ProductKind::Physical).collect();
        let Some(first) = physical.first() else { return vec![] };
        first
            .shipping_rates
            .iter()
            .filter(|r| r.countries.iter().any(|c| c == country))
            .filter_map(|r| {
                let mut price = r.price;
                for p in &physical[1..] {
                    let same = p
                        .shipping_rates
                        .iter()
                        .find(|o| o.name == r.name && o.countries.iter().any(|c| c == country))?;
                    price = price.max(same.price);
                }
                Some(ShippingChoice { id: r.id.clone(), name: r.name.clone(), price })
            })
            .collect()
    }

    fn line_variants(c: &CheckoutRecord) -> Vec<String> {
        c.lines.iter().map(|l| l.variant_id.clone()).collect()
    }

    pub(super) fn checkout_view(
        c: &CheckoutRecord,
        country: &str,
        merchant: &Merchant,
        products: &HashMap<String, Product>,
    ) -> Checkout {
        let list: Vec<&Product> = c.lines.iter().filter_map(|l| products.get(&l.variant_id)).collect();
        let options = Self::shipping_options(&list, country);
        let requires_shipping = c.lines.iter().any(|l| l.kind == ProductKind::Physical);
        let subtotal: i64 = c.lines.iter().map(|l| l.unit_price * l.quantity).sum();
        let shipping = options.first().map(|o| o.price).unwrap_or(0);
        let tax = merchant.tax_rates.get(country).copied().unwrap_or(0);
        let return_policy =
            list.first().map(|p| p.return_policy.clone()).unwrap_or_else(|| merchant.return_policy.clone());
        Checkout {
            id: c.id.clone(),
            status: c.status,
            merchant_id: c.merchant_id.clone(),
            lines: c.lines.clone(),
            shipping_options: options,
            totals: Totals::compute(subtotal, shipping, tax, c.currency),
            requires_shipping,
            return_policy,
            order_id: c.order_id.clone(),
            expires_at: c.expires_at,
        }
    }

    /// Opens a checkout: prices and availability are checked and frozen for 30 minutes.
    pub async fn open_checkout(&self, who: &Principal, input: CheckoutInput) -> Result<Checkout> {
        let shopper = who.shopper()?;
        let o = self.new_checkout(shopper, &input.lines, input.post_id.as_deref(), false).await?;
        self.count_checkout_open(&o.record);
        self.store.insert_checkout(&o.record).await?;
        Ok(Self::checkout_view(&o.record, &shopper.country, &o.merchant, &o.products))
    }

    /// Prices a new checkout and checks it can be bought, from the catalogue read afresh, or
    /// when `cached` from the one-second cache (a purchase that checks the versions it read
    /// when it reserves). From the cache, a shortage is not marked sold out: the caller
    /// looks again afresh before answering.
    pub(super) async fn new_checkout(
        &self,
        shopper: &Account,
        lines: &[LineInput],
        post_id: Option<&str>,
        cached: bool,
    ) -> Result<Opened> {
        let mut e = Errors::default();
        if lines.is_empty() || lines.len() > 20 {
            return Err(Error::field("lines", "must list 1 to 20 items"));
        }
        let ids: Vec<String> = lines.iter().map(|l| l.variant_id.trim().to_string()).collect();
        if let Some(answer) = self.known_sold_out(shopper, lines).await? {
            return Err(answer);
        }
        let returns = self.stock_returns();
        let products = self.purchase_products(&ids, cached).await?;
        // SPEC §2: the rollout answers first. An excluded shopper hears `not_available`
        // before anything about stock, quantities or addresses, so what they may not buy
        // tells them nothing about the shop. The merchant is the first known line's.
        // funnel (issue 15): a holdout shopper is not excluded — they buy the out-of-feed
        // way (the product page), and a checkout they open from a post counts for holdout.
        let mut arm = Arm::Excluded;
        if let Some(p) = ids.iter().find_map(|id| products.get(id)) {
            arm = self.admitted(shopper, &p.merchant_id).await?;
        }
        let mut out = Vec::new();
        let mut merchant_id: Option<String> = None;
        for (i, l) in lines.iter().enumerate() {
            let f = format!("lines[{i}]");
            let Some(p) = products.get(l.variant_id.trim()) else {
                e.push(&format!("{f}.variant_id"), "is not a product variant");
                continue;
            };
            let v = p.variants.iter().find(|v| v.id == l.variant_id.trim()).expect("variant of its product");
            match &merchant_id {
                None => merchant_id = Some(p.merchant_id.clone()),
                Some(m) if *m != p.merchant_id => {
                    e.push(&format!("{f}.variant_id"), "every line must come from the same merchant");
                    continue;
                }
                _ => {}
            }
            if p.kind == ProductKind::Digital && p.file.is_none() {
                e.push(&format!("{f}.variant_id"), "this digital product has no file to deliver yet");
            }
            let q = e.take(quantity(&format!("{f}.quantity"), l.quantity.unwrap_or(1))).unwrap_or(1);
            let unit_price = match (&p.donation, l.amount) {
                (Some(d), Some(a)) if (d.min..=d.max).contains(&a) => a,
                (Some(d), Some(_)) => {
                    e.push(
                        &format!("{f}.amount"),
                        format!(
                            "must be between {} and {}",
                            Money::new(d.min, p.currency).display(),
                            Money::new(d.max, p.currency).display()
                        ),
                    );
                    0
                }
                (Some(_), None) => {
                    e.push(&format!("{f}.amount"), "is required for a donation");
                    0
                }
                (None, Some(_)) => {
                    e.push(&format!("{f}.amount"), "is only for donations");
                    0
                }
                (None, None) => v.price,
            };
            if p.donation.is_some() && q != 1 {
                e.push(&format!("{f}.quantity"), "a donation is given once; change the amount instead");
            }
            if !v.available || v.inventory.quantity.is_some_and(|have| have < q) {
                if !e.0.is_empty() {
                    return Err(Error::Validation(e.0));
                }
                if !cached {
                    self.mark_sold_out(returns, &v.id, &p.id, &p.merchant_id, q, &p.name, p.donation.is_some());
                }
                return Err(Error::OutOfStock(format!("{} is sold out in that choice or quantity", p.name)));
            }
            out.push(OrderLine {
                product_id: p.id.clone(),
                variant_id: v.id.clone(),
                name: p.name.clone(),
                options: v.options.clone(),
                sku: v.sku.clone(),
                quantity: q,
                unit_price,
                kind: p.kind,
                download: None,
            });
        }
        let post_id = post_id.map(str::trim).filter(|s| !s.is_empty());
        if let Some(pid) = post_id {
            // funnel (issue 15): the post must carry one of the products bought.
            let post = if has_prefix(pid, "post") { self.store.find_post(pid).await? } else { None };
            match post {
                None => e.push("post_id", "is not a post that exists"),
                Some(post) if !out.iter().any(|l| post.product_id.as_deref() == Some(l.product_id.as_str())) => {
                    e.push("post_id", "is not a post that carries this product")
                }
                Some(_) => {}
            }
        }
        e.finish()?;
        let merchant = self.purchase_merchant(merchant_id.as_deref().unwrap_or(""), cached).await?;
        let mut seen = CatalogSeen { merchant: (merchant.id.clone(), merchant.version), products: vec![] };
        // Each line's own copy: two lines of one product may come from copies cached at
        // different times, and each must be current.
        for l in &out {
            let seen_here = (l.product_id.clone(), products.get(&l.variant_id).map(|p| p.version).unwrap_or_default());
            if !seen.products.contains(&seen_here) {
                seen.products.push(seen_here);
            }
        }
        let now = now_micros();
        let record = CheckoutRecord {
            id: new_id("chk"),
            shopper_id: shopper.id.clone(),
            merchant_id: merchant.id.clone(),
            post_id: post_id.map(str::to_string),
            lines: out,
            currency: merchant.currency,
            status: CheckoutStatus::Open,
            attempt: 0,
            order_id: None,
            created_at: now,
            expires_at: now + CHECKOUT_TTL,
            from_cart: false,
            arm: post_id.map(|_| arm), // funnel (issue 15)
        };
        Ok(Opened { record, merchant, products, seen })
    }

    /// funnel (issue 15): opening a checkout from a post is an open of that post.
    pub(super) fn count_checkout_open(&self, c: &CheckoutRecord) {
        if let (Some(pid), Some(arm)) = (&c.post_id, c.arm) {
            self.count_open(pid, arm, &c.shopper_id);
        }
    }

    pub async fn checkout(&self, who: &Principal, id: &str) -> Result<Checkout> {
        let shopper = who.shopper()?;
        let c = self.own_checkout(shopper, id).await?;
        let products = self.products_for(&Self::line_variants(&c)).await?;
        let merchant = self.merchant(&c.merchant_id).await?;
        Ok(Self::checkout_view(&c, &shopper.country, &merchant, &products))
    }

    async fn own_checkout(&self, shopper: &Account, id: &str) -> Result<CheckoutRecord> {
        if !has_prefix(id, "chk") {
            return Err(Error::NotFound("checkout"));
        }
        match self.store.find_checkout(id).await? {
            Some(c) if c.shopper_id == shopper.id => Ok(c),
            _ => Err(Error::NotFound("checkout")),
        }
    }

    /// One tap: opens and pays a checkout in one call. Everything is checked before anything
    /// is written, so bad input leaves no checkout behind; the checkout is then written
    /// already claimed (no other request can know its id yet).
    ///
    /// `bound` ties the purchase to the request that asked for it (its `Idempotency-Key`,
    /// or the buy sheet's one-time key): the checkout's id is derived from it, so a retry of
    /// that request — after a timeout, a double tap or a crash of the server that ran it —
    /// finds the purchase already made (or still in flight) instead of starting another.
    pub async fn place_order(&self, who: &Principal, input: OrderInput, bound: Option<&str>) -> Result<Order> {
        let shopper = who.shopper()?;
        let bound_id = bound.map(|b| bound_checkout_id(&shopper.id, b));
        if let Some(id) = &bound_id {
            if let Some(order) = self.resume_bound(who, shopper, id, &input).await? {
                return Ok(order);
            }
        }
        // The first try prices the purchase from the one-second cache; the reservation checks
        // the versions it read. What that try finds wrong before it writes (stock the copy
        // says is short, a mistake) is tried again afresh before it is answered, as is a
        // reservation that finds the copy old; so an old copy never decides an answer. An
        // afresh try can meet a change made in between: once more.
        let mut counted = false;
        for attempt in 0..3 {
            let cached = attempt == 0;
            let opened = self.new_checkout(shopper, &input.lines, input.post_id.as_deref(), cached).await;
            let Opened { mut record, merchant, products, seen } = match opened {
                Err(Error::OutOfStock(_) | Error::Validation(_)) if cached => continue,
                o => o?,
            };
            if !counted {
                self.count_checkout_open(&record);
                counted = true;
            }
            let complete = completion_of(&input);
            let v = self.validate_completion(shopper, &record, &products, &complete).await?;
            if let Some(id) = &bound_id {
                record.id = id.clone();
            }
            record.status = CheckoutStatus::Completing;
            record.attempt = 1;
            // The checkout and its stock in one write: out of stock leaves nothing behind.
            let wanted = wanted(&record);
            let returns = self.stock_returns();
            let expires = now_micros() + RESERVATION_TTL;
            let written = self.store.insert_checkout_reserved(&record, &wanted, expires, &v.audits, &seen).await;
            if written.is_err() {
                // Nothing was written, the opens' audit rows included: they are written alone.
                self.store.insert_vault_audits(&v.audits).await?;
            }
            match written {
                Ok(Ok(())) => return self.pay(shopper, &record, &merchant, v, 1).await,
                // Priced from what is current: the shortage is real, wherever the copy came from.
                Ok(Err(NotReserved::Short(variant))) => return Err(self.short_of(returns, &record, &wanted, &variant)),
                Ok(Err(NotReserved::Changed)) if attempt < 2 => continue,
                Ok(Err(NotReserved::Changed)) => {
                    return Err(Error::Conflict {
                        message: "this product changed while your purchase was placed; try again".into(),
                        errors: vec![],
                    })
                }
                // The same request is being run beside us (its retry raced it): settle through it.
                // Its checkout may be written but not yet committed (its group commit is still
                // on its way to disk), so look again for a moment before answering.
                Err(crate::error::StoreError::Unique(_)) if bound.is_some() => {
                    for _ in 0..40 {
                        if let Some(order) = self.resume_bound(who, shopper, &record.id, &input).await? {
                            return Ok(order);
                        }
                        self.pause.pause(std::time::Duration::from_millis(25)).await;
                    }
                    return Err(Error::Conflict {
                        message: "this purchase is being placed; check your orders in a moment".into(),
                        errors: vec![],
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal("a purchase ran out of tries without an answer".into()))
    }

    /// A bound purchase that already has a checkout: its order if it has one (waiting for a
    /// completion in flight), or a new attempt on it if an earlier one failed or a crash was
    /// cleaned up by the reconciler. `None` when there is no such checkout yet.
    async fn resume_bound(
        &self,
        who: &Principal,
        shopper: &Account,
        checkout_id: &str,
        input: &OrderInput,
    ) -> Result<Option<Order>> {
        let Some(c) = self.store.find_checkout(checkout_id).await? else { return Ok(None) };
        if c.shopper_id != shopper.id {
            return Ok(None);
        }
        if let Some(order) = self.settled(&c).await? {
            return Ok(Some(order));
        }
        self.complete_checkout(who, checkout_id, completion_of(input)).await.map(Some)
    }

    async fn validate_completion(
        &self,
        shopper: &Account,
        c: &CheckoutRecord,
        products: &HashMap<String, Product>,
        input: &CompleteInput,
    ) -> Result<Validated> {
        let mut e = Errors::default();
        let requires_shipping = c.lines.iter().any(|l| l.kind == ProductKind::Physical);
        let mut address = None;
        let mut shipping = None;
        let address_id = match (&input.shipping_address, input.address_id.as_deref().map(str::trim)) {
            (None, Some(id)) if requires_shipping && !id.is_empty() => Some(id),
            _ => None,
        };
        let card_id = match &input.payment {
            Some(PaymentInput { card: None, payment_method_id: Some(id), .. }) => Some(id.trim()),
            _ => None,
        };
        // Both saved records in one read; each open's audit row is written with the checkout.
        let mut records = self.saved_records(&[address_id, card_id].into_iter().flatten().collect::<Vec<_>>()).await?;
        let mut audits = Vec::new();
        let saved_address = match address_id {
            Some(id) => {
                self.open_address(shopper, records.remove(id), "ship an order", Some(&mut audits)).await.map(Some)
            }
            None => Ok(None),
        };
        let saved_card = match card_id {
            Some(id) => {
                self.open_card(shopper, records.remove(id), "authorize a payment", Some(&mut audits)).await.map(Some)
            }
            None => Ok(None),
        };
        let (saved_address, saved_card) = match (saved_address, saved_card) {
            (Ok(a), Ok(c)) => (a, c),
            (Err(e), _) | (_, Err(e)) => {
                // Opened but refused (an expired card, say): the opens are still audited.
                self.store.insert_vault_audits(&audits).await?;
                return Err(e);
            }
        };
        if requires_shipping {
            match (&input.shipping_address, saved_address) {
                (Some(a), _) => address = Address::parse("shipping_address", a, &mut e),
                (None, Some(Some(a))) => address = Some(a),
                (None, Some(None)) => e.push("address_id", "is not one of your saved addresses"),
                (None, None) => e.push("shipping_address", "is required for items that ship"),
            }
            if let Some(a) = &address {
                let list: Vec<&Product> = c.lines.iter().filter_map(|l| products.get(&l.variant_id)).collect();
                let options = Self::shipping_options(&list, &a.country);
                if options.is_empty() {
                    e.push("shipping_address.country", format!("this merchant does not ship to {}", a.country));
                } else {
                    shipping = match input.shipping_rate_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                        None => options.first().cloned(),
                        Some(id) => match options.iter().find(|o| o.id == id) {
                            Some(o) => Some(o.clone()),
                            None => {
                                e.push("shipping_rate_id", "is not a shipping option for that address");
                                None
                            }
                        },
                    };
                }
            }
        }
        let card = match (&input.payment, saved_card) {
            (Some(PaymentInput { card: Some(card), .. }), _) => Card::parse("payment.card", card, today(), &mut e),
            (_, Some(Some(card))) => Some(card),
            (_, Some(None)) => {
                e.push("payment.payment_method_id", "is not one of your saved cards");
                None
            }
            _ => {
                e.push("payment.card", "is required");
                None
            }
        };
        if let Err(e) = e.finish() {
            self.store.insert_vault_audits(&audits).await?;
            return Err(e);
        }
        let save = input.payment.as_ref().is_some_and(|p| p.save && p.card.is_some());
        let save_address = save && input.shipping_address.is_some();
        Ok(Validated { audits, address, shipping, card: card.expect("no errors means a card"), save, save_address })
    }

    /// `out_of_stock` for a one-line purchase of a variant this process has just found sold
    /// out (`SoldOut`), after the rollout's answer and before any read of the database.
    /// `None`: no such mark, or the request is one whose other errors would come first.
    async fn known_sold_out(&self, shopper: &Account, lines: &[LineInput]) -> Result<Option<Error>> {
        let [line] = lines else { return Ok(None) };
        let q = line.quantity.unwrap_or(1);
        if !(1..=99).contains(&q) || line.amount.is_some() {
            return Ok(None);
        }
        let Some(mark) = self.caches.sold_out.get(&line.variant_id.trim().to_string()) else { return Ok(None) };
        if mark.donation || q < mark.quantity {
            return Ok(None);
        }
        if let Err(e) = self.admitted(shopper, &mark.merchant_id).await {
            return Ok(Some(e));
        }
        Ok(Some(Error::OutOfStock(format!("{} is sold out in that choice or quantity", mark.name))))
    }

    /// The rollout's answer for this shopper and merchant, the one rule every purchase path
    /// applies first (SPEC §2): excluded is `403 not_available`; the `buy` arm and the
    /// holdout (who buy the out-of-feed way) are admitted, and told which arm they are in.
    async fn admitted(&self, shopper: &Account, merchant_id: &str) -> Result<Arm> {
        let flag = self.buy_button_flag().await?;
        match flag.arm(&shopper.id, &shopper.country, merchant_id) {
            Arm::Excluded => Err(Error::NotAvailable("Buy is not available for your account in this market".into())),
            arm => Ok(arm),
        }
    }

    fn stock_returns(&self) -> u64 {
        self.caches.stock_returns.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks a variant sold out, as found by a read or reservation that began when
    /// `stock_returns` was `returns`: not if stock came back since (it may be what is short).
    #[allow(clippy::too_many_arguments)]
    fn mark_sold_out(
        &self,
        returns: u64,
        variant_id: &str,
        product_id: &str,
        merchant_id: &str,
        quantity: i64,
        name: &str,
        donation: bool,
    ) {
        let quantity = match self.caches.sold_out.get(&variant_id.to_string()) {
            Some(m) => m.quantity.min(quantity),
            None => quantity,
        };
        if self.stock_returns() != returns {
            return;
        }
        let mark = SoldOut {
            product_id: product_id.into(),
            merchant_id: merchant_id.into(),
            quantity,
            name: name.into(),
            donation,
        };
        self.caches.sold_out.put(variant_id.to_string(), mark);
    }

    /// Stock given back for a checkout this process does not hold (the reconciler's, a
    /// canceled 3-D Secure order's): every mark goes.
    pub(super) fn forget_all_sold_out(&self) {
        self.caches.stock_returns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.caches.sold_out.clear();
    }

    /// Stock given back: its variants may sell again.
    pub(super) fn forget_sold_out(&self, c: &CheckoutRecord) {
        self.caches.stock_returns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for l in &c.lines {
            self.caches.sold_out.forget(&l.variant_id);
        }
    }

    /// Completes a checkout. Completing one that is already complete returns its order, so a
    /// double-tapped Confirm or a retried request makes one order and one charge.
    pub async fn complete_checkout(&self, who: &Principal, id: &str, input: CompleteInput) -> Result<Order> {
        let shopper = who.shopper()?;
        let c = self.own_checkout(shopper, id).await?;
        if let Some(order) = self.settled(&c).await? {
            return Ok(order);
        }
        // The rollout answers first (a kill switch since the checkout opened included).
        let merchant = self.merchant(&c.merchant_id).await?;
        self.admitted(shopper, &merchant.id).await?;
        let products = self.products_for(&Self::line_variants(&c)).await?;
        let v = self.validate_completion(shopper, &c, &products, &input).await?;
        self.store.insert_vault_audits(&v.audits).await?;
        let Some(attempt) = self.store.claim_checkout(&c.id, &shopper.id, now_micros()).await? else {
            // Someone else holds it (a double tap): wait for their answer.
            return self.await_completion(&c.id).await;
        };
        let wanted = wanted(&c);
        let returns = self.stock_returns();
        if let Err(variant) = self.store.reserve_stock(&c.id, &wanted, now_micros() + RESERVATION_TTL).await? {
            self.store
                .set_checkout_status(&c.id, CheckoutStatus::Completing, CheckoutStatus::Open, now_micros())
                .await?;
            return Err(self.short_of(returns, &c, &wanted, &variant));
        }
        self.pay(shopper, &c, &merchant, v, attempt).await
    }

    /// `out_of_stock` for a checkout whose `variant` was short, marking it sold out for the
    /// requests that follow (see [`Self::mark_sold_out`]).
    fn short_of(&self, returns: u64, c: &CheckoutRecord, wanted: &[(String, i64)], variant: &str) -> Error {
        let line = c.lines.iter().find(|l| l.variant_id == variant);
        let name = line.map(|l| l.name.clone()).unwrap_or_default();
        let short = wanted.iter().find(|(v, _)| v == variant).map(|(_, q)| *q);
        if let (Some(q), Some(l)) = (short, line) {
            let donation = l.kind == ProductKind::Donation;
            self.mark_sold_out(returns, variant, &l.product_id, &c.merchant_id, q, &name, donation);
        }
        Error::OutOfStock(format!("{name} is sold out in that choice or quantity"))
    }

    /// Pays a claimed checkout whose stock is reserved: authorise, commit the order, queue
    /// its capture. Any failure before the commit gives the stock back and reopens the
    /// checkout.
    async fn pay(
        &self,
        shopper: &Account,
        c: &CheckoutRecord,
        merchant: &Merchant,
        v: Validated,
        attempt: i64,
    ) -> Result<Order> {
        let now = now_micros();
        // Buy cards served by this process show the new stock at once.
        self.forget_products(c.lines.iter().map(|l| &l.product_id));

        let subtotal: i64 = c.lines.iter().map(|l| l.unit_price * l.quantity).sum();
        let ship = v.shipping.as_ref().map(|s| s.price).unwrap_or(0);
        let destination = v.address.as_ref().map(|a| a.country.clone()).unwrap_or_else(|| shopper.country.clone());
        let totals =
            Totals::compute(subtotal, ship, merchant.tax_rates.get(&destination).copied().unwrap_or(0), c.currency);
        let fee_bps = self.fee_policy().await?.bps_for(merchant);
        let fee_base = crate::fees::fee_base(&c.lines, ship);
        let order_id = new_id("ord");
        let auth = self
            .processor
            .authorize(AuthorizeRequest {
                idempotency_key: format!("{}.{attempt}", c.id),
                amount: Money::new(totals.total, c.currency),
                card: v.card.clone(),
                description: format!("{} order {order_id}", merchant.name),
                return_url: format!("{}/orders/{order_id}/return", self.config.public_url),
            })
            .await;
        let (status, payment_id, challenge_url) = match auth {
            Ok(Authorization::Authorized { payment_id }) => (OrderStatus::Paid, payment_id, None),
            Ok(Authorization::RequiresAction { payment_id, challenge_url }) => {
                (OrderStatus::RequiresAction, payment_id, Some(challenge_url))
            }
            Err(err) => {
                self.store.release_reservation(&c.id).await?;
                self.forget_sold_out(c);
                self.store
                    .set_checkout_status(&c.id, CheckoutStatus::Completing, CheckoutStatus::Open, now_micros())
                    .await?;
                return Err(payment_error(err));
            }
        };
        let mut order = Order {
            id: order_id,
            status,
            merchant_id: merchant.id.clone(),
            shopper_id: Some(shopper.id.clone()),
            checkout_id: c.id.clone(),
            lines: c.lines.clone(),
            shipping_address: v.address,
            shipping: v.shipping,
            totals,
            platform_fee: platform_fee(fee_base, fee_bps),
            fee_bps,
            fulfillment: Fulfillment { carrier: None, tracking_number: None },
            payment: PaymentSummary { brand: v.card.number.brand().as_str().into(), last4: v.card.number.last4() },
            payment_id,
            challenge_url,
            post_id: c.post_id.clone(),
            contact_email: shopper.email.clone(),
            captured: false,
            acknowledged: false,
            refunded_amount: 0,
            created_at: now,
        };
        // Paid now: the order is its own in-app receipt (listed through the shopper's orders,
        // so the order writes no notification row and no page of an index by account).
        let receipt = match status {
            OrderStatus::Paid => self.paid_receipt(&order, Some(shopper)).map(|r| Receipt { in_order: true, ..r }),
            _ => None,
        };
        // `order.created` goes out when the order is paid (now, or after the card check).
        let event = (status == OrderStatus::Paid).then(|| super::webhooks::order_event("order.created", &order, None));
        if let Err(e) = self
            .store
            .commit_order(
                &order,
                c.from_cart,
                receipt.as_ref(),
                event.as_ref(),
                now,
                now + super::reconcile::CHALLENGE_HOLD,
            )
            .await
        {
            // The authorisation has no order: give it back now (the reconciler would later).
            let _ = self.processor.void(&order.payment_id).await;
            let _ = self.store.release_reservation(&c.id).await;
            self.forget_sold_out(c);
            let _ = self
                .store
                .set_checkout_status(&c.id, CheckoutStatus::Completing, CheckoutStatus::Open, now_micros())
                .await;
            return Err(e.into());
        }
        tracing::info!(order_id = %order.id, merchant_id = %order.merchant_id, status = order.status.as_str(), total = order.totals.total, "order committed");
        // The card was accepted: keep it (and the address) if the shopper asked. A failure
        // here costs the shopper a saved card, never the order.
        if v.save && status == OrderStatus::Paid {
            if let Err(e) = self.seal_card(shopper, &v.card).await {
                tracing::warn!(error = %e, "saving the card failed");
            }
            if let (true, Some(a)) = (v.save_address, &order.shipping_address) {
                if let Err(e) = self.seal_address(shopper, a).await {
                    tracing::warn!(error = %e, "saving the address failed");
                }
            }
        }
        if status == OrderStatus::Paid {
            // Answered without waiting for the capture (see `captures.rs`).
            order.captured = self.capture_soon(&order).await;
        }
        Ok(order)
    }

    /// The order of a checkout that already has one.
    async fn settled(&self, c: &CheckoutRecord) -> Result<Option<Order>> {
        match c.status {
            CheckoutStatus::Completed => Ok(self.store.find_order_by_checkout(&c.id).await?),
            CheckoutStatus::Completing => self.await_completion(&c.id).await.map(Some),
            CheckoutStatus::Expired => {
                Err(Error::Conflict { message: "this checkout has expired; start again".into(), errors: vec![] })
            }
            _ if c.expires_at <= now_micros() => {
                Err(Error::Conflict { message: "this checkout has expired; start again".into(), errors: vec![] })
            }
            _ => Ok(None),
        }
    }

    async fn await_completion(&self, checkout_id: &str) -> Result<Order> {
        for _ in 0..100 {
            if let Some(o) = self.store.find_order_by_checkout(checkout_id).await? {
                return Ok(o);
            }
            match self.store.find_checkout(checkout_id).await? {
                Some(c) if c.status == CheckoutStatus::Completing => {
                    self.pause.pause(std::time::Duration::from_millis(50)).await
                }
                // Its order committed between the two reads: the next look finds it.
                Some(c) if c.status == CheckoutStatus::Completed => continue,
                Some(c) if c.status == CheckoutStatus::Open => {
                    return Err(Error::Conflict {
                        message: "the payment for this checkout did not go through; try again".into(),
                        errors: vec![],
                    })
                }
                _ => break,
            }
        }
        Err(Error::Conflict {
            message: "this checkout is being completed; check your orders in a moment".into(),
            errors: vec![],
        })
    }

    /// After the processor's challenge page: settle an order waiting in `requires_action`.
    pub async fn resume_order(&self, order_id: &str) -> Result<Order> {
        let order = self.store.find_order(order_id).await?.ok_or(Error::NotFound("order"))?;
        if order.status != OrderStatus::RequiresAction {
            return Ok(order);
        }
        match self.processor.status(&order.payment_id).await.map_err(payment_error)? {
            PaymentStatus::Authorized | PaymentStatus::Captured => {
                let shopper = match &order.shopper_id {
                    Some(id) => self.store.find_account(id).await?,
                    None => None,
                };
                let receipt = self.paid_receipt(&order, shopper.as_ref());
                let mut paid = order.clone();
                paid.status = OrderStatus::Paid;
                let event = super::webhooks::order_event("order.created", &paid, None);
                if self
                    .store
                    .update_order_status(
                        &order.id,
                        OrderStatus::RequiresAction,
                        OrderStatus::Paid,
                        receipt.as_ref(),
                        Some(&event),
                        now_micros(),
                    )
                    .await?
                {
                    self.store.consume_reservation(&order.checkout_id).await?;
                    self.capture(&paid).await;
                }
            }
            PaymentStatus::Failed | PaymentStatus::Voided => self.cancel_unpaid(&order).await?,
            PaymentStatus::RequiresAction => {}
        }
        self.store.find_order(order_id).await?.ok_or(Error::NotFound("order"))
    }

    pub(super) async fn cancel_unpaid(&self, order: &Order) -> Result<()> {
        let _ = self.processor.void(&order.payment_id).await;
        if self
            .store
            .update_order_status(
                &order.id,
                OrderStatus::RequiresAction,
                OrderStatus::Canceled,
                None,
                None,
                now_micros(),
            )
            .await?
        {
            self.store.release_reservation(&order.checkout_id).await?;
            self.forget_all_sold_out();
            tracing::info!(order_id = %order.id, "unpaid order canceled");
        }
        Ok(())
    }
}

/// Each variant's total quantity over the checkout's lines, in a fixed order (so two
/// checkouts never take the same rows in opposite orders).
fn wanted(c: &CheckoutRecord) -> Vec<(String, i64)> {
    let mut wanted: BTreeMap<String, i64> = BTreeMap::new();
    for l in &c.lines {
        *wanted.entry(l.variant_id.clone()).or_default() += l.quantity;
    }
    wanted.into_iter().collect()
}

/// The checkout id of a purchase bound to a request key: a hash of the shopper and the key,
/// so one shopper's key never names another's checkout.
fn bound_checkout_id(shopper_id: &str, bound: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"bound-checkout\0");
    h.update(shopper_id.as_bytes());
    h.update(b"\0");
    h.update(bound.as_bytes());
    let d = h.finalize();
    format!("chk_{}", d[..16].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn completion_of(input: &OrderInput) -> CompleteInput {
    CompleteInput {
        shipping_address: input.shipping_address.clone(),
        address_id: input.address_id.clone(),
        shipping_rate_id: input.shipping_rate_id.clone(),
        payment: input.payment.clone(),
    }
}

/// (year, month) now, for card expiry.
pub(crate) fn today() -> (u32, u32) {
    use chrono::Datelike;
    let d = chrono::Utc::now();
    (d.year() as u32, d.month())
}

fn payment_error(e: ProcessorError) -> Error {
    match e {
        ProcessorError::Declined { code, decline_code, message, .. } => Error::Payment { code, decline_code, message },
        ProcessorError::Unavailable(m) => {
            tracing::warn!(error = %m, "processor unavailable");
            Error::Payment {
                code: "processing_error".into(),
                decline_code: None,
                message: "The payment could not be processed right now. Try again in a little bit.".into(),
            }
        }
        ProcessorError::NotFound => Error::Internal("payment unknown to the processor".into()),
    }
}
