//! Order codes, shaped by the seller's SePay payment-code setting.
//!
//! SePay recognises a payment code as a prefix (case-insensitive, stored upper case)
//! followed by a suffix of `min..=max` characters, digits only or letters and digits.
//! The buyer types the code into the transfer text; banks may change its case and wrap it
//! in text of their own, so we look for it inside free text.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCharset {
    Digits,
    Alphanumeric,
}

impl CodeCharset {
    fn allows(self, c: u8) -> bool {
        match self {
            CodeCharset::Digits => c.is_ascii_digit(),
            CodeCharset::Alphanumeric => c.is_ascii_alphanumeric(),
        }
    }

    /// Characters we generate. For letters and digits we leave out 0/O and 1/I/L, which
    /// buyers mistype when they copy a code by hand; parsing still accepts all of them.
    fn generation_alphabet(self) -> &'static [u8] {
        match self {
            CodeCharset::Digits => b"0123456789",
            CodeCharset::Alphanumeric => b"23456789ABCDEFGHJKMNPQRSTUVWXYZ",
        }
    }
}

/// The payment-code pattern configured in SePay, mirrored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePattern {
    prefix: String,
    suffix_min: usize,
    suffix_max: usize,
    generated_len: usize,
    charset: CodeCharset,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodePatternError {
    #[error("the prefix must be 1 to 10 ASCII letters or digits and start with a letter")]
    Prefix,
    #[error("the suffix length must satisfy 1 <= min <= max <= 30 (SePay's limits)")]
    SuffixBounds,
    #[error("the generated suffix length must lie between the minimum and the maximum")]
    GeneratedLength,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OrderCodeError {
    #[error("order code is empty")]
    Empty,
    #[error("order code must start with {0:?}")]
    Prefix(String),
    #[error("order code suffix must be {min} to {max} characters")]
    Length { min: usize, max: usize },
    #[error("order code suffix may only hold {0}")]
    Charset(&'static str),
}

impl CodePattern {
    pub fn new(
        prefix: &str,
        suffix_min: usize,
        suffix_max: usize,
        generated_len: usize,
        charset: CodeCharset,
    ) -> Result<Self, CodePatternError> {
        let prefix = prefix.trim().to_ascii_uppercase();
        let prefix_ok = !prefix.is_empty()
            && prefix.len() <= 10
            && prefix.bytes().all(|c| c.is_ascii_alphanumeric())
            && prefix.as_bytes()[0].is_ascii_alphabetic();
        if !prefix_ok {
            return Err(CodePatternError::Prefix);
        }
        if !(1 <= suffix_min && suffix_min <= suffix_max && suffix_max <= 30) {
            return Err(CodePatternError::SuffixBounds);
        }
        if !(suffix_min..=suffix_max).contains(&generated_len) {
            return Err(CodePatternError::GeneratedLength);
        }
        Ok(CodePattern { prefix, suffix_min, suffix_max, generated_len, charset })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn charset(&self) -> CodeCharset {
        self.charset
    }

    /// payOS's integer `orderCode` for `code`: its suffix as a number, for a pattern of
    /// digits; `None` for letters, or a suffix too long for payOS (at most 15 digits, so the
    /// number is exact in JavaScript).
    pub fn payos_number(&self, code: &OrderCode) -> Option<i64> {
        let suffix = code.as_str().strip_prefix(&self.prefix)?;
        (self.charset == CodeCharset::Digits && suffix.len() <= 15).then(|| suffix.parse().ok()).flatten()
    }

    /// The order code payOS's `orderCode` stands for: the prefix and the number, zero-padded
    /// to the generated length (the inverse of [`CodePattern::payos_number`]).
    pub fn from_payos_number(&self, number: i64) -> Option<OrderCode> {
        if self.charset != CodeCharset::Digits || number < 0 {
            return None;
        }
        let code = format!("{}{:0width$}", self.prefix, number, width = self.generated_len);
        OrderCode::parse(&code, self).ok()
    }

    fn charset_name(&self) -> &'static str {
        match self.charset {
            CodeCharset::Digits => "digits",
            CodeCharset::Alphanumeric => "letters and digits",
        }
    }
}

/// An order code such as `CD48213907`: always upper case, always matching the pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderCode(String);

impl OrderCode {
    /// A fresh random code. Uniqueness is the database's job (UNIQUE on `orders.code`);
    /// callers retry on a collision.
    pub fn generate(pattern: &CodePattern) -> Self {
        let alphabet = pattern.charset.generation_alphabet();
        let mut code = String::with_capacity(pattern.prefix.len() + pattern.generated_len);
        code.push_str(&pattern.prefix);
        for _ in 0..pattern.generated_len {
            code.push(alphabet[rand::random_range(0..alphabet.len())] as char);
        }
        OrderCode(code)
    }

    /// Parses a whole string as a code, in any case, surrounding spaces ignored.
    pub fn parse(input: &str, pattern: &CodePattern) -> Result<Self, OrderCodeError> {
        let s = input.trim().to_ascii_uppercase();
        if s.is_empty() {
            return Err(OrderCodeError::Empty);
        }
        let Some(suffix) = s.strip_prefix(pattern.prefix.as_str()) else {
            return Err(OrderCodeError::Prefix(pattern.prefix.clone()));
        };
        if !suffix.bytes().all(|c| pattern.charset.allows(c)) {
            return Err(OrderCodeError::Charset(pattern.charset_name()));
        }
        if !(pattern.suffix_min..=pattern.suffix_max).contains(&suffix.len()) {
            return Err(OrderCodeError::Length { min: pattern.suffix_min, max: pattern.suffix_max });
        }
        Ok(OrderCode(s))
    }

    /// Finds the first code in free transfer text, in any case.
    ///
    /// A code must stand as a word of its own: a maximal run of ASCII letters and digits,
    /// so `XCD123456` or `CD123456789012345678901234567890123` are not read as codes.
    /// Banks put dots, dashes or spaces around the text they add, which keeps the code
    /// separate; a transfer whose code is glued to other letters stays unmatched and is
    /// kept for an operator rather than guessed at.
    pub fn find_in(text: &str, pattern: &CodePattern) -> Option<Self> {
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|word| word.len() > pattern.prefix.len())
            .find_map(|word| OrderCode::parse(word, pattern).ok())
    }

    /// A code read back from our own database, where only valid codes are written.
    pub fn from_stored(code: String) -> Self {
        OrderCode(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> CodePattern {
        CodePattern::new("cd", 6, 10, 8, CodeCharset::Digits).unwrap()
    }

    fn alnum() -> CodePattern {
        CodePattern::new("DH", 3, 10, 6, CodeCharset::Alphanumeric).unwrap()
    }

    #[test]
    fn generated_codes_match_their_pattern() {
        for pattern in [digits(), alnum()] {
            for _ in 0..500 {
                let code = OrderCode::generate(&pattern);
                assert_eq!(code.as_str().len(), pattern.prefix().len() + pattern.generated_len);
                assert_eq!(OrderCode::parse(code.as_str(), &pattern).as_ref(), Ok(&code));
                assert!(code.as_str().starts_with(pattern.prefix()));
            }
        }
        // Enough randomness that two codes in a row differ.
        let p = digits();
        let many: std::collections::HashSet<_> = (0..200).map(|_| OrderCode::generate(&p)).collect();
        assert!(many.len() > 190, "only {} distinct codes of 200", many.len());
    }

    #[test]
    fn generated_alphanumeric_codes_avoid_lookalike_characters() {
        let p = alnum();
        for _ in 0..500 {
            let code = OrderCode::generate(&p);
            assert!(!code.as_str()[2..].contains(['0', 'O', '1', 'I', 'L']), "{code}");
        }
    }

    #[test]
    fn parse_is_case_insensitive_and_stores_upper_case() {
        assert_eq!(OrderCode::parse(" cd12345678 ", &digits()).unwrap().as_str(), "CD12345678");
        assert_eq!(OrderCode::parse("dhab3x9", &alnum()).unwrap().as_str(), "DHAB3X9");
    }

    #[test]
    fn parse_rejects_near_misses_with_a_reason() {
        let p = digits();
        assert_eq!(OrderCode::parse("", &p), Err(OrderCodeError::Empty));
        assert_eq!(OrderCode::parse("XD12345678", &p), Err(OrderCodeError::Prefix("CD".into())));
        assert_eq!(OrderCode::parse("CD12345", &p), Err(OrderCodeError::Length { min: 6, max: 10 }));
        assert_eq!(OrderCode::parse("CD12345678901", &p), Err(OrderCodeError::Length { min: 6, max: 10 }));
        assert_eq!(OrderCode::parse("CD1234567A", &p), Err(OrderCodeError::Charset("digits")));
        assert_eq!(OrderCode::parse("CD 12345678", &p), Err(OrderCodeError::Charset("digits")));
    }

    #[test]
    fn finds_a_code_inside_bank_transfer_text() {
        let p = digits();
        let cases = [
            ("CD12345678", "CD12345678"),
            ("cd12345678", "CD12345678"),
            ("NGUYEN VAN A chuyen tien cd48213907 thanh toan", "CD48213907"),
            ("MBVCB.5541236.012345.Cd48213907.CT tu 0123456789", "CD48213907"),
            ("IBFT-CD48213907-FT24123", "CD48213907"),
            ("thanh toan don (CD000001)", "CD000001"),
            // The first well-formed code wins over an earlier near-miss.
            ("CD123 then CD7654321", "CD7654321"),
        ];
        for (text, want) in cases {
            assert_eq!(OrderCode::find_in(text, &p).map(|c| c.0), Some(want.to_string()), "text {text:?}");
        }
    }

    #[test]
    fn find_rejects_near_misses() {
        let p = digits();
        for text in [
            "",
            "thanh toan don hang",
            "CD12345",       // suffix too short
            "CD12345678901", // suffix too long
            "XCD12345678",   // glued to a letter before
            "CD12345678X",   // glued to a letter after
            "CD1234567A",    // letter in a digits-only suffix
            "C D12345678",   // prefix split
            "CĐ12345678",    // a Vietnamese letter is not the prefix
            "12345678",      // no prefix
        ] {
            assert_eq!(OrderCode::find_in(text, &p), None, "text {text:?}");
        }
    }

    #[test]
    fn pattern_configuration_is_checked() {
        use CodeCharset::Digits;
        assert_eq!(CodePattern::new("", 3, 10, 6, Digits), Err(CodePatternError::Prefix));
        assert_eq!(CodePattern::new("1CD", 3, 10, 6, Digits), Err(CodePatternError::Prefix));
        assert_eq!(CodePattern::new("C-D", 3, 10, 6, Digits), Err(CodePatternError::Prefix));
        assert_eq!(CodePattern::new("CD", 0, 10, 6, Digits), Err(CodePatternError::SuffixBounds));
        assert_eq!(CodePattern::new("CD", 5, 4, 4, Digits), Err(CodePatternError::SuffixBounds));
        assert_eq!(CodePattern::new("CD", 3, 31, 6, Digits), Err(CodePatternError::SuffixBounds));
        assert_eq!(CodePattern::new("CD", 3, 10, 11, Digits), Err(CodePatternError::GeneratedLength));
    }

    #[test]
    fn payos_numbers_stand_for_codes_and_back() {
        let p = CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap();
        let code = OrderCode::parse("CD00481239", &p).unwrap();
        assert_eq!(p.payos_number(&code), Some(481_239));
        assert_eq!(p.from_payos_number(481_239), Some(code));
        assert_eq!(p.from_payos_number(-1), None);
        let letters = CodePattern::new("CD", 6, 10, 8, CodeCharset::Alphanumeric).unwrap();
        assert_eq!(letters.payos_number(&OrderCode::parse("CD00481239", &letters).unwrap()), None);
    }
}
