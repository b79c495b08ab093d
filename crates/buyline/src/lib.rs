//! Start-up: configuration, telemetry, the database, demo content, and the HTTP server with
//! its background work side by side. The binary and the integration tests both start here.

pub mod blobs;
pub mod config;
pub mod demo;
pub mod edge;
pub mod webhooks;
pub mod workers;

use anyhow::Context;
use buyline_core::service::ServiceConfig;
use buyline_core::Services;
use buyline_store::Db;
use buyline_test_processor::TestProcessor;
use buyline_vault::{KeySource, Vault};
use buyline_web::{AppParts, AppState};
use config::ServeConfig;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// The process-wide Prometheus recorder (one per process, however many servers run in it).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().ok()).clone()
}

/// A server that is listening.
pub struct Running {
    pub addr: SocketAddr,
    pub public_url: String,
    pub admin_token: String,
    pub demo: Option<demo::DemoCredentials>,
    pub db: Db,
    pub services: Services,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// How long [`Running::stop`] waits for in-flight work.
    grace: Duration,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// How long after a signal's grace period the process exits if it has not yet: time for
/// [`Running::stop`] (bounded by the grace period itself) to return and `main` to end.
const EXIT_MARGIN: Duration = Duration::from_secs(2);

impl Running {
    /// Stops accepting, lets in-flight requests and background passes finish, and closes the
    /// database, all within the grace period: a client that holds a request open (a slow
    /// body, a stuck handler) cannot hold the shutdown. Whatever still runs at the deadline
    /// is dropped — the work it was doing is the kind a crash may interrupt too, and the
    /// reconciler and the outbox leases settle it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.grace;
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(served) => served.context("server task")??,
            Err(_) => {
                tracing::warn!(grace_secs = self.grace.as_secs(), "requests still in flight at the deadline; dropped");
                task.abort();
            }
        }
        // Captures queued by the last purchases (answered before them): taken and recorded
        // before the database closes; what the deadline cuts off is the reconciler's.
        if tokio::time::timeout_at(deadline, self.services.drain_captures()).await.is_err() {
            tracing::warn!("captures still queued at the deadline; the reconciler will take them");
        }
        // Impressions counted by the last requests: written before the database closes.
        if let Err(e) = tokio::time::timeout_at(deadline, self.services.flush_funnel()).await.unwrap_or(Ok(0)) {
            tracing::warn!(error = %e, "last funnel flush failed");
        }
        for mut b in self.background {
            if tokio::time::timeout_at(deadline, &mut b).await.is_err() {
                tracing::warn!("a background worker was still busy at the deadline; dropped");
                b.abort();
            }
        }
        if tokio::time::timeout_at(deadline, self.db.close()).await.is_err() {
            tracing::warn!("database connections still in use at the deadline; not waiting for them");
        }
        Ok(())
    }

    /// Runs until SIGINT or SIGTERM, then stops within the grace period; see
    /// [`watch_signals`] for what happens if that is not enough.
    pub async fn until_signal(self) -> anyhow::Result<()> {
        if watch_signals(self.grace).await.is_err() {
            // No watcher thread: listen here instead, without the exit deadline.
            shutdown_signal().await;
        }
        tracing::info!(grace_secs = self.grace.as_secs(), "shutting down");
        self.stop().await
    }
}

