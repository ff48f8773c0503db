//! The sweeper against real MariaDB and moto SQS.

use coursedrop::app::sweeper;
use coursedrop::app::sweeper::OutboxTiming;
use coursedrop::domain::{ItemStatus, Queue};
use coursedrop::store::items::{self, ItemChange};
use coursedrop::testing;
use sqlx::MySqlPool;

async fn order_expiring_in(pool: &MySqlPool, minutes: i64) -> (String, u64) {
    let (code, created) = testing::pending_order(pool, &[100_000], minutes).await;
    (code.to_string(), created.item_ids[0])
}

async fn statuses(pool: &MySqlPool, code: &str) -> (String, String) {
    sqlx::query_as("SELECT o.status, i.status FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.code = ?")
        .bind(code)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn expired_unpaid_orders_are_cancelled_and_nothing_else(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    let (expired, _) = order_expiring_in(&pool, -1).await;
    let (fresh, _) = order_expiring_in(&pool, 30).await;
    let (paid_late, _) = order_expiring_in(&pool, -1).await;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE code = ?").bind(&paid_late).execute(&pool).await.unwrap();

    let report = sweeper::sweep(&pool, &publisher, OutboxTiming::grace(30)).await.unwrap();

    assert_eq!(report.expired_orders, 1);
    assert_eq!(statuses(&pool, &expired).await, ("cancelled".into(), "cancelled".into()));
    assert_eq!(statuses(&pool, &fresh).await, ("pending".into(), "awaiting_payment".into()));
    assert_eq!(statuses(&pool, &paid_late).await.0, "paid");
    let events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM order_events WHERE actor = 'sweeper'").fetch_one(&pool).await.unwrap();
    assert_eq!(events, 2, "one order event and one item event");
    assert_eq!(
        sweeper::sweep(&pool, &publisher, OutboxTiming::grace(30)).await.unwrap().expired_orders,
        0,
        "a second sweep finds nothing"
    );
}

/// An order that expires with some money received is flagged as it is cancelled, so the
/// money has a path (accept it late, or refund it); one that received nothing is not.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_order_that_expires_with_money_received_is_flagged(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    let (short, _) = order_expiring_in(&pool, -1).await;
    let (nothing, _) = order_expiring_in(&pool, -1).await;
    sqlx::query("UPDATE orders SET paid_vnd = 40000 WHERE code = ?").bind(&short).execute(&pool).await.unwrap();

    assert_eq!(sweeper::sweep(&pool, &publisher, OutboxTiming::grace(30)).await.unwrap().expired_orders, 2);
    let flag = |code: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, Option<String>)>("SELECT status, attention FROM orders WHERE code = ?")
                .bind(code)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (status, attention) = flag(short.clone()).await;
    assert_eq!(status, "cancelled");
    let attention = attention.expect("an expired order holding money is flagged");
    assert!(
        attention.contains("40000 of 100000") && attention.contains(&format!("accept-late {short}")),
        "{attention}"
    );
    assert_eq!(flag(nothing).await, ("cancelled".into(), None));
    let flagged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.code = ? AND e.kind = 'needs_attention'",
    )
    .bind(&short)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(flagged, 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn outbox_rows_are_published_again_only_when_their_relay_failed_or_nobody_consumed_them(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let timing = OutboxTiming { grace_secs: 30, republish_after_secs: 300 };
    let (_, item) = order_expiring_in(&pool, 30).await;
    items::transition(&pool, &ItemChange::new(item, ItemStatus::AwaitingPayment, ItemStatus::Enrolling, "test"))
        .await
        .unwrap();
    let sweep = || async { sweeper::sweep(&pool, &publisher, timing).await.unwrap().republished };
    let body = vec![format!("{{\"item_id\":{item}}}")];

    assert_eq!(sweep().await, 0, "a fresh row is its relay's");
    sqlx::query("UPDATE outbox SET created_at = NOW(3) - INTERVAL 31 SECOND").execute(&pool).await.unwrap();
    assert_eq!(sweep().await, 0, "published by its relay, it has the republish interval to be consumed");

    let id: u64 = sqlx::query_scalar("SELECT id FROM outbox").fetch_one(&pool).await.unwrap();
    coursedrop::store::outbox::record_publish_failure(&mut pool.acquire().await.unwrap(), id, "refused").await.unwrap();
    assert_eq!(sweep().await, 1, "the relay's publish failed: at once");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await, body);
    assert_eq!(sweep().await, 0, "published just now");

    sqlx::query("UPDATE outbox SET published_at = NOW(3) - INTERVAL 301 SECOND").execute(&pool).await.unwrap();
    assert_eq!(sweep().await, 1, "nobody consumed it in the interval: published again");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await, body);

    // The enroll stage takes the item in: its row is consumed and never published again.
    items::transition(&pool, &ItemChange::new(item, ItemStatus::Enrolling, ItemStatus::Enrolled, "enroll"))
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET created_at = NOW(3) - INTERVAL 1 HOUR, published_at = NULL")
        .execute(&pool)
        .await
        .unwrap();
    let consumed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE queue = 'enroll' AND consumed_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(consumed, 1);
    assert_eq!(sweep().await, 1, "only the deliver row, which nobody consumed yet");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await, Vec::<String>::new());
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Deliver]).await, body);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn many_rows_go_out_in_batches_each_exactly_once(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let mut expected = Vec::new();
    // 23 enroll messages (three batches of up to ten) and 2 for finalize.
    for i in 0..25 {
        let (_, item) = order_expiring_in(&pool, 30).await;
        items::transition(&pool, &ItemChange::new(item, ItemStatus::AwaitingPayment, ItemStatus::Enrolling, "test"))
            .await
            .unwrap();
        if i >= 23 {
            sqlx::query("UPDATE outbox SET queue = 'finalize' WHERE payload = ?")
                .bind(format!("{{\"item_id\":{item}}}"))
                .execute(&pool)
                .await
                .unwrap();
        }
        expected.push((i, format!("{{\"item_id\":{item}}}")));
    }
    let report =
        sweeper::sweep(&pool, &publisher, OutboxTiming { grace_secs: 0, republish_after_secs: 0 }).await.unwrap();
    assert_eq!((report.republished, report.publish_failed), (25, 0));
    let mut enroll = testing::drain(&sqs, &urls[&Queue::Enroll]).await;
    let mut finalize = testing::drain(&sqs, &urls[&Queue::Finalize]).await;
    enroll.sort();
    finalize.sort();
    let mut want_enroll: Vec<String> = expected.iter().filter(|(i, _)| *i < 23).map(|(_, b)| b.clone()).collect();
    let mut want_finalize: Vec<String> = expected.iter().filter(|(i, _)| *i >= 23).map(|(_, b)| b.clone()).collect();
    want_enroll.sort();
    want_finalize.sort();
    assert_eq!((enroll, finalize), (want_enroll, want_finalize));
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_operator_cancels_an_unpaid_order_but_not_a_paid_one(pool: MySqlPool) {
    let (unpaid, _) = testing::pending_order(&pool, &[100_000, 200_000], 30).await;
    let (paid, _) = testing::pending_order(&pool, &[100_000], 30).await;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE code = ?").bind(paid.as_str()).execute(&pool).await.unwrap();
    let id = |code: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, u64>("SELECT id FROM orders WHERE code = ?")
                .bind(code)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    coursedrop::store::orders::cancel_unpaid(
        &pool,
        id(unpaid.to_string()).await,
        "operator:lan",
        "buyer changed their mind",
    )
    .await
    .unwrap();
    let items: Vec<String> =
        sqlx::query_scalar("SELECT i.status FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.code = ?")
            .bind(unpaid.as_str())
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(items, vec!["cancelled", "cancelled"]);
    let err = coursedrop::store::orders::cancel_unpaid(&pool, id(paid.to_string()).await, "operator:lan", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            coursedrop::store::StoreError::OrderConflict { expected: coursedrop::domain::OrderStatus::Pending, .. }
        ),
        "{err}"
    );
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_stuck_item_whose_message_was_lost_is_sent_again_once_per_deadline(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let (_, item) = order_expiring_in(&pool, 30).await;
    let (_, fresh) = order_expiring_in(&pool, 30).await;
    for id in [item, fresh] {
        items::transition(&pool, &ItemChange::new(id, ItemStatus::AwaitingPayment, ItemStatus::Enrolling, "test"))
            .await
            .unwrap();
        items::transition(&pool, &ItemChange::new(id, ItemStatus::Enrolling, ItemStatus::Enrolled, "test"))
            .await
            .unwrap();
    }
    // Both deliver messages were published, then lost (a queue purged, say).
    sweeper::sweep(&pool, &publisher, OutboxTiming { grace_secs: 0, republish_after_secs: 0 }).await.unwrap();
    let _ = testing::drain(&sqs, &urls[&Queue::Enroll]).await;
    let _ = testing::drain(&sqs, &urls[&Queue::Deliver]).await;
    // One has waited past the enrolled deadline, and its last message is older than that too.
    sqlx::query("UPDATE order_items SET updated_at = NOW(3) - INTERVAL 10 MINUTE WHERE id = ?")
        .bind(item)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET created_at = NOW(3) - INTERVAL 10 MINUTE").execute(&pool).await.unwrap();
    let deadlines =
        coursedrop::app::sweeper::Deadlines { enrolled: std::time::Duration::from_secs(300), ..Default::default() };

    let report = sweeper::sweep_with(&pool, &publisher, OutboxTiming::grace(30), &deadlines, None).await.unwrap();
    assert_eq!((report.stuck_items, report.requeued), (1, 1));
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Deliver]).await, vec![format!("{{\"item_id\":{item}}}")]);

    // Still stuck a minute later: counted again, but not sent again within the deadline.
    let report = sweeper::sweep_with(&pool, &publisher, OutboxTiming::grace(30), &deadlines, None).await.unwrap();
    assert_eq!((report.stuck_items, report.requeued), (1, 0));
    assert!(testing::drain(&sqs, &urls[&Queue::Deliver]).await.is_empty());
}

