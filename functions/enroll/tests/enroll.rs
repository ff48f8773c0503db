//! The enroll function against real MariaDB, moto SQS, and local HTTP servers on port 0 that
//! behave as a seller's LMS webhook and as Moodle's REST web services are documented to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use coursedrop::adapters::lms::moodle::MoodleProvider;
use coursedrop::adapters::lms::webhook::WebhookProvider;
use coursedrop::adapters::queue::SqsPublisher;
use coursedrop::adapters::signing;
use coursedrop::app::enrollment::{Builtin, EnrollProvider, EnrollSettings};
use coursedrop::domain::{CodeCharset, CodePattern, Email, ItemStatus, OrderCode, Queue, Vnd};
use coursedrop::store::items::{self, ItemChange};
use coursedrop::store::orders;
use coursedrop::testing;
use enroll::{EnrollContext, handle};
use serde_json::{Value, json};
use sqlx::MySqlPool;

// ------------------------------------------------------------------ fixtures

/// Paid items, each in `enrolling`, for courses mapped to Moodle course 42.
async fn enrolling_items(pool: &MySqlPool, n: usize) -> (String, Vec<u64>) {
    let mut courses = Vec::new();
    for i in 0..n {
        let slug = format!("course-{i}-{}", Utc::now().timestamp_micros());
        let id = testing::seed_course(pool, &slug, "Khoá học", 100_000, true).await;
        sqlx::query("UPDATE courses SET lms_course_id = '42' WHERE id = ?").bind(id).execute(pool).await.unwrap();
        courses.push((id, Vnd::new(100_000).unwrap()));
    }
    let code = OrderCode::generate(&CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap());
    let created = orders::create(
        pool,
        &orders::NewOrder {
            code: &code,
            email: &Email::parse("Hoc.Vien@Example.com").unwrap(),
            phone: Some("0912345678"),
            lang: "vi",
            expires_at: Utc::now() + chrono::Duration::minutes(30),
            items: &courses,
            idempotency_key: None,
            request_hash: None,
            coupon: None,
        },
        "test",
    )
    .await
    .unwrap();
    for id in &created.item_ids {
        items::transition(pool, &ItemChange::new(*id, ItemStatus::AwaitingPayment, ItemStatus::Enrolling, "test"))
            .await
            .unwrap();
    }
    sqlx::query("UPDATE outbox SET published_at = NOW(3)").execute(pool).await.unwrap();
    (code.to_string(), created.item_ids)
}

fn event(records: &[(&str, &str)]) -> SqsEvent {
    let mut e = SqsEvent::default();
    for (id, body) in records {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_string());
        m.body = Some(body.to_string());
        e.records.push(m);
    }
    e
}

fn body(item: u64) -> String {
    format!("{{\"item_id\":{item}}}")
}

async fn context<P: EnrollProvider>(
    pool: &MySqlPool,
    provider: P,
    max_attempts: u32,
) -> (EnrollContext<P, SqsPublisher>, aws_sdk_sqs::Client, HashMap<Queue, String>) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let settings = EnrollSettings { max_attempts, lease_secs: 60 };
    (EnrollContext { pool: pool.clone(), provider, publisher, settings, worker: "test".into() }, sqs, urls)
}

async fn item_status(pool: &MySqlPool, id: u64) -> String {
    item(pool, id).await.0
}

