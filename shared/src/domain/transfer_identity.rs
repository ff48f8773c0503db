//! A bank transfer's own identity, whichever feed reports it, and the rule that holds a
//! transfer that only looks like one already counted.
//!
//! Two feeds connected to one account (SePay and Casso, while a seller switches or as a
//! backup) report every transfer twice, each under its own id. The bank's reference is what
//! the two reports share: with the account, the direction and the amount it names the transfer
//! (the store's unique key `uq_payments_bank_transfer`). A feed that gives no reference leaves
//! only a resemblance (same account, amount, direction and text, moments apart in the bank's
//! time): such a transfer is neither counted twice nor dropped, but held for an operator.

use chrono::NaiveDateTime;

use super::transfer::BankTransfer;

/// How far apart in the bank's time two reports of one transfer can be. Both feeds copy the
/// bank's posting time, so reports of one transfer agree to the second; genuinely separate
/// transfers of the same amount and text (a buyer paying twice) are minutes apart.
pub const SUSPECT_WINDOW_SECS: i64 = 90;

/// How far back the store looks for a transfer to compare with (by arrival): longer than any
/// reconciliation looks back, so a reconciler's late report still meets the webhook's.
pub const SUSPECT_LOOKBACK_DAYS: u32 = 10;

/// The account a transfer was paid into, without spaces: the main account, or the
/// sub-account when a feed gives only that.
pub fn bank_account(tx: &BankTransfer) -> Option<String> {
    [tx.account_number.as_deref(), tx.sub_account.as_deref()]
        .into_iter()
        .flatten()
        .map(|a| a.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .find(|a| !a.is_empty())
}

/// The bank's own reference for the transfer, trimmed; `None` when the feed gave none.
pub fn bank_reference(tx: &BankTransfer) -> Option<String> {
    tx.reference.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string)
}

/// The bank's time of a transfer as feeds write it (`2026-11-22 10:00:00`, with a `T`, with
/// fractions of a second). The zone does not matter: only two reports are compared.
pub fn bank_time(text: Option<&str>) -> Option<NaiveDateTime> {
    let text = text?.trim();
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

/// What the text of a transfer says, for comparing two reports: the order code it carries
/// when it carries one (feeds word the rest differently), else its letters and digits,
/// upper-cased.
pub fn text_key(order_code: Option<&str>, text: Option<&str>) -> String {
    match order_code {
        Some(code) => code.to_uppercase(),
        None => text.unwrap_or("").chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_uppercase).collect(),
    }
}

/// A transfer as the duplicate checks see it: the one arriving, or one recorded before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub feed: String,
    pub reference: Option<String>,
    pub text_key: String,
    pub bank_time: Option<NaiveDateTime>,
    /// When we received it (UTC): the time compared when a report has no bank time.
    pub received_at: NaiveDateTime,
}

/// A recorded transfer of the same account, amount and direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub payment_id: u64,
    pub sighting: Sighting,
    /// Held or dropped as a suspected duplicate itself: not what a new report is compared with.
    pub on_hold: bool,
}

/// What the arriving transfer is, beside those recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A transfer of its own: count it.
    New,
    /// The same bank reference: the same transfer, reported again (by another feed).
    Same { payment_id: u64 },
    /// No reference to tell, and it looks like this one: hold it for an operator.
    Suspect { payment_id: u64 },
}

/// Compares an arriving transfer with recorded ones of the same account, amount and direction.
pub fn judge(new: &Sighting, recorded: &[Recorded]) -> Verdict {
    if let Some(reference) = &new.reference {
        let same =
            recorded.iter().find(|r| r.sighting.reference.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(reference)));
        if let Some(r) = same {
            return Verdict::Same { payment_id: r.payment_id };
        }
    }
    let resembles = |r: &&Recorded| {
        let earlier = &r.sighting;
        !r.on_hold
            // A feed's own ids are its own transfers; two references that differ are two transfers.
            && earlier.feed != new.feed
            && (earlier.reference.is_none() || new.reference.is_none())
            && earlier.text_key == new.text_key
            && close_in_time(earlier, new)
    };
    match recorded.iter().find(resembles) {
        Some(r) => Verdict::Suspect { payment_id: r.payment_id },
        None => Verdict::New,
    }
}

