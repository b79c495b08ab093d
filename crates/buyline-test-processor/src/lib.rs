//! The built-in `test` processor: behaves like a card network in test mode. It sits behind
//! core's [`Processor`] trait like any other processor would, and keeps its payments in
//! tables of its own ([`payments`]), written apart from an order's transaction as a remote
//! processor's would be; every call is idempotent on its key. It is the processor adapter:
//! the one place outside the vault that reads a card number.
//!
//! | card | outcome |
//! |---|---|
//! | 4242424242424242, 5555555555554444 (and any other valid number) | authorised |
//! | 4000000000000002 | `card_declined` / `generic_decline` |
//! | 4000000000009995 | `card_declined` / `insufficient_funds` |
//! | 4000000000000069 | `expired_card` |
//! | 4000000000000127 | `incorrect_cvc` |
//! | 4000000000000119 | `processing_error` (retryable) |
//! | 4000002500003155 | requires a 3-D Secure challenge |
//!
//! The challenge is answered on a page this server hosts (`/test-processor/challenge/{id}`),
//! which reaches the processor through core's [`ChallengePage`] trait.

pub mod payments;

use async_trait::async_trait;
use buyline_core::ids::new_id;
use buyline_core::payment::{
    Authorization, AuthorizeRequest, Challenge, ChallengePage, OpenAuthorization, PaymentStatus, Processor,
    ProcessorError,
};
use buyline_core::types::{now_micros, Currency, Money};
pub use payments::{Payments, ProcessorPayment};
use sqlx::AnyPool;

enum Outcome {
    Approve,
    Challenge,
    Decline(&'static str, Option<&'static str>),
}

fn outcome(number: &str) -> Outcome {
    match number {
        "4000000000000002" => Outcome::Decline("card_declined", Some("generic_decline")),
        "4000000000009995" => Outcome::Decline("card_declined", Some("insufficient_funds")),
        "4000000000000069" => Outcome::Decline("expired_card", None),
        "4000000000000127" => Outcome::Decline("incorrect_cvc", None),
        "4000000000000119" => Outcome::Decline("processing_error", None),
        "4000002500003155" => Outcome::Challenge,
        _ => Outcome::Approve,
    }
}

fn declined(p: &ProcessorPayment) -> ProcessorError {
    let code = p.error_code.clone().unwrap_or_else(|| "card_declined".into());
    let (message, retryable) = match code.as_str() {
        "processing_error" => ("An error occurred while processing your card. Try again in a little bit.", true),
        "expired_card" => ("Your card has expired.", false),
        "incorrect_cvc" => ("Your card's security code is incorrect.", false),
        "authentication_failed" => ("The card's 3-D Secure check was not passed.", false),
        _ if p.decline_code.as_deref() == Some("insufficient_funds") => ("Your card has insufficient funds.", false),
        _ => ("Your card was declined.", false),
    };
    ProcessorError::Declined { code, decline_code: p.decline_code.clone(), message: message.into(), retryable }
}

#[derive(Clone)]
pub struct TestProcessor {
    payments: Payments,
    /// Base URL of this server, for the challenge page.
    public_url: String,
}

impl TestProcessor {
    /// Keeps its records in the database behind these pools: reads on `read`, writes on
    /// `write`, which must be the store's writer (see [`Payments::new`]).
    pub fn new(read: AnyPool, write: AnyPool, public_url: String) -> Self {
        TestProcessor { payments: Payments::new(read, write), public_url }
    }

    /// Writes through the store's group writer (`Db::group_writer`), so the processor's
    /// payment rows share the store's group commits on SQLite.
    pub fn sharing(self, group: buyline_store::GroupWriter) -> Self {
        TestProcessor { payments: self.payments.sharing(group), ..self }
    }

    pub async fn payment(&self, id: &str) -> Result<ProcessorPayment, ProcessorError> {
        self.payments.find(id).await.map_err(ProcessorError::Unavailable)?.ok_or(ProcessorError::NotFound)
    }

