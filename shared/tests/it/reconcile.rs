//! Reconciliation against real MariaDB, local SQS and the bank emulator (SePay's and Casso's
//! transaction APIs as documented: paging, decimal-string amounts, 429s, outages).

use std::time::Duration;

use bank_emulator::{Config, Emulator, Faults, Feed, ListOrder, NewTransfer};
use coursedrop::adapters::bank_api::Pacing;
use coursedrop::adapters::casso::CassoApi;
use coursedrop::adapters::sepay_api::SepayApi;
use coursedrop::app::payments::{self, Arrival, PaymentSettings};
use coursedrop::app::reconcile::{self, PassReport};
use coursedrop::domain::{CodeCharset, CodePattern, Queue};
use coursedrop::testing;
use sqlx::MySqlPool;

const ACCOUNT: &str = "0123456789";

fn settings() -> PaymentSettings {
    PaymentSettings {
        pattern: CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).unwrap(),
        account_number: ACCOUNT.into(),
    }
}

/// SePay's pace: the client's own spacing (2/s) unless a test wants the emulator's 429s.
fn pacing(min_interval_ms: u64) -> Pacing {
    Pacing { min_interval: Duration::from_millis(min_interval_ms), ..Pacing::default() }
}

async fn emulator() -> (Emulator, String) {
    emulator_from(80_000).await
}

async fn emulator_from(first_id: i64) -> (Emulator, String) {
    let emu = Emulator::new(Config { first_id, ..Config::default() });
    let (base, _) = emu.clone().spawn(0).await.unwrap();
    (emu, base)
}

fn sepay(base: &str, limit: u32, pace_ms: u64) -> SepayApi {
    SepayApi::new(base, &Config::default().sepay_token, Some(ACCOUNT.into()), limit, pacing(pace_ms))
}

fn casso(base: &str, page_size: u32) -> CassoApi {
    CassoApi::new(base, &Config::default().casso_api_key, page_size, pacing(0))
}

fn transfer(feed: Feed, amount: i64, content: &str, minutes_ago: i64) -> NewTransfer {
    NewTransfer {
        feed,
        amount_vnd: amount,
        content: content.into(),
        account_number: ACCOUNT.into(),
        at: Some(bank_emulator::now_in_vietnam() - chrono::Duration::minutes(minutes_ago)),
        amount_text: None,
        sub_account: None,
    }
}

async fn order_status(pool: &MySqlPool, code: &str) -> (String, i64) {
    sqlx::query_as("SELECT status, paid_vnd FROM orders WHERE code = ?").bind(code).fetch_one(pool).await.unwrap()
}

async fn count(pool: &MySqlPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(pool).await.unwrap()
}

async fn stored_cursor(pool: &MySqlPool, gateway: &str) -> Option<String> {
    coursedrop::store::reconcile::cursor(pool, gateway).await.unwrap().map(|c| c.cursor_value)
}

async fn pass_sepay(
    pool: &MySqlPool,
    feed: &SepayApi,
    publisher: &impl coursedrop::adapters::queue::Publisher,
) -> PassReport {
    reconcile::pass(pool, feed, &settings(), publisher, None, 3).await.unwrap()
}

/// The webhook never got through (our endpoint unreachable for an hour while the buyer
/// paid): the next pass finds the transfer, pays the order, and the pipeline starts.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_transfer_whose_webhook_never_arrived_pays_its_order_at_the_next_pass(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let (emu, base) = emulator().await;
    let (code, created) = testing::pending_order(&pool, &[300_000, 199_000], 120).await;
    // Someone else's transfer and ours, an hour ago; no webhook was ever delivered.
    emu.book(&transfer(Feed::Sepay, 50_000, "tien an trua", 70));
    let id = emu.book(&transfer(
        Feed::Sepay,
        499_000,
        &format!("MBVCB.123.{}.CT tu NGUYEN VAN A", code.as_str().to_lowercase()),
        60,
    ));
    let feed = sepay(&base, 5000, 500);

    let report = pass_sepay(&pool, &feed, &publisher).await;
    assert_eq!((report.listed, report.already_recorded, report.found.len()), (2, 0, 2), "{report:?}");
    let ours = report.found.iter().find(|f| f.id == id.to_string()).unwrap();
    assert_eq!((ours.order_code.as_deref(), ours.outcome.as_str()), (Some(code.as_str()), "paid its order"));
    assert_eq!(order_status(&pool, code.as_str()).await, ("paid".into(), 499_000));
    let arrived: String =
        sqlx::query_scalar("SELECT arrived_by FROM payments WHERE feed = 'sepay' AND feed_txn_id = ?")
            .bind(id.to_string())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(arrived, "reconcile");
    // The pipeline runs: one enroll message per item.
    let mut messages = testing::drain(&sqs, &urls[&Queue::Enroll]).await;
    messages.sort();
    let mut expected: Vec<String> = created.item_ids.iter().map(|i| format!("{{\"item_id\":{i}}}")).collect();
    expected.sort();
    assert_eq!(messages, expected);
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM order_events WHERE order_id = ? AND kind = 'payment_received'")
            .bind(created.order_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(detail.contains("found by reconciliation"), "{detail}");

    // The cursor moved past it: the next pass lists nothing and changes nothing.
    assert_eq!(stored_cursor(&pool, "sepay").await, Some((id + 1).to_string()));
    let again = pass_sepay(&pool, &feed, &publisher).await;
    assert_eq!((again.listed, again.found.len()), (0, 0), "{again:?}");
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM payments").await, 2);
}

