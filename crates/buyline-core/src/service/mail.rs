//! The e-mail outbox: receipts are written with the change they report and sent by a worker;
//! the spool, where a deployment without an SMTP server keeps what it sent.

use super::Services;
use crate::error::Result;
use crate::order::OutgoingEmail;
use crate::types::now_micros;
use std::sync::Arc;

/// Copies of sent e-mails the product itself keeps (the `.eml` folder used when no SMTP
/// server is set), by outbox id. Erasing a person removes theirs: SPEC §2 counts stored
/// e-mails among the copies to erase. Implemented at the edge, where the files are.
pub trait MailSpool: Send + Sync {
    /// Removes the kept copies of these e-mails; ids without a copy are skipped.
    fn forget(&self, email_ids: &[String]) -> std::io::Result<()>;
}

/// How long a claimed e-mail is this sender's (µs): a sender that dies holding it frees it
/// then, and another sends it.
pub const MAIL_LEASE: i64 = 60 * 1_000_000;

impl Services {
    /// Tells erasure where this process keeps sent e-mails.
    pub fn with_mail_spool(mut self, spool: Arc<dyn MailSpool>) -> Self {
        self.mail_spool = Some(spool);
        self
    }

    /// Unsent e-mails for this sender to send now: claimed for [`MAIL_LEASE`], so another
    /// server process on the same database does not send them too.
    pub async fn pending_emails(&self, limit: i64) -> Result<Vec<OutgoingEmail>> {
        let now = now_micros();
        Ok(self.store.claim_pending_emails(now, now + MAIL_LEASE, limit).await?)
    }

    pub async fn mark_email_sent(&self, id: &str) -> Result<()> {
        Ok(self.store.mark_email_sent(id, now_micros()).await?)
    }
}
