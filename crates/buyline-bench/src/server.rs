//! `buyline serve` processes started for a run, through the binary's CLI, and their memory.

use anyhow::{bail, Context};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The operator token the servers are started with.
pub const ADMIN: &str = "op_bench_token";

/// Set while load runs; the RSS sampler records only then, so set-up (sign-ups hash
/// passwords with Argon2, 19 MiB each) does not count as memory under load.
pub static MEASURING: AtomicBool = AtomicBool::new(false);
static LOAD_RSS_KIB: AtomicU64 = AtomicU64::new(0);

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse().ok()))
        .unwrap_or(0)
}

/// Samples the servers' resident memory every 50 ms while load runs.
pub fn sample_rss(pids: Vec<u32>) {
    std::thread::spawn(move || loop {
        if MEASURING.load(Ordering::Relaxed) {
            let total: u64 = pids.iter().map(|p| rss_kib(*p, "VmRSS:")).max().unwrap_or(0);
            LOAD_RSS_KIB.fetch_max(total, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}

/// The largest resident memory sampled under load, in MiB.
pub fn load_rss_mib() -> f64 {
    LOAD_RSS_KIB.load(Ordering::Relaxed) as f64 / 1024.0
}

/// The `buyline` binary: `--server-bin`, else `buyline` beside this program.
pub fn server_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?.with_file_name(format!("buyline{}", std::env::consts::EXE_SUFFIX)),
    };
    if !bin.is_file() {
        bail!("{} not found: build it (`cargo build -p buyline`) or pass --server-bin", bin.display());
    }
    Ok(bin)
}

/// A server process started for the run.
pub struct Server {
    child: std::process::Child,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `bin serve` on a free loopback port, in `dir` (or a temp dir of its own), with
    /// `env` added to its environment; returns once it says where it listens.
    pub fn start(
        bin: &Path,
        database_url: Option<&str>,
        dir: Option<&Path>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let tmp = if dir.is_none() { Some(tempfile::tempdir()?) } else { None };
        let data_dir = dir.map(Path::to_path_buf).unwrap_or_else(|| tmp.as_ref().unwrap().path().to_path_buf());
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-demo", "--allow-private-webhooks"])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("BUYLINE_ADMIN_TOKEN", ADMIN)
            // The load comes from a few shoppers; the per-shopper burst limit is not under test.
            .env("BUYLINE_CART_REPLY_LIMIT", "1000000")
            .env("BUYLINE_LOG", std::env::var("BUYLINE_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        if let Some(u) = database_url {
            cmd.env("DATABASE_URL", u);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {} serve", bin.display()))?;
        let out = child.stdout.take().context("server stdout")?;
        let mut lines = std::io::BufReader::new(out).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(u) = line.strip_prefix("Buyline is running at ") {
                        break u.trim().to_string();
                    }
                }
                _ => bail!("the server exited before listening"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, url, _dir: tmp })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the process over its whole life (set-up included), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        rss_kib(self.child.id(), "VmHWM:") as f64 / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
