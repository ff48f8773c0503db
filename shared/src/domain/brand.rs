//! The seller's brand: their name, logo and support contacts, on the buyer page, in its
//! title and in every email. Read once at start.

use serde::Serialize;

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

impl Brand {
    /// The origin the logo loads from, for the page's Content-Security-Policy.
    pub fn logo_origin(&self) -> Option<String> {
        let url = reqwest::Url::parse(self.logo_url.as_deref()?).ok()?;
        Some(url.origin().ascii_serialization())
    }

    pub fn has_support(&self) -> bool {
        self.support_email.is_some() || self.support_phone.is_some() || self.support_zalo.is_some()
    }
}
