//! Order codes in free transfer text, under several SePay patterns: whatever the text, a
//! code found is a whole word of it, parses back to itself, and matches the pattern; and
//! parsing is idempotent.
#![no_main]

use coursedrop::domain::{CodeCharset, CodePattern, OrderCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let pattern = match selector % 3 {
        0 => CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap(),
        1 => CodePattern::new("DH", 3, 6, 5, CodeCharset::Alphanumeric).unwrap(),
        _ => CodePattern::new("ORDER", 1, 30, 12, CodeCharset::Alphanumeric).unwrap(),
    };
    if let Some(code) = OrderCode::find_in(&text, &pattern) {
        let upper = text.to_ascii_uppercase();
        let whole_word = upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == code.as_str());
        assert!(whole_word, "{code:?} is not a word of {text:?}");
        assert!(code.as_str().starts_with(pattern.prefix()));
        assert_eq!(OrderCode::parse(code.as_str(), &pattern).as_ref(), Ok(&code));
    }
    if let Ok(code) = OrderCode::parse(&text, &pattern) {
        assert_eq!(OrderCode::parse(code.as_str(), &pattern).as_ref(), Ok(&code));
        assert!(code.as_str().bytes().all(|b| b.is_ascii_alphanumeric() && !b.is_ascii_lowercase()));
    }
});
