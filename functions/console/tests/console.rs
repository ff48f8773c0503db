//! The console over real HTTP against MariaDB (a fresh database per test), the SMTP sink, SQS
//! and S3 on the local emulators, and the Drive emulator: sign-in links, sessions, the form
//! token, roles, the audit of every action, search, exports.

use std::net::SocketAddr;

use coursedrop::adapters::drive::StaticToken;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::mail::Mailer;
use coursedrop::app::config::Vars;
use coursedrop::app::console::auth;
use coursedrop::domain::staff::StaffRole;
use coursedrop::testing;
use drive_emulator::TempEmulator;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sqlx::MySqlPool;

struct Site {
    base: String,
    http: reqwest::Client,
    pool: MySqlPool,
    _emulator: TempEmulator,
}

/// A signed-in browser: its session cookie and the form token its pages carry.
struct Browser {
    cookie: String,
    csrf: String,
}

fn unique(name: &str) -> String {
    format!("{name}.{}@shop.example", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

async fn site(pool: MySqlPool, console_url: Option<&'static str>) -> Site {
    site_with(pool, console_url, "off", Vec::new()).await
}

/// The console, its sign-in answers taking at least `answer_time` (`off`: no floor), with
/// `extra` settings.
async fn site_with(
    pool: MySqlPool,
    console_url: Option<&'static str>,
    answer_time: &'static str,
    extra: Vec<(&'static str, String)>,
) -> Site {
    let emulator = TempEmulator::start("console-test").await.unwrap();
    let drive = DriveClient::new(testing::fast_drive_config(&emulator.base), StaticToken("emulator-token".into()));
    let mailer = Mailer::from_vars(&Vars::new(|k: &str| match k {
        "SMTP_URL" => Some(testing::smtp_url()),
        _ => None,
    }))
    .unwrap();
    let (publisher, _) = testing::fresh_queues(&testing::sqs_client().await).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = console_url.map(str::to_string).unwrap_or_else(|| base.clone());
    let vars = Vars::new(move |k: &str| match k {
        "CONSOLE_URL" => Some(url.clone()),
        "CONSOLE_LINK_ANSWER_TIME" => Some(answer_time.to_string()),
        other => extra.iter().find(|(k, _)| *k == other).map(|(_, v)| v.clone()),
    });
    let state =
        console::ConsoleState::new(pool.clone(), drive, mailer, publisher, testing::s3_source().await, &vars).unwrap();
    let app = console::router(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http =
        coursedrop::support::http_client::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Site { base, http, pool, _emulator: emulator }
}

fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a form token on the page");
    html[at + 19..].split('"').next().unwrap().to_string()
}

/// The newest sign-in link the sink holds for `email`.
fn link_for(email: &str) -> Option<String> {
    testing::newest_line_to(email, std::time::UNIX_EPOCH, "/sign-in/")
}

impl Site {
    async fn get(&self, path: &str, b: Option<&Browser>) -> reqwest::Response {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(b) = b {
            r = r.header(COOKIE, &b.cookie);
        }
        r.send().await.unwrap()
    }

    async fn post(&self, path: &str, b: Option<&Browser>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(b) = b {
            r = r.header(COOKIE, &b.cookie);
        }
        r.send().await.unwrap()
    }

    async fn ask_link(&self, email: &str) -> (StatusCode, String) {
        let r = self.post("/sign-in", None, &[("email", email)]).await;
        (r.status(), r.text().await.unwrap())
    }

    /// Signs `email` in through its link; the browser it becomes.
    async fn sign_in(&self, email: &str) -> Browser {
        let (status, _) = self.ask_link(email).await;
        assert_eq!(status, StatusCode::OK);
        let link = link_for(email).expect("a sign-in link in the sink");
        let path = &link[link.find("/sign-in/").unwrap()..];
        let r = self.post(path, None, &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
        let cookie = set_cookie_value(&r, "cd_session").expect("a session cookie");
        let cookie = cookie.split(';').next().unwrap().to_string();
        let page = self.get("/", Some(&Browser { cookie: cookie.clone(), csrf: String::new() })).await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = csrf_of(&page.text().await.unwrap());
        Browser { cookie, csrf }
    }

    async fn staff(&self, role: StaffRole) -> (String, Browser) {
        let email = unique(role.as_str());
        auth::add_staff(&self.pool, &email, role, "operator:test").await.unwrap();
        let b = self.sign_in(&email).await;
        (email, b)
    }
}

/// A paid order of one course, with its payment as a feed records it; the code.
async fn paid_order(pool: &MySqlPool, price: i64, phone: &str, reference: &str) -> String {
    let (code, created) = testing::pending_order(pool, &[price], 30).await;
    sqlx::query("UPDATE orders SET status = 'paid', paid_vnd = total_vnd, paid_at = NOW(3), phone = ? WHERE id = ?")
        .bind(phone)
        .bind(created.order_id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE order_items SET status = 'completed' WHERE order_id = ?")
        .bind(created.order_id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO payments (sepay_id, order_id, transfer_type, amount_vnd, feed, feed_txn_id, bank_reference,
                               reference_code, content, raw_payload)
         VALUES (?, ?, 'in', ?, 'sepay', ?, ?, ?, ?, '{}')",
    )
    .bind(created.order_id as i64 + 7_000_000)
    .bind(created.order_id)
    .bind(price)
    .bind(created.order_id.to_string())
    .bind(reference)
    .bind(reference)
    .bind(code.as_str())
    .execute(pool)
    .await
    .unwrap();
    code.to_string()
}

async fn count(pool: &MySqlPool, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).bind(bind).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_link_signs_in_once_within_its_time_and_says_nothing_of_who_is_staff(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let email = unique("owner");
    auth::add_staff(&pool, &email, StaffRole::Owner, "operator:test").await.unwrap();

    // The same answer for staff and a stranger.
    let (s1, staff_page) = site.ask_link(&email).await;
    let (s2, stranger_page) = site.ask_link(&unique("stranger")).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(staff_page, stranger_page);

    // Signed out, a page sends you to sign in.
    let r = site.get("/orders", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/sign-in");

    let link = link_for(&email).unwrap();
    let path = link[link.find("/sign-in/").unwrap()..].to_string();
    // Opening the link (a mail scanner does) uses nothing up: sign-in is the button's POST.
    assert_eq!(site.get(&path, None).await.status(), StatusCode::OK);
    let first = site.post(&path, None, &[]).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie_value(&first, "cd_session").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    // Single use.
    assert_eq!(site.post(&path, None, &[]).await.status(), StatusCode::BAD_REQUEST);

    // Expired after its time.
    site.ask_link(&email).await;
    let late = link_for(&email).unwrap();
    assert_ne!(late, link);
    sqlx::query("UPDATE staff_sign_in_links SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE used_at IS NULL")
        .execute(&pool)
        .await
        .unwrap();
    let r = site.post(&late[late.find("/sign-in/").unwrap()..], None, &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookie_value(&r, "cd_session").is_none());

    // A made-up token is answered as a used one.
    let r = site.post(&format!("/sign-in/{}", "A".repeat(43)), None, &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../../migrations")]
async fn links_are_rate_limited_per_address(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let email = unique("owner");
    auth::add_staff(&pool, &email, StaffRole::Owner, "operator:test").await.unwrap();
    for _ in 0..5 {
        assert_eq!(site.ask_link(&email).await.0, StatusCode::OK);
    }
    let r = site.post("/sign-in", None, &[("email", &email)]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-error-code"], "too_many_requests");
    // The limit is per client: someone else who knows the address does not use up the
    // owner's own (here the owner asks from another address of this machine).
    let elsewhere = coursedrop::support::http_client::client_builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = elsewhere.post(format!("{}/sign-in", site.base)).form(&[("email", &email)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A stranger's address is limited the same way: the limit says nothing of who is staff.
    let stranger = unique("stranger");
    for _ in 0..5 {
        site.ask_link(&stranger).await;
    }
    assert_eq!(site.ask_link(&stranger).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(testing::mails_to(&email).len(), 6);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_cookie_is_secure_when_the_console_is_served_over_https(pool: MySqlPool) {
    let site = site(pool.clone(), Some("https://console.shop.example")).await;
    let email = unique("owner");
    auth::add_staff(&pool, &email, StaffRole::Owner, "operator:test").await.unwrap();
    site.ask_link(&email).await;
    let link = link_for(&email).unwrap();
    assert!(link.starts_with("https://console.shop.example/sign-in/"), "{link}");
    let r = site.post(&link[link.find("/sign-in/").unwrap()..], None, &[]).await;
    let cookie = set_cookie_value(&r, "cd_session").unwrap();
    for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{part} missing: {cookie}");
    }
    // A change from another site is refused whatever it carries.
    let b = Browser { cookie: cookie.split(';').next().unwrap().into(), csrf: String::new() };
    let r = site
        .http
        .post(format!("{}/sign-out", site.base))
        .header(COOKIE, &b.cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_new_sign_in_gets_a_new_session_and_disabling_ends_them_all(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (email, first) = site.staff(StaffRole::Support).await;
    let second = site.sign_in(&email).await;
    assert_ne!(first.cookie, second.cookie, "the session id changes at every sign-in");
    assert_eq!(site.get("/", Some(&first)).await.status(), StatusCode::OK);

    auth::disable_staff(&pool, &email, "operator:test").await.unwrap();
    for b in [&first, &second] {
        let r = site.get("/orders", Some(b)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "a disabled account's session ends at once");
    }
    // And it signs in no more.
    site.ask_link(&email).await;
    let before = testing::mails_to(&email).len();
    site.ask_link(&email).await;
    assert_eq!(testing::mails_to(&email).len(), before);

    // Signing out ends the session on the server, not only in the browser.
    let (_, b) = site.staff(StaffRole::Owner).await;
    let r = site.post("/sign-out", Some(&b), &[("csrf", &b.csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(site.get("/", Some(&b)).await.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_change_without_the_form_token_is_refused_and_changes_nothing(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (_, b) = site.staff(StaffRole::Owner).await;
    let code = paid_order(&pool, 300_000, "0901234567", "FT1").await;
    for token in ["", "wrong", &"A".repeat(43)] {
        let r = site
            .post(
                &format!("/orders/{code}/refund"),
                Some(&b),
                &[("csrf", token), ("reason", "x"), ("confirm_vnd", "300000")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()["x-error-code"], "csrf");
    }
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders WHERE code = ? AND status = 'paid'", &code).await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn support_cannot_refund_and_nothing_changes(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (_, support) = site.staff(StaffRole::Support).await;
    let code = paid_order(&pool, 300_000, "0901234567", "FT2").await;
    let events =
        count(&pool, "SELECT COUNT(*) FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.code = ?", &code)
            .await;

    let r = site
        .post(
            &format!("/orders/{code}/refund"),
            Some(&support),
            &[("csrf", &support.csrf), ("reason", "asked"), ("confirm_vnd", "300000")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["x-error-code"], "forbidden");
    assert_eq!(site.get(&format!("/orders/{code}/refund"), Some(&support)).await.status(), StatusCode::FORBIDDEN);
    // Nor change the catalog, coupons, payments, or read the staff audit.
    for (path, form) in [
        ("/catalog", vec![("slug", "x"), ("title", "x"), ("price", "1"), ("source", "s3://b/p/")]),
        ("/coupons", vec![("code", "SALE10"), ("percent", "10")]),
        ("/payments/1/handled", vec![("note", "x")]),
    ] {
        let mut form = form;
        form.push(("csrf", &support.csrf));
        let r = site.post(path, Some(&support), &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(site.get("/audit", Some(&support)).await.status(), StatusCode::FORBIDDEN);

    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders WHERE code = ? AND status = 'paid'", &code).await, 1);
    let after =
        count(&pool, "SELECT COUNT(*) FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.code = ?", &code)
            .await;
    assert_eq!(after, events);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM coupons WHERE code = ?", "SALE10").await, 0);
    // What support may do, it can: resend the delivery email.
    let page = site.get(&format!("/orders/{code}"), Some(&support)).await.text().await.unwrap();
    assert!(!page.contains("/refund\""), "no refund button for support");
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_action_is_recorded_with_who_did_it(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (email, owner) = site.staff(StaffRole::Owner).await;
    let actor = format!("staff:{email}");
    let code = paid_order(&pool, 400_000, "0911111111", "FT3").await;

    // A refund must name the amount the page showed.
    let r = site
        .post(
            &format!("/orders/{code}/refund"),
            Some(&owner),
            &[("csrf", &owner.csrf), ("reason", "asked"), ("confirm_vnd", "1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let form = site.get(&format!("/orders/{code}/refund"), Some(&owner)).await.text().await.unwrap();
    assert!(form.contains("400.000"), "the confirmation names the amount");
    let r = site
        .post(
            &format!("/orders/{code}/refund"),
            Some(&owner),
            &[("csrf", &owner.csrf), ("reason", "buyer asked"), ("confirm_vnd", "400000")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders WHERE code = ? AND status = 'refunded'", &code).await, 1);
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.code = ? AND e.to_status = 'refunded' AND e.actor = ?",
    )
    .bind(&code)
    .bind(&actor)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(n >= 1, "the refund is in the order's events as {actor}");
    // The page after shows it.
    let page = site.get(&format!("/orders/{code}"), Some(&owner)).await.text().await.unwrap();
    assert!(page.contains(&actor));

    // Catalog and coupon changes go to the staff audit.
    let course: String = sqlx::query_scalar("SELECT slug FROM courses LIMIT 1").fetch_one(&pool).await.unwrap();
    let r = site
        .post(
            &format!("/catalog/{course}"),
            Some(&owner),
            &[("csrf", &owner.csrf), ("title", "Rust nâng cao"), ("price", "450.000")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = site
        .post(
            "/coupons",
            Some(&owner),
            &[("csrf", &owner.csrf), ("code", "TET2027"), ("percent", "20"), ("max_uses", "50")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let audited: Vec<(String, String)> =
        sqlx::query_as("SELECT action, actor FROM staff_audit ORDER BY id").fetch_all(&pool).await.unwrap();
    for action in ["staff.add", "staff.sign_in", "course.edit", "coupon.add"] {
        assert!(audited.iter().any(|(a, _)| a == action), "{action} audited: {audited:?}");
    }
    assert!(audited.iter().any(|(a, who)| a == "course.edit" && *who == actor));
    let price: i64 = sqlx::query_scalar("SELECT price_vnd FROM courses WHERE slug = ?")
        .bind(&course)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(price, 450_000);
    let audit_page = site.get("/audit", Some(&owner)).await.text().await.unwrap();
    assert!(audit_page.contains("coupon.add"));
}

#[sqlx::test(migrations = "../../migrations")]
async fn orders_are_found_by_code_email_phone_amount_and_bank_reference(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (_, b) = site.staff(StaffRole::Support).await;
    let a = paid_order(&pool, 123_000, "0987654321", "FT24001").await;
    let other = paid_order(&pool, 456_000, "0912345678", "FT24002").await;
    for (q, expect) in [(a.as_str(), &a), ("0987654321", &a), ("123000", &a), ("FT24002", &other), ("0912", &other)] {
        let page = site.get(&format!("/orders?q={q}"), Some(&b)).await.text().await.unwrap();
        assert!(page.contains(&format!("/orders/{expect}\"")), "{q} finds {expect}");
        let not = if expect == &a { &other } else { &a };
        assert!(!page.contains(&format!("/orders/{not}\"")), "{q} does not find {not}");
    }
    // Filters and paging.
    let refunded = site.get("/orders?status=refunded", Some(&b)).await.text().await.unwrap();
    assert!(!refunded.contains(&format!("/orders/{a}\"")));
    let bad = site.get("/orders?from=yesterday", Some(&b)).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let csv = site.get("/orders.csv?q=0987654321", Some(&b)).await;
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(&a) && text.contains("123000"));
    // An order page shows the payment with its feed, reference and raw payload.
    let page = site.get(&format!("/orders/{a}"), Some(&b)).await.text().await.unwrap();
    assert!(page.contains("FT24001") && page.contains("sepay"));
    assert_eq!(site.get("/orders/CD00000000", Some(&b)).await.status(), StatusCode::NOT_FOUND);
    // And the order's own ways to pay: its payOS link, and why its virtual account is missing.
    let id: u64 = sqlx::query_scalar("SELECT id FROM orders WHERE code = ?").bind(&a).fetch_one(&pool).await.unwrap();
    let link = coursedrop::domain::payment_route::OpenedRoute {
        kind: coursedrop::domain::payment_route::RouteKind::PayosLink,
        number: "24001".into(),
        external_id: "pl-24001".into(),
        checkout_url: Some("https://pay.payos.vn/web/pl-24001".into()),
        qr_code: None,
        account_name: None,
        raw: "{}".into(),
    };
    let mut conn = pool.acquire().await.unwrap();
    coursedrop::store::routes::record_opened(&mut conn, id, 123_000, &link, "test").await.unwrap();
    let va = coursedrop::domain::payment_route::RouteKind::VirtualAccount;
    coursedrop::store::routes::record_failed(
        &mut conn,
        id,
        123_000,
        va,
        "SePay virtual accounts could not be reached",
        "test",
    )
    .await
    .unwrap();
    let page = site.get(&format!("/orders/{a}"), Some(&b)).await.text().await.unwrap();
    // The page escapes `/` in attributes.
    assert!(page.contains("Liên kết payOS") && page.contains("pay.payos.vn&#x2f;web&#x2f;pl-24001"), "the link");
    assert!(page.contains("không mở được") && page.contains("could not be reached"), "why no virtual account");
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_revenue_workbook_opens_with_the_months_and_courses(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (_, b) = site.staff(StaffRole::Owner).await;
    paid_order(&pool, 250_000, "0900000001", "FT5").await;
    paid_order(&pool, 350_000, "0900000002", "FT6").await;
    let year = coursedrop::domain::today_in_vietnam().format("%Y").to_string();
    let page = site.get("/revenue", Some(&b)).await.text().await.unwrap();
    assert!(page.contains("600.000"), "the year's total on the page");
    let csv = site.get(&format!("/revenue/{year}.csv"), Some(&b)).await.text().await.unwrap();
    assert!(csv.contains(&format!("{year},total,2,600000,0,600000")), "{csv}");
    let xlsx = site.get(&format!("/revenue/{year}.xlsx"), Some(&b)).await;
    assert_eq!(xlsx.status(), StatusCode::OK);
    let bytes = xlsx.bytes().await.unwrap();
    let mut book = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("an xlsx is a zip");
    let mut sheet = String::new();
    std::io::Read::read_to_string(&mut book.by_name("xl/worksheets/sheet1.xml").unwrap(), &mut sheet).unwrap();
    assert!(sheet.contains("<v>600000</v>"), "the total in the months sheet");
    assert!(book.by_name("xl/worksheets/sheet2.xml").is_ok(), "a sheet of courses");
    assert_eq!(site.get("/revenue/1999.xlsx", Some(&b)).await.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrations = "../../migrations")]
async fn pages_carry_the_security_headers_and_no_inline_script(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (_, b) = site.staff(StaffRole::Owner).await;
    paid_order(&pool, 100_000, "0900000003", "FT7").await;
    for path in ["/", "/orders", "/problems", "/catalog", "/coupons", "/revenue", "/audit", "/sign-in"] {
        let r = site.get(path, Some(&b)).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let html = r.text().await.unwrap();
        assert!(!html.contains("<script>") && !html.contains(" style=\""), "{path}: no inline script or style");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn support_sends_a_stuck_items_stage_again_and_retries_a_failed_one(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (email, support) = site.staff(StaffRole::Support).await;
    let code = paid_order(&pool, 200_000, "0900000009", "FT9").await;
    let item: u64 =
        sqlx::query_scalar("SELECT i.id FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.code = ?")
            .bind(&code)
            .fetch_one(&pool)
            .await
            .unwrap();
    // Stuck: enrolled an hour ago, and no worker took it.
    sqlx::query("UPDATE order_items SET status = 'enrolled', updated_at = NOW(3) - INTERVAL 1 HOUR WHERE id = ?")
        .bind(item)
        .execute(&pool)
        .await
        .unwrap();
    let problems = site.get("/problems", Some(&support)).await.text().await.unwrap();
    assert!(problems.contains(&format!("/items/{item}/send-again")), "the stuck item is listed with its action");
    let r = site
        .post(&format!("/items/{item}/send-again"), Some(&support), &[("csrf", &support.csrf), ("back", "/problems")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (kind, actor): (String, String) =
        sqlx::query_as("SELECT kind, actor FROM order_events WHERE item_id = ? ORDER BY id DESC LIMIT 1")
            .bind(item)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((kind.as_str(), actor), ("stage_resent", format!("staff:{email}")));
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE item_id = ? AND queue = 'deliver'")
        .bind(item)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(queued >= 1, "the deliver message is in the outbox");

    // A failed item goes back to its stage; an item that is not failed is refused, unchanged.
    let r = site.post(&format!("/items/{item}/retry"), Some(&support), &[("csrf", &support.csrf)]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.headers()["x-error-code"], "refused");
    sqlx::query(
        "UPDATE order_items SET status = 'failed', failed_stage = 'deliver', last_error = 'Drive said no' WHERE id = ?",
    )
    .bind(item)
    .execute(&pool)
    .await
    .unwrap();
    let r = site.post(&format!("/items/{item}/retry"), Some(&support), &[("csrf", &support.csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let status: String =
        sqlx::query_scalar("SELECT status FROM order_items WHERE id = ?").bind(item).fetch_one(&pool).await.unwrap();
    assert_eq!(status, "enrolled", "back to the stage that failed");
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_owner_adds_a_course_and_moves_it_only_to_a_source_that_holds_files(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (email, owner) = site.staff(StaffRole::Owner).await;
    let s3 = testing::s3_source().await;
    let bucket =
        testing::bucket_with(&s3, &[("lesson-1.mp4", vec![1u8; 2048]), ("workbook.pdf", vec![2u8; 512])]).await;
    let source = format!("s3://{bucket}/");

    // A prefix with nothing in it is refused before anyone can buy the course.
    let empty = format!("s3://{bucket}/nothing-here/");
    let r = site
        .post(
            "/catalog",
            Some(&owner),
            &[
                ("csrf", &owner.csrf),
                ("slug", "rust-nang-cao"),
                ("title", "Rust nâng cao"),
                ("price", "1.200.000"),
                ("source", &empty),
                ("mode", "copy"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM courses WHERE slug = ?", "rust-nang-cao").await, 0);

    let r = site
        .post(
            "/catalog",
            Some(&owner),
            &[
                ("csrf", &owner.csrf),
                ("slug", "rust-nang-cao"),
                ("title", "Rust nâng cao"),
                ("price", "1.200.000"),
                ("source", &source),
                ("mode", "copy"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (price, stored): (i64, String) =
        sqlx::query_as("SELECT price_vnd, source FROM courses WHERE slug = 'rust-nang-cao'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((price, stored.as_str()), (1_200_000, source.as_str()));

    // Moving it: refused for an empty prefix (nothing changes), or to share an S3 course.
    for (to, mode) in [(empty.as_str(), "copy"), (source.as_str(), "share")] {
        let r = site
            .post(
                "/catalog/rust-nang-cao/source",
                Some(&owner),
                &[("csrf", &owner.csrf), ("source", to), ("mode", mode)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::CONFLICT, "{to} {mode}");
    }
    let other = testing::bucket_with(&s3, &[("v2/lesson-1.mp4", vec![3u8; 4096])]).await;
    let moved = format!("s3://{other}/v2/");
    let r = site
        .post(
            "/catalog/rust-nang-cao/source",
            Some(&owner),
            &[("csrf", &owner.csrf), ("source", &moved), ("mode", "copy")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM courses WHERE source = ?", &moved).await, 1);
    let actions: Vec<(String, String)> =
        sqlx::query_as("SELECT action, actor FROM staff_audit WHERE subject = 'rust-nang-cao' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let who = format!("staff:{email}");
    assert_eq!(actions, vec![("course.add".to_string(), who.clone()), ("course.source".to_string(), who)]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_session_ends_when_idle_and_at_its_absolute_limit(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (_, idle) = site.staff(StaffRole::Owner).await;
    let (_, old) = site.staff(StaffRole::Support).await;
    assert_eq!(site.get("/", Some(&idle)).await.status(), StatusCode::OK);
    // Unused for longer than 2 h (the default idle limit).
    let cookie = |b: &Browser| b.cookie.trim_start_matches("cd_session=").to_string();
    let digest = |c: String| coursedrop::domain::staff::Secret::from_presented(&c).unwrap().digest().to_vec();
    sqlx::query("UPDATE staff_sessions SET last_seen_at = NOW(3) - INTERVAL 121 MINUTE WHERE id_hash = ?")
        .bind(digest(cookie(&idle)))
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(site.get("/", Some(&idle)).await.status(), StatusCode::SEE_OTHER);
    // In use all along, but signed in more than 12 h ago.
    sqlx::query("UPDATE staff_sessions SET created_at = NOW(3) - INTERVAL 721 MINUTE WHERE id_hash = ?")
        .bind(digest(cookie(&old)))
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(site.get("/", Some(&old)).await.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test(migrations = "../../migrations")]
async fn asking_for_a_link_takes_as_long_for_staff_as_for_anyone(pool: MySqlPool) {
    let site = site_with(pool.clone(), None, "1s", Vec::new()).await;
    let email = unique("owner");
    auth::add_staff(&pool, &email, StaffRole::Owner, "operator:test").await.unwrap();
    for address in [email.clone(), unique("stranger")] {
        let started = std::time::Instant::now();
        let (status, _) = site.ask_link(&address).await;
        assert_eq!(status, StatusCode::OK);
        assert!(started.elapsed() >= std::time::Duration::from_secs(1), "{address}: answered before the floor");
    }
    assert_eq!(testing::mails_to(&email).len(), 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_coupon_for_one_course_lowers_only_that_courses_revenue(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (_, b) = site.staff(StaffRole::Owner).await;
    let (_, created) = testing::pending_order(&pool, &[500_000, 500_000], 30).await;
    let courses: Vec<(u64, String)> = sqlx::query_as(
        "SELECT c.id, c.slug FROM order_items i JOIN courses c ON c.id = i.course_id WHERE i.order_id = ? ORDER BY i.id",
    )
    .bind(created.order_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let coupon =
        sqlx::query("INSERT INTO coupons (code, percent_off) VALUES ('HALFA', 50)").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO coupon_courses (coupon_id, course_id) VALUES (?, ?)")
        .bind(coupon.last_insert_id())
        .bind(courses[0].0)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE orders SET coupon_id = ?, discount_vnd = 250000, total_vnd = 750000, paid_vnd = 750000,
                status = 'paid', paid_at = NOW(3) WHERE id = ?",
    )
    .bind(coupon.last_insert_id())
    .bind(created.order_id)
    .execute(&pool)
    .await
    .unwrap();
    let year = coursedrop::domain::today_in_vietnam().format("%Y").to_string();
    let csv = site.get(&format!("/revenue/{year}.csv"), Some(&b)).await.text().await.unwrap();
    assert!(csv.contains(&format!("{year},total,1,750000,0,750000")), "{csv}");
    assert!(csv.contains(&format!("{},Khoá học,1,0,250000,0,250000", courses[0].1)), "the coupon's course: {csv}");
    assert!(csv.contains(&format!("{},Khoá học,1,0,500000,0,500000", courses[1].1)), "the other at its price: {csv}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_disabled_account_can_be_given_back_and_a_role_changed(pool: MySqlPool) {
    let site = site(pool.clone(), None).await;
    let (email, b) = site.staff(StaffRole::Support).await;
    assert_eq!(site.get("/audit", Some(&b)).await.status(), StatusCode::FORBIDDEN);
    // A new role takes effect on the open session's next request.
    auth::set_role(&pool, &email, StaffRole::Owner, "operator:test").await.unwrap();
    assert_eq!(site.get("/audit", Some(&b)).await.status(), StatusCode::OK);
    // Adding an active account again is refused; a disabled one comes back, signed out.
    assert!(auth::add_staff(&pool, &email, StaffRole::Owner, "operator:test").await.is_err());
    auth::disable_staff(&pool, &email, "operator:test").await.unwrap();
    let back = auth::add_staff(&pool, &email, StaffRole::Support, "operator:test").await.unwrap();
    assert_eq!((back.role, back.disabled_at), (StaffRole::Support, None));
    assert_eq!(site.get("/", Some(&b)).await.status(), StatusCode::SEE_OTHER, "the old session stays ended");
    let again = site.sign_in(&email).await;
    assert_eq!(site.get("/audit", Some(&again)).await.status(), StatusCode::FORBIDDEN);
    let actions: Vec<(String,)> = sqlx::query_as("SELECT action FROM staff_audit WHERE subject = ? ORDER BY id")
        .bind(&email)
        .fetch_all(&pool)
        .await
        .unwrap();
    let actions: Vec<&str> = actions.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(actions, ["staff.add", "staff.role", "staff.disable", "staff.enable"]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_dashboard_shows_the_dead_letter_queues_depth(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let name = format!("console-dlq-{}", chrono::Utc::now().timestamp_micros());
    let dlq = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
    for body in ["{}", "{}", "{}"] {
        sqs.send_message().queue_url(&dlq).message_body(body).send().await.unwrap();
    }
    let extra = vec![("ENROLL_DLQ_URL", dlq), ("FINALIZE_DLQ_URL", "http://127.0.0.1:9/000000000000/gone".to_string())];
    let site = site_with(pool.clone(), None, "off", extra).await;
    let (_, b) = site.staff(StaffRole::Support).await;
    let page = site.get("/", Some(&b)).await.text().await.unwrap();
    assert!(page.contains("enroll: <strong>3</strong>"), "the enroll dead letters counted: {page}");
    assert!(
        page.contains("finalize: không rõ"),
        "a queue that does not answer is unknown (Vietnamese by default), not a failed page"
    );
}
