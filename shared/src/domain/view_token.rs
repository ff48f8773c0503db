//! The random token that opens an order's status view: the order code is for the transfer text
//! and can be guessed; this can't.

/// 128 random bits as 32 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewToken(String);

impl ViewToken {
    /// From the thread's CSPRNG (rand's ChaCha-based `ThreadRng`, seeded by the OS).
    pub fn generate() -> Self {
        ViewToken(hex::encode(rand::random::<[u8; 16]>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the order's token, compared in constant time so a wrong guess's
    /// timing says nothing of how close it was. An order without a token (placed by an older
    /// release during a deploy) opens for nobody.
    pub fn matches(stored: Option<&str>, given: &str) -> bool {
        let Some(stored) = stored else { return false };
        if stored.len() != given.len() || stored.is_empty() {
            return false;
        }
        stored.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_match_only_themselves() {
        let a = ViewToken::generate();
        let b = ViewToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(ViewToken::matches(Some(a.as_str()), a.as_str()));
        assert!(!ViewToken::matches(Some(a.as_str()), b.as_str()));
        assert!(!ViewToken::matches(Some(a.as_str()), &a.as_str()[..31]));
        assert!(!ViewToken::matches(Some(a.as_str()), ""));
        assert!(!ViewToken::matches(None, a.as_str()));
        assert!(!ViewToken::matches(Some(""), ""));
    }
}