/// The webhook and a pass record the same transfer at the same moment: one payment, one
/// change of the order, one message per item.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn webhook_and_reconciliation_at_once_record_one_payment(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let (emu, base) = emulator().await;
    for round in 0..5 {
        let (code, created) = testing::pending_order(&pool, &[250_000, 250_000], 60).await;
        let id = emu.book(&transfer(Feed::Sepay, 500_000, code.as_str(), 1));
        let webhook_body = serde_json::json!({"id": id, "gateway": "MBBank", "accountNumber": ACCOUNT,
            "content": code.as_str(), "transferType": "in", "transferAmount": 500_000})
        .to_string();
        let tx = coursedrop::adapters::sepay::SepayTransaction::parse(webhook_body.as_bytes())
            .unwrap()
            .into_transfer(webhook_body.clone());
        let feed = sepay(&base, 5000, 0);
        let webhooks = (0..3).map(|_| {
            let (pool, tx, publisher) = (pool.clone(), tx.clone(), &publisher);
            async move {
                let recorded = payments::record(&pool, &tx, &settings(), Arrival::Webhook).await.unwrap();
                coursedrop::app::relay::publish_all(&pool, publisher, &recorded.outbox).await;
            }
        });
        let (_, report) = tokio::join!(futures_util::future::join_all(webhooks), async {
            reconcile::pass(&pool, &feed, &settings(), &publisher, Some(bank_emulator::now_in_vietnam().date()), 3)
                .await
                .unwrap()
        });
        assert_eq!(report.found.len() + report.already_recorded, report.listed, "round {round}: {report:?}");
        let one = |sql: &str| {
            let pool = pool.clone();
            let sql = sql.replace("{id}", &id.to_string()).replace("{order}", &created.order_id.to_string());
            async move { count(&pool, &sql).await }
        };
        assert_eq!(one("SELECT COUNT(*) FROM payments WHERE feed_txn_id = '{id}'").await, 1, "round {round}");
        assert_eq!(
            one("SELECT COUNT(*) FROM order_events WHERE order_id = {order} AND kind = 'order_status' AND to_status = 'paid'")
                .await,
            1,
            "round {round}"
        );
        assert_eq!(order_status(&pool, code.as_str()).await, ("paid".into(), 500_000), "round {round}");
        let messages = testing::drain(&sqs, &urls[&Queue::Enroll]).await;
        assert_eq!(messages.len(), 2, "round {round}: one message per item, got {messages:?}");
    }
}

/// Thousands of transfers over several pages, with SePay's 429s hit mid-listing (the client
/// let loose at full speed): it waits as told, skips nothing, and the cursor ends right
/// after the newest. Both orders SePay might answer in.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn thousands_of_transfers_over_pages_through_429s_and_nothing_is_skipped(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    for (order, total, limit, first_id) in
        [(ListOrder::Desc, 5_300, 5000, 100_000), (ListOrder::Asc, 2_600, 700, 900_000)]
    {
        let (emu, base) = emulator_from(first_id).await;
        emu.set_sepay_order(order);
        let (code, _) = testing::pending_order(&pool, &[100_000], 600).await;
        let mut newest = 0;
        for i in 0..total {
            // One a second, spread over the last two days; one of them pays our order.
            let content = if i == total / 2 { code.to_string() } else { format!("chuyen khoan {i}") };
            newest = emu.book(&transfer(Feed::Sepay, 10_000 + i as i64, &content, 2 * 24 * 60 - (i as i64) / 60));
        }
        // The amount of the paying one is 10_000 + total/2; make the order's total match.
        sqlx::query("UPDATE orders SET total_vnd = ? WHERE code = ?")
            .bind(10_000 + (total / 2) as i64)
            .bind(code.as_str())
            .execute(&pool)
            .await
            .unwrap();
        let feed = sepay(&base, limit, 0);
        let report = reconcile::pass(
            &pool,
            &feed,
            &settings(),
            &publisher,
            Some(bank_emulator::now_in_vietnam().date() - chrono::Duration::days(3)),
            3,
        )
        .await
        .unwrap();
        let stats = emu.stats();
        assert_eq!(report.listed, total, "{order:?}: listed");
        assert!(report.requests >= 2, "{order:?}: several pages, {} requests", report.requests);
        assert!(stats.sepay_429s > 0, "{order:?}: the listing never met a 429: {stats:?}");
        assert_eq!(report.found.len(), total, "{order:?}");
        assert_eq!(order_status(&pool, code.as_str()).await.0, "paid", "{order:?}");
        assert_eq!(stored_cursor(&pool, "sepay").await, Some((newest + 1).to_string()), "{order:?}");
        sqlx::query("DELETE FROM reconcile_cursors").execute(&pool).await.unwrap();
    }
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM payments").await, 5_300 + 2_600);
}