async fn item(pool: &MySqlPool, id: u64) -> (String, u32, Option<String>, Option<String>) {
    sqlx::query_as("SELECT status, attempts, failed_stage, last_error FROM order_items WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn failures(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, router).into_future());
    format!("http://{addr}")
}

// ------------------------------------------------------------------ a seller's LMS webhook

#[derive(Default)]
struct Lms {
    /// Per item id, the statuses to answer with, in order; 200 once they run out. Keyed by
    /// item because a batch's records are worked concurrently.
    script: HashMap<u64, VecDeque<u16>>,
    delay: Option<Duration>,
    calls: Vec<Value>,
    bad_signatures: usize,
}

async fn lms_webhook(State(lms): State<Arc<Mutex<Lms>>>, headers: HeaderMap, raw: String) -> StatusCode {
    let delay = {
        let mut l = lms.lock().unwrap();
        let ts = headers.get("x-coursedrop-timestamp").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let sig = headers.get("x-coursedrop-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        if sig != format!("sha256={}", signing::sign("lms-secret", &ts, raw.as_bytes())) {
            l.bad_signatures += 1;
            return StatusCode::UNAUTHORIZED;
        }
        l.calls.push(serde_json::from_str(&raw).unwrap());
        l.delay
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let item = serde_json::from_str::<Value>(&raw).unwrap()["item_id"].as_u64().unwrap();
    let status = lms.lock().unwrap().script.get_mut(&item).and_then(|s| s.pop_front()).unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn lms(script: &[(u64, &[u16])]) -> (Arc<Mutex<Lms>>, WebhookProvider) {
    let script = script.iter().map(|(item, statuses)| (*item, statuses.iter().copied().collect())).collect();
    let state = Arc::new(Mutex::new(Lms { script, ..Default::default() }));
    let url = serve(
        Router::new().route("/enroll", post(lms_webhook)).route("/revoke", post(lms_webhook)).with_state(state.clone()),
    )
    .await;
    let provider = WebhookProvider::new(format!("{url}/enroll"), "lms-secret".into(), Duration::from_millis(500))
        .with_revoke_url(Some(format!("{url}/revoke")));
    (state, provider)
}

// ------------------------------------------------------------------ Moodle

#[derive(Default)]
struct Moodle {
    users: Vec<(u64, String, bool)>,
    enrolments: Vec<(u64, u64, u64)>,
    calls: Vec<String>,
    fail_next: usize,
    /// Calls that carried the token in the URL (it must travel in the body).
    token_in_url: usize,
    /// Answer nothing for this long (longer than the client's timeout: a hung Moodle).
    hang: Option<Duration>,
}

fn moodle_error(errorcode: &str, message: &str) -> Json<Value> {
    // Moodle reports errors as HTTP 200 with an exception object.
    Json(json!({"exception": "moodle_exception", "errorcode": errorcode, "message": message}))
}

async fn moodle_ws(
    State(state): State<Arc<Mutex<Moodle>>>,
    Query(query): Query<HashMap<String, String>>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Json<Value>, StatusCode> {
    let hang = state.lock().unwrap().hang;
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    let mut m = state.lock().unwrap();
    m.token_in_url += usize::from(query.contains_key("wstoken"));
    // Moodle's REST server reads its ws parameters from the query string or the POST body.
    let mut q = query;
    for k in ["wstoken", "wsfunction", "moodlewsrestformat"] {
        if let Some(v) = f.get(k) {
            q.insert(k.to_string(), v.clone());
        }
    }
    let function = q.get("wsfunction").cloned().unwrap_or_default();
    m.calls.push(function.clone());
    if m.fail_next > 0 {
        m.fail_next -= 1;
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    if q.get("wstoken").map(String::as_str) != Some("good-token") {
        return Ok(moodle_error("invalidtoken", "Invalid token - token not found"));
    }
    assert_eq!(q.get("moodlewsrestformat").map(String::as_str), Some("json"));
    Ok(match function.as_str() {
        "core_user_get_users_by_field" => {
            assert_eq!(f.get("field").map(String::as_str), Some("email"));
            let email = f.get("values[0]").cloned().unwrap_or_default();
            let found: Vec<Value> = m
                .users
                .iter()
                .filter(|u| u.1 == email)
                .map(|u| json!({"id": u.0, "username": u.1, "email": u.1}))
                .collect();
            Json(json!(found))
        }
        "core_user_create_users" => {
            let (Some(username), Some(email), Some(_), Some(_)) = (
                f.get("users[0][username]"),
                f.get("users[0][email]"),
                f.get("users[0][firstname]"),
                f.get("users[0][lastname]"),
            ) else {
                return Ok(moodle_error("invalidparameter", "Invalid parameter value detected"));
            };
            // Moodle's PARAM_USERNAME: lower-case letters, digits and _ - . @ only.
            if !username.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.@".contains(c)) {
                return Ok(moodle_error("invalidparameter", "Invalid parameter value detected (username)"));
            }
            if m.users.iter().any(|u| &u.1 == username) {
                return Ok(moodle_error("invalidparameter", "Username already exists"));
            }
            let id = 100 + m.users.len() as u64;
            let createpassword = f.get("users[0][createpassword]").map(String::as_str) == Some("1");
            m.users.push((id, email.clone(), createpassword));
            Json(json!([{"id": id, "username": username}]))
        }
        "enrol_manual_enrol_users" => {
            let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
            let (Some(role), Some(user), Some(course)) =
                (num("enrolments[0][roleid]"), num("enrolments[0][userid]"), num("enrolments[0][courseid]"))
            else {
                return Ok(moodle_error("invalidparameter", "Invalid parameter value detected"));
            };
            if course != 42 {
                return Ok(moodle_error("invalidrecord", "Can't find data record in database table course."));
            }
            if !m.enrolments.contains(&(user, course, role)) {
                m.enrolments.push((user, course, role));
            }
            Json(Value::Null)
        }
        "enrol_manual_unenrol_users" => {
            let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
            let (Some(user), Some(course)) = (num("enrolments[0][userid]"), num("enrolments[0][courseid]")) else {
                return Ok(moodle_error("invalidparameter", "Invalid parameter value detected"));
            };
            if course != 42 {
                return Ok(moodle_error("invalidrecord", "Can't find data record in database table course."));
            }
            // Moodle's manual plugin unenrols the user's enrolment, whatever roles it had; a
            // user not enrolled is left as they are, without an error.
            m.enrolments.retain(|e| !(e.0 == user && e.1 == course));
            Json(Value::Null)
        }
        _ => moodle_error("invalidrecord", "Can't find data record in database table external_functions."),
    })
}

async fn moodle(token: &str) -> (Arc<Mutex<Moodle>>, MoodleProvider) {
    let state = Arc::new(Mutex::new(Moodle::default()));
    let url =
        serve(Router::new().route("/webservice/rest/server.php", post(moodle_ws)).with_state(state.clone())).await;
    (state, MoodleProvider::new(url, token.into(), 5, Duration::from_secs(2)))
}

// ------------------------------------------------------------------ tests

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn builtin_enrolls_and_hands_the_item_to_delivery(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    let (ctx, sqs, urls) = context(&pool, Builtin, 5).await;
    let r = handle(&ctx, event(&[("m1", &body(items_[0]))])).await;
    assert!(failures(&r).is_empty());
    assert_eq!(item(&pool, items_[0]).await.0, "enrolled");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Deliver]).await, vec![body(items_[0])]);
    let actor: String = sqlx::query_scalar("SELECT actor FROM order_events WHERE to_status = 'enrolled'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(actor, "enroll");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_webhook_provider_signs_its_call_and_maps_answers(pool: MySqlPool) {
    let (code, items_) = enrolling_items(&pool, 3).await;
    // 200, 409 (already enrolled: success) and 422 (permanent).
    let (lms, provider) = lms(&[(items_[1], &[409]), (items_[2], &[422])]).await;
    let (ctx, sqs, urls) = context(&pool, provider, 5).await;
    let r = handle(&ctx, event(&[("a", &body(items_[0])), ("b", &body(items_[1])), ("c", &body(items_[2]))])).await;
    assert!(failures(&r).is_empty(), "nothing here is worth retrying");

    assert_eq!(item(&pool, items_[0]).await.0, "enrolled");
    assert_eq!(item(&pool, items_[1]).await.0, "enrolled");
    let (status, _, stage, error) = item(&pool, items_[2]).await;
    assert_eq!((status.as_str(), stage.as_deref()), ("failed", Some("enroll")));
    assert!(error.as_deref().unwrap().starts_with("webhook: LMS webhook answered 422"), "{error:?}");
    let mut delivered = testing::drain(&sqs, &urls[&Queue::Deliver]).await;
    delivered.sort();
    let mut want = vec![body(items_[0]), body(items_[1])];
    want.sort();
    assert_eq!(delivered, want, "only enrolled items go to delivery");

    let lms = lms.lock().unwrap();
    assert_eq!(lms.bad_signatures, 0);
    let call = lms.calls.iter().find(|c| c["item_id"] == items_[0]).unwrap();
    assert_eq!(
        call,
        &json!({"order_code": code, "email": "Hoc.Vien@example.com", "phone": "0912345678", "course_slug": call["course_slug"], "item_id": items_[0]})
    );
    assert!(call["course_slug"].as_str().unwrap().starts_with("course-0-"));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_transient_failure_is_retried_then_succeeds(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    let (lms, provider) = lms(&[(items_[0], &[503])]).await;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    let r = handle(&ctx, event(&[("m1", &body(items_[0]))])).await;
    assert_eq!(failures(&r), vec!["m1"]);
    let (status, attempts, _, error) = item(&pool, items_[0]).await;
    assert_eq!((status.as_str(), attempts), ("enrolling", 1));
    assert!(error.unwrap().contains("503"));

    let r = handle(&ctx, event(&[("m1", &body(items_[0]))])).await;
    assert!(failures(&r).is_empty());
    assert_eq!(item(&pool, items_[0]).await.0, "enrolled");
    assert_eq!(lms.lock().unwrap().calls.len(), 2);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_timeout_is_transient_and_exhausted_attempts_fail_the_item(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    let (lms, provider) = lms(&[]).await;
    lms.lock().unwrap().delay = Some(Duration::from_secs(2));
    let (ctx, _, _) = context(&pool, provider, 2).await;

    assert_eq!(failures(&handle(&ctx, event(&[("m1", &body(items_[0]))])).await), vec!["m1"]);
    let r = handle(&ctx, event(&[("m1", &body(items_[0]))])).await;
    assert!(failures(&r).is_empty(), "given up: no more retries");
    let (status, attempts, stage, error) = item(&pool, items_[0]).await;
    assert_eq!((status.as_str(), attempts, stage.as_deref()), ("failed", 2, Some("enroll")));
    let error = error.unwrap();
    assert!(error.starts_with("webhook: gave up after 2 attempts: LMS webhook unreachable"), "{error}");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_same_message_twice_calls_the_provider_once(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    let (lms, provider) = lms(&[]).await;
    let (ctx, sqs, urls) = context(&pool, provider, 5).await;
    for _ in 0..2 {
        assert!(failures(&handle(&ctx, event(&[("m1", &body(items_[0]))])).await).is_empty());
    }
    assert_eq!(lms.lock().unwrap().calls.len(), 1);
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Deliver]).await.len(), 1);
    // Also for items no longer enrolling for other reasons: no call.
    for status in ["revoked", "cancelled", "failed"] {
        sqlx::query("UPDATE order_items SET status = ? WHERE id = ?")
            .bind(status)
            .bind(items_[0])
            .execute(&pool)
            .await
            .unwrap();
        assert!(failures(&handle(&ctx, event(&[("m1", &body(items_[0]))])).await).is_empty());
    }
    assert_eq!(lms.lock().unwrap().calls.len(), 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn in_a_mixed_batch_only_the_transient_record_is_reported(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 4).await;
    let (_, provider) = lms(&[(items_[3], &[503])]).await;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    let r = handle(
        &ctx,
        event(&[
            ("good-1", &body(items_[0])),
            ("good-2", &body(items_[1])),
            ("malformed", "{not json"),
            ("good-3", &body(items_[2])),
            ("transient", &body(items_[3])),
        ]),
    )
    .await;
    assert_eq!(failures(&r), vec!["transient"]);
    for id in &items_[..3] {
        assert_eq!(item(&pool, *id).await.0, "enrolled");
    }
    assert_eq!(item(&pool, items_[3]).await.0, "enrolling");
    // An item that does not exist can never succeed: dropped, not retried.
    assert!(failures(&handle(&ctx, event(&[("ghost", &body(987_654))])).await).is_empty());
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn moodle_creates_a_missing_user_then_enrols_them(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 2).await;
    let (moodle, provider) = moodle("good-token").await;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    // One course at a time: the second finds the user made for the first.
    for (id, item) in [("a", items_[0]), ("b", items_[1])] {
        assert!(failures(&handle(&ctx, event(&[(id, &body(item))])).await).is_empty());
        assert_eq!(item_status(&pool, item).await, "enrolled");
    }
    let m = moodle.lock().unwrap();
    assert_eq!(m.token_in_url, 0, "the token travelled in a URL");
    assert_eq!(m.users, vec![(100, "hoc.vien@example.com".to_string(), true)], "one user, made with createpassword=1");
    assert_eq!(m.enrolments, vec![(100, 42, 5)]);
    assert_eq!(
        m.calls,
        vec![
            "core_user_get_users_by_field",
            "core_user_create_users",
            "enrol_manual_enrol_users",
            "core_user_get_users_by_field",
            "enrol_manual_enrol_users"
        ]
    );
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn moodle_two_courses_of_one_buyer_in_one_batch_make_one_user(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 3).await;
    let (moodle, provider) = moodle("good-token").await;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    let r = handle(&ctx, event(&[("a", &body(items_[0])), ("b", &body(items_[1])), ("c", &body(items_[2]))])).await;
    assert!(failures(&r).is_empty());
    for item in &items_ {
        assert_eq!(item_status(&pool, *item).await, "enrolled");
    }
    let m = moodle.lock().unwrap();
    assert_eq!(m.users.len(), 1, "a create that lost the race found the winner's user");
    assert_eq!(m.enrolments, vec![(100, 42, 5)]);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn moodle_errors_in_a_200_are_read_by_their_code(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 2).await;
    let (_, provider) = moodle("wrong-token").await;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    assert!(failures(&handle(&ctx, event(&[("a", &body(items_[0]))])).await).is_empty());
    let (status, _, stage, error) = item(&pool, items_[0]).await;
    assert_eq!((status.as_str(), stage.as_deref()), ("failed", Some("enroll")));
    assert!(error.unwrap().contains("invalidtoken"), "invalidtoken is permanent");

    // A 503 from Moodle is transient; the retry then goes through.
    let (moodle, provider) = moodle("good-token").await;
    moodle.lock().unwrap().fail_next = 1;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    assert_eq!(failures(&handle(&ctx, event(&[("b", &body(items_[1]))])).await), vec!["b"]);
    assert!(failures(&handle(&ctx, event(&[("b", &body(items_[1]))])).await).is_empty());
    assert_eq!(item(&pool, items_[1]).await.0, "enrolled");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_operator_retry_sends_a_failed_enrollment_back_with_its_message(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    let (_, provider) = lms(&[(items_[0], &[400])]).await;
    let (ctx, sqs, urls) = context(&pool, provider, 5).await;
    handle(&ctx, event(&[("a", &body(items_[0]))])).await;
    assert_eq!(item(&pool, items_[0]).await.0, "failed");

    let retried = items::retry_failed(&pool, items_[0], "operator:lan").await.unwrap();
    coursedrop::app::relay::publish_all(&pool, &ctx.publisher, retried.outbox.as_slice()).await;
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await, vec![body(items_[0])]);
    assert!(failures(&handle(&ctx, event(&[("a2", &body(items_[0]))])).await).is_empty());
    assert_eq!(item(&pool, items_[0]).await.0, "enrolled");
}

/// A Moodle that does not answer in time: the failure recorded everywhere an operator can
/// read it (the item's last error, the timeline) says what happened without the token, which
/// reqwest's error text would carry in the URL it quotes.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_moodle_timeout_never_writes_the_token_anywhere(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    let (moodle, provider) = moodle("good-token").await;
    moodle.lock().unwrap().hang = Some(Duration::from_secs(3));
    let (ctx, _, _) = context(&pool, provider, 1).await;
    handle(&ctx, event(&[("a", &body(items_[0]))])).await;
    let (status, _, _, error) = item(&pool, items_[0]).await;
    let error = error.expect("the timeout is recorded");
    assert!(error.contains("Moodle unreachable"), "{status}: {error}");
    let leaks: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM order_items WHERE last_error LIKE '%good-token%')
              + (SELECT COUNT(*) FROM order_events WHERE detail LIKE '%good-token%')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leaks, 0, "the Moodle token was written into the database: {error}");
    assert!(!error.contains("wstoken") && !error.contains("server.php"), "{error}");
}

