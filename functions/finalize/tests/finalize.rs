//! The finalize function against MariaDB, the Drive emulator and a real SMTP server that
//! stores mail in a Maildir (the one `make test` starts on 127.0.0.1:1025).

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::drive::{DriveConfig, StaticToken};
use coursedrop::adapters::mail::Mailer;
use coursedrop::app::config::Vars;
use coursedrop::testing;
use drive_emulator::TempEmulator;
use finalize::{FinalizeContext, handle};
use sqlx::MySqlPool;

struct Harness {
    pool: MySqlPool,
    drive: TempEmulator,
    email: String,
    items: Vec<u64>,
    folders: Vec<String>,
}

fn drive(base: &str) -> DriveClient<StaticToken> {
    let mut c = DriveConfig::new(base);
    c.backoff_base = Duration::from_millis(1);
    c.backoff_max = Duration::from_millis(10);
    DriveClient::new(c, StaticToken("emulator-token".into()))
}

fn mailer(smtp: &str) -> Mailer {
    let smtp = smtp.to_string();
    Mailer::from_vars(&Vars::new(move |k: &str| match k {
        "SMTP_URL" => Some(smtp.clone()),
        "SUPPORT_CONTACT" => Some("hotro@seller.vn".into()),
        "SELLER_NAME" => Some("Học Rust cùng Lan".into()),
        "SUPPORT_ZALO" => Some("0912 345 678".into()),
        _ => None,
    }))
    .unwrap()
}

