//! The operator's commission policy: read it (through the one-second cache) and set it.
//! The rules themselves — rate, base, fee, refund share — are in `crate::fees`.

use super::{Principal, Services};
use crate::error::{Error, Errors, Result};
use crate::fees::FeePolicy;
use crate::limits::{MAX_FEE_KINDS, MAX_MERCHANT_ENTRIES};

impl Services {
    pub async fn fee_policy(&self) -> Result<FeePolicy> {
        Ok(match self.flag_json("fees").await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| Error::Internal(format!("bad fee policy: {e}")))?,
            None => FeePolicy::default(),
        })
    }

    pub async fn set_fee_policy(&self, who: &Principal, policy: FeePolicy) -> Result<FeePolicy> {
        who.operator()?;
        let mut e = Errors::default();
        // Sizes before the per-merchant look-ups, which cost a query each.
        if policy.kinds.len() > MAX_FEE_KINDS {
            e.push("kinds", format!("at most {MAX_FEE_KINDS} merchant kinds"));
        }
        if policy.merchants.len() > MAX_MERCHANT_ENTRIES {
            e.push("merchants", format!("at most {MAX_MERCHANT_ENTRIES} merchants"));
        }
        e.finish()?;
        let mut e = Errors::default();
        for (k, bps) in &policy.kinds {
            if crate::types::MerchantKind::parse("", k).is_err() {
                e.push(&format!("kinds.{k}"), "is not a merchant kind (retailer, brand, artist, nonprofit)");
            } else if *bps > 10_000 {
                e.push(&format!("kinds.{k}"), "must be between 0 and 10000 basis points");
            }
        }
        for (m, bps) in &policy.merchants {
            if !self.is_merchant(m).await? {
                e.push(&format!("merchants.{m}"), "is not a merchant");
            } else if *bps > 10_000 {
                e.push(&format!("merchants.{m}"), "must be between 0 and 10000 basis points");
            }
        }
        e.finish()?;
        let mut merged = FeePolicy::default();
        merged.kinds.extend(policy.kinds);
        merged.merchants = policy.merchants;
        let json = serde_json::to_string(&merged).map_err(|e| Error::Internal(e.to_string()))?;
        self.set_flag_json("fees", &json).await?;
        tracing::info!(policy = %json, "fee policy changed");
        self.audit("fees.set", &json).await?;
        Ok(merged)
    }
}
