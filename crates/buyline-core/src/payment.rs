//! Cards as the shopper types them, and the payment processor interface (with the
//! challenge page a processor may host).
//!
//! A [`CardNumber`] never prints: `Debug` and `Display` show only the brand and last four,
//! and its memory is zeroed when dropped. Only a processor adapter calls
//! [`CardNumber::expose`].

use crate::error::{Errors, FieldError};
use crate::types::Money;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Unknown,
}

impl Brand {
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Discover => "discover",
            Brand::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Brand {
        match s {
            "visa" => Brand::Visa,
            "mastercard" => Brand::Mastercard,
            "amex" => Brand::Amex,
            "discover" => Brand::Discover,
            _ => Brand::Unknown,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Brand::Visa => "Visa",
            Brand::Mastercard => "Mastercard",
            Brand::Amex => "American Express",
            Brand::Discover => "Discover",
            Brand::Unknown => "Card",
        }
    }

    fn detect(digits: &str) -> Brand {
        let p2: u32 = digits.get(..2).and_then(|s| s.parse().ok()).unwrap_or(0);
        let p4: u32 = digits.get(..4).and_then(|s| s.parse().ok()).unwrap_or(0);
        if digits.starts_with('4') {
            Brand::Visa
        } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
            Brand::Mastercard
        } else if p2 == 34 || p2 == 37 {
            Brand::Amex
        } else if p4 == 6011 || p2 == 65 {
            Brand::Discover
        } else {
            Brand::Unknown
        }
    }
}

/// A primary account number that passed the Luhn check.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CardNumber(String);

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = (c - b'0') as u32;
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

impl CardNumber {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        // 19 digits with a separator between each is under 64 bytes; refuse more unread.
        if raw.len() > 64 {
            return Err(FieldError::new(field, "must be 12 to 19 digits"));
        }
        let digits: String = raw.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if digits.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) || !(12..=19).contains(&digits.len()) {
            return Err(FieldError::new(field, "must be 12 to 19 digits"));
        }
        if !luhn(&digits) {
            return Err(FieldError::new(field, "is not a valid card number; check the digits"));
        }
        Ok(CardNumber(digits))
    }

    pub fn brand(&self) -> Brand {
        Brand::detect(&self.0)
    }

    pub fn last4(&self) -> String {
        self.0[self.0.len() - 4..].to_string()
    }

    /// The digits, for the processor adapter alone.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({} ****{})", self.brand().as_str(), self.last4())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ending {}", self.brand().label(), self.last4())
    }
}

/// A card verification code: used once for the first authorisation, never stored.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Cvc(String);

impl Cvc {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cvc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cvc(***)")
    }
}

/// Card details as submitted.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema, Zeroize, ZeroizeOnDrop)]
pub struct CardInput {
    #[schema(min_length = 12)]
    pub number: String,
    #[schema(minimum = 1, maximum = 12)]
    pub exp_month: u32,
    pub exp_year: u32,
    #[schema(min_length = 3, max_length = 4)]
    pub cvc: String,
    #[serde(default)]
    pub name: Option<String>,
}

impl fmt::Debug for CardInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardInput(***)")
    }
}

/// A card ready for authorisation.
#[derive(Clone, Debug)]
pub struct Card {
    pub number: CardNumber,
    pub exp_month: u32,
    pub exp_year: u32,
    pub cvc: Option<Cvc>,
}

impl Card {
    /// Parses with field names under `prefix` (e.g. `payment.card`). `today` is (year, month).
    pub fn parse(prefix: &str, input: &CardInput, today: (u32, u32), e: &mut Errors) -> Option<Card> {
        let number = e.take(CardNumber::parse(&format!("{prefix}.number"), &input.number));
        let mut ok = true;
        if !(1..=12).contains(&input.exp_month) {
            e.push(&format!("{prefix}.exp_month"), "must be 1 to 12");
            ok = false;
        }
        let year = if input.exp_year < 100 { 2000 + input.exp_year } else { input.exp_year };
        if ok && (year, input.exp_month) < today {
            e.push(&format!("{prefix}.exp_year"), "the card has expired");
            ok = false;
        } else if year > today.0 + 25 {
            e.push(&format!("{prefix}.exp_year"), "is too far in the future");
            ok = false;
        }
        let cvc = input.cvc.trim();
        let want = if number.as_ref().is_some_and(|n| n.brand() == Brand::Amex) { 4 } else { 3 };
        if cvc.len() != want || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            e.push(&format!("{prefix}.cvc"), format!("must be {want} digits"));
            ok = false;
        }
        let number = number?;
        ok.then(|| Card { number, exp_month: input.exp_month, exp_year: year, cvc: Some(Cvc(cvc.to_string())) })
    }
}

/// What the shopper sees of a card, ever.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CardSummary {
    pub brand: Brand,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

impl From<&Card> for CardSummary {
    fn from(c: &Card) -> Self {
        CardSummary { brand: c.number.brand(), last4: c.number.last4(), exp_month: c.exp_month, exp_year: c.exp_year }
    }
}

