//! Command-line flags and `BUYLINE_*` variables (SPEC §5). Each setting is documented once,
//! here, and shows in `--help`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "buyline", version, about = "In-feed commerce: a microblog whose posts carry a Buy button")]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "BUYLINE_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once at start-up: the size of the `serve` settings costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server and background workers.
    Serve(ServeConfig),
    /// Apply database migrations and exit.
    Migrate(StorageArgs),
    /// Print the operator token (creating it in the data dir if needed).
    AdminToken(StorageArgs),
    /// Vault keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Load scenarios against real server processes: runs `buyline-bench`, built beside this
    /// binary, with these arguments (`buyline bench --help`; see BENCHMARKS.md).
    #[command(disable_help_flag = true)]
    Bench(BenchArgs),
}

/// `buyline bench …` passes everything after `bench` to the `buyline-bench` program.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<std::ffi::OsString>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-wrap every saved card's and address's data key under a new key-encryption key,
    /// then retire the old key. Servers keep running: they pick up the new key file.
    /// With `BUYLINE_VAULT_KEY`, list the new key first (`new,old`), run this, then drop the old.
    Rotate(StorageArgs),
}

#[derive(Args, Debug, Clone)]
pub struct StorageArgs {
    /// Directory for the SQLite file, key files and mail spool.
    #[arg(long, env = "BUYLINE_DATA_DIR", default_value = "./buyline-data")]
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: the SQLite file in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind.
    #[arg(long, env = "BUYLINE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Directory for the SQLite file, key files and mail spool.
    #[arg(long, env = "BUYLINE_DATA_DIR", default_value = "./buyline-data")]
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: the SQLite file in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Base of links in posts, e-mails and replies; default `http://` + the listen address.
    #[arg(long, env = "BUYLINE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Do not create demo content on first run.
    #[arg(long, env = "BUYLINE_NO_DEMO", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub no_demo: bool,
    /// Let webhook URLs point at loopback or private addresses (development, tests).
    #[arg(long, env = "BUYLINE_ALLOW_PRIVATE_WEBHOOKS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_webhooks: bool,
    /// Seconds a merchant's endpoint has to answer a webhook.
    #[arg(long, env = "BUYLINE_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    pub webhook_timeout_secs: u64,
    /// Posts with a cart hashtag one shopper may make per minute; more get 429.
    #[arg(long, env = "BUYLINE_CART_REPLY_LIMIT", default_value_t = 20)]
    pub cart_reply_limit: u32,
    /// SMTP server for receipts, e.g. `smtps://user:pass@mail.example.com`; otherwise
    /// receipts are written as `.eml` files into `DATA_DIR/mail`.
    #[arg(long, env = "BUYLINE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of receipts.
    #[arg(long, env = "BUYLINE_MAIL_FROM", default_value = "Buyline <receipts@buyline.localhost>")]
    pub mail_from: String,
    /// Seconds between reconciler passes (each settles what a crash left half-done).
    #[arg(long, env = "BUYLINE_RECONCILE_INTERVAL_SECS", default_value_t = 30)]
    pub reconcile_interval_secs: u64,
    /// Seconds after which a purchase still being completed is taken to have died with its
    /// server: the reconciler gives its stock back, voids its authorisation if no order came
    /// of it, and a retry of the same request may pay again.
    #[arg(long, env = "BUYLINE_STUCK_CHECKOUT_SECS", default_value_t = 120)]
    pub stuck_checkout_secs: u64,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for in-flight requests and background work;
    /// then the process exits anyway. A second signal exits at once.
    #[arg(long, env = "BUYLINE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Where uploads (product images, digital files) live: default the `blobs` folder in the
    /// data dir; `s3://bucket/prefix` for an S3-compatible bucket shared by several nodes
    /// (credentials, region and endpoint from the usual `AWS_*` variables, e.g.
    /// `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for MinIO).
    #[arg(long, env = "BUYLINE_BLOB_URL")]
    pub blob_url: Option<String>,
    /// Largest product image accepted, in bytes.
    #[arg(long, env = "BUYLINE_MAX_IMAGE_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_image_bytes: u64,
    /// Largest digital file accepted, in bytes.
    #[arg(long, env = "BUYLINE_MAX_FILE_BYTES", default_value_t = 200 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// Seconds a download link lasts.
    #[arg(long, env = "BUYLINE_DOWNLOAD_TTL_SECS", default_value_t = 24 * 3600)]
    pub download_ttl_secs: u64,
    /// Downloads one link allows.
    #[arg(long, env = "BUYLINE_DOWNLOADS_PER_LINK", default_value_t = 5)]
    pub downloads_per_link: u32,
    /// Seconds between scheduled payouts of every merchant's balance; off unless set.
    #[arg(long = "payout-interval", env = "BUYLINE_PAYOUT_INTERVAL_SECS")]
    pub payout_interval_secs: Option<u64>,
    /// Do not count the experiment's impressions and opens (the timeline benchmark measures
    /// what counting costs); orders still carry their post.
    #[arg(long, env = "BUYLINE_NO_FUNNEL_COUNTING", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub no_funnel_counting: bool,
    /// Run the hashtag-cart answerer in this process (tests turn it off to drain jobs by hand).
    #[arg(skip = true)]
    pub cart_worker: bool,
    /// The operator token; otherwise one is created in the data dir (`buyline admin-token`).
    #[arg(skip = std::env::var("BUYLINE_ADMIN_TOKEN").ok().filter(|s| !s.is_empty()))]
    pub admin_token: Option<String>,
}

impl ServeConfig {
    /// Defaults for a server in `data_dir`, as the flags would give them.
    pub fn new(data_dir: PathBuf) -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir,
            database_url: None,
            public_url: None,
            no_demo: false,
            allow_private_webhooks: false,
            webhook_timeout_secs: 10,
            cart_reply_limit: 20,
            reconcile_interval_secs: 30,
            stuck_checkout_secs: 120,
            shutdown_grace_secs: 10,
            cart_worker: true,
            no_funnel_counting: false,
            smtp_url: None,
            mail_from: "Buyline <receipts@buyline.localhost>".into(),
            admin_token: None,
            blob_url: None,
            max_image_bytes: 5 * 1024 * 1024,
            max_file_bytes: 200 * 1024 * 1024,
            download_ttl_secs: 24 * 3600,
            downloads_per_link: 5,
            payout_interval_secs: None,
        }
    }

    pub fn database_url(&self) -> String {
        database_url(&self.data_dir, self.database_url.as_deref())
    }

    pub fn admin_token(&self) -> anyhow::Result<String> {
        match &self.admin_token {
            Some(t) => Ok(t.clone()),
            None => admin_token_file(&self.data_dir),
        }
    }
}

pub fn database_url(data_dir: &std::path::Path, url: Option<&str>) -> String {
    match url.filter(|u| !u.is_empty()) {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}?mode=rwc", data_dir.join("buyline.db").display()),
    }
}

/// The URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Reads the operator token from `admin-token` in the data dir, creating it (0600) if absent.
pub fn admin_token_file(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let token = buyline_core::ids::new_secret("op");
    write_private(&path, &format!("{token}\n")).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

/// Writes a file only its owner can read.
pub fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())
}
