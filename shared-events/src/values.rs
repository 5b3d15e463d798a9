//! Value types every service agrees on (DESIGN.md §3, §8): a phone number in
//! E.164, an amount in minor units, a currency, a page size, an idempotency
//! key and a page of a list. Parsing one of these is the only way to make one,
//! and deserializing one parses it, so an invalid value stops at the first
//! boundary it meets and never travels further.
//!
//! A value whose refusal has its own word in §9 (a bad phone is
//! `invalid_phone`) says so in its serde error: the message starts with the
//! word and a colon, and [`crate::ErrorCode::in_message`] reads it back.

use serde::{Deserialize, Serialize};

/// A user's identity: a valid phone number, held in E.164 (`+15551234567`).
/// On the wire (NATS requests, replies and events) a phone is always E.164;
/// reading national formats is the HTTP edge's job ([`Phone::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneError {
    /// The default region is not an ISO 3166 alpha-2 code known to the library.
    UnknownRegion(String),
    /// The input is not a valid phone number.
    Invalid,
}

impl std::fmt::Display for PhoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownRegion(r) => write!(f, "unknown region {r:?}"),
            Self::Invalid => f.write_str("not a valid phone number"),
        }
    }
}

impl std::error::Error for PhoneError {}

/// A region (ISO 3166 alpha-2) for reading national-format numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(phonenumber::country::Id);

impl std::str::FromStr for Region {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .to_ascii_uppercase()
            .parse()
            .map(Region)
            .map_err(|_| PhoneError::UnknownRegion(s.to_owned()))
    }
}

impl Phone {
    /// The pattern of an E.164 number, as the OpenAPI document states it.
    pub const E164_PATTERN: &'static str = r"^\+[1-9][0-9]{3,16}$";

