//! Gift codes as text (DESIGN.md §3): generating them, reading them back in their
//! one canonical form, and the keyed digest and display hint that are all the
//! database ever holds of them.
//!
//! A generated code is `[PREFIX-]XXXX-XXXX-XXXX`: 12 symbols of the Crockford
//! alphabet drawn from 60 random bits. The canonical form upper-cases, drops
//! spaces and hyphens, and reads O as 0 and I, L as 1, so that a code read aloud
//! or retyped still matches.

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;

pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a generated code, 5 bits each.
pub const SYMBOLS: usize = 12;
const MIN_CANONICAL: usize = 4;
const MAX_CANONICAL: usize = 32;

/// A code's text held inline. Every code is ASCII and at most
/// [`CodeText::MAX`] bytes (a custom code; a generated one with the longest
/// prefix is 25), so a million codes need no allocation each: allocations
/// made on the drawing threads stayed in their arenas after the group was
/// created (BENCHMARKS.md, memory).
#[derive(Clone, Copy)]
pub struct CodeText {
    len: u8,
    bytes: [u8; CodeText::MAX],
}

impl CodeText {
    pub const MAX: usize = 32;

    /// `None` if `code` is longer than [`CodeText::MAX`] bytes.
    pub fn new(code: &str) -> Option<Self> {
        let len = code.len();
        let mut bytes = [0; Self::MAX];
        bytes.get_mut(..len)?.copy_from_slice(code.as_bytes());
        Some(Self {
            len: len as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// The full codes of a new group, shown to the admin once, in one buffer: a
/// million codes as a million `String`s cost three times the memory and a
/// million allocations.
#[derive(Debug, Default)]
pub struct Displays {
    buf: String,
    ends: Vec<u32>,
}

impl Displays {
    pub fn with_capacity(codes: usize, width: usize) -> Self {
        Self {
            buf: String::with_capacity(codes.saturating_mul(width)),
            ends: Vec::with_capacity(codes),
        }
    }

    pub fn push(&mut self, code: &str) {
        self.buf.push_str(code);
        // Bounded: a million codes of at most a few dozen bytes.
        self.ends
            .push(u32::try_from(self.buf.len()).unwrap_or(u32::MAX));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The codes in order, giving the buffer up: each is copied out as it
    /// is taken (a reply frame's worth at a time).
    pub fn into_codes(self) -> impl Iterator<Item = String> + Send {
        let Displays { buf, ends } = self;
        let mut start = 0;
        ends.into_iter().map(move |end| {
            let code = buf.get(start..end as usize).unwrap_or_default().to_owned();
            start = end as usize;
            code
        })
    }

    /// The codes in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| self.buf.get(a as usize..b as usize).unwrap_or_default())
    }
}

/// The canonical form of a code as typed, or `None` if it cannot be a code.
pub fn canonicalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c.to_ascii_uppercase() {
            ' ' | '-' => {}
            'O' => out.push('0'),
            'I' | 'L' => out.push('1'),
            c @ ('A'..='Z' | '0'..='9') => out.push(c),
            _ => return None,
        }
        if out.len() > MAX_CANONICAL {
            return None;
        }
    }
    (out.len() >= MIN_CANONICAL).then_some(out)
}

/// Draws one code: `PREFIX-XXXX-XXXX-XXXX` (or without the prefix).
pub fn generate(rng: &mut impl Rng, prefix: Option<&str>) -> String {
    let mut bits = rng.next_u64();
    let mut out = String::with_capacity(26);
    if let Some(p) = prefix {
        out.push_str(p);
        out.push('-');
    }
    for i in 0..SYMBOLS {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(ALPHABET[(bits & 31) as usize] as char);
        bits >>= 5;
    }
    out
}

/// The hint shown instead of a code: its prefix and its last four symbols, the
/// rest masked, e.g. `GIFT-****-****-7KQ2`. Hyphens stay where they are.
pub fn hint(display: &str, prefix: Option<&str>) -> String {
    let (head, body) = match prefix {
        Some(p) if display.len() > p.len() && display.starts_with(p) => display.split_at(p.len()),
        _ => ("", display),
    };
    let visible = body.chars().filter(|c| *c != '-').count().saturating_sub(4);
    let mut seen = 0;
    let masked: String = body
        .chars()
        .map(|c| {
            if c == '-' {
                return c;
            }
            seen += 1;
            if seen <= visible { '*' } else { c }
        })
        .collect();
    format!("{head}{masked}")
}

/// A custom code as an admin typed it, upper-cased, if it is 4–32 of A–Z, 0–9
/// and `-` with at least four symbols.
pub fn custom_display(input: &str) -> Option<String> {
    let code = input.trim().to_ascii_uppercase();
    let ok = (4..=32).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && code.chars().filter(|c| *c != '-').count() >= MIN_CANONICAL;
    ok.then_some(code)
}

/// A prefix as an admin typed it, upper-cased, if it is 1–10 of A–Z and 0–9.
pub fn prefix_display(input: &str) -> Option<String> {
    let p = input.trim().to_ascii_uppercase();
    ((1..=10).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric())).then_some(p)
}

/// The secret key under which codes are digested. Cloning the prepared MAC
/// state per code avoids re-hashing the key a million times.
#[derive(Clone)]
pub struct CodeKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(..)")
    }
}

