//! One run: start the servers, measure the baseline, run the scenario, report.

use crate::api::Api;
use crate::args::{BenchArgs, Scenario};
use crate::load::{load, Measured};
use crate::scenarios;
use crate::server::{self, Server};
use anyhow::bail;
use clap::ValueEnum;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a scenario found besides speed; any failure makes the run exit non-zero.
#[derive(Default)]
pub struct Outcome {
    pub counters: BTreeMap<String, Value>,
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn set(&mut self, k: &str, v: Value) {
        self.counters.insert(k.into(), v);
    }

    pub fn fail(&mut self, why: String) {
        self.failures.push(why);
    }
}

async fn baseline(api: &Api, clients: usize, duration: Duration) -> Measured {
    let api = api.clone();
    load(clients, duration, move |_, _| {
        let api = api.clone();
        async move { matches!(api.call(reqwest::Method::GET, "/ping", None, None).await, Ok((200, _))) }
    })
    .await
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.duration.max(1));
    let mut out = Outcome::default();
    let mut servers: Vec<Server> = Vec::new();
    let mut pg_cleanup: Option<(String, String)> = None;

    // Servers.
    let api = match (&args.target, args.scenario) {
        (Some(t), Scenario::Baseline | Scenario::Timeline) => Api::new(t),
        (Some(_), _) => bail!("--target drives baseline and timeline; the other scenarios start their own servers"),
        (None, Scenario::FlashSale) => {
            let bin = server::server_bin(args.server_bin.as_deref())?;
            let base = args
                .database_url
                .clone()
                .or_else(|| std::env::var("BUYLINE_BENCH_DATABASE_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
            let db = crate::pg::fresh(&base).await?;
            pg_cleanup = Some((base, db.clone()));
            let dir = tempfile::tempdir()?;
            // Two processes on one database, sharing the vault key directory.
            servers.push(Server::start(&bin, Some(&db), Some(dir.path()), &[])?);
            servers.push(Server::start(&bin, Some(&db), Some(dir.path()), &[])?);
            std::mem::forget(dir);
            Api::new(&servers[0].url)
        }
        (None, scenario) => {
            let bin = server::server_bin(args.server_bin.as_deref())?;
            // The webhooks scenario fills the outbox behind a receiver that holds the worker's
            // first batch unanswered; the server must wait for it as long as that takes.
            let env: &[(&str, &str)] = if scenario == Scenario::Webhooks && args.backlog > 0 {
                &[("BUYLINE_WEBHOOK_TIMEOUT_SECS", scenarios::webhooks::HOLD_TIMEOUT_SECS)]
            } else {
                &[]
            };
            // On PostgreSQL each run gets a fresh database on the server named, as flash-sale does.
            let db = match args.database_url.as_deref() {
                Some(base) if base.starts_with("postgres") => {
                    let db = crate::pg::fresh(base).await?;
                    pg_cleanup = Some((base.to_string(), db.clone()));
                    Some(db)
                }
                other => other.map(str::to_string),
            };
            servers.push(Server::start(&bin, db.as_deref(), None, env)?);
            if scenario == Scenario::Timeline && args.database_url.is_none() {
                // The same server without the experiment's counting, for its cost.
                servers.push(Server::start(&bin, None, None, &[("BUYLINE_NO_FUNNEL_COUNTING", "1")])?);
            }
            Api::new(&servers[0].url)
        }
    };

    server::sample_rss(servers.iter().map(Server::pid).collect());
    let base = baseline(
        &api,
        args.clients,
        if args.scenario == Scenario::Baseline { duration } else { duration.min(Duration::from_secs(3)) },
    )
    .await;
    let measured = match args.scenario {
        Scenario::Baseline => Measured {
            ok: base.ok,
            errors: base.errors,
            latencies_us: base.latencies_us.clone(),
            elapsed: base.elapsed,
        },
        Scenario::OneTap => scenarios::one_tap::run(&api, &args, duration, &mut out).await?,
        Scenario::Timeline => {
            let uncounted = servers.get(1).map(|s| Api::new(&s.url));
            scenarios::timeline::run(&api, uncounted.as_ref(), &args, duration, &mut out).await?
        }
        Scenario::FlashSale => scenarios::flash_sale::run(&args, &servers, &mut out).await?,
        Scenario::Webhooks => scenarios::webhooks::run(&api, &args, duration, &mut out).await?,
        Scenario::HashtagCart => scenarios::hashtag_cart::run(&api, &args, duration, &mut out).await?,
    };
    let rss = servers.iter().map(Server::peak_rss_mib).fold(0.0, f64::max);
    let load_rss = server::load_rss_mib();
    drop(servers);
    if let Some((base, db)) = pg_cleanup {
        crate::pg::drop(&base, &db).await;
    }

    let name = args.scenario.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
    let ratio = measured.per_s() / base.per_s().max(1e-9);
    println!("scenario          {name}");
    println!("clients           {}", args.clients);
    println!("duration_s        {:.1}", measured.elapsed.as_secs_f64());
    println!("throughput_per_s  {:.0}", measured.per_s());
    println!("baseline_per_s    {:.0}  (ratio {:.3})", base.per_s(), ratio);
    println!("p50_ms            {:.2}", measured.pct(0.50));
    println!("p95_ms            {:.2}", measured.pct(0.95));
    println!("p99_ms            {:.2}", measured.pct(0.99));
    println!("errors            {}", measured.errors);
    println!("server_rss_under_load_mib {:.1}", load_rss);
    println!("server_peak_rss_mib {:.1}  (whole run, set-up included)", rss);
    for (k, v) in &out.counters {
        println!("{k:<17} {v}");
    }
    for f in &out.failures {
        println!("FAILED: {f}");
    }
    if args.json {
        let mut line = json!({
            "scenario": name,
            "clients": args.clients,
            "throughput_per_s": (measured.per_s() * 10.0).round() / 10.0,
            "p50_ms": measured.pct(0.50),
            "p95_ms": measured.pct(0.95),
            "p99_ms": measured.pct(0.99),
            "errors": measured.errors,
            "baseline_per_s": (base.per_s() * 10.0).round() / 10.0,
            "ratio_to_baseline": (ratio * 1000.0).round() / 1000.0,
            "server_peak_rss_mib": (rss * 10.0).round() / 10.0,
            "server_rss_under_load_mib": (load_rss * 10.0).round() / 10.0,
            "ok": out.failures.is_empty(),
        });
        for (k, v) in out.counters {
            line[k] = v;
        }
        println!("{line}");
    }
    if !out.failures.is_empty() {
        bail!("correctness counters failed: {}", out.failures.join("; "));
    }
    Ok(())
}
