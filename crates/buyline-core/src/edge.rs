//! What core asks of the world outside the process, as small traits the binary implements:
//! looking a host name up, and pausing before looking again. Core keeps the rules (which
//! addresses a webhook may go to, how long and how often to wait for a checkout); the edge
//! does the I/O, so core runs on any executor and its tests need no network.

use async_trait::async_trait;
use std::net::IpAddr;
use std::time::Duration;

/// Name resolution (DNS, or whatever the host uses).
#[async_trait]
pub trait Resolver: Send + Sync + 'static {
    /// Every address `host` has; `port` goes along as it would to `getaddrinfo`.
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// Waiting without holding a thread, for a service that looks again after a while.
#[async_trait]
pub trait Pause: Send + Sync + 'static {
    async fn pause(&self, how_long: Duration);
}
