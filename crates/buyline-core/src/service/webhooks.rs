//! The outbox's other end: events as webhook bodies, the retry schedule, what the worker
//! records, the merchant's delivery log, and the guard on webhook targets.

use super::paging::PageArgs;
use super::{Principal, Services};
use crate::edge::Resolver;
use crate::error::{Error, FieldError, Result};
use crate::ids::{has_prefix, new_id};
use crate::model::Page;
use crate::order::{Delivery, DeliveryAttempt, DeliveryJob, DeliveryOutcome, Event, NewEvent, Order};
use crate::saved::VaultRecord;
use crate::types::now_micros;
use base64::Engine;
use rand::Rng;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Seconds to wait before each retry: about three days in all, then give up.
pub const RETRY_SCHEDULE: [i64; 14] =
    [5, 30, 120, 600, 1_800, 3_600, 7_200, 14_400, 28_800, 43_200, 43_200, 43_200, 43_200, 43_200];

/// What one HTTP attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub url: String,
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub excerpt: String,
    pub error: Option<String>,
    /// The receiver's `Retry-After`, in seconds.
    pub retry_after: Option<i64>,
}

/// Decides what follows an attempt: delivered on 2xx, endpoint disabled on 410, otherwise
/// the next try after the scheduled wait (±20 % jitter, never sooner than `Retry-After`)
/// until the schedule is spent.
pub fn next_step(attempts: i64, r: &AttemptResult, now: i64, jitter: f64) -> DeliveryOutcome {
    match r.status {
        Some(s) if (200..300).contains(&s) => DeliveryOutcome::Delivered,
        Some(410) => DeliveryOutcome::Disabled,
        _ => match RETRY_SCHEDULE.get((attempts - 1).max(0) as usize) {
            None => DeliveryOutcome::Failed,
            Some(wait) => {
                let jittered = (*wait as f64 * (1.0 + jitter)).max(1.0) as i64;
                let wait = jittered.max(r.retry_after.unwrap_or(0).min(86_400));
                DeliveryOutcome::Retry { at: now + wait * 1_000_000 }
            }
        },
    }
}

/// An order as its merchant (and its webhooks) see it: never any card data.
pub fn merchant_view(order: &Order) -> serde_json::Value {
    let mut v = serde_json::to_value(order).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("payment");
        o.remove("challenge_url");
    }
    v
}

/// An outbox event with its whole webhook body.
pub fn order_event(kind: &str, order: &Order, extra: Option<(&str, serde_json::Value)>) -> NewEvent {
    let now = now_micros();
    let mut data = merchant_view(order);
    if let (Some((k, val)), Some(o)) = (extra, data.as_object_mut()) {
        o.insert(k.to_string(), val);
    }
    let payload = serde_json::json!({"type": kind, "timestamp": crate::types::rfc3339(now), "data": data});
    NewEvent {
        id: new_id("evt"),
        merchant_id: order.merchant_id.clone(),
        kind: kind.to_string(),
        payload: payload.to_string(),
        created_at: now,
        account_id: order.shopper_id.clone(),
        order_id: Some(order.id.clone()),
    }
}

/// An event's webhook body with the shopper's personal data erased (SPEC §2 Data rights):
/// the order's shipping address and contact e-mail, and a cart event's shopper, become
/// null; everything the merchant and the ledger need (lines, totals, status) stays. `None`
/// if there was nothing to erase (or the payload is not JSON).
pub fn erase_personal_data(payload: &str) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(payload).ok()?;
    let data = v.get_mut("data")?.as_object_mut()?;
    let mut changed = false;
    for field in ["shipping_address", "contact_email"] {
        if let Some(f) = data.get_mut(field).filter(|f| !f.is_null()) {
            *f = serde_json::Value::Null;
            changed = true;
        }
    }
    if let Some(shopper) = data.get_mut("shopper").and_then(|s| s.as_object_mut()) {
        for f in shopper.values_mut().filter(|f| !f.is_null()) {
            *f = serde_json::Value::Null;
            changed = true;
        }
    }
    changed.then(|| v.to_string())
}