fn close_in_time(a: &Sighting, b: &Sighting) -> bool {
    let apart = match (a.bank_time, b.bank_time) {
        (Some(x), Some(y)) => x - y,
        _ => a.received_at - b.received_at,
    };
    apart.num_seconds().abs() <= SUSPECT_WINDOW_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        bank_time(Some(s)).unwrap()
    }

    fn sighting(feed: &str, reference: Option<&str>, text: &str, time: &str) -> Sighting {
        Sighting {
            feed: feed.into(),
            reference: reference.map(Into::into),
            text_key: text_key(None, Some(text)),
            bank_time: Some(at(time)),
            received_at: at(time),
        }
    }

    fn recorded(id: u64, s: Sighting) -> Recorded {
        Recorded { payment_id: id, sighting: s, on_hold: false }
    }

    #[test]
    fn the_same_reference_is_the_same_transfer_whatever_the_feed_or_time() {
        let earlier = recorded(1, sighting("sepay", Some("FT123"), "CD1 chuyen tien", "2026-11-22 10:00:00"));
        let casso = sighting("casso", Some("ft123"), "other words", "2026-11-23 10:00:00");
        assert_eq!(judge(&casso, &[earlier]), Verdict::Same { payment_id: 1 });
    }

    #[test]
    fn different_references_are_different_transfers_even_with_equal_text_and_time() {
        let earlier = recorded(1, sighting("sepay", Some("FT1"), "CD1", "2026-11-22 10:00:00"));
        let other = sighting("casso", Some("FT2"), "CD1", "2026-11-22 10:00:00");
        assert_eq!(judge(&other, &[earlier]), Verdict::New);
    }

    #[test]
    fn without_a_reference_a_lookalike_from_another_feed_moments_apart_is_a_suspect() {
        let earlier = recorded(7, sighting("sepay", Some("FT1"), "CD 000123 chuyen", "2026-11-22 10:00:00"));
        let casso = sighting("casso", None, "cd000123-CHUYEN", "2026-11-22 10:00:40");
        assert_eq!(judge(&casso, std::slice::from_ref(&earlier)), Verdict::Suspect { payment_id: 7 });
        // Either side may be the one without a reference.
        let earlier_bare = recorded(8, sighting("casso", None, "CD000123 chuyen", "2026-11-22 10:00:00"));
        let sepay = sighting("sepay", Some("FT9"), "CD000123 CHUYEN", "2026-11-22 10:00:05");
        assert_eq!(judge(&sepay, &[earlier_bare]), Verdict::Suspect { payment_id: 8 });
    }

    #[test]
    fn two_transfers_minutes_apart_or_from_one_feed_or_with_other_text_are_both_counted() {
        let earlier = recorded(7, sighting("sepay", None, "CD000123", "2026-11-22 10:00:00"));
        let later = sighting("casso", None, "CD000123", "2026-11-22 10:03:00");
        assert_eq!(judge(&later, std::slice::from_ref(&earlier)), Verdict::New);
        let same_feed = sighting("sepay", None, "CD000123", "2026-11-22 10:00:10");
        assert_eq!(judge(&same_feed, std::slice::from_ref(&earlier)), Verdict::New);
        let other_text = sighting("casso", None, "CD000124", "2026-11-22 10:00:10");
        assert_eq!(judge(&other_text, &[earlier]), Verdict::New);
    }

    #[test]
    fn a_report_held_or_dropped_is_not_what_others_are_compared_with() {
        let mut held = recorded(7, sighting("casso", None, "CD000123", "2026-11-22 10:00:00"));
        held.on_hold = true;
        let sepay = sighting("sepay", None, "CD000123", "2026-11-22 10:00:01");
        assert_eq!(judge(&sepay, &[held]), Verdict::New);
    }

    #[test]
    fn without_bank_times_the_arrival_times_are_compared() {
        let mut earlier = sighting("sepay", None, "CD000123", "2026-11-22 10:00:00");
        earlier.bank_time = None;
        let mut later = sighting("casso", None, "CD000123", "2026-11-22 10:00:30");
        later.bank_time = None;
        assert_eq!(judge(&later, &[recorded(3, earlier.clone())]), Verdict::Suspect { payment_id: 3 });
        later.received_at = at("2026-11-22 11:00:00");
        assert_eq!(judge(&later, &[recorded(3, earlier)]), Verdict::New);
    }

    #[test]
    fn the_text_key_prefers_the_order_code_and_ignores_spacing_and_case() {
        assert_eq!(text_key(Some("cd000123"), Some("anything")), "CD000123");
        assert_eq!(text_key(None, Some("Chuyển tiền cd 12")), "CHUYỂNTIỀNCD12");
        assert_eq!(bank_time(Some("2026-11-22T10:00:00.123")), Some(at("2026-11-22 10:00:00.123")));
        assert_eq!(bank_time(Some("yesterday")), None);
    }

    #[test]
    fn accounts_lose_their_spaces_and_blank_references_are_none() {
        let tx = BankTransfer {
            gateway: crate::domain::transfer::Gateway::Casso,
            id: "1".into(),
            transfer_type: crate::domain::transfer::TransferType::In,
            amount_vnd: 1,
            bank: None,
            account_number: Some(" 0123 456 789 ".into()),
            sub_account: None,
            code: None,
            content: None,
            description: None,
            reference: Some("  ".into()),
            transaction_date: None,
            raw: String::new(),
        };
        assert_eq!(bank_account(&tx).as_deref(), Some("0123456789"));
        assert_eq!(bank_reference(&tx), None);
    }
}
