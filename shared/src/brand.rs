//! The seller's brand: their name, logo and support contacts, on the buyer page, in its
//! title and in every email. Read once at start.

use serde::Serialize;

use crate::config::{ConfigError, Vars};
use crate::domain::Email;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Brand {
    /// `SELLER_NAME`. Without it the page and emails show no name at all (and the start logs
    /// that it is missing): never a placeholder a buyer would read.
    pub seller_name: Option<String>,
    /// `SELLER_LOGO_URL`: an https address (the page's Content-Security-Policy allows its origin).
    pub logo_url: Option<String>,
    /// `SUPPORT_EMAIL` (or the older `SUPPORT_CONTACT`).
    pub support_email: Option<String>,
    /// `SUPPORT_PHONE`, as the seller writes it.
    pub support_phone: Option<String>,
    /// `SUPPORT_ZALO`: a phone number or a zalo.me address; kept as the zalo.me address.
    pub support_zalo: Option<String>,
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, reason: reason.into() }
}

impl Brand {
    pub fn from_vars<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let logo_url = match vars.get("SELLER_LOGO_URL") {
            None => None,
            Some(url) => {
                let parsed = reqwest::Url::parse(&url).map_err(|e| invalid("SELLER_LOGO_URL", e.to_string()))?;
                if parsed.scheme() != "https" || parsed.host_str().is_none() {
                    return Err(invalid(
                        "SELLER_LOGO_URL",
                        "an https:// address, so browsers and mail clients load it",
                    ));
                }
                Some(parsed.to_string())
            }
        };
        let support_email = match vars.get("SUPPORT_EMAIL").or_else(|| vars.get("SUPPORT_CONTACT")) {
            None => None,
            Some(e) => Some(Email::parse(&e).map_err(|e| invalid("SUPPORT_EMAIL", e.to_string()))?.to_string()),
        };
        let phone = |var: &'static str, v: String| -> Result<String, ConfigError> {
            let digits = v.chars().filter(char::is_ascii_digit).count();
            if !(8..=15).contains(&digits) || !v.chars().all(|c| c.is_ascii_digit() || " +.-()".contains(c)) {
                return Err(invalid(var, "a phone number: 8 to 15 digits, spaces and + . - ( )"));
            }
            Ok(v)
        };
        let support_phone = vars.get("SUPPORT_PHONE").map(|v| phone("SUPPORT_PHONE", v)).transpose()?;
        let support_zalo = match vars.get("SUPPORT_ZALO") {
            None => None,
            Some(v) if v.starts_with("https://zalo.me/") => Some(v),
            Some(v) => {
                let number: String = phone("SUPPORT_ZALO", v)?.chars().filter(char::is_ascii_digit).collect();
                Some(format!("https://zalo.me/{number}"))
            }
        };
        let brand =
            Brand { seller_name: vars.get("SELLER_NAME"), logo_url, support_email, support_phone, support_zalo };
        if brand.seller_name.is_none() {
            tracing::warn!("SELLER_NAME is not set: the buyer page and the emails show no seller name until it is");
        }
        Ok(brand)
    }

    /// The origin the logo loads from, for the page's Content-Security-Policy.
    pub fn logo_origin(&self) -> Option<String> {
        let url = reqwest::Url::parse(self.logo_url.as_deref()?).ok()?;
        Some(url.origin().ascii_serialization())
    }

    pub fn has_support(&self) -> bool {
        self.support_email.is_some() || self.support_phone.is_some() || self.support_zalo.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand(pairs: &[(&str, &str)]) -> Result<Brand, ConfigError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Brand::from_vars(&Vars(move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())))
    }

    #[test]
    fn contacts_are_checked_and_a_zalo_number_becomes_its_address() {
        let b = brand(&[
            ("SELLER_NAME", "Học Rust cùng Lan"),
            ("SELLER_LOGO_URL", "https://cdn.example.vn/logo.png"),
            ("SUPPORT_EMAIL", "Ho.Tro@Example.vn"),
            ("SUPPORT_PHONE", "0912 345 678"),
            ("SUPPORT_ZALO", "0912.345.678"),
        ])
        .unwrap();
        assert_eq!(b.support_zalo.as_deref(), Some("https://zalo.me/0912345678"));
        assert_eq!(b.support_email.as_deref(), Some("Ho.Tro@example.vn"));
        assert_eq!(b.logo_origin().as_deref(), Some("https://cdn.example.vn"));
        assert!(brand(&[("SELLER_LOGO_URL", "http://example.vn/logo.png")]).is_err());
        assert!(brand(&[("SUPPORT_EMAIL", "not an email")]).is_err());
        assert!(brand(&[("SUPPORT_PHONE", "call me")]).is_err());
        assert_eq!(brand(&[]).unwrap(), Brand::default());
    }
}
