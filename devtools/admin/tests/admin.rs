//! The admin CLI, run as its real binary against real services: MariaDB (a fresh database
//! per test), moto S3 and SQS, the SMTP sink and the Drive emulator.

use std::collections::HashMap;
use std::process::Command;

use coursedrop::adapters::drive::DriveConfig;
use coursedrop::adapters::drive::auth::DriveAuth;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::domain::Queue;
use coursedrop::{store, testing};
use serde_json::Value;
use sqlx::MySqlPool;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

async fn admin(pool: &MySqlPool, args: &[&str], env: &[(&str, &str)]) -> Run {
    let url = testing::database_url_of(pool).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coursedrop-admin"));
    cmd.args(args).env("DATABASE_URL", url).env("USER", "lan");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn queue_env(urls: &HashMap<Queue, String>) -> Vec<(&'static str, String)> {
    vec![
        ("ENROLL_QUEUE_URL", urls[&Queue::Enroll].clone()),
        ("DELIVER_QUEUE_URL", urls[&Queue::Deliver].clone()),
        ("FINALIZE_QUEUE_URL", urls[&Queue::Finalize].clone()),
    ]
}

fn refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn item_status(pool: &MySqlPool, item: u64) -> String {
    sqlx::query_scalar("SELECT status FROM order_items WHERE id = ?").bind(item).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_course_is_added_only_when_its_source_holds_files(pool: MySqlPool) {
    let source = testing::s3_source().await;
    let bucket =
        testing::bucket_with(&source, &[("rust/01-intro/a.mp4", vec![1; 1000]), ("rust/notes.pdf", vec![2; 24])]).await;
    let add = |slug: &'static str, at: String| {
        let pool = pool.clone();
        async move {
            let price = "1990000".to_string();
            admin(
                &pool,
                &["course", "add", "--slug", slug, "--title", "Rust cơ bản", "--price", &price, "--source", &at],
                &[],
            )
            .await
        }
    };

    let empty = add("rust", format!("s3://{bucket}/typo/")).await;
    assert!(!empty.ok && empty.stderr.contains("holds no files"), "{}", empty.stderr);
    let no_bucket = add("rust", "s3://no-such-bucket-coursedrop/rust/".into()).await;
    assert!(!no_bucket.ok && no_bucket.stderr.contains("error:"), "{}", no_bucket.stderr);
    let not_s3 = add("rust", "/home/seller/rust".into()).await;
    assert!(!not_s3.ok && not_s3.stderr.contains("s3://"), "{}", not_s3.stderr);

    let added = add("rust", format!("s3://{bucket}/rust/")).await;
    assert!(added.ok, "{}", added.stderr);
    assert!(added.stdout.contains("2 files"), "{}", added.stdout);
    let again = add("rust", format!("s3://{bucket}/rust/")).await;
    assert!(!again.ok && again.stderr.contains("exists already"), "{}", again.stderr);

    let list = admin(&pool, &["course", "list"], &[]).await;
    assert!(list.stdout.contains("1.990.000 ₫") && list.stdout.contains("Rust cơ bản"), "{}", list.stdout);
    assert!(admin(&pool, &["course", "disable", "rust"], &[]).await.ok);
    let listed = admin(&pool, &["--json", "course", "list"], &[]).await.json();
    assert_eq!(listed[0]["active"], false);
    let on_sale = coursedrop::store::catalog::list_active(&mut pool.acquire().await.unwrap()).await.unwrap();
    assert!(on_sale.is_empty(), "a disabled course is off the buyer's catalog");
    assert!(admin(&pool, &["course", "enable", "rust"], &[]).await.ok);
    let unknown = admin(&pool, &["course", "disable", "nope"], &[]).await;
    assert!(!unknown.ok && unknown.stderr.contains("no course nope"), "{}", unknown.stderr);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn orders_items_and_a_timeline_are_listed_and_bad_input_is_explained(pool: MySqlPool) {
    let (code, created) = testing::pending_order(&pool, &[500_000, 250_000], 30).await;
    let orders = admin(&pool, &["--json", "orders", "--status", "pending"], &[]).await.json();
    assert_eq!(orders[0]["code"], code.as_str());
    assert_eq!(orders[0]["items"], 2);
    assert_eq!(orders[0]["total_vnd"], 750_000);
    let none = admin(&pool, &["--json", "orders", "--status", "completed"], &[]).await.json();
    assert_eq!(none.as_array().unwrap().len(), 0);

    let items = admin(&pool, &["--json", "items", "--status", "awaiting_payment"], &[]).await.json();
    assert_eq!(items.as_array().unwrap().len(), 2);
    assert_eq!(items[1]["id"].as_u64().unwrap().min(items[0]["id"].as_u64().unwrap()), created.item_ids[0]);

    let timeline = admin(&pool, &["order", &code.as_str().to_lowercase()], &[]).await;
    assert!(timeline.ok, "codes are accepted in any case: {}", timeline.stderr);
    assert!(timeline.stdout.contains("order_created") && timeline.stdout.contains("750.000 ₫"), "{}", timeline.stdout);

    let unknown = admin(&pool, &["order", "CD99999999"], &[]).await;
    assert!(!unknown.ok && unknown.stderr.contains("no order CD99999999"), "{}", unknown.stderr);
    let garbled = admin(&pool, &["order", "hello"], &[]).await;
    assert!(!garbled.ok && garbled.stderr.contains("not an order code"), "{}", garbled.stderr);
    let bad_status = admin(&pool, &["items", "--status", "lost"], &[]).await;
    assert!(!bad_status.ok && bad_status.stderr.contains("delivering"), "lists the statuses: {}", bad_status.stderr);
    let json_error = admin(&pool, &["--json", "order", "CD99999999"], &[]).await;
    assert_eq!(json_error.json()["error"]["code"], "not_found", "{}", json_error.stdout);
    assert!(json_error.json()["error"]["message"].as_str().unwrap().contains("no order"));
    let json_invalid = admin(&pool, &["--json", "items", "--status", "lost"], &[]).await;
    assert_eq!(json_invalid.json()["error"]["code"], "invalid_input", "{}", json_invalid.stdout);
    let json_refused = admin(&pool, &["--json", "retry", "999999"], &[]).await;
    assert_eq!(json_refused.json()["error"]["code"], "not_found", "{}", json_refused.stdout);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_failed_item_is_retried_at_its_stage_and_queued_at_once(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (_, urls) = testing::fresh_queues(&sqs).await;
    let env = queue_env(&urls);
    let (_, created) = testing::pending_order(&pool, &[100_000], 30).await;
    let item = created.item_ids[0];
    sqlx::query(
        "UPDATE order_items SET status = 'failed', failed_stage = 'deliver', last_error = 'S3 said no' WHERE id = ?",
    )
    .bind(item)
    .execute(&pool)
    .await
    .unwrap();

    let failed = admin(&pool, &["items", "--status", "failed"], &[]).await;
    assert!(failed.stdout.contains("failed (deliver)") && failed.stdout.contains("S3 said no"), "{}", failed.stdout);
    let retried = admin(&pool, &["retry", &item.to_string()], &refs(&env)).await;
    assert!(retried.ok, "{}", retried.stderr);
    assert!(retried.stdout.contains("enrolled again: queued"), "{}", retried.stdout);
    assert_eq!(item_status(&pool, item).await, "enrolled");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Deliver]).await, vec![format!("{{\"item_id\":{item}}}")]);
    let actor: String = sqlx::query_scalar("SELECT actor FROM order_events WHERE item_id = ? ORDER BY id DESC LIMIT 1")
        .bind(item)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(actor, "operator:lan");

    let again = admin(&pool, &["retry", &item.to_string()], &refs(&env)).await;
    assert!(!again.ok && again.stderr.contains("is enrolled, not failed"), "{}", again.stderr);
    let missing = admin(&pool, &["retry", "999999"], &refs(&env)).await;
    assert!(!missing.ok && missing.stderr.contains("no item 999999"), "{}", missing.stderr);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn only_an_unpaid_order_can_be_cancelled(pool: MySqlPool) {
    let (pending, created) = testing::pending_order(&pool, &[100_000], 30).await;
    let done = admin(&pool, &["cancel", pending.as_str(), "--reason", "buyer asked"], &[]).await;
    assert!(done.ok, "{}", done.stderr);
    assert_eq!(item_status(&pool, created.item_ids[0]).await, "cancelled");
    let (paid, _) = testing::pending_order(&pool, &[100_000], 30).await;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE code = ?").bind(paid.as_str()).execute(&pool).await.unwrap();
    let refused = admin(&pool, &["cancel", paid.as_str()], &[]).await;
    assert!(!refused.ok && refused.stderr.contains("is paid: only an unpaid order"), "{}", refused.stderr);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_unmatched_payment_is_listed_and_attached_and_pays_the_order(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (_, urls) = testing::fresh_queues(&sqs).await;
    let env = queue_env(&urls);
    let (code, created) = testing::pending_order(&pool, &[300_000], 30).await;
    let payment = sqlx::query(
        "INSERT INTO payments (feed, feed_txn_id, order_id, transfer_type, amount_vnd, gateway, content, raw_payload)
         VALUES ('sepay', '777001', NULL, 'in', 300000, 'Vietcombank', 'chuyen tien khoa hoc', '{}')",
    )
    .execute(&pool)
    .await
    .unwrap()
    .last_insert_id();

    let listed = admin(&pool, &["payments", "unmatched"], &[]).await;
    assert!(listed.stdout.contains("chuyen tien khoa hoc") && listed.stdout.contains("300.000 ₫"), "{}", listed.stdout);
    let attached = admin(&pool, &["payments", "attach", &payment.to_string(), code.as_str()], &refs(&env)).await;
    assert!(attached.ok, "{}", attached.stderr);
    assert!(attached.stdout.contains("the order is paid"), "{}", attached.stdout);
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE code = ?")
        .bind(code.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "paid");
    assert_eq!(item_status(&pool, created.item_ids[0]).await, "enrolling");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await.len(), 1);
    let unmatched = admin(&pool, &["--json", "payments", "unmatched"], &[]).await.json();
    assert_eq!(unmatched.as_array().unwrap().len(), 0);

    let twice = admin(&pool, &["payments", "attach", &payment.to_string(), code.as_str()], &refs(&env)).await;
    assert!(!twice.ok && twice.stderr.contains("already belongs to order"), "{}", twice.stderr);
    let paid_vnd: i64 = sqlx::query_scalar("SELECT paid_vnd FROM orders WHERE code = ?")
        .bind(code.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(paid_vnd, 300_000, "counted once");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn items_past_their_stage_deadline_are_listed_as_stuck(pool: MySqlPool) {
    let (_, created) = testing::pending_order(&pool, &[1, 2, 3], 30).await;
    let [slow, fresh, waiting] = created.item_ids[..] else { panic!() };
    sqlx::query("UPDATE order_items SET status = 'enrolling', updated_at = NOW(3) - INTERVAL 40 MINUTE WHERE id = ?")
        .bind(slow)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE order_items SET status = 'delivering', updated_at = NOW(3) - INTERVAL 5 MINUTE WHERE id = ?")
        .bind(fresh)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE order_items SET updated_at = NOW(3) - INTERVAL 3 DAY WHERE id = ?")
        .bind(waiting)
        .execute(&pool)
        .await
        .unwrap();
    let stuck = admin(&pool, &["--json", "stuck"], &[]).await.json();
    let ids: Vec<u64> = stuck.as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![slow], "awaiting payment is not stuck, and 5 minutes of delivering is not either");
    assert!(stuck[0]["minutes"].as_i64().unwrap() >= 40);

    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    let report = coursedrop::app::sweeper::sweep(&pool, &publisher, coursedrop::app::sweeper::OutboxTiming::grace(30))
        .await
        .unwrap();
    assert_eq!(report.stuck_items, 1, "the sweeper counts them for the alarm");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_completed_items_email_is_resent_as_a_new_message(pool: MySqlPool) {
    let (_, created) = testing::pending_order(&pool, &[100_000], 30).await;
    let item = created.item_ids[0];
    let buyer = format!("resend-{}@example.com", rand::random::<u32>());
    sqlx::query("UPDATE orders SET email = ? WHERE id = ?")
        .bind(&buyer)
        .bind(created.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let early = admin(&pool, &["resend-email", &item.to_string()], &[]).await;
    assert!(!early.ok && early.stderr.contains("only a completed item"), "{}", early.stderr);
    sqlx::query("UPDATE order_items SET status = 'completed', drive_link = 'https://drive.google.com/drive/folders/abc' WHERE id = ?")
        .bind(item)
        .execute(&pool)
        .await
        .unwrap();
    let sent = admin(&pool, &["resend-email", &item.to_string()], &[]).await;
    assert!(sent.ok, "{}", sent.stderr);
    let mails = testing::mails_to(&buyer);
    assert_eq!(mails.len(), 1);
    let (text, _) = testing::mail_parts(&mails[0]);
    assert!(text.contains("https://drive.google.com/drive/folders/abc"), "{text}");
    let events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM order_events WHERE item_id = ? AND kind = 'email_resent'")
            .bind(item)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(events, 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_refund_revokes_items_and_removes_drive_access(pool: MySqlPool) {
    let emulator = drive_emulator::TempEmulator::start("admin-refund").await.unwrap();
    let base = emulator.base.clone();
    let drive = DriveClient::new(DriveConfig::new(&base), DriveAuth::Fixed("emulator-token".into()));
    let folder = drive.generate_ids(1).await.unwrap().remove(0);
    drive.create_folder(&folder, "Khoá học — CD", "root").await.unwrap();
    let given = drive.share_reader(&folder, "buyer@example.com", false).await.unwrap();

    let (code, created) = testing::pending_order(&pool, &[100_000], 30).await;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE id = ?").bind(created.order_id).execute(&pool).await.unwrap();
    sqlx::query("UPDATE order_items SET status = 'completed', drive_folder_id = ? WHERE id = ?")
        .bind(&folder)
        .bind(created.item_ids[0])
        .execute(&pool)
        .await
        .unwrap();
    // As finalize records the permission it made.
    store::grants::record(
        &mut pool.acquire().await.unwrap(),
        created.item_ids[0],
        &folder,
        "buyer@example.com",
        Some(&given.id),
        true,
    )
    .await
    .unwrap();
    let env = [("DRIVE_API_ROOT", base.as_str()), ("DRIVE_ACCESS_TOKEN", "emulator-token")];
    let refunded = admin(&pool, &["refund", code.as_str(), "--reason", "buyer asked"], &env).await;
    assert!(refunded.ok, "{}", refunded.stderr);
    assert!(refunded.stdout.contains("1 items revoked, 1 Drive permissions removed"), "{}", refunded.stdout);
    assert_eq!(item_status(&pool, created.item_ids[0]).await, "revoked");
    assert!(
        drive
            .permissions(&folder)
            .await
            .unwrap()
            .iter()
            .all(|p| p.email_address.as_deref() != Some("buyer@example.com"))
    );
    let no_reason = admin(&pool, &["refund", code.as_str()], &env).await;
    assert!(!no_reason.ok && no_reason.stderr.contains("--reason"), "a refund needs a reason: {}", no_reason.stderr);
}

/// `reconcile`: one pass by hand against the bank emulator's SePay API; it prints what it
/// listed and recorded, pays the order the webhook missed, and refuses what it cannot do.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn reconcile_records_what_the_webhook_missed_and_says_what_it_found(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (_, urls) = testing::fresh_queues(&sqs).await;
    let (code, _) = testing::pending_order(&pool, &[420_000], 60).await;
    let bank = bank_emulator::Emulator::new(bank_emulator::Config::default());
    let (base, _) = bank.clone().spawn(0).await.unwrap();
    let id = bank.book(&bank_emulator::NewTransfer {
        feed: bank_emulator::Feed::Sepay,
        amount_vnd: 420_000,
        content: format!("{code} thanh toan"),
        account_number: "0123456789".into(),
        at: None,
        amount_text: None,
        sub_account: None,
    });
    let token = bank_emulator::Config::default().sepay_token;
    let mut env = queue_env(&urls);
    env.push(("SEPAY_API_BASE_URL", base.clone()));
    env.push(("SEPAY_API_TOKEN", token));

    let run = admin(&pool, &["reconcile", "--gateway", "sepay"], &refs(&env)).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("sepay: listed 1") && run.stdout.contains("1 recorded now"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("found {id}")) && run.stdout.contains(code.as_str()), "{}", run.stdout);
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE code = ?")
        .bind(code.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "paid");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await.len(), 1);

    let again = admin(&pool, &["reconcile", "--json"], &refs(&env)).await;
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(again.json()[0]["found"], serde_json::json!([]), "{}", again.stdout);

    let wrong = admin(&pool, &["reconcile", "--gateway", "momo", "--json"], &refs(&env)).await;
    assert!(!wrong.ok);
    assert_eq!(wrong.json()["error"]["code"], "invalid_input");
    let no_payos = admin(&pool, &["reconcile", "--gateway", "payos", "--json"], &refs(&env)).await;
    assert!(!no_payos.ok);
    assert_eq!(no_payos.json()["error"]["code"], "refused", "{}", no_payos.stdout);
    assert!(no_payos.stderr.contains("PAYOS_CLIENT_ID"), "{}", no_payos.stderr);
    let off = admin(&pool, &["reconcile", "--gateway", "casso", "--json"], &refs(&env)).await;
    assert!(!off.ok);
    assert_eq!(off.json()["error"]["code"], "refused", "{}", off.stdout);
    assert!(off.stderr.contains("CASSO_API_KEY"), "{}", off.stderr);
}

/// payOS by hand: `payos confirm-webhook` registers a URL only when it answers payOS's check,
/// and `reconcile --gateway payos` asks payOS about each pending order's link and records the
/// payment its webhook never brought.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn payos_webhooks_are_confirmed_and_its_links_reconciled(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (_, urls) = testing::fresh_queues(&sqs).await;
    let bank = bank_emulator::Emulator::new(bank_emulator::Config::default());
    let (base, _) = bank.clone().spawn(0).await.unwrap();
    let mut env = queue_env(&urls);
    env.push(("PAYOS_API_BASE_URL", base.clone()));
    env.push(("PAYOS_CLIENT_ID", bank_emulator::payos::CLIENT_ID.into()));
    env.push(("PAYOS_API_KEY", bank_emulator::payos::API_KEY.into()));
    env.push(("PAYOS_CHECKSUM_KEY", bank_emulator::payos::CHECKSUM_KEY.into()));
    env.push(("SHOP_URL", "https://shop.example/".into()));

    // A receiver that answers payOS's check, and one that refuses it.
    let answering = axum::Router::new()
        .route("/ok", axum::routing::post(|| async { "{\"success\":true}" }))
        .route("/no", axum::routing::post(|| async { axum::http::StatusCode::UNAUTHORIZED }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, answering).into_future());
    let refused = admin(&pool, &["payos", "confirm-webhook", &format!("{receiver}/no"), "--json"], &refs(&env)).await;
    assert!(!refused.ok);
    assert_eq!(refused.json()["error"]["code"], "payos", "{}", refused.stdout);
    assert!(refused.stderr.contains("401"), "payOS says its check got 401: {}", refused.stderr);
    assert_eq!(bank.payos_webhook(), None);
    let plain = admin(&pool, &["payos", "confirm-webhook", "http://example.com/webhooks/payos"], &refs(&env)).await;
    assert!(!plain.ok && plain.stderr.contains("https"), "{}", plain.stderr);
    let ok = admin(&pool, &["payos", "confirm-webhook", &format!("{receiver}/ok")], &refs(&env)).await;
    assert!(ok.ok, "{}", ok.stderr);
    assert_eq!(bank.payos_webhook(), Some(format!("{receiver}/ok")));

    // An order with its payOS link, paid while the webhook went nowhere.
    bank.set_payos_webhook(None);
    let (code, _) = testing::pending_order(&pool, &[420_000], 60).await;
    let vars = coursedrop::app::config::Vars::new({
        let env = env.clone();
        move |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    });
    let routes = coursedrop::app::config::payment_routes(&vars).unwrap();
    let pattern = coursedrop::app::config::code_pattern(&vars).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let head = coursedrop::store::orders::head_by_code(&mut conn, code.as_str()).await.unwrap().unwrap();
    coursedrop::app::routes::open_for(&mut conn, &routes, &pattern, &head).await.unwrap();
    let number = pattern.payos_number(&code).unwrap();
    let pay = bank_emulator::PayLink { order_code: number, amount: None, also_sepay: false };
    bank.pay_payos(&pay).await.expect("a payable link");

    let run = admin(&pool, &["reconcile", "--gateway", "payos"], &refs(&env)).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("payos: asked about 1 pending orders' links; 1 recorded now"), "{}", run.stdout);
    assert!(run.stdout.contains(code.as_str()), "{}", run.stdout);
    let status: String =
        sqlx::query_scalar("SELECT status FROM orders WHERE id = ?").bind(head.id).fetch_one(&pool).await.unwrap();
    assert_eq!(status, "paid");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await.len(), 1);
    // The whole pass (no --gateway) then closes the paid order's link and finds nothing more.
    let again = admin(&pool, &["reconcile", "--json"], &refs(&env)).await;
    assert!(again.ok, "{}", again.stderr);
    let closed: String = sqlx::query_scalar("SELECT state FROM payment_routes WHERE order_id = ?")
        .bind(head.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(closed, "closed", "{}", again.stdout);
}

/// Money with no path, given one: an order that expired under-paid is flagged; when the rest
/// arrives late, `accept-late` makes it paid and sends its courses to enrollment; what cannot
/// be accepted is refused with the reason; money on a cancelled order can be refunded.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_late_payment_is_accepted_and_money_on_a_cancelled_order_refunded(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let env = queue_env(&urls);
    let settings = coursedrop::app::payments::PaymentSettings {
        pattern: coursedrop::domain::CodePattern::new("CD", 6, 10, 8, coursedrop::domain::CodeCharset::Digits).unwrap(),
        account_number: "0123456789".into(),
    };
    let pay = |id: &str, code: &str, amount: i64| coursedrop::app::payments::BankTransfer {
        gateway: coursedrop::app::payments::Gateway::Sepay,
        id: id.into(),
        transfer_type: coursedrop::app::payments::TransferType::In,
        amount_vnd: amount,
        bank: None,
        account_number: Some("0123456789".into()),
        sub_account: None,
        code: None,
        content: Some(code.into()),
        description: None,
        reference: None,
        transaction_date: None,
        raw: "{}".into(),
    };
    let (code, created) = testing::pending_order(&pool, &[200_000, 100_000], -1).await;
    coursedrop::app::payments::record(
        &pool,
        &pay("1", code.as_str(), 100_000),
        &settings,
        coursedrop::app::payments::Arrival::Webhook,
    )
    .await
    .unwrap();
    coursedrop::app::sweeper::sweep(&pool, &publisher, coursedrop::app::sweeper::OutboxTiming::grace(30))
        .await
        .unwrap();
    let (status, attention): (String, Option<String>) =
        sqlx::query_as("SELECT status, attention FROM orders WHERE id = ?")
            .bind(created.order_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "cancelled");
    assert!(attention.is_some_and(|a| a.contains("100000 of 300000")), "the money is flagged");

    // Accepting less than the total is refused, naming what came.
    let short = admin(&pool, &["accept-late", code.as_str(), "--json"], &refs(&env)).await;
    assert!(!short.ok);
    assert_eq!(short.json()["error"]["code"], "refused");
    assert!(short.stderr.contains("received 100000 of 300000"), "{}", short.stderr);

    // The rest arrives late; the operator accepts it.
    coursedrop::app::payments::record(
        &pool,
        &pay("2", code.as_str(), 200_000),
        &settings,
        coursedrop::app::payments::Arrival::Webhook,
    )
    .await
    .unwrap();
    let accepted = admin(&pool, &["accept-late", code.as_str()], &refs(&env)).await;
    assert!(accepted.ok, "{}", accepted.stderr);
    assert!(
        accepted.stdout.contains("the order is paid") && accepted.stdout.contains("2 courses are queued"),
        "{}",
        accepted.stdout
    );
    let (status, attention): (String, Option<String>) =
        sqlx::query_as("SELECT status, attention FROM orders WHERE id = ?")
            .bind(created.order_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attention), ("paid", None));
    for item in &created.item_ids {
        assert_eq!(item_status(&pool, *item).await, "enrolling");
    }
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await.len(), 2);
    let again = admin(&pool, &["accept-late", code.as_str(), "--json"], &refs(&env)).await;
    assert_eq!(again.json()["error"]["code"], "refused", "a paid order is not accepted twice");

    // A cancelled order that received nothing: nothing to accept, nothing to refund.
    let (empty, _) = testing::pending_order(&pool, &[50_000], -1).await;
    coursedrop::app::sweeper::sweep(&pool, &publisher, coursedrop::app::sweeper::OutboxTiming::grace(30))
        .await
        .unwrap();
    let nothing = admin(&pool, &["accept-late", empty.as_str(), "--json"], &refs(&env)).await;
    assert!(nothing.stderr.contains("received no money"), "{}", nothing.stderr);
    let emulator = drive_emulator::TempEmulator::start("admin-late").await.unwrap();
    let drive_env = [("DRIVE_API_ROOT", emulator.base.as_str()), ("DRIVE_ACCESS_TOKEN", "emulator-token")];
    let refused = admin(&pool, &["refund", empty.as_str(), "--reason", "x", "--json"], &drive_env).await;
    assert!(!refused.ok, "{}", refused.stdout);

    // Money on a cancelled order is refunded.
    let (kept, kept_order) = testing::pending_order(&pool, &[80_000], -1).await;
    coursedrop::app::payments::record(
        &pool,
        &pay("3", kept.as_str(), 30_000),
        &settings,
        coursedrop::app::payments::Arrival::Webhook,
    )
    .await
    .unwrap();
    coursedrop::app::sweeper::sweep(&pool, &publisher, coursedrop::app::sweeper::OutboxTiming::grace(30))
        .await
        .unwrap();
    let refunded = admin(&pool, &["refund", kept.as_str(), "--reason", "expired, money returned"], &drive_env).await;
    assert!(refunded.ok, "{}", refunded.stderr);
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
        .bind(kept_order.order_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "refunded");
}

