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
    /// A paid digital line's download link; filled when the order is read, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Download>,
}

/// Where to download a paid digital line, until when and how many more times.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Download {
    pub url: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: String,
    pub downloads_left: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ShippingChoice {
    pub id: String,
    pub name: String,
    pub price: i64,
}

/// The catalogue a purchase priced itself from, as versions (`Merchant::version`,
/// `Product::version`): its merchant's and each of its products'. A purchase may read them
/// from a cache a second old; the write that reserves its stock checks they are current.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogSeen {
    pub merchant: (String, i64),
    pub products: Vec<(String, i64)>,
}

/// Why a purchase's stock was not reserved (and nothing but its vault audit rows written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReserved {
    /// This variant had not enough stock.
    Short(String),
    /// A version in its `CatalogSeen` is no longer current: it was priced from an old copy.
    Changed,
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
    pub status: CheckoutStatus,
    pub attempt: i64,
    pub order_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Opened from a hashtag cart: its order takes the items out of the cart.
    pub from_cart: bool,
    /// funnel (issue 15): with a `post_id`, the experiment arm the shopper was in when the
    /// checkout opened (`Buy` or `Holdout`); its order counts in that arm's funnel.
    pub arm: Option<crate::rollout::Arm>,
}

/// An open checkout as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Checkout {
    pub id: String,
    pub status: CheckoutStatus,
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

/// Where a checkout is: `open` (priced, waiting), `completing` (one request is paying it),
/// `completed` (it has its order) or `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStatus {
    Open,
    Completing,
    Completed,
    Expired,
}

impl CheckoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Completing => "completing",
            Self::Completed => "completed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "completing" => Self::Completing,
            "completed" => Self::Completed,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
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
    /// The authorised payment has been taken. A purchase is answered once its order is
    /// committed, before its capture: `false` there, `true` a few milliseconds later.
    pub captured: bool,
    /// The merchant has seen it.
    pub acknowledged: bool,
    /// Refunded so far, in minor units.
    pub refunded_amount: i64,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// An in-app notification and the e-mail that goes with it, written with the change they
/// report.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub account_id: String,
    /// The order it is about, if any: its e-mail is then found through the order.
    pub order_id: Option<String>,
    /// The in-app notice is the order itself (an order paid when it was placed): no
    /// notification row; the list shows the order as [`paid_notice`] words it.
    pub in_order: bool,
    pub text: String,
    pub link: String,
    pub email: Option<(String, String, String)>,
}

/// The in-app notice of an order paid: the words a receipt row would hold, and the ones
/// the notification list gives an order that is its own receipt.
pub fn paid_notice(order_id: &str, total: crate::types::Money) -> String {
    format!("Order {order_id} paid: {}", total.display())
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

/// An event for the outbox, written in the transaction of the change it describes.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub merchant_id: String,
    pub kind: String,
    /// The whole webhook body: `{"type", "timestamp", "data"}`.
    pub payload: String,
    pub created_at: i64,
    /// The shopper whose order or cart it reports: erasing them rewrites the payload.
    pub account_id: Option<String>,
    /// The order it reports, if any: an erasure finds the event through the order.
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The webhook body as delivered.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A delivery the worker has claimed.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery_id: String,
    pub event_id: String,
    pub merchant_id: String,
    pub url: String,
    pub payload: String,
    pub secret: String,
    /// The previous secret, while it still signs beside the new one.
    pub old_secret: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: i64,
    pub url: String,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The start of the response body.
    pub excerpt: String,
    pub error: Option<String>,
}

/// Where a webhook delivery is: `pending` (due or being sent), `delivered`, `failed` (gave
/// up after about three days) or `disabled` (the endpoint answered 410).
/// Where a stock reservation stands: holding units for a checkout, given back, or turned
/// into the order's sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    Held,
    Released,
    Consumed,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Released => "released",
            Self::Consumed => "consumed",
        }
    }
}

/// Where a refund stands with the processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    Disabled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "disabled" => Self::Disabled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: i64,
    #[serde(serialize_with = "crate::model::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at this time.
    Retry {
        at: i64,
    },
    /// Gave up: the retry schedule is spent.
    Failed,
    /// The endpoint answered 410 Gone: stop sending to it.
    Disabled,
}

/// A refund as recorded before and after the processor moves the money.
#[derive(Debug, Clone)]
pub struct RefundRecord {
    pub id: String,
    pub order_id: String,
    pub amount: i64,
    pub fee_back: i64,
    pub reason: Option<String>,
    /// A cancellation: the whole amount, and the stock goes back.
    pub cancel: bool,
    pub created_at: i64,
}