fn public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || o[0] >= 240)
}

/// What an IPv6 address is for a webhook target: the IPv4 address it carries, if it is a
/// form that a host, a translator or a tunnel turns into IPv4 traffic; otherwise itself.
#[derive(Debug, PartialEq, Eq)]
enum V6Target {
    /// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), SIIT-translated
    /// (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`):
    /// reaching it reaches this IPv4 address.
    Carries(Ipv4Addr),
    /// Teredo (`2001:0::/32`): the server's IPv4 and the client's (stored inverted).
    Teredo(Ipv4Addr, Ipv4Addr),
    /// Any other IPv6 address.
    Native,
}

/// The IPv4 address two IPv6 segments hold.
fn v4_of(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

fn v6_target(v6: Ipv6Addr) -> V6Target {
    let s = v6.segments();
    let low = v4_of(s[6], s[7]);
    match s {
        // `::` and `::1` are unspecified and loopback, not IPv4-compatible addresses.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => V6Target::Native,
        [0, 0, 0, 0, 0, 0 | 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => {
            V6Target::Carries(low)
        }
        [0x2002, a, b, ..] => V6Target::Carries(v4_of(a, b)),
        [0x2001, 0, a, b, ..] => V6Target::Teredo(v4_of(a, b), Ipv4Addr::from(!u32::from(low))),
        _ => V6Target::Native,
    }
}

fn public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    match v6_target(v6) {
        V6Target::Carries(v4) => public_v4(v4),
        V6Target::Teredo(server, client) => public_v4(server) && public_v4(client),
        // Only 2000::/3 is allocated for global unicast; everything outside it (loopback,
        // unspecified, unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10,
        // multicast, the local-use NAT64 prefix 64:ff9b:1::/48, discard 100::/64 …) is not
        // a public host. Inside it, the IETF's special-purpose 2001::/23 (benchmarking,
        // ORCHID, …) and documentation 2001:db8::/32 are not either.
        V6Target::Native => match s {
            [0x2001, 0x0db8, ..] => false,
            [0x2001, b, ..] if b < 0x0200 => false,
            [a, ..] => (a & 0xe000) == 0x2000,
        },
    }
}

fn public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

/// Is this address one a webhook may be sent to? Loopback, private, link-local (cloud
/// metadata), shared and reserved ranges are not, unless the operator allows private targets;
/// nor is an IPv6 address that carries one of those IPv4 addresses (mapped, compatible,
/// NAT64, 6to4, Teredo) or lies outside global unicast (site-local, unique-local …).
pub fn allowed_target(ip: IpAddr, allow_private: bool) -> bool {
    allow_private || public_ip(ip)
}

/// Resolves the URL's host (through `resolver`, the edge's DNS) and checks every address it has.
pub async fn check_webhook_target(
    field: &str,
    url: &str,
    allow_private: bool,
    resolver: &dyn Resolver,
) -> Result<(), FieldError> {
    let u = url::Url::parse(url).map_err(|_| FieldError::new(field, "must be an http:// or https:// URL"))?;
    let port = u.port_or_known_default().unwrap_or(443);
    // The URL parser has already read every spelling of an address literal (`0x7f.1`,
    // `2130706433`, `[::ffff:7f00:1]`) into its value.
    let (host, addrs): (String, Vec<IpAddr>) = match u.host() {
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![IpAddr::V6(ip)]),
        Some(url::Host::Domain(d)) => match resolver.resolve(d, port).await {
            Ok(list) => (d.to_string(), list),
            Err(_) => return Err(FieldError::new(field, format!("the host {d} does not resolve"))),
        },
        None => return Err(FieldError::new(field, "needs a host")),
    };
    if addrs.is_empty() {
        return Err(FieldError::new(field, format!("the host {host} does not resolve")));
    }
    if let Some(bad) = addrs.iter().find(|ip| !allowed_target(**ip, allow_private)) {
        return Err(FieldError::new(
            field,
            format!("must be a public address; {host} resolves to {bad}, which is private, loopback or reserved"),
        ));
    }
    Ok(())
}

