//! What a shopper is told when an order is paid: the in-app notice and the e-mail receipt.

use super::Services;
use crate::model::Account;
use crate::order::{Order, Receipt};
use crate::types::Money;

fn money(amount: i64, order: &Order) -> String {
    Money::new(amount, order.totals.currency).display()
}

fn receipt_text(order: &Order, public_url: &str, headline: &str, downloads: &[(String, String)]) -> String {
    let mut body = format!("{headline}\n\nOrder {}\n\n", order.id);
    for l in &order.lines {
        let opts = l.options.values().cloned().collect::<Vec<_>>().join(" / ");
        let opts = if opts.is_empty() { String::new() } else { format!(" ({opts})") };
        body.push_str(&format!(
            "  {} × {}{} — {}\n",
            l.quantity,
            l.name,
            opts,
            money(l.unit_price * l.quantity, order)
        ));
    }
    let t = &order.totals;
    body.push_str(&format!("\nSubtotal: {}\n", money(t.subtotal, order)));
    if let Some(s) = &order.shipping {
        body.push_str(&format!("Shipping ({}): {}\n", s.name, money(t.shipping, order)));
    }
    if t.tax > 0 {
        body.push_str(&format!("Tax: {}\n", money(t.tax, order)));
    }
    body.push_str(&format!("Total: {}\n", money(t.total, order)));
    body.push_str(&format!("Paid with {} ending {}\n", order.payment.brand, order.payment.last4));
    if let Some(a) = &order.shipping_address {
        body.push_str(&format!("\nShipping to:\n{}\n{}\n", a.name, a.line1));
        if let Some(l2) = &a.line2 {
            body.push_str(&format!("{l2}\n"));
        }
        body.push_str(&format!("{} {} {}\n{}\n", a.city, a.region, a.postal_code, a.country));
    }
    if !downloads.is_empty() {
        body.push_str("\nYour downloads (links last 24 hours; get a fresh one from your order page):\n");
        for (name, url) in downloads {
            body.push_str(&format!("  {name}: {url}\n"));
        }
    }
    body.push_str(&format!("\nSee your order: {public_url}/orders/{}\n", order.id));
    body
}

impl Services {
    pub(super) fn paid_receipt(&self, order: &Order, shopper: Option<&Account>) -> Option<Receipt> {
        let shopper_id = order.shopper_id.clone()?;
        let total = money(order.totals.total, order);
        let email = shopper.and_then(|s| s.email.clone()).map(|to| {
            (
                to,
                format!("Your Buyline order {} — {total}", order.id),
                receipt_text(
                    order,
                    &self.config.public_url,
                    "Thanks for your order. Your payment went through.",
                    &self.receipt_downloads(order),
                ),
            )
        });
        Some(Receipt {
            account_id: shopper_id,
            order_id: Some(order.id.clone()),
            in_order: false,
            text: crate::order::paid_notice(&order.id, Money::new(order.totals.total, order.totals.currency)),
            link: format!("/orders/{}", order.id),
            email,
        })
    }
}