/// A redirect from the seller's LMS is not followed (it would turn the POST into a GET and a
/// landing page's 200 would count as enrolled): the item fails, naming where it pointed.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_lms_webhook_redirect_is_a_failure_not_an_enrollment(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    let landed = Arc::new(Mutex::new(0usize));
    let counter = landed.clone();
    let router =
        Router::new().route("/enroll", post(|| async { (StatusCode::FOUND, [("location", "/welcome")]) })).route(
            "/welcome",
            axum::routing::get(move || {
                *counter.lock().unwrap() += 1;
                async { "Chào mừng!" }
            }),
        );
    let url = serve(router).await;
    let provider = WebhookProvider::new(format!("{url}/enroll"), "lms-secret".into(), Duration::from_millis(500));
    let (ctx, _, _) = context(&pool, provider, 5).await;
    assert!(failures(&handle(&ctx, event(&[("a", &body(items_[0]))])).await).is_empty());
    let (status, _, stage, error) = item(&pool, items_[0]).await;
    assert_eq!((status.as_str(), stage.as_deref()), ("failed", Some("enroll")));
    assert!(error.as_deref().unwrap_or_default().contains("redirect to /welcome"), "{error:?}");
    assert_eq!(*landed.lock().unwrap(), 0, "the redirect was followed");
}

