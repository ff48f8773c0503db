use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use coursedrop::app::config::{self, Vars};
use serde_json::{Value, json};

use super::COURSES;

/// Places `n_orders` orders through the API; each is (code, amount, email, to be paid).
pub(super) async fn place_orders(
    http: &reqwest::Client,
    base: &str,
    n_orders: usize,
    run_id: u32,
) -> Result<Vec<(String, i64, String, bool)>> {
    let mut orders = Vec::new();
    for i in 0..n_orders {
        let k = rand::random_range(1..=3usize);
        let start = rand::random_range(0..COURSES.len());
        let chosen: Vec<&str> = (0..k).map(|j| COURSES[(start + j) % COURSES.len()].0).collect();
        let email = format!("chaos-{run_id}-{i}@example.com");
        let body = json!({"email": email, "courses": chosen});
        let order: Value =
            http.post(format!("{base}/orders")).json(&body).send().await?.error_for_status()?.json().await?;
        let code = order["code"].as_str().ok_or_else(|| anyhow!("no code in {order}"))?.to_string();
        let amount = order["amount_vnd"].as_i64().unwrap_or(0);
        orders.push((code, amount, email, i % 10 != 9));
    }
    Ok(orders)
}

/// What was sent to the bank and its webhooks, for the checks.
pub(super) struct Sent {
    pub(super) sent_ids: Vec<i64>,
    pub(super) unmatched_ids: Vec<i64>,
    pub(super) dropped: Vec<(i64, i64)>,
    pub(super) dropped_stretch: std::ops::Range<usize>,
    pub(super) casso_failed: usize,
    pub(super) webhook_calls: usize,
    pub(super) webhook_failures: usize,
}

