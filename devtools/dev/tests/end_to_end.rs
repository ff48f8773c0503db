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

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "end_to_end/logs.rs"]
mod logs;

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Kills the child when the test ends, pass or fail.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Killed,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; `devtools/services up` installs it)");
        let driver = Killed(driver);
        let http = coursedrop::support::http_client::client_builder().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            // A phone-sized window: the page must work there.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=412,915"]
        }}}});
        let created: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        Browser { http, session: format!("{base}/session/{id}"), _driver: driver }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found[ELEMENT].as_str().unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({"text": text}))).await;
    }

    async fn script(&self, js: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": js, "args": []}))).await
    }

    /// Runs `js` until it returns something truthy, or fails after `secs`.
    async fn wait_for(&self, what: &str, js: &str, secs: u64) -> Value {
        let started = Instant::now();
        loop {
            let v = self.script(js).await;
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            assert!(started.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let dir = workspace().join("target/artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("buyer-page-{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// `coursedrop-dev serve` on a fresh database and its own ports and queues.
async fn stack() -> (Killed, String, String, u16) {
    let base_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/coursedrop".into());
    let (server, _) = base_url.rsplit_once('/').unwrap();
    let db = format!("coursedrop_browser_{}", rand::random::<u32>());
    let (port, drive_port) = (free_port(), free_port());
    let admin = sqlx::MySqlPool::connect(&base_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4")))
        .execute(&admin)
        .await
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_coursedrop-dev"))
        .arg("serve")
        .current_dir(workspace())
        .env("DATABASE_URL", format!("{server}/{db}"))
        .env("PORT", port.to_string())
        .env("DRIVE_EMULATOR_PORT", drive_port.to_string())
        .env("QUEUE_NAME_PREFIX", format!("browser-{}-", rand::random::<u32>()))
        .env("SEPAY_API_KEY", "browser-test-key")
        .env("SELLER_NAME", "Học Rust cùng Lan")
        .env("SUPPORT_ZALO", "0912345678")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(r) = coursedrop::support::http_client::client_builder()
            .build()
            .unwrap()
            .get(format!("{base}/courses"))
            .send()
            .await
            && r.status().is_success()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the dev stack did not come up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (child, base, db, drive_port)
}

#[tokio::test]
async fn a_buyer_orders_pays_watches_progress_and_gets_the_link() {
    let (_stack, base, db, drive_port) = stack().await;
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
    browser.screenshot("0-coupon").await;
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
    browser.screenshot("1-payment").await;

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
            browser.screenshot("2-progress").await;
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
    browser.screenshot("3-done").await;

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
    let shot = browser.screenshot("4-resend").await;
    eprintln!("screenshots in {}", shot.parent().unwrap().display());
    drop(browser);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{db}`"))).execute(&pool).await.unwrap();
}
