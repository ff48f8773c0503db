//! The VietQR encoder with arbitrary fields: it either refuses with a reason or produces a
//! payload that decodes back, TLV by TLV, to exactly the fields given, ends in a correct
//! CRC, and renders as a QR code.
#![no_main]

use coursedrop::adapters::vietqr::{VietQr, crc16_ccitt_false, svg};
use coursedrop::domain::Vnd;
use libfuzzer_sys::fuzz_target;

/// Splits `id len value` fields; None when the lengths do not add up.
fn tlvs(s: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let id = rest.get(..2)?;
        let len: usize = rest.get(2..4)?.parse().ok()?;
        out.push((id, rest.get(4..4 + len)?));
        rest = &rest[4 + len..];
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('|');
    let bank_bin = fields.next().unwrap_or("");
    let account_number = fields.next().unwrap_or("");
    let purpose = fields.next().unwrap_or("");
    let bill_number = fields.next();
    let amount = fields.next().and_then(|a| a.parse::<i64>().ok()).and_then(|a| Vnd::new(a).ok());
    let qr = VietQr { bank_bin, account_number, amount, bill_number, purpose };
    let Ok(payload) = qr.payload() else { return };

    let (body, crc) = payload.split_at(payload.len() - 4);
    assert!(body.ends_with("6304"), "the CRC field must close the payload");
    assert_eq!(crc, format!("{:04X}", crc16_ccitt_false(body.as_bytes())));
    let top = tlvs(&payload).expect("the payload is a sequence of TLV fields");
    let field = |id: &str| top.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
    let merchant = tlvs(field("38").expect("field 38")).expect("field 38 holds TLVs");
    let beneficiary = tlvs(merchant.iter().find(|(i, _)| *i == "01").expect("38.01").1).expect("38.01 holds TLVs");
    assert_eq!(beneficiary[0], ("00", bank_bin));
    assert_eq!(beneficiary[1], ("01", account_number));
    assert_eq!(field("54"), amount.map(|a| a.get().to_string()).as_deref());
    if !purpose.is_empty() {
        let extra = tlvs(field("62").expect("field 62")).expect("field 62 holds TLVs");
        assert!(extra.contains(&("08", purpose)));
    }
    assert!(svg(&payload).is_ok());
});
