//! The one error type every core service returns; the web layer maps it to RFC 9457.

use serde::Serialize;

/// A problem with one input field, as shown beside the field in a form or in `errors` of a
/// problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that does not parse; 422.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Unknown, or not the caller's to see; 404. The string names the kind of resource.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No or bad credentials; 401.
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated but not allowed; 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Buy is not offered to this caller (rollout); 403 `not_available`.
    #[error("not available: {0}")]
    NotAvailable(String),
    /// A uniqueness or state conflict; 409. Carries field errors when one field is to blame.
    #[error("conflict: {message}")]
    Conflict { message: String, errors: Vec<FieldError> },
    /// Not enough stock for a line; 409 `out_of_stock`.
    #[error("out of stock: {0}")]
    OutOfStock(String),
    /// The processor refused the card; 402 with the processor's code.
    #[error("payment failed: {code}")]
    Payment { code: String, decline_code: Option<String>, message: String },
    /// A retried request with the same `Idempotency-Key` but another body; 422.
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    /// Too many attempts; 429 with `Retry-After` (seconds).
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    /// Storage or another internal failure. The message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn field(field: &str, message: &str) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    pub fn conflict_field(field: &str, message: &str) -> Self {
        Error::Conflict { message: format!("{field} {message}"), errors: vec![FieldError::new(field, message)] }
    }
}

/// What storage reports; services turn it into [`Error`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint failed; the string is the constraint or column that clashed.
    #[error("unique violation on {0}")]
    Unique(String),
    #[error("storage: {0}")]
    Other(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unique(what) => Error::Conflict { message: format!("already exists ({what})"), errors: vec![] },
            StoreError::Other(m) => Error::Internal(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors while parsing a request, so one response names every bad field.
#[derive(Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn take<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}