/// `course add` with the seller's Drive folder: checked with our Drive identity before it is
/// sold (readable, holds files, copyable or shareable as asked), stored as `drive://<id>`
/// whatever link form was given, and listed with its mode.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_drive_course_is_added_only_when_it_can_be_delivered_as_asked(pool: MySqlPool) {
    use drive_emulator::{FOLDER_MIME, IDENTITY, Seed, SeedShare};
    let emulator = drive_emulator::TempEmulator::start("admin-drive-course").await.unwrap();
    let emu = &emulator.emu;
    let folder = |name: &str, role: Option<&str>| {
        emu.seed(Seed {
            name: name.into(),
            mime_type: Some(FOLDER_MIME.into()),
            share_with: role.map(|r| vec![SeedShare::new(IDENTITY, r)]).unwrap_or_default(),
            ..Seed::default()
        })
        .unwrap()
    };
    let file = |parent: &str, protected: bool| {
        emu.seed(Seed {
            name: "bai-1.mp4".into(),
            parent: Some(parent.into()),
            bytes: Some(vec![7; 2048]),
            copy_requires_writer_permission: protected,
            ..Seed::default()
        })
        .unwrap()
    };
    let readable = folder("Rust (doc)", Some("reader"));
    file(&readable, false);
    let unshared = folder("Rust (chua chia se)", None);
    file(&unshared, false);
    let empty = folder("Rust (trong)", Some("reader"));
    let protected = folder("Rust (khoa)", Some("reader"));
    file(&protected, true);

    let base = emulator.base.clone();
    let env = [("DRIVE_API_ROOT", base.as_str()), ("DRIVE_ACCESS_TOKEN", "emulator-token")];
    let add = |slug: &'static str, source: String, mode: &'static str| {
        let pool = pool.clone();
        async move {
            let args = [
                "course", "add", "--slug", slug, "--title", "Rust", "--price", "990000", "--source", &source, "--mode",
                mode,
            ];
            admin(&pool, &args, &env).await
        }
    };
    let not_shared = add("rust", format!("drive://{unshared}"), "copy").await;
    assert!(!not_shared.ok && not_shared.stderr.contains("share it with that identity"), "{}", not_shared.stderr);
    let nothing = add("rust", format!("drive://{empty}"), "copy").await;
    assert!(!nothing.ok && nothing.stderr.contains("holds no files"), "{}", nothing.stderr);
    let locked = add("rust", format!("drive://{protected}"), "copy").await;
    assert!(
        !locked.ok && locked.stderr.contains("bai-1.mp4") && locked.stderr.contains("cannot be copied"),
        "{}",
        locked.stderr
    );
    let share_as_reader = add("rust", format!("drive://{readable}"), "share").await;
    assert!(!share_as_reader.ok && share_as_reader.stderr.contains("editor access"), "{}", share_as_reader.stderr);
    let s3_share = add("rust", "s3://seller-bucket/rust/".into(), "share").await;
    assert!(!s3_share.ok && s3_share.stderr.contains("only a Drive folder can be shared"), "{}", s3_share.stderr);
    let bad_mode = add("rust", format!("drive://{readable}"), "link").await;
    assert!(!bad_mode.ok && bad_mode.stderr.contains("copy or share"), "{}", bad_mode.stderr);

    // The folder's address as the browser shows it is stored as drive://<id>.
    let added = add("rust", format!("https://drive.google.com/drive/folders/{readable}?usp=sharing"), "copy").await;
    assert!(added.ok, "{}", added.stderr);
    assert!(added.stdout.contains("1 files") && added.stdout.contains("delivered by copy"), "{}", added.stdout);
    let editable = folder("Rust (chia se)", Some("writer"));
    file(&editable, true); // copy-protected does not matter when nothing is copied
    let shared = add("rust-share", format!("drive://{editable}"), "share").await;
    assert!(shared.ok, "{}", shared.stderr);

    let listed = admin(&pool, &["--json", "course", "list"], &[]).await.json();
    let rows: Vec<(String, String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["slug"].as_str().unwrap().into(),
                c["source"].as_str().unwrap().into(),
                c["delivery_mode"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("rust".into(), format!("drive://{readable}"), "copy".into()),
            ("rust-share".into(), format!("drive://{editable}"), "share".into())
        ]
    );
    let table = admin(&pool, &["course", "list"], &[]).await;
    assert!(table.stdout.contains("MODE") && table.stdout.contains("share"), "{}", table.stdout);
}