    /// Reads a phone number written in E.164 or in `region`'s national format,
    /// with optional spaces, dashes, dots and parentheses. Letters, extensions and
    /// anything that is not a valid number are refused.
    pub fn parse(input: &str, region: Region) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let allowed = |c: char| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.');
        let digits = body.chars().filter(char::is_ascii_digit).count();
        if trimmed.is_empty() || !body.chars().all(allowed) || !(4..=17).contains(&digits) {
            return Err(PhoneError::Invalid);
        }
        let number =
            phonenumber::parse(Some(region.0), trimmed).map_err(|_| PhoneError::Invalid)?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid);
        }
        Ok(Phone(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// A phone in E.164, as the wire and the databases carry it: anything
    /// else is refused. This checks the form (a `+`, a country calling code
    /// the numbering plan knows, 4 to 17 digits in all), not the numbering
    /// plan itself: every phone on the bus either came through the HTTP
    /// edge's full check ([`Phone::parse`]) or from an operator, and running
    /// the plan's patterns again in every service that decodes it was a
    /// tenth of a redeem's CPU (BENCHMARKS.md).
    pub fn from_e164(s: &str) -> Result<Self, PhoneError> {
        let digits = s.strip_prefix('+').ok_or(PhoneError::Invalid)?;
        let well_formed = (4..=17).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !well_formed {
            return Err(PhoneError::Invalid);
        }
        let known = (1..=3).any(|n| {
            digits[..n]
                .parse::<u16>()
                .is_ok_and(|code| phonenumber::metadata::DATABASE.region(&code).is_some())
        });
        if !known {
            return Err(PhoneError::Invalid);
        }
        Ok(Phone(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Loads the phone-number metadata (a lazily built table the first
    /// parse would otherwise wait for): a service calls it at start-up,
    /// before it says it is ready.
    pub fn warm() {
        let _ = Phone::parse("+14155552671", Region(phonenumber::country::Id::US));
    }

    /// The last four digits, the rest masked (`•••• 2671`): how the console
    /// and the logs show a phone.
    pub fn masked(&self) -> String {
        let tail: String = self
            .0
            .chars()
            .skip(self.0.len().saturating_sub(4))
            .collect();
        format!("•••• {tail}")
    }
}

impl PartialEq<&str> for Phone {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Phone {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl std::str::FromStr for Phone {
    type Err = PhoneError;
    /// E.164 only: how a phone is stored and sent.
    fn from_str(s: &str) -> Result<Self, PhoneError> {
        Phone::from_e164(s)
    }
}

impl std::fmt::Display for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Phone::from_e164(&s).map_err(|_| {
            serde::de::Error::custom("invalid_phone: a phone here is E.164, like +14155552671")
        })
    }
}

/// An amount of money in minor units, 1 ..= 10^12 (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Amount(i64);

impl Amount {
    pub const MAX: i64 = 1_000_000_000_000;
    pub const RULE: &'static str = "must be an integer number of minor units from 1 to 10^12";

    pub fn new(minor_units: i64) -> Option<Self> {
        (1..=Self::MAX)
            .contains(&minor_units)
            .then_some(Self(minor_units))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl PartialEq<i64> for Amount {
    fn eq(&self, other: &i64) -> bool {
        self.0 == *other
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Amount::new(n).ok_or_else(|| serde::de::Error::custom(Amount::RULE))
    }
}

/// The platform currency (ISO 4217, three capital letters; `CURRENCY`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Currency {
    type Err = String;
    /// Configuration is forgiving about case and spaces; the wire is not.
    fn from_str(s: &str) -> Result<Self, String> {
        let c = s.trim().to_ascii_uppercase();
        if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(c))
        } else {
            Err(format!("{s:?} is not a three-letter currency code"))
        }
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Currency {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Currency {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.parse::<Currency>() {
            Ok(c) if c.0 == s => Ok(c),
            _ => Err(serde::de::Error::custom(
                "must be a three-letter currency code like USD",
            )),
        }
    }
}

/// A page size: 1 ..= 500, 50 when not given (DESIGN.md §8). Both services
/// and the gateway read `limit` through this one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: u32 = 50;
    pub const MAX: u32 = 500;

    pub fn new(n: u32) -> Option<Self> {
        (1..=Self::MAX).contains(&n).then_some(Self(n))
    }

    /// The size asked for, or the default.
    pub fn or_default(limit: Option<Limit>) -> i64 {
        i64::from(limit.map_or(Self::DEFAULT, |l| l.0))
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u32::try_from(n)
            .ok()
            .and_then(Limit::new)
            .ok_or_else(|| serde::de::Error::custom("must be from 1 to 500"))
    }
}

/// An admin credit's or debit's `Idempotency-Key`: 1 to 200 characters,
/// without surrounding spaces. Keys are permanent (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX: usize = 200;
    pub const RULE: &'static str = "must be 1 to 200 characters";

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (!s.is_empty() && s.chars().count() <= Self::MAX).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IdempotencyKey::parse(&s).ok_or_else(|| serde::de::Error::custom(IdempotencyKey::RULE))
    }
}

/// A page of a list: `{items, next_cursor}` (DESIGN.md §8). `next_cursor` is
/// opaque to clients and absent on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from a query that fetched `limit + 1` rows: the extra row
    /// only says there is more, and the last kept item's key is the cursor.
    pub fn from_overfetch(mut items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let more = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = if more { items.last().map(key) } else { None };
        Page { items, next_cursor }
    }
}

#[cfg(feature = "openapi")]
mod schemas {
    //! The values' constraints, stated in the OpenAPI document.
    use std::borrow::Cow;

    use utoipa::openapi::{
        KnownFormat, ObjectBuilder, RefOr, SchemaFormat,
        schema::{Schema, Type},
    };

    fn string() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(Type::String)
    }

    macro_rules! schema {
        ($t:ty, $name:literal, $schema:expr) => {
            impl utoipa::PartialSchema for $t {
                fn schema() -> RefOr<Schema> {
                    $schema.into()
                }
            }
            impl utoipa::ToSchema for $t {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed($name)
                }
            }
        };
    }

    schema!(
        super::Phone,
        "Phone",
        string()
            .pattern(Some(super::Phone::E164_PATTERN))
            .description(Some("A phone number in E.164"))
            .examples(["+14155552671"])
    );
    schema!(
        super::Amount,
        "Amount",
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(super::Amount::MAX))
            .description(Some("Minor units (cents)"))
            .examples([500])
    );
    schema!(
        super::Currency,
        "Currency",
        string().pattern(Some("^[A-Z]{3}$")).examples(["USD"])
    );
    schema!(
        super::Limit,
        "Limit",
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(super::Limit::MAX))
            .default(Some(super::Limit::DEFAULT.into()))
    );
    schema!(
        super::IdempotencyKey,
        "IdempotencyKey",
        string()
            .min_length(Some(1))
            .max_length(Some(super::IdempotencyKey::MAX))
            .pattern(Some(r"^\S(.*\S)?$"))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Region {
        "US".parse().expect("US is a region")
    }

    #[test]
    fn phones_normalize_to_e164() {
        for input in [
            "+1 415 555 2671",
            "(415) 555-2671",
            "415.555.2671",
            "4155552671",
            " +14155552671 ",
            "1-415-555-2671",
        ] {
            let phone = Phone::parse(input, us()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(phone.as_str(), "+14155552671", "{input}");
        }
        let gb: Region = "gb".parse().expect("GB");
        assert_eq!(
            Phone::parse("020 7946 0018", gb)
                .expect("UK national")
                .as_str(),
            "+442079460018"
        );
        assert_eq!(
            Phone::parse("4155552671", us()).expect("ok").masked(),
            "•••• 2671"
        );
    }

    #[test]
    fn bad_phones_are_refused() {
        for input in [
            "",
            "abc",
            "1-800-FLOWERS",
            "+1 415 555 2671 ext 5",
            "12",
            "+999 123",
            "555-0000",
            "4155552671;drop",
        ] {
            assert_eq!(
                Phone::parse(input, us()),
                Err(PhoneError::Invalid),
                "{input}"
            );
        }
        assert!("XX".parse::<Region>().is_err());
    }

    #[test]
    fn phone_deserializes_only_from_e164_with_its_word() {
        let ok: Phone = serde_json::from_str("\"+14155552671\"").expect("e164");
        assert_eq!(serde_json::to_string(&ok).expect("ser"), "\"+14155552671\"");
        let err = serde_json::from_str::<Phone>("\"(415) 555-2671\"").expect_err("national");
        assert_eq!(
            crate::ErrorCode::in_message(&err.to_string()).map(|(c, _)| c),
            Some(crate::ErrorCode::InvalidPhone)
        );
    }

    #[test]
    fn the_wire_form_is_e164_with_a_known_country_code() {
        for ok in ["+14155552671", "+442079460018", "+8613800138000"] {
            assert_eq!(
                Phone::from_e164(ok).map(Phone::into_string),
                Ok(ok.to_owned())
            );
        }
        for bad in [
            "14155552671",
            "+0415555267",
            "+1 415 555 2671",
            "+141",
            "+123456789012345678",
            "+999123456",
            "+1415555267a",
        ] {
            assert_eq!(Phone::from_e164(bad), Err(PhoneError::Invalid), "{bad}");
        }
        // What the edge reads, the wire accepts.
        let edge = Phone::parse("(415) 555-2671", us()).expect("edge");
        assert_eq!(Phone::from_e164(edge.as_str()), Ok(edge));
    }

    #[test]
    fn pages_cut_the_overfetch() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(
            (page.items, page.next_cursor),
            (vec![1, 2], Some("2".into()))
        );
        let last = Page::from_overfetch(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((last.items, last.next_cursor), (vec![1, 2], None));
    }

    #[test]
    fn limits_are_bounded_and_default_to_50() {
        assert_eq!(Limit::or_default(None), 50);
        assert_eq!(serde_json::from_str::<Limit>("500").ok(), Limit::new(500));
        for bad in ["0", "501", "-1", "\"ten\""] {
            assert!(serde_json::from_str::<Limit>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_are_bounded() {
        assert!(Amount::new(0).is_none());
        assert!(Amount::new(-5).is_none());
        assert!(Amount::new(Amount::MAX + 1).is_none());
        assert_eq!(Amount::new(Amount::MAX).map(Amount::get), Some(Amount::MAX));
        assert!(serde_json::from_str::<Amount>("0").is_err());
        assert_eq!(serde_json::from_str::<Amount>("25").ok(), Amount::new(25));
    }

    #[test]
    fn currencies_and_keys_are_checked() {
        assert_eq!(" usd ".parse::<Currency>().map(|c| c.0), Ok("USD".into()));
        assert!("US".parse::<Currency>().is_err());
        assert!(serde_json::from_str::<Currency>("\"usd\"").is_err());
        let c: Currency = serde_json::from_str("\"EUR\"").expect("EUR");
        assert_eq!(c.as_str(), "EUR");
        assert_eq!(
            IdempotencyKey::parse(" k1 ").map(|k| k.0),
            Some("k1".into())
        );
        assert!(IdempotencyKey::parse("  ").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(201)).is_none());
        assert!(serde_json::from_str::<IdempotencyKey>("\"\"").is_err());
    }
}
