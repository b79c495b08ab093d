//! A local merchant endpoint for webhooks: verifies signatures (Standard Webhooks), records
//! distinct events and the orders they report, and can be told to fail (an outage) or to hold
//! every delivery unanswered (so the outbox fills behind the worker).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Receiver {
    /// Distinct `webhook-id`s verified.
    pub seen: Arc<Mutex<HashSet<String>>>,
    /// `data.id` of every verified event: the orders it reported.
    pub orders: Arc<Mutex<HashSet<String>>>,
    pub bad: Arc<AtomicU64>,
    pub down: Arc<AtomicBool>,
    /// While true, deliveries wait unanswered.
    pub hold: Arc<tokio::sync::watch::Sender<bool>>,
    pub secret: Arc<Mutex<String>>,
    pub delivered_at: Arc<Mutex<Vec<Instant>>>,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            seen: Arc::default(),
            orders: Arc::default(),
            bad: Arc::default(),
            down: Arc::default(),
            hold: Arc::new(tokio::sync::watch::channel(false).0),
            secret: Arc::default(),
            delivered_at: Arc::default(),
        }
    }
}

impl Receiver {
    pub async fn start(&self) -> anyhow::Result<String> {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    let mut held = me.hold.subscribe();
                    let _ = held.wait_for(|h| !*h).await;
                    if me.down.load(Ordering::Relaxed) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let secret = me.secret.lock().unwrap().clone();
                    let ok = standardwebhooks::Webhook::new(&secret)
                        .map(|w| w.verify(&body, &headers).is_ok())
                        .unwrap_or(false);
                    if !ok {
                        me.bad.fetch_add(1, Ordering::Relaxed);
                        return axum::http::StatusCode::UNAUTHORIZED;
                    }
                    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    if me.seen.lock().unwrap().insert(id) {
                        me.delivered_at.lock().unwrap().push(Instant::now());
                    }
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if let Some(order) = event["data"]["id"].as_str() {
                        me.orders.lock().unwrap().insert(order.to_string());
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(url)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until `n` distinct events have been verified, or `limit` passed.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        while self.count() < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.count()
    }

    /// Waits until every order in `ids` has been reported, or `limit` passed; returns how many
    /// of them were.
    pub async fn wait_for_orders(&self, ids: &HashSet<String>, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        loop {
            let got = self.orders.lock().unwrap().intersection(ids).count();
            if got >= ids.len() || Instant::now() >= until {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forgets what it has seen (between phases).
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
        self.orders.lock().unwrap().clear();
        self.delivered_at.lock().unwrap().clear();
    }
}
