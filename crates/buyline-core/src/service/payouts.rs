//! Money out: a merchant's balance and payouts, the operator's payouts and its refund window.
//! Each payout is one balanced ledger transaction (merchant payable → merchant bank) written
//! with its record and its `payout.paid` event; the store takes a per-merchant-and-currency
//! lock first, so two payouts, in one process or two, never pay the same money.

use super::paging::PageArgs;
use super::{Principal, Services};
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::Page;
use crate::order::NewEvent;
use crate::store::PayoutRecord;
use crate::types::{now_micros, rfc3339};
use serde::{Deserialize, Serialize};

/// What a payout pays: what is owed now, but no more than what was owed counting only money
/// out of the refund window; nothing (≤ 0) when the balance is not positive.
pub fn payout_amount(owed: i64, settled: i64) -> i64 {
    owed.min(settled)
}

const SETTINGS_FLAG: &str = "payout_settings";
const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

/// What the ledger owes a merchant in one currency, and what it has paid out.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Balance {
    pub currency: String,
    /// Owed now; negative after a refund larger than what was left.
    pub balance: i64,
    pub paid_out: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Balances {
    pub data: Vec<Balance>,
}

/// A payout (`po_` ids).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Payout {
    pub id: String,
    pub merchant_id: String,
    pub currency: String,
    pub amount: i64,
    /// `paid`.
    pub status: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
}