    /// The shopper passes (or fails) the 3-D Secure challenge; returns where to send them.
    pub async fn complete_challenge(&self, id: &str, pass: bool) -> Result<String, ProcessorError> {
        let p = self.payment(id).await?;
        let (to, code) = if pass {
            (PaymentStatus::Authorized, None)
        } else {
            (PaymentStatus::Failed, Some("authentication_failed"))
        };
        self.payments
            .update(id, &[PaymentStatus::RequiresAction], to, code, now_micros())
            .await
            .map_err(ProcessorError::Unavailable)?;
        Ok(p.return_url)
    }
}

#[async_trait]
impl Processor for TestProcessor {
    async fn authorize(&self, req: AuthorizeRequest) -> Result<Authorization, ProcessorError> {
        let number = req.card.number.expose();
        let (status, error_code, decline_code) = match outcome(number) {
            Outcome::Approve => (PaymentStatus::Authorized, None, None),
            Outcome::Challenge => (PaymentStatus::RequiresAction, None, None),
            Outcome::Decline(code, decline) => {
                (PaymentStatus::Failed, Some(code.to_string()), decline.map(str::to_string))
            }
        };
        let payment = ProcessorPayment {
            id: new_id("pi"),
            idempotency_key: req.idempotency_key.clone(),
            amount: req.amount.amount,
            currency: req.amount.currency.code().into(),
            status,
            brand: req.card.number.brand().as_str().into(),
            last4: req.card.number.last4(),
            error_code,
            decline_code,
            return_url: req.return_url.clone(),
            created_at: now_micros(),
        };
        // A payment with this key already (a retry, or a concurrent call that won the insert):
        // answer its result. The outcome depends on the card alone, so deciding it first is
        // no different.
        if self.payments.insert(&payment).await.map_err(ProcessorError::Unavailable)? {
            return replay(&payment, &self.public_url);
        }
        let stored = self
            .payments
            .find_by_key(&req.idempotency_key)
            .await
            .map_err(ProcessorError::Unavailable)?
            .ok_or_else(|| ProcessorError::Unavailable("payment vanished".into()))?;
        replay(&stored, &self.public_url)
    }

    async fn capture(&self, payment_id: &str) -> Result<(), ProcessorError> {
        let mut answers = self.capture_many(std::slice::from_ref(&payment_id.to_string())).await;
        answers.pop().unwrap_or(Err(ProcessorError::NotFound))
    }

    async fn capture_many(&self, payment_ids: &[String]) -> Vec<Result<(), ProcessorError>> {
        // An authorised payment is captured in one conditional write; anything else (already
        // captured, or moved by something else first) is answered by what it is now.
        match self.payments.capture_many(payment_ids, now_micros()).await {
            Ok(statuses) => statuses
                .into_iter()
                .map(|s| match s {
                    Some(PaymentStatus::Captured) => Ok(()),
                    Some(other) => {
                        Err(ProcessorError::Unavailable(format!("cannot capture a {} payment", other.as_str())))
                    }
                    None => Err(ProcessorError::NotFound),
                })
                .collect(),
            Err(e) => payment_ids.iter().map(|_| Err(ProcessorError::Unavailable(e.clone()))).collect(),
        }
    }

    async fn void(&self, payment_id: &str) -> Result<(), ProcessorError> {
        let p = self.payment(payment_id).await?;
        match p.status {
            PaymentStatus::Voided | PaymentStatus::Failed => Ok(()),
            PaymentStatus::Authorized | PaymentStatus::RequiresAction => {
                self.payments
                    .update(
                        payment_id,
                        &[PaymentStatus::Authorized, PaymentStatus::RequiresAction],
                        PaymentStatus::Voided,
                        None,
                        now_micros(),
                    )
                    .await
                    .map_err(ProcessorError::Unavailable)?;
                Ok(())
            }
            PaymentStatus::Captured => Err(ProcessorError::Unavailable("a captured payment cannot be voided".into())),
        }
    }

