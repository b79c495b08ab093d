//! The e-mail outbox: receipts are written with the change they report and sent by a worker.

use super::Services;
use crate::error::Result;
use crate::order::OutgoingEmail;
use crate::types::now_micros;

impl Services {
    pub async fn pending_emails(&self, limit: i64) -> Result<Vec<OutgoingEmail>> {
        Ok(self.store.find_pending_emails(limit).await?)
    }

    pub async fn mark_email_sent(&self, id: &str) -> Result<()> {
        Ok(self.store.mark_email_sent(id, now_micros()).await?)
    }
}