/// The API down: the pass fails, the cursor stays; when it is back, the next pass records
/// what arrived meanwhile.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_api_down_leaves_the_cursor_and_the_next_pass_catches_up(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    let (emu, base) = emulator().await;
    let feed = sepay(&base, 5000, 0);
    let first = emu.book(&transfer(Feed::Sepay, 10_000, "truoc", 30));
    pass_sepay(&pool, &feed, &publisher).await;
    assert_eq!(stored_cursor(&pool, "sepay").await, Some((first + 1).to_string()));

    let (code, _) = testing::pending_order(&pool, &[120_000], 60).await;
    let missed = emu.book(&transfer(Feed::Sepay, 120_000, code.as_str(), 5));
    emu.set_faults(Faults { down: true, ..Faults::default() });
    let failed = reconcile::pass(&pool, &feed, &settings(), &publisher, None, 3).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        stored_cursor(&pool, "sepay").await,
        Some((first + 1).to_string()),
        "the cursor moved while the API was down"
    );
    assert_eq!(order_status(&pool, code.as_str()).await.0, "pending");

    emu.set_faults(Faults::default());
    let report = pass_sepay(&pool, &feed, &publisher).await;
    assert_eq!(report.found.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), vec![missed.to_string()]);
    assert_eq!(order_status(&pool, code.as_str()).await.0, "paid");
    assert_eq!(stored_cursor(&pool, "sepay").await, Some((missed + 1).to_string()));
}

/// A fractional amount is refused loudly, never rounded: the others are recorded, the
/// cursor stays before the refused one, and every pass says so again.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_fractional_amount_is_refused_and_holds_the_cursor(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    let (emu, base) = emulator().await;
    let (code, _) = testing::pending_order(&pool, &[499_000], 60).await;
    let before = emu.book(&transfer(Feed::Sepay, 1_000, "a", 3));
    let odd = emu.book(&NewTransfer {
        amount_text: Some("499000.50".into()),
        sub_account: None,
        ..transfer(Feed::Sepay, 499_000, code.as_str(), 2)
    });
    let after = emu.book(&transfer(Feed::Sepay, 2_000, "b", 1));
    let feed = sepay(&base, 5000, 0);
    for _ in 0..2 {
        let report = pass_sepay(&pool, &feed, &publisher).await;
        assert_eq!(report.refused.len(), 1, "{report:?}");
        assert_eq!(report.refused[0].0, odd.to_string());
        assert!(report.refused[0].1.contains("fraction"), "{:?}", report.refused);
        assert_eq!(stored_cursor(&pool, "sepay").await, Some((before + 1).to_string()));
    }
    assert_eq!(order_status(&pool, code.as_str()).await, ("pending".into(), 0));
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT feed_txn_id FROM payments ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(recorded, vec![before.to_string(), after.to_string()]);
}

