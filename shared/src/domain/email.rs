//! A buyer's email address, validated when it is made.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// An email address that a mail server and Google Drive sharing will both accept.
///
/// The check is deliberately practical rather than RFC 5322-complete: quoted local parts,
/// comments and IP-literal domains are refused because no buyer needs them and Drive
/// sharing rejects them anyway. The domain is stored lower case; the local part as typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email is longer than 254 characters")]
    TooLong,
    #[error("email must contain exactly one '@'")]
    At,
    #[error("the part before '@' must be 1 to 64 characters")]
    LocalLength,
    #[error("the part before '@' contains a character that is not allowed: {0:?}")]
    LocalChar(char),
    #[error("the part before '@' must not start or end with '.' nor contain '..'")]
    LocalDots,
    #[error("the domain must have at least two parts, like example.com")]
    DomainNoDot,
    #[error("the domain part {0:?} is not valid (letters, digits and inner hyphens, 1 to 63 characters)")]
    DomainLabel(String),
    #[error("the domain must end in a top-level domain of at least two letters")]
    TopLevelDomain,
}

const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let mut parts = s.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::At);
        };
        if local.is_empty() || local.len() > 64 {
            return Err(EmailError::LocalLength);
        }
        if let Some(bad) = local.chars().find(|c| !(c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(*c))) {
            return Err(EmailError::LocalChar(bad));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError::LocalDots);
        }
        let domain = domain.to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(EmailError::DomainNoDot);
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(EmailError::DomainLabel((*label).to_string()));
            }
        }
        let tld = labels[labels.len() - 1];
        if tld.len() < 2 || !tld.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(EmailError::TopLevelDomain);
        }
        Ok(Email(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with most of the local part hidden, for logs: `n***@example.com`.
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

/// Masks any string that looks like an email; used where only the raw stored text is at hand.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_domain() {
        let e = Email::parse("  Nguyen.Van+khoa@Example.COM.vn ").unwrap();
        assert_eq!(e.as_str(), "Nguyen.Van+khoa@example.com.vn");
        assert_eq!(e.masked(), "N***@example.com.vn");
    }

    #[test]
    fn rejects_bad_addresses_with_a_reason() {
        let cases: &[(&str, EmailError)] = &[
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("buyer.example.com", EmailError::At),
            ("a@b@example.com", EmailError::At),
            ("@example.com", EmailError::LocalLength),
            (&format!("{}@example.com", "a".repeat(65)), EmailError::LocalLength),
            ("nguyễn@example.com", EmailError::LocalChar('ễ')),
            ("a b@example.com", EmailError::LocalChar(' ')),
            ("a\u{0}b@example.com", EmailError::LocalChar('\u{0}')),
            (".a@example.com", EmailError::LocalDots),
            ("a..b@example.com", EmailError::LocalDots),
            ("a@localhost", EmailError::DomainNoDot),
            ("a@exa_mple.com", EmailError::DomainLabel("exa_mple".into())),
            ("a@-example.com", EmailError::DomainLabel("-example".into())),
            ("a@example..com", EmailError::DomainLabel("".into())),
            ("a@example.c", EmailError::TopLevelDomain),
            ("a@example.123", EmailError::TopLevelDomain),
        ];
        for (input, want) in cases {
            assert_eq!(Email::parse(input).as_ref(), Err(want), "input {input:?}");
        }
        let long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
        // Every reason reads as a sentence a buyer can act on.
        assert_eq!(EmailError::At.to_string(), "email must contain exactly one '@'");
    }
}
