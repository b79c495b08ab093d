//! The outbox's other end: events as webhook bodies, the retry schedule, what the worker
//! records, the merchant's delivery log, and the guard on webhook targets.

use super::paging::PageArgs;
use super::{Principal, Services};
use crate::error::{Error, FieldError, Result};
use crate::ids::{has_prefix, new_id};
use crate::model::Page;
use crate::order::{Delivery, DeliveryAttempt, DeliveryJob, DeliveryOutcome, Event, NewEvent, Order};
use crate::types::now_micros;
use base64::Engine;
use rand::Rng;
use std::net::IpAddr;

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

fn public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
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
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Is this address one a webhook may be sent to? Loopback, private, link-local (cloud
/// metadata), shared and reserved ranges are not, unless the operator allows private targets.
pub fn allowed_target(ip: IpAddr, allow_private: bool) -> bool {
    allow_private || public_ip(ip)
}

/// Resolves the URL's host and checks every address it has.
pub async fn check_webhook_target(field: &str, url: &str, allow_private: bool) -> Result<(), FieldError> {
    let u = url::Url::parse(url).map_err(|_| FieldError::new(field, "must be an http:// or https:// URL"))?;
    let host = u.host_str().ok_or_else(|| FieldError::new(field, "needs a host"))?.trim_matches(['[', ']']).to_string();
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(list) => list.map(|a| a.ip()).collect(),
            Err(_) => return Err(FieldError::new(field, format!("the host {host} does not resolve"))),
        },
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

pub(crate) fn new_webhook_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill(&mut bytes[..]);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl Services {
    /// Leases up to `limit` due deliveries to this worker for `lease_micros`.
    pub async fn claim_deliveries(&self, limit: i64, lease_micros: i64) -> Result<Vec<DeliveryJob>> {
        let now = now_micros();
        Ok(self.store.claim_deliveries(now, now + lease_micros, limit).await?)
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
        self.store.rotate_webhook_secret(&m.id, &secret, now_micros() + 24 * 3600 * 1_000_000).await?;
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
}
