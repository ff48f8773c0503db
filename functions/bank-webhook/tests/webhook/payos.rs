//! `POST /webhooks/payos`: payOS's signed deliveries, on the same recording path as SePay's
//! and Casso's.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use coursedrop::adapters::payos_signature;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::MySqlPool;
use tower::ServiceExt;

use super::{ACCOUNT, PAYOS_KEY, harness, order, order_state, pattern, payload, post_with_key, scalar};

fn delivery(code: &str, amount: i64, reference: &str, text: &str, key: &str) -> Value {
    let number = pattern().payos_number(&coursedrop::domain::OrderCode::parse(code, &pattern()).unwrap()).unwrap();
    let data = json!({
        "orderCode": number, "amount": amount, "description": text, "accountNumber": ACCOUNT,
        "reference": reference, "transactionDateTime": "2026-12-05 10:00:00", "currency": "VND",
        "paymentLinkId": format!("link-{number}"), "code": "00", "desc": "success", "counterAccountBankId": "970436",
        "counterAccountBankName": "Vietcombank", "counterAccountName": "NGUYEN VAN A",
        "counterAccountNumber": "9876543210", "virtualAccountName": "", "virtualAccountNumber": ""
    });
    let signature = payos_signature::sign_data(key, &data).unwrap();
    json!({"code": "00", "desc": "success", "success": true, "data": data, "signature": signature})
}

async fn post_payos(app: &axum::Router, body: &Value) -> (StatusCode, Value) {
    let req = Request::post("/webhooks/payos")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_signed_payos_delivery_pays_its_order_once_whatever_its_text_says(pool: MySqlPool) {
    let h = harness(pool.clone()).await;
    let (code, _) = order(&pool, &[300_000]).await;
    // payOS knows the order by its number; the text the buyer's bank wrote names nothing.
    let body = delivery(&code, 300_000, "FT25339000001", "chuyen tien", PAYOS_KEY);
    for _ in 0..3 {
        let (status, answer) = post_payos(&h.app, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, paid, _) = order_state(&pool, &code).await;
    assert_eq!((status.as_str(), paid), ("paid", 300_000), "paid once, whatever the redeliveries");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments WHERE feed = 'payos'").await, 1);
    let actor: String = sqlx::query_scalar(
        "SELECT e.actor FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.code = ? AND e.kind = 'payment_received'",
    )
    .bind(&code)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor, "payos-webhook");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_tampered_unsigned_or_wrongly_keyed_payos_delivery_pays_nothing(pool: MySqlPool) {
    let h = harness(pool.clone()).await;
    let (code, _) = order(&pool, &[300_000]).await;
    let mut tampered = delivery(&code, 3_000, "FT25339000002", "x", PAYOS_KEY);
    tampered["data"]["amount"] = json!(300_000);
    let mut unsigned = delivery(&code, 300_000, "FT25339000003", "x", PAYOS_KEY);
    unsigned.as_object_mut().unwrap().remove("signature");
    let other_key = delivery(&code, 300_000, "FT25339000004", "x", "not-the-merchants-key");
    for body in [tampered, unsigned, other_key] {
        let (status, answer) = post_payos(&h.app, &body).await;
        assert_eq!((status, answer["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{answer}");
    }
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments").await, 0);
    assert_eq!(order_state(&pool, &code).await.0, "pending");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_same_transfer_from_payos_and_sepay_credits_once(pool: MySqlPool) {
    let h = harness(pool.clone()).await;
    let (code, _) = order(&pool, &[250_000]).await;
    // SePay reports the transfer with its reference FT<id>; payOS reports the same one.
    let id = 7_700_001;
    let (status, _) = post_with_key(&h.app, &payload(id, &code, 250_000)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post_payos(&h.app, &delivery(&code, 250_000, &format!("FT{id}"), &code, PAYOS_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    let (state, paid, _) = order_state(&pool, &code).await;
    assert_eq!((state.as_str(), paid), ("paid", 250_000), "credited once");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments WHERE order_id IS NOT NULL").await, 1);
}

/// payOS's transfer text is its short description, not our code: SePay, seeing the same
/// transfer first, keeps it unmatched. payOS's signed report then names the order, and the
/// same money (one bank reference) pays it, once.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn sepay_seeing_a_payos_transfer_first_without_the_code_does_not_strand_the_money(pool: MySqlPool) {
    let h = harness(pool.clone()).await;
    let (code, _) = order(&pool, &[250_000]).await;
    let short = &code[code.len() - 8..];
    let id = 7_700_002;
    let (status, _) = post_with_key(&h.app, &payload(id, short, 250_000)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order_state(&pool, &code).await.0, "pending", "SePay alone cannot tell the order");
    let report = delivery(&code, 250_000, &format!("FT{id}"), short, PAYOS_KEY);
    for _ in 0..2 {
        let (status, _) = post_payos(&h.app, &report).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (state, paid, _) = order_state(&pool, &code).await;
    assert_eq!((state.as_str(), paid), ("paid", 250_000), "paid once by the one transfer");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments").await, 1, "one payment, payOS's a sighting");
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments WHERE order_id IS NOT NULL").await, 1);
    let received = scalar(&pool, "SELECT COUNT(*) FROM order_events WHERE kind = 'payment_received'").await;
    assert_eq!(received, 1);
}

/// A second report of a transfer already counted leaves no lock behind on the connection the
/// webhook keeps between requests: the order can be locked at once by anyone else (an
/// operator's refund, the next delivery). A lock left until that connection's next use made
/// concurrent deliveries wait out the lock timeout and answer 500.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_second_report_leaves_no_lock_on_the_order(pool: MySqlPool) {
    let h = harness(pool.clone()).await;
    let (code, _) = order(&pool, &[250_000]).await;
    let id = 7_700_003;
    let (status, _) = post_with_key(&h.app, &payload(id, &code, 250_000)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post_payos(&h.app, &delivery(&code, 250_000, &format!("FT{id}"), &code, PAYOS_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    let mut other = pool.acquire().await.unwrap();
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 1").execute(&mut *other).await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *other).await.unwrap();
    let locked = sqlx::query("SELECT id FROM orders WHERE code = ? FOR UPDATE").bind(&code).execute(&mut *tx).await;
    assert!(locked.is_ok(), "the order is still locked by the webhook's kept connection: {locked:?}");
    tx.rollback().await.unwrap();
}