/// A delivering item whose worker is alive but makes no progress is still found stuck: the
/// lease's heartbeat does not count as progress (it used to bump `updated_at`, so "delivering
/// without progress" never fired while the process lived).
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn heartbeats_are_not_progress(pool: MySqlPool) {
    let (_, item) = order_expiring_in(&pool, 30).await;
    sqlx::query(
        "UPDATE order_items SET status = 'delivering', lease_owner = 'w', lease_until = NOW(3) + INTERVAL 60 SECOND,
         updated_at = NOW(3) - INTERVAL 40 MINUTE WHERE id = ?",
    )
    .bind(item)
    .execute(&pool)
    .await
    .unwrap();
    for _ in 0..3 {
        assert!(coursedrop::store::leases::renew(&pool, item, ItemStatus::Delivering, "w", 60).await.unwrap());
    }
    let stuck = sweeper::stuck_items(&pool, &coursedrop::app::sweeper::Deadlines::default()).await.unwrap();
    assert_eq!(stuck.iter().map(|s| s.id).collect::<Vec<_>>(), vec![item], "a heartbeat hid the stuck item");
    assert!(stuck[0].minutes >= 39, "{}", stuck[0].minutes);
}

/// A stuck item a live worker still holds is counted (and alarmed) but not sent again: the
/// message would only come back busy, over and over, until the dead-letter queue took it
/// (`make chaos` saw 18 such). Once the lease lapses, it is sent.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_stuck_item_under_a_live_lease_is_not_sent_again_until_it_lapses(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let (_, item) = order_expiring_in(&pool, 30).await;
    sqlx::query(
        "UPDATE order_items SET status = 'delivering', lease_owner = 'w', lease_until = NOW(3) + INTERVAL 60 SECOND,
         updated_at = NOW(3) - INTERVAL 40 MINUTE WHERE id = ?",
    )
    .bind(item)
    .execute(&pool)
    .await
    .unwrap();
    let deadlines = coursedrop::app::sweeper::Deadlines::default();
    let report = sweeper::sweep_with(&pool, &publisher, OutboxTiming::grace(30), &deadlines, None).await.unwrap();
    assert_eq!((report.stuck_items, report.requeued), (1, 0), "held by a live worker");
    assert!(testing::drain(&sqs, &urls[&Queue::Deliver]).await.is_empty());
    sqlx::query(
        "UPDATE order_items SET lease_until = NOW(3) - INTERVAL 1 SECOND, updated_at = NOW(3) - INTERVAL 40 MINUTE WHERE id = ?",
    )
        .bind(item)
        .execute(&pool)
        .await
        .unwrap();
    let report = sweeper::sweep_with(&pool, &publisher, OutboxTiming::grace(30), &deadlines, None).await.unwrap();
    assert_eq!((report.stuck_items, report.requeued), (1, 1), "the worker is gone: its message is sent again");
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Deliver]).await, vec![format!("{{\"item_id\":{item}}}")]);
}

