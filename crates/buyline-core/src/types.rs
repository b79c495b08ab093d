//! Domain values that parse instead of validate: once built they are known good.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;

fn err(field: &str, message: &str) -> FieldError {
    FieldError::new(field, message)
}

/// An account handle: 1–15 ASCII letters, digits or underscores (Twitter's rule), unique
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Handle(String);

impl Handle {
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let s = s.trim().trim_start_matches('@');
        if s.is_empty() {
            return Err(err(field, "is required"));
        }
        if s.len() > 15 {
            return Err(err(field, "must be at most 15 characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(err(field, "may contain only letters, digits and underscores"));
        }
        Ok(Handle(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness and look-ups use.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// An e-mail address: one `@`, a non-empty local part, a dotted domain, no spaces, ≤ 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(err(field, "is required"));
        }
        let bad = || err(field, "must be an e-mail address like name@example.com");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.contains('@')
            || local.len() > 64
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || !domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        {
            return Err(bad());
        }
        Ok(Email(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A password as typed: 8 to 128 characters. It is hashed at once and never stored or logged.
pub struct Password(String);

impl Password {
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let n = s.chars().count();
        if n < 8 {
            return Err(err(field, "must be at least 8 characters"));
        }
        if n > 128 {
            return Err(err(field, "must be at most 128 characters"));
        }
        Ok(Password(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A display name: 1–50 characters, no control characters; defaults to the handle.
pub fn parse_display_name(field: &str, s: Option<&str>, handle: &Handle) -> Result<String, FieldError> {
    match s.map(str::trim) {
        None | Some("") => Ok(handle.as_str().to_string()),
        Some(s) if s.chars().count() > 50 => Err(err(field, "must be at most 50 characters")),
        Some(s) if s.chars().any(char::is_control) => Err(err(field, "must not contain control characters")),
        Some(s) => Ok(s.to_string()),
    }
}

/// ISO 3166-1 alpha-2 codes currently assigned.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub struct Country([u8; 2]);

/// The OpenAPI schema of a country field: the codes [`Country::parse`] accepts, as an enum,
/// so a client (or a fuzzer) can tell a valid value from an invalid one.
pub struct CountryCode;

impl utoipa::PartialSchema for CountryCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("ISO 3166-1 alpha-2 country code"))
            .enum_values(Some(COUNTRIES.split(' ')))
            .into()
    }
}

impl utoipa::ToSchema for CountryCode {}

impl Country {
    pub const US: Country = Country(*b"US");
    pub const GB: Country = Country(*b"GB");

    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let s = s.trim().to_ascii_uppercase();
        if s.len() == 2 && COUNTRIES.split(' ').any(|c| c == s) {
            let b = s.as_bytes();
            Ok(Country([b[0], b[1]]))
        } else {
            Err(err(field, "must be an ISO 3166 two-letter country code such as US or GB"))
        }
    }

    pub fn as_str(&self) -> &str {
        // Always two ASCII upper-case letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The currency a merchant in this country sells in; `None` where Buyline has no market.
    pub fn merchant_currency(self) -> Option<Currency> {
        match &self.0 {
            b"US" => Some(Currency::Usd),
            b"GB" => Some(Currency::Gbp),
            _ => None,
        }
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Country::parse("country", &s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// ISO 4217 currencies Buyline sells in. Both have two minor-unit digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    Usd,
    Gbp,
}

impl Currency {
    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Gbp => "GBP",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "USD" => Some(Currency::Usd),
            "GBP" => Some(Currency::Gbp),
            _ => None,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Currency::Usd => "$",
            Currency::Gbp => "£",
        }
    }
}

/// An amount in integer minor units of a currency (`2500` USD = $25.00). Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Money { amount, currency }
    }

    /// Parses a price given in minor units: a non-negative integer below 10^10 (100 million
    /// in major units), which keeps every sum far from overflow.
    pub fn parse_minor(field: &str, amount: i64, currency: Currency) -> Result<Self, FieldError> {
        if amount < 0 {
            return Err(err(field, "must not be negative"));
        }
        if amount >= 10_000_000_000 {
            return Err(err(field, "is too large"));
        }
        Ok(Money { amount, currency })
    }

    /// `$25.00`, `£3.50`, `-$1.05`.
    pub fn display(&self) -> String {
        let sign = if self.amount < 0 { "-" } else { "" };
        let a = self.amount.unsigned_abs();
        format!("{sign}{}{}.{:02}", self.currency.symbol(), a / 100, a % 100)
    }
}

/// What sort of seller a merchant is; decides the default commission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MerchantKind {
    Retailer,
    Brand,
    Artist,
    Nonprofit,
}

impl MerchantKind {
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        match s.trim() {
            "retailer" => Ok(Self::Retailer),
            "brand" => Ok(Self::Brand),
            "artist" => Ok(Self::Artist),
            "nonprofit" => Ok(Self::Nonprofit),
            _ => Err(err(field, "must be one of retailer, brand, artist, nonprofit")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retailer => "retailer",
            Self::Brand => "brand",
            Self::Artist => "artist",
            Self::Nonprofit => "nonprofit",
        }
    }
}

/// What a product is: shipped, downloaded, or a donation of the shopper's chosen amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProductKind {
    Physical,
    Digital,
    Donation,
}

impl ProductKind {
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        match s.trim() {
            "physical" => Ok(Self::Physical),
            "digital" => Ok(Self::Digital),
            "donation" => Ok(Self::Donation),
            _ => Err(err(field, "must be one of physical, digital, donation")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Physical => "physical",
            Self::Digital => "digital",
            Self::Donation => "donation",
        }
    }
}

/// Timestamps are stored as microseconds since the Unix epoch and shown as RFC 3339.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn handles() {
        assert_eq!(Handle::parse("h", "@Alice_1").unwrap().as_str(), "Alice_1");
        assert_eq!(Handle::parse("h", "Alice").unwrap().key(), "alice");
        assert!(Handle::parse("h", "").is_err());
        assert!(Handle::parse("h", "a-b").is_err());
        assert!(Handle::parse("h", "sixteen_chars_xx").is_err());
        assert!(Handle::parse("h", "ünï").is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse("e", "A@Example.COM").unwrap().as_str(), "A@example.com");
        for bad in ["", "a", "a@b", "@b.com", "a b@c.com", "a@.com", "a@b..com", "a@b.com."] {
            assert!(Email::parse("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn countries_and_currency() {
        assert_eq!(Country::parse("c", "us").unwrap(), Country::US);
        assert!(Country::parse("c", "XX").is_err());
        assert!(Country::parse("c", "USA").is_err());
        assert_eq!(Country::GB.merchant_currency(), Some(Currency::Gbp));
        assert_eq!(Country::parse("c", "FR").unwrap().merchant_currency(), None);
    }

    #[test]
    fn money_display() {
        assert_eq!(Money::new(2500, Currency::Usd).display(), "$25.00");
        assert_eq!(Money::new(5, Currency::Gbp).display(), "£0.05");
        assert_eq!(Money::new(-105, Currency::Usd).display(), "-$1.05");
    }

    #[test]
    fn password_debug_hides_value() {
        let p = Password::parse("p", "correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
        assert!(Password::parse("p", "short").is_err());
    }

    proptest! {
        #[test]
        fn money_display_round_trips(a in -9_999_999_999i64..10_000_000_000) {
            let s = Money::new(a, Currency::Usd).display();
            let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
            let back: i64 = digits.parse().unwrap();
            prop_assert_eq!(if a < 0 { -back } else { back }, a);
        }

        #[test]
        fn parsed_handles_are_ascii_and_short(s in ".{0,20}") {
            if let Ok(h) = Handle::parse("h", &s) {
                prop_assert!(h.as_str().len() <= 15 && h.as_str().is_ascii());
            }
        }
    }
}
