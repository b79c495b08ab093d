//! The operator console's use cases: log-in with the operator token into a short cookie
//! session shared by every node, the audit log every operator action is written to, and
//! looking up merchants. The rollout flag, fees, trial balance and payouts have their own
//! services; each writes its change to the audit log through [`Services::audit`].

use super::{Principal, Services};
use crate::error::{Error, Errors, Result};
use crate::ids::{constant_time_eq, hash_secret, new_id, new_secret};
use crate::model::Merchant;
use crate::store::AuditEntry;
use crate::types::now_micros;

/// How long an operator's console session lasts: short, since it can switch Buy off.
pub const OPERATOR_SESSION_MICROS: i64 = 30 * 60 * 1_000_000;

/// What the audit log calls a key rotation (`buyline keys rotate`).
pub const VAULT_ROTATE: &str = "vault.rotate";

/// Failed operator log-ins allowed per window from one client address before 429.
const MAX_CLIENT_FAILURES: i64 = 10;
/// ... and from all clients together: high enough that guessing from afar cannot lock the
/// operator out, low enough to bound a distributed guess at a weak, hand-set token.
const MAX_ALL_FAILURES: i64 = 500;
const MAX_QUERY_CHARS: usize = 100;

/// A merchant, as the operator opens it.
pub struct MerchantOverview {
    pub merchant: Merchant,
    /// Its newest orders, as the merchant's API shows them.
    pub orders: Vec<serde_json::Value>,
    /// What the ledger owes it per currency, and its newest payouts.
    pub balances: Vec<super::payouts::Balance>,
    pub payouts: Vec<super::payouts::Payout>,
    /// Its posts that carry a product: each has a funnel.
    pub funnel_posts: Vec<crate::model::Post>,
}

impl Services {
    /// Writes one operator action to the audit log. `detail` must hold no secret.
    pub async fn audit(&self, action: &str, detail: &str) -> Result<()> {
        let entry = AuditEntry {
            id: new_id("aud"),
            at: now_micros(),
            action: action.to_string(),
            detail: detail.chars().take(2_000).collect(),
        };
        self.store.append_operator_audit(&entry).await?;
        Ok(())
    }

    /// Opens a console session for whoever presents the operator token; returns the
    /// session's token (for the cookie). Wrong tokens count towards a throttle shared by
    /// every node, as shopper log-ins do.
    pub async fn operator_log_in(
        &self,
        given: &str,
        operator_token: Option<&str>,
        client: Option<&str>,
    ) -> Result<String> {
        if given.trim().is_empty() {
            return Err(Error::field("token", "is required"));
        }
        let mut keys = vec!["operator".to_string()];
        if let Some(c) = client {
            keys.push(format!("operator:{c}"));
        }
        let now = now_micros();
        self.login_throttle(&keys, |k| if k == "operator" { MAX_ALL_FAILURES } else { MAX_CLIENT_FAILURES }, now)
            .await?;
        match operator_token {
            Some(op) if given.len() <= 512 && constant_time_eq(given.trim(), op) => {
                let token = new_secret("op");
                self.store.insert_operator_session(&hash_secret(&token), now, now + OPERATOR_SESSION_MICROS).await?;
                self.audit("operator.log_in", "console session opened").await?;
                Ok(token)
            }
            _ => {
                self.store.record_login_failure(&keys, now, now - super::accounts::LOGIN_WINDOW_MICROS).await?;
                tracing::warn!("operator log-in failed");
                Err(Error::Unauthorized)
            }
        }
    }

    /// The operator, if this console session is open.
    pub async fn operator_session(&self, token: &str) -> Result<Option<Principal>> {
        if !token.starts_with("op_") || token.len() > 200 {
            return Ok(None);
        }
        let open = self.store.operator_session_open(&hash_secret(token), now_micros()).await?;
        Ok(open.then_some(Principal::Operator))
    }

    pub async fn operator_log_out(&self, token: &str) -> Result<()> {
        self.store.delete_operator_session(&hash_secret(token)).await?;
        Ok(())
    }

    /// The audit log, newest first.
    pub async fn operator_audit_log(&self, who: &Principal, limit: i64) -> Result<Vec<AuditEntry>> {
        who.operator()?;
        Ok(self.store.list_operator_audit(None, limit.clamp(1, 200)).await?)
    }

    /// When the vault's keys were last rotated, and what the rotation reported.
    pub async fn last_key_rotation(&self, who: &Principal) -> Result<Option<AuditEntry>> {
        who.operator()?;
        Ok(self.store.list_operator_audit(Some(VAULT_ROTATE), 1).await?.into_iter().next())
    }

    /// The vault's current key-encryption key id (never the key).
    pub fn vault_key_id(&self) -> String {
        self.vault.current_kek_id()
    }

    /// Merchants whose handle or name contains `q`.
    pub async fn find_merchants(&self, who: &Principal, q: &str, limit: i64) -> Result<Vec<Merchant>> {
        who.operator()?;
        let q = q.trim();
        if q.chars().count() > MAX_QUERY_CHARS {
            let mut e = Errors::default();
            e.push("q", format!("at most {MAX_QUERY_CHARS} characters"));
            e.finish()?;
        }
        Ok(self.store.search_merchants(q.trim_start_matches('@'), limit.clamp(1, 100)).await?)
    }

    /// One merchant with its newest orders.
    pub async fn merchant_overview(&self, who: &Principal, id: &str) -> Result<MerchantOverview> {
        who.operator()?;
        let merchant = self.merchant(id).await?;
        let orders = self.store.find_orders_by_merchant(&merchant.id, None, None, 20).await?;
        // The merchant's own views of its money and posts, read on its behalf: the operator
        // sees exactly what the merchant sees.
        let account = self.account(&merchant.account_id).await?;
        let as_merchant = Principal::Merchant { merchant: Box::new(merchant.clone()), account };
        let balances = self.merchant_balance(&as_merchant).await?.data;
        let payouts = self.merchant_payouts(&as_merchant, None, Some(10)).await?.data;
        let funnel_posts = self.funnel_posts(&as_merchant, 50).await?;
        Ok(MerchantOverview {
            orders: orders.iter().map(super::merchant_view).collect(),
            merchant,
            balances,
            payouts,
            funnel_posts,
        })
    }
}
