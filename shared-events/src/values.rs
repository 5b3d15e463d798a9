//! Value types every service agrees on (DESIGN.md §3, §8): a phone number in
//! E.164, an amount in minor units, and a page of a list. Parsing one of these is
//! the only way to make one, so an invalid value never travels further.

use serde::{Deserialize, Serialize};

/// A user's identity: a valid phone number, held in E.164 (`+15551234567`).
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

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Phone {
    /// On the wire a phone is already E.164; anything else is refused.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let region = Region(phonenumber::country::Id::US);
        match Phone::parse(&s, region) {
            Ok(p) if p.0 == s => Ok(p),
            _ => Err(serde::de::Error::custom("phone must be E.164")),
        }
    }
}

/// An amount of money in minor units, 1 ..= 10^12 (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Amount(i64);

impl Amount {
    pub const MAX: i64 = 1_000_000_000_000;

    pub fn new(minor_units: i64) -> Option<Self> {
        (1..=Self::MAX)
            .contains(&minor_units)
            .then_some(Self(minor_units))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Amount::new(n).ok_or_else(|| serde::de::Error::custom("amount must be 1..=10^12"))
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

/// Page size bounds of DESIGN.md §8.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// A requested page size, defaulted and checked against 1..=500.
pub fn page_limit(limit: Option<u32>) -> Result<i64, crate::FieldError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(i64::from(n)),
        _ => Err(crate::FieldError::new("limit", "must be from 1 to 500")),
    }
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
    fn phone_deserializes_only_from_e164() {
        let ok: Phone = serde_json::from_str("\"+14155552671\"").expect("e164");
        assert_eq!(serde_json::to_string(&ok).expect("ser"), "\"+14155552671\"");
        assert!(serde_json::from_str::<Phone>("\"(415) 555-2671\"").is_err());
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
        assert_eq!(page_limit(None), Ok(50));
        assert_eq!(page_limit(Some(500)), Ok(500));
        assert!(page_limit(Some(0)).is_err() && page_limit(Some(501)).is_err());
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
}
