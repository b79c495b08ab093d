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

/// One pass: claim a batch and deliver it concurrently. Returns how many were attempted.
pub async fn deliver_batch(services: &Services, sender: &Arc<Sender>, batch: i64) -> anyhow::Result<usize> {
    let jobs = services.claim_deliveries(batch, sender.lease_micros).await?;
    let n = jobs.len();
    let mut tasks = tokio::task::JoinSet::new();
    for job in jobs {
        let sender = sender.clone();
        tasks.spawn(async move {
            let result = sender.send(&job).await;
            metrics::counter!("webhook_attempts_total", "ok" => result.status.is_some_and(|s| (200..300).contains(&s)).to_string())
                .increment(1);
            (job, result)
        });
    }
    let mut done = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        if let Ok(pair) = r {
            done.push(pair);
        }
    }
    // The batch's attempts are recorded together. If that fails, the leases run out and the
    // deliveries are sent again: at least once.
    if let Err(e) = services.finish_deliveries(&done).await {
        tracing::warn!(deliveries = done.len(), error = %e, "could not record delivery attempts");
    }
    Ok(n)
}

/// Delivers until shutdown: a full batch is followed at once by the next, an empty one by a
/// short wait.
pub fn run(
    services: Services,
    sender: Arc<Sender>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        const BATCH: i64 = 64;
        loop {
            if *stop.borrow() {
                break;
            }
            let n = match deliver_batch(&services, &sender, BATCH).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "delivery pass failed");
                    0
                }
            };
            if n < BATCH as usize {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    })
}