/// `purge-unpaid`: orders that expired unpaid long ago are deleted with their items and
/// timeline; a recent one, one that received money, one with an unmatched-then-attached
/// payment row and a paid one all stay.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn orders_that_expired_unpaid_long_ago_are_purged_and_nothing_else(pool: MySqlPool) {
    let mut orders = Vec::new();
    for _ in 0..5 {
        let (code, created) = testing::pending_order(&pool, &[100_000], 30).await;
        orders.push((code, created.order_id));
    }
    let set = |sql: &'static str, id: u64| {
        let pool = pool.clone();
        async move { sqlx::query(sql).bind(id).execute(&pool).await.unwrap() }
    };
    // 0: expired unpaid 100 days ago → purged. 1: expired 10 days ago → kept.
    // 2: expired long ago with money (flagged) → kept. 3: paid → kept.
    // 4: expired long ago, nothing paid, but a payment row points at it → kept.
    let old = "UPDATE orders SET status = 'cancelled', expires_at = NOW(3) - INTERVAL 100 DAY WHERE id = ?";
    set(old, orders[0].1).await;
    set("UPDATE orders SET status = 'cancelled', expires_at = NOW(3) - INTERVAL 10 DAY WHERE id = ?", orders[1].1)
        .await;
    set(old, orders[2].1).await;
    set("UPDATE orders SET paid_vnd = 50000 WHERE id = ?", orders[2].1).await;
    set("UPDATE orders SET status = 'paid', expires_at = NOW(3) - INTERVAL 100 DAY WHERE id = ?", orders[3].1).await;
    set(old, orders[4].1).await;
    sqlx::query(
        "INSERT INTO payments (feed, feed_txn_id, order_id, transfer_type, amount_vnd, gateway, raw_payload)
         VALUES ('sepay', '991', ?, 'out', 1, 'MBBank', '{}')",
    )
    .bind(orders[4].1)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE order_items SET status = 'cancelled' WHERE order_id IN (?, ?, ?)")
        .bind(orders[0].1)
        .bind(orders[1].1)
        .bind(orders[4].1)
        .execute(&pool)
        .await
        .unwrap();

    let run = admin(&pool, &["--json", "purge-unpaid", "--older-than-days", "90"], &[]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.json()["purged"], 1);
    let left: Vec<u64> = sqlx::query_scalar("SELECT id FROM orders ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(left, orders[1..].iter().map(|o| o.1).collect::<Vec<_>>());
    let traces: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM order_items WHERE order_id = ?) + (SELECT COUNT(*) FROM order_events WHERE order_id = ?)",
    )
    .bind(orders[0].1)
    .bind(orders[0].1)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(traces, 0, "its items and timeline went with it");
    let again = admin(&pool, &["--json", "purge-unpaid"], &[]).await;
    assert_eq!(again.json()["purged"], 0, "safe to repeat");
    let zero = admin(&pool, &["purge-unpaid", "--older-than-days", "0"], &[]).await;
    assert!(!zero.ok && zero.stderr.contains("at least 1"), "{}", zero.stderr);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn coupons_are_added_listed_and_disabled_and_bad_ones_explained(pool: MySqlPool) {
    testing::seed_course(&pool, "rust-101", "Rust cơ bản", 499_000, true).await;
    let add = admin(
        &pool,
        &[
            "--json",
            "coupon",
            "add",
            "--code",
            "tet2027",
            "--percent",
            "15",
            "--max-uses",
            "100",
            "--from",
            "2027-01-20",
            "--until",
            "2027-02-10",
            "--course",
            "rust-101",
        ],
        &[],
    )
    .await;
    assert!(add.ok, "{}", add.stderr);
    let c = add.json();
    assert_eq!(
        (c["code"].as_str(), &c["discount"], &c["max_uses"]),
        (Some("TET2027"), &serde_json::json!({"percent": 15}), &serde_json::json!(100))
    );
    // A bare date is Vietnam's: from its midnight (17:00 UTC the day before), through its last second.
    assert_eq!(c["valid_from"], "2027-01-19T17:00:00Z");
    assert_eq!(c["valid_until"], "2027-02-10T17:00:00Z");
    assert_eq!(c["courses"], serde_json::json!(["rust-101"]));
    assert!(admin(&pool, &["coupon", "add", "--code", "FIXED", "--amount", "50000"], &[]).await.ok);

    let list = admin(&pool, &["coupon", "list"], &[]).await;
    assert!(list.ok && list.stdout.contains("TET2027") && list.stdout.contains("0/100"), "{}", list.stdout);
    assert!(list.stdout.contains("50000 VND") && list.stdout.contains("every course"), "{}", list.stdout);

    for (args, says) in [
        (vec!["coupon", "add", "--code", "TET2027", "--percent", "5"], "already"),
        (vec!["coupon", "add", "--code", "X", "--percent", "5"], "3 to 32"),
        (vec!["coupon", "add", "--code", "BIG", "--percent", "150"], "1 to 100"),
        (vec!["coupon", "add", "--code", "NONE", "--amount", "0"], "positive"),
        (vec!["coupon", "add", "--code", "WHO", "--percent", "5", "--course", "no-such"], "no course no-such"),
        (
            vec!["coupon", "add", "--code", "BACK", "--percent", "5", "--from", "2027-02-01", "--until", "2027-01-01"],
            "ends before",
        ),
        (vec!["coupon", "add", "--code", "WHEN", "--percent", "5", "--until", "soon"], "--until"),
        (vec!["coupon", "disable", "NOPE"], "no coupon NOPE"),
    ] {
        let run = admin(&pool, &args, &[]).await;
        assert!(!run.ok && run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    let off = admin(&pool, &["coupon", "disable", "Tet2027"], &[]).await;
    assert!(off.ok, "{}", off.stderr);
    let active: bool =
        sqlx::query_scalar("SELECT active FROM coupons WHERE code = 'TET2027'").fetch_one(&pool).await.unwrap();
    assert!(!active);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_operator_moves_a_buyers_drive_access_without_a_limit(pool: MySqlPool) {
    let emulator = drive_emulator::TempEmulator::start("admin-move").await.unwrap();
    let base = emulator.base.clone();
    let drive = DriveClient::new(DriveConfig::new(&base), DriveAuth::Fixed("emulator-token".into()));
    let folder = drive.generate_ids(1).await.unwrap().remove(0);
    let made = drive.create_folder(&folder, "Khoá học — CD", "root").await.unwrap();
    let given = drive.share_reader(&folder, "buyer@gmail.com", false).await.unwrap();
    let (code, created) = testing::pending_order(&pool, &[100_000], 30).await;
    sqlx::query("UPDATE orders SET status = 'completed', email = 'buyer@gmail.com' WHERE id = ?")
        .bind(created.order_id)
        .execute(&pool)
        .await
        .unwrap();
    // Moved twice already: a buyer could not move it again; an operator can.
    sqlx::query(
        "UPDATE order_items SET status = 'completed', drive_folder_id = ?, drive_link = ?, drive_permission_id = ?,
           access_changes = 2 WHERE id = ?",
    )
    .bind(&folder)
    .bind(&made.web_view_link)
    .bind(&given.id)
    .bind(created.item_ids[0])
    .execute(&pool)
    .await
    .unwrap();
    store::grants::record(
        &mut pool.acquire().await.unwrap(),
        created.item_ids[0],
        &folder,
        "buyer@gmail.com",
        Some(&given.id),
        true,
    )
    .await
    .unwrap();
    let new = format!("other-{}@gmail.com", rand::random::<u64>());
    let env = [("DRIVE_API_ROOT", base.as_str()), ("DRIVE_ACCESS_TOKEN", "emulator-token")];
    let moved = admin(&pool, &["move-access", code.as_str(), "--to", &new], &env).await;
    assert!(moved.ok, "{}", moved.stderr);
    assert!(moved.stdout.contains(&format!("moved to {new}")), "{}", moved.stdout);
    let readers: Vec<String> =
        drive.permissions(&folder).await.unwrap().into_iter().filter_map(|p| p.email_address).collect();
    assert!(readers.contains(&new) && !readers.contains(&"buyer@gmail.com".to_string()), "{readers:?}");
    assert_eq!(testing::mails_to(&new).len(), 1, "the links go to the new address");
    let actors: Vec<String> = sqlx::query_scalar("SELECT DISTINCT actor FROM order_events WHERE kind = 'access_moved'")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(actors, vec!["operator:lan".to_string()]);

    let bad = admin(&pool, &["move-access", code.as_str(), "--to", "not-an-email"], &env).await;
    assert!(!bad.ok && bad.stderr.contains("--to"), "{}", bad.stderr);
}
