//! Background work beside the HTTP server: the reconciler, the mailer and the hashtag-cart
//! answerer. Each loop stops
//! when the server shuts down; each pass is safe to run on several processes at once.

use anyhow::Context;
use buyline_core::Services;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// Where receipts go: `.eml` files in the data dir, or an SMTP server.
#[derive(Clone)]
pub enum Mailer {
    /// One `{outbox id}.eml` per e-mail, so erasing a person can find and remove theirs.
    Files(MailDir),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// The folder of sent e-mails kept when no SMTP server is set.
#[derive(Clone, Debug)]
pub struct MailDir(PathBuf);

impl MailDir {
    /// Outbox ids are `eml_` and base62; anything else is never a file name here.
    fn path(&self, id: &str) -> Option<PathBuf> {
        let safe = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        safe.then(|| self.0.join(format!("{id}.eml")))
    }

    async fn write(&self, id: &str, msg: &Message) -> anyhow::Result<()> {
        let path = self.path(id).ok_or_else(|| anyhow::anyhow!("unexpected e-mail id"))?;
        // Written aside and renamed, so a reader never sees half a message.
        let tmp = self.0.join(format!(".{id}.tmp"));
        tokio::fs::write(&tmp, msg.formatted()).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
    }
}

impl buyline_core::service::MailSpool for MailDir {
    fn forget(&self, email_ids: &[String]) -> std::io::Result<()> {
        for id in email_ids {
            if let Some(path) = self.path(id) {
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl Mailer {
    pub fn new(data_dir: &Path, smtp_url: Option<&str>) -> anyhow::Result<Mailer> {
        match smtp_url.filter(|u| !u.is_empty()) {
            Some(url) => Ok(Mailer::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    // The URL may carry a password: say what is wrong, not what it was.
                    .map_err(|e| anyhow::anyhow!("BUYLINE_SMTP_URL is not a valid smtp:// URL: {e}"))?
                    // Well inside a claim's lease (see `send_pending_mail`).
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            )),
            None => {
                let dir = data_dir.join("mail");
                std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
                Ok(Mailer::Files(MailDir(dir)))
            }
        }
    }

    /// The spool erasure must clean, if this mailer keeps one.
    pub fn spool(&self) -> Option<MailDir> {
        match self {
            Mailer::Files(d) => Some(d.clone()),
            Mailer::Smtp(_) => None,
        }
    }

    async fn send(&self, id: &str, msg: Message) -> anyhow::Result<()> {
        match self {
            Mailer::Files(d) => d.write(id, &msg).await,
            Mailer::Smtp(t) => t.send(msg).await.map(|_| ()).map_err(|e| anyhow::anyhow!("{e}")),
        }
    }
}

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends what the outbox holds; returns how many went out.
///
/// The e-mails are claimed for [`buyline_core::service::MAIL_LEASE`]; a send begins only
/// while more than half of it is left (a send takes at most [`SMTP_TIMEOUT`]), so no e-mail
/// is sent after its claim has run out and another process may have claimed it. What is
/// left is claimed again, here or elsewhere, once the lease is over.
pub async fn send_pending_mail(services: &Services, mailer: &Mailer, from: &Mailbox) -> anyhow::Result<usize> {
    let mut sent = 0;
    let claimed = std::time::Instant::now();
    let safe = std::time::Duration::from_micros(buyline_core::service::MAIL_LEASE as u64 / 2);
    for mail in services.pending_emails(50).await? {
        if claimed.elapsed() > safe {
            break;
        }
        let to: Mailbox = match mail.to.parse() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(email_id = %mail.id, error = %e, "undeliverable address; dropping");
                services.mark_email_sent(&mail.id).await?;
                continue;
            }
        };
        let msg = receipt_message(from, to, &mail.subject, &mail.body)?;
        match mailer.send(&mail.id, msg).await {
            Ok(()) => {
                services.mark_email_sent(&mail.id).await?;
                sent += 1;
            }
            Err(e) => {
                // This one and the rest of the batch stay claimed: they are sent again when
                // their lease runs out (`MAIL_LEASE`, a minute), by this process or another.
                tracing::warn!(email_id = %mail.id, error = %e, "sending failed; will retry");
                break;
            }
        }
    }
    Ok(sent)
}

/// A plain-text e-mail that says what it is: `MIME-Version: 1.0` and `Content-Type:
/// text/plain; charset=utf-8`, so a name like "Zoë" or a "£" reads right in every client.
pub fn receipt_message(from: &Mailbox, to: Mailbox, subject: &str, body: &str) -> anyhow::Result<Message> {
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .header(lettre::message::header::MIME_VERSION_1_0)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(body.to_string())?)
}

/// Runs `pass` every `every` until shutdown.
pub fn every<F, Fut>(
    name: &'static str,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    mut pass: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                changed = stop.changed() => changed.is_err() || *stop.borrow(),
            };
            if stopping || *stop.borrow() {
                break;
            }
            if let Err(e) = pass().await {
                tracing::warn!(worker = name, error = %e, "pass failed");
            }
        }
    })
}

/// Answers posts with a cart hashtag until shutdown: within [`GATHER`] when this process
/// wrote one, every 200 ms otherwise (jobs from other processes, and jobs whose lease ran out after a
/// crash). A full batch is followed at once by the next.
pub fn cart_replies(services: Services, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        const BATCH: i64 = 512;
        let wake = services.cart_wakeup();
        loop {
            if *stop.borrow() {
                break;
            }
            let n = match services.process_cart_jobs(BATCH).await {
                Ok(n) => {
                    metrics::counter!("cart_jobs_processed_total").increment(n as u64);
                    n
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cart reply pass failed");
                    0
                }
            };
            if n < BATCH as usize {
                tokio::select! {
                    // A moment for the replies arriving together to share one batch (and one
                    // durable commit) instead of one each.
                    _ = wake.notified() => tokio::time::sleep(GATHER).await,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    })
}

/// How long the cart worker lets replies gather after the first wakes it.
const GATHER: Duration = Duration::from_millis(10);

/// How often the experiment funnel's in-memory counts are written: a crash loses at most
/// this much of impressions and opens (never an order), and the funnel lags by about this.
pub const FUNNEL_FLUSH: Duration = Duration::from_millis(500);

/// Writes the funnel's counts every [`FUNNEL_FLUSH`] in one batch, and once more when the
/// server stops ([`crate::Running::stop`] flushes a last time after requests end).
pub fn funnel_flusher(services: Services, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FUNNEL_FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                changed = stop.changed() => changed.is_err() || *stop.borrow(),
            };
            match services.flush_funnel().await {
                Ok(rows) => metrics::counter!("funnel_rows_flushed_total").increment(rows as u64),
                Err(e) => tracing::warn!(error = %e, "funnel flush failed; the counts wait for the next"),
            }
            if stopping || *stop.borrow() {
                break;
            }
        }
    })
}
