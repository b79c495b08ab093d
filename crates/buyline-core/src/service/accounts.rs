//! Sign-up, log-in, sessions.

use super::{Principal, Services};
use crate::error::{Error, Errors, Result};
use crate::ids::{hash_secret, new_id, new_secret};
use crate::model::{Account, AccountKind};
use crate::types::{now_micros, parse_display_name, Country, Email, Handle, Password};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct SignUpInput {
    #[schema(min_length = 1, max_length = 15)]
    pub handle: String,
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[schema(value_type = crate::types::CountryCode)]
    pub country: String,
    #[schema(max_length = 50)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct LoginInput {
    /// Handle or e-mail.
    #[schema(min_length = 1)]
    pub login: String,
    pub password: String,
}

/// A hash computed for a password nobody has, so a login for an unknown account costs as
/// much as one with a wrong password and does not reveal which accounts exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1O2F0tIYSJiGR3oYXuddUAgR6OE0UiNG5DEb4HqNpLM";

/// Password hashes computed at once, per process. Each takes 19 MiB (argon2's memory cost)
/// for its whole run: without a bound, a burst of sign-ups or log-ins costs 19 MiB each at
/// once (a bench's 64 sign-ups took the server from 44 to 235 MiB). More than the cores can
/// run at once gains nothing; the rest wait their turn.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

