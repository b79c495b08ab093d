//! Start-up: configuration, telemetry, the database, demo content, and the HTTP server with
//! its background work side by side. The binary and the integration tests both start here.

pub mod config;
pub mod demo;
pub mod workers;

use anyhow::Context;
use buyline_core::service::ServiceConfig;
use buyline_core::test_processor::TestProcessor;
use buyline_core::Services;
use buyline_store::Db;
use buyline_web::AppState;
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
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, finishes in-flight requests, closes the database.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await.context("server task")??;
        for b in self.background {
            let _ = b.await;
        }
        self.db.close().await;
        Ok(())
    }

    /// Runs until SIGINT or SIGTERM.
    pub async fn until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await
    }
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
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    let url = cfg.database_url();
    let max = if url.starts_with("sqlite:") { 8 } else { 16 };
    Db::connect(&url, max)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot open database {}", config::redact_url(&url)))
}

/// Binds, opens the database, seeds demo content on first run, and serves in the background.
pub async fn spawn(cfg: ServeConfig) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(&cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let public_url = cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let public_url = public_url.trim_end_matches('/').to_string();
    let db = open_db(&cfg).await?;
    let store: Arc<dyn buyline_core::store::Store> = Arc::new(db.clone());
    let processor = Arc::new(TestProcessor::new(store.clone(), public_url.clone()));
    let services = Services::new(
        store,
        processor.clone(),
        ServiceConfig { public_url: public_url.clone(), session_ttl_micros: 30 * 24 * 3600 * 1_000_000 },
    );
    // Recovery first: whatever a crash left half-done is settled before new work arrives.
    services.reconcile(buyline_core::types::now_micros()).await.context("start-up reconciliation")?;
    let mailer = workers::Mailer::new(&cfg.data_dir, cfg.smtp_url.as_deref())?;
    let from: lettre::message::Mailbox =
        cfg.mail_from.parse().with_context(|| format!("BUYLINE_MAIL_FROM {:?} is not an address", cfg.mail_from))?;
    let admin_token = cfg.admin_token()?;
    let demo = if cfg.no_demo { None } else { demo::seed_if_empty(&services, &cfg.data_dir).await? };
    let state = AppState {
        services: services.clone(),
        processor: processor.clone(),
        operator_token: Some(admin_token.clone()),
        metrics: metrics_handle(),
        secure_cookies: public_url.starts_with("https://"),
    };
    let app = buyline_web::app(state);
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    {
        let s = services.clone();
        background.push(workers::every("reconciler", Duration::from_secs(30), tx.subscribe(), move || {
            let s = s.clone();
            async move { s.reconcile(buyline_core::types::now_micros()).await.map(|_| ()).map_err(Into::into) }
        }));
        let s = services.clone();
        background.push(workers::every("mailer", Duration::from_secs(1), tx.subscribe(), move || {
            let (s, m, f) = (s.clone(), mailer.clone(), from.clone());
            async move { workers::send_pending_mail(&s, &m, &f).await.map(|_| ()) }
        }));
    }
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
            .context("http server")
    });
    tracing::info!(%addr, %public_url, backend = ?db.backend(), "listening");
    Ok(Running { addr, public_url, admin_token, demo, db, services, shutdown: tx, task, background })
}