/// A paid order whose items are delivered into folders on the emulator.
async fn harness(pool: MySqlPool, items: usize, lang: &str, domain: &str) -> Harness {
    let emulator = TempEmulator::start("finalize-test").await.unwrap();
    let (_, created) = testing::pending_order(&pool, &vec![100_000; items], 30).await;
    let email = format!("buyer-{}@{domain}", rand::random_range(0..u64::MAX));
    sqlx::query("UPDATE orders SET status = 'paid', email = ?, lang = ? WHERE id = ?")
        .bind(&email)
        .bind(lang)
        .bind(created.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let d = drive(&emulator.base);
    let mut folders = Vec::new();
    for item in &created.item_ids {
        let id = d.generate_ids(1).await.unwrap().remove(0);
        let folder = d.create_folder(&id, "Khoá học — CD1", "root").await.unwrap();
        sqlx::query("UPDATE order_items SET status = 'delivered', drive_folder_id = ?, drive_link = ? WHERE id = ?")
            .bind(&id)
            .bind(folder.web_view_link)
            .bind(item)
            .execute(&pool)
            .await
            .unwrap();
        folders.push(id);
    }
    Harness { pool, drive: emulator, email, items: created.item_ids, folders }
}

impl Harness {
    /// The harness order's code (every item is of the one order).
    async fn order_code(&self) -> coursedrop::domain::OrderCode {
        let code: String =
            sqlx::query_scalar("SELECT o.code FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.id = ?")
                .bind(self.items[0])
                .fetch_one(&self.pool)
                .await
                .unwrap();
        coursedrop::domain::OrderCode::from_stored(code)
    }

    fn ctx(&self, smtp: &str) -> FinalizeContext<StaticToken> {
        FinalizeContext { pool: self.pool.clone(), drive: drive(&self.drive.base), mailer: mailer(smtp) }
    }

    async fn status(&self, item: u64) -> (String, String) {
        sqlx::query_as("SELECT i.status, o.status FROM order_items i JOIN orders o ON o.id = i.order_id WHERE i.id = ?")
            .bind(item)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn readers(&self, folder: &str) -> Vec<String> {
        drive(&self.drive.base).permissions(folder).await.unwrap().into_iter().filter_map(|p| p.email_address).collect()
    }
}

fn event(item: u64, id: &str) -> SqsEvent {
    let mut e = SqsEvent::default();
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(format!("{{\"item_id\":{item}}}"));
    e.records.push(m);
    e
}

fn failures(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

fn message_id(raw: &str) -> String {
    raw.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .map(|l| l[11..].trim().to_string())
        .unwrap_or_default()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_same_message_three_times_sends_one_email_and_shares_once(pool: MySqlPool) {
    let h = harness(pool, 1, "vi", "gmail.com").await;
    let ctx = h.ctx(&testing::smtp_url());
    for i in 0..3 {
        assert!(failures(&handle(&ctx, event(h.items[0], &format!("m{i}"))).await).is_empty());
    }
    assert_eq!(testing::mails_to(&h.email).len(), 1);
    assert_eq!(h.readers(&h.folders[0]).await, vec![h.email.clone()]);
    assert_eq!(h.status(h.items[0]).await, ("completed".into(), "completed".into()));
    let sent: (Option<String>, bool) =
        sqlx::query_as("SELECT email_message_id, email_sent_at IS NOT NULL FROM order_items WHERE id = ?")
            .bind(h.items[0])
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(Some(message_id(&testing::mails_to(&h.email)[0])), sent.0, "the recorded Message-ID is the one sent");
    assert!(sent.1);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_email_reads_in_the_orders_language_with_link_and_code(pool: MySqlPool) {
    for (lang, phrase) in [("vi", "Cảm ơn bạn đã mua khoá học"), ("en", "Thank you for buying")] {
        let h = harness(pool.clone(), 1, lang, "gmail.com").await;
        handle(&h.ctx(&testing::smtp_url()), event(h.items[0], "m")).await;
        let mails = testing::mails_to(&h.email);
        assert_eq!(mails.len(), 1);
        let (text, html) = testing::mail_parts(&mails[0]);
        // What a mail client shows: entities decoded (the template escapes `/` and `&`).
        let html = html.replace("&#x2f;", "/").replace("&amp;", "&");
        let (code, link): (String, String) = sqlx::query_as(
            "SELECT o.code, i.drive_link FROM order_items i JOIN orders o ON o.id = i.order_id WHERE i.id = ?",
        )
        .bind(h.items[0])
        .fetch_one(&h.pool)
        .await
        .unwrap();
        for (kind, body) in [("text", &text), ("html", &html)] {
            assert!(body.contains(phrase), "{lang} {kind}: {body}");
            assert!(body.contains(&code) && body.contains(&link), "{lang} {kind} has the code and the link");
            assert!(body.contains("hotro@seller.vn"), "{lang} {kind} has the support contact");
            assert!(body.contains("Học Rust cùng Lan"), "{lang} {kind} names the seller");
            assert!(body.contains("https://zalo.me/0912345678"), "{lang} {kind} has the seller's Zalo");
        }
        // The mail is from the seller, by name.
        let from = mails[0].lines().find(|l| l.starts_with("From:")).unwrap();
        assert!(from.contains("=?utf-8?") || from.contains("Lan"), "{from}");
        assert!(html.contains(&format!("href=\"{link}\"")));
    }
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_crash_before_sending_still_sends_exactly_one_email(pool: MySqlPool) {
    let h = harness(pool, 1, "vi", "gmail.com").await;
    // The Message-ID was fixed, then the function died before sending.
    sqlx::query("UPDATE order_items SET email_message_id = '<delivery.fixed@coursedrop.local>' WHERE id = ?")
        .bind(h.items[0])
        .execute(&h.pool)
        .await
        .unwrap();
    handle(&h.ctx(&testing::smtp_url()), event(h.items[0], "m")).await;
    let mails = testing::mails_to(&h.email);
    assert_eq!(mails.len(), 1);
    assert_eq!(message_id(&mails[0]), "<delivery.fixed@coursedrop.local>");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_crash_after_sending_resends_with_the_same_message_id(pool: MySqlPool) {
    let h = harness(pool, 1, "vi", "gmail.com").await;
    handle(&h.ctx(&testing::smtp_url()), event(h.items[0], "m1")).await;
    // The one window no system closes: the SMTP server took the mail, the record was lost.
    sqlx::query("UPDATE order_items SET email_sent_at = NULL, status = 'delivered' WHERE id = ?")
        .bind(h.items[0])
        .execute(&h.pool)
        .await
        .unwrap();
    handle(&h.ctx(&testing::smtp_url()), event(h.items[0], "m2")).await;
    let ids: Vec<String> = testing::mails_to(&h.email).iter().map(|m| message_id(m)).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "mail clients fold the two");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn with_smtp_down_the_item_waits_and_is_sent_once_smtp_is_back(pool: MySqlPool) {
    let h = harness(pool, 1, "vi", "gmail.com").await;
    let down = handle(&h.ctx("smtp://127.0.0.1:9"), event(h.items[0], "m")).await;
    assert_eq!(failures(&down), vec!["m"], "retried, not lost");
    assert_eq!(h.status(h.items[0]).await.0, "delivered");
    assert!(testing::mails_to(&h.email).is_empty());
    assert!(failures(&handle(&h.ctx(&testing::smtp_url()), event(h.items[0], "m")).await).is_empty());
    assert_eq!(testing::mails_to(&h.email).len(), 1);
    assert_eq!(h.status(h.items[0]).await.0, "completed");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_address_without_a_google_account_is_shared_with_notification(pool: MySqlPool) {
    let h = harness(pool, 1, "vi", "no-google.example").await;
    assert!(failures(&handle(&h.ctx(&testing::smtp_url()), event(h.items[0], "m")).await).is_empty());
    assert_eq!(h.readers(&h.folders[0]).await, vec![h.email.clone()]);
    assert_eq!(h.status(h.items[0]).await.0, "completed");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_order_completes_with_its_last_item_and_closed_orders_get_nothing(pool: MySqlPool) {
    let h = harness(pool.clone(), 2, "vi", "gmail.com").await;
    let ctx = h.ctx(&testing::smtp_url());
    handle(&ctx, event(h.items[0], "a")).await;
    assert_eq!(h.status(h.items[0]).await, ("completed".into(), "paid".into()));
    handle(&ctx, event(h.items[1], "b")).await;
    assert_eq!(h.status(h.items[1]).await, ("completed".into(), "completed".into()));

    let refunded = harness(pool, 1, "vi", "gmail.com").await;
    sqlx::query("UPDATE orders SET status = 'refunded'").execute(&refunded.pool).await.ok();
    sqlx::query("UPDATE orders o JOIN order_items i ON i.order_id = o.id SET o.status = 'refunded' WHERE i.id = ?")
        .bind(refunded.items[0])
        .execute(&refunded.pool)
        .await
        .unwrap();
    handle(&refunded.ctx(&testing::smtp_url()), event(refunded.items[0], "r")).await;
    assert!(testing::mails_to(&refunded.email).is_empty(), "a refunded order never gets a delivery email");
    assert!(refunded.readers(&refunded.folders[0]).await.is_empty());
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_refund_removes_access_revokes_items_and_nothing_more_is_sent(pool: MySqlPool) {
    let h = harness(pool, 2, "vi", "gmail.com").await;
    let ctx = h.ctx(&testing::smtp_url());
    handle(&ctx, event(h.items[0], "a")).await; // one course shared and emailed, one not yet
    assert_eq!(h.readers(&h.folders[0]).await, vec![h.email.clone()]);
    let code = h.order_code().await;

    let report =
        coursedrop::app::refund::refund(&h.pool, &ctx.drive, &code, "operator:lan", "buyer asked").await.unwrap();
    assert_eq!((report.items_revoked, report.permissions_removed, report.folders_left.len()), (2, 1, 0));
    assert!(h.readers(&h.folders[0]).await.is_empty());
    assert_eq!(h.status(h.items[0]).await, ("revoked".into(), "refunded".into()));
    assert_eq!(h.status(h.items[1]).await.0, "revoked");
    let payments_kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_events WHERE to_status = 'revoked'")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(payments_kept, 2, "each revocation is on the timeline");

    // The second item's finalize message arrives late: nothing is shared or sent.
    assert!(failures(&handle(&ctx, event(h.items[1], "b")).await).is_empty());
    assert_eq!(testing::mails_to(&h.email).len(), 1, "only the email sent before the refund");
    assert!(h.readers(&h.folders[1]).await.is_empty());
    // Refunding again is harmless.
    let again = coursedrop::app::refund::refund(&h.pool, &ctx.drive, &code, "operator:lan", "again").await.unwrap();
    assert_eq!((again.items_revoked, again.permissions_removed), (0, 0));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn items_of_one_order_finalized_at_once_still_complete_the_order(pool: MySqlPool) {
    // One batch holding every item of the order: the records are worked concurrently, as Lambda
    // delivers them. Each transaction used to see the others' items still open (found by make chaos).
    for round in 0..5 {
        let h = harness(pool.clone(), 4, "vi", "gmail.com").await;
        let mut batch = SqsEvent::default();
        for (i, item) in h.items.iter().enumerate() {
            batch.records.extend(event(*item, &format!("r{round}-{i}")).records);
        }
        assert!(failures(&handle(&h.ctx(&testing::smtp_url()), batch).await).is_empty());
        for item in &h.items {
            assert_eq!(h.status(*item).await, ("completed".into(), "completed".into()), "round {round}");
        }
        assert_eq!(testing::mails_to(&h.email).len(), 4);
    }
}

/// Two runs of the same item at the same moment (a redelivered message while the first is
/// still at work) send one email: the first takes the item's lease, the other is told to
/// retry, and the retry finds the item completed.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn two_runs_of_one_item_at_once_send_one_email(pool: MySqlPool) {
    let h = harness(pool, 4, "vi", "gmail.com").await;
    let ctx = h.ctx(&testing::smtp_url());
    for (n, item) in h.items.iter().enumerate() {
        let (a, b) =
            tokio::join!(handle(&ctx, event(*item, &format!("a{n}"))), handle(&ctx, event(*item, &format!("b{n}"))));
        let retried = failures(&a).len() + failures(&b).len();
        assert!(retried <= 1, "item {item}: {retried} runs asked to be retried");
        // The message that was told to retry comes back.
        handle(&ctx, event(*item, &format!("c{n}"))).await;
        assert_eq!(h.status(*item).await.0, "completed");
    }
    assert_eq!(testing::mails_to(&h.email).len(), h.items.len(), "one email per item");
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_items WHERE lease_owner IS NOT NULL")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(held, 0, "no lease left behind");
}

/// A refund racing finalize, many times, half of them inside the share's own window: whichever wins, a refunded item
/// ends with no permission for the buyer, and at most the one email that was sent before the
/// refund took hold; once refunded, later runs share and send nothing.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_refund_racing_finalize_always_leaves_no_access(pool: MySqlPool) {
    for round in 0..12 {
        let h = harness(pool.clone(), 1, "vi", "gmail.com").await;
        let ctx = h.ctx(&testing::smtp_url());
        let code = h.order_code().await;
        // Sharing takes 300 ms to land; the refund starts while it is under way (the old code's
        // window: the refund listed no permission yet, finalize's share then landed and stayed),
        // or at a random moment around it.
        h.drive.emu.set_faults(drive_emulator::Faults { permission_delay_ms: 300, ..Default::default() });
        let delay = Duration::from_millis(if round % 2 == 0 { 120 } else { rand::random_range(0..400) });
        let (_, refunded) = tokio::join!(handle(&ctx, event(h.items[0], "a")), async {
            tokio::time::sleep(delay).await;
            coursedrop::app::refund::refund(&h.pool, &ctx.drive, &code, "operator:lan", "race").await
        });
        let report = refunded.unwrap();
        assert!(report.folders_left.is_empty(), "round {round}: {report:?}");
        // A finalize message that comes after changes nothing.
        handle(&ctx, event(h.items[0], "late")).await;
        assert_eq!(h.status(h.items[0]).await, ("revoked".into(), "refunded".into()), "round {round}");
        assert!(h.readers(&h.folders[0]).await.is_empty(), "round {round} ({delay:?}): the refunded buyer kept access");
        assert!(testing::mails_to(&h.email).len() <= 1, "round {round}: more than one email");
    }
}

/// Drive lists an account's own address, not always the one it was shared with (a
/// googlemail.com address is listed as gmail.com): a refund removes the permission finalize
/// recorded by its id, so access never silently stays.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_refund_removes_access_by_permission_id_whatever_address_drive_lists(pool: MySqlPool) {
    let h = harness(pool, 1, "en", "googlemail.com").await;
    let ctx = h.ctx(&testing::smtp_url());
    handle(&ctx, event(h.items[0], "a")).await;
    assert_eq!(h.status(h.items[0]).await.0, "completed");
    let listed = h.readers(&h.folders[0]).await;
    assert_eq!(listed, vec![h.email.replace("@googlemail.com", "@gmail.com")], "Drive lists the account's address");
    let code = h.order_code().await;
    let report =
        coursedrop::app::refund::refund(&h.pool, &ctx.drive, &code, "operator:lan", "buyer asked").await.unwrap();
    assert_eq!(report.permissions_removed, 1);
    assert!(h.readers(&h.folders[0]).await.is_empty(), "access stayed after the refund");
}

/// A permission the seller gave by hand: `role` for `email` on `folder`.
async fn seller_shares(base: &str, folder: &str, email: &str, role: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{base}/drive/v3/files/{folder}/permissions?sendNotificationEmail=false"))
        .bearer_auth("emulator-token")
        .json(&serde_json::json!({"role": role, "type": "user", "emailAddress": email}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

async fn roles(h: &Harness, folder: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = drive(&h.drive.base)
        .permissions(folder)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p.email_address.map(|e| (e, p.role)))
        .collect();
    v.sort();
    v
}

/// A course delivered by sharing one folder (the seller's own, in share mode): the buyer has
/// two paid orders of it, and the seller's assistant edits it. Refunding one order leaves
/// the buyer's access (the other order still holds it); refunding the second takes it; the
/// assistant's permission, which we never made, survives both.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn only_permissions_we_made_are_taken_back_and_a_second_order_keeps_its_access(pool: MySqlPool) {
    let h = harness(pool, 1, "vi", "gmail.com").await;
    let ctx = h.ctx(&testing::smtp_url());
    let folder = h.folders[0].clone();
    seller_shares(&h.drive.base, &folder, "assistant@seller.vn", "writer").await;
    let (code_b, b) = testing::pending_order(&h.pool, &[100_000], 30).await;
    sqlx::query("UPDATE orders SET status = 'paid', email = ? WHERE id = ?")
        .bind(&h.email)
        .bind(b.order_id)
        .execute(&h.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE order_items SET status = 'delivered', drive_folder_id = ?,
           drive_link = (SELECT l FROM (SELECT drive_link AS l FROM order_items WHERE id = ?) x) WHERE id = ?",
    )
    .bind(&folder)
    .bind(h.items[0])
    .bind(b.item_ids[0])
    .execute(&h.pool)
    .await
    .unwrap();
    handle(&ctx, event(h.items[0], "a")).await;
    handle(&ctx, event(b.item_ids[0], "b")).await;
    let assistant = ("assistant@seller.vn".to_string(), "writer".to_string());
    let buyer = (h.email.clone(), "reader".to_string());
    assert_eq!(roles(&h, &folder).await, {
        let mut v = vec![assistant.clone(), buyer.clone()];
        v.sort();
        v
    });

    let a = coursedrop::app::refund::refund(&h.pool, &ctx.drive, &h.order_code().await, "operator:lan", "asked").await;
    assert_eq!(a.unwrap().permissions_removed, 0, "the other order still holds the buyer's access");
    assert!(roles(&h, &folder).await.contains(&buyer));
    let b = coursedrop::app::refund::refund(&h.pool, &ctx.drive, &code_b, "operator:lan", "asked").await.unwrap();
    assert_eq!(b.permissions_removed, 1);
    assert_eq!(roles(&h, &folder).await, vec![assistant], "the seller's own permission is never ours to remove");
}

/// The buyer's address could already edit the folder (the seller gave it by hand): finalize
/// takes that as the access, changes nothing on it, and a refund leaves it as it was.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn access_the_address_had_already_is_kept_as_it_was(pool: MySqlPool) {
    let h = harness(pool, 1, "en", "gmail.com").await;
    let ctx = h.ctx(&testing::smtp_url());
    seller_shares(&h.drive.base, &h.folders[0], &h.email, "writer").await;
    assert!(failures(&handle(&ctx, event(h.items[0], "a")).await).is_empty());
    assert_eq!(h.status(h.items[0]).await.0, "completed");
    let report = coursedrop::app::refund::refund(&h.pool, &ctx.drive, &h.order_code().await, "operator:lan", "x").await;
    assert_eq!(report.unwrap().permissions_removed, 0);
    assert_eq!(roles(&h, &h.folders[0]).await, vec![(h.email.clone(), "writer".to_string())]);
}

/// Drive is down when the order is refunded: the refund still revokes everything, and the
/// access it could not take back is a finalize-queue message (written with the refund), which
/// takes it back once Drive answers and is then consumed, so the sweeper sends it no more.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn access_a_refund_could_not_take_back_is_retried_through_the_queue(pool: MySqlPool) {
    let h = harness(pool, 1, "vi", "gmail.com").await;
    let ctx = h.ctx(&testing::smtp_url());
    handle(&ctx, event(h.items[0], "a")).await;
    assert_eq!(h.readers(&h.folders[0]).await, vec![h.email.clone()]);

    h.drive.emu.set_faults(drive_emulator::Faults { rate_503: 1.0, ..Default::default() });
    let report = coursedrop::app::refund::refund(&h.pool, &ctx.drive, &h.order_code().await, "operator:lan", "asked")
        .await
        .unwrap();
    h.drive.emu.set_faults(drive_emulator::Faults::default());
    assert_eq!((report.items_revoked, report.permissions_removed, report.folders_left.len()), (1, 0, 1));
    let take_back: Vec<_> = report.outbox.iter().filter(|m| m.queue == coursedrop::domain::Queue::Finalize).collect();
    assert_eq!(take_back.len(), 1, "the take-back's message, to publish now: {:?}", report.outbox);
    assert_eq!(take_back[0].body, format!("{{\"item_id\":{}}}", h.items[0]));
    assert_eq!(h.readers(&h.folders[0]).await, vec![h.email.clone()], "Drive was down: access still there");
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM outbox WHERE queue = 'finalize' AND item_id = ? AND consumed_at IS NULL",
        )
        .bind(h.items[0])
        .fetch_one(&h.pool)
        .await
        .unwrap()
    };
    assert_eq!(waiting().await, 1, "kept for the sweeper until done");

    // Drive down again: the message is reported for retry.
    h.drive.emu.set_faults(drive_emulator::Faults { rate_503: 1.0, ..Default::default() });
    assert_eq!(failures(&handle(&ctx, event(h.items[0], "b")).await), vec!["b".to_string()]);
    h.drive.emu.set_faults(drive_emulator::Faults::default());
    assert!(failures(&handle(&ctx, event(h.items[0], "c")).await).is_empty());
    assert!(h.readers(&h.folders[0]).await.is_empty(), "taken back once Drive answered");
    assert_eq!(waiting().await, 0, "consumed");
    assert_eq!(testing::mails_to(&h.email).len(), 1, "nothing more was sent");
}

/// A batch of ten messages on a function whose pool has one connection, with Drive slow to
/// share (0.8 s each: ten in turn would outlast the pool's 5 s wait): every item completes in
/// that one invocation. The address lock held across Drive's
/// calls is on a connection of its own, so the runs never wait on the pool for it.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_batch_of_ten_finalizes_on_a_one_connection_pool(pool: MySqlPool) {
    let h = harness(pool, 10, "vi", "gmail.com").await;
    h.drive.emu.set_faults(drive_emulator::Faults { permission_delay_ms: 800, ..Default::default() });
    let database: String = sqlx::query_scalar("SELECT DATABASE()").fetch_one(&h.pool).await.unwrap();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/coursedrop".into());
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
    let small = coursedrop::store::connect_with(options.database(&database), 1).await.unwrap();
    let ctx = FinalizeContext { pool: small, drive: drive(&h.drive.base), mailer: mailer(&testing::smtp_url()) };
    let mut batch = SqsEvent::default();
    for (n, item) in h.items.iter().enumerate() {
        batch.records.extend(event(*item, &format!("m{n}")).records);
    }
    assert!(failures(&handle(&ctx, batch).await).is_empty(), "no record worth retrying");
    for item in &h.items {
        assert_eq!(h.status(*item).await.0, "completed");
    }
    assert_eq!(testing::mails_to(&h.email).len(), 10);
}
