//! The buyer-facing API against a real MariaDB, a fresh database per test.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use coursedrop::adapters::vietqr::crc16_ccitt_false;
use coursedrop::app::config::Vars;
use coursedrop::testing;
use create_order::{AppState, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::MySqlPool;
use tower::ServiceExt;

#[path = "api/coupons.rs"]
mod coupons;

async fn app(pool: &MySqlPool) -> Router {
    testing::seed_course(pool, "rust-101", "Rust cơ bản", 499_000, true).await;
    testing::seed_course(pool, "sql-thuc-chien", "SQL thực chiến", 299_000, true).await;
    testing::seed_course(pool, "old-course", "Khoá cũ", 99_000, false).await;
    // The defaults `make dev` uses, as a deployment would set them.
    let vars = Vars::new(|k: &str| match k {
        "BANK_CODE" => Some("MBBank".into()),
        "BANK_ACCOUNT_NUMBER" => Some("0123456789".into()),
        "BANK_ACCOUNT_NAME" => Some("CONG TY COURSEDROP".into()),
        _ => None,
    });
    router(AppState::from_vars(pool.clone(), &vars).unwrap())
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null), text)
}

fn post_order(body: &str) -> Request<Body> {
    Request::post("/orders").header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_catalog_lists_active_courses(pool: MySqlPool) {
    let app = app(&pool).await;
    let (status, _, json, _) = send(&app, get("/courses")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json,
        json!([
            {"slug": "rust-101", "title": "Rust cơ bản", "price_vnd": 499000},
            {"slug": "sql-thuc-chien", "title": "SQL thực chiến", "price_vnd": 299000}
        ])
    );
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_order_is_priced_from_the_catalog_with_payment_instructions(pool: MySqlPool) {
    let app = app(&pool).await;
    let body = r#"{"email":"Buyer@Example.com","phone":"0912 345 678","courses":["rust-101","SQL-thuc-chien"],"price_vnd":1,"amount_vnd":1}"#;
    let (status, _, json, _) = send(&app, post_order(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");

    let code = json["code"].as_str().unwrap().to_string();
    assert!(code.starts_with("CD") && code.len() == 10, "{code}");
    assert_eq!(json["status"], "pending");
    assert_eq!(json["amount_vnd"], 798_000, "prices come from the catalog, not the request");
    assert_eq!(
        json["items"],
        json!([
            {"course": "rust-101", "title": "Rust cơ bản", "price_vnd": 499000},
            {"course": "sql-thuc-chien", "title": "SQL thực chiến", "price_vnd": 299000}
        ])
    );
    let p = &json["payment"];
    assert_eq!((p["bank"].as_str(), p["account_number"].as_str()), (Some("MBBank"), Some("0123456789")));
    assert_eq!(p["transfer_text"], code.as_str());
    assert_eq!(
        p["qr_image_url"],
        format!("https://qr.sepay.vn/img?acc=0123456789&bank=MBBank&amount=798000&des={code}").as_str()
    );
    let vietqr = p["vietqr"].as_str().unwrap();
    assert!(vietqr.contains("0006970422011001234567890208QRIBFTTA"), "{vietqr}");
    assert!(vietqr.contains("54067980005802VN"), "{vietqr}");
    assert!(vietqr.contains(&format!("0810{code}")), "{vietqr}");
    let crc = u16::from_str_radix(&vietqr[vietqr.len() - 4..], 16).unwrap();
    assert_eq!(crc, crc16_ccitt_false(&vietqr.as_bytes()[..vietqr.len() - 4]));

    let expires = chrono::DateTime::parse_from_rfc3339(json["expires_at"].as_str().unwrap()).unwrap();
    let minutes = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((28..=30).contains(&minutes), "expires in {minutes} min");

    let stored: (String, Option<String>, i64) =
        sqlx::query_as("SELECT email, phone, total_vnd FROM orders WHERE code = ?")
            .bind(&code)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, ("Buyer@example.com".into(), Some("0912345678".into()), 798_000));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn bad_orders_are_refused_naming_the_field(pool: MySqlPool) {
    let app = app(&pool).await;
    let cases = [
        (r#"{"email":"buyer@example.com","courses":["nope"]}"#, "courses", "there is no course nope"),
        (r#"{"email":"buyer@example.com","courses":["old-course"]}"#, "courses", "old-course is no longer for sale"),
        (
            r#"{"email":"buyer@example.com","courses":["rust-101","rust-101"]}"#,
            "courses",
            "rust-101 is listed more than once",
        ),
        (r#"{"email":"buyer@example.com","courses":[]}"#, "courses", "choose at least one course"),
        (r#"{"email":"buyer@example.com"}"#, "courses", "courses is required: a list of course slugs"),
        (
            r#"{"email":"buyer@","courses":["rust-101"]}"#,
            "email",
            "the domain must have at least two parts, like example.com",
        ),
        (r#"{"courses":["rust-101"]}"#, "email", "email is required"),
        (
            r#"{"email":"buyer@example.com","lang":"fr","courses":["rust-101"]}"#,
            "lang",
            "lang must be \"vi\" or \"en\"",
        ),
    ];
    for (body, field, message) in cases {
        let (status, _, json, _) = send(&app, post_order(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json, json!({"code": "invalid_field", "field": field, "message": message}), "{body}");
    }
    let (status, _, json, _) = send(&app, post_order("{not json")).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    let (status, _, json, _) = send(&app, post_order(r#"{"email": 5, "courses": ["rust-101"]}"#)).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    let form = Request::post("/orders")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("email=a"))
        .unwrap();
    let (status, _, json, _) = send(&app, form).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));
    let big = format!(r#"{{"email":"buyer@example.com","courses":["rust-101"],"pad":"{}"}}"#, "x".repeat(17 * 1024));
    let (status, _, json, _) = send(&app, post_order(&big)).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    let (status, _, json, _) = send(&app, get("/nowhere")).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, _, json, _) = send(&app, Request::delete("/orders").body(Body::empty()).unwrap()).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));

    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&pool).await.unwrap();
    assert_eq!(orders, 0, "no refused request left an order behind");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_idempotency_key_makes_a_retry_return_the_same_order(pool: MySqlPool) {
    let app = app(&pool).await;
    let keyed = |body: &str, key: &str| {
        Request::post("/orders")
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let body = r#"{"email":"buyer@example.com","courses":["rust-101"]}"#;
    let (s1, h1, first, _) = send(&app, keyed(body, "checkout-7f3a")).await;
    // The same request, formatted differently, is the same request.
    let (s2, h2, second, _) =
        send(&app, keyed(r#"{"courses":["RUST-101"],"email":" buyer@example.com"}"#, "checkout-7f3a")).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, second);
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");

    let (s3, _, json, _) =
        send(&app, keyed(r#"{"email":"buyer@example.com","courses":["sql-thuc-chien"]}"#, "checkout-7f3a")).await;
    assert_eq!((s3, json["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")));

    // Concurrent retries with one key still make one order.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                send(&app, keyed(r#"{"email":"x@example.com","courses":["rust-101"]}"#, "race-1")).await
            })
        })
        .collect();
    let mut codes = std::collections::HashSet::new();
    for t in tasks {
        let (status, _, json, _) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        codes.insert(json["code"].as_str().unwrap().to_string());
    }
    assert_eq!(codes.len(), 1);
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&pool).await.unwrap();
    assert_eq!(orders, 2);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_status_view_finds_the_order_in_any_case_and_shows_no_personal_data(pool: MySqlPool) {
    let app = app(&pool).await;
    let body = r#"{"email":"secret.buyer@example.com","phone":"0987654321","courses":["rust-101"]}"#;
    let (_, _, placed, _) = send(&app, post_order(body)).await;
    let code = placed["code"].as_str().unwrap();
    let t = placed["view_token"].as_str().unwrap();

    let (status, _, json, text) = send(&app, get(&format!("/orders/{}?t={t}", code.to_lowercase()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json,
        json!({
            "code": code, "status": "pending", "amount_vnd": 499000, "paid_vnd": 0, "discount_vnd": 0, "coupon": null,
            "expires_at": placed["expires_at"],
            "items": [{
                "course": "rust-101", "title": "Rust cơ bản", "status": "awaiting_payment",
                "progress": {"files_done": 0, "files_total": null, "bytes_done": 0, "bytes_total": null},
                "drive_link": null
            }]
        })
    );
    assert!(!text.contains("secret") && !text.contains("0987654321"), "{text}");

    // A drive link appears only once the item is completed.
    sqlx::query("UPDATE order_items SET status = 'delivered', drive_link = 'https://drive.google.com/drive/folders/x'")
        .execute(&pool)
        .await
        .unwrap();
    let (_, _, json, _) = send(&app, get(&format!("/orders/{code}?t={t}"))).await;
    assert_eq!(json["items"][0]["drive_link"], Value::Null);
    sqlx::query("UPDATE order_items SET status = 'completed'").execute(&pool).await.unwrap();
    let (_, _, json, _) = send(&app, get(&format!("/orders/{code}?t={t}"))).await;
    assert_eq!(json["items"][0]["drive_link"], "https://drive.google.com/drive/folders/x");

    for unknown in ["/orders/CD00000000", "/orders/not-a-code", "/orders/CD00000000/qr.svg"] {
        let (status, _, json, _) = send(&app, get(unknown)).await;
        assert_eq!((status, json["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{unknown}");
    }
}

/// Order codes are short and guessable (they go in the transfer text): the code alone, or with a
/// wrong token, opens nothing, and answers exactly as an unknown order does.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_order_opens_only_with_its_view_token(pool: MySqlPool) {
    let app = app(&pool).await;
    let (_, _, placed, _) = send(&app, post_order(r#"{"email":"b@example.com","courses":["rust-101"]}"#)).await;
    let (_, _, other, _) = send(&app, post_order(r#"{"email":"c@example.com","courses":["rust-101"]}"#)).await;
    let code = placed["code"].as_str().unwrap();
    let t = placed["view_token"].as_str().unwrap();
    assert_eq!(t.len(), 32);
    assert_ne!(t, other["view_token"].as_str().unwrap(), "each order its own token");
    let (_, _, unknown, _) = send(&app, get("/orders/CD00000000")).await;
    let wrong = other["view_token"].as_str().unwrap();
    for path in [
        format!("/orders/{code}"),
        format!("/orders/{code}?t="),
        format!("/orders/{code}?t={wrong}"),
        format!("/orders/{code}?t={}", &t[..31]),
        format!("/orders/{code}?t={}", t.to_uppercase()),
        format!("/orders/{code}?t=%ZZ"),
        format!("/orders/{code}/qr.svg"),
        format!("/orders/{code}/qr.svg?t={wrong}"),
    ] {
        let (status, _, json, _) = send(&app, get(&path)).await;
        assert_eq!((status, &json), (StatusCode::NOT_FOUND, &unknown), "{path}: as an unknown order");
    }
    let (status, _, json, _) = send(&app, get(&format!("/orders/{code}?t={t}"))).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::OK, Some(code)));
    // A retry under the same Idempotency-Key answers the same token.
    let retry = || {
        Request::post("/orders")
            .header("content-type", "application/json")
            .header("idempotency-key", "k-1")
            .body(Body::from(r#"{"email":"d@example.com","courses":["rust-101"]}"#))
            .unwrap()
    };
    let (_, _, first, _) = send(&app, retry()).await;
    let (_, _, again, _) = send(&app, retry()).await;
    assert_eq!(first["view_token"], again["view_token"]);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_qr_code_renders_as_svg(pool: MySqlPool) {
    let app = app(&pool).await;
    let (_, _, placed, _) = send(&app, post_order(r#"{"email":"b@example.com","courses":["rust-101"]}"#)).await;
    let code = placed["code"].as_str().unwrap();
    let t = placed["view_token"].as_str().unwrap();
    let (status, headers, _, text) = send(&app, get(&format!("/orders/{code}/qr.svg?t={t}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("content-type").unwrap(), "image/svg+xml");
    assert!(text.contains("<svg") && text.contains("<path"), "{}", &text[..text.len().min(200)]);
    // Without payOS there is no payOS QR to draw, and the answer says so.
    let (status, _, body, _) = send(&app, get(&format!("/orders/{code}/qr.svg?t={t}&via=payos"))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{body}");
    assert_eq!(placed["payment"]["payos"], serde_json::Value::Null);
    assert_eq!(placed["payment"]["virtual_account"], false);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn concurrent_orders_never_starve_a_small_pool(pool: MySqlPool) {
    let _seeded = app(&pool).await;
    // A request must never hold one pooled connection while waiting for another: with two
    // connections and ten concurrent requests, that would deadlock until the acquire timeout.
    let small = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let app = router(AppState::from_vars(small, &Vars::new(|_: &str| None)).unwrap());
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let key = format!("small-pool-{}", i % 3);
                let req = Request::post("/orders")
                    .header("content-type", "application/json")
                    .header("idempotency-key", key)
                    .body(Body::from(r#"{"email":"x@example.com","courses":["rust-101"]}"#))
                    .unwrap();
                send(&app, req).await.0
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&pool).await.unwrap();
    assert_eq!(orders, 3, "one order per idempotency key");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn hostile_text_is_stored_verbatim_or_refused_and_does_no_harm(pool: MySqlPool) {
    let app = app(&pool).await;
    // A quote and SQL comment characters are legal in an address's local part.
    let email = "o'brien--x/*y*/+1=1@example.com";
    let (status, _, json, _) =
        send(&app, post_order(&json!({"email": email, "courses": ["rust-101"]}).to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let stored: String = sqlx::query_scalar("SELECT email FROM orders").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, email);

    // Everything else hostile is refused with a JSON error naming the field, and writes nothing.
    let nasty = "'); DROP TABLE orders; --\u{0}\u{1b}[2J";
    for (body, field) in [
        (json!({"email": nasty, "courses": ["rust-101"]}), "email"),
        (json!({"email": "a@example.com", "phone": nasty, "courses": ["rust-101"]}), "phone"),
        (json!({"email": "a@example.com", "courses": [nasty]}), "courses"),
        (json!({"email": "a@example.com", "lang": nasty, "courses": ["rust-101"]}), "lang"),
    ] {
        let (status, _, json, text) = send(&app, post_order(&body.to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert_eq!(json["code"], "invalid_field", "{text}");
        assert_eq!(json["field"], field, "{text}");
        assert!(!text.contains("DROP TABLE"), "the error must not echo the input back: {text}");
    }
    let (status, _, _, text) = send(&app, get(&format!("/orders/{}", urlencode(nasty)))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&pool).await.unwrap();
    assert_eq!(orders, 1);
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Caps on unpaid orders: one email may hold 5, one client address 30 (both settings); past
/// them `429 too_many_pending_orders`, and an order that is paid or expires frees its place.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn unpaid_orders_are_capped_per_email_and_per_client_address(pool: MySqlPool) {
    let app = app(&pool).await;
    let from = |ip: &str, email: &str| {
        let mut req = post_order(&format!(r#"{{"email":"{email}","courses":["rust-101"]}}"#));
        req.extensions_mut().insert(coursedrop::runtime::http::ClientIp(ip.parse().unwrap()));
        req
    };
    for _ in 0..5 {
        let (status, _, json, _) = send(&app, from("198.51.100.7", "hoc.vien@example.com")).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
    }
    let (status, _, json, _) = send(&app, from("198.51.100.8", "Hoc.Vien@example.com")).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_pending_orders")));
    assert!(json["message"].as_str().unwrap().contains("5 unpaid orders"), "{json}");
    // One expires: its place is free again.
    sqlx::query("UPDATE orders SET status = 'cancelled' ORDER BY id LIMIT 1").execute(&pool).await.unwrap();
    let (status, _, _, _) = send(&app, from("198.51.100.8", "hoc.vien@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);

    // One address, many emails: 30 unpaid orders at most (6 are from .7 and .8 so far).
    for i in 0..30 {
        let (status, _, json, _) = send(&app, from("203.0.113.50", &format!("b{i}@example.com"))).await;
        assert_eq!(status, StatusCode::CREATED, "order {i}: {json}");
    }
    let (status, _, json, _) = send(&app, from("203.0.113.50", "b-late@example.com")).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_pending_orders")));
    assert!(!json["message"].as_str().unwrap().contains("example.com"), "never names anyone: {json}");
    let (status, _, _, _) = send(&app, from("203.0.113.51", "b-late@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "another address is not affected");
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE client_ip = '203.0.113.50'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, 30);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_page_carries_the_sellers_brand_and_says_nothing_of_a_missing_one(pool: MySqlPool) {
    let branded = |pairs: &'static [(&'static str, &'static str)]| {
        let vars = Vars::new(move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        router(AppState::from_vars(pool.clone(), &vars).unwrap())
    };
    let app = branded(&[
        ("SELLER_NAME", "Học Rust cùng Lan <3"),
        ("SELLER_LOGO_URL", "https://cdn.lan.vn/logo.png"),
        ("SUPPORT_EMAIL", "hotro@lan.vn"),
        ("SUPPORT_PHONE", "0912 345 678"),
        ("SUPPORT_ZALO", "0912345678"),
    ]);
    let (status, headers, _, html) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<title>Học Rust cùng Lan &lt;3</title>"), "the name, escaped, is the title");
    assert!(html.contains(">Học Rust cùng Lan &lt;3</h1>"));
    assert!(html.contains(r#"<img src="https://cdn.lan.vn/logo.png""#));
    assert!(html.contains(r#"href="mailto:hotro@lan.vn""#) && html.contains(r#"href="tel:0912345678""#));
    assert!(html.contains(r#"href="https://zalo.me/0912345678""#));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("img-src 'self' https://cdn.lan.vn;"), "{csp}");

    let plain = branded(&[]);
    let (_, headers, _, html) = send(&plain, get("/")).await;
    assert!(!html.contains("{{"), "no placeholder is left");
    assert!(!html.to_lowercase().contains("not configured") && !html.contains("SELLER_NAME"));
    assert!(html.contains(r#"<h1 id="seller" data-t="shop"></h1>"#), "the page's own heading instead");
    assert!(html.contains(r#"<footer id="support" hidden>"#));
    assert!(headers["content-security-policy"].to_str().unwrap().contains("img-src 'self';"));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn health_answers_and_every_answer_carries_a_request_id(pool: MySqlPool) {
    let app = app(&pool).await;
    let (status, headers, body, _) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let id = headers.get("x-request-id").expect("a request id on the answer").to_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{id}");

    // A second request gets an id of its own; a caller's own id comes back as sent, also on
    // an error answer.
    let (_, again, _, _) = send(&app, get("/health")).await;
    assert_ne!(again.get("x-request-id").unwrap().to_str().unwrap(), id);
    let mut req = get("/no/such/route");
    req.headers_mut().insert("x-request-id", "support-ticket-42".parse().unwrap());
    let (status, headers, body, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    assert_eq!(headers.get("x-request-id").unwrap(), "support-ticket-42");
}