impl CodeKey {
    pub const MIN_BYTES: usize = 32;

    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::MIN_BYTES {
            return None;
        }
        Hmac::<Sha256>::new_from_slice(bytes)
            .ok()
            .map(|mac| Self { mac })
    }

    /// The digest stored for a canonical code.
    pub fn digest(&self, canonical: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(canonical.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fingerprint of the key, kept in the database so that starting with
    /// another key (which would make every code unredeemable) is refused.
    pub fn fingerprint(&self) -> String {
        to_hex(&self.digest("giftcode-svc key fingerprint v1")[..16])
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};
    use std::collections::HashSet;

    #[test]
    fn generated_codes_have_the_contract_format() {
        let mut rng = rand::rng();
        for prefix in [None, Some("GIFT"), Some("A1B2C3D4E5")] {
            for _ in 0..1000 {
                let code = generate(&mut rng, prefix);
                let body = match prefix {
                    Some(p) => code.strip_prefix(&format!("{p}-")).expect("prefix"),
                    None => code.as_str(),
                };
                let groups: Vec<&str> = body.split('-').collect();
                assert_eq!(groups.len(), 3, "{code}");
                for g in groups {
                    assert_eq!(g.len(), 4, "{code}");
                    assert!(g.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
                }
                assert!(canonicalize(&code).is_some(), "{code} reads back");
            }
        }
    }

    #[test]
    fn all_symbols_appear_and_no_excluded_letter_does() {
        let mut rng = rand::rng();
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            seen.extend(generate(&mut rng, None).bytes().filter(|b| *b != b'-'));
        }
        assert_eq!(seen.len(), 32, "every Crockford symbol is drawn");
        for excluded in [b'I', b'L', b'O', b'U'] {
            assert!(!seen.contains(&excluded));
        }
    }

    #[test]
    fn canonical_matching_forgives_case_spacing_and_lookalikes() {
        let canon = canonicalize("GIFT-0A1B-2C3D-4E5F").expect("valid");
        for typed in [
            "gift-0a1b-2c3d-4e5f",
            "GIFT 0A1B 2C3D 4E5F",
            "GiFT0A1B2C3D4E5F",
            "G1FT-OA1B-2C3D-4E5F",
            "GLFT-oaib-2c3d-4e5f",
            "  gift - 0a1b - 2c3d - 4e5f ",
        ] {
            assert_eq!(
                canonicalize(typed).as_deref(),
                Some(canon.as_str()),
                "{typed}"
            );
        }
        assert_eq!(canon, "G1FT0A1B2C3D4E5F");
    }

    #[test]
    fn malformed_codes_are_refused() {
        for typed in [
            "",
            "abc",
            "---",
            "GIFT_1234",
            "GIFT€1234",
            &"A".repeat(33),
            "ab c",
        ] {
            assert_eq!(canonicalize(typed), None, "{typed:?}");
        }
    }

    #[test]
    fn a_large_batch_is_unique() {
        let mut rng = rand::rng();
        let n = 200_000;
        let canon: HashSet<String> = (0..n)
            .map(|_| canonicalize(&generate(&mut rng, Some("X"))).expect("valid"))
            .collect();
        assert_eq!(canon.len(), n, "60 random bits do not repeat in 200k draws");
    }

    #[test]
    fn hints_show_prefix_and_last_four() {
        assert_eq!(
            hint("GIFT-AB12-CD34-7KQ2", Some("GIFT")),
            "GIFT-****-****-7KQ2"
        );
        assert_eq!(hint("AB12-CD34-7KQ2", None), "****-****-7KQ2");
        assert_eq!(hint("SUMMER-2026", None), "******-2026");
        assert_eq!(hint("ABCD", None), "ABCD");
    }

    #[test]
    fn digests_are_keyed_and_deterministic() {
        let a = CodeKey::new(&[7u8; 32]).expect("key");
        let b = CodeKey::new(&[8u8; 32]).expect("key");
        assert_eq!(a.digest("ABCD1234"), a.digest("ABCD1234"));
        assert_ne!(a.digest("ABCD1234"), a.digest("ABCD1235"));
        assert_ne!(a.digest("ABCD1234"), b.digest("ABCD1234"));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(CodeKey::new(&[1u8; 16]).is_none(), "short keys are refused");
    }

    #[test]
    fn seeded_generation_repeats_which_tests_rely_on() {
        let mut r1 = StdRng::seed_from_u64(42);
        let mut r2 = StdRng::seed_from_u64(42);
        assert_eq!(generate(&mut r1, None), generate(&mut r2, None));
    }

    #[test]
    fn custom_codes_and_prefixes_are_validated() {
        assert_eq!(
            custom_display("summer-2026").as_deref(),
            Some("SUMMER-2026")
        );
        assert_eq!(custom_display("abc"), None);
        assert_eq!(custom_display("----a"), None);
        assert_eq!(custom_display("HAS SPACE"), None);
        assert_eq!(custom_display(&"A".repeat(33)), None);
        assert_eq!(prefix_display("gift").as_deref(), Some("GIFT"));
        assert_eq!(prefix_display(""), None);
        assert_eq!(prefix_display("TOO-LONG"), None);
        assert_eq!(prefix_display("ABCDEFGHIJK"), None);
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 254, 255])),
            Some(vec![0, 1, 254, 255])
        );
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn code_text_holds_every_code_and_refuses_longer() {
        let longest = "ABCDEFGHJK-0123-4567-89AB";
        assert_eq!(
            CodeText::new(longest).map(|t| t.as_str().to_owned()),
            Some(longest.to_owned())
        );
        let custom = "A".repeat(CodeText::MAX);
        assert_eq!(
            CodeText::new(&custom).map(|t| t.as_str().len()),
            Some(CodeText::MAX)
        );
        assert!(CodeText::new(&"A".repeat(CodeText::MAX + 1)).is_none());
    }

    #[test]
    fn displays_give_back_the_codes_in_order() {
        let mut d = Displays::with_capacity(3, 14);
        assert!(d.is_empty());
        for code in ["K7QX-4M9P-2ZHD", "SUMMER24", "GIFT-AAAA-BBBB-CCCC"] {
            d.push(code);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            ["K7QX-4M9P-2ZHD", "SUMMER24", "GIFT-AAAA-BBBB-CCCC"]
        );
        assert_eq!(
            d.into_codes().collect::<Vec<_>>(),
            ["K7QX-4M9P-2ZHD", "SUMMER24", "GIFT-AAAA-BBBB-CCCC"]
        );
    }
}