/// Listens for SIGINT and SIGTERM on a thread and runtime of its own, so a signal is heard
/// even when every worker of the serving runtime is busy. The first signal completes the
/// returned receiver (a graceful stop begins). If the process is still alive `grace` (plus
/// a short margin) later, or a second signal arrives, it exits at once with status 1: a
/// stop that cannot finish must not keep a process that was told to go.
pub fn watch_signals(grace: Duration) -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let watcher = move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the signal watcher");
                return;
            }
        };
        rt.block_on(async move {
            shutdown_signal().await;
            let _ = tx.send(());
            tokio::select! {
                _ = tokio::time::sleep(grace + EXIT_MARGIN) => {
                    tracing::error!(grace_secs = grace.as_secs(), "shutdown did not finish in time; exiting now");
                }
                _ = shutdown_signal() => tracing::warn!("second signal; exiting now"),
            }
            std::process::exit(1);
        });
    };
    if let Err(e) = std::thread::Builder::new().name("signals".into()).spawn(watcher) {
        tracing::error!(error = %e, "cannot start the signal watcher");
    }
    rx
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Opens the database (creating the data dir and running migrations).
pub async fn open_db(cfg: &ServeConfig) -> anyhow::Result<Db> {
    if !cfg.data_dir.exists() {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
        // A new data dir holds the database, keys and mail: for its owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    let url = cfg.database_url();
    let max = if url.starts_with("sqlite:") { 8 } else { 16 };
    Db::connect(&url, max)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot open database {}", config::redact_url(&url)))
}

/// Where the vault's key-encryption keys come from: `BUYLINE_VAULT_KEY`, or key files.
pub fn key_source(data_dir: &std::path::Path) -> KeySource {
    match std::env::var("BUYLINE_VAULT_KEY").ok().filter(|s| !s.trim().is_empty()) {
        Some(keys) => KeySource::Env(keys),
        None => KeySource::Dir(data_dir.join("vault-keys")),
    }
}

/// Loads the vault keys and checks that every sealed record's key is there. A key is
/// created only for a database that holds no sealed records: a missing or wrong key stops
/// start-up with the id of the key it needs, and never silently becomes a new key.
pub async fn open_vault(data_dir: &std::path::Path, db: &Db) -> anyhow::Result<Arc<Vault>> {
    use buyline_core::store::VaultStore;
    use buyline_core::vault::Sealer;
    let usage = db.count_vault_records_by_kek().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let source = key_source(data_dir);
    let where_keys = match &source {
        KeySource::Env(_) => "BUYLINE_VAULT_KEY".to_string(),
        KeySource::Dir(d) => d.display().to_string(),
    };
    let vault = Vault::load(source, usage.is_empty()).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the vault: {e}. Saved cards and addresses need the key they were sealed with ({where_keys})."
        )
    })?;
    for (kek_id, n) in &usage {
        if !vault.has_kek(kek_id) {
            anyhow::bail!(
                "vault key {kek_id} is missing: {n} saved cards or addresses are sealed with it, and it is not in \
                 {where_keys}. Restore that key (or set BUYLINE_VAULT_KEY to it); refusing to start rather than lose them."
            );
        }
    }
    Ok(Arc::new(vault))
}

