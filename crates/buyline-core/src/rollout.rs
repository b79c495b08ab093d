//! The `buy_button` rollout flag and who it shows Buy to.

use crate::error::{Errors, Result};
use crate::limits::{MAX_COUNTRIES, MAX_ID_BYTES, MAX_MERCHANT_ENTRIES};
use crate::types::Country;
use serde::{Deserialize, Serialize};

/// A merchant id (`mer_…`) as the OpenAPI document describes one in a list.
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^mer_[A-Za-z0-9]{1,60}$")]
pub struct MerchantIdSchema(#[allow(dead_code)] String);

/// The operator's rollout of the Buy button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuyButtonFlag {
    pub enabled: bool,
    /// Shopper countries that see Buy (ISO 3166 alpha-2).
    #[schema(value_type = Vec<crate::types::CountryCode>, max_items = 250)]
    pub countries: Vec<String>,
    /// Share of eligible shoppers, 0–100, by a stable hash of the account id.
    #[schema(maximum = 100)]
    pub percent: u8,
    /// Merchant ids that may show Buy; `null` means all merchants.
    #[schema(value_type = Option<Vec<MerchantIdSchema>>, max_items = 1000)]
    pub merchants: Option<Vec<String>>,
    /// Share of eligible shoppers, 0–100, held out as the experiment's control group: they
    /// see a plain product link instead of Buy.
    #[schema(maximum = 100)]
    pub holdout_percent: u8,
}

impl Default for BuyButtonFlag {
    fn default() -> Self {
        BuyButtonFlag { enabled: true, countries: vec!["US".into()], percent: 100, merchants: None, holdout_percent: 0 }
    }
}

/// Which experiment arm a viewer is in for one merchant's post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// Sees the Buy button.
    Buy,
    /// Eligible, but sees a plain product link (control group).
    Holdout,
    /// Not in the rollout at all.
    Excluded,
}

impl Arm {
    /// The experiment arm's name as the funnel and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Buy => "buy",
            Arm::Holdout => "holdout",
            Arm::Excluded => "excluded",
        }
    }

    pub fn parse(s: &str) -> Option<Arm> {
        match s {
            "buy" => Some(Arm::Buy),
            "holdout" => Some(Arm::Holdout),
            "excluded" => Some(Arm::Excluded),
            _ => None,
        }
    }
}

/// A stable bucket 0..100 for an account under a salt; the same across processes and releases.
pub fn bucket(salt: &str, account_id: &str) -> u8 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{salt}:{account_id}").as_bytes());
    let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    (n % 100) as u8
}

impl BuyButtonFlag {
    pub fn validate(&self) -> Result<()> {
        let mut e = Errors::default();
        // Every timeline asks `arm` for each buy card, which walks these lists: bound them.
        if self.countries.len() > MAX_COUNTRIES {
            e.push("countries", format!("at most {MAX_COUNTRIES} countries"));
        } else {
            for (i, c) in self.countries.iter().enumerate() {
                if Country::parse("", c).is_err() {
                    e.push(&format!("countries[{i}]"), "must be an ISO 3166 two-letter country code");
                }
            }
        }
        match &self.merchants {
            Some(list) if list.len() > MAX_MERCHANT_ENTRIES => {
                e.push("merchants", format!("at most {MAX_MERCHANT_ENTRIES} merchants"))
            }
            Some(list) => {
                for (i, m) in list.iter().enumerate() {
                    if m.len() > MAX_ID_BYTES || !crate::ids::has_prefix(m, "mer") {
                        e.push(&format!("merchants[{i}]"), "must be a merchant id (mer_…)");
                    }
                }
            }
            None => {}
        }
        if self.percent > 100 {
            e.push("percent", "must be between 0 and 100");
        }
        if self.holdout_percent > 100 {
            e.push("holdout_percent", "must be between 0 and 100");
        }
        e.finish()
    }

    /// The arm of a signed-in shopper for a post by `merchant_id`.
    pub fn arm(&self, account_id: &str, country: &str, merchant_id: &str) -> Arm {
        if !self.enabled || !self.countries.iter().any(|c| c.eq_ignore_ascii_case(country)) {
            return Arm::Excluded;
        }
        if let Some(list) = &self.merchants {
            if !list.iter().any(|m| m == merchant_id) {
                return Arm::Excluded;
            }
        }
        if bucket("rollout", account_id) >= self.percent {
            return Arm::Excluded;
        }
        if bucket("holdout", account_id) < self.holdout_percent {
            return Arm::Holdout;
        }
        Arm::Buy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_shows_buy_in_us_only() {
        let f = BuyButtonFlag::default();
        assert_eq!(f.arm("acct_1", "US", "mer_1"), Arm::Buy);
        assert_eq!(f.arm("acct_1", "GB", "mer_1"), Arm::Excluded);
    }

    #[test]
    fn kill_switch_allowlist_and_percent() {
        let mut f = BuyButtonFlag { enabled: false, ..Default::default() };
        assert_eq!(f.arm("acct_1", "US", "mer_1"), Arm::Excluded);
        f.enabled = true;
        f.merchants = Some(vec!["mer_2".into()]);
        assert_eq!(f.arm("acct_1", "US", "mer_1"), Arm::Excluded);
        assert_eq!(f.arm("acct_1", "US", "mer_2"), Arm::Buy);
        f.merchants = None;
        f.percent = 0;
        assert_eq!(f.arm("acct_1", "US", "mer_1"), Arm::Excluded);
    }

    #[test]
    fn percent_and_holdout_split_roughly_as_asked() {
        let f = BuyButtonFlag { percent: 50, holdout_percent: 20, ..Default::default() };
        let (mut buy, mut hold, mut out) = (0, 0, 0);
        for i in 0..10_000 {
            match f.arm(&format!("acct_{i}"), "US", "m") {
                Arm::Buy => buy += 1,
                Arm::Holdout => hold += 1,
                Arm::Excluded => out += 1,
            }
        }
        assert!((4700..5300).contains(&out), "{out}");
        assert!((800..1200).contains(&hold), "{hold}");
        assert!((3600..4400).contains(&buy), "{buy}");
        // Stable: the same account always lands in the same arm.
        assert_eq!(f.arm("acct_7", "US", "m"), f.arm("acct_7", "US", "m"));
    }
}
