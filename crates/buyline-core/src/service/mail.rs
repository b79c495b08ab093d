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

impl Services {
    /// Tells erasure where this process keeps sent e-mails.
    pub fn with_mail_spool(mut self, spool: Arc<dyn MailSpool>) -> Self {
        self.mail_spool = Some(spool);
        self
    }

    pub async fn pending_emails(&self, limit: i64) -> Result<Vec<OutgoingEmail>> {
        Ok(self.store.find_pending_emails(limit).await?)
    }

    pub async fn mark_email_sent(&self, id: &str) -> Result<()> {
        Ok(self.store.mark_email_sent(id, now_micros()).await?)
    }
}
