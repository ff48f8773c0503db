//! The seller's staff: roles, what each role may do, and the secrets that sign them in.
//!
//! Pure decisions: the console asks [`StaffRole::may`] before every action, and the store
//! keeps only [`Secret::digest`]s, never a secret itself.

use std::fmt;

use base64::Engine;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// `owner` does everything; `support` looks after buyers but cannot move money or change
/// what is sold or who works here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    Owner,
    Support,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} is not a staff role (owner or support)")]
pub struct UnknownRole(pub String);

impl StaffRole {
    pub fn parse(s: &str) -> Result<Self, UnknownRole> {
        match s.trim().to_ascii_lowercase().as_str() {
            "owner" => Ok(StaffRole::Owner),
            "support" => Ok(StaffRole::Support),
            _ => Err(UnknownRole(s.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Owner => "owner",
            StaffRole::Support => "support",
        }
    }

    /// Whether someone in this role may do `action`.
    pub fn may(self, action: StaffAction) -> bool {
        match self {
            StaffRole::Owner => true,
            StaffRole::Support => {
                matches!(action, StaffAction::Look | StaffAction::Resend | StaffAction::MoveAccess | StaffAction::Retry)
            }
        }
    }
}

impl TryFrom<String> for StaffRole {
    type Error = UnknownRole;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        StaffRole::parse(&s)
    }
}

impl fmt::Display for StaffRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What staff can do in the console, for [`StaffRole::may`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffAction {
    /// Read anything: dashboard, orders, problems, revenue.
    Look,
    Resend,
    MoveAccess,
    Retry,
    Refund,
    /// Attach, release, drop or mark handled a bank transfer.
    Payments,
    Catalog,
    Coupons,
    Staff,
}

/// A random secret handed out once (a sign-in link's token, a session id, a form token):
/// 256 bits from the thread's CSPRNG, as 43 URL-safe base64 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn generate() -> Self {
        Secret(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
    }

    /// A secret as it came back from a browser; `None` for anything that cannot be one (so
    /// a malformed cookie is treated as no cookie).
    pub fn from_presented(s: &str) -> Option<Self> {
        let ok = s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Secret(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database keeps instead of the secret.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// Compares with `other` in constant time.
    pub fn matches(&self, other: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.len() && bool::from(self.0.as_bytes().ct_eq(other.as_bytes()))
    }
}

/// The SHA-256 of a value the rate limits count by (an address, a client), so neither is
/// stored in the clear. Addresses are compared case-insensitively.
pub fn fingerprint(value: &str) -> [u8; 32] {
    Sha256::digest(value.trim().to_ascii_lowercase().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_looks_after_buyers_but_moves_no_money() {
        for allowed in [StaffAction::Look, StaffAction::Resend, StaffAction::MoveAccess, StaffAction::Retry] {
            assert!(StaffRole::Support.may(allowed), "{allowed:?}");
        }
        for refused in
            [StaffAction::Refund, StaffAction::Payments, StaffAction::Catalog, StaffAction::Coupons, StaffAction::Staff]
        {
            assert!(!StaffRole::Support.may(refused), "{refused:?}");
            assert!(StaffRole::Owner.may(refused), "{refused:?}");
        }
    }

    #[test]
    fn roles_parse_and_print() {
        assert_eq!(StaffRole::parse(" Owner "), Ok(StaffRole::Owner));
        assert_eq!(StaffRole::parse("support").unwrap().as_str(), "support");
        assert!(StaffRole::parse("admin").is_err());
    }

    #[test]
    fn secrets_are_random_url_safe_and_hashed() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(Secret::from_presented(a.expose()), Some(a.clone()));
        assert_eq!(Secret::from_presented("short"), None);
        assert_eq!(Secret::from_presented(&format!("{}=", &a.expose()[..42])), None);
        assert_ne!(a.digest(), b.digest());
        assert!(a.matches(a.expose()));
        assert!(!a.matches(b.expose()));
        assert_eq!(format!("{a:?}"), "Secret(…)");
        assert_eq!(fingerprint("A@x.vn "), fingerprint("a@x.vn"));
    }
}