/// A buyer whose address Moodle would refuse as a username (`+`, `'`) is still made a user
/// and enrolled: the username is derived to what Moodle accepts; the email stays as typed.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn moodle_enrols_a_buyer_whose_address_is_no_valid_username(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    sqlx::query("UPDATE orders o JOIN order_items i ON i.order_id = o.id SET o.email = ? WHERE i.id = ?")
        .bind("hoc+vien'khoa@example.com")
        .bind(items_[0])
        .execute(&pool)
        .await
        .unwrap();
    let (moodle, provider) = moodle("good-token").await;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    assert!(failures(&handle(&ctx, event(&[("a", &body(items_[0]))])).await).is_empty());
    let (status, _, _, error) = item(&pool, items_[0]).await;
    assert_eq!(status, "enrolled", "{error:?}");
    let m = moodle.lock().unwrap();
    assert_eq!(m.users.iter().map(|u| u.1.as_str()).collect::<Vec<_>>(), vec!["hoc+vien'khoa@example.com"]);
    assert_eq!(m.enrolments, vec![(100, 42, 5)]);
}

// ------------------------------------------------------------------ refunds take the buyer out of the LMS

/// A Drive that is never called: the refunded items have no folders.
fn no_drive() -> coursedrop::adapters::drive::upload::DriveClient<coursedrop::adapters::drive::StaticToken> {
    coursedrop::adapters::drive::upload::DriveClient::new(
        coursedrop::adapters::drive::DriveConfig::new("http://127.0.0.1:9"),
        coursedrop::adapters::drive::StaticToken("unused".into()),
    )
}

