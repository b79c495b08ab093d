//! Checkouts and orders as stored and as clients see them (SPEC §3 shapes).

use crate::checkout::{Address, Totals};
use crate::types::{Currency, ProductKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of a checkout or order, with its price frozen when the checkout opened.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLine {
    pub product_id: String,
    pub variant_id: String,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub sku: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub kind: ProductKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ShippingChoice {
    pub id: String,
    pub name: String,
    pub price: i64,
}

/// A checkout as storage keeps it.
#[derive(Debug, Clone)]
pub struct CheckoutRecord {
    pub id: String,
    pub shopper_id: String,
    pub merchant_id: String,
    pub post_id: Option<String>,
    pub lines: Vec<OrderLine>,
    pub currency: Currency,
    /// `open`, `completing`, `completed` or `expired`.
    pub status: String,
    pub attempt: i64,
    pub order_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An open checkout as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Checkout {
    pub id: String,
    pub status: String,
    pub merchant_id: String,
    pub lines: Vec<OrderLine>,
    /// Rates that ship to the shopper's country (or to the given destination).
    pub shipping_options: Vec<ShippingChoice>,
    /// With the first shipping option and the shopper's country's tax rate.
    pub totals: Totals,
    pub requires_shipping: bool,
    pub return_policy: String,
    pub order_id: Option<String>,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    RequiresAction,
    Paid,
    Fulfilled,
    Canceled,
    Refunded,
    PartiallyRefunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresAction => "requires_action",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::Canceled => "canceled",
            Self::Refunded => "refunded",
            Self::PartiallyRefunded => "partially_refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requires_action" => Self::RequiresAction,
            "paid" => Self::Paid,
            "fulfilled" => Self::Fulfilled,
            "canceled" => Self::Canceled,
            "refunded" => Self::Refunded,
            "partially_refunded" => Self::PartiallyRefunded,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::RequiresAction => "Waiting for card check",
            Self::Paid => "Paid",
            Self::Fulfilled => "Shipped",
            Self::Canceled => "Canceled",
            Self::Refunded => "Refunded",
            Self::PartiallyRefunded => "Partly refunded",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fulfillment {
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentSummary {
    pub brand: String,
    pub last4: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: String,
    pub status: OrderStatus,
    pub merchant_id: String,
    #[serde(skip)]
    pub shopper_id: Option<String>,
    #[serde(skip)]
    pub checkout_id: String,
    pub lines: Vec<OrderLine>,
    pub shipping_address: Option<Address>,
    pub shipping: Option<ShippingChoice>,
    pub totals: Totals,
    pub platform_fee: i64,
    /// The commission in force when the order was placed, in basis points.
    pub fee_bps: u32,
    pub fulfillment: Fulfillment,
    pub payment: PaymentSummary,
    #[serde(skip)]
    pub payment_id: String,
    /// Where to pass the 3-D Secure check while `status` is `requires_action`.
    pub challenge_url: Option<String>,
    pub post_id: Option<String>,
    pub contact_email: Option<String>,
    pub captured: bool,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// An in-app notification and the e-mail that goes with it, written with the change they
/// report.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub account_id: String,
    pub text: String,
    pub link: String,
    pub email: Option<(String, String, String)>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: String,
    pub text: String,
    pub link: String,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrialBalanceLine {
    pub account: String,
    pub currency: String,
    pub balance: i64,
}
