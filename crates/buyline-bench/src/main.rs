//! `buyline-bench`: load scenarios against real `buyline serve` processes on loopback.
//!
//! The bench is a client of the product and nothing more: it starts servers with the
//! `buyline` binary's CLI, creates what a scenario needs through the public HTTP API, drives
//! load from its own process, and reads its correctness counters back through that API (order
//! lists, products, the ledger's trial balance, webhook deliveries) and a verifying webhook
//! receiver of its own. It never opens the product's database. Every scenario first measures
//! `baseline` — the same HTTP stack answering a constant JSON body — so figures can be read
//! as ratios of this machine's ceiling. Speed is reported, never asserted; correctness
//! counters are, and a scenario whose counters are wrong exits non-zero.

mod api;
mod args;
mod load;
mod pg;
mod receiver;
mod run;
mod scenarios;
mod server;

/// The same allocator as the server, so the client side of a run costs what it did when the
/// bench lived in the `buyline` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <args::BenchArgs as clap::Parser>::parse();
    run::run(args).await
}
