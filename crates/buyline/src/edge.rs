//! Core's I/O traits on tokio: the system resolver for the webhook SSRF guard, and the
//! timer for a service that waits before looking again. Core decides what to do with the
//! addresses and how long to wait; this only does the lookup and the sleep.

use async_trait::async_trait;
use buyline_core::edge::{Pause, Resolver};
use std::net::IpAddr;
use std::time::Duration;

/// Tokio's resolver (`getaddrinfo` on a blocking thread) and timer.
pub struct Tokio;

#[async_trait]
impl Resolver for Tokio {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.map(|a| a.ip()).collect())
    }
}

#[async_trait]
impl Pause for Tokio {
    async fn pause(&self, how_long: Duration) {
        tokio::time::sleep(how_long).await
    }
}