pub struct AuthorizeRequest {
    /// The processor's own idempotency key: the same key always gets the same answer.
    pub idempotency_key: String,
    pub amount: Money,
    pub card: Card,
    pub description: String,
    /// Where the challenge page sends the shopper back to.
    pub return_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Authorized {
        payment_id: String,
    },
    /// A 3-D Secure challenge must be passed on the processor's page first.
    RequiresAction {
        payment_id: String,
        challenge_url: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    RequiresAction,
    Authorized,
    Captured,
    Voided,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::RequiresAction => "requires_action",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requires_action" => Self::RequiresAction,
            "authorized" => Self::Authorized,
            "captured" => Self::Captured,
            "voided" => Self::Voided,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// The card was refused. `code` is the problem code (`card_declined`, `expired_card`,
    /// `incorrect_cvc`, `processing_error`); `decline_code` refines `card_declined`.
    #[error("{code}: {message}")]
    Declined { code: String, decline_code: Option<String>, message: String, retryable: bool },
    #[error("processor unavailable: {0}")]
    Unavailable(String),
    #[error("no such payment")]
    NotFound,
}

/// An authorisation the processor holds, for the reconciler.
#[derive(Debug, Clone)]
pub struct OpenAuthorization {
    pub payment_id: String,
    pub idempotency_key: String,
    pub created_at: i64,
}

#[async_trait]
pub trait Processor: Send + Sync + 'static {
    async fn authorize(&self, req: AuthorizeRequest) -> Result<Authorization, ProcessorError>;
    /// Idempotent: capturing a captured payment succeeds.
    async fn capture(&self, payment_id: &str) -> Result<(), ProcessorError>;
    /// Captures several payments, answering for each in order as [`Self::capture`] would. A
    /// processor that can take them in one call does (the purchase path captures the orders
    /// that are waiting together); by default, one call each.
    async fn capture_many(&self, payment_ids: &[String]) -> Vec<Result<(), ProcessorError>> {
        let mut out = Vec::with_capacity(payment_ids.len());
        for id in payment_ids {
            out.push(self.capture(id).await);
        }
        out
    }
    /// Idempotent: voiding a voided payment succeeds. A captured payment cannot be voided.
    async fn void(&self, payment_id: &str) -> Result<(), ProcessorError>;
    async fn status(&self, payment_id: &str) -> Result<PaymentStatus, ProcessorError>;
    /// Returns `amount` of a captured payment to the card. Idempotent on `idempotency_key`.
    async fn refund(&self, payment_id: &str, amount: i64, idempotency_key: &str) -> Result<(), ProcessorError>;
    /// Authorisations (or pending challenges) older than `before`, not captured or voided.
    async fn open_authorizations(&self, before: i64) -> Result<Vec<OpenAuthorization>, ProcessorError>;
}

/// A payment waiting on a 3-D Secure challenge, as the challenge page shows it.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Still waiting for the shopper's answer; once answered, the page sends them back.
    pub pending: bool,
    pub amount: Money,
    pub brand: String,
    pub last4: String,
    /// Where the shopper goes back to, answered or not.
    pub return_url: String,
}

/// A processor whose 3-D Secure challenge page this server hosts, standing in for the card
/// issuer's (the built-in test processor). A processor that sends the shopper to the
/// issuer's own page does not implement it.
#[async_trait]
pub trait ChallengePage: Send + Sync + 'static {
    async fn challenge(&self, payment_id: &str) -> Result<Challenge, ProcessorError>;
    /// The shopper passes (or fails) the challenge; returns where to send them.
    async fn answer_challenge(&self, payment_id: &str, pass: bool) -> Result<String, ProcessorError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(n: &str) -> CardInput {
        CardInput { number: n.into(), exp_month: 12, exp_year: 2030, cvc: "123".into(), name: None }
    }

    #[test]
    fn luhn_and_brand() {
        let mut e = Errors::default();
        let c = Card::parse("card", &input("4242 4242 4242 4242"), (2026, 11), &mut e).unwrap();
        assert_eq!(c.number.brand(), Brand::Visa);
        assert_eq!(c.number.last4(), "4242");
        let c = Card::parse("card", &input("5555-5555-5555-4444"), (2026, 11), &mut e).unwrap();
        assert_eq!(c.number.brand(), Brand::Mastercard);
        assert!(e.0.is_empty());
        assert!(Card::parse("card", &input("4242424242424241"), (2026, 11), &mut e).is_none());
        assert_eq!(e.0[0].field, "card.number");
    }

    #[test]
    fn expiry_and_cvc() {
        let mut e = Errors::default();
        let mut i = input("4242424242424242");
        i.exp_year = 2026;
        i.exp_month = 10;
        assert!(Card::parse("c", &i, (2026, 11), &mut e).is_none());
        assert_eq!(e.0[0].field, "c.exp_year");
        let mut e = Errors::default();
        i.exp_month = 11;
        i.cvc = "12".into();
        assert!(Card::parse("c", &i, (2026, 11), &mut e).is_none());
        assert_eq!(e.0[0].field, "c.cvc");
    }

    #[test]
    fn card_numbers_never_print() {
        let mut e = Errors::default();
        let c = Card::parse("card", &input("4242424242424242"), (2026, 11), &mut e).unwrap();
        let shown = format!("{c:?} {} {:?}", c.number, input("4242424242424242"));
        assert!(!shown.contains("42424242"), "{shown}");
        assert!(!shown.contains("123"), "{shown}");
    }
}
