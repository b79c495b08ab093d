//! The command line.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum Scenario {
    Baseline,
    OneTap,
    FlashSale,
    Timeline,
    Webhooks,
    HashtagCart,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "buyline-bench",
    version,
    about = "Load scenarios against real `buyline serve` processes (see BENCHMARKS.md)"
)]
pub struct BenchArgs {
    pub scenario: Scenario,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// End with one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Database for the servers (`postgres://…`: a fresh database is made on that server for
    /// the run, and dropped after). Default: SQLite in a temp dir; flash-sale uses the local
    /// PostgreSQL.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Drive an already running server instead of starting one (baseline, timeline).
    #[arg(long)]
    pub target: Option<String>,
    /// The `buyline` binary whose `serve` the scenarios start; default: `buyline` beside this
    /// program (`buyline bench …` passes itself).
    #[arg(long, env = "BUYLINE_BENCH_SERVER")]
    pub server_bin: Option<PathBuf>,
    /// Flash sale: units in stock and buyers.
    #[arg(long, default_value_t = 500)]
    pub stock: i64,
    #[arg(long, default_value_t = 5000)]
    pub buyers: usize,
    /// Webhooks: seconds the receiver is down before it recovers.
    #[arg(long, default_value_t = 10)]
    pub outage: u64,
    /// Webhooks: events in the outbox at once to measure the pure delivery rate (orders placed
    /// through the API while the receiver holds every delivery unanswered).
    #[arg(long, default_value_t = 5000)]
    pub backlog: usize,
    /// Hashtag cart: replies per second offered (open loop, spread over the clients).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
}