/// Pays the orders to be paid at the bank and sends their webhooks from both feeds.
pub(super) async fn pay(
    vars: &Vars,
    bank: &bank_emulator::Emulator,
    base: &str,
    http: &reqwest::Client,
    orders: &[(String, i64, String, bool)],
    n_orders: usize,
) -> Result<Sent> {
    let key = vars.get("SEPAY_API_KEY").ok_or_else(|| anyhow!("SEPAY_API_KEY is not set"))?;
    let account = config::bank_account(vars)?.account_number;
    let dropped_stretch = n_orders / 3..n_orders / 2;
    let mut sent_ids = Vec::new();
    let mut senders = Vec::new();
    let mut casso_senders = Vec::new();
    let mut unmatched_ids = Vec::new();
    // Each dropped transfer's (SePay id, Casso id).
    let mut dropped: Vec<(i64, i64)> = Vec::new();
    for (i, (code, amount, _, paid)) in orders.iter().enumerate() {
        let drop_webhook = dropped_stretch.contains(&i);
        let booked = |feed, amount_vnd, content: String| bank_emulator::NewTransfer {
            feed,
            amount_vnd,
            content,
            account_number: account.clone(),
            at: None,
            amount_text: None,
            sub_account: None,
        };
        if *paid && i % 6 == 5 {
            // Reported by both feeds; Casso posts first, once (a delivery that fails is left
            // to reconciliation), then SePay's webhook comes too.
            let transfer = booked(bank_emulator::Feed::Casso, *amount, format!("{code} chuyen khoan"));
            let (sepay_id, casso_id) = bank.book_on_both_feeds(&transfer);
            sent_ids.push(sepay_id);
            if drop_webhook {
                dropped.push((sepay_id, casso_id));
            } else {
                let bank = bank.clone();
                casso_senders.push(tokio::spawn(async move {
                    let casso = bank.deliver(casso_id, bank_emulator::Feed::Casso).await;
                    let sepay = bank.deliver(sepay_id, bank_emulator::Feed::Sepay).await;
                    (sepay_id, [casso, sepay])
                }));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        if *paid && i % 6 == 2 && !drop_webhook {
            // Paid through payOS: the bank's transfer is in SePay's feed too (same reference).
            // payOS posts 1 to 3 times, signed, at the same moment as SePay's webhook.
            let content = code[code.len().saturating_sub(9)..].to_string();
            let id = bank.book(&booked(bank_emulator::Feed::Sepay, *amount, content.clone()));
            sent_ids.push(id);
            let payos = payos_delivery(vars, code, *amount, &account, &format!("FT{id:010}"), &content)?;
            let sepay = json!({"id": id, "gateway": "MBBank", "transactionDate": "2026-11-22 10:00:00",
                "accountNumber": account, "code": null, "content": content, "transferType": "in",
                "transferAmount": amount, "accumulated": 0, "subAccount": null, "referenceCode": format!("FT{id:010}"), "description": ""})
            .to_string();
            for _ in 0..rand::random_range(1..=3) {
                let (http, url, body) = (http.clone(), format!("{base}/webhooks/payos"), payos.clone());
                senders.push(tokio::spawn(async move { send_json(&http, &url, &body).await }));
            }
            let (http, url, key) = (http.clone(), format!("{base}/webhooks/sepay"), key.clone());
            senders.push(tokio::spawn(async move { send_like_sepay(&http, &url, &key, &sepay).await }));
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let mut payloads = Vec::new();
        if *paid {
            payloads.push((format!("MBVCB.{i}.{code}.CT tu NGUYEN VAN A"), *amount));
        }
        if i % 17 == 3 {
            // A transfer without any code: it must be kept, unmatched.
            payloads.push((format!("chuyen tien hoc phi {i}"), 500_000));
        }
        for (content, amount) in payloads {
            // Every transfer is reported by both feeds (a seller who connected SePay and Casso
            // to one account), each under its own id and each with its own redeliveries.
            let (id, casso_id) = bank.book_on_both_feeds(&booked(bank_emulator::Feed::Sepay, amount, content.clone()));
            sent_ids.push(id);
            if amount == 500_000 && content.starts_with("chuyen tien hoc phi") {
                unmatched_ids.push(id);
            }
            if drop_webhook {
                dropped.push((id, casso_id));
                continue;
            }
            for _ in 0..rand::random_range(1..=3) {
                let bank = bank.clone();
                casso_senders.push(tokio::spawn(async move {
                    (
                        id,
                        [
                            bank.deliver(casso_id, bank_emulator::Feed::Casso).await,
                            bank_emulator::Delivery::NotConfigured,
                        ],
                    )
                }));
            }
            let body = json!({"id": id, "gateway": "MBBank", "transactionDate": "2026-11-22 10:00:00",
                "accountNumber": account, "code": null, "content": content, "transferType": "in",
                "transferAmount": amount, "accumulated": 0, "subAccount": null, "referenceCode": format!("FT{id:010}"), "description": ""})
            .to_string();
            for _ in 0..rand::random_range(3..=10) {
                let (http, url, key, body) =
                    (http.clone(), format!("{base}/webhooks/sepay"), key.clone(), body.clone());
                senders.push(tokio::spawn(async move { send_like_sepay(&http, &url, &key, &body).await }));
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut casso_failed = 0;
    for s in casso_senders {
        let (_, deliveries) = s.await?;
        casso_failed += deliveries
            .iter()
            .filter(|d| {
                !matches!(d, bank_emulator::Delivery::Delivered { .. } | bank_emulator::Delivery::NotConfigured)
            })
            .count();
    }
    let mut webhook_calls = 0;
    let mut webhook_failures = 0;
    for s in senders {
        let (calls, ok) = s.await?;
        webhook_calls += calls;
        webhook_failures += usize::from(!ok);
    }
    Ok(Sent { sent_ids, unmatched_ids, dropped, dropped_stretch, casso_failed, webhook_calls, webhook_failures })
}

/// One webhook delivery, retried every second until a 2xx, as SePay retries (up to 3 minutes).
async fn send_like_sepay(http: &reqwest::Client, url: &str, key: &str, body: &str) -> (usize, bool) {
    send_until_accepted(http, url, Some(&format!("Apikey {key}")), body).await
}

/// payOS signs in the body: no header.
async fn send_json(http: &reqwest::Client, url: &str, body: &str) -> (usize, bool) {
    send_until_accepted(http, url, None, body).await
}

/// Posts `body` until it is answered 2xx (a feed's retries), for at most 3 minutes.
async fn send_until_accepted(
    http: &reqwest::Client,
    url: &str,
    authorization: Option<&str>,
    body: &str,
) -> (usize, bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut calls = 0;
    while Instant::now() < deadline {
        calls += 1;
        let mut request = http.post(url).header("content-type", "application/json").body(body.to_string());
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        if request.send().await.is_ok_and(|r| r.status().is_success()) {
            return (calls, true);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (calls, false)
}

/// payOS's signed delivery of a transfer for order `code` (its link's orderCode), as the
/// emulator signs it.
fn payos_delivery(vars: &Vars, code: &str, amount: i64, account: &str, reference: &str, text: &str) -> Result<String> {
    let pattern = config::code_pattern(vars)?;
    let parsed = coursedrop::domain::OrderCode::parse(code, &pattern)?;
    let number = pattern.payos_number(&parsed).ok_or_else(|| anyhow!("{code} has no payOS number"))?;
    let data = json!({
        "orderCode": number, "amount": amount, "description": text, "accountNumber": account,
        "reference": reference, "transactionDateTime": "2026-11-22 10:00:00", "currency": "VND",
        "paymentLinkId": format!("chaos-link-{number}"), "code": "00", "desc": "success",
        "counterAccountBankId": "", "counterAccountBankName": "", "counterAccountName": "",
        "counterAccountNumber": "", "virtualAccountName": "", "virtualAccountNumber": ""
    });
    let signature = bank_emulator::payos::sign_data(bank_emulator::payos::CHECKSUM_KEY, &data);
    Ok(json!({"code": "00", "desc": "success", "success": true, "data": data, "signature": signature}).to_string())
}
