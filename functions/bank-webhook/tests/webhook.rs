//! The bank feeds' webhooks (SePay, Casso) against real MariaDB (a fresh database per test)
//! and local SQS.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use bank_webhook::{WebhookState, router};
use chrono::Utc;
use coursedrop::adapters::queue::{QueueConfig, SqsPublisher};
use coursedrop::adapters::sepay::{self, WebhookAuth};
use coursedrop::app::payments::{Arrival, PaymentOutcome, PaymentSettings};
use coursedrop::app::sweeper;
use coursedrop::domain::{CodeCharset, CodePattern, Queue};
use coursedrop::store::kept::KeptConnections;
use coursedrop::testing;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::MySqlPool;
use tower::ServiceExt;

const KEY: &str = "test-key-8f2c";
#[path = "webhook/burst.rs"]
mod burst;
#[path = "webhook/payos.rs"]
mod payos;
#[path = "webhook/routes.rs"]
mod routes;

const CASSO_KEY: &str = "casso-checksum-key-1d9e";
/// The emulator's, so the payOS it emulates can post here.
const PAYOS_KEY: &str = bank_emulator::payos::CHECKSUM_KEY;
const ACCOUNT: &str = "0123456789";

fn pattern() -> CodePattern {
    CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap()
}

struct Harness {
    pool: MySqlPool,
    app: Router,
    sqs: aws_sdk_sqs::Client,
    urls: HashMap<Queue, String>,
    publisher: Arc<SqsPublisher>,
}

async fn harness_with(
    pool: MySqlPool,
    auth: WebhookAuth,
    publisher: Arc<SqsPublisher>,
    sqs: aws_sdk_sqs::Client,
    urls: HashMap<Queue, String>,
) -> Harness {
    let state = WebhookState {
        db: KeptConnections::new(pool.clone()),
        auth,
        casso: coursedrop::adapters::casso::CassoAuth::ChecksumKey { key: CASSO_KEY.into(), tolerance_secs: 300 },
        payos: coursedrop::adapters::payos::PayosAuth::ChecksumKey(PAYOS_KEY.into()),
        settings: PaymentSettings { pattern: pattern(), account_number: ACCOUNT.into() },
        publisher: publisher.clone(),
        sepay_sources: None,
    };
    Harness { pool, app: router(Arc::new(state)), sqs, urls, publisher }
}

async fn harness(pool: MySqlPool) -> Harness {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    harness_with(pool, WebhookAuth::ApiKey(KEY.into()), Arc::new(publisher), sqs, urls).await
}

/// An order for `prices.len()` courses, pending payment; returns its code and item ids.
async fn order(pool: &MySqlPool, prices: &[i64]) -> (String, Vec<u64>) {
    let (code, created) = testing::pending_order(pool, prices, 30).await;
    (code.to_string(), created.item_ids)
}

fn payload(id: i64, content: &str, amount: i64) -> String {
    json!({
        "id": id, "gateway": "MBBank", "transactionDate": "2026-11-22 10:00:00", "accountNumber": ACCOUNT,
        "code": null, "content": content, "transferType": "in", "transferAmount": amount,
        "accumulated": 10_000_000, "subAccount": null, "referenceCode": format!("FT{id}"), "description": content
    })
    .to_string()
}

