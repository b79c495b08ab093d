//! Saved cards and addresses (sealed in the vault), data rights (export, erase) and key
//! rotation. Every decrypt is written to the audit log with what, for whom and why.

use super::checkout::today;
use super::{Principal, Services};
use crate::checkout::Address;
use crate::error::{Error, Errors, Result};
use crate::ids::{has_prefix, new_id};
use crate::model::Account;
use crate::payment::{Card, CardInput, CardNumber};
use crate::saved::{PaymentMethod, SavedAddress, VaultAudit, VaultRecord};
use crate::types::now_micros;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use zeroize::{Zeroize, Zeroizing};

/// The sealed content of a saved card. The CVC is never part of it.
#[derive(Serialize, Deserialize, Zeroize)]
struct CardSecret {
    number: String,
    exp_month: u32,
    exp_year: u32,
}

/// What a sealed record is bound to: its kind, owner and id.
pub(super) fn aad(kind: &str, owner: &str, id: &str) -> Vec<u8> {
    format!("{kind}:{owner}:{id}").into_bytes()
}

/// What an export holds: everything Buyline keeps about a person.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Export {
    pub account: Account,
    pub posts: Vec<crate::model::Post>,
    pub following: Vec<String>,
    pub followers: Vec<String>,
    pub orders: Vec<crate::order::Order>,
    pub payment_methods: Vec<PaymentMethod>,
    pub addresses: Vec<SavedAddress>,
    pub notifications: Vec<crate::order::Notification>,
    pub merchants: Vec<crate::model::Merchant>,
    /// Merchants allowed to fill the cart from hashtag replies.
    pub merchant_links: Vec<crate::cart::MerchantLink>,
    pub carts: Vec<crate::cart::Cart>,
    pub vault_audit: Vec<crate::saved::AuditEntry>,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub exported_at: i64,
}

impl Services {
    fn sealing_error(e: crate::vault::VaultError) -> Error {
        Error::Internal(format!("vault: {e}"))
    }

    /// Seals `plain` as a new vault record `id` of `kind`, owned by `owner_id`.
    pub(super) fn seal_record(
        &self,
        id: String,
        owner_id: &str,
        kind: &str,
        plain: &[u8],
        summary: String,
    ) -> Result<VaultRecord> {
        let sealed = self.vault.seal(&aad(kind, owner_id, &id), plain).map_err(Self::sealing_error)?;
        Ok(VaultRecord {
            id,
            owner_id: owner_id.to_string(),
            kind: kind.into(),
            sealed: Some(sealed),
            summary,
            created_at: now_micros(),
        })
    }

    /// Decrypts a sealed record, writing the read (what, whose, why, by whom) to the audit
    /// log first.
    pub(super) async fn audited_open(
        &self,
        rec: &VaultRecord,
        sealed: &crate::vault::Sealed,
        purpose: &str,
        actor: &str,
    ) -> Result<std::result::Result<Zeroizing<Vec<u8>>, crate::vault::VaultError>> {
        self.store.insert_vault_audits(&[audit_of(rec, purpose, actor)]).await?;
        Ok(self.vault.open(&aad(&rec.kind, &rec.owner_id, &rec.id), sealed))
    }

    /// Seals a card the shopper has typed (and the processor has seen, or will).
    pub(crate) async fn seal_card(&self, owner: &Account, card: &Card) -> Result<PaymentMethod> {
        let id = new_id("pm");
        let mut secret =
            CardSecret { number: card.number.expose().to_string(), exp_month: card.exp_month, exp_year: card.exp_year };
        let plain = Zeroizing::new(serde_json::to_vec(&secret).map_err(|e| Error::Internal(e.to_string()))?);
        secret.zeroize();
        let pm = PaymentMethod {
            id: id.clone(),
            brand: card.number.brand(),
            last4: card.number.last4(),
            exp_month: card.exp_month,
            exp_year: card.exp_year,
        };
        let summary = serde_json::to_string(&pm).map_err(|e| Error::Internal(e.to_string()))?;
        let record = self.seal_record(id, &owner.id, "card", &plain, summary)?;
        self.store.insert_vault_record(&record).await?;
        tracing::info!(payment_method_id = %pm.id, owner = %owner.id, "card saved");
        Ok(pm)
    }

    pub(crate) async fn seal_address(&self, owner: &Account, address: &Address) -> Result<SavedAddress> {
        let id = new_id("addr");
        let plain = Zeroizing::new(serde_json::to_vec(address).map_err(|e| Error::Internal(e.to_string()))?);
        let record = self.seal_record(id.clone(), &owner.id, "address", &plain, "{}".into())?;
        self.store.insert_vault_record(&record).await?;
        Ok(SavedAddress { id, address: address.clone() })
    }