async fn hash_password(password: Password) -> Result<String> {
    let _turn = HASHING.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

async fn verify_password(password: String, hash: String) -> bool {
    let Ok(_turn) = HASHING.acquire().await else { return false };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Maps a uniqueness clash on accounts to the field the user must change.
pub(crate) fn account_conflict(e: crate::error::StoreError) -> Error {
    match e {
        crate::error::StoreError::Unique(what) if what.contains("email") => {
            Error::conflict_field("email", "is already registered")
        }
        crate::error::StoreError::Unique(_) => Error::conflict_field("handle", "is already taken"),
        other => other.into(),
    }
}

/// Failed log-ins allowed per account in a window, and per client address (looser: behind
/// a proxy many people share one address, and one guesser must not lock them all out).
const MAX_FAILURES: i64 = 10;
const MAX_CLIENT_FAILURES: i64 = 50;
/// Failed log-ins count over this window (shoppers' and the operator's alike).
pub(super) const LOGIN_WINDOW_MICROS: i64 = 15 * 60 * 1_000_000;

/// The handle or e-mail as accounts are looked up by it.
fn normalise_login(login: &str) -> String {
    login.trim().trim_start_matches('@').to_lowercase()
}

impl Services {
    /// Checks credentials and starts a session, with failed attempts throttled per account
    /// and per `client` (the caller's address). Every failure is the same 401.
    ///
    /// The counts live in the database, so every server process shares them, and they are
    /// kept per account: its handle and its e-mail share one count of 10 per 15 minutes.
    /// A login that names no account is counted under its normalised text, so probing it
    /// costs the same. Past the limit every attempt, the right password too, waits out the
    /// window with `429`: a guess can never be confirmed.
    pub async fn log_in_from(&self, input: LoginInput, client: Option<&str>) -> Result<(Account, String)> {
        let login = normalise_login(&input.login);
        if login.is_empty() || input.password.is_empty() {
            let mut e = Errors::default();
            if login.is_empty() {
                e.push("login", "is required");
            }
            if input.password.is_empty() {
                e.push("password", "is required");
            }
            e.finish()?;
        }
        let creds = self.store.find_credentials(&login).await?;
        let mut keys = vec![match &creds {
            Some(c) => format!("account:{}", c.account.id),
            None => format!("login:{login}"),
        }];
        if let Some(c) = client {
            keys.push(format!("client:{c}"));
        }
        let now = now_micros();
        self.login_throttle(&keys, |k| if k.starts_with("client:") { MAX_CLIENT_FAILURES } else { MAX_FAILURES }, now)
            .await?;
        let hash = creds.as_ref().map(|c| c.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = verify_password(input.password, hash).await;
        match creds {
            Some(c) if ok => {
                self.store.delete_login_failures(&keys[0]).await?;
                let token = self.start_session(&c.account.id).await?;
                Ok((c.account, token))
            }
            _ => {
                self.store.record_login_failure(&keys, now, now - LOGIN_WINDOW_MICROS).await?;
                Err(Error::Unauthorized)
            }
        }
    }

    /// `429` while any of `keys` (an account, a client address…) has reached its limit of
    /// failed log-ins in the window, with the time until its count starts afresh.
    pub(super) async fn login_throttle(&self, keys: &[String], limit: impl Fn(&str) -> i64, now: i64) -> Result<()> {
        let counts = self.store.find_login_failures(keys, now - LOGIN_WINDOW_MICROS).await?;
        let retry_after = counts
            .iter()
            .filter(|(k, n, _)| *n >= limit(k))
            .map(|(_, _, start)| ((start + LOGIN_WINDOW_MICROS - now) / 1_000_000).max(1) as u64)
            .max();
        match retry_after {
            Some(retry_after) => {
                tracing::warn!("log-in throttled");
                Err(Error::RateLimited { retry_after })
            }
            None => Ok(()),
        }
    }

    /// Creates a person's account and a first session; returns both.
    pub async fn sign_up(&self, input: SignUpInput) -> Result<(Account, String)> {
        let mut e = Errors::default();
        let handle = e.take(Handle::parse("handle", &input.handle));
        let email = e.take(Email::parse("email", &input.email));
        let password = e.take(Password::parse("password", &input.password));
        let country = e.take(Country::parse("country", &input.country));
        let display =
            handle.as_ref().and_then(|h| e.take(parse_display_name("display_name", input.display_name.as_deref(), h)));
        e.finish()?;
        let (handle, email, password, country, display) =
            (handle.unwrap(), email.unwrap(), password.unwrap(), country.unwrap(), display.unwrap());
        // Checked before the expensive hash; the unique index still decides under a race.
        if self.store.find_account_by_handle(&handle.key()).await?.is_some() {
            return Err(Error::conflict_field("handle", "is already taken"));
        }
        let hash = hash_password(password).await?;
        let account = Account {
            id: new_id("acct"),
            handle: handle.as_str().to_string(),
            display_name: display,
            email: Some(email.as_str().to_string()),
            country: country.as_str().to_string(),
            kind: AccountKind::Person,
            bio: String::new(),
            created_at: now_micros(),
        };
        self.store.insert_account(&account, Some(&hash)).await.map_err(account_conflict)?;
        let token = self.start_session(&account.id).await?;
        tracing::info!(account_id = %account.id, "account created");
        Ok((account, token))
    }

    /// [`Services::log_in_from`] without a client address: only the account is counted.
    pub async fn log_in(&self, input: LoginInput) -> Result<(Account, String)> {
        self.log_in_from(input, None).await
    }

    async fn start_session(&self, account_id: &str) -> Result<String> {
        let token = new_secret("st");
        let now = now_micros();
        self.store.insert_session(&hash_secret(&token), account_id, now, now + self.config.session_ttl_micros).await?;
        Ok(token)
    }

    pub async fn log_out(&self, token: &str) -> Result<()> {
        let key = hash_secret(token);
        self.caches.sessions.forget(&key);
        Ok(self.store.delete_session(&key).await?)
    }

    /// The account behind a session token, if the session is live.
    pub async fn session_account(&self, token: &str) -> Result<Option<Account>> {
        if !token.starts_with("st_") {
            return Ok(None);
        }
        let key = hash_secret(token);
        Ok(self.caches.sessions.get_or_load(&key, || self.store.find_session_account(&key, now_micros())).await?)
    }

    /// Resolves a bearer token: a session token, a merchant key, or the operator token.
    pub async fn authenticate(&self, token: &str, operator_token: Option<&str>) -> Result<Principal> {
        if let Some(op) = operator_token {
            if crate::ids::constant_time_eq(token, op) {
                return Ok(Principal::Operator);
            }
        }
        if token.starts_with("sk_") {
            let merchant =
                self.store.find_merchant_by_api_key(&hash_secret(token)).await?.ok_or(Error::Unauthorized)?;
            let account = self
                .store
                .find_account(&merchant.account_id)
                .await?
                .ok_or_else(|| Error::Internal("merchant without account".into()))?;
            return Ok(Principal::Merchant { merchant: Box::new(merchant), account });
        }
        match self.session_account(token).await? {
            Some(a) => Ok(Principal::Shopper(a)),
            None => Err(Error::Unauthorized),
        }
    }

    pub async fn account(&self, id: &str) -> Result<Account> {
        self.store.find_account(id).await?.ok_or(Error::NotFound("account"))
    }

    pub async fn account_count(&self) -> Result<i64> {
        Ok(self.store.count_accounts().await?)
    }
}