// ------------------------------------------------------------------ payment reminders

fn reminders(smtp: &str) -> coursedrop::app::reminders::Reminders {
    let smtp = smtp.to_string();
    coursedrop::app::reminders::Reminders::from_vars(&coursedrop::app::config::Vars::new(move |k: &str| match k {
        "SMTP_URL" => Some(smtp.clone()),
        "BANK_CODE" => Some("MBBank".into()),
        "BANK_ACCOUNT_NUMBER" => Some("0123456789".into()),
        "BANK_ACCOUNT_NAME" => Some("CONG TY COURSEDROP".into()),
        "SELLER_NAME" => Some("Học Rust cùng Lan".into()),
        "SHOP_URL" => Some("https://shop.lan.vn/".into()),
        _ => None,
    }))
    .unwrap()
}

/// A pending order of 748,100 VND placed `age` minutes ago, expiring in `left` minutes, for
/// an address of its own; its code and the address.
async fn unpaid(pool: &MySqlPool, lang: &str, age: i64, left: i64) -> (String, String) {
    let (code, _) = order_expiring_in(pool, left).await;
    let email = format!("payer-{}@example.com", rand::random::<u64>());
    sqlx::query(
        "UPDATE orders SET email = ?, lang = ?, total_vnd = 748100, created_at = NOW(3) - INTERVAL ? MINUTE WHERE code = ?",
    )
    .bind(&email)
    .bind(lang)
    .bind(age)
    .bind(&code)
    .execute(pool)
    .await
    .unwrap();
    (code, email)
}

