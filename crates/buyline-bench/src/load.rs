//! Closed-loop load and what it measured.

use crate::server::MEASURING;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Measured {
    pub ok: u64,
    pub errors: u64,
    pub latencies_us: Vec<u64>,
    pub elapsed: Duration,
}

impl Measured {
    pub fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    pub fn per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `clients` loops for `duration`, each calling `op(client_index, iteration)`.
pub async fn load<F, Fut>(clients: usize, duration: Duration, op: F) -> Measured
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    MEASURING.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (op, stop) = (op.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut ok, mut err) = (0u64, 0u64);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if op(c, i).await {
                    ok += 1;
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    err += 1;
                }
                i += 1;
            }
            (ok, err, lat)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    MEASURING.store(false, Ordering::Relaxed);
    let mut m = Measured::default();
    for t in tasks {
        if let Ok((ok, err, lat)) = t.await {
            m.ok += ok;
            m.errors += err;
            m.latencies_us.extend(lat);
        }
    }
    m.elapsed = started.elapsed();
    m.latencies_us.sort_unstable();
    m
}
