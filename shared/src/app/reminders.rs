//! Payment reminders: one email, before an unpaid order expires, with what to transfer and
//! the exact text; at most once per order, never to a paid or cancelled one. The sweeper
//! sends them.
//!
//! Exactly once as the delivery email is: the Message-ID is fixed before the first send, and
//! the send is recorded in the transaction that locks the order while sending. A payment that
//! arrives meanwhile waits for that lock (a few seconds at most: the SMTP timeout), so a paid
//! order is never reminded; two sweeps at once take turns and the second finds it sent. The
//! one window left: the sweep dies after the SMTP server took the mail and before the commit;
//! the next sweep sends it again with the same Message-ID, and mail clients show one.

use serde::Serialize;
use sqlx::MySqlPool;

use crate::adapters::mail::{MailError, Mailer, ReminderMail};
use crate::adapters::sepay;
use crate::app::config::{self, BankAccount, ConfigError, Vars};
use crate::domain::{EventKind, OrderStatus};
use crate::store::events::{self, NewEvent};
use crate::store::{StoreError, items, reminders};

const ACTOR: &str = "sweeper";

pub struct Reminders {
    pub mailer: Mailer,
    pub bank: BankAccount,
    /// `REMINDER_BEFORE_EXPIRY` (default 30m); `off` (or `0s`) sends none.
    pub lead: Option<chrono::Duration>,
    /// `SHOP_URL`: the buyer page's public address, for a link to the order in the reminder.
    pub shop_url: Option<String>,
}

impl Reminders {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let shop_url = match vars.get("SHOP_URL") {
            None => None,
            Some(u) => {
                let url = reqwest::Url::parse(&u)
                    .map_err(|e| ConfigError::Invalid { var: "SHOP_URL", reason: e.to_string() })?;
                Some(url.to_string())
            }
        };
        Ok(Reminders {
            mailer: Mailer::from_vars(vars)?,
            bank: config::bank_account(vars)?,
            lead: vars.duration_or_off("REMINDER_BEFORE_EXPIRY", "30m")?,
            shop_url,
        })
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReminderReport {
    pub sent: usize,
    /// The SMTP server was unavailable: tried again at the next sweep.
    pub failed: usize,
}

enum Reminded {
    Sent,
    Skipped,
    Retry(String),
}

/// Sends every reminder due now.
pub async fn send_due(pool: &MySqlPool, r: &Reminders) -> Result<ReminderReport, StoreError> {
    let mut report = ReminderReport::default();
    let Some(lead) = r.lead else { return Ok(report) };
    let lead = lead.num_seconds().clamp(1, u32::MAX as i64) as u32;
    for order_id in reminders::due(pool, lead, 200).await? {
        match remind(pool, r, order_id).await? {
            Reminded::Sent => report.sent += 1,
            Reminded::Skipped => {}
            Reminded::Retry(e) => {
                tracing::warn!(order_id, error = %e, "payment reminder not sent; the next sweep tries again");
                report.failed += 1;
                // The server is likely down: the rest wait for the next sweep too.
                break;
            }
        }
    }
    Ok(report)
}

async fn remind(pool: &MySqlPool, r: &Reminders, order_id: u64) -> Result<Reminded, StoreError> {
    let fresh = r.mailer.new_message_id(&format!("reminder.{order_id}"));
    let message_id = reminders::keep_message_id(pool, order_id, &fresh).await?;

    let mut tx = pool.begin().await?;
    let Some(f) = reminders::lock_in(&mut tx, order_id).await? else { return Ok(Reminded::Skipped) };
    if f.status != OrderStatus::Pending || f.sent || !f.open {
        return Ok(Reminded::Skipped);
    }
    let titles: Vec<String> =
        items::priced_courses_in(&mut tx, order_id).await?.into_iter().map(|(_, t, _)| t).collect();
    let qr = sepay::qr_image_url(&r.bank.account_number, &r.bank.bank_code, f.total_vnd, &f.code);
    let link = match (&r.shop_url, &f.view_token) {
        (Some(shop), Some(token)) => {
            Some(format!("{shop}?order={}&t={token}{}", f.code, if f.lang == "en" { "&lang=en" } else { "" }))
        }
        _ => None,
    };
    let mail = ReminderMail {
        to: &f.email,
        lang: &f.lang,
        code: &f.code,
        titles: &titles,
        amount_vnd: f.total_vnd,
        expires_at: f.expires_at,
        bank: &r.bank,
        qr_image_url: &qr,
        order_link: link.as_deref(),
        message_id: &message_id,
    };
    let sent = match r.mailer.reminder(&mail) {
        Ok(message) => r.mailer.send(message).await,
        Err(e) => Err(e),
    };
    let delivered = sent.is_ok();
    let detail = match sent {
        Ok(()) => {
            tracing::info!(order_code = %f.code, to = %crate::domain::mask_email(&f.email), %message_id, "payment reminder sent");
            format!("payment reminder sent as {message_id}")
        }
        Err(MailError::Transient(e)) => return Ok(Reminded::Retry(e)),
        // This address will never take it: recorded as done, so it is not tried every minute.
        Err(e @ MailError::Permanent(_)) => {
            tracing::warn!(order_code = %f.code, error = %e, "payment reminder refused for good");
            format!("payment reminder not sent: {e}")
        }
    };
    reminders::mark_sent_in(&mut tx, order_id).await?;
    events::record(
        &mut tx,
        &NewEvent {
            order_id,
            item_id: None,
            kind: EventKind::ReminderSent,
            from_status: None,
            to_status: None,
            actor: ACTOR,
            detail: Some(&detail),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(if delivered { Reminded::Sent } else { Reminded::Skipped })
}