/// Casso: pages of records by date, a 429 waited out, and a transfer paying an order whose
/// code was made for SePay's pattern; a second pass re-lists from the day before its cursor
/// and records nothing twice.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn casso_pages_through_a_429_and_pays_an_order_made_for_sepays_code_pattern(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let (emu, base) = emulator().await;
    let (code, created) = testing::pending_order(&pool, &[350_000], 600).await;
    for i in 0..245 {
        let content = if i == 200 {
            format!("{} chuyen tien hoc phi", code.as_str().to_lowercase())
        } else {
            format!("giao dich {i}")
        };
        let amount = if i == 200 {
            350_000
        } else if i % 10 == 0 {
            -20_000
        } else {
            15_000
        };
        emu.book(&transfer(Feed::Casso, amount, &content, 3 * 24 * 60 - i * 10));
    }
    emu.set_faults(Faults { casso_429_next: 1, ..Faults::default() });
    let feed = casso(&base, 100);
    let report = reconcile::pass(&pool, &feed, &settings(), &publisher, None, 4).await.unwrap();
    assert_eq!((report.listed, report.found.len(), report.requests), (245, 245, 3), "{report:?}");
    assert_eq!(emu.stats().casso_429s, 1);
    assert_eq!(order_status(&pool, code.as_str()).await, ("paid".into(), 350_000));
    assert_eq!(
        testing::drain(&sqs, &urls[&Queue::Enroll]).await,
        vec![format!("{{\"item_id\":{}}}", created.item_ids[0])]
    );
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM payments WHERE feed = 'casso' AND transfer_type = 'out'").await, 24);
    let cursor = stored_cursor(&pool, "casso").await.unwrap();
    assert_eq!(cursor.len(), 10, "a day: {cursor}");

    let again = reconcile::pass(&pool, &feed, &settings(), &publisher, None, 4).await.unwrap();
    assert!(again.listed > 0 && again.found.is_empty(), "{again:?}");
    assert_eq!(again.already_recorded, again.listed);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM payments").await, 245);
}

/// A seller with SePay and Casso on one account: one feed's webhook records a transfer and
/// the other feed's reconciler lists it under its own id. In both directions it stays one
/// payment, the reconciler's report kept as a sighting; passes again change nothing.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn each_reconciler_after_the_other_feeds_webhook_records_one_payment(pool: MySqlPool) {
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let (emu, base) = emulator().await;
    let (code_a, _) = testing::pending_order(&pool, &[300_000], 60).await;
    let (code_b, _) = testing::pending_order(&pool, &[400_000], 60).await;
    let at = bank_emulator::now_in_vietnam() - chrono::Duration::minutes(5);
    let when = at.format("%Y-%m-%d %H:%M:%S").to_string();
    let (sepay_a, _) = emu.book_on_both_feeds(&transfer(Feed::Sepay, 300_000, code_a.as_str(), 5));
    let (sepay_b, casso_b) = emu.book_on_both_feeds(&transfer(Feed::Sepay, 400_000, code_b.as_str(), 5));

    // A: SePay's webhook (the bank's reference as the emulator books it), then Casso's reconciler.
    let body =
        serde_json::json!({"id": sepay_a, "gateway": "MBBank", "accountNumber": ACCOUNT, "transactionDate": when,
        "content": code_a.as_str(), "transferType": "in", "transferAmount": 300_000,
        "referenceCode": format!("FT{sepay_a:010}")})
        .to_string();
    let tx = coursedrop::adapters::sepay::SepayTransaction::parse(body.as_bytes()).unwrap().into_transfer(body.clone());
    let recorded = payments::record(&pool, &tx, &settings(), Arrival::Webhook).await.unwrap();
    coursedrop::app::relay::publish_all(&pool, &publisher, &recorded.outbox).await;
    // B: Casso's webhook, then SePay's reconciler.
    let casso_body = serde_json::json!({"error": 0, "data": {"id": casso_b, "reference": format!("FT{sepay_b:010}"),
        "description": code_b.as_str(), "amount": 400_000, "transactionDateTime": when, "accountNumber": ACCOUNT}});
    let tx = coursedrop::adapters::casso::webhook_transfer(&casso_body, &casso_body.to_string()).unwrap().unwrap();
    let recorded = payments::record(&pool, &tx, &settings(), Arrival::Webhook).await.unwrap();
    coursedrop::app::relay::publish_all(&pool, &publisher, &recorded.outbox).await;

    let today = Some(bank_emulator::now_in_vietnam().date());
    for pass in 0..2 {
        let by_casso = reconcile::pass(&pool, &casso(&base, 100), &settings(), &publisher, today, 4).await.unwrap();
        let by_sepay = reconcile::pass(&pool, &sepay(&base, 5000, 0), &settings(), &publisher, today, 3).await.unwrap();
        for report in [&by_casso, &by_sepay] {
            assert_eq!((report.listed, report.already_recorded), (2, 2), "pass {pass}: {report:?}");
            assert!(report.found.is_empty(), "pass {pass}: {report:?}");
        }
    }
    assert_eq!(order_status(&pool, code_a.as_str()).await, ("paid".into(), 300_000));
    assert_eq!(order_status(&pool, code_b.as_str()).await, ("paid".into(), 400_000));
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM payments").await, 2);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM payment_sightings WHERE arrived_by = 'reconcile'").await, 2);
    assert_eq!(testing::drain(&sqs, &urls[&Queue::Enroll]).await.len(), 2, "one enroll message per order");
}
