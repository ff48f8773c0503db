//! End to end, through the binaries: the log check of a whole flow (`logs`), and the buyer's
//! page in a real browser.
//!
//! The buyer's page in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver) against the whole local stack (`coursedrop-dev serve` on a fresh database:
//! every function, the deliver job, the Drive emulator, moto, MariaDB, the SMTP sink).
//!
//! The buyer picks a course, enters an email and places the order; the page shows the amount,
//! the QR and the transfer text. The payment is sent as SePay sends it. The page then shows
//! the order moving and, at the end, the Drive link; the buyer has the delivery email sent
//! again from the page. A coupon lowers the total before ordering. Screenshots go to
//! `target/artifacts/buyer-page-*.png`.

use std::time::{Duration, Instant};

#[path = "end_to_end/browser.rs"]
mod browser;
#[path = "end_to_end/console.rs"]
mod console;
#[path = "end_to_end/logs.rs"]
mod logs;

use browser::{Browser, stack};
use serde_json::json;

#[tokio::test]
async fn a_buyer_orders_pays_watches_progress_and_gets_the_link() {
    let _one = browser::ONE_STACK_AT_A_TIME.lock().await;
    let browser::Stack { _child, base, db, drive_port, bank_port, .. } = stack().await;
    let pool = sqlx::MySqlPool::connect(
        &std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/coursedrop".into()),
    )
    .await
    .unwrap();
    // The seller's promotion: 10 % off, 5 uses.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO `{db}`.coupons (code, percent_off, max_uses) VALUES ('TET10', 10, 5)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;

    // The seller's brand: the title, the heading, the support footer.
    assert_eq!(browser.script("return document.title").await, "Học Rust cùng Lan");
    assert_eq!(browser.script("return document.getElementById('seller').textContent").await, "Học Rust cùng Lan");
    assert_eq!(browser.script("return document.querySelector('#support a').href").await, "https://zalo.me/0912345678");

    // Vietnamese by default, prices the Vietnamese way.
    browser.wait_for("the catalog", "return document.querySelectorAll('#courses input').length === 3", 20).await;
    let heading = browser.script("return document.querySelector('#shop h2').textContent").await;
    assert_eq!(heading, "Chọn khoá học");
    assert_eq!(browser.script("return document.getElementById('place').disabled").await, true);
    browser.click(".lang button[data-lang=en]").await;
    assert_eq!(browser.script("return document.querySelector('#shop h2').textContent").await, "Choose your courses");
    browser.click(".lang button[data-lang=vi]").await;

    browser.click("input[value=rust-101]").await;
    let total = browser.script("return document.getElementById('total').textContent").await;
    assert_eq!(total, "499.000 ₫");
    // A coupon: a wrong one is explained, the right one shows the new total before ordering.
    browser.type_into("#coupon", "nope10").await;
    browser.click("#apply").await;
    let refused = browser
        .wait_for(
            "the coupon's refusal",
            "const n = document.getElementById('coupon-note'); return n.classList.contains('bad') && n.textContent",
            10,
        )
        .await;
    assert_eq!(refused, "Không có mã giảm giá này. Hãy kiểm tra lại cách viết.", "in the page's language");
    assert_eq!(browser.script("return document.getElementById('discount-row').hidden").await, true);
    browser.script("document.getElementById('coupon').value = ''; return true").await;
    browser.type_into("#coupon", "tet10").await;
    browser.click("#apply").await;
    browser.wait_for("the discount", "return !document.getElementById('discount-row').hidden", 10).await;
    assert_eq!(browser.script("return document.getElementById('discount').textContent").await, "−49.900 ₫");
    assert_eq!(browser.script("return document.getElementById('total').textContent").await, "449.100 ₫");
    assert_eq!(
        browser.script("return document.getElementById('coupon-note').textContent").await,
        "Đã áp dụng mã TET10."
    );
    browser.screenshot("buyer-page-0-coupon").await;
    browser.type_into("#email", "not-an-email").await;
    browser.click("#place").await;
    let error =
        browser.wait_for("the email error", "return document.getElementById('form-error').textContent", 5).await;
    assert_eq!(error, "Email chưa đúng.");
    browser.script("document.getElementById('email').value = ''; return true").await;
    browser.type_into("#email", "browser-buyer@example.com").await;
    browser.click("#place").await;

    let code = browser.wait_for("the order code", "return document.getElementById('code').textContent", 20).await;
    let code = code.as_str().unwrap().to_string();
    assert!(code.starts_with("CD"), "{code}");
    assert_eq!(browser.script("return document.getElementById('transfer-text').textContent").await, code.as_str());
    assert_eq!(
        browser.script("return document.getElementById('amount').textContent").await,
        "449.100 ₫",
        "the discounted amount"
    );
    browser
        .wait_for(
            "the QR image",
            "const i = document.getElementById('qr'); return i.complete && i.naturalWidth > 0",
            10,
        )
        .await;
    let url = browser.script("return location.search").await;
    let url = url.as_str().unwrap().to_string();
    let token =
        url.strip_prefix(&format!("?order={code}&t=")).unwrap_or_else(|| panic!("the order and its token: {url}"));
    assert_eq!(token.len(), 32, "a reload keeps the order, opened by its view token: {url}");
    // payOS's link beside our QR (the local stack runs payOS's emulator).
    let payos_link = browser
        .script("return !document.getElementById('payos').hidden && document.getElementById('payos-link').href")
        .await;
    assert!(payos_link.as_str().is_some_and(|h| h.starts_with("https://pay.payos.vn/web/")), "{payos_link}");
    browser.screenshot("buyer-page-1-payment").await;

    // Uploads at a real network's pace (10 MB/s a file), so the delivery can be seen in progress.
    let http = coursedrop::support::http_client::client_builder().build().unwrap();
    let paced = http
        .post(format!("http://127.0.0.1:{drive_port}/emulator/faults"))
        .json(&json!({"upload_bytes_per_sec": 10_000_000}))
        .send()
        .await
        .unwrap();
    assert!(paced.status().is_success());

    // Pay exactly as SePay calls the webhook.
    let sepay_id = chrono::Utc::now().timestamp_micros();
    let payment = json!({
        "id": sepay_id, "gateway": "MBBank", "transactionDate": "2026-11-22 10:00:00",
        "accountNumber": "0123456789", "code": null, "subAccount": null, "transferType": "in",
        "transferAmount": 449100, "accumulated": 0, "referenceCode": format!("FT{sepay_id}"),
        "content": format!("MBVCB.{sepay_id}.{}.CT tu 0123456789 NGUYEN VAN A", code.to_lowercase()), "description": ""
    });
    let paid = http
        .post(format!("{base}/webhooks/sepay"))
        .header("Authorization", "Apikey browser-test-key")
        .json(&payment)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);

    // Watch the page until the link shows, noting every state it showed on the way.
    let mut seen = std::collections::BTreeSet::new();
    let mut progress_shot = false;
    let started = Instant::now();
    let link = loop {
        let state = browser
            .script(
                "const it = document.querySelector('#items .item');
                 const a = document.querySelector('#items a.drive-link');
                 return { order: document.getElementById('order-state').textContent,
                          item: it ? it.dataset.status : null,
                          bar: !!document.querySelector('#items progress'),
                          link: a ? a.href : null,
                          paymentHidden: document.getElementById('payment').hidden };",
            )
            .await;
        seen.insert(state["item"].as_str().unwrap_or("").to_string());
        if state["bar"] == true && !progress_shot {
            browser.screenshot("buyer-page-2-progress").await;
            progress_shot = true;
        }
        if let Some(link) = state["link"].as_str() {
            assert_eq!(state["order"], "Hoàn tất — kiểm tra email của bạn");
            assert_eq!(state["paymentHidden"], true, "the payment box goes once paid");
            break link.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(180), "no link after 3 minutes; saw {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(seen.contains("awaiting_payment"));
    assert!(seen.contains("delivering") && progress_shot, "the page showed the delivery's progress bar: {seen:?}");
    let stored: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT i.drive_link FROM `{db}`.order_items i JOIN `{db}`.orders o ON o.id = i.order_id WHERE o.code = ?"
    )))
    .bind(&code)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(link, stored, "the page shows the folder that was shared");
    browser.screenshot("buyer-page-3-done").await;

    // "I never got the email": the buyer asks for it again from the page. A wrong address is
    // refused without saying whose order it is; the right one sends it.
    assert_eq!(browser.script("return document.getElementById('help').hidden").await, false);
    browser.type_into("#resend-email", "someone-else@example.com").await;
    browser.click("#resend").await;
    let refused = browser
        .wait_for(
            "the refusal",
            "const r = document.getElementById('resend-result'); return r.classList.contains('bad') && r.textContent",
            10,
        )
        .await;
    assert_eq!(refused, "Mã đơn và email này không khớp. Hãy dùng đúng email đã đặt hàng.", "in the page's language");
    browser.script("document.getElementById('resend-email').value = ''; return true").await;
    browser.type_into("#resend-email", "Browser-Buyer@example.com").await;
    browser.click("#resend").await;
    let resent = browser
        .wait_for(
            "the resend",
            "const r = document.getElementById('resend-result'); return r.classList.contains('ok') && r.textContent",
            10,
        )
        .await;
    assert_eq!(resent, "Đã gửi lại 1 email.");
    let events: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM `{db}`.order_events e JOIN `{db}`.orders o ON o.id = e.order_id
         WHERE o.code = ? AND e.kind = 'email_resent' AND e.actor = 'buyer'"
    )))
    .bind(&code)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(events, 1, "one delivery email sent again");
    let shot = browser.screenshot("buyer-page-4-resend").await;
    eprintln!("screenshots in {}", shot.parent().unwrap().display());
    drop(browser);
    paid_through_payos_is_delivered_once(&http, &base, bank_port, &pool, &db).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{db}`"))).execute(&pool).await.unwrap();
}

/// Another buyer pays on payOS's page: payOS's signed webhook and SePay's report of the same
/// bank transfer both arrive; the order is paid once, delivered once, emailed once.
async fn paid_through_payos_is_delivered_once(
    http: &reqwest::Client,
    base: &str,
    bank_port: u16,
    pool: &sqlx::MySqlPool,
    db: &str,
) {
    let buyer = format!("payos-buyer-{}@example.com", rand::random::<u32>());
    let order: serde_json::Value = http
        .post(format!("{base}/orders"))
        .json(&json!({"email": buyer, "courses": ["sql-thuc-chien"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number: i64 = order["payment"]["payos"]["order_code"].as_str().unwrap().parse().unwrap();
    let (code, token) = (order["code"].as_str().unwrap(), order["view_token"].as_str().unwrap());
    let paid: serde_json::Value = http
        .post(format!("http://127.0.0.1:{bank_port}/emulator/payos/pay"))
        .json(&json!({"orderCode": number, "also_sepay": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid["webhook"]["delivered"]["status"], 200, "{paid}");
    let started = Instant::now();
    loop {
        let view: serde_json::Value =
            http.get(format!("{base}/orders/{code}?t={token}")).send().await.unwrap().json().await.unwrap();
        if view["status"] == "completed" {
            assert_eq!(view["paid_vnd"], 299_000, "credited once: {view}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not delivered in 2 minutes: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let count = |sql: &str| {
        let sql = sql.replace("{db}", db);
        async move { sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(code).fetch_one(pool).await.unwrap() }
    };
    let received = count(
        "SELECT COUNT(*) FROM `{db}`.order_events e JOIN `{db}`.orders o ON o.id = e.order_id
         WHERE o.code = ? AND e.kind = 'payment_received' AND e.actor = 'payos-webhook'",
    )
    .await;
    assert_eq!(received, 1, "payOS's report counted, SePay's kept as a sighting");
    let delivered = count(
        "SELECT COUNT(*) FROM `{db}`.order_events e JOIN `{db}`.orders o ON o.id = e.order_id
         WHERE o.code = ? AND e.kind = 'item_status' AND e.to_status = 'completed'",
    )
    .await;
    assert_eq!(delivered, 1, "delivered once");
    let started = Instant::now();
    while coursedrop::testing::mails_to(&buyer).is_empty() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A second email would come within the same moment as the first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(coursedrop::testing::mails_to(&buyer).len(), 1, "one delivery email");
}