    /// Decrypts one of the owner's records, writing the read to the audit log first.
    /// Opens one of the owner's records. With `audit_later`, the audit row is handed to the
    /// caller to write with the write that uses the data (before it leaves the process),
    /// instead of being written first.
    async fn open_record(
        &self,
        owner: &Account,
        rec: Option<VaultRecord>,
        kind: &str,
        purpose: &str,
        audit_later: Option<&mut Vec<VaultAudit>>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let Some(rec) = rec else { return Ok(None) };
        let id = rec.id.as_str();
        if rec.owner_id != owner.id || rec.kind != kind {
            return Ok(None);
        }
        let Some(sealed) = rec.sealed.clone() else { return Ok(None) };
        let opened = match audit_later {
            Some(later) => {
                later.push(audit_of(&rec, purpose, &owner.id));
                self.vault.open(&aad(&rec.kind, &rec.owner_id, &rec.id), &sealed)
            }
            None => self.audited_open(&rec, &sealed, purpose, &owner.id).await?,
        };
        match opened {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                tracing::warn!(record_id = %id, error = %e, "a vault record did not decrypt");
                Err(Error::field(
                    if kind == "card" { "payment.payment_method_id" } else { "address_id" },
                    "can no longer be used; add it again",
                ))
            }
        }
    }

    /// The live records behind these saved card (`pm_…`) and address (`addr_…`) ids, by id,
    /// in one read; an id of another shape is not looked up.
    pub(crate) async fn saved_records(&self, ids: &[&str]) -> Result<HashMap<String, VaultRecord>> {
        let ids: Vec<String> =
            ids.iter().filter(|id| has_prefix(id, "pm") || has_prefix(id, "addr")).map(|id| id.to_string()).collect();
        Ok(self.store.find_vault_records_by_ids(&ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect())
    }

    /// A saved card (its record, from [`Self::saved_records`]), ready for the processor, or
    /// `None` if there is no such record or it is not the owner's card.
    pub(crate) async fn open_card(
        &self,
        owner: &Account,
        rec: Option<VaultRecord>,
        purpose: &str,
        audit_later: Option<&mut Vec<VaultAudit>>,
    ) -> Result<Option<Card>> {
        let Some(plain) = self.open_record(owner, rec, "card", purpose, audit_later).await? else { return Ok(None) };
        let mut secret: CardSecret = serde_json::from_slice(&plain).map_err(|e| Error::Internal(e.to_string()))?;
        let number = CardNumber::parse("payment.card.number", &secret.number)
            .map_err(|_| Error::Internal("a sealed card does not parse".into()));
        let card = Card { number: number?, exp_month: secret.exp_month, exp_year: secret.exp_year, cvc: None };
        secret.zeroize();
        if (card.exp_year, card.exp_month) < today() {
            return Err(Error::field("payment.payment_method_id", "this saved card has expired; add a new one"));
        }
        Ok(Some(card))
    }

    pub(crate) async fn open_address(
        &self,
        owner: &Account,
        rec: Option<VaultRecord>,
        purpose: &str,
        audit_later: Option<&mut Vec<VaultAudit>>,
    ) -> Result<Option<Address>> {
        let Some(plain) = self.open_record(owner, rec, "address", purpose, audit_later).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&plain).map_err(|e| Error::Internal(e.to_string()))?))
    }

    pub async fn add_payment_method(&self, who: &Principal, input: CardInput) -> Result<PaymentMethod> {
        let owner = who.shopper()?;
        let mut e = Errors::default();
        let card = Card::parse("card", &input, today(), &mut e);
        e.finish()?;
        self.seal_card(owner, &card.expect("valid")).await
    }

    pub async fn payment_methods(&self, who: &Principal) -> Result<Vec<PaymentMethod>> {
        let owner = who.shopper()?;
        let records = self.store.find_vault_records(&owner.id, "card").await?;
        Ok(records.iter().filter_map(|r| serde_json::from_str::<PaymentMethod>(&r.summary).ok()).collect())
    }

    pub async fn delete_payment_method(&self, who: &Principal, id: &str) -> Result<()> {
        let owner = who.shopper()?;
        if !has_prefix(id, "pm") || !self.store.shred_vault_record(id, &owner.id, now_micros()).await? {
            return Err(Error::NotFound("payment method"));
        }
        tracing::info!(payment_method_id = %id, "card deleted and its key destroyed");
        Ok(())
    }

    pub async fn add_address(&self, who: &Principal, input: Address) -> Result<SavedAddress> {
        let owner = who.shopper()?;
        let mut e = Errors::default();
        let a = Address::parse("address", &input, &mut e);
        e.finish()?;
        self.seal_address(owner, &a.expect("valid")).await
    }

    pub async fn addresses(&self, who: &Principal, purpose: &str) -> Result<Vec<SavedAddress>> {
        let owner = who.shopper()?;
        let mut out = Vec::new();
        for r in self.store.find_vault_records(&owner.id, "address").await? {
            let id = r.id.clone();
            if let Ok(Some(a)) = self.open_address(owner, Some(r), purpose, None).await {
                out.push(SavedAddress { id, address: a });
            }
        }
        Ok(out)
    }

    pub async fn delete_address(&self, who: &Principal, id: &str) -> Result<()> {
        let owner = who.shopper()?;
        if !has_prefix(id, "addr") || !self.store.shred_vault_record(id, &owner.id, now_micros()).await? {
            return Err(Error::NotFound("address"));
        }
        Ok(())
    }

    /// Everything held about the shopper.
    pub async fn export(&self, who: &Principal) -> Result<Export> {
        let me = who.shopper()?;
        let account = self.store.find_account(&me.id).await?.ok_or(Error::NotFound("account"))?;
        let mut posts = Vec::new();
        let mut before: Option<(i64, String)> = None;
        loop {
            let page =
                self.store.find_posts_by_author(&me.id, before.as_ref().map(|(t, i)| (*t, i.as_str())), 200).await?;
            let done = page.len() < 200;
            before = page.last().map(|p| (p.created_at, p.id.clone()));
            posts.extend(page);
            if done {
                break;
            }
        }
        let mut orders = Vec::new();
        let mut before: Option<(i64, String)> = None;
        loop {
            let page =
                self.store.find_orders_by_shopper(&me.id, before.as_ref().map(|(t, i)| (*t, i.as_str())), 200).await?;
            let done = page.len() < 200;
            before = page.last().map(|o| (o.created_at, o.id.clone()));
            orders.extend(page);
            if done {
                break;
            }
        }
        let (following, followers) = self.store.find_follow_handles(&me.id).await?;
        Ok(Export {
            posts,
            following,
            followers,
            orders,
            payment_methods: self.payment_methods(who).await?,
            addresses: self.addresses(who, "data export").await?,
            notifications: self.store.find_notifications_page(&me.id, None, 10_000).await?,
            merchants: self.store.find_merchants_by_owner(&me.id).await?,
            merchant_links: self.merchant_links(who).await?,
            carts: self.carts(who).await?,
            vault_audit: self.store.find_vault_audit(&me.id).await?,
            account,
            exported_at: now_micros(),
        })
    }

    /// Deletes the shopper's account: vault entries shredded, posts removed, orders kept for
    /// the merchant and the ledger with personal data erased.
    pub async fn delete_account(&self, who: &Principal) -> Result<()> {
        let me = who.shopper()?;
        let emails = self.store.erase_account(&me.id, now_micros(), super::erase_personal_data).await?;
        // Its sessions are gone: none may be served from the cache either.
        self.caches.sessions.clear();
        // Its posts and follows are gone, and replies to its posts detached.
        self.caches.home.clear();
        if let Some(spool) = &self.mail_spool {
            // The database no longer holds them; a file left behind is logged (by id, never
            // by content), not a reason to fail an erasure that has committed.
            if let Err(e) = spool.forget(&emails) {
                tracing::warn!(account_id = %me.id, error = %e, "could not remove erased e-mails from the spool");
            }
        }
        tracing::info!(account_id = %me.id, "account erased");
        Ok(())
    }

    /// Re-wraps every data key under the vault's current key-encryption key. Returns how many
    /// records moved. Safe to run while servers use the vault: each update is conditional.
    pub async fn rewrap_vault(&self) -> Result<usize> {
        let current = self.vault.current_kek_id();
        let mut moved = 0;
        loop {
            let batch = self.store.find_vault_records_not_under(&current, 200).await?;
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let Some(sealed) = r.sealed else { continue };
                let new = self.vault.rewrap(&aad(&r.kind, &r.owner_id, &r.id), &sealed).map_err(Self::sealing_error)?;
                if self.store.update_vault_wrap(&r.id, &sealed.kek_id, &new).await? {
                    moved += 1;
                }
            }
        }
        Ok(moved)
    }

    /// Live sealed records per key id, for the start-up check and rotation.
    pub async fn vault_key_usage(&self) -> Result<Vec<(String, i64)>> {
        Ok(self.store.count_vault_records_by_kek().await?)
    }
}

fn audit_of(rec: &VaultRecord, purpose: &str, actor: &str) -> VaultAudit {
    VaultAudit {
        record_id: rec.id.clone(),
        owner_id: rec.owner_id.clone(),
        kind: rec.kind.clone(),
        purpose: purpose.into(),
        actor: actor.into(),
        at: now_micros(),
    }
}
