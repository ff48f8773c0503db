//! The seller's console in a real browser (a phone's window, then a laptop's) against the
//! whole local stack: a buyer orders with a phone number and pays; the owner signs in through
//! the link the console emails (read from the SMTP sink), finds the order by the phone,
//! refunds it, sees the refund in the order's timeline under their name, and downloads the
//! revenue workbook, which opens with the sale and its refund netted. Every page is
//! screenshotted at both widths: `target/artifacts/console-*.png`.

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde_json::json;

use super::browser::{Browser, stack};

/// The newest sign-in link the SMTP sink holds for `to`, written after `since`.
fn sign_in_link(to: &str, since: SystemTime) -> Option<String> {
    coursedrop::testing::newest_line_to(to, since, "/sign-in/")
}

async fn shoot_both(browser: &Browser, url: &str, name: &str) {
    browser.goto(url).await;
    browser.resize(412, 915).await;
    browser.screenshot(&format!("console-{name}-phone")).await;
    browser.resize(1280, 900).await;
    browser.screenshot(&format!("console-{name}-desktop")).await;
    browser.resize(412, 915).await;
}

#[tokio::test]
async fn the_owner_signs_in_by_email_finds_an_order_by_phone_refunds_it_and_exports_revenue() {
    let _one = super::browser::ONE_STACK_AT_A_TIME.lock().await;
    let s = stack().await;
    let http = coursedrop::support::http_client::client_builder().build().unwrap();

    // A buyer orders with a phone number and pays as SePay reports it.
    let placed: serde_json::Value = http
        .post(format!("{}/orders", s.base))
        .json(&json!({"email": "console-buyer@example.com", "phone": "0903 123 456", "courses": ["serverless-aws"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = placed["code"].as_str().unwrap_or_else(|| panic!("an order: {placed}")).to_string();
    let amount = placed["amount_vnd"].as_i64().unwrap();
    let sepay_id = chrono::Utc::now().timestamp_micros();
    let paid = http
        .post(format!("{}/webhooks/sepay", s.base))
        .header("Authorization", "Apikey browser-test-key")
        .json(&json!({
            "id": sepay_id, "gateway": "MBBank", "transactionDate": "2026-12-05 10:00:00",
            "accountNumber": "0123456789", "code": null, "subAccount": null, "transferType": "in",
            "transferAmount": amount, "accumulated": 0, "referenceCode": format!("FT{sepay_id}"),
            "content": format!("{code} chuyen tien"), "description": ""
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let pool = sqlx::MySqlPool::connect(
        &std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/coursedrop".into()),
    )
    .await
    .unwrap();
    let started = Instant::now();
    loop {
        let status: String =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT status FROM `{}`.orders WHERE code = ?", s.db)))
                .bind(&code)
                .fetch_one(&pool)
                .await
                .unwrap();
        if status == "completed" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "the order is {status} after 3 minutes");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The owner asks for a link and signs in through it, on a phone.
    let browser = Browser::start().await;
    browser.goto(&format!("{}/sign-in", s.console)).await;
    shoot_both(&browser, &format!("{}/sign-in", s.console), "0-sign-in").await;
    let since = SystemTime::now() - Duration::from_secs(1);
    browser.type_into("input[name=email]", &s.owner).await;
    browser.click("#sign-in button").await;
    browser.wait_for("the link's notice", "return document.getElementById('link-sent')", 10).await;
    let started = Instant::now();
    let link = loop {
        if let Some(link) = sign_in_link(&s.owner, since) {
            break link;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no sign-in link in the sink");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser.goto(&link).await;
    browser.click("#confirm button").await;
    browser.wait_for("the dashboard", "return document.getElementById('revenue-today')", 10).await;
    let revenue_today = browser.script("return document.getElementById('revenue-today').textContent").await;
    assert_ne!(revenue_today, "0", "today's sale on the dashboard");

    // Finds the order by the buyer's phone.
    browser.goto(&format!("{}/orders", s.console)).await;
    browser.type_into("input[name=q]", "0903123456").await;
    browser.click("#filters button").await;
    browser
        .wait_for(
            "the search's answer",
            // The list before the search shows the order too: wait for the answer's page.
            &format!(
                "return location.search.includes('q=0903123456') && document.readyState === 'complete' \
                 && !!document.querySelector(\"#orders a[href='/orders/{code}']\")"
            ),
            10,
        )
        .await;
    assert_eq!(browser.script("return document.getElementById('total').textContent").await, "1");
    browser.click(&format!("#orders a[href='/orders/{code}']")).await;
    browser.wait_for("the order page", "return document.getElementById('order-code')", 10).await;
    assert_eq!(browser.script("return document.getElementById('order-status').textContent").await, "completed");
    shoot_both(&browser, &format!("{}/orders/{code}", s.console), "2-order").await;
    shoot_both(&browser, &format!("{}/orders/{code}/refund", s.console), "3-refund").await;

    // Refunds it: the confirmation names the amount.
    browser.goto(&format!("{}/orders/{code}", s.console)).await;
    browser.click("#refund").await;
    browser.wait_for("the confirmation", "return document.getElementById('refund-amount')", 10).await;
    let shown = browser.script("return document.getElementById('refund-amount').textContent").await;
    assert_eq!(shown, coursedrop::domain::format_vnd(amount).as_str());
    browser.type_into("#refund-form input[name=reason]", "khách đổi ý").await;
    browser.click("#refund-form button").await;
    browser
        .wait_for(
            "the refunded order",
            "const s = document.getElementById('order-status'); return s && s.textContent === 'refunded'",
            20,
        )
        .await;
    let timeline = browser.script("return document.getElementById('timeline').textContent").await;
    let timeline = timeline.as_str().unwrap();
    assert!(timeline.contains(&format!("staff:{}", s.owner)), "the refund under the owner's name: {timeline}");
    assert!(timeline.contains("khách đổi ý"), "with its reason");
    assert!(
        browser
            .script("return document.querySelector('.flash').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("refunded")
    );

    // The revenue workbook opens, with the sale and its refund netted.
    browser.goto(&format!("{}/revenue", s.console)).await;
    let year = coursedrop::domain::today_in_vietnam().format("%Y").to_string();
    let b64 = browser
        .script(&format!(
            "return fetch('/revenue/{year}.xlsx').then(r => r.arrayBuffer()).then(b => {{
               let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); return btoa(s); }});"
        ))
        .await;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
    let dir = super::browser::workspace().join("target/artifacts");
    std::fs::write(dir.join(format!("console-revenue-{year}.xlsx")), &bytes).unwrap();
    let mut book = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the workbook opens");
    let mut sheet = String::new();
    std::io::Read::read_to_string(&mut book.by_name("xl/worksheets/sheet1.xml").unwrap(), &mut sheet).unwrap();
    assert_eq!(
        sheet.matches(&format!("<v>{amount}</v>")).count(),
        4,
        "gross and refunds, in the month and the total: {sheet}"
    );

    // Every other page, at both widths.
    for (path, name) in [
        ("/", "1-dashboard"),
        ("/orders", "4-orders"),
        ("/problems", "5-problems"),
        ("/catalog", "6-catalog"),
        ("/coupons", "7-coupons"),
        ("/revenue", "8-revenue"),
        ("/audit", "9-audit"),
    ] {
        shoot_both(&browser, &format!("{}{path}", s.console), name).await;
        let title = browser.script("return document.title").await;
        assert!(title.as_str().unwrap().ends_with("coursedrop"), "{path}: {title}");
    }
}
