//! A shopper's orders and notifications, and the operator's trial balance of the ledger.

use super::paging::PageArgs;
use super::{Principal, Services};
use crate::error::{Error, Result};
use crate::ids::has_prefix;
use crate::model::Page;
use crate::order::{Order, TrialBalanceLine};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrialBalance {
    pub data: Vec<TrialBalanceLine>,
    /// Sum per currency; zero when the books balance.
    pub totals: BTreeMap<String, i64>,
}

impl Services {
    pub async fn order(&self, who: &Principal, id: &str) -> Result<Order> {
        let shopper = who.shopper()?;
        if !has_prefix(id, "ord") {
            return Err(Error::NotFound("order"));
        }
        match self.store.find_order(id).await? {
            Some(o) if o.shopper_id.as_deref() == Some(shopper.id.as_str()) => Ok(o),
            _ => Err(Error::NotFound("order")),
        }
    }

    pub async fn orders(&self, who: &Principal, cursor: Option<&str>, limit: Option<i64>) -> Result<Page<Order>> {
        let shopper = who.shopper()?;
        let args = PageArgs::parse(cursor, limit)?;
        let list = self.store.find_orders_by_shopper(&shopper.id, args.before(), args.fetch()).await?;
        Ok(args.page(list, |o| (o.created_at, &o.id)))
    }

    pub async fn notifications(&self, who: &Principal) -> Result<Vec<crate::order::Notification>> {
        let account = who.account()?;
        Ok(self.store.find_notifications_page(&account.id, None, 50).await?)
    }

    pub async fn trial_balance(&self, who: &Principal) -> Result<TrialBalance> {
        who.operator()?;
        let data = self.store.trial_balance().await?;
        let mut totals = BTreeMap::new();
        for l in &data {
            *totals.entry(l.currency.clone()).or_insert(0) += l.balance;
        }
        Ok(TrialBalance { data, totals })
    }
}
