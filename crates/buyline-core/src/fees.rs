//! The platform's commission, in one place: the policy (basis points per merchant kind,
//! with per-merchant overrides), the base it applies to, the fee itself, and the share a
//! refund gives back. All rounding is half to even.

use crate::checkout::{basis_points, div_half_even};
use crate::model::Merchant;
use crate::order::OrderLine;
use crate::types::{MerchantKind, ProductKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The operator's commission policy in basis points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeePolicy {
    /// Per merchant kind (`retailer`, `brand`, `artist`, `nonprofit`).
    pub kinds: BTreeMap<String, u32>,
    /// Per-merchant overrides by merchant id.
    #[serde(default)]
    pub merchants: BTreeMap<String, u32>,
}

impl Default for FeePolicy {
    fn default() -> Self {
        FeePolicy {
            kinds: BTreeMap::from([
                ("retailer".into(), 500),
                ("brand".into(), 500),
                ("artist".into(), 500),
                ("nonprofit".into(), 0),
            ]),
            merchants: BTreeMap::new(),
        }
    }
}

impl FeePolicy {
    /// The rate in force for this merchant: its override, else its kind's.
    pub fn bps_for(&self, m: &Merchant) -> u32 {
        self.merchants
            .get(&m.id)
            .or_else(|| self.kinds.get(m.kind.as_str()))
            .copied()
            .unwrap_or(if m.kind == MerchantKind::Nonprofit { 0 } else { 500 })
    }
}

/// What the fee is charged on: goods (donations excluded) plus shipping, tax excluded.
pub fn fee_base(lines: &[OrderLine], shipping: i64) -> i64 {
    lines.iter().filter(|l| l.kind != ProductKind::Donation).map(|l| l.unit_price * l.quantity).sum::<i64>() + shipping
}

/// The platform's commission on an order: `fee_base × bps`, half to even.
pub fn platform_fee(fee_base: i64, bps: u32) -> i64 {
    basis_points(fee_base, bps)
}

/// The part of the fee a refund of `amount` gives back: `fee × amount / total`, half to
/// even; the refund that completes the total (`refunded_after ≥ total`) gives back what is
/// left of the fee (`fee − given_back_before`), so a full refund leaves the platform nothing.
pub fn refund_fee_back(fee: i64, total: i64, amount: i64, refunded_after: i64, given_back_before: i64) -> i64 {
    if refunded_after >= total {
        fee - given_back_before
    } else {
        div_half_even(fee as i128 * amount as i128, total as i128) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: ProductKind, unit_price: i64, quantity: i64) -> OrderLine {
        OrderLine {
            product_id: "prod_1".into(),
            variant_id: "var_1".into(),
            name: "x".into(),
            options: Default::default(),
            sku: "x".into(),
            quantity,
            unit_price,
            kind,
            download: None,
        }
    }

    #[test]
    fn the_base_is_goods_without_donations_plus_shipping() {
        let lines = [line(ProductKind::Physical, 2500, 2), line(ProductKind::Donation, 1000, 1)];
        assert_eq!(fee_base(&lines, 500), 5500);
        // 5 % of 5,500 is 275; of 25 it is 1.25 → 1 (half to even keeps 1.25 at 1).
        assert_eq!(platform_fee(5500, 500), 275);
        assert_eq!(platform_fee(25, 500), 1);
        assert_eq!(platform_fee(30, 500), 2, "1.5 rounds to the even 2");
    }

    #[test]
    fn refunds_give_the_fee_back_pro_rata_and_the_rest_at_the_end() {
        // Fee 150 on a total of 3,000: a refund of 1,000 gives back 50; the last 2,000 gives
        // back whatever is left (100), however the first share rounded.
        assert_eq!(refund_fee_back(150, 3000, 1000, 1000, 0), 50);
        assert_eq!(refund_fee_back(150, 3000, 2000, 3000, 50), 100);
        assert_eq!(refund_fee_back(7, 3, 1, 1, 0), 2, "7/3 = 2.33 → 2");
    }
}
