//! Checkout rules: shipping addresses, totals, tax and commission rounding, and the
//! double-entry postings of money movements. Pure functions, property-tested.

use crate::error::{Errors, FieldError};
use crate::types::{Country, Currency};
use serde::{Deserialize, Serialize};

/// A postal address as the shopper gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Address {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 120)]
    pub line1: String,
    #[serde(default)]
    #[schema(max_length = 120)]
    pub line2: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 80)]
    pub city: String,
    /// State, county or province; for the US the two-letter state code.
    #[serde(default)]
    #[schema(max_length = 80)]
    pub region: String,
    #[serde(default)]
    #[schema(max_length = 16)]
    pub postal_code: String,
    #[serde(default)]
    #[schema(value_type = crate::types::CountryCode)]
    pub country: String,
    #[serde(default)]
    #[schema(max_length = 30)]
    pub phone: Option<String>,
}

const US_STATES: &str = "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP AA AE AP";

fn us_zip(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    (b.len() == 5 && digits(b)) || (b.len() == 10 && digits(&b[..5]) && b[5] == b'-' && digits(&b[6..]))
}

/// A UK postcode (outward code, space, inward code), normalised to upper case.
fn gb_postcode(s: &str) -> Option<String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let i = inward.as_bytes();
    let inward_ok = i[0].is_ascii_digit() && i[1].is_ascii_alphabetic() && i[2].is_ascii_alphabetic();
    let o = outward.as_bytes();
    let letters = o.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let outward_ok = (1..=2).contains(&letters)
        && o.len() > letters
        && o[letters].is_ascii_digit()
        && o[letters + 1..].iter().all(|b| b.is_ascii_alphanumeric())
        && o.len() <= letters + 2;
    (inward_ok && outward_ok).then(|| format!("{outward} {inward}"))
}

fn line(e: &mut Errors, field: &str, s: &str, max: usize, required: bool) -> String {
    let s = s.trim();
    if required && s.is_empty() {
        e.push(field, "is required");
    } else if crate::limits::too_many_bytes_for(s, max) || s.chars().count() > max {
        e.push(field, format!("must be at most {max} characters"));
    } else if s.chars().any(char::is_control) {
        e.push(field, "must not contain control characters");
    }
    s.to_string()
}

impl Address {
    /// Checks and normalises an address; field names go under `prefix`. US addresses need a
    /// state code and ZIP; GB addresses a postcode.
    pub fn parse(prefix: &str, a: &Address, e: &mut Errors) -> Option<Address> {
        let before = e.0.len();
        let f = |n: &str| format!("{prefix}.{n}");
        let country = match Country::parse(&f("country"), &a.country) {
            Ok(c) => Some(c),
            Err(fe) => {
                e.0.push(fe);
                None
            }
        };
        let mut out = Address {
            name: line(e, &f("name"), &a.name, 100, true),
            line1: line(e, &f("line1"), &a.line1, 120, true),
            line2: a.line2.as_deref().map(|l| line(e, &f("line2"), l, 120, false)).filter(|l| !l.is_empty()),
            city: line(e, &f("city"), &a.city, 80, true),
            region: line(e, &f("region"), &a.region, 80, false),
            postal_code: line(e, &f("postal_code"), &a.postal_code, 16, false),
            country: country.map(|c| c.as_str().to_string()).unwrap_or_default(),
            phone: a.phone.as_deref().map(|p| line(e, &f("phone"), p, 30, false)).filter(|p| !p.is_empty()),
        };
        match country {
            Some(Country::US) => {
                out.region = out.region.to_uppercase();
                if !US_STATES.split(' ').any(|s| s == out.region) {
                    e.push(&f("region"), "must be a two-letter US state code such as CA or NY");
                }
                if !us_zip(&out.postal_code) {
                    e.push(&f("postal_code"), "must be a ZIP code such as 94103 or 94103-1234");
                }
            }
            Some(Country::GB) => match gb_postcode(&out.postal_code) {
                Some(p) => out.postal_code = p,
                None => e.push(&f("postal_code"), "must be a UK postcode such as SW1A 1AA"),
            },
            Some(_) if out.postal_code.is_empty() => e.push(&f("postal_code"), "is required"),
            _ => {}
        }
        if let Some(p) = &out.phone {
            if !p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
                e.push(&f("phone"), "may contain only digits, spaces and + - ( )");
            }
        }
        (e.0.len() == before).then_some(out)
    }
}

/// `n / d` rounded half to even (banker's rounding), for non-negative `n` and positive `d`.
pub fn div_half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
    }
}

/// `amount × bps / 10 000`, half to even.
pub fn basis_points(amount: i64, bps: u32) -> i64 {
    div_half_even(amount as i128 * bps as i128, 10_000) as i64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    pub subtotal: i64,
    pub shipping: i64,
    pub tax: i64,
    pub total: i64,
    pub currency: Currency,
}

impl Totals {
    /// Tax applies to goods and shipping at the merchant's rate for the destination.
    pub fn compute(subtotal: i64, shipping: i64, tax_bps: u32, currency: Currency) -> Totals {
        let tax = basis_points(subtotal + shipping, tax_bps);
        Totals { subtotal, shipping, tax, total: subtotal + shipping + tax, currency }
    }
}

pub use crate::fees::platform_fee;

