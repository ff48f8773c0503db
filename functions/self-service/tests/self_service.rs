//! The buyer's self-service against MariaDB, the Drive emulator and the SMTP sink: orders are
//! delivered by the real finalize (shared, emailed), then the buyer fixes their delivery.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use coursedrop::adapters::drive::StaticToken;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::mail::Mailer;
use coursedrop::app::config::Vars;
use coursedrop::domain::{Email, OrderCode};
use coursedrop::runtime::http::ClientIp;
use coursedrop::testing;
use drive_emulator::TempEmulator;
use http_body_util::BodyExt;
use self_service::{SelfServiceState, router};
use serde_json::{Value, json};
use sqlx::MySqlPool;
use tower::ServiceExt;

fn drive(base: &str) -> DriveClient<StaticToken> {
    DriveClient::new(testing::fast_drive_config(base), StaticToken("emulator-token".into()))
}

fn mailer() -> Mailer {
    Mailer::from_vars(&Vars::new(|k: &str| match k {
        "SMTP_URL" => Some(coursedrop::testing::smtp_url()),
        "SELLER_NAME" => Some("Học Rust cùng Lan".into()),
        _ => None,
    }))
    .unwrap()
}

struct Shop {
    pool: MySqlPool,
    emulator: TempEmulator,
    app: Router,
}

/// An order for `email`, its `items` delivered into folders and finalized (shared with the
/// buyer and emailed) when `complete`. Its code and its folders.
async fn delivered_order(shop: &Shop, email: &str, items: usize, complete: bool) -> (String, Vec<String>) {
    let (code, created) = testing::pending_order(&shop.pool, &vec![100_000; items], 30).await;
    sqlx::query("UPDATE orders SET status = 'paid', email = ? WHERE id = ?")
        .bind(email)
        .bind(created.order_id)
        .execute(&shop.pool)
        .await
        .unwrap();
    let d = drive(&shop.emulator.base);
    let mut folders = Vec::new();
    for item in &created.item_ids {
        let id = d.generate_ids(1).await.unwrap().remove(0);
        let folder = d.create_folder(&id, "Khoá học", "root").await.unwrap();
        sqlx::query("UPDATE order_items SET status = 'delivered', drive_folder_id = ?, drive_link = ? WHERE id = ?")
            .bind(&id)
            .bind(folder.web_view_link)
            .bind(item)
            .execute(&shop.pool)
            .await
            .unwrap();
        if complete {
            let done = coursedrop::app::finalize::finalize_item(&shop.pool, &d, &mailer(), *item).await.unwrap();
            assert!(matches!(done, coursedrop::app::finalize::Outcome::Completed { .. }), "{done:?}");
        }
        folders.push(id);
    }
    (code.to_string(), folders)
}

/// The self-service on the emulator, with its lock-out window and resend cooldown.
async fn shop(pool: MySqlPool, lockout: &'static str, cooldown: &'static str) -> Shop {
    let emulator = TempEmulator::start("self-service-test").await.unwrap();
    let vars = Vars::new(move |k: &str| match k {
        "BUYER_LOCKOUT" => Some(lockout.to_string()),
        "RESEND_COOLDOWN" => Some(cooldown.to_string()),
        _ => None,
    });
    let state = SelfServiceState::new(pool.clone(), drive(&emulator.base), mailer(), &vars).unwrap();
    Shop { pool, app: router(state), emulator }
}

impl Shop {
    async fn post(&self, path: &str, body: Value, client: [u8; 4]) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req =
            Request::post(path).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
        req.extensions_mut().insert(ClientIp(std::net::IpAddr::from(client)));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn readers(&self, folder: &str) -> Vec<String> {
        let mut r: Vec<String> = drive(&self.emulator.base)
            .permissions(folder)
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.role == "reader")
            .filter_map(|p| p.email_address)
            .collect();
        r.sort();
        r
    }
}

fn buyer(name: &str) -> String {
    format!("{name}-{}@gmail.com", rand::random::<u64>())
}

const HOME: [u8; 4] = [203, 0, 113, 7];

