//! The webhook delivery worker: claims due deliveries from the outbox (one worker per
//! delivery, across processes), signs each per Standard Webhooks, POSTs it, and records the
//! attempt. At-least-once: a worker that dies mid-delivery leaves a lease that expires, and
//! the delivery is sent again.

use buyline_core::order::DeliveryJob;
use buyline_core::service::{allowed_target, AttemptResult};
use buyline_core::Services;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refuses to connect to private addresses (unless allowed) at the moment of sending, so a
/// name that resolved publicly when it was registered cannot be re-pointed inside.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = addrs.into_iter().filter(|a| allowed_target(a.ip(), allow)).collect();
            if ok.is_empty() {
                return Err(format!("{host} resolves only to private or reserved addresses").into());
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
    /// How long a claimed delivery stays with this worker: twice the timeout and a margin,
    /// so a live attempt always finishes (and is recorded) before anyone else may take it.
    lease_micros: i64,
}

/// How much of a response is read and kept in the attempt log.
const EXCERPT_BYTES: usize = 1024;

impl Sender {
    pub fn new(allow_private: bool, timeout: Duration) -> anyhow::Result<Sender> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Buyline-Webhooks/1")
            .pool_max_idle_per_host(32)
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .build()?;
        Ok(Sender { client, allow_private, lease_micros: 2 * timeout.as_micros() as i64 + 5_000_000 })
    }

    /// Signs and sends one delivery.
    pub async fn send(&self, job: &DeliveryJob) -> AttemptResult {
        let started = Instant::now();
        let timestamp = chrono_now_secs();
        let mut signatures = Vec::new();
        for secret in std::iter::once(&job.secret).chain(job.old_secret.iter()) {
            match standardwebhooks::Webhook::new(secret)
                .and_then(|w| w.sign(&job.event_id, timestamp, job.payload.as_bytes()))
            {
                Ok(sig) => signatures.push(sig),
                Err(e) => {
                    tracing::error!(merchant_id = %job.merchant_id, error = %e, "cannot sign with the stored secret")
                }
            }
        }
        let mut result = AttemptResult {
            url: job.url.clone(),
            status: None,
            latency_ms: 0,
            excerpt: String::new(),
            error: None,
            retry_after: None,
        };
        if let Some(ip) = host_ip(&job.url) {
            if !allowed_target(ip, self.allow_private) {
                result.error = Some("the webhook URL points at a private address".into());
                return result;
            }
        }
        let response = self
            .client
            .post(&job.url)
            .header("content-type", "application/json")
            .header("webhook-id", &job.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(job.payload.clone())
            .send()
            .await;
        match response {
            Ok(mut resp) => {
                result.status = Some(resp.status().as_u16());
                result.retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok());
                let mut body = Vec::new();
                // Read no more than the excerpt: a receiver cannot make us hold a large body.
                while body.len() < EXCERPT_BYTES {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                body.truncate(EXCERPT_BYTES);
                result.excerpt = String::from_utf8_lossy(&body).to_string();
            }
            Err(e) => {
                result.error = Some(if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "could not connect".to_string()
                } else {
                    let msg = e.to_string();
                    msg.chars().take(200).collect()
                });
            }
        }
        result.latency_ms = started.elapsed().as_millis() as i64;
        result
    }
}

fn host_ip(url: &str) -> Option<std::net::IpAddr> {
    match url::Url::parse(url).ok()?.host()? {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    }
}

fn chrono_now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Deliveries in flight at most, per process.
const MAX_IN_FLIGHT: usize = 256;
/// Claimed in one statement at most, and recorded together at most.
const CLAIM_MAX: usize = 128;
/// A finished attempt waits at most this long to be recorded with others.
const RECORD_AFTER: Duration = Duration::from_millis(20);

/// Sends one delivery and counts it.
async fn attempt(sender: Arc<Sender>, job: DeliveryJob) -> (DeliveryJob, AttemptResult) {
    let result = sender.send(&job).await;
    metrics::counter!("webhook_attempts_total", "ok" => result.status.is_some_and(|s| (200..300).contains(&s)).to_string())
        .increment(1);
    (job, result)
}

/// Records finished attempts together. If that fails, the leases run out and the
/// deliveries are sent again: at least once.
async fn record(services: &Services, done: &mut Vec<(DeliveryJob, AttemptResult)>) {
    if done.is_empty() {
        return;
    }
    if let Err(e) = services.finish_deliveries(done).await {
        tracing::warn!(deliveries = done.len(), error = %e, "could not record delivery attempts");
    }
    done.clear();
}

/// Delivers until shutdown, as a pipeline: up to [`MAX_IN_FLIGHT`] deliveries are on the
/// wire at once; whenever half of that room is free the next ones are claimed, and finished
/// attempts are recorded in groups (every [`CLAIM_MAX`] or [`RECORD_AFTER`]), so a slow
/// receiver holds only its own deliveries and one durable commit records many attempts.
/// When nothing is due it looks again after a short wait. At shutdown it stops claiming,
/// lets what is in flight finish (each attempt is bounded by the timeout) and records it.
pub fn run(
    services: Services,
    sender: Arc<Sender>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut in_flight = tokio::task::JoinSet::new();
        let mut done: Vec<(DeliveryJob, AttemptResult)> = Vec::new();
        let mut oldest_done: Option<tokio::time::Instant> = None;
        let mut idle_until: Option<tokio::time::Instant> = None;
        loop {
            let stopping = *stop.borrow();
            if stopping && in_flight.is_empty() {
                break;
            }
            let room = MAX_IN_FLIGHT - in_flight.len();
            let may_claim =
                !stopping && room >= MAX_IN_FLIGHT / 2 && idle_until.is_none_or(|t| t <= tokio::time::Instant::now());
            if may_claim {
                let want = room.min(CLAIM_MAX);
                match services.claim_deliveries(want as i64, sender.lease_micros).await {
                    Ok(jobs) => {
                        idle_until =
                            (jobs.len() < want).then(|| tokio::time::Instant::now() + Duration::from_millis(100));
                        for job in jobs {
                            in_flight.spawn(attempt(sender.clone(), job));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming deliveries failed");
                        idle_until = Some(tokio::time::Instant::now() + Duration::from_millis(500));
                    }
                }
            }
            // Wait for the first of: an attempt finishing, the time to record, the time to
            // look for due deliveries again, shutdown.
            let record_at = oldest_done.map(|t| t + RECORD_AFTER);
            let wake = [record_at, idle_until.filter(|_| !stopping)].into_iter().flatten().min();
            tokio::select! {
                Some(r) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Ok(pair) = r {
                        done.push(pair);
                        oldest_done.get_or_insert_with(tokio::time::Instant::now);
                    }
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1))), if wake.is_some() || in_flight.is_empty() => {}
                _ = stop.changed(), if !stopping => {}
                else => {}
            }
            let due = oldest_done.is_some_and(|t| t + RECORD_AFTER <= tokio::time::Instant::now());
            if done.len() >= CLAIM_MAX || due || (in_flight.is_empty() && !done.is_empty()) {
                record(&services, &mut done).await;
                oldest_done = None;
            }
        }
        record(&services, &mut done).await;
    })
}