impl From<&PayoutRecord> for Payout {
    fn from(r: &PayoutRecord) -> Self {
        Payout {
            id: r.id.clone(),
            merchant_id: r.merchant_id.clone(),
            currency: r.currency.clone(),
            amount: r.amount,
            status: r.status.clone(),
            created_at: rfc3339(r.created_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Payouts {
    pub data: Vec<Payout>,
}

/// `POST /admin/payouts`: every merchant owed money, or the one named.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutInput {
    #[serde(default)]
    #[schema(max_length = 40)]
    pub merchant_id: Option<String>,
}

/// The operator's payout settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutSettings {
    /// Money from orders newer than this many days is still open to refund and is not paid
    /// out yet. 0 (the default) pays everything.
    #[schema(minimum = 0, maximum = 365)]
    pub refund_window_days: i64,
}

impl Services {
    /// The caller merchant's balance per currency (its own currency at zero if it has none).
    pub async fn merchant_balance(&self, who: &Principal) -> Result<Balances> {
        let m = who.merchant()?;
        let mut data: Vec<Balance> = self
            .store
            .find_balances(Some(&m.id))
            .await?
            .into_iter()
            .map(|b| Balance { currency: b.currency, balance: b.balance, paid_out: b.paid_out })
            .collect();
        if !data.iter().any(|b| b.currency == m.currency.code()) {
            data.push(Balance { currency: m.currency.code().to_string(), balance: 0, paid_out: 0 });
        }
        data.sort_by(|a, b| a.currency.cmp(&b.currency));
        Ok(Balances { data })
    }

    pub async fn merchant_payouts(
        &self,
        who: &Principal,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<Payout>> {
        let m = who.merchant()?;
        self.payout_page(Some(&m.id), cursor, limit).await
    }

    /// Every payout, newest first (operator).
    pub async fn all_payouts(&self, who: &Principal, cursor: Option<&str>, limit: Option<i64>) -> Result<Page<Payout>> {
        who.operator()?;
        self.payout_page(None, cursor, limit).await
    }

    async fn payout_page(
        &self,
        merchant: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<Payout>> {
        let args = PageArgs::parse(cursor, limit)?;
        let rows = self.store.find_payouts(merchant, args.before(), args.fetch()).await?;
        let page = args.page(rows, |r| (r.created_at, &r.id));
        Ok(Page { data: page.data.iter().map(Payout::from).collect(), next_cursor: page.next_cursor })
    }

    pub async fn payout_settings(&self, who: &Principal) -> Result<PayoutSettings> {
        who.operator()?;
        self.current_payout_settings().await
    }

    async fn current_payout_settings(&self) -> Result<PayoutSettings> {
        match self.flag_json(SETTINGS_FLAG).await? {
            Some(j) => serde_json::from_str(&j).map_err(|e| Error::Internal(format!("payout settings: {e}"))),
            None => Ok(PayoutSettings::default()),
        }
    }

    pub async fn set_payout_settings(&self, who: &Principal, s: PayoutSettings) -> Result<PayoutSettings> {
        who.operator()?;
        if !(0..=365).contains(&s.refund_window_days) {
            return Err(Error::field("refund_window_days", "must be between 0 and 365"));
        }
        let json = serde_json::to_string(&s).map_err(|e| Error::Internal(e.to_string()))?;
        self.set_flag_json(SETTINGS_FLAG, &json).await?;
        Ok(s)
    }

    /// `POST /admin/payouts`: pays what is owed (operator).
    pub async fn create_payouts(&self, who: &Principal, input: PayoutInput) -> Result<Payouts> {
        who.operator()?;
        let merchant = input.merchant_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(id) = merchant {
            if !self.is_merchant(id).await? {
                return Err(Error::field("merchant_id", "is not a merchant"));
            }
        }
        let data = self.run_payouts(merchant, now_micros()).await?;
        let paid: Vec<String> = data.iter().map(|p| format!("{} {} {}", p.merchant_id, p.amount, p.currency)).collect();
        self.audit("payouts.run", &format!("{} payout(s): {}", data.len(), paid.join(", "))).await?;
        Ok(Payouts { data })
    }

    /// Pays every merchant (or the one named) its positive balance per currency, keeping
    /// what is younger than the refund window. The scheduled worker runs this too.
    pub async fn run_payouts(&self, merchant_id: Option<&str>, now: i64) -> Result<Vec<Payout>> {
        let window = self.current_payout_settings().await?.refund_window_days;
        let settled_before = now - window * DAY_MICROS;
        let mut out = Vec::new();
        for b in self.store.find_balances(merchant_id).await? {
            if b.balance <= 0 {
                continue;
            }
            let paid = self
                .store
                .pay_out(&new_id("po"), &b.merchant_id, &b.currency, settled_before, now, &payout_event)
                .await?;
            if let Some(p) = paid {
                tracing::info!(payout_id = %p.id, merchant_id = %p.merchant_id, amount = p.amount, currency = %p.currency, "payout paid");
                out.push(Payout::from(&p));
            }
        }
        Ok(out)
    }
}

/// The `payout.paid` event of a payout.
fn payout_event(p: &PayoutRecord) -> NewEvent {
    let data = serde_json::to_value(Payout::from(p)).unwrap_or_default();
    let payload = serde_json::json!({"type": "payout.paid", "timestamp": rfc3339(p.created_at), "data": data});
    NewEvent {
        id: new_id("evt"),
        merchant_id: p.merchant_id.clone(),
        kind: "payout.paid".into(),
        payload: payload.to_string(),
        created_at: p.created_at,
        account_id: None,
        order_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout::{capture_postings, merchant_bank, payable, payout_postings};
    use crate::fees::{platform_fee, refund_fee_back};
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Step {
        Order {
            m: usize,
            total: i64,
            bps: u32,
        },
        /// Refund `per_mille` of what is left of the merchant's `nth` order.
        Refund {
            m: usize,
            nth: usize,
            per_mille: i64,
        },
        Payout {
            m: usize,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..3, 1i64..5_000_000, 0u32..=10_000).prop_map(|(m, total, bps)| Step::Order { m, total, bps }),
            (0usize..3, 0usize..8, 1i64..=1000).prop_map(|(m, nth, per_mille)| Step::Refund { m, nth, per_mille }),
            (0usize..3).prop_map(|m| Step::Payout { m }),
        ]
    }

    struct Sale {
        total: i64,
        fee: i64,
        refunded: i64,
        fee_back: i64,
    }

    proptest! {
        /// For any sequence of orders, refunds and payouts: every transaction balances (so the
        /// trial balance is zero per currency), a payout never pays more than is owed, and each
        /// merchant's balance equals its orders less fees, refunds (net of fee given back) and
        /// payouts.
        #[test]
        fn balance_is_orders_less_fees_refunds_and_payouts(steps in proptest::collection::vec(step(), 0..60)) {
            let merchants = ["mer_a", "mer_b", "mer_c"];
            let mut ledger: HashMap<String, i64> = HashMap::new();
            let mut sales: [Vec<Sale>; 3] = Default::default();
            let (mut earned, mut refunded, mut paid) = ([0i64; 3], [0i64; 3], [0i64; 3]);
            for s in steps {
                let postings = match s {
                    Step::Order { m, total, bps } => {
                        let fee = platform_fee(total, bps);
                        sales[m].push(Sale { total, fee, refunded: 0, fee_back: 0 });
                        earned[m] += total - fee;
                        capture_postings(merchants[m], total, fee)
                    }
                    Step::Refund { m, nth, per_mille } => {
                        let Some(sale) = sales[m].get_mut(nth) else { continue };
                        let left = sale.total - sale.refunded;
                        let amount = (left * per_mille / 1000).max(1).min(left);
                        if left == 0 {
                            continue;
                        }
                        let back = refund_fee_back(sale.fee, sale.total, amount, sale.refunded + amount, sale.fee_back);
                        sale.refunded += amount;
                        sale.fee_back += back;
                        refunded[m] += amount - back;
                        crate::checkout::refund_postings(merchants[m], amount, back)
                    }
                    Step::Payout { m } => {
                        let owed = -ledger.get(&payable(merchants[m])).copied().unwrap_or(0);
                        let amount = payout_amount(owed, owed);
                        if amount <= 0 {
                            continue;
                        }
                        prop_assert!(amount <= owed);
                        paid[m] += amount;
                        payout_postings(merchants[m], amount)
                    }
                };
                prop_assert_eq!(postings.iter().map(|p| p.amount).sum::<i64>(), 0);
                for p in postings {
                    *ledger.entry(p.account).or_default() += p.amount;
                }
                prop_assert_eq!(ledger.values().sum::<i64>(), 0);
                for (i, m) in merchants.iter().enumerate() {
                    let balance = -ledger.get(&payable(m)).copied().unwrap_or(0);
                    prop_assert_eq!(balance, earned[i] - refunded[i] - paid[i]);
                    prop_assert_eq!(-ledger.get(&merchant_bank(m)).copied().unwrap_or(0), paid[i]);
                }
            }
        }
    }
}