/// `buyline keys rotate`: a new current key, every data key re-wrapped, old keys retired.
pub async fn rotate_keys(data_dir: &std::path::Path, database_url: &str) -> anyhow::Result<String> {
    use buyline_core::vault::Sealer;
    let db = Db::connect(database_url, 2).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let vault = open_vault(data_dir, &db).await?;
    let before = vault.kek_ids();
    let env_keys = matches!(key_source(data_dir), KeySource::Env(_));
    if !env_keys {
        vault.add_current_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let current = vault.current_kek_id();
    let (read, write) = db.pools();
    let services = Services::new(
        Arc::new(db.clone()),
        Arc::new(TestProcessor::new(read, write, String::new())),
        vault.clone(),
        Arc::new(edge::Tokio),
        Arc::new(edge::Tokio),
        ServiceConfig {
            public_url: String::new(),
            session_ttl_micros: 0,
            allow_private_webhooks: false,
            cart_replies_per_minute: 0,
            stuck_after_micros: 120 * 1_000_000,
        },
    );
    let moved = services.rewrap_vault().await?;
    let usage = services.vault_key_usage().await?;
    let mut retired = Vec::new();
    for old in before.iter().filter(|id| **id != current) {
        if !usage.iter().any(|(id, n)| id == old && *n > 0) {
            if env_keys {
                retired.push(format!("{old} (remove it from BUYLINE_VAULT_KEY)"));
            } else {
                vault.retire(old).map_err(|e| anyhow::anyhow!("{e}"))?;
                retired.push(old.clone());
            }
        }
    }
    let report = format!(
        "vault key {current} is current; {moved} records re-wrapped; retired: {}",
        if retired.is_empty() { "none".into() } else { retired.join(", ") }
    );
    // The console shows the key id and when it last rotated from this entry.
    services.audit(buyline_core::service::VAULT_ROTATE, &report).await?;
    db.close().await;
    tracing::info!(current = %current, moved, "vault keys rotated");
    Ok(report)
}

/// Binds, opens the database, seeds demo content on first run, and serves in the background.
pub async fn spawn(cfg: ServeConfig) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(&cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let public_url = cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let public_url = public_url.trim_end_matches('/').to_string();
    let db = open_db(&cfg).await?;
    let store: Arc<dyn buyline_core::store::Store> = Arc::new(db.clone());
    let (read, write) = db.pools();
    let processor = Arc::new(TestProcessor::new(read, write, public_url.clone()).sharing(db.group_writer()));
    let vault = open_vault(&cfg.data_dir, &db).await?;
    let mailer = workers::Mailer::new(&cfg.data_dir, cfg.smtp_url.as_deref())?;
    let mut services = Services::new(
        store,
        processor.clone(),
        vault,
        Arc::new(edge::Tokio),
        Arc::new(edge::Tokio),
        ServiceConfig {
            public_url: public_url.clone(),
            session_ttl_micros: 30 * 24 * 3600 * 1_000_000,
            allow_private_webhooks: cfg.allow_private_webhooks,
            cart_replies_per_minute: cfg.cart_reply_limit,
            stuck_after_micros: cfg.stuck_checkout_secs.max(1) as i64 * 1_000_000,
        },
    );
    services.set_funnel_counting(!cfg.no_funnel_counting);
    if let Some(spool) = mailer.spool() {
        services = services.with_mail_spool(Arc::new(spool));
    }
    services = services.with_download_limits(
        cfg.download_ttl_secs.max(1) as i64 * 1_000_000,
        i64::from(cfg.downloads_per_link.max(1)),
    );
    services.prime_download_key().await.context("loading the download-link key")?;
    let blobs = blobs::open(&cfg)?;
    // Signing secrets written before they were sealed are sealed now.
    let sealed = services.seal_plain_webhook_secrets().await.context("sealing webhook secrets")?;
    if sealed > 0 {
        tracing::info!(sealed, "webhook signing secrets moved into the vault");
    }
    // Recovery first: whatever a crash left half-done is settled before new work arrives.
    services.reconcile(buyline_core::types::now_micros()).await.context("start-up reconciliation")?;
    let from: lettre::message::Mailbox =
        cfg.mail_from.parse().with_context(|| format!("BUYLINE_MAIL_FROM {:?} is not an address", cfg.mail_from))?;
    let admin_token = cfg.admin_token()?;
    let demo = if cfg.no_demo { None } else { demo::seed_if_empty(&services, &cfg.data_dir, &blobs).await? };
    let state = AppState::new(AppParts {
        services: services.clone(),
        processor: processor.clone(),
        challenges: Some(processor.clone()),
        operator_token: Some(admin_token.clone()),
        metrics: metrics_handle(),
        secure_cookies: public_url.starts_with("https://"),
        // In the database, so every process serving it signs and checks alike.
        csrf: buyline_web::csrf::CsrfKey::new(services.shared_key("csrf").await?.as_bytes()),
        blobs,
    });
    let app = buyline_web::app(state);
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    {
        let s = services.clone();
        background.push(workers::every(
            "reconciler",
            Duration::from_secs(cfg.reconcile_interval_secs.max(1)),
            tx.subscribe(),
            move || {
                let s = s.clone();
                async move { s.reconcile(buyline_core::types::now_micros()).await.map(|_| ()).map_err(Into::into) }
            },
        ));
        let sender = Arc::new(webhooks::Sender::new(
            cfg.allow_private_webhooks,
            Duration::from_secs(cfg.webhook_timeout_secs.max(1)),
        )?);
        background.push(webhooks::run(services.clone(), sender, tx.subscribe()));
        background.push(workers::funnel_flusher(services.clone(), tx.subscribe()));
        if cfg.cart_worker {
            background.push(workers::cart_replies(services.clone(), tx.subscribe()));
        }
        if let Some(secs) = cfg.payout_interval_secs.filter(|s| *s > 0) {
            let s = services.clone();
            background.push(workers::every("payouts", Duration::from_secs(secs), tx.subscribe(), move || {
                let s = s.clone();
                async move {
                    s.run_payouts(None, buyline_core::types::now_micros()).await.map(|_| ()).map_err(Into::into)
                }
            }));
        }
        let s = services.clone();
        background.push(workers::every("mailer", Duration::from_secs(1), tx.subscribe(), move || {
            let (s, m, f) = (s.clone(), mailer.clone(), from.clone());
            async move { workers::send_pending_mail(&s, &m, &f).await.map(|_| ()) }
        }));
    }
    let task = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
            .context("http server")
    });
    tracing::info!(%addr, %public_url, backend = ?db.backend(), "listening");
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    Ok(Running { addr, public_url, admin_token, demo, db, services, shutdown: tx, grace, task, background })
}