/// The link a delivery email carries.
fn link_in(raw: &str) -> String {
    let (text, _) = testing::mail_parts(raw);
    text.lines().find(|l| l.starts_with("https://")).unwrap_or_default().trim().to_string()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_buyer_gets_each_delivery_email_again_with_the_same_link(pool: MySqlPool) {
    let shop = shop(pool, "15m", "0s").await;
    let email = buyer("lan");
    let (code, _) = delivered_order(&shop, &email, 2, true).await;
    let first: Vec<String> = testing::mails_to(&email).iter().map(|m| link_in(m)).collect();
    assert_eq!(first.len(), 2);

    // The email in another case is the order's email.
    let (status, _, body) =
        shop.post(&format!("/orders/{code}/resend"), json!({"email": email.to_uppercase()}), HOME).await;
    assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({"emails_sent": 2})));
    let mut after: Vec<String> = testing::mails_to(&email).iter().map(|m| link_in(m)).collect();
    assert_eq!(after.len(), 4, "one more email per item");
    after.sort();
    let mut twice: Vec<String> = first.iter().chain(first.iter()).cloned().collect();
    twice.sort();
    assert_eq!(after, twice, "each item's own link again");

    // Before anything is delivered there is nothing to send.
    let other = buyer("minh");
    let (pending, _) = delivered_order(&shop, &other, 1, false).await;
    let (status, _, body) = shop.post(&format!("/orders/{pending}/resend"), json!({"email": other}), HOME).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("not_delivered_yet")), "{body}");
    assert!(testing::mails_to(&other).is_empty());

    // Bad input: a clear JSON error, never a panic.
    let (status, _, body) = shop.post(&format!("/orders/{code}/resend"), json!({}), HOME).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("email")), "{body}");
    for (content_type, text, want, code_word) in [
        ("text/plain", "email=x", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("application/json", "{\"email\":", StatusCode::BAD_REQUEST, "invalid_json"),
    ] {
        let req = Request::post(format!("/orders/{code}/access"))
            .header("content-type", content_type)
            .body(Body::from(text))
            .unwrap();
        let resp = shop.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), want);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["code"], code_word, "{body}");
    }
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn access_moves_to_another_address_a_limited_number_of_times_and_a_refund_takes_it_back(pool: MySqlPool) {
    let shop = shop(pool, "15m", "0s").await;
    let email = buyer("lan");
    let (code, folders) = delivered_order(&shop, &email, 2, true).await;
    let path = format!("/orders/{code}/access");
    let second = buyer("lan-work");

    let (status, _, body) = shop.post(&path, json!({"email": email, "new_email": second}), HOME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["items"].as_array().unwrap().len(), &body["emailed"]), (2, &json!(true)));
    for folder in &folders {
        assert_eq!(shop.readers(folder).await, vec![second.clone()], "the old address has no access left");
    }
    assert_eq!(testing::mails_to(&second).len(), 2, "the new address gets each delivery email");
    let moves: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_events WHERE kind = 'access_moved'")
        .fetch_one(&shop.pool)
        .await
        .unwrap();
    assert_eq!(moves, 2, "one event per item");
    // The old address is told, once per course, what changed, when and whom to ask.
    let told = testing::mails_to(&email);
    assert_eq!(told.len(), 4, "two deliveries, then two notices");
    let notices: Vec<(String, String)> =
        told.iter().map(|m| testing::mail_parts(m)).filter(|(t, _)| t.contains("đã được chuyển")).collect();
    assert_eq!(notices.len(), 2, "one notice per course");
    let (text, html) = &notices[0];
    assert!(text.contains(&code) && text.contains("giờ Việt Nam") && text.contains("l***"), "{text}");
    assert!(!text.contains(&second) && !html.contains(&second), "the new address is masked for the old one");
    let notices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_events WHERE kind = 'access_move_notified'")
        .fetch_one(&shop.pool)
        .await
        .unwrap();
    assert_eq!(notices, 2);

    // A resend now goes where the access is.
    let (status, _, _) = shop.post(&format!("/orders/{code}/resend"), json!({"email": email}), HOME).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(testing::mails_to(&second).len(), 4);

    // The same address again changes nothing; a second move is allowed; a third is not.
    let (status, _, body) = shop.post(&path, json!({"email": email, "new_email": second}), HOME).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("new_email")), "{body}");
    let third = buyer("lan-home");
    assert_eq!(shop.post(&path, json!({"email": email, "new_email": third}), HOME).await.0, StatusCode::OK);
    let fourth = buyer("lan-again");
    let (status, _, body) = shop.post(&path, json!({"email": email, "new_email": fourth}), HOME).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("access_change_limit")), "{body}");
    for folder in &folders {
        assert_eq!(shop.readers(folder).await, vec![third.clone()], "the refused move changed nothing");
    }

    // The operator is not limited.
    let d = drive(&shop.emulator.base);
    let moved = coursedrop::app::self_service::move_access_as_operator(
        &shop.pool,
        &d,
        &mailer(),
        &OrderCode::from_stored(code.clone()),
        &Email::parse(&fourth).unwrap(),
        None,
        "operator:lan",
    )
    .await
    .unwrap();
    assert_eq!(moved.items[0].access_changes, 3);
    for folder in &folders {
        assert_eq!(shop.readers(folder).await, vec![fourth.clone()]);
    }

    // A refund takes the access back from wherever it is now.
    let report =
        coursedrop::app::refund::refund(&shop.pool, &d, &OrderCode::from_stored(code), "operator:lan", "asked")
            .await
            .unwrap();
    assert_eq!(report.items_revoked, 2);
    for folder in &folders {
        assert!(shop.readers(folder).await.is_empty(), "no access left after the refund");
    }
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn wrong_emails_get_one_answer_and_lock_the_order_and_the_client_for_a_while(pool: MySqlPool) {
    let shop = shop(pool, "2s", "0s").await;
    let email = buyer("lan");
    let (code, _) = delivered_order(&shop, &email, 1, true).await;
    let (other_code, _) = delivered_order(&shop, &buyer("minh"), 1, true).await;
    let resend = format!("/orders/{code}/resend");

    // A wrong address, an unknown order and a malformed code read the same.
    let wrong = shop.post(&resend, json!({"email": "guess@gmail.com"}), HOME).await;
    let unknown = shop.post("/orders/CD00000000/resend", json!({"email": email}), [198, 51, 100, 1]).await;
    let malformed = shop.post("/orders/nope/resend", json!({"email": email}), [198, 51, 100, 2]).await;
    for (status, _, body) in [&wrong, &unknown, &malformed] {
        assert_eq!((*status, &body["code"]), (StatusCode::FORBIDDEN, &json!("forbidden")), "{body}");
        assert_eq!(body, &wrong.2, "one generic answer");
    }
    for i in 0..4 {
        let (status, _, _) = shop.post(&resend, json!({"email": format!("guess{i}@gmail.com")}), HOME).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Five wrong: locked, for the right email too, and for this client on another order.
    let (status, headers, body) = shop.post(&resend, json!({"email": email}), [192, 0, 2, 9]).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")), "{body}");
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = shop
        .post(&format!("/orders/{other_code}/access"), json!({"email": email, "new_email": buyer("x")}), HOME)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the client is locked on every order");
    let sent = testing::mails_to(&email).len();

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, _, _) = shop.post(&resend, json!({"email": email}), HOME).await;
    assert_eq!(status, StatusCode::ACCEPTED, "fine after the window");
    assert_eq!(testing::mails_to(&email).len(), sent + 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_second_resend_right_after_the_first_waits(pool: MySqlPool) {
    let shop = shop(pool, "15m", "1h").await;
    let email = buyer("lan");
    let (code, _) = delivered_order(&shop, &email, 1, true).await;
    let path = format!("/orders/{code}/resend");
    assert_eq!(shop.post(&path, json!({"email": email}), HOME).await.0, StatusCode::ACCEPTED);
    let (status, headers, body) = shop.post(&path, json!({"email": email}), HOME).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("resent_recently")), "{body}");
    let wait: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
    assert_eq!(testing::mails_to(&email).len(), 2, "the delivery and one resend");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_move_that_stopped_after_drive_shared_leaves_nothing_a_refund_misses(pool: MySqlPool) {
    let shop = shop(pool, "15m", "0s").await;
    let email = buyer("lan");
    let (code, folders) = delivered_order(&shop, &email, 1, true).await;
    let item: u64 =
        sqlx::query_scalar("SELECT i.id FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.code = ?")
            .bind(&code)
            .fetch_one(&shop.pool)
            .await
            .unwrap();
    // What a move had done when it died: the move counted, the new address's grant written
    // before Drive was asked, Drive's share made, nothing recorded after.
    let new = buyer("lan-new");
    assert!(coursedrop::store::access::reserve_move(&shop.pool, item, &new, Some(2), 900).await.unwrap());
    coursedrop::store::grants::record(&mut shop.pool.acquire().await.unwrap(), item, &folders[0], &new, None, true)
        .await
        .unwrap();
    let d = drive(&shop.emulator.base);
    d.share_reader(&folders[0], &new, false).await.unwrap();
    assert_eq!(shop.readers(&folders[0]).await.len(), 2);

    let report =
        coursedrop::app::refund::refund(&shop.pool, &d, &OrderCode::from_stored(code), "operator:lan", "asked")
            .await
            .unwrap();
    assert_eq!(report.permissions_removed, 2);
    assert!(shop.readers(&folders[0]).await.is_empty(), "neither address keeps access");

    // A completed move leaves nothing noted.
    let (code, _) = delivered_order(&shop, &buyer("minh"), 1, true).await;
    let owner: String =
        sqlx::query_scalar("SELECT email FROM orders WHERE code = ?").bind(&code).fetch_one(&shop.pool).await.unwrap();
    let (status, _, _) =
        shop.post(&format!("/orders/{code}/access"), json!({"email": owner, "new_email": buyer("minh-2")}), HOME).await;
    assert_eq!(status, StatusCode::OK);
    let pending: Option<String> = sqlx::query_scalar(
        "SELECT i.access_pending_email FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.code = ?",
    )
    .bind(&code)
    .fetch_one(&shop.pool)
    .await
    .unwrap();
    assert_eq!(pending, None);
}

/// Ten moves of one order's access at once, each to its own address: they take turns, and no
/// more than the limit (2) ever happen; the others are told to try again or that the limit is
/// reached. A refund then leaves no reader we made, while the seller's assistant, whom the
/// seller shared the folder with by hand, keeps access through every move and the refund.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn ten_moves_at_once_never_pass_the_limit_and_a_refund_takes_back_every_grant(pool: MySqlPool) {
    let shop = shop(pool, "15m", "0s").await;
    let email = buyer("lan");
    let (code, folders) = delivered_order(&shop, &email, 1, true).await;
    let d = drive(&shop.emulator.base);
    d.share_reader(&folders[0], "assistant@seller.vn", false).await.unwrap();
    let path = format!("/orders/{code}/access");
    let moves = (0..10).map(|n| {
        let (shop, path, email) = (&shop, path.clone(), email.clone());
        async move { shop.post(&path, json!({"email": email, "new_email": buyer(&format!("to-{n}"))}), HOME).await }
    });
    let answers = futures_util::future::join_all(moves).await;
    let done = answers.iter().filter(|(s, _, _)| *s == StatusCode::OK).count();
    assert!((1..=2).contains(&done), "{done} moves happened: {answers:?}");
    for (status, _, body) in answers.iter().filter(|(s, _, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::CONFLICT, "{body}");
        assert!(matches!(body["code"].as_str(), Some("try_again" | "access_change_limit")), "{body}");
    }
    let (changes, granted): (u32, i64) = sqlx::query_as(
        "SELECT i.access_changes, (SELECT COUNT(*) FROM drive_grants g WHERE g.item_id = i.id)
         FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.code = ?",
    )
    .bind(&code)
    .fetch_one(&shop.pool)
    .await
    .unwrap();
    assert_eq!(changes as usize, done, "the count is what happened");
    assert_eq!(granted as usize, 1 + done, "every permission we gave is recorded");
    let readers = shop.readers(&folders[0]).await;
    assert_eq!(readers.len(), 2, "the assistant and the last address: {readers:?}");
    assert!(readers.contains(&"assistant@seller.vn".to_string()));

    let report =
        coursedrop::app::refund::refund(&shop.pool, &d, &OrderCode::from_stored(code), "operator:lan", "asked")
            .await
            .unwrap();
    assert_eq!(report.permissions_removed, 1);
    assert_eq!(shop.readers(&folders[0]).await, vec!["assistant@seller.vn".to_string()]);
}
