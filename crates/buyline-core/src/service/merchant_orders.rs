//! The merchant's side of orders: list, acknowledge, fulfil, cancel, refund.
//!
//! Refunds and the platform fee: the commission is returned pro rata — a refund of `r` out
//! of a total `T` gives back `fee × r / T` (half to even), and the refund that completes the
//! total gives back whatever of the fee is left, so a full refund returns the whole fee.

use super::paging::PageArgs;
use super::webhooks::{merchant_view, order_event};
use super::{Principal, Services};
use crate::checkout::refund_postings;
use crate::error::{Error, Errors, Result};
use crate::ids::{has_prefix, new_id};
use crate::model::Page;
use crate::order::{Fulfillment, Order, OrderStatus, Receipt, RefundRecord};
use crate::types::{now_micros, Money};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct FulfillInput {
    #[schema(min_length = 1, max_length = 60)]
    pub carrier: String,
    #[schema(min_length = 1, max_length = 100)]
    pub tracking_number: String,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct RefundInput {
    /// Minor units; the whole amount left if omitted.
    #[schema(minimum = 1)]
    pub amount: Option<i64>,
    pub reason: Option<String>,
}

impl Services {
    async fn merchant_order(&self, who: &Principal, id: &str) -> Result<Order> {
        let m = who.merchant()?;
        if !has_prefix(id, "ord") {
            return Err(Error::NotFound("order"));
        }
        match self.store.find_order(id).await? {
            Some(o) if o.merchant_id == m.id && o.status != OrderStatus::RequiresAction => Ok(o),
            _ => Err(Error::NotFound("order")),
        }
    }

    pub async fn merchant_orders(
        &self,
        who: &Principal,
        status: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<serde_json::Value>> {
        let m = who.merchant()?;
        let status = match status.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
                Error::field("status", "must be paid, fulfilled, canceled, refunded or partially_refunded")
            })?),
        };
        let args = PageArgs::parse(cursor, limit)?;
        let list = self.store.find_orders_by_merchant(&m.id, status, args.before(), args.fetch()).await?;
        let page = args.page(list, |o| (o.created_at, &o.id));
        Ok(Page { data: page.data.iter().map(merchant_view).collect(), next_cursor: page.next_cursor })
    }

    pub async fn merchant_order_view(&self, who: &Principal, id: &str) -> Result<serde_json::Value> {
        Ok(merchant_view(&self.merchant_order(who, id).await?))
    }

    pub async fn acknowledge_order(&self, who: &Principal, id: &str) -> Result<serde_json::Value> {
        let o = self.merchant_order(who, id).await?;
        self.store.acknowledge_order(&o.id, &o.merchant_id, now_micros()).await?;
        self.merchant_order_view(who, id).await
    }

    fn shopper_receipt(&self, order: &Order, text: String, subject: String, body: String) -> Option<Receipt> {
        let shopper = order.shopper_id.clone()?;
        Some(Receipt {
            account_id: shopper,
            order_id: Some(order.id.clone()),
            in_order: false,
            text,
            link: format!("/orders/{}", order.id),
            email: order.contact_email.clone().map(|to| {
                (to, subject, format!("{body}\n\nSee your order: {}/orders/{}\n", self.config.public_url, order.id))
            }),
        })
    }

    pub async fn fulfill_order(&self, who: &Principal, id: &str, input: FulfillInput) -> Result<serde_json::Value> {
        let o = self.merchant_order(who, id).await?;
        let mut e = Errors::default();
        let carrier = input.carrier.trim();
        let tracking = input.tracking_number.trim();
        if carrier.is_empty() || carrier.chars().count() > 60 {
            e.push("carrier", "is required (at most 60 characters)");
        }
        if tracking.is_empty() || tracking.chars().count() > 100 || tracking.chars().any(char::is_control) {
            e.push("tracking_number", "is required (at most 100 characters)");
        }
        e.finish()?;
        // Nothing ships on money not yet taken.
        if o.status == OrderStatus::Paid {
            self.payment_taken(&o).await?;
        }
        let f = Fulfillment { carrier: Some(carrier.to_string()), tracking_number: Some(tracking.to_string()) };
        let receipt = self.shopper_receipt(
            &o,
            format!("Order {} has shipped: {carrier} {tracking}", o.id),
            format!("Your Buyline order {} has shipped", o.id),
            format!("Good news: your order {} is on its way.\n\nCarrier: {carrier}\nTracking number: {tracking}", o.id),
        );
        if !self.store.fulfill_order(&o.id, &f, receipt.as_ref(), now_micros()).await? {
            let message = if o.fulfillment.tracking_number.is_some() {
                "the order has already shipped".to_string()
            } else {
                format!("an order that is {} cannot be fulfilled", o.status.as_str())
            };
            return Err(Error::Conflict { message, errors: vec![] });
        }
        self.merchant_order_view(who, id).await
    }

    pub async fn cancel_order(&self, who: &Principal, id: &str) -> Result<serde_json::Value> {
        let o = self.merchant_order(who, id).await?;
        if o.status != OrderStatus::Paid {
            return Err(Error::Conflict {
                message: format!("an order that is {} cannot be canceled; refund it instead", o.status.as_str()),
                errors: vec![],
            });
        }
        let amount = o.totals.total - o.refunded_amount;
        self.refund(&o, amount, Some("canceled by the merchant".into()), true, &[OrderStatus::Paid]).await?;
        self.merchant_order_view(who, id).await
    }

    pub async fn refund_order(&self, who: &Principal, id: &str, input: RefundInput) -> Result<serde_json::Value> {
        let o = self.merchant_order(who, id).await?;
        let allowed = [OrderStatus::Paid, OrderStatus::Fulfilled, OrderStatus::PartiallyRefunded];
        if !allowed.contains(&o.status) {
            return Err(Error::Conflict {
                message: format!("an order that is {} cannot be refunded", o.status.as_str()),
                errors: vec![],
            });
        }
        let left = o.totals.total - o.refunded_amount;
        let amount = input.amount.unwrap_or(left);
        if amount < 1 || amount > left {
            return Err(Error::field(
                "amount",
                &format!(
                    "must be between 1 and {left}, what is left to refund ({})",
                    Money::new(left, o.totals.currency).display()
                ),
            ));
        }
        let reason = input.reason.map(|r| r.trim().chars().take(500).collect::<String>()).filter(|r| !r.is_empty());
        self.refund(&o, amount, reason, false, &allowed).await?;
        self.merchant_order_view(who, id).await
    }

    /// A purchase is answered before its capture (`captures.rs`): money not yet taken is
    /// taken now, before the order ships or is refunded. The capture is idempotent, so an
    /// order captured meanwhile costs nothing more; one that cannot be captured yet is a
    /// conflict to try again.
    async fn payment_taken(&self, o: &Order) -> Result<()> {
        if o.captured || self.capture(o).await {
            return Ok(());
        }
        Err(Error::Conflict {
            message: "the payment could not be taken yet (it may still be settling); try again shortly".into(),
            errors: vec![],
        })
    }

    /// Reserve the amount on the order, have the processor refund it, then record it all at
    /// once. A crash between the steps leaves a pending refund the reconciler finishes.
    async fn refund(
        &self,
        o: &Order,
        amount: i64,
        reason: Option<String>,
        cancel: bool,
        allowed: &[OrderStatus],
    ) -> Result<()> {
        self.payment_taken(o).await?;
        let after = o.refunded_amount + amount;
        let given_back = if after >= o.totals.total { self.store.find_refund_total_fee_back(&o.id).await? } else { 0 };
        let fee_back = crate::fees::refund_fee_back(o.platform_fee, o.totals.total, amount, after, given_back);
        let r = RefundRecord {
            id: new_id("rf"),
            order_id: o.id.clone(),
            amount,
            fee_back,
            reason,
            cancel,
            created_at: now_micros(),
        };
        if !self.store.begin_refund(&r, allowed).await? {
            return Err(Error::Conflict {
                message: "the order changed meanwhile; reload it and try again".into(),
                errors: vec![],
            });
        }
        self.settle_refund(o, &r).await
    }

    async fn settle_refund(&self, o: &Order, r: &RefundRecord) -> Result<()> {
        if let Err(e) = self.processor.refund(&o.payment_id, r.amount, &r.id).await {
            tracing::warn!(order_id = %o.id, error = %e, "refund refused by the processor");
            self.store.fail_refund(r, now_micros()).await?;
            return Err(Error::Conflict {
                message: "the payment could not be refunded yet (it may still be settling); try again shortly".into(),
                errors: vec![],
            });
        }
        let full = o.refunded_amount + r.amount >= o.totals.total || r.cancel;
        let status = if r.cancel {
            OrderStatus::Canceled
        } else if full {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        let money = Money::new(r.amount, o.totals.currency).display();
        let mut updated = o.clone();
        updated.status = status;
        updated.refunded_amount = o.refunded_amount + r.amount;
        let refund_json = serde_json::json!({"id": r.id, "amount": r.amount, "reason": r.reason});
        let event = if r.cancel {
            order_event("order.canceled", &updated, Some(("refund", refund_json)))
        } else {
            order_event("order.refunded", &updated, Some(("refund", refund_json)))
        };
        let receipt = if r.cancel {
            self.shopper_receipt(
                o,
                format!("Order {} was canceled; {money} is refunded", o.id),
                format!("Your Buyline order {} was canceled", o.id),
                format!("The merchant canceled your order {}. We refunded {money} to your card.", o.id),
            )
        } else {
            self.shopper_receipt(
                o,
                format!("Refund of {money} for order {}", o.id),
                format!("A refund of {money} for your Buyline order {}", o.id),
                format!("The merchant refunded {money} of your order {} to your card.", o.id),
            )
        };
        let restock: Vec<(String, i64)> =
            if r.cancel { o.lines.iter().map(|l| (l.variant_id.clone(), l.quantity)).collect() } else { vec![] };
        self.store
            .complete_refund(
                r,
                status,
                o.totals.currency.code(),
                &refund_postings(&o.merchant_id, r.amount, r.fee_back),
                Some(&event),
                receipt.as_ref(),
                &restock,
                now_micros(),
            )
            .await?;
        tracing::info!(order_id = %o.id, refund_id = %r.id, amount = r.amount, status = status.as_str(), "refunded");
        Ok(())
    }

    /// Refunds a crash left between the processor and the books.
    pub(crate) async fn reconcile_refunds(&self, now: i64) -> Result<usize> {
        let mut done = 0;
        for r in self.store.find_pending_refunds(now - 60 * 1_000_000).await? {
            if let Some(o) = self.store.find_order(&r.order_id).await? {
                // The order as it was before this refund reserved its amount.
                let mut before = o.clone();
                before.refunded_amount -= r.amount;
                if self.settle_refund(&before, &r).await.is_ok() {
                    done += 1;
                }
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout::{capture_postings, payable, REVENUE};
    use proptest::prelude::*;

    proptest! {
        /// Any capture followed by any refunds keeps the books balanced, returns the fee pro
        /// rata and in full on a full refund, and leaves the merchant owed the kept part.
        #[test]
        fn refunds_keep_the_ledger_balanced(total in 1i64..1_000_000, bps in 0u32..=10_000, cuts in proptest::collection::vec(1i64..1000, 0..6)) {
            let fee = crate::checkout::platform_fee(total, bps);
            let mut postings = capture_postings("m", total, fee);
            let mut refunded = 0;
            let mut fee_back_sum = 0;
            for c in cuts {
                let left = total - refunded;
                if left == 0 { break; }
                let amount = (c % left).max(1);
                let fee_back = crate::fees::refund_fee_back(fee, total, amount, refunded + amount, fee_back_sum);
                postings.extend(refund_postings("m", amount, fee_back));
                refunded += amount;
                fee_back_sum += fee_back;
            }
            prop_assert_eq!(postings.iter().map(|p| p.amount).sum::<i64>(), 0);
            let merchant: i64 = -postings.iter().filter(|p| p.account == payable("m")).map(|p| p.amount).sum::<i64>();
            let revenue: i64 = -postings.iter().filter(|p| p.account == REVENUE).map(|p| p.amount).sum::<i64>();
            prop_assert_eq!(merchant + revenue, total - refunded);
            prop_assert!(revenue >= 0 && revenue <= fee);
            if refunded == total { prop_assert_eq!(revenue, 0); }
        }
    }
}
