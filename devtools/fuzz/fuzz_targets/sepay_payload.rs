//! SePay's webhook body and headers, as an attacker could send them: parsing and
//! authentication never panic, a parsed transaction never carries a negative amount, and
//! the code found in its text is always a valid code that the text really contains.
#![no_main]

use coursedrop::adapters::sepay::{AuthHeaders, SepayTransaction, WebhookAuth};
use coursedrop::domain::{CodeCharset, CodePattern, OrderCode};
use coursedrop::app::payments::order_code_of;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first bytes, up to a NUL, play the headers; the rest is the body.
    let split = data.iter().position(|&b| b == 0).unwrap_or(0);
    let (head, body) = data.split_at(split);
    let body = body.strip_prefix(&[0u8]).unwrap_or(body);
    let head = String::from_utf8_lossy(head);
    let mut parts = head.splitn(3, '\n');
    let headers = AuthHeaders {
        authorization: parts.next(),
        signature: parts.next(),
        timestamp: parts.next(),
    };
    for auth in [
        WebhookAuth::ApiKey("k3y".into()),
        WebhookAuth::Hmac { secret: "s3cret".into(), tolerance_secs: 300 },
        WebhookAuth::Unconfigured { reason: "none".into() },
    ] {
        let verdict = auth.verify(headers, body, 1_800_000_000);
        if matches!(auth, WebhookAuth::Unconfigured { .. }) {
            assert!(verdict.is_err(), "an unconfigured webhook accepted a request");
        }
    }

    if let Ok(tx) = SepayTransaction::parse(body) {
        assert!(tx.transfer_amount >= 0);
        let pattern = CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap();
        if let Some(code) = order_code_of(&tx, &pattern) {
            let fields = [&tx.code, &tx.content, &tx.description];
            assert!(
                fields.iter().any(|f| f.as_deref().is_some_and(|t| t.to_ascii_uppercase().contains(code.as_str()))),
                "{code:?} is in none of the transfer's fields"
            );
            assert_eq!(OrderCode::parse(code.as_str(), &pattern).as_ref(), Ok(&code));
        }
    }
});