/// The vault record kind of a merchant's webhook signing secret.
const WEBHOOK_SECRET_KIND: &str = "webhook_secret";

pub(crate) fn new_webhook_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill(&mut bytes[..]);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl Services {
    /// Leases up to `limit` due deliveries to this worker for `lease_micros`.
    pub async fn claim_deliveries(&self, limit: i64, lease_micros: i64) -> Result<Vec<DeliveryJob>> {
        let now = now_micros();
        let mut jobs = self.store.claim_deliveries(now, now + lease_micros, limit).await?;
        for job in &mut jobs {
            // The store names the sealed secrets; signing needs them opened.
            job.secret = self.webhook_secret(&job.merchant_id, &job.secret).await?;
            if let Some(old) = job.old_secret.take() {
                job.old_secret = self.webhook_secret(&job.merchant_id, &old).await.ok();
            }
        }
        Ok(jobs)
    }

    /// Seals a new signing secret in the vault, owned by the merchant.
    pub(crate) fn seal_webhook_secret(&self, merchant_id: &str, secret: &str) -> Result<VaultRecord> {
        self.seal_record(new_id("whk"), merchant_id, WEBHOOK_SECRET_KIND, secret.as_bytes(), "{}".into())
    }

    /// The signing secret a merchant row names: opened from the vault (audited) once per
    /// process; a secret still in plain text (from before they were sealed) as it is.
    async fn webhook_secret(&self, merchant_id: &str, stored: &str) -> Result<String> {
        if stored.starts_with("whsec_") {
            return Ok(stored.to_string());
        }
        if let Some(s) = self.caches.webhook_secrets.lock().expect("secret cache").get(stored) {
            return Ok(s.to_string());
        }
        let rec = self
            .store
            .find_vault_record(stored)
            .await?
            .filter(|r| r.owner_id == merchant_id && r.kind == WEBHOOK_SECRET_KIND);
        let Some((rec, sealed)) = rec.and_then(|r| r.sealed.clone().map(|s| (r, s))) else {
            return Err(Error::Internal(format!("merchant {merchant_id} has no sealed signing secret {stored}")));
        };
        let plain = self
            .audited_open(&rec, &sealed, "sign webhooks", "webhook-worker")
            .await?
            .map_err(|e| Error::Internal(format!("vault: {e}")))?;
        let secret = zeroize::Zeroizing::new(
            String::from_utf8(plain.to_vec()).map_err(|_| Error::Internal("a signing secret is not text".into()))?,
        );
        let out = secret.to_string();
        let mut cache = self.caches.webhook_secrets.lock().expect("secret cache");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(stored.to_string(), secret);
        Ok(out)
    }

    /// Seals every signing secret still kept in plain text; run at start-up. Returns how many.
    pub async fn seal_plain_webhook_secrets(&self) -> Result<usize> {
        let mut sealed = 0;
        loop {
            let batch = self.store.find_plain_webhook_secrets(200).await?;
            if batch.is_empty() {
                return Ok(sealed);
            }
            for (merchant_id, old, plain) in batch {
                let rec = self.seal_webhook_secret(&merchant_id, &plain)?;
                if self.store.seal_plain_webhook_secret(&merchant_id, old, &plain, &rec).await? {
                    sealed += 1;
                }
            }
        }
    }

    /// Records an attempt and schedules what follows.
    /// Records a batch of attempts (each with the next step it leads to) in one write.
    pub async fn finish_deliveries(&self, done: &[(DeliveryJob, AttemptResult)]) -> Result<Vec<DeliveryOutcome>> {
        let now = now_micros();
        let mut rows = Vec::with_capacity(done.len());
        for (job, r) in done {
            let jitter = rand::thread_rng().gen_range(-0.2..0.2);
            let outcome = next_step(job.attempts, r, now, jitter);
            let attempt = DeliveryAttempt {
                attempted_at: now,
                url: r.url.clone(),
                status_code: r.status.map(i64::from),
                latency_ms: r.latency_ms,
                excerpt: r.excerpt.clone(),
                error: r.error.clone(),
            };
            match &outcome {
                DeliveryOutcome::Disabled => {
                    tracing::warn!(merchant_id = %job.merchant_id, "webhook endpoint answered 410; disabled")
                }
                DeliveryOutcome::Failed => {
                    tracing::warn!(delivery_id = %job.delivery_id, "webhook delivery gave up after its retries")
                }
                _ => {}
            }
            rows.push((job, attempt, outcome));
        }
        self.store.record_delivery_attempts(&rows).await?;
        Ok(rows.into_iter().map(|(_, _, o)| o).collect())
    }

    pub async fn pending_deliveries(&self) -> Result<i64> {
        Ok(self.store.count_pending_deliveries().await?)
    }

    pub async fn deliveries(
        &self,
        who: &Principal,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<Delivery>> {
        let m = who.merchant()?;
        let args = PageArgs::parse(cursor, limit)?;
        let list = self.store.find_deliveries(&m.id, args.before(), args.fetch()).await?;
        Ok(args.page(list, |d| (d.created_at, &d.id)))
    }

    /// Sends a delivery again now (a replay), whatever became of it.
    pub async fn retry_delivery(&self, who: &Principal, id: &str) -> Result<()> {
        let m = who.merchant()?;
        if !has_prefix(id, "dlv") || !self.store.retry_delivery(id, &m.id, now_micros()).await? {
            return Err(Error::NotFound("delivery"));
        }
        Ok(())
    }

    /// A new signing secret; the old one keeps signing beside it for 24 hours.
    pub async fn rotate_webhook_secret(&self, who: &Principal) -> Result<String> {
        let m = who.merchant()?;
        let secret = new_webhook_secret();
        let sealed = self.seal_webhook_secret(&m.id, &secret)?;
        self.store.rotate_webhook_secret(&m.id, &sealed, now_micros() + 24 * 3600 * 1_000_000).await?;
        tracing::info!(merchant_id = %m.id, "webhook secret rotated");
        Ok(secret)
    }

    /// The polling fallback: events after the one named, oldest first. Events younger than a
    /// second are held back so that one committing late never slips behind a cursor.
    pub async fn events_after(&self, who: &Principal, after: Option<&str>, limit: Option<i64>) -> Result<Page<Event>> {
        let m = who.merchant()?;
        let limit = super::paging::page_limit(limit)?;
        let after = match after.filter(|a| !a.is_empty()) {
            Some(id) if has_prefix(id, "evt") => match self.store.find_event(id).await? {
                Some(e) => Some((e.created_at, e.id)),
                None => return Err(Error::field("after", "is not an event id of yours")),
            },
            Some(_) => return Err(Error::field("after", "is not an event id of yours")),
            None => None,
        };
        let list = self
            .store
            .find_events_after(&m.id, after.as_ref().map(|(t, i)| (*t, i.as_str())), now_micros() - 1_000_000, limit)
            .await?;
        let next_cursor = list.last().map(|e| e.id.clone());
        Ok(Page { data: list, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// These tests name hosts by address, so they never wait on DNS: a name does not resolve.
    struct NoDns;

    #[async_trait::async_trait]
    impl Resolver for NoDns {
        async fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no DNS in tests: {host}")))
        }
    }

    fn result(status: Option<u16>, retry_after: Option<i64>) -> AttemptResult {
        AttemptResult { url: "u".into(), status, latency_ms: 1, excerpt: String::new(), error: None, retry_after }
    }

    #[test]
    fn schedule_spans_about_three_days() {
        let total: i64 = RETRY_SCHEDULE.iter().sum();
        assert!((2.8 * 86_400.0..3.5 * 86_400.0).contains(&(total as f64)), "{total}");
    }

    #[test]
    fn next_steps() {
        assert!(matches!(next_step(1, &result(Some(204), None), 0, 0.0), DeliveryOutcome::Delivered));
        assert!(matches!(next_step(1, &result(Some(410), None), 0, 0.0), DeliveryOutcome::Disabled));
        assert!(matches!(next_step(1, &result(Some(500), None), 0, 0.0), DeliveryOutcome::Retry { at: 5_000_000 }));
        assert!(matches!(next_step(2, &result(None, None), 0, 0.0), DeliveryOutcome::Retry { at: 30_000_000 }));
        assert!(matches!(
            next_step(1, &result(Some(429), Some(120)), 0, 0.0),
            DeliveryOutcome::Retry { at: 120_000_000 }
        ));
        assert!(matches!(next_step(15, &result(Some(500), None), 0, 0.0), DeliveryOutcome::Failed));
        let DeliveryOutcome::Retry { at } = next_step(1, &result(Some(500), None), 0, 0.2) else { panic!() };
        assert_eq!(at, 6_000_000);
    }

    #[test]
    fn private_targets_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!allowed_target(ip.parse().unwrap(), false), "{ip}");
            assert!(allowed_target(ip.parse().unwrap(), true), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(allowed_target(ip.parse().unwrap(), false), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_that_carry_a_private_ipv4_are_refused() {
        for ip in [
            // IPv4-compatible (deprecated, still routed by some stacks).
            "::127.0.0.1",
            "::a9fe:a9fe",
            "::10.0.0.1",
            // IPv4-mapped and SIIT-translated.
            "::ffff:169.254.169.254",
            "::ffff:0:127.0.0.1",
            // NAT64, well-known prefix: 169.254.169.254 and 127.0.0.1 through a translator.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::127.0.0.1",
            "64:ff9b::192.168.0.1",
            // Local-use NAT64 (RFC 8215): whatever it carries, it is a local network's.
            "64:ff9b:1::8.8.8.8",
            "64:ff9b:1:ffff::1",
            // 6to4 of 127.0.0.1, 10.0.0.1 and 169.254.169.254.
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:a9fe:a9fe:1::1",
            // Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted: 80ff:fffe).
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            // Teredo with a private server.
            "2001:0:a00:1:8000:63bf:3fff:fdd2",
            // Site-local (deprecated), documentation, benchmarking, discard, ORCHID.
            "fec0::1",
            "feff::1",
            "2001:db8::1",
            "2001:2::1",
            "100::1",
            "2001:10::1",
            // Not in global unicast at all.
            "4000::1",
            "::2",
        ] {
            assert!(!allowed_target(ip.parse().unwrap(), false), "{ip}");
            assert!(allowed_target(ip.parse().unwrap(), true), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_that_carry_a_public_ipv4_are_judged_by_it() {
        for ip in [
            "::ffff:93.184.216.34",
            "64:ff9b::93.184.216.34",
            // 6to4 of 93.184.216.34.
            "2002:5db8:d822::1",
            // Teredo: server 65.54.227.120, client 93.184.216.34 (inverted: a247:27dd).
            "2001:0:4136:e378:8000:63bf:a247:27dd",
            "2a00:1450:4001:81c::200e",
        ] {
            assert!(allowed_target(ip.parse().unwrap(), false), "{ip}");
        }
        assert_eq!(v6_target("2002:7f00:1::".parse().unwrap()), V6Target::Carries(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(
            v6_target("2001:0:4136:e378:8000:63bf:80ff:fffe".parse().unwrap()),
            V6Target::Teredo(Ipv4Addr::new(65, 54, 227, 120), Ipv4Addr::new(127, 0, 0, 1))
        );
        assert_eq!(v6_target("::1".parse().unwrap()), V6Target::Native);
    }

    #[test]
    fn the_issue_urls_are_refused_as_typed() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for url in [
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[fec0::1]/",
            "http://0x7f.1/",
            "http://2130706433/",
            "https://[::ffff:7f00:1]:8443/hook",
        ] {
            let r = rt.block_on(check_webhook_target("webhook_url", url, false, &NoDns));
            assert_eq!(r.map_err(|e| e.field), Err("webhook_url".to_string()), "{url}");
        }
        assert!(rt
            .block_on(check_webhook_target("webhook_url", "https://[2a00:1450:4001:81c::200e]/", false, &NoDns))
            .is_ok());
    }

    fn private_ipv4() -> impl Strategy<Value = Ipv4Addr> {
        let net = |a: u32, bits: u32| (0u32..(1 << (32 - bits))).prop_map(move |host| Ipv4Addr::from(a | host));
        prop_oneof![
            net(0x7f00_0000, 8),  // 127/8 loopback
            net(0x0a00_0000, 8),  // 10/8
            net(0xac10_0000, 12), // 172.16/12
            net(0xc0a8_0000, 16), // 192.168/16
            net(0xa9fe_0000, 16), // 169.254/16 link-local, cloud metadata
            net(0x6440_0000, 10), // 100.64/10 shared
            net(0x0000_0000, 8),  // 0/8
            net(0xe000_0000, 4),  // multicast
            net(0xf000_0000, 4),  // reserved, broadcast
        ]
    }

    /// Every way a URL can name `v4`, literally or inside an IPv6 address.
    fn url_forms(v4: Ipv4Addr, port: Option<u16>, path: &str) -> Vec<String> {
        let n = u32::from(v4);
        let (hi, lo) = (n >> 16, n & 0xffff);
        let inv = !n;
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let hosts = [
            v4.to_string(),
            n.to_string(),
            format!("0x{n:x}"),
            format!("[::ffff:{v4}]"),
            format!("[::ffff:{hi:x}:{lo:x}]"),
            format!("[::{v4}]"),
            format!("[::ffff:0:{v4}]"),
            format!("[64:ff9b::{v4}]"),
            format!("[64:ff9b::{hi:x}:{lo:x}]"),
            format!("[2002:{hi:x}:{lo:x}::1]"),
            format!("[2001:0:4136:e378:8000:63bf:{:x}:{:x}]", inv >> 16, inv & 0xffff),
        ];
        hosts.iter().flat_map(|h| [format!("http://{h}{port}/{path}"), format!("https://{h}{port}/{path}")]).collect()
    }

    proptest! {
        /// A webhook URL whose host is a private or loopback IPv4 address, written in any form
        /// — dotted, decimal, hex, or inside any IPv6 form that carries an IPv4 — is refused.
        #[test]
        fn webhook_urls_to_private_ipv4_are_refused(v4 in private_ipv4(), port in proptest::option::of(1u16..), path in "[a-z0-9/]{0,12}") {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for url in url_forms(v4, port, &path) {
                let r = rt.block_on(check_webhook_target("webhook_url", &url, false, &NoDns));
                prop_assert!(r.is_err(), "{} was accepted", url);
            }
        }

        /// Any string as a webhook URL: an answer, never a panic (literal hosts only, so the
        /// test never waits on DNS).
        #[test]
        fn webhook_urls_parse_anything(raw in prop_oneof![
            "\\PC{0,60}",
            "https?://\\[[0-9a-f:.]{0,40}\\](:[0-9]{1,6})?/\\PC{0,10}",
            "https?://[0-9.x]{0,20}(:[0-9]{1,6})?/",
        ]) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let is_literal = url::Url::parse(&raw).ok().is_none_or(|u| !matches!(u.host(), Some(url::Host::Domain(_))));
            if is_literal {
                let _ = rt.block_on(check_webhook_target("webhook_url", &raw, false, &NoDns));
            }
        }
    }
}
