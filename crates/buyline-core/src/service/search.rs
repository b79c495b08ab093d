//! Discovery: search over posts (the database's full-text index), accounts and hashtags,
//! who to follow, and notifications page by page with their unread count.

use super::paging::PageArgs;
use super::{Principal, Services};
use crate::discovery::{check_query, query_words, AccountSummary, ACTIVE_WITHIN_MICROS, MAX_SUGGESTIONS};
use crate::error::{Error, Result};
use crate::limits::MAX_HASHTAG_CHARS;
use crate::model::{Account, Page, TimelineItem};
use crate::order::Notification;
use crate::types::now_micros;

impl Services {
    /// Posts holding every word of `q` (hashtags included), newest first, with buy cards.
    pub async fn search_posts(
        &self,
        viewer: Option<&Account>,
        q: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<TimelineItem>> {
        let q = check_query(q)?;
        let args = PageArgs::parse(cursor, limit)?;
        let words = query_words(&q);
        let posts = self.store.search_posts(&words, args.before(), args.fetch()).await?;
        self.page(&args, posts, viewer).await
    }

    /// Accounts whose handle or display name (or a word of it) starts with `q`; a leading
    /// `@` is ignored.
    pub async fn search_accounts(
        &self,
        q: Option<&str>,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<AccountSummary>> {
        let q = check_query(q)?;
        let prefix = q.trim_start_matches('@').trim().to_lowercase();
        if prefix.is_empty() {
            return Err(Error::field("q", "must name more than an @"));
        }
        let args = PageArgs::parse(cursor, limit)?;
        let list = self.store.search_accounts(&prefix, args.before(), args.fetch()).await?;
        Ok(args.page(list, |a| (a.created_at, &a.id)))
    }

    /// A hashtag's posts, newest first (case-insensitive, with or without the `#`).
    pub async fn hashtag_posts(
        &self,
        viewer: Option<&Account>,
        tag: &str,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<TimelineItem>> {
        if crate::limits::too_many_bytes_for(tag, MAX_HASHTAG_CHARS) || tag.chars().count() > MAX_HASHTAG_CHARS {
            return Err(Error::field("tag", &format!("is too long: at most {MAX_HASHTAG_CHARS} characters")));
        }
        let key = crate::cart::tag_key(tag);
        if key.is_empty() || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::field("tag", "is not a hashtag"));
        }
        let args = PageArgs::parse(cursor, limit)?;
        let posts = self.store.find_hashtag_posts(&key, args.before(), args.fetch()).await?;
        self.page(&args, posts, viewer).await
    }

    /// Who to follow: merchants and recently active accounts in the shopper's country that
    /// they do not follow yet (never themselves or their own shops).
    pub async fn suggestions(&self, who: &Principal) -> Result<Vec<AccountSummary>> {
        let me = who.shopper()?;
        Ok(self
            .store
            .find_suggestions(&me.id, &me.country, now_micros() - ACTIVE_WITHIN_MICROS, MAX_SUGGESTIONS)
            .await?)
    }

    /// Receipts and cart answers, newest first.
    pub async fn notifications_page(
        &self,
        who: &Principal,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<Notification>> {
        let account = who.account()?;
        let args = PageArgs::parse(cursor, limit)?;
        let list = self.store.find_notifications_page(&account.id, args.before(), args.fetch()).await?;
        Ok(args.page(list, |n| (n.created_at, &n.id)))
    }

    pub async fn unread_notifications(&self, account: &Account) -> Result<i64> {
        Ok(self.store.count_unread_notifications(&account.id).await?)
    }

    pub async fn mark_notifications_read(&self, account: &Account) -> Result<()> {
        Ok(self.store.mark_notifications_read(&account.id, now_micros()).await?)
    }
}