async fn post(app: &Router, body: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = Request::post("/webhooks/sepay").header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn post_with_key(app: &Router, body: &str) -> (StatusCode, Value) {
    post(app, body, &[("authorization", &format!("Apikey {KEY}"))]).await
}

async fn scalar(pool: &MySqlPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn order_state(pool: &MySqlPool, code: &str) -> (String, i64, Option<String>) {
    sqlx::query_as("SELECT status, paid_vnd, attention FROM orders WHERE code = ?")
        .bind(code)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn item_statuses(pool: &MySqlPool, code: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT i.status FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.code = ? ORDER BY i.id",
    )
    .bind(code)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn bodies_for(items: &[u64]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|id| format!("{{\"item_id\":{id}}}")).collect();
    v.sort();
    v
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_full_payment_marks_the_order_paid_and_sends_each_item_to_enrollment(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, items) = order(&h.pool, &[499_000, 299_000]).await;
    // The bank lower-cased the code and wrapped it in text of its own.
    let body = payload(1001, &format!("MBVCB.123.{}.chuyen tien", code.to_lowercase()), 798_000);

    let (status, json) = post_with_key(&h.app, &body).await;

    assert_eq!((status, json), (StatusCode::OK, json!({"success": true})));
    assert_eq!(order_state(&h.pool, &code).await, ("paid".into(), 798_000, None));
    assert_eq!(item_statuses(&h.pool, &code).await, vec!["enrolling", "enrolling"]);
    let mut got = testing::drain(&h.sqs, &h.urls[&Queue::Enroll]).await;
    got.sort();
    assert_eq!(got, bodies_for(&items));
    // Published after commit with no second write: the rows are as the payment's commit left
    // them, each naming its item, until the enroll stage consumes them.
    assert_eq!(
        scalar(
            &h.pool,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL AND publish_attempts = 0 AND consumed_at IS NULL
             AND item_id IS NOT NULL"
        )
        .await,
        2
    );
    let raw: String = sqlx::query_scalar("SELECT raw_payload FROM payments").fetch_one(&h.pool).await.unwrap();
    assert_eq!(raw, body, "the raw payload is kept as received");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn fifty_concurrent_deliveries_of_one_payment_count_once(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, items) = order(&h.pool, &[100_000, 200_000, 300_000]).await;
    let body = payload(2002, &code, 600_000);

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = h.app.clone();
            let body = body.clone();
            tokio::spawn(async move { post_with_key(&app, &body).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (StatusCode::OK, json!({"success": true})));
    }

    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(order_state(&h.pool, &code).await, ("paid".into(), 600_000, None));
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'order_status'").await, 1);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'payment_received'").await, 1);
    let mut got = testing::drain(&h.sqs, &h.urls[&Queue::Enroll]).await;
    got.sort();
    assert_eq!(got, bodies_for(&items), "exactly one enroll message per item");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_partial_payment_waits_for_the_rest(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, items) = order(&h.pool, &[500_000]).await;

    assert_eq!(post_with_key(&h.app, &payload(3001, &code, 200_000)).await.0, StatusCode::OK);
    assert_eq!(order_state(&h.pool, &code).await, ("pending".into(), 200_000, None));
    assert_eq!(item_statuses(&h.pool, &code).await, vec!["awaiting_payment"]);
    assert!(testing::drain(&h.sqs, &h.urls[&Queue::Enroll]).await.is_empty());

    assert_eq!(post_with_key(&h.app, &payload(3002, &code, 300_000)).await.0, StatusCode::OK);
    assert_eq!(order_state(&h.pool, &code).await, ("paid".into(), 500_000, None));
    assert_eq!(testing::drain(&h.sqs, &h.urls[&Queue::Enroll]).await, bodies_for(&items));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_over_payment_pays_the_order_and_flags_it(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, _) = order(&h.pool, &[500_000]).await;
    assert_eq!(post_with_key(&h.app, &payload(4001, &code, 550_000)).await.0, StatusCode::OK);
    let (status, paid, attention) = order_state(&h.pool, &code).await;
    assert_eq!((status.as_str(), paid), ("paid", 550_000));
    assert_eq!(attention.as_deref(), Some("over-paid by 50000 VND"));
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'needs_attention'").await, 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn payments_that_match_no_order_are_kept(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, _) = order(&h.pool, &[500_000]).await;
    // No code, an unknown code, a code glued to other letters, and another account.
    let other_account = payload(5004, &code, 500_000).replace(ACCOUNT, "999999999");
    for body in [
        payload(5001, "chuyen tien", 500_000),
        payload(5002, "CD99999999", 500_000),
        payload(5003, &format!("thanhtoan{code}"), 500_000),
        other_account,
    ] {
        assert_eq!(post_with_key(&h.app, &body).await, (StatusCode::OK, json!({"success": true})));
    }
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments WHERE order_id IS NULL").await, 4);
    assert_eq!(order_state(&h.pool, &code).await, ("pending".into(), 0, None));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn outgoing_transfers_are_recorded_and_ignored(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, _) = order(&h.pool, &[500_000]).await;
    let body = payload(6001, &code, 500_000).replace(r#""transferType":"in""#, r#""transferType":"out""#);
    assert_eq!(post_with_key(&h.app, &body).await.0, StatusCode::OK);
    assert_eq!(
        scalar(&h.pool, "SELECT COUNT(*) FROM payments WHERE transfer_type = 'out' AND order_id IS NULL").await,
        1
    );
    assert_eq!(order_state(&h.pool, &code).await, ("pending".into(), 0, None));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_payment_for_a_cancelled_order_is_kept_and_flagged(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, _) = order(&h.pool, &[500_000]).await;
    sqlx::query("UPDATE orders SET status = 'cancelled' WHERE code = ?").bind(&code).execute(&h.pool).await.unwrap();
    assert_eq!(post_with_key(&h.app, &payload(7001, &code, 500_000)).await.0, StatusCode::OK);
    let (status, paid, attention) = order_state(&h.pool, &code).await;
    assert_eq!((status.as_str(), paid), ("cancelled", 500_000));
    assert_eq!(attention.as_deref(), Some("payment of 500000 VND received while the order is cancelled"));
    assert_eq!(item_statuses(&h.pool, &code).await, vec!["awaiting_payment"], "nothing is delivered for it");
    assert!(testing::drain(&h.sqs, &h.urls[&Queue::Enroll]).await.is_empty());
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn bad_credentials_are_refused_and_change_nothing(pool: MySqlPool) {
    let h = harness(pool.clone()).await;
    let (code, _) = order(&h.pool, &[500_000]).await;
    let body = payload(8001, &code, 500_000);
    for headers in [
        vec![],
        vec![("authorization", "Apikey wrong-key")],
        vec![("authorization", "Bearer test-key-8f2c")],
        vec![("authorization", "Apikey")],
    ] {
        let (status, json) = post(&h.app, &body, &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(json["code"], "unauthorized");
    }
    // No key configured: even the right-looking key is refused.
    let closed = harness_with(
        pool,
        WebhookAuth::Unconfigured { reason: "SEPAY_API_KEY is not set".into() },
        h.publisher.clone(),
        h.sqs.clone(),
        h.urls.clone(),
    )
    .await;
    assert_eq!(post_with_key(&closed.app, &body).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(post(&closed.app, &body, &[]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(order_state(&h.pool, &code).await, ("pending".into(), 0, None));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn hmac_signatures_are_checked(pool: MySqlPool) {
    let base = harness(pool.clone()).await;
    let h = harness_with(
        pool,
        WebhookAuth::Hmac { secret: "hmac-secret".into(), tolerance_secs: 300 },
        base.publisher.clone(),
        base.sqs.clone(),
        base.urls.clone(),
    )
    .await;
    let (code, _) = order(&h.pool, &[500_000]).await;
    let body = payload(9001, &code, 500_000);
    let now = Utc::now().timestamp().to_string();
    let old = (Utc::now().timestamp() - 301).to_string();
    let good = format!("sha256={}", sepay::sign("hmac-secret", &now, body.as_bytes()));
    let stale = format!("sha256={}", sepay::sign("hmac-secret", &old, body.as_bytes()));

    let tampered = body.replace("500000", "5000000");
    assert_eq!(
        post(&h.app, &tampered, &[("x-sepay-signature", &good), ("x-sepay-timestamp", &now)]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&h.app, &body, &[("x-sepay-signature", &stale), ("x-sepay-timestamp", &old)]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(post(&h.app, &body, &[("x-sepay-signature", &good)]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments").await, 0);

    assert_eq!(
        post(&h.app, &body, &[("x-sepay-signature", &good), ("x-sepay-timestamp", &now)]).await.0,
        StatusCode::OK
    );
    assert_eq!(order_state(&h.pool, &code).await.0, "paid");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn bad_input_gets_a_clear_json_error(pool: MySqlPool) {
    let h = harness(pool).await;
    for body in [
        "",
        "not json",
        "[1,2]",
        r#"{"id": 1, "transferType": "in"}"#,
        r#"{"id":1,"transferType":"in","transferAmount":-1}"#,
    ] {
        let (status, json) = post_with_key(&h.app, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["code"], "invalid_payload", "{body}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let huge = format!(r#"{{"id":1,"content":"{}"}}"#, "x".repeat(70 * 1024));
    let (status, json) = post_with_key(&h.app, &huge).await;
    assert_eq!((status, json["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    let resp = h.app.clone().oneshot(Request::get("/webhooks/sepay").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments").await, 0);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn with_sqs_unreachable_the_payment_is_kept_and_the_sweeper_publishes_later(pool: MySqlPool) {
    let good = harness(pool.clone()).await;
    // Nothing listens on port 9: every publish fails fast.
    let dead_client = testing::sqs_client_at("http://127.0.0.1:9").await;
    let dead = Arc::new(SqsPublisher::new(
        dead_client.clone(),
        QueueConfig { urls: good.urls.clone(), name_prefix: "unused-".into() },
    ));
    let h = harness_with(pool, WebhookAuth::ApiKey(KEY.into()), dead, dead_client, good.urls.clone()).await;
    let (code, items) = order(&h.pool, &[500_000]).await;

    assert_eq!(
        post_with_key(&h.app, &payload(10_001, &code, 500_000)).await,
        (StatusCode::OK, json!({"success": true}))
    );
    assert_eq!(order_state(&h.pool, &code).await.0, "paid");
    let (unpublished, attempts): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), CAST(MAX(publish_attempts) AS SIGNED) FROM outbox WHERE publish_attempts > 0")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!((unpublished, attempts), (1, Some(1)));
    assert!(testing::drain(&good.sqs, &good.urls[&Queue::Enroll]).await.is_empty());

    // SQS is back: the sweeper publishes the row exactly once.
    let report =
        sweeper::sweep(&h.pool, &good.publisher, coursedrop::app::sweeper::OutboxTiming::grace(0)).await.unwrap();
    assert_eq!((report.republished, report.publish_failed), (1, 0));
    assert_eq!(testing::drain(&good.sqs, &good.urls[&Queue::Enroll]).await, bodies_for(&items));
    assert_eq!(
        sweeper::sweep(&h.pool, &good.publisher, coursedrop::app::sweeper::OutboxTiming::grace(0))
            .await
            .unwrap()
            .republished,
        0
    );
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_database_failure_is_the_one_case_answered_with_an_error(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, _) = order(&h.pool, &[500_000]).await;
    h.pool.close().await;
    let (status, json) = post_with_key(&h.app, &payload(11_001, &code, 500_000)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "SePay must retry");
    assert_eq!(json, json!({"code": "internal", "message": "something went wrong on our side; please retry"}));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn hostile_text_is_stored_verbatim_and_does_no_harm(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, _) = order(&h.pool, &[500_000]).await;
    let orders_before = scalar(&h.pool, "SELECT COUNT(*) FROM orders").await;
    let nasty = "'; DROP TABLE payments; -- \" OR 1=1 /* \u{0}\u{7}\u{1b}[31m\r\n\t\u{202e}đã chuyển";
    let content = format!("{nasty} {code} {nasty}");
    let body = serde_json::json!({
        "id": 9901, "gateway": nasty, "transactionDate": "2026-11-22 10:00:00", "accountNumber": "0123456789",
        "code": null, "content": content, "transferType": "in", "transferAmount": 500_000,
        "accumulated": 0, "subAccount": null, "referenceCode": nasty, "description": nasty,
    })
    .to_string();
    let (status, json) = post_with_key(&h.app, &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    let (stored_content, gateway, reference, raw): (String, String, String, String) = sqlx::query_as(
        "SELECT content, gateway, reference_code, raw_payload FROM payments WHERE feed = 'sepay' AND feed_txn_id = '9901'",
    )
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!((stored_content.as_str(), gateway.as_str(), reference.as_str()), (content.as_str(), nasty, nasty));
    assert_eq!(serde_json::from_str::<Value>(&raw).unwrap(), serde_json::from_str::<Value>(&body).unwrap());
    // The code was still found, the order paid, and every table is where it was.
    assert_eq!(order_state(&h.pool, &code).await.0, "paid");
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM orders").await, orders_before);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments").await, 1);
}

/// Statements the server ran and commits on the kept connection, since it opened.
async fn session_counters(db: &KeptConnections) -> (i64, i64) {
    let mut conn = db.get().await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SHOW SESSION STATUS WHERE Variable_name IN ('Questions', 'Com_commit')")
            .fetch_all(&mut **conn)
            .await
            .unwrap();
    conn.keep();
    let get = |name: &str| rows.iter().find(|(n, _)| n == name).map(|(_, v)| v.parse::<i64>().unwrap()).unwrap();
    (get("Questions"), get("Com_commit"))
}

/// What one payment costs the database, counted by the server on the connection that made it
/// and by a TCP relay in front of the server. A payment that pays a 2-course order is nine
/// statements and one commit in three round trips: the duplicate read; START TRANSACTION with
/// the order and its items locked; the payment, the order paid, its items into enrollment,
/// their outbox rows, the events and COMMIT. A repeated delivery is one read, one round trip
/// and no commit. The connection is kept, as the webhook keeps it, so the pool's ping on
/// release adds nothing.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_paying_payment_is_one_commit_in_three_round_trips_and_a_duplicate_one_read(pool: MySqlPool) {
    let relay = testing::RoundTrips::in_front_of(&pool).await;
    let db = KeptConnections::new(coursedrop::store::connect(&relay.url, 2).await.unwrap());
    let settings = PaymentSettings { pattern: pattern(), account_number: ACCOUNT.into() };
    // The outcome and the round trips it took.
    let pay = async |id: i64, code: &str| {
        let body = payload(id, code, 500_000);
        let tx = sepay::SepayTransaction::parse(body.as_bytes()).unwrap().into_transfer(body);
        let mut conn = db.get().await.unwrap();
        let before = relay.so_far();
        let outcome =
            coursedrop::app::payments::record_with(&mut conn, &tx, &settings, Arrival::Webhook).await.unwrap().outcome;
        let trips = relay.so_far() - before;
        conn.keep();
        (outcome, trips)
    };
    // Warm: every statement prepared once, as in a running function.
    let (warm, _) = order(&pool, &[250_000, 250_000]).await;
    pay(1, &warm).await;

    let (code, items) = order(&pool, &[250_000, 250_000]).await;
    let (q0, c0) = session_counters(&db).await;
    let (outcome, round_trips) = pay(2, &code).await;
    let (q1, c1) = session_counters(&db).await;
    assert!(matches!(outcome, PaymentOutcome::Applied { became_paid: true, .. }), "{outcome:?}");
    // The second SHOW counts itself. Ten statements: the duplicate read; START TRANSACTION,
    // the lock and the read of transfers like it (another feed's report of the same one); the
    // payment, the order, its items, the outbox, the events and COMMIT.
    assert_eq!((q1 - q0 - 1, c1 - c0), (10, 1), "statements and commits of the paying payment");
    assert_eq!(round_trips, 3, "round trips of the paying payment");
    assert_eq!(item_statuses(&pool, &code).await, vec!["enrolling", "enrolling"]);
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE item_id IN (?, ?) AND queue = 'enroll'")
        .bind(items[0])
        .bind(items[1])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outbox, 2);
    let events: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT e.kind, e.to_status FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.code = ? ORDER BY e.id",
    )
    .bind(&code)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        events,
        vec![
            ("order_created".into(), Some("pending".into())),
            ("payment_received".into(), None),
            ("order_status".into(), Some("paid".into())),
            ("item_status".into(), Some("enrolling".into())),
            ("item_status".into(), Some("enrolling".into())),
        ]
    );

    let (q0, c0) = session_counters(&db).await;
    let (outcome, round_trips) = pay(2, &code).await;
    assert_eq!(outcome, PaymentOutcome::Duplicate);
    let (q1, c1) = session_counters(&db).await;
    assert_eq!((q1 - q0 - 1, c1 - c0), (1, 0), "a duplicate is answered from one read");
    assert_eq!(round_trips, 1, "round trips of a duplicate");
}

// ---------------------------------------------------------------- Casso webhook v2

/// A Casso delivery of transaction `id` with `description`, as Casso's webhook v2 sends it.
fn casso_body(id: i64, description: &str, amount: i64) -> Value {
    json!({"error": 0, "data": {
        "id": id, "reference": format!("FT{id}"), "description": description, "amount": amount,
        "runningBalance": 25_000_000, "transactionDateTime": "2026-11-22 10:00:00", "accountNumber": ACCOUNT,
        "bankName": "MBBank", "bankAbbreviation": "MBB", "virtualAccountNumber": "", "virtualAccountName": "",
        "counterAccountName": "NGUYỄN VĂN A", "counterAccountNumber": "8888888888", "counterAccountBankId": "970415",
        "counterAccountBankName": "VietinBank"}})
}

/// The header Casso would send for `body` at `t_ms`, made by the bank emulator's signer (its
/// own implementation, checked against Casso's published example).
fn casso_signature(body: &Value, t_ms: i64) -> String {
    format!("t={t_ms},v1={}", bank_emulator::casso_signature(CASSO_KEY, t_ms, body))
}

async fn post_casso(app: &Router, raw: &str, signature: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::post("/webhooks/casso").header("content-type", "application/json");
    if let Some(s) = signature {
        req = req.header("X-Casso-Signature", s);
    }
    let resp = app.clone().oneshot(req.body(Body::from(raw.to_string())).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A signed Casso transfer pays an order whose code was made for SePay's pattern, with
/// Vietnamese text and escapes in its description; a redelivery changes nothing.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_signed_casso_delivery_pays_the_order_once(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, items) = order(&h.pool, &[350_000]).await;
    let description = format!("Chuyển khoản \"học phí\" {} — cảm ơn\n\t\\ / \u{1}", code.to_lowercase());
    let body = casso_body(5_550_001, &description, 350_000);
    let now = Utc::now().timestamp_millis();
    let (status, answer) = post_casso(&h.app, &body.to_string(), Some(&casso_signature(&body, now))).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    assert_eq!(order_state(&h.pool, &code).await, ("paid".into(), 350_000, None));
    assert_eq!(testing::drain(&h.sqs, &h.urls[&Queue::Enroll]).await, bodies_for(&items));
    let (gateway, id, content): (String, String, String) =
        sqlx::query_as("SELECT feed, feed_txn_id, content FROM payments").fetch_one(&h.pool).await.unwrap();
    assert_eq!((gateway.as_str(), id.as_str(), content.as_str()), ("casso", "5550001", description.as_str()));

    let (status, _) = post_casso(&h.app, &body.to_string(), Some(&casso_signature(&body, now + 5))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'payment_received'").await, 1);
}

/// Exactly Casso's rule: what is signed is the parsed body with keys sorted, so the same
/// body with its keys in another order and other spacing verifies; any changed value, a
/// changed timestamp, a stale one, or none at all is refused, and nothing is recorded.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn casso_signatures_are_checked_as_casso_makes_them(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, _) = order(&h.pool, &[100_000]).await;
    let body = casso_body(5_550_002, &format!("thanh toán {code}"), 100_000);
    let now = Utc::now().timestamp_millis();
    let signature = casso_signature(&body, now);

    let mut tampered = body.clone();
    tampered["data"]["amount"] = json!(1_000_000);
    let other_t = signature.replacen(&format!("t={now}"), &format!("t={}", now + 1), 1);
    let stale = casso_body(5_550_002, &format!("thanh toán {code}"), 100_000);
    let stale_at = now - 10 * 60 * 1000;
    for (case, raw, sig) in [
        ("tampered body", tampered.to_string(), Some(signature.clone())),
        ("tampered timestamp", body.to_string(), Some(other_t)),
        ("stale", stale.to_string(), Some(casso_signature(&stale, stale_at))),
        ("unsigned", body.to_string(), None),
        ("malformed", body.to_string(), Some("sha512=abc".to_string())),
    ] {
        let (status, answer) = post_casso(&h.app, &raw, sig.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {answer}");
        assert_eq!(answer["code"], "unauthorized", "{case}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}: {answer}");
    }
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments").await, 0);

    // The same body, keys in another order, spaced out: the signature still holds.
    let reordered = format!(
        "{{ \"data\" : {{ {} }} ,\n \"error\" : 0 }}",
        body["data"]
            .as_object()
            .unwrap()
            .iter()
            .rev()
            .map(|(k, v)| format!("\"{k}\" : {v}"))
            .collect::<Vec<_>>()
            .join(" , ")
    );
    let (status, answer) = post_casso(&h.app, &reordered, Some(&signature)).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    assert_eq!(order_state(&h.pool, &code).await.0, "paid");
}

/// Casso's dashboard test call (its sample transaction, id 0, or no transaction at all),
/// signed or not, gets a clear 200 and records nothing; with no checksum key configured,
/// a real delivery is refused with a message that says so.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn casso_test_calls_get_a_clear_answer_and_no_key_refuses_deliveries(pool: MySqlPool) {
    let h = harness(pool.clone()).await;
    let sample = casso_body(0, "giao dich thu nghiem", 599_000);
    for (raw, sig) in [
        (sample.to_string(), None),
        (sample.to_string(), Some(casso_signature(&sample, Utc::now().timestamp_millis()))),
        ("{}".to_string(), None),
        (r#"{"error":0,"data":null}"#.to_string(), None),
    ] {
        let (status, answer) = post_casso(&h.app, &raw, sig.as_deref()).await;
        assert_eq!(status, StatusCode::OK, "{raw}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains("reachable"), "{answer}");
    }
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments").await, 0);
    let (status, answer) = post_casso(&h.app, "not json", None).await;
    assert_eq!((status, answer["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_payload")));

    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let mut off = harness_with(pool, WebhookAuth::ApiKey(KEY.into()), Arc::new(publisher), sqs, urls).await;
    let state = WebhookState {
        db: KeptConnections::new(off.pool.clone()),
        auth: WebhookAuth::ApiKey(KEY.into()),
        casso: coursedrop::adapters::casso::CassoAuth::Unconfigured { reason: "CASSO_CHECKSUM_KEY is not set".into() },
        payos: coursedrop::adapters::payos::PayosAuth::Unconfigured,
        settings: PaymentSettings { pattern: pattern(), account_number: ACCOUNT.into() },
        publisher: off.publisher.clone(),
        sepay_sources: None,
    };
    off.app = router(Arc::new(state));
    let body = casso_body(5_550_003, "CD12345678", 1_000);
    let (status, answer) =
        post_casso(&off.app, &body.to_string(), Some(&casso_signature(&body, Utc::now().timestamp_millis()))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer["message"].as_str().unwrap().contains("not configured"), "{answer}");
    assert_eq!(scalar(&off.pool, "SELECT COUNT(*) FROM payments").await, 0);
}

/// `SEPAY_ALLOWED_IPS=sepay`: SePay's calls are taken only from the addresses SePay publishes,
/// as API Gateway saw the connection (a forged `X-Forwarded-For` changes nothing), and on top
/// of the key, not instead of it.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_optional_allow_list_takes_sepay_only_from_its_published_addresses(pool: MySqlPool) {
    let vars =
        coursedrop::app::config::Vars::new(|k: &str| (k == "SEPAY_ALLOWED_IPS").then(|| "sepay, 10.1.2.3".to_string()));
    let allowed = bank_webhook::sepay_sources(&vars).unwrap().unwrap();
    assert_eq!(allowed.len(), 9, "the eight published addresses and the one added");
    let bad =
        coursedrop::app::config::Vars::new(|k: &str| (k == "SEPAY_ALLOWED_IPS").then(|| "sepay,not-an-ip".to_string()));
    assert!(bank_webhook::sepay_sources(&bad).is_err());

    let h = harness(pool.clone()).await;
    let state = WebhookState {
        db: KeptConnections::new(pool.clone()),
        auth: WebhookAuth::ApiKey(KEY.into()),
        casso: coursedrop::adapters::casso::CassoAuth::Unconfigured { reason: "off".into() },
        payos: coursedrop::adapters::payos::PayosAuth::Unconfigured,
        settings: PaymentSettings { pattern: pattern(), account_number: ACCOUNT.into() },
        publisher: h.publisher.clone(),
        sepay_sources: Some(allowed),
    };
    let app = router(Arc::new(state));
    let (code, _) = order(&pool, &[100_000]).await;
    let send = |from: &'static str, id: i64| {
        let app = app.clone();
        let body = payload(id, &format!("thanh toan {code}"), 100_000);
        async move {
            let mut req = Request::post("/webhooks/sepay")
                .header("content-type", "application/json")
                .header("authorization", format!("Apikey {KEY}"))
                .header("x-forwarded-for", "171.244.35.2")
                .body(Body::from(body))
                .unwrap();
            req.extensions_mut().insert(coursedrop::runtime::http::ClientIp(from.parse().unwrap()));
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    let (status, answer) = send("203.0.113.9", 7001).await;
    assert_eq!((status, answer["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden_source")), "{answer}");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments").await, 0, "nothing recorded from elsewhere");
    let (status, _) = send("171.244.35.2", 7001).await;
    assert_eq!(status, StatusCode::OK, "a published SePay address");
    let (status, _) = send("2400:8905::2000:8cff:fe98:45cd", 7002).await;
    assert_eq!(status, StatusCode::OK, "its IPv6 address too");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments").await, 2);
}

// ---------------------------------------------------------------- one transfer, two feeds

/// The same bank transfer as SePay and as Casso report it: each with its own id, both with
/// the bank's reference `reference` (blank for a feed that gives none).
fn both_feeds(sepay_id: i64, casso_id: i64, reference: &str, text: &str, amount: i64) -> (String, Value) {
    let mut sepay: Value = serde_json::from_str(&payload(sepay_id, text, amount)).unwrap();
    sepay["referenceCode"] = json!(reference);
    let mut casso = casso_body(casso_id, text, amount);
    casso["data"]["reference"] = json!(reference);
    (sepay.to_string(), casso)
}

async fn post_casso_signed(app: &Router, body: &Value) -> (StatusCode, Value) {
    let now = Utc::now().timestamp_millis();
    post_casso(app, &body.to_string(), Some(&casso_signature(body, now))).await
}

async fn order_counts(pool: &MySqlPool, code: &str) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM payments p WHERE p.order_id = o.id),
                (SELECT COUNT(*) FROM payment_sightings s JOIN payments p ON p.id = s.payment_id WHERE p.order_id = o.id),
                o.paid_vnd
         FROM orders o WHERE o.code = ?",
    )
    .bind(code)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A seller connected SePay and Casso to one account: every transfer comes twice, with two
/// ids. In either order, or at the same moment, and with each feed's own redeliveries, the
/// order is paid once from one transfer; the second report is kept as evidence.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn one_transfer_from_both_feeds_is_one_payment_in_either_order_and_at_once(pool: MySqlPool) {
    let h = harness(pool).await;
    for round in 0..20i64 {
        let (code, items) = order(&h.pool, &[200_000, 150_000]).await;
        let (sepay, casso) = both_feeds(
            90_000 + round,
            70_000 + round,
            &format!("FT26339{round:04}"),
            &format!("{code} hoc phi"),
            350_000,
        );
        match round % 3 {
            0 => {
                assert_eq!(post_with_key(&h.app, &sepay).await.0, StatusCode::OK);
                assert_eq!(post_casso_signed(&h.app, &casso).await.0, StatusCode::OK);
            }
            1 => {
                assert_eq!(post_casso_signed(&h.app, &casso).await.0, StatusCode::OK);
                assert_eq!(post_with_key(&h.app, &sepay).await.0, StatusCode::OK);
            }
            _ => {
                // Both feeds and a redelivery of each, all at once.
                let (a, b, c, d) = tokio::join!(
                    post_with_key(&h.app, &sepay),
                    post_casso_signed(&h.app, &casso),
                    post_casso_signed(&h.app, &casso),
                    post_with_key(&h.app, &sepay)
                );
                assert_eq!([a.0, b.0, c.0, d.0], [StatusCode::OK; 4], "round {round}");
            }
        }
        // Each feed redelivers once more, later.
        assert_eq!(post_with_key(&h.app, &sepay).await.0, StatusCode::OK);
        assert_eq!(post_casso_signed(&h.app, &casso).await.0, StatusCode::OK);

        assert_eq!(order_counts(&h.pool, &code).await, (1, 1, 350_000), "round {round}: one payment, one sighting");
        assert_eq!(order_state(&h.pool, &code).await, ("paid".into(), 350_000, None), "round {round}");
        let mut got = testing::drain(&h.sqs, &h.urls[&Queue::Enroll]).await;
        got.sort();
        assert_eq!(got, bodies_for(&items), "round {round}: one enroll message per item");
    }
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'payment_received'").await, 20);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'payment_seen_again'").await, 20);
}

/// Two genuinely different transfers of the same amount and text, minutes apart, each with
/// its own reference: both count (a buyer paying the second half, or paying twice).
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn two_transfers_with_equal_amount_and_text_are_two_payments(pool: MySqlPool) {
    let h = harness(pool).await;
    let (code, _) = order(&h.pool, &[400_000]).await;
    let (first, _) = both_feeds(91_001, 0, "FT1001", &code, 200_000);
    let (_, second) = both_feeds(0, 71_001, "FT1002", &code, 200_000);
    assert_eq!(post_with_key(&h.app, &first).await.0, StatusCode::OK);
    assert_eq!(post_casso_signed(&h.app, &second).await.0, StatusCode::OK);
    assert_eq!(order_counts(&h.pool, &code).await, (2, 0, 400_000));
    assert_eq!(order_state(&h.pool, &code).await.0, "paid");

    // Without references, minutes apart in the bank's time: two transfers as well.
    let (code, _) = order(&h.pool, &[400_000]).await;
    let (sepay, _) = both_feeds(91_002, 0, "", &code, 200_000);
    let (_, mut casso) = both_feeds(0, 71_002, "", &code, 200_000);
    casso["data"]["transactionDateTime"] = json!("2026-11-22 10:04:00");
    assert_eq!(post_with_key(&h.app, &sepay).await.0, StatusCode::OK);
    assert_eq!(post_casso_signed(&h.app, &casso).await.0, StatusCode::OK);
    assert_eq!(order_counts(&h.pool, &code).await, (2, 0, 400_000));
}

/// A feed that gives no bank reference: a lookalike of a counted transfer (other feed, same
/// account, amount and text, seconds apart) is held: not counted, not lost, listed for an
/// operator, and counted exactly once when released; a dropped one never counts.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_lookalike_without_a_reference_is_held_listed_and_released_once(pool: MySqlPool) {
    use coursedrop::app::payments::hold;
    let h = harness(pool).await;
    let (code, items) = order(&h.pool, &[600_000]).await;
    let (sepay, _) = both_feeds(92_001, 0, "FT2001", &format!("{code} dot 1"), 300_000);
    let (_, mut casso) = both_feeds(0, 72_001, "", &format!("{code} dot 1"), 300_000);
    casso["data"]["transactionDateTime"] = json!("2026-11-22 10:00:20");
    assert_eq!(post_with_key(&h.app, &sepay).await.0, StatusCode::OK);
    assert_eq!(post_casso_signed(&h.app, &casso).await.0, StatusCode::OK);
    assert_eq!(post_casso_signed(&h.app, &casso).await.0, StatusCode::OK, "a redelivery of the held one");

    assert_eq!(order_counts(&h.pool, &code).await, (1, 0, 300_000), "held: kept, not counted");
    assert_eq!(order_state(&h.pool, &code).await.0, "pending");
    let held = hold::held(&h.pool, 50).await.unwrap();
    assert_eq!(held.len(), 1);
    let (held_id, first_id) = (held[0].id, held[0].duplicate_of);
    assert_eq!((held[0].feed.as_str(), held[0].feed_txn_id.as_str()), ("casso", "72001"));
    assert_eq!((held[0].duplicate_feed.as_str(), held[0].order_code.as_deref()), ("sepay", Some(code.as_str())));
    assert!(payments_unmatched(&h.pool).await.is_empty(), "a held payment is not offered to attach");
    assert!(matches!(
        coursedrop::app::payments::attach(&h.pool, held_id, &code.parse_code(), "operator:t").await,
        Err(coursedrop::app::payments::AttachError::OnHold(_))
    ));

    // The seller's statement shows two transfers: release counts it, once.
    let released = hold::release(&h.pool, held_id, "operator:lan").await.unwrap();
    let (released_to, recorded) = released.recorded.unwrap();
    assert_eq!(released_to, code);
    assert!(matches!(recorded.outcome, PaymentOutcome::Applied { became_paid: true, .. }), "{:?}", recorded.outcome);
    assert_eq!(order_state(&h.pool, &code).await, ("paid".into(), 600_000, None));
    assert_eq!(order_counts(&h.pool, &code).await, (2, 0, 600_000));
    assert!(matches!(hold::release(&h.pool, held_id, "operator:lan").await, Err(hold::HoldError::NotHeld(_))));
    assert!(matches!(hold::drop_held(&h.pool, first_id, "operator:lan").await, Err(hold::HoldError::NotHeld(_))));
    assert!(hold::held(&h.pool, 50).await.unwrap().is_empty());
    coursedrop::app::relay::publish_all(&h.pool, h.publisher.as_ref(), &recorded.outbox).await;
    let mut got = testing::drain(&h.sqs, &h.urls[&Queue::Enroll]).await;
    got.sort();
    assert_eq!(got, bodies_for(&items), "the released payment paid the order: its items go to enrollment");
    let actor: String =
        sqlx::query_scalar("SELECT actor FROM order_events WHERE kind = 'payment_received' ORDER BY id DESC LIMIT 1")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(actor, "operator:lan");
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM outbox").await, items.len() as i64);

    // Another lookalike, dropped: evidence only.
    let (code, _) = order(&h.pool, &[300_000]).await;
    let (_, casso) = both_feeds(0, 72_002, "", &code, 300_000);
    let (sepay, _) = both_feeds(92_002, 0, "", &code, 300_000);
    assert_eq!(post_casso_signed(&h.app, &casso).await.0, StatusCode::OK);
    assert_eq!(post_with_key(&h.app, &sepay).await.0, StatusCode::OK);
    let held = hold::held(&h.pool, 50).await.unwrap();
    assert_eq!((held.len(), held[0].feed.as_str()), (1, "sepay"), "either feed may be the one held");
    hold::drop_held(&h.pool, held[0].id, "operator:lan").await.unwrap();
    assert_eq!(order_state(&h.pool, &code).await, ("paid".into(), 300_000, None));
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'payment_dropped'").await, 1);
    assert_eq!(scalar(&h.pool, "SELECT COUNT(*) FROM payments WHERE hold = 'dropped' AND order_id IS NULL").await, 1);
}

async fn payments_unmatched(pool: &MySqlPool) -> Vec<coursedrop::app::payments::UnmatchedPayment> {
    coursedrop::app::payments::unmatched(pool, 50).await.unwrap()
}

trait ParseCode {
    fn parse_code(&self) -> coursedrop::domain::OrderCode;
}

impl ParseCode for String {
    fn parse_code(&self) -> coursedrop::domain::OrderCode {
        coursedrop::domain::OrderCode::parse(self, &pattern()).unwrap()
    }
}

/// A transfer that names no order, reported by both feeds without a reference: kept once as
/// unmatched, the second report held beside it (an operator attaching both would count it
/// twice otherwise).
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_unmatched_lookalike_from_the_other_feed_is_held_not_offered_twice(pool: MySqlPool) {
    let h = harness(pool).await;
    let (sepay, _) = both_feeds(93_001, 0, "", "chuyen tien hoc phi", 300_000);
    let (_, casso) = both_feeds(0, 73_001, "", "chuyen tien hoc phi", 300_000);
    assert_eq!(post_with_key(&h.app, &sepay).await.0, StatusCode::OK);
    assert_eq!(post_casso_signed(&h.app, &casso).await.0, StatusCode::OK);
    let unmatched = payments_unmatched(&h.pool).await;
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(unmatched[0].gateway, "sepay");
    let held = coursedrop::app::payments::hold::held(&h.pool, 50).await.unwrap();
    assert_eq!((held.len(), held[0].feed.as_str(), held[0].order_code.as_deref()), (1, "casso", None));
    // Released, it is a transfer of its own: offered for attaching like any unmatched one.
    let released = coursedrop::app::payments::hold::release(&h.pool, held[0].id, "operator:lan").await.unwrap();
    assert!(released.recorded.is_none());
    assert_eq!(payments_unmatched(&h.pool).await.len(), 2);
}
