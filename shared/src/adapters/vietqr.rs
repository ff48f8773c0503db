//! VietQR: the NAPAS EMVCo merchant-presented QR payload that Vietnamese banking apps scan
//! to pre-fill a transfer (account, amount and transfer text).

use thiserror::Error;

use crate::domain::Vnd;

/// NAPAS's application id for VietQR transfers (field 38, sub-field 00).
const NAPAS_GUID: &str = "A000000727";
/// "Transfer to account" service code (field 38, sub-field 02).
const SERVICE_TO_ACCOUNT: &str = "QRIBFTTA";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQr<'a> {
    /// The bank's 6-digit BIN, e.g. 970422 for MB Bank.
    pub bank_bin: &'a str,
    pub account_number: &'a str,
    /// With an amount the QR is dynamic ("12"); without, static ("11").
    pub amount: Option<Vnd>,
    /// Bill number (field 62, sub-field 01), if any.
    pub bill_number: Option<&'a str>,
    /// The transfer text (field 62, sub-field 08): for us, the order code.
    pub purpose: &'a str,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VietQrError {
    #[error("bank BIN must be 6 digits")]
    BankBin,
    #[error("account number must be 1 to 19 letters or digits")]
    Account,
    #[error("{0} must be printable ASCII (banking apps drop anything else)")]
    NotAscii(&'static str),
    #[error("{0} is too long for a QR field")]
    TooLong(&'static str),
}

/// One TLV field: two-digit id, two-digit length, value.
fn tlv(out: &mut String, id: &str, value: &str, name: &'static str) -> Result<(), VietQrError> {
    if value.len() > 99 {
        return Err(VietQrError::TooLong(name));
    }
    out.push_str(id);
    out.push_str(&format!("{:02}", value.len()));
    out.push_str(value);
    Ok(())
}

fn printable_ascii(s: &str, name: &'static str) -> Result<(), VietQrError> {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) { Ok(()) } else { Err(VietQrError::NotAscii(name)) }
}

impl VietQr<'_> {
    pub fn payload(&self) -> Result<String, VietQrError> {
        if self.bank_bin.len() != 6 || !self.bank_bin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VietQrError::BankBin);
        }
        if self.account_number.is_empty()
            || self.account_number.len() > 19
            || !self.account_number.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(VietQrError::Account);
        }
        printable_ascii(self.purpose, "transfer text")?;
        if let Some(bill) = self.bill_number {
            printable_ascii(bill, "bill number")?;
        }

        let mut beneficiary = String::new();
        tlv(&mut beneficiary, "00", self.bank_bin, "bank BIN")?;
        tlv(&mut beneficiary, "01", self.account_number, "account number")?;
        let mut merchant = String::new();
        tlv(&mut merchant, "00", NAPAS_GUID, "guid")?;
        tlv(&mut merchant, "01", &beneficiary, "beneficiary")?;
        tlv(&mut merchant, "02", SERVICE_TO_ACCOUNT, "service code")?;
        let mut additional = String::new();
        if let Some(bill) = self.bill_number {
            tlv(&mut additional, "01", bill, "bill number")?;
        }
        tlv(&mut additional, "08", self.purpose, "transfer text")?;

        let mut out = String::with_capacity(160);
        tlv(&mut out, "00", "01", "version")?;
        tlv(&mut out, "01", if self.amount.is_some() { "12" } else { "11" }, "method")?;
        tlv(&mut out, "38", &merchant, "merchant account")?;
        tlv(&mut out, "53", "704", "currency")?;
        if let Some(amount) = self.amount {
            tlv(&mut out, "54", &amount.get().to_string(), "amount")?;
        }
        tlv(&mut out, "58", "VN", "country")?;
        tlv(&mut out, "62", &additional, "additional data")?;
        // The CRC covers everything up to and including its own id and length.
        out.push_str("6304");
        let crc = crc16_ccitt_false(out.as_bytes());
        out.push_str(&format!("{crc:04X}"));
        Ok(out)
    }
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR.
pub fn crc16_ccitt_false(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The QR code as an SVG image, for the checkout page.
pub fn svg(payload: &str) -> Result<String, qrcode::types::QrError> {
    let code = qrcode::QrCode::with_error_correction_level(payload, qrcode::EcLevel::M)?;
    Ok(code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(264, 264).quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
    }

    #[test]
    fn matches_the_published_napas_dynamic_account_vector() {
        let qr = VietQr {
            bank_bin: "970403",
            account_number: "0011012345678",
            amount: Some(Vnd::new(180_000).unwrap()),
            bill_number: Some("NPS6869"),
            purpose: "thanh toan don hang",
        };
        assert_eq!(
            qr.payload().unwrap(),
            "00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA530370454061800005802VN62340107NPS68690819thanh toan don hang63042E2E"
        );
    }

    #[test]
    fn static_qr_without_amount_and_checks_its_input() {
        let mut qr = VietQr {
            bank_bin: "970422",
            account_number: "0123456789",
            amount: None,
            bill_number: None,
            purpose: "CD12345678",
        };
        let p = qr.payload().unwrap();
        assert!(p.starts_with("000201010211"), "{p}");
        assert!(!p.contains("5406"));
        let crc = u16::from_str_radix(&p[p.len() - 4..], 16).unwrap();
        assert_eq!(crc, crc16_ccitt_false(&p.as_bytes()[..p.len() - 4]));

        qr.purpose = "Thanh toán";
        assert_eq!(qr.payload(), Err(VietQrError::NotAscii("transfer text")));
        qr.purpose = "CD1";
        qr.bank_bin = "97042";
        assert_eq!(qr.payload(), Err(VietQrError::BankBin));
        qr.bank_bin = "970422";
        qr.account_number = "01234-567";
        assert_eq!(qr.payload(), Err(VietQrError::Account));
    }

    #[test]
    fn renders_an_svg() {
        let s = svg("00020101021238570010A000000727").unwrap();
        assert!(s.starts_with("<?xml") && s.contains("<svg"), "{}", &s[..60]);
    }
}