async fn sweep_reminding(pool: &MySqlPool, r: &coursedrop::app::reminders::Reminders) -> sweeper::SweepReport {
    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    sweeper::sweep_with(pool, &publisher, OutboxTiming::grace(30), &sweeper::Deadlines::default(), Some(r))
        .await
        .unwrap()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_unpaid_order_is_reminded_once_with_what_to_transfer(pool: MySqlPool) {
    let r = reminders(&testing::smtp_url());
    let (code, email) = unpaid(&pool, "vi", 20, 10).await;
    let (en_code, en_email) = unpaid(&pool, "en", 20, 10).await;

    let report = sweep_reminding(&pool, &r).await;
    assert_eq!(report.reminders_sent, 2);
    let mails = testing::mails_to(&email);
    assert_eq!(mails.len(), 1);
    let (text, html) = testing::mail_parts(&mails[0]);
    let html = html.replace("&#x2f;", "/").replace("&amp;", "&");
    let qr = format!("https://qr.sepay.vn/img?acc=0123456789&bank=MBBank&amount=748100&des={code}");
    for (kind, body) in [("text", &text), ("html", &html)] {
        assert!(body.contains("vẫn đang chờ thanh toán"), "{kind}: {body}");
        assert!(
            body.contains("748.100 ₫") && body.contains("0123456789") && body.contains("CONG TY COURSEDROP"),
            "{kind}"
        );
        assert!(body.contains(&code) && body.contains(&qr), "{kind} has the transfer text and the QR: {body}");
        assert!(body.contains(&format!("https://shop.lan.vn/?order={code}&t=")), "{kind} links to the order");
        assert!(body.contains("Học Rust cùng Lan"), "{kind} names the seller");
    }
    let (en_text, _) = testing::mail_parts(&testing::mails_to(&en_email)[0]);
    assert!(
        en_text.contains("still waiting for payment") && en_text.contains(&en_code) && en_text.contains("&lang=en"),
        "{en_text}"
    );

    // Once: later sweeps send nothing more, and the timeline says it was sent.
    assert_eq!(sweep_reminding(&pool, &r).await.reminders_sent, 0);
    assert_eq!(testing::mails_to(&email).len(), 1);
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.code = ? AND e.kind = 'reminder_sent'",
    )
    .bind(&code)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(events, 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn no_reminder_goes_to_a_paid_expired_or_young_order(pool: MySqlPool) {
    let r = reminders(&testing::smtp_url());
    let (paid, paid_email) = unpaid(&pool, "vi", 20, 10).await;
    sqlx::query("UPDATE orders SET status = 'paid' WHERE code = ?").bind(&paid).execute(&pool).await.unwrap();
    let (_, expired_email) = unpaid(&pool, "vi", 40, -1).await;
    // Placed a minute ago with 29 minutes left: inside the 30-minute lead, but before half its
    // time has passed, it is not reminded yet.
    let (young, young_email) = unpaid(&pool, "vi", 1, 29).await;
    let (cancelled, cancelled_email) = unpaid(&pool, "vi", 20, 10).await;
    sqlx::query("UPDATE orders SET status = 'cancelled' WHERE code = ?").bind(&cancelled).execute(&pool).await.unwrap();

    let report = sweep_reminding(&pool, &r).await;
    assert_eq!((report.reminders_sent, report.expired_orders), (0, 1));
    for email in [&paid_email, &expired_email, &young_email, &cancelled_email] {
        assert!(testing::mails_to(email).is_empty(), "{email} got a reminder");
    }
    // Once half its time has passed (placed 30 minutes before, 29 left), the young one is.
    sqlx::query("UPDATE orders SET created_at = NOW(3) - INTERVAL 30 MINUTE WHERE code = ?")
        .bind(&young)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(sweep_reminding(&pool, &r).await.reminders_sent, 1);
    assert_eq!(testing::mails_to(&young_email).len(), 1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_reminder_the_smtp_server_did_not_take_is_sent_at_the_next_sweep_with_the_same_id(pool: MySqlPool) {
    let (code, email) = unpaid(&pool, "vi", 20, 10).await;
    // Nothing listens on port 9: the sweep fails to send and records nothing.
    let report = sweep_reminding(&pool, &reminders("smtp://127.0.0.1:9")).await;
    assert_eq!((report.reminders_sent, report.reminders_failed), (0, 1));
    let kept: (Option<String>, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT reminder_message_id, reminder_sent_at FROM orders WHERE code = ?")
            .bind(&code)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(kept.0.is_some() && kept.1.is_none(), "{kept:?}");

    assert_eq!(sweep_reminding(&pool, &reminders(&testing::smtp_url())).await.reminders_sent, 1);
    let mails = testing::mails_to(&email);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains(kept.0.as_deref().unwrap()), "the Message-ID fixed before the first try");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn reminders_switched_off_send_nothing(pool: MySqlPool) {
    let mut r = reminders(&testing::smtp_url());
    r.lead = None;
    let (_, email) = unpaid(&pool, "vi", 20, 10).await;
    assert_eq!(sweep_reminding(&pool, &r).await.reminders_sent, 0);
    assert!(testing::mails_to(&email).is_empty());
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn old_wrong_email_counts_are_forgotten_and_live_locks_kept(pool: MySqlPool) {
    sqlx::query(
        "INSERT INTO buyer_attempts (scope, failures, window_started_at, locked_until) VALUES
           ('order:OLD', 3, NOW(3) - INTERVAL 2 DAY, NULL),
           ('client:OLD', 5, NOW(3) - INTERVAL 2 DAY, NOW(3) - INTERVAL 2 DAY + INTERVAL 15 MINUTE),
           ('order:RECENT', 2, NOW(3) - INTERVAL 1 HOUR, NULL),
           ('client:LOCKED', 5, NOW(3) - INTERVAL 2 DAY, NOW(3) + INTERVAL 1 HOUR)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    sweeper::sweep(&pool, &publisher, OutboxTiming::grace(30)).await.unwrap();
    let left: Vec<String> =
        sqlx::query_scalar("SELECT scope FROM buyer_attempts ORDER BY scope").fetch_all(&pool).await.unwrap();
    assert_eq!(left, vec!["client:LOCKED".to_string(), "order:RECENT".to_string()]);
}
