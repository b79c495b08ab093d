//! Recovery: one reconciler pass settles what a crash or an abandoned 3-D Secure check left
//! half-done. It runs at start-up and periodically (`buyline/src/workers.rs`); every step is
//! a conditional write, so two servers reconciling at once do each thing once.

use super::Services;
use crate::error::Result;
use crate::order::{CheckoutStatus, OrderStatus};
use serde::Serialize;

/// An unfinished 3-D Secure check is given up after this.
pub(super) const CHALLENGE_TIMEOUT: i64 = 60 * 60 * 1_000_000;
/// Stock stays held for an order waiting on its 3-D Secure check a little longer than the
/// reconciler waits before it cancels the check, so the check never loses its stock first.
pub(super) const CHALLENGE_HOLD: i64 = CHALLENGE_TIMEOUT + 5 * 60 * 1_000_000;

/// What one reconciler pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub voided: usize,
    pub captured: usize,
    pub released: usize,
    pub reopened: usize,
    pub canceled: usize,
    pub refunds: usize,
}

impl Services {
    /// One pass of recovery, as of `now`: cancels 3-D Secure checks left unfinished, releases
    /// stock whose reservation outlived its checkout, reopens checkouts a crash left
    /// `completing`, voids authorisations that never got an order, and captures committed
    /// orders whose capture did not finish.
    pub async fn reconcile(&self, now: i64) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        for id in self.store.find_stale_requires_action(now - CHALLENGE_TIMEOUT).await? {
            if let Some(o) = self.store.find_order(&id).await? {
                self.cancel_unpaid(&o).await?;
                report.canceled += 1;
            }
        }
        // A completion still `completing` after this is taken to have crashed.
        let stuck_after = self.config.stuck_after_micros;
        for checkout_id in self.store.find_stuck_checkouts(now - stuck_after).await? {
            if self.store.find_order_by_checkout(&checkout_id).await?.is_none() {
                self.store.release_reservation(&checkout_id).await?;
                self.forget_all_sold_out();
                if self
                    .store
                    .set_checkout_status(&checkout_id, CheckoutStatus::Completing, CheckoutStatus::Open, now)
                    .await?
                {
                    report.reopened += 1;
                }
            }
        }
        for checkout_id in self.store.find_expired_reservations(now).await? {
            let order = self.store.find_order_by_checkout(&checkout_id).await?;
            if order.is_none_or(|o| o.status != OrderStatus::RequiresAction) {
                self.store.release_reservation(&checkout_id).await?;
                self.forget_all_sold_out();
                report.released += 1;
            }
        }
        match self.processor.open_authorizations(now - stuck_after).await {
            Ok(list) => {
                for auth in list {
                    if self.store.find_order_by_payment(&auth.payment_id).await?.is_none() {
                        if let Err(e) = self.processor.void(&auth.payment_id).await {
                            tracing::warn!(payment_id = %auth.payment_id, error = %e, "void failed");
                        } else {
                            tracing::info!(payment_id = %auth.payment_id, "voided an authorisation without an order");
                            report.voided += 1;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list open authorisations"),
        }
        for id in self.store.find_uncaptured_orders(now - stuck_after.min(30 * 1_000_000)).await? {
            if let Some(o) = self.store.find_order(&id).await? {
                if self.capture(&o).await {
                    report.captured += 1;
                }
            }
        }
        report.refunds = self.reconcile_refunds(now).await?;
        self.prune_idempotency(now).await?;
        if report != ReconcileReport::default() {
            tracing::info!(?report, "reconciled");
        }
        Ok(report)
    }
}
