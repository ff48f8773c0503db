//! Coupons: the discount the buyer is charged, shown and put in the QR; the last use taken
//! once; a use freed when its order expires.

use super::*;
use coursedrop::app::operations::{self, CouponToAdd};
use coursedrop::domain::{CouponCode, CourseSlug, Discount, Vnd};

async fn coupon(pool: &MySqlPool, code: &str, discount: Discount, max_uses: Option<u32>, courses: &[&str]) {
    let slugs: Vec<CourseSlug> = courses.iter().map(|c| CourseSlug::parse(c).unwrap()).collect();
    operations::add_coupon(
        pool,
        &CouponToAdd {
            code: &CouponCode::parse(code).unwrap(),
            discount,
            max_uses,
            valid_from: None,
            valid_until: None,
            courses: &slugs,
        },
    )
    .await
    .unwrap();
}

fn post(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
}

fn crc_ok(payload: &str) -> bool {
    let crc = u16::from_str_radix(&payload[payload.len() - 4..], 16).unwrap();
    crc == crc16_ccitt_false(&payload.as_bytes()[..payload.len() - 4])
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_coupon_lowers_the_amount_the_qr_and_the_sepay_link_carry(pool: MySqlPool) {
    let app = app(&pool).await;
    // 10 % off rust-101 only: 49,900 off 798,000.
    coupon(&pool, "RUST10", Discount::percent(10).unwrap(), None, &["rust-101"]).await;
    let courses = json!(["rust-101", "sql-thuc-chien"]);

    let (status, _, quote, _) = send(&app, post("/quote", json!({"courses": courses, "coupon": " rust10 "}))).await;
    assert_eq!(status, StatusCode::OK, "{quote}");
    assert_eq!(
        (&quote["subtotal_vnd"], &quote["discount_vnd"], &quote["total_vnd"], &quote["coupon"]),
        (&json!(798_000), &json!(49_900), &json!(748_100), &json!("RUST10"))
    );

    let body = json!({"email": "buyer@example.com", "courses": courses, "coupon": "Rust10"});
    let (status, _, order, _) = send(&app, post("/orders", body)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["amount_vnd"], quote["total_vnd"], "the order charges what the quote showed");
    assert_eq!((&order["subtotal_vnd"], &order["discount_vnd"]), (&json!(798_000), &json!(49_900)));
    assert_eq!(order["coupon"], "RUST10");
    let code = order["code"].as_str().unwrap();
    assert_eq!(
        order["payment"]["qr_image_url"],
        format!("https://qr.sepay.vn/img?acc=0123456789&bank=MBBank&amount=748100&des={code}").as_str()
    );
    let vietqr = order["payment"]["vietqr"].as_str().unwrap();
    // Tag 54, length 06, the discounted amount; and a CRC over all of it.
    assert!(vietqr.contains("5406748100"), "{vietqr}");
    assert!(crc_ok(vietqr), "{vietqr}");

    // The view and the QR image say the same; the items keep their catalog prices.
    let token = order["view_token"].as_str().unwrap();
    let (_, _, view, _) = send(&app, get(&format!("/orders/{code}?t={token}"))).await;
    assert_eq!(
        (&view["amount_vnd"], &view["discount_vnd"], &view["coupon"]),
        (&json!(748_100), &json!(49_900), &json!("RUST10"))
    );
    let (items_sum, total, discount): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT CAST(SUM(price_vnd) AS SIGNED) FROM order_items WHERE order_id = o.id), o.total_vnd, o.discount_vnd
         FROM orders o WHERE o.code = ?",
    )
    .bind(code)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((items_sum, total, discount), (798_000, 748_100, 49_900));

    // An amount off takes off at most the price of what it applies to.
    coupon(&pool, "SQL500K", Discount::amount(Vnd::new(500_000).unwrap()).unwrap(), None, &["sql-thuc-chien"]).await;
    let (_, _, q, _) = send(&app, post("/quote", json!({"courses": courses, "coupon": "sql500k"}))).await;
    assert_eq!((&q["discount_vnd"], &q["total_vnd"]), (&json!(299_000), &json!(499_000)), "{q}");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_coupon_that_cannot_be_used_is_refused_naming_the_coupon(pool: MySqlPool) {
    let app = app(&pool).await;
    coupon(&pool, "SQLONLY", Discount::percent(20).unwrap(), None, &["sql-thuc-chien"]).await;
    coupon(&pool, "ALLFREE", Discount::percent(100).unwrap(), None, &[]).await;
    coupon(&pool, "GONE", Discount::percent(20).unwrap(), None, &[]).await;
    operations::disable_coupon(&pool, &CouponCode::parse("gone").unwrap()).await.unwrap();
    coupon(&pool, "OLDTET", Discount::percent(20).unwrap(), None, &[]).await;
    coupon(&pool, "NEXTTET", Discount::percent(20).unwrap(), None, &[]).await;
    sqlx::query("UPDATE coupons SET valid_until = NOW(3) - INTERVAL 1 DAY WHERE code = 'OLDTET'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE coupons SET valid_from = NOW(3) + INTERVAL 1 DAY WHERE code = 'NEXTTET'")
        .execute(&pool)
        .await
        .unwrap();
    coupon(&pool, "ONCE", Discount::percent(20).unwrap(), Some(1), &[]).await;
    let first = json!({"email": "first@example.com", "courses": ["rust-101"], "coupon": "once"});
    assert_eq!(send(&app, post("/orders", first)).await.0, StatusCode::CREATED);

    for (coupon, reason, says) in [
        ("NOPE", Some("unknown"), "there is no such coupon"),
        ("SQLONLY", Some("not_for_these_courses"), "does not apply to the courses chosen"),
        ("ALLFREE", Some("would_be_free"), "would make the order free"),
        ("GONE", Some("disabled"), "no longer available"),
        ("OLDTET", Some("expired"), "has expired"),
        ("NEXTTET", Some("not_yet_valid"), "not valid yet"),
        ("ONCE", Some("used_up"), "used up"),
        ("no spaces", None, "only letters"),
    ] {
        for uri in ["/quote", "/orders"] {
            let body = json!({"email": "buyer@example.com", "courses": ["rust-101"], "coupon": coupon});
            let (status, _, json, _) = send(&app, post(uri, body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {coupon}: {json}");
            assert_eq!(
                (json["code"].as_str(), json["field"].as_str()),
                (Some("invalid_field"), Some("coupon")),
                "{json}"
            );
            assert!(json["message"].as_str().unwrap().contains(says), "{coupon}: {json}");
            assert_eq!(json["reason"].as_str(), reason, "{coupon}: a stable word the page shows in its language");
        }
    }
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&pool).await.unwrap();
    assert_eq!(orders, 1, "no refused coupon placed an order");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn twenty_buyers_racing_for_ten_uses_get_exactly_ten_and_an_expired_order_frees_one(pool: MySqlPool) {
    let app = app(&pool).await;
    coupon(&pool, "FLASH10", Discount::percent(50).unwrap(), Some(10), &[]).await;
    let tries = (0..20).map(|i| {
        let app = app.clone();
        async move {
            let body = json!({"email": format!("buyer{i}@example.com"), "courses": ["rust-101"], "coupon": "flash10"});
            send(&app, post("/orders", body)).await
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    let placed: Vec<&Value> = answers.iter().filter(|a| a.0 == StatusCode::CREATED).map(|a| &a.2).collect();
    let refused: Vec<&Value> = answers.iter().filter(|a| a.0 == StatusCode::BAD_REQUEST).map(|a| &a.2).collect();
    assert_eq!((placed.len(), refused.len()), (10, 10), "{answers:?}");
    assert!(placed.iter().all(|o| o["amount_vnd"] == 249_500 && o["discount_vnd"] == 249_500), "{placed:?}");
    assert!(refused.iter().all(|r| r["field"] == "coupon" && r["reason"] == "used_up"), "{refused:?}");
    let uses = || async {
        sqlx::query_scalar::<_, u32>("SELECT uses FROM coupons WHERE code = 'FLASH10'").fetch_one(&pool).await.unwrap()
    };
    assert_eq!(uses().await, 10);

    // One of the ten expires unpaid: the sweeper cancels it and its use goes back.
    let expiring = placed[0]["code"].as_str().unwrap();
    sqlx::query("UPDATE orders SET expires_at = NOW(3) - INTERVAL 1 MINUTE WHERE code = ?")
        .bind(expiring)
        .execute(&pool)
        .await
        .unwrap();
    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    let report = coursedrop::app::sweeper::sweep(&pool, &publisher, coursedrop::app::sweeper::OutboxTiming::grace(30))
        .await
        .unwrap();
    assert_eq!(report.expired_orders, 1);
    assert_eq!(uses().await, 9);
    let again = json!({"email": "late@example.com", "courses": ["rust-101"], "coupon": "FLASH10"});
    let (status, _, json, _) = send(&app, post("/orders", again)).await;
    assert_eq!((status, &json["discount_vnd"]), (StatusCode::CREATED, &json!(249_500)), "{json}");
    let (status, _, json, _) = send(
        &app,
        post("/orders", json!({"email": "later@example.com", "courses": ["rust-101"], "coupon": "FLASH10"})),
    )
    .await;
    assert_eq!((status, json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("coupon")), "{json}");
    assert_eq!(uses().await, 10);
    // The expired order kept its price: a late transfer of the discounted amount pays it in full.
    let kept: i64 = sqlx::query_scalar("SELECT total_vnd FROM orders WHERE code = ?")
        .bind(expiring)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 249_500);
}

/// One client cannot take every use of a limited coupon with orders it never pays: an email
/// holds one use on unpaid orders, a network three; an order with a coupon holds its use for
/// less time (15 minutes, against 30 for any order); a cancelled order gives it back at once.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_limited_coupon_cannot_be_hoarded_by_one_email_or_one_network(pool: MySqlPool) {
    let app = app(&pool).await;
    coupon(&pool, "HOARD", Discount::percent(20).unwrap(), Some(10), &[]).await;
    let order = |ip: &str, email: &str, coupon: Option<&str>| {
        let mut req = post("/orders", json!({"email": email, "courses": ["rust-101"], "coupon": coupon}));
        req.extensions_mut().insert(coursedrop::runtime::http::ClientIp(ip.parse().unwrap()));
        send(&app, req)
    };
    let uses = || async {
        sqlx::query_scalar::<_, u32>("SELECT uses FROM coupons WHERE code = 'HOARD'").fetch_one(&pool).await.unwrap()
    };
    let minutes_left = |code: String| {
        let pool = pool.clone();
        async move {
            let secs: i64 =
                sqlx::query_scalar("SELECT TIMESTAMPDIFF(SECOND, NOW(3), expires_at) FROM orders WHERE code = ?")
                    .bind(code)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (secs + 30) / 60
        }
    };

    let (status, _, first, _) = order("198.51.100.7", "lan@example.com", Some("hoard")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(minutes_left(first["code"].as_str().unwrap().to_string()).await, 15, "a coupon order holds it 15 min");
    let (_, _, plain, _) = order("198.51.100.7", "lan@example.com", None).await;
    assert_eq!(minutes_left(plain["code"].as_str().unwrap().to_string()).await, 30, "any other order 30");

    let (status, _, json, _) = order("198.51.100.8", "Lan@Example.com", Some("HOARD")).await;
    assert_eq!((status, json["reason"].as_str()), (StatusCode::BAD_REQUEST, Some("held_already")), "{json}");
    assert_eq!(uses().await, 1, "the refused order took nothing");

    // Three holds from one network, then no more (other emails, same address).
    for who in ["b1", "b2"] {
        let (status, _, json, _) = order("198.51.100.7", &format!("{who}@example.com"), Some("HOARD")).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
    }
    let (status, _, json, _) = order("198.51.100.7", "b3@example.com", Some("HOARD")).await;
    assert_eq!((status, json["reason"].as_str()), (StatusCode::BAD_REQUEST, Some("held_already")), "{json}");
    assert!(!json["message"].as_str().unwrap().contains("example.com"), "names nobody: {json}");
    let (status, _, _, _) = order("203.0.113.9", "b3@example.com", Some("HOARD")).await;
    assert_eq!(status, StatusCode::CREATED, "another network is not affected");
    assert_eq!(uses().await, 4);

    // Lan's first order is cancelled: its use comes back at once, and Lan may take one again.
    let id: u64 = sqlx::query_scalar("SELECT id FROM orders WHERE code = ?")
        .bind(first["code"].as_str().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    coursedrop::store::orders::cancel_unpaid(&pool, id, "operator:lan", "asked").await.unwrap();
    assert_eq!(uses().await, 3);
    let (status, _, json, _) = order("203.0.113.10", "lan@example.com", Some("HOARD")).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
}
