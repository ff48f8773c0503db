//! What a course is to the rest of the system beyond its slug and price.

use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("delivery mode {0:?} (copy or share)")]
pub struct UnknownDeliveryMode(pub String);

/// How a course reaches the buyer (the catalog's `delivery_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// A folder of the buyer's own with the course copied into it: the buyer keeps it.
    #[default]
    Copy,
    /// Read access to the seller's Drive folder itself: nothing is copied; a refund or the
    /// seller's own edits change what the buyer sees.
    Share,
}

impl DeliveryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Copy => "copy",
            DeliveryMode::Share => "share",
        }
    }

    pub fn parse(s: &str) -> Result<Self, UnknownDeliveryMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "copy" => Ok(DeliveryMode::Copy),
            "share" => Ok(DeliveryMode::Share),
            other => Err(UnknownDeliveryMode(other.to_string())),
        }
    }
}