    async fn refund(&self, payment_id: &str, amount: i64, idempotency_key: &str) -> Result<(), ProcessorError> {
        let p = self.payment(payment_id).await?;
        if p.status != PaymentStatus::Captured {
            return Err(ProcessorError::Unavailable(format!("cannot refund a {} payment", p.status.as_str())));
        }
        match self
            .payments
            .apply_refund(idempotency_key, payment_id, amount, now_micros())
            .await
            .map_err(ProcessorError::Unavailable)?
        {
            Ok(()) => Ok(()),
            Err(why) => Err(ProcessorError::Declined {
                code: "refund_failed".into(),
                decline_code: None,
                message: why,
                retryable: false,
            }),
        }
    }

    async fn status(&self, payment_id: &str) -> Result<PaymentStatus, ProcessorError> {
        Ok(self.payment(payment_id).await?.status)
    }

    async fn open_authorizations(&self, before: i64) -> Result<Vec<OpenAuthorization>, ProcessorError> {
        let list = self.payments.find_open(before).await.map_err(ProcessorError::Unavailable)?;
        Ok(list
            .into_iter()
            .map(|p| OpenAuthorization {
                payment_id: p.id,
                idempotency_key: p.idempotency_key,
                created_at: p.created_at,
            })
            .collect())
    }
}

#[async_trait]
impl ChallengePage for TestProcessor {
    async fn challenge(&self, payment_id: &str) -> Result<Challenge, ProcessorError> {
        let p = self.payment(payment_id).await?;
        // The currency was written from a parsed one; the fallback only keeps the page up.
        let currency = Currency::parse(&p.currency).unwrap_or(Currency::Usd);
        Ok(Challenge {
            pending: p.status == PaymentStatus::RequiresAction,
            amount: Money::new(p.amount, currency),
            brand: p.brand,
            last4: p.last4,
            return_url: p.return_url,
        })
    }

    async fn answer_challenge(&self, payment_id: &str, pass: bool) -> Result<String, ProcessorError> {
        self.complete_challenge(payment_id, pass).await
    }
}

fn replay(p: &ProcessorPayment, public_url: &str) -> Result<Authorization, ProcessorError> {
    match p.status {
        PaymentStatus::Failed => Err(declined(p)),
        PaymentStatus::RequiresAction => Ok(Authorization::RequiresAction {
            payment_id: p.id.clone(),
            challenge_url: format!("{public_url}/test-processor/challenge/{}", p.id),
        }),
        _ => Ok(Authorization::Authorized { payment_id: p.id.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(status: PaymentStatus, error_code: Option<&str>, decline_code: Option<&str>) -> ProcessorPayment {
        ProcessorPayment {
            id: "pi_1".into(),
            idempotency_key: "chk_1.1".into(),
            amount: 3000,
            currency: "USD".into(),
            status,
            brand: "visa".into(),
            last4: "4242".into(),
            error_code: error_code.map(str::to_string),
            decline_code: decline_code.map(str::to_string),
            return_url: "http://x/orders/o/return".into(),
            created_at: 0,
        }
    }

    #[test]
    fn the_special_cards_refuse_as_a_card_network_would() {
        assert!(matches!(outcome("4242424242424242"), Outcome::Approve));
        assert!(matches!(outcome("4000002500003155"), Outcome::Challenge));
        assert!(matches!(outcome("4000000000009995"), Outcome::Decline("card_declined", Some("insufficient_funds"))));
        let ProcessorError::Declined { retryable, .. } =
            declined(&recorded(PaymentStatus::Failed, Some("processing_error"), None))
        else {
            panic!("declined")
        };
        assert!(retryable);
    }

    #[test]
    fn a_replay_answers_what_the_first_call_did() {
        let challenge = replay(&recorded(PaymentStatus::RequiresAction, None, None), "http://x").unwrap();
        assert_eq!(
            challenge,
            Authorization::RequiresAction {
                payment_id: "pi_1".into(),
                challenge_url: "http://x/test-processor/challenge/pi_1".into()
            }
        );
        assert!(replay(&recorded(PaymentStatus::Failed, Some("expired_card"), None), "http://x").is_err());
        assert_eq!(
            replay(&recorded(PaymentStatus::Captured, None, None), "http://x"),
            Ok(Authorization::Authorized { payment_id: "pi_1".into() })
        );
    }
}