/// One leg of a ledger transaction; debits positive, credits negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Posting {
    pub account: String,
    pub amount: i64,
}

/// A captured order's ledger transaction, to be recorded with its capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRecord {
    pub order_id: String,
    pub currency: String,
    pub postings: Vec<Posting>,
}

pub const RECEIVABLE: &str = "processor_receivable";
pub const REVENUE: &str = "platform_revenue";

pub fn payable(merchant_id: &str) -> String {
    format!("merchant_payable:{merchant_id}")
}

/// A capture: the processor owes the total; the merchant is owed the total less the fee;
/// the platform earns the fee. Balanced by construction.
pub fn capture_postings(merchant_id: &str, total: i64, fee: i64) -> Vec<Posting> {
    vec![
        Posting { account: RECEIVABLE.into(), amount: total },
        Posting { account: payable(merchant_id), amount: -(total - fee) },
        Posting { account: REVENUE.into(), amount: -fee },
    ]
}

/// A refund of `amount`, of which `fee_back` is the platform's fee returned: the processor
/// gives the money back, the merchant and the platform each carry their share.
pub fn refund_postings(merchant_id: &str, amount: i64, fee_back: i64) -> Vec<Posting> {
    vec![
        Posting { account: RECEIVABLE.into(), amount: -amount },
        Posting { account: payable(merchant_id), amount: amount - fee_back },
        Posting { account: REVENUE.into(), amount: fee_back },
    ]
}

/// The ledger account that stands for a merchant's bank: payouts move money there.
pub fn merchant_bank(merchant_id: &str) -> String {
    format!("merchant_bank:{merchant_id}")
}

/// A payout of `amount`: the merchant's payable account is debited (it is owed that much
/// less), its bank account credited. Balanced by construction.
pub fn payout_postings(merchant_id: &str, amount: i64) -> Vec<Posting> {
    vec![
        Posting { account: payable(merchant_id), amount },
        Posting { account: merchant_bank(merchant_id), amount: -amount },
    ]
}

pub fn quantity(field: &str, q: i64) -> Result<i64, FieldError> {
    if (1..=99).contains(&q) {
        Ok(q)
    } else {
        Err(FieldError::new(field, "must be between 1 and 99"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(country: &str, region: &str, postal: &str) -> Address {
        Address {
            name: "Ada".into(),
            line1: "1 Main St".into(),
            city: "Town".into(),
            region: region.into(),
            postal_code: postal.into(),
            country: country.into(),
            ..Default::default()
        }
    }

    #[test]
    fn us_and_gb_addresses() {
        let mut e = Errors::default();
        assert!(Address::parse("a", &addr("US", "ca", "94103"), &mut e).is_some());
        assert!(Address::parse("a", &addr("US", "NY", "10001-1234"), &mut e).is_some());
        let gb = Address::parse("a", &addr("GB", "", "sw1a1aa"), &mut e).unwrap();
        assert_eq!(gb.postal_code, "SW1A 1AA");
        assert!(Address::parse("a", &addr("GB", "", "M1 1AE"), &mut e).is_some());
        assert!(e.0.is_empty(), "{:?}", e.0);
        let mut e = Errors::default();
        assert!(Address::parse("a", &addr("US", "ZZ", "9410"), &mut e).is_none());
        let f: Vec<_> = e.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(f, ["a.region", "a.postal_code"]);
        let mut e = Errors::default();
        assert!(Address::parse("a", &addr("GB", "", "12345"), &mut e).is_none());
        assert!(Address::parse("a", &addr("XX", "", "1"), &mut e).is_none());
    }

    #[test]
    fn half_even() {
        assert_eq!(div_half_even(5, 10), 0);
        assert_eq!(div_half_even(15, 10), 2);
        assert_eq!(div_half_even(25, 10), 2);
        assert_eq!(div_half_even(26, 10), 3);
        // 5 % of 2510 = 125.5 → 126 (even); of 2530 = 126.5 → 126.
        assert_eq!(basis_points(2510, 500), 126);
        assert_eq!(basis_points(2530, 500), 126);
        assert_eq!(basis_points(2500, 0), 0);
    }

    proptest! {
        #[test]
        fn totals_reproduce_from_parts(sub in 0i64..1_000_000_000, ship in 0i64..100_000, bps in 0u32..=10_000) {
            let t = Totals::compute(sub, ship, bps, Currency::Usd);
            prop_assert_eq!(t.total, t.subtotal + t.shipping + t.tax);
            prop_assert!(t.tax >= 0 && t.tax <= sub + ship);
        }

        #[test]
        fn ledger_balances_and_merchant_balance_is_orders_less_fees(
            orders in proptest::collection::vec((0usize..3, 1i64..10_000_000, 0u32..=10_000), 0..50)
        ) {
            let merchants = ["mer_a", "mer_b", "mer_c"];
            let mut sum = 0i64;
            let mut balances = [0i64; 3];
            let mut expected = [0i64; 3];
            for (m, total, bps) in orders {
                let fee = platform_fee(total, bps);
                prop_assert!(fee <= total);
                for p in capture_postings(merchants[m], total, fee) {
                    sum += p.amount;
                    if p.account == payable(merchants[m]) {
                        balances[m] -= p.amount;
                    }
                }
                expected[m] += total - fee;
            }
            prop_assert_eq!(sum, 0);
            prop_assert_eq!(balances, expected);
        }
    }
}
