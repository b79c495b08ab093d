//! Group capture: the orders waiting to be captured are captured together. One call to the
//! processor takes all their payments, and one write marks them captured with their ledger
//! postings. So a burst of purchases pays for a capture and a ledger write per group, not
//! per order.
//!
//! A purchase does not wait for its capture: once its order is committed (durably, with the
//! authorisation it records) it is answered `paid` with `captured: false`, and the capture
//! follows within milliseconds. SPEC §2's order stays: reserve, authorise, commit, capture.
//! Only when more than [`BACKLOG`] orders already wait does a purchase wait for its own
//! capture too, so a load the captures cannot keep up with slows the purchases down instead
//! of growing the queue. Whoever needs the money taken — a refund, a cancellation, a 3-D
//! Secure order's resumption, the reconciler — waits for it ([`Services::capture`]), and a
//! graceful stop drains the queue ([`Services::drain_captures`]).
//!
//! One group runs at a time per process, on a task of its own (a request that leaves does
//! not stop the group it is in); the orders that arrive meanwhile form the next group. A
//! capture that fails here, or a process that dies before it, is left to the reconciler,
//! which captures every committed order whose capture did not finish.

use super::Services;
use crate::checkout::{capture_postings, CaptureRecord};
use crate::order::Order;
use crate::types::now_micros;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// At most this many orders in one group: the write's size stays bounded.
const MAX_GROUP: usize = 256;

/// Beyond this many orders waiting, a purchase waits for its own capture (back-pressure).
pub(crate) const BACKLOG: usize = 4 * MAX_GROUP;

struct Waiting {
    payment_id: String,
    record: CaptureRecord,
    reply: oneshot::Sender<bool>,
}

#[derive(Default)]
pub(crate) struct CaptureQueue {
    state: Mutex<QueueState>,
    /// Told when the group task stops with nothing left waiting (for `drain_captures`).
    idle: tokio::sync::Notify,
}

#[derive(Default)]
struct QueueState {
    waiting: Vec<Waiting>,
    /// A task is taking groups from `waiting`.
    running: bool,
}

impl CaptureQueue {
    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the group task cleanly if a group panics: the queue is marked idle and the orders
/// still waiting hear `false` (their senders are dropped), for the reconciler. (A task that
/// ends normally marks the queue idle itself, under the same lock as its last look.)
struct Idle<'a>(&'a CaptureQueue);

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut s = self.0.state();
            s.running = false;
            s.waiting.clear();
            self.0.idle.notify_waiters();
        }
    }
}

impl Services {
    /// Captures a committed order and posts it to the ledger, once, with the orders waiting
    /// beside it. True when the order is captured; a failure is left to the reconciler.
    pub(super) async fn capture(&self, order: &Order) -> bool {
        self.queue_capture(order).0.await.unwrap_or(false)
    }

    /// Queues a committed order's capture and answers at once, `false` (not captured yet) —
    /// unless more than [`BACKLOG`] orders wait already: then it waits for its own capture
    /// and answers as [`Self::capture`] does.
    pub(super) async fn capture_soon(&self, order: &Order) -> bool {
        let (answer, backlog) = self.queue_capture(order);
        if backlog {
            answer.await.unwrap_or(false)
        } else {
            false
        }
    }

    /// Waits until no capture waits or runs in this process (a graceful stop: what is still
    /// queued at the deadline is left to the reconciler, as after a crash).
    pub async fn drain_captures(&self) {
        loop {
            // Listening before looking, so an idle told in between is not missed.
            let idle = self.captures.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let s = self.captures.state();
                if s.waiting.is_empty() && !s.running {
                    return;
                }
            }
            idle.await;
        }
    }

    /// Puts the order in the queue, starting the group task if none runs. Answers the
    /// receiver of its outcome, and whether the queue was beyond [`BACKLOG`].
    fn queue_capture(&self, order: &Order) -> (oneshot::Receiver<bool>, bool) {
        let (reply, answer) = oneshot::channel();
        let record = CaptureRecord {
            order_id: order.id.clone(),
            currency: order.totals.currency.code().to_string(),
            postings: capture_postings(&order.merchant_id, order.totals.total, order.platform_fee),
        };
        let (start, backlog) = {
            let mut s = self.captures.state();
            s.waiting.push(Waiting { payment_id: order.payment_id.clone(), record, reply });
            (!std::mem::replace(&mut s.running, true), s.waiting.len() > BACKLOG)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.capture_groups().await });
        }
        (answer, backlog)
    }

    /// Takes groups until none is waiting.
    async fn capture_groups(&self) {
        let queue = self.captures.clone();
        let _idle = Idle(&queue);
        loop {
            let group: Vec<Waiting> = {
                let mut s = queue.state();
                if s.waiting.is_empty() {
                    s.running = false;
                    queue.idle.notify_waiters();
                    return;
                }
                let n = s.waiting.len().min(MAX_GROUP);
                s.waiting.drain(..n).collect()
            };
            self.capture_group(group).await;
        }
    }

    async fn capture_group(&self, group: Vec<Waiting>) {
        let ids: Vec<String> = group.iter().map(|w| w.payment_id.clone()).collect();
        let answers = self.processor.capture_many(&ids).await;
        let mut captured = Vec::with_capacity(group.len());
        for (w, answer) in group.into_iter().zip(answers) {
            match answer {
                Ok(()) => captured.push(w),
                Err(e) => {
                    tracing::warn!(order_id = %w.record.order_id, error = %e, "capture failed; the reconciler will retry");
                    let _ = w.reply.send(false);
                }
            }
        }
        if captured.is_empty() {
            return;
        }
        let records: Vec<CaptureRecord> = captured.iter().map(|w| w.record.clone()).collect();
        match self.store.mark_captured(&records, now_micros()).await {
            Ok(marked) => {
                let marked: std::collections::HashSet<String> = marked.into_iter().collect();
                for w in captured {
                    let done = marked.contains(&w.record.order_id);
                    let _ = w.reply.send(done);
                }
            }
            Err(e) => {
                tracing::warn!(orders = records.len(), error = %e, "recording captures failed; the reconciler will retry");
                for w in captured {
                    let _ = w.reply.send(false);
                }
            }
        }
    }
}
