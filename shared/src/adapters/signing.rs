//! HMAC-SHA256 request signatures over `"{timestamp}.{body}"`: how SePay may sign its
//! webhooks, and how we sign ours to a seller's LMS.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Lower-case hex HMAC-SHA256(secret, "{timestamp}.{body}").
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_a_known_vector() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac k
        assert_eq!(
            super::sign("k", "1700000000", b"{}"),
            "c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
        );
    }
}
