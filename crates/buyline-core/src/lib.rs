//! Buyline's domain: parsed types, rules, the services that run each use case, and the
//! storage trait they need. No HTTP, no SQL, no I/O of its own.

pub mod cart;
pub mod checkout;
pub mod discovery;
pub mod edge;
pub mod error;
pub mod experiment;
pub mod fees;
pub mod ids;
pub mod limits;
pub mod model;
pub mod order;
pub mod payment;
#[cfg(test)]
mod proptests;
pub mod rollout;
pub mod saved;
pub mod service;
pub mod store;
pub mod text;
pub mod types;
pub mod vault;

pub use error::{Error, FieldError, Result};
pub use service::{Principal, Services};