async fn refund(pool: &MySqlPool, code: &str) -> coursedrop::app::refund::RefundReport {
    sqlx::query("UPDATE orders SET status = 'paid' WHERE code = ? AND status = 'pending'")
        .bind(code)
        .execute(pool)
        .await
        .unwrap();
    let code = OrderCode::from_stored(code.to_string());
    coursedrop::app::refund::refund(pool, &no_drive(), &code, "operator:lan", "buyer asked").await.unwrap()
}

async fn unenroll_state(pool: &MySqlPool, id: u64) -> (bool, bool) {
    sqlx::query_as("SELECT unenroll_pending, unenrolled_at IS NOT NULL FROM order_items WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_refund_takes_the_buyer_out_of_moodle_once_through_a_transient_failure(pool: MySqlPool) {
    let (code, items_) = enrolling_items(&pool, 2).await;
    let (moodle, provider) = moodle("good-token").await;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    let both = [("a", body(items_[0])), ("b", body(items_[1]))];
    let records: Vec<(&str, &str)> = both.iter().map(|(id, b)| (*id, b.as_str())).collect();
    assert!(failures(&handle(&ctx, event(&records)).await).is_empty());
    assert_eq!(moodle.lock().unwrap().enrolments.len(), 1, "one user, enrolled in course 42");

    let report = refund(&pool, &code).await;
    assert_eq!((report.items_revoked, report.unenrollments_queued, report.outbox.len()), (2, 2, 2));
    assert!(report.outbox.iter().all(|m| m.queue == Queue::Enroll));
    assert_eq!(unenroll_state(&pool, items_[0]).await, (true, false));

    // Moodle is down for the first call: that record is retried, and then goes through.
    moodle.lock().unwrap().fail_next = 1;
    let first = handle(&ctx, event(&records[..1])).await;
    assert_eq!(failures(&first), vec!["a".to_string()]);
    assert_eq!(item(&pool, items_[0]).await.1, 1, "an attempt counted");
    assert!(failures(&handle(&ctx, event(&records)).await).is_empty());
    assert!(moodle.lock().unwrap().enrolments.is_empty(), "the refunded buyer is out of the course");
    for id in &items_ {
        assert_eq!(unenroll_state(&pool, *id).await, (false, true));
        assert_eq!(item_status(&pool, *id).await, "revoked");
    }
    let unenrolled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_events WHERE kind = 'unenrolled'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unenrolled, 2, "on the timeline");
    let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE queue = 'enroll' AND consumed_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(waiting, 0, "the sweeper has nothing to send again");

    // The same messages again: nothing more is asked of Moodle.
    let calls = moodle.lock().unwrap().calls.len();
    assert!(failures(&handle(&ctx, event(&records)).await).is_empty());
    assert_eq!(moodle.lock().unwrap().calls.len(), calls);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_refund_revokes_through_the_lms_webhook_or_flags_the_order_without_its_address(pool: MySqlPool) {
    let (code, items_) = enrolling_items(&pool, 1).await;
    let (seller, provider) = lms(&[]).await;
    let (ctx, _, _) = context(&pool, provider, 5).await;
    let record = body(items_[0]);
    assert!(failures(&handle(&ctx, event(&[("a", &record)])).await).is_empty());
    refund(&pool, &code).await;
    assert!(failures(&handle(&ctx, event(&[("a", &record)])).await).is_empty());
    {
        let l = seller.lock().unwrap();
        assert_eq!(l.bad_signatures, 0, "the revoke is signed like an enrollment");
        assert_eq!(l.calls.len(), 2);
        assert_eq!(l.calls[0].get("action"), None, "an enrollment carries no action, as before");
        assert_eq!(l.calls[1]["action"], "revoke");
        assert_eq!(l.calls[1]["item_id"], items_[0]);
    }
    assert_eq!(unenroll_state(&pool, items_[0]).await, (false, true));

    // Without ENROLL_WEBHOOK_REVOKE_URL nothing is sent to the enroll address (an LMS that
    // predates revocations would read it as an enrollment): the order is flagged instead.
    let (code, items_) = enrolling_items(&pool, 1).await;
    let (unaware, provider) = lms(&[]).await;
    let (ctx, _, _) = context(&pool, provider.with_revoke_url(None), 5).await;
    let record = body(items_[0]);
    assert!(failures(&handle(&ctx, event(&[("a", &record)])).await).is_empty());
    refund(&pool, &code).await;
    assert!(failures(&handle(&ctx, event(&[("a", &record)])).await).is_empty(), "given up, not retried");
    assert_eq!(unaware.lock().unwrap().calls.len(), 1, "only the enrollment");
    let attention: Option<String> =
        sqlx::query_scalar("SELECT attention FROM orders WHERE code = ?").bind(&code).fetch_one(&pool).await.unwrap();
    let attention = attention.expect("the order is flagged");
    assert!(attention.contains("ENROLL_WEBHOOK_REVOKE_URL") && attention.contains("by hand"), "{attention}");
    assert_eq!(unenroll_state(&pool, items_[0]).await, (false, false));
}

/// The refund lands while the LMS is still answering the enrollment: the refund's own
/// unenrollment finds nothing to undo yet, so the enroller takes back what it made.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_enrollment_that_lands_after_the_refund_is_taken_back(pool: MySqlPool) {
    let (code, items_) = enrolling_items(&pool, 1).await;
    let (seller, provider) = lms(&[]).await;
    seller.lock().unwrap().delay = Some(Duration::from_millis(300));
    let (ctx, _, _) = context(&pool, provider, 5).await;
    let ctx = Arc::new(ctx);
    let record = body(items_[0]);
    let enrolling = tokio::spawn({
        let (ctx, record) = (ctx.clone(), record.clone());
        async move { handle(&ctx, event(&[("a", &record)])).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = refund(&pool, &code).await;
    assert_eq!(report.unenrollments_queued, 1);
    assert!(failures(&enrolling.await.unwrap()).is_empty());
    let actions: Vec<Option<String>> = seller
        .lock()
        .unwrap()
        .calls
        .iter()
        .map(|c| c.get("action").and_then(|a| a.as_str()).map(String::from))
        .collect();
    assert_eq!(actions.last(), Some(&Some("revoke".to_string())), "the last word is a revoke: {actions:?}");
    assert_eq!(item_status(&pool, items_[0]).await, "revoked");
    // The refund's message, arriving now, finds the work done.
    let before = seller.lock().unwrap().calls.len();
    assert!(failures(&handle(&ctx, event(&[("b", &record)])).await).is_empty());
    assert_eq!(seller.lock().unwrap().calls.len(), before);
}

/// A Moodle site that answers with a redirect (moved to https, or to another host): the
/// redirect is not followed, so the token in the request never reaches the address it
/// points to, and the item fails saying why instead of enrolling.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_moodle_redirect_is_never_followed_with_the_token(pool: MySqlPool) {
    let (_, items_) = enrolling_items(&pool, 1).await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let elsewhere = {
        let seen = seen.clone();
        serve(Router::new().route(
            "/webservice/rest/server.php",
            post(move |raw: String| {
                seen.lock().unwrap().push(raw);
                async { Json(json!([])) }
            }),
        ))
        .await
    };
    let target = format!("{elsewhere}/webservice/rest/server.php");
    let moved = serve(Router::new().route(
        "/webservice/rest/server.php",
        post(move || {
            let target = target.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]) }
        }),
    ))
    .await;
    let provider = MoodleProvider::new(moved, "moodle-token-9f1".into(), 5, Duration::from_secs(2));
    let (ctx, _, _) = context(&pool, provider, 5).await;
    assert!(failures(&handle(&ctx, event(&[("a", &body(items_[0]))])).await).is_empty());
    let (status, _, stage, error) = item(&pool, items_[0]).await;
    assert_eq!((status.as_str(), stage.as_deref()), ("failed", Some("enroll")));
    assert!(error.as_deref().unwrap_or_default().contains("redirect"), "{error:?}");
    assert!(seen.lock().unwrap().is_empty(), "the token followed the redirect: {:?}", seen.lock().unwrap());
}
