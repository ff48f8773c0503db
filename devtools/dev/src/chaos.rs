//! `make chaos`: 50 orders through the local stack while things break, then a check that
//! nothing was lost, doubled or given away.
//!
//! The stack runs as in `make dev` (API, webhook, enroll, finalize and the sweeper in this
//! process), except the deliver job, which is a child process so it can be killed. During the
//! run: every transfer is booked in the bank emulator's ledger (what SePay's and Casso's APIs
//! list), and its webhook arrives 3–10 times at once (retried like SePay retries until it
//! gets a 2xx) — except for a stretch of the run in which every webhook is dropped, which only
//! the reconciler (a pass every 5 s) can find. Every transfer is reported by both feeds, as for
//! a seller who connected SePay and Casso to one account: Casso's webhook comes 1–3 times
//! beside SePay's (for a sixth of the orders Casso's comes first); the job is killed with SIGKILL 5 times at random moments and
//! restarted; the Drive emulator fails 10 % of calls; moto is restarted once (queues, messages
//! and S3 objects are gone; the harness puts the infrastructure back as AWS would still have
//! it, and the sweeper recovers the lost messages) and MariaDB once.
//!
//! Two of the five courses are kept in the seller's own Drive rather than S3: one delivered by
//! server-side copy, one by sharing the seller's folder.
//!
//! Also: the job is frozen (SIGSTOP) for longer than its leases while a duplicate message for
//! each of its items arrives and a second job takes them over; and a paid order is refunded
//! while one of its items is being delivered.
//!
//! Pass: every paid order completed (but the refunded one); each delivery email exactly once; every Drive folder holds
//! each source file exactly once with its MD5; each buyer of the shared course a reader of the
//! seller's folder, and nobody else; every transfer kept as one payment however many times
//! and by however many feeds it was reported (unmatched ones listed, none held); the
//! dead-letter queues empty; no unpaid order delivered; every dropped webhook's payment found
//! by reconciliation. Exit status 1 on any violation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::source::DeliveryMode;
use coursedrop::app::config::{self, Vars};
use coursedrop::domain::{CourseSlug, Queue, Status, Vnd};
use coursedrop::store::catalog;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::stack;

const BUCKET: &str = "coursedrop-chaos";
const CASSO_KEY: &str = "chaos-casso-checksum-key";
const PREFIX: &str = "coursedrop-chaos-";

/// The chaos catalog: slug, price, files (path, size). Sizes straddle the 1 MiB chunk the job
/// is given here, so uploads span several chunks and a kill lands mid-file.
/// A course's files: path under its prefix, size in bytes.
type Files = &'static [(&'static str, usize)];
const COURSES: &[(&str, i64, Files)] = &[
    ("chaos-rust", 1_990_000, &[("01/bai-01.mp4", 2_621_440 + 17), ("01/slides.pdf", 1_024), ("trong.txt", 0)]),
    (
        "chaos-sql",
        990_000,
        &[("bai-01.mp4", 1_572_864), ("du-lieu/mau.sql", 300_000), ("du-lieu/sau/x.bin", 700_001), ("a.md", 10)],
    ),
    ("chaos-aws", 1_490_000, &[("lambda/bai.mp4", 3_355_443), ("lambda/code.rs", 5_000)]),
    (
        "chaos-drive",
        790_000,
        &[("video/bai-01.mp4", 1_800_000), ("video/sau/bai-02.mp4", 900_000), ("doc.pdf", 12_345)],
    ),
    ("chaos-live", 590_000, &[("live/buoi-01.mp4", 1_200_000), ("ghi-chu.txt", 77)]),
];

/// The courses kept in the seller's Drive (shared with our identity), and how each is delivered;
/// the others are in S3.
const DRIVE_COURSES: &[(&str, DeliveryMode)] =
    &[("chaos-drive", DeliveryMode::Copy), ("chaos-live", DeliveryMode::Share)];

fn drive_mode(slug: &str) -> Option<DeliveryMode> {
    DRIVE_COURSES.iter().find(|(s, _)| *s == slug).map(|(_, m)| *m)
}

/// A course's files as the seller keeps them in Drive: its folder (shared with our identity as
/// viewer for copy, editor for share) and the tree. Answers the folder's id.
fn seed_drive_course(emu: &drive_emulator::Emulator, slug: &str, files: Files, mode: DeliveryMode) -> Result<String> {
    use drive_emulator::{FOLDER_MIME, IDENTITY, Seed, SeedShare};
    let role = if mode == DeliveryMode::Share { "writer" } else { "reader" };
    let folder = |name: &str, parent: Option<String>, share: bool| {
        emu.seed(Seed {
            name: name.into(),
            parent,
            mime_type: Some(FOLDER_MIME.into()),
            share_with: if share { vec![SeedShare::new(IDENTITY, role)] } else { vec![] },
            ..Seed::default()
        })
    };
    let root = folder(slug, None, true)?;
    let mut folders: HashMap<String, String> = HashMap::from([(String::new(), root.clone())]);
    for (path, size) in files {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let mut at = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            let parent = folders[&at].clone();
            at = if at.is_empty() { part.to_string() } else { format!("{at}/{part}") };
            if !folders.contains_key(&at) {
                folders.insert(at.clone(), folder(part, Some(parent), false)?);
            }
        }
        emu.seed(Seed {
            name: name.into(),
            parent: Some(folders[dir].clone()),
            bytes: Some(file_bytes(slug, path, *size)),
            ..Seed::default()
        })?;
    }
    Ok(root)
}

fn file_bytes(slug: &str, path: &str, size: usize) -> Vec<u8> {
    let seed = slug.len() * 31 + path.len() * 7;
    (0..size).map(|i| ((i.wrapping_mul(2_654_435_761) >> 11) + seed) as u8).collect()
}

/// id, order code, email, email Message-ID, Drive folder, course slug.
type DeliveredItem = (u64, String, String, Option<String>, Option<String>, String);

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<bool> {
    let started = Instant::now();
    let n_orders: usize = vars.parse_or("CHAOS_ORDERS", 50)?;
    let timeout = Duration::from_secs(vars.parse_or("CHAOS_TIMEOUT_SECS", 600u64)?);
    let run_id: u32 = rand::random_range(0..1_000_000);
    let database_url = config::database_url(vars);
    let (pool, database) = stack::fresh_database(&database_url, "chaos", 16).await?;
    let chaos_db_url = format!("{}/{database}", database_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(""));
    let chaos_vars = Vars(|k: &str| match k {
        "QUEUE_NAME_PREFIX" => Some(PREFIX.into()),
        "ENROLL_LEASE" => Some("5s".into()),
        "CASSO_CHECKSUM_KEY" => Some(CASSO_KEY.into()),
        _ => vars.get(k),
    });
    // The webhook on a pool of its own, as each Lambda has: both feeds' deliveries of every
    // transfer at once would otherwise hold the connections the operator's refund needs.
    let webhook_pool = coursedrop::store::connect(&chaos_db_url, 8).await?;
    let pools = stack::Pools { bank_webhook: webhook_pool, ..stack::Pools::shared(&pool) };
    let stack = stack::build_with(&pools, &chaos_vars).await?;
    stack::purge_queues(&stack).await;
    let dead_letters = attach_dead_letter_queues(&stack).await?;
    let source = coursedrop::adapters::source::S3Source::from_vars(vars).await;
    put_course_files(&source).await?;
    {
        let mut conn = pool.acquire().await?;
        sqlx::query("UPDATE courses SET active = FALSE").execute(&mut *conn).await?;
        for (slug, price, _) in COURSES.iter().filter(|(s, ..)| drive_mode(s).is_none()) {
            let slug = CourseSlug::parse(slug)?;
            let source = format!("s3://{BUCKET}/courses/{slug}/");
            let title = format!("Khoá {slug}");
            catalog::upsert(
                &mut conn,
                &catalog::NewCourse {
                    slug: &slug,
                    title: &title,
                    price: Vnd::new(*price)?,
                    source: &source,
                    delivery_mode: DeliveryMode::Copy,
                    lms_course_id: None,
                },
            )
            .await?;
        }
    }

    let drive_dir = std::path::PathBuf::from(".local/drive-chaos");
    let _ = std::fs::remove_dir_all(&drive_dir);
    let (drive, drive_base) = stack::spawn_drive(&drive_dir, 0).await?;
    let mut seller_folders = HashMap::new();
    {
        let mut conn = pool.acquire().await?;
        for (slug, price, files) in COURSES {
            let Some(mode) = drive_mode(slug) else { continue };
            let folder = seed_drive_course(&drive, slug, files, mode)?;
            let source = format!("drive://{folder}");
            let title = format!("Khoá {slug}");
            let course_slug = CourseSlug::parse(slug)?;
            catalog::upsert(
                &mut conn,
                &catalog::NewCourse {
                    slug: &course_slug,
                    title: &title,
                    price: Vnd::new(*price)?,
                    source: &source,
                    delivery_mode: mode,
                    lms_course_id: None,
                },
            )
            .await?;
            seller_folders.insert(*slug, folder);
        }
    }
    drive.set_faults(drive_emulator::Faults::spread(0.10));
    stack::spawn_enroll(&stack, pool.clone(), &chaos_vars)?;
    stack::spawn_finalize(&stack, pool.clone(), &chaos_vars, &drive_base).await?;
    let deadlines = coursedrop::app::sweeper::Deadlines {
        enrolling: Duration::from_secs(20),
        enrolled: Duration::from_secs(20),
        delivering_without_progress: Duration::from_secs(30),
        delivered: Duration::from_secs(20),
    };
    // Messages moto loses on a restart are published again within seconds, not minutes.
    let timing = coursedrop::app::sweeper::OutboxTiming { grace_secs: 2, republish_after_secs: 15 };
    stack::spawn_sweeper(pool.clone(), stack.publisher.clone(), Duration::from_secs(3), timing, deadlines, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, stack.router.clone()).into_future());

    // The bank: every transfer enters its ledger; Casso's webhooks are posted by the
    // emulator, signed; the reconciler lists both feeds' APIs every 5 s.
    let casso_hook = bank_emulator::Webhook { url: format!("{base}/webhooks/casso"), key: CASSO_KEY.into() };
    let (bank, bank_base) = stack::spawn_bank(0, None, Some(casso_hook)).await?;
    let bank_vars = stack::bank_vars(&chaos_vars, &bank_base, CASSO_KEY);
    stack::spawn_reconciler(
        pool.clone(),
        stack.publisher.clone(),
        config::feeds(&bank_vars)?,
        config::payment_settings(&bank_vars)?,
        Duration::from_secs(5),
    );

    let job = Arc::new(Mutex::new(DeliverJob::start(vars, &chaos_db_url, &drive_base)?));
    // A second worker, started when the first is frozen: it takes over the frozen one's items.
    let spare = Arc::new(Mutex::new(DeliverJob::prepared(job.lock().await.env.clone())));
    println!(
        "chaos: {n_orders} orders, stack on {base}, database {database}, Drive emulator {drive_base} (10 % faults)"
    );

    // Orders: 1–3 courses each; one in ten stays unpaid.
    let http = coursedrop::support::http_client::client_builder().timeout(Duration::from_secs(20)).build()?;
    let mut orders = Vec::new();
    for i in 0..n_orders {
        let k = rand::random_range(1..=3usize);
        let start = rand::random_range(0..COURSES.len());
        let chosen: Vec<&str> = (0..k).map(|j| COURSES[(start + j) % COURSES.len()].0).collect();
        let email = format!("chaos-{run_id}-{i}@example.com");
        let body = json!({"email": email, "courses": chosen});
        let order: Value =
            http.post(format!("{base}/orders")).json(&body).send().await?.error_for_status()?.json().await?;
        let code = order["code"].as_str().ok_or_else(|| anyhow!("no code in {order}"))?.to_string();
        let amount = order["amount_vnd"].as_i64().unwrap_or(0);
        orders.push((code, amount, email, i % 10 != 9));
    }

    // The outages, on their own schedule while payments and deliveries run.
    let kills = Arc::new(AtomicUsize::new(0));
    let refunded: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    // The items that were delivering when the job froze, and the frozen process's pid.
    let stalled: Arc<std::sync::Mutex<(Vec<u64>, u32)>> = Arc::default();
    let chaos = {
        let (job, kills, spare) = (job.clone(), kills.clone(), spare.clone());
        let (refunded, stalled) = (refunded.clone(), stalled.clone());
        let pool = pool.clone();
        let deliver_url =
            stack.queue_urls.iter().find(|(q, _)| *q == Queue::Deliver).map(|(_, u)| u.clone()).unwrap_or_default();
        let refund_drive = DriveClient::new(
            coursedrop::adapters::drive::DriveConfig::new(&drive_base),
            coursedrop::adapters::drive::StaticToken("emulator-token".into()),
        );
        let stack_sqs = stack.sqs.clone();
        let queue_names: Vec<String> = Queue::ALL.iter().map(|q| format!("{PREFIX}{}", q.as_str())).collect();
        let source = source.clone();
        let run_started = started;
        tokio::spawn(async move {
            let mut log = Vec::new();
            let plan = [
                (2u64, "kill"),
                // Deliveries run in the first seconds: both of these need one in progress.
                (0, "refund"),
                (0, "stall"),
                (6, "moto"),
                (5, "kill"),
                (8, "mariadb"),
                (6, "kill"),
                (7, "kill"),
                (9, "kill"),
            ];
            for (after, what) in plan {
                tokio::time::sleep(Duration::from_secs(after + rand::random_range(0..4u64))).await;
                let t = Instant::now();
                let outcome = match what {
                    "kill" => {
                        let mut j = job.lock().await;
                        j.kill().await;
                        kills.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        j.restart().map(|_| "deliver job killed (SIGKILL) and restarted".to_string())
                    }
                    "moto" => {
                        // The job is held while moto is empty: S3 losing the seller's files is
                        // moto's artefact, not an outage AWS has; the queues' loss is kept.
                        let mut j = job.lock().await;
                        j.kill().await;
                        let restarted = restart_moto(&stack_sqs, &queue_names, &source).await;
                        let started = j.restart();
                        restarted.and(started).map(|_| {
                            "moto and SQS restarted; queues and course files put back, their messages lost".to_string()
                        })
                    }
                    "stall" => {
                        // Heartbeats stop while the worker lives: its leases (8 s) and its
                        // messages' visibility (10 s) lapse, a duplicate message for each of
                        // its items arrives, and a second worker takes them over. Thawed, the
                        // first must find its leases gone and stop, writing nothing.
                        let j = job.lock().await;
                        // Frozen while it holds items (deliveries start once payments arrive).
                        let mut frozen: Vec<u64> = Vec::new();
                        for _ in 0..160 {
                            frozen = sqlx::query_scalar("SELECT id FROM order_items WHERE status = 'delivering'")
                                .fetch_all(&pool)
                                .await
                                .unwrap_or_default();
                            if !frozen.is_empty() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        let outcome = async {
                            let pid = j.signal("STOP")?;
                            stalled.lock().unwrap().1 = pid;
                            spare.lock().await.restart()?;
                            for id in &frozen {
                                stack_sqs
                                    .send_message()
                                    .queue_url(&deliver_url)
                                    .message_body(format!("{{\"item_id\":{id}}}"))
                                    .send()
                                    .await
                                    .map_err(|e| anyhow!("a duplicate message: {e}"))?;
                            }
                            tokio::time::sleep(Duration::from_secs(15)).await;
                            j.signal("CONT")?;
                            Ok::<String, anyhow::Error>(format!(
                                "deliver job {pid} frozen 15 s (SIGSTOP) with {} items delivering and a duplicate message for each; a second job took over; then thawed",
                                frozen.len()
                            ))
                        }
                        .await;
                        stalled.lock().unwrap().0.extend(frozen);
                        outcome
                    }
                    "refund" => {
                        // A paid order refunded while one of its items is being delivered (or,
                        // failing that within 10 s, one whose delivery is under way).
                        let mut found = None;
                        for attempt in 0..40 {
                            let statuses =
                                if attempt < 39 { "'delivering'" } else { "'delivering', 'enrolled', 'delivered'" };
                            let sql = format!(
                                "SELECT o.code, o.email FROM orders o JOIN order_items i ON i.order_id = o.id
                                 WHERE o.status = 'paid' AND i.status IN ({statuses}) LIMIT 1"
                            );
                            found = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
                                .fetch_optional(&pool)
                                .await
                                .ok()
                                .flatten();
                            if found.is_some() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        match found {
                            None => Err(anyhow!("no order was being delivered to refund")),
                            Some((code, email)) => {
                                let order = coursedrop::domain::OrderCode::from_stored(code.clone());
                                let done = coursedrop::app::refund::refund(
                                    &pool,
                                    &refund_drive,
                                    &order,
                                    "operator:chaos",
                                    "chaos: refunded mid-delivery",
                                )
                                .await;
                                refunded.lock().unwrap().push((code.clone(), email));
                                done.map(|r| {
                                    format!(
                                        "order {code} refunded mid-delivery: {} items revoked, {} permissions removed",
                                        r.items_revoked, r.permissions_removed
                                    )
                                })
                                .map_err(|e| anyhow!("refund: {e}"))
                            }
                        }
                    }
                    _ => restart_service("mariadb").await.map(|_| "MariaDB restarted".to_string()),
                };
                log.push(match outcome {
                    Ok(s) => format!(
                        "at {:>5.1} s  {s} (took {} ms)",
                        (t - run_started).as_secs_f64(),
                        t.elapsed().as_millis()
                    ),
                    Err(e) => format!("FAILED {what}: {e:#}"),
                });
            }
            log
        })
    };

    // Payments: each booked at the bank, its webhook 3–10 times at once, each retried until
    // answered 2xx, as SePay does. Orders in the middle stretch of the run lose their webhooks.
    let key = vars.get("SEPAY_API_KEY").ok_or_else(|| anyhow!("SEPAY_API_KEY is not set"))?;
    let account = config::bank_account(vars)?.account_number;
    let dropped_stretch = n_orders / 3..n_orders / 2;
    let mut sent_ids = Vec::new();
    let mut senders = Vec::new();
    let mut casso_senders = Vec::new();
    let mut unmatched_ids = Vec::new();
    // Each dropped transfer's (SePay id, Casso id).
    let mut dropped: Vec<(i64, i64)> = Vec::new();
    for (i, (code, amount, _, paid)) in orders.iter().enumerate() {
        let drop_webhook = dropped_stretch.contains(&i);
        let booked = |feed, amount_vnd, content: String| bank_emulator::NewTransfer {
            feed,
            amount_vnd,
            content,
            account_number: account.clone(),
            at: None,
            amount_text: None,
        };
        if *paid && i % 6 == 5 {
            // Reported by both feeds; Casso posts first, once (a delivery that fails is left
            // to reconciliation), then SePay's webhook comes too.
            let transfer = booked(bank_emulator::Feed::Casso, *amount, format!("{code} chuyen khoan"));
            let (sepay_id, casso_id) = bank.book_on_both_feeds(&transfer);
            sent_ids.push(sepay_id);
            if drop_webhook {
                dropped.push((sepay_id, casso_id));
            } else {
                let bank = bank.clone();
                casso_senders.push(tokio::spawn(async move {
                    let casso = bank.deliver(casso_id, bank_emulator::Feed::Casso).await;
                    let sepay = bank.deliver(sepay_id, bank_emulator::Feed::Sepay).await;
                    (sepay_id, [casso, sepay])
                }));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let mut payloads = Vec::new();
        if *paid {
            payloads.push((format!("MBVCB.{i}.{code}.CT tu NGUYEN VAN A"), *amount));
        }
        if i % 17 == 3 {
            // A transfer without any code: it must be kept, unmatched.
            payloads.push((format!("chuyen tien hoc phi {i}"), 500_000));
        }
        for (content, amount) in payloads {
            // Every transfer is reported by both feeds (a seller who connected SePay and Casso
            // to one account), each under its own id and each with its own redeliveries.
            let (id, casso_id) = bank.book_on_both_feeds(&booked(bank_emulator::Feed::Sepay, amount, content.clone()));
            sent_ids.push(id);
            if amount == 500_000 && content.starts_with("chuyen tien hoc phi") {
                unmatched_ids.push(id);
            }
            if drop_webhook {
                dropped.push((id, casso_id));
                continue;
            }
            for _ in 0..rand::random_range(1..=3) {
                let bank = bank.clone();
                casso_senders.push(tokio::spawn(async move {
                    (
                        id,
                        [
                            bank.deliver(casso_id, bank_emulator::Feed::Casso).await,
                            bank_emulator::Delivery::NotConfigured,
                        ],
                    )
                }));
            }
            let body = json!({"id": id, "gateway": "MBBank", "transactionDate": "2026-11-22 10:00:00",
                "accountNumber": account, "code": null, "content": content, "transferType": "in",
                "transferAmount": amount, "accumulated": 0, "subAccount": null, "referenceCode": format!("FT{id:010}"), "description": ""})
            .to_string();
            for _ in 0..rand::random_range(3..=10) {
                let (http, url, key, body) =
                    (http.clone(), format!("{base}/webhooks/sepay"), key.clone(), body.clone());
                senders.push(tokio::spawn(async move { send_like_sepay(&http, &url, &key, &body).await }));
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut casso_failed = 0;
    for s in casso_senders {
        let (_, deliveries) = s.await?;
        casso_failed += deliveries
            .iter()
            .filter(|d| {
                !matches!(d, bank_emulator::Delivery::Delivered { .. } | bank_emulator::Delivery::NotConfigured)
            })
            .count();
    }
    let mut webhook_calls = 0;
    let mut webhook_failures = 0;
    for s in senders {
        let (calls, ok) = s.await?;
        webhook_calls += calls;
        webhook_failures += usize::from(!ok);
    }

    // Wait for the deliveries.
    let paid_codes: Vec<&str> = orders.iter().filter(|o| o.3).map(|o| o.0.as_str()).collect();
    let chaos_log = chaos.await?;
    let refunded: Vec<(String, String)> = refunded.lock().unwrap().clone();
    let (stalled, frozen_pid) = stalled.lock().unwrap().clone();
    let to_complete = paid_codes.len() - refunded.len();
    let mut last = String::new();
    loop {
        let (done, items_left): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM orders WHERE status = 'completed'),
                    (SELECT COUNT(*) FROM order_items WHERE status NOT IN ('completed', 'awaiting_payment', 'cancelled'))",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or((-1, -1));
        let line = format!("{done}/{to_complete} orders completed, {items_left} items in flight");
        if line != last {
            println!("  {:>5.0}s  {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        if done == to_complete as i64 || started.elapsed() > timeout {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    job.lock().await.kill().await;
    spare.lock().await.kill().await;
    drive.set_faults(drive_emulator::Faults::default());

    let mut checks = Vec::new();
    let (completed,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders WHERE status = 'completed'").fetch_one(&pool).await?;
    let failed: Vec<(u64, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, failed_stage, last_error FROM order_items WHERE status = 'failed'")
            .fetch_all(&pool)
            .await?;
    checks.push(Check {
        name: "every paid order completed (but the one refunded)",
        ok: completed == to_complete as i64,
        detail: format!("{completed} of {to_complete} completed; failed items: {failed:?}"),
    });

    // Emails: each item's Message-ID exactly once in the sink, to the right buyer.
    let items: Vec<DeliveredItem> = sqlx::query_as(
        "SELECT i.id, o.code, o.email, i.email_message_id, i.drive_folder_id, c.slug
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id
         WHERE o.status = 'completed'",
    )
    .fetch_all(&pool)
    .await?;
    let all_mails = read_maildir(&vars.string_or("MAILDIR", ".local/mail"), &format!("chaos-{run_id}-"))?;
    // The refunded buyer's mails are checked on their own below.
    let (refund_mails, mails): (Vec<_>, Vec<_>) =
        all_mails.into_iter().partition(|(_, to)| refunded.iter().any(|(_, e)| to.contains(e.as_str())));
    let mut mail_problems = Vec::new();
    for (id, _, email, message_id, _, _) in &items {
        let Some(mid) = message_id else {
            mail_problems.push(format!("item {id}: no Message-ID"));
            continue;
        };
        let got: Vec<&(String, String)> = mails.iter().filter(|(m, _)| m.contains(mid.as_str())).collect();
        if got.len() != 1 || !got[0].1.contains(email.as_str()) {
            mail_problems.push(format!("item {id}: {} emails with {mid}", got.len()));
        }
    }
    checks.push(Check {
        name: "each delivery email sent exactly once",
        ok: mail_problems.is_empty() && mails.len() == items.len(),
        detail: format!("{} emails for {} items; {}", mails.len(), items.len(), summarize(&mail_problems)),
    });

    // Drive: each folder holds each source file once, with its MD5.
    let reader = DriveClient::new(
        coursedrop::adapters::drive::DriveConfig::new(&drive_base),
        coursedrop::adapters::drive::StaticToken("emulator-token".into()),
    );
    let expected: HashMap<&str, BTreeMap<String, String>> = COURSES
        .iter()
        .map(|(slug, _, files)| {
            let tree = files
                .iter()
                .map(|(path, size)| (path.to_string(), hex::encode(Md5::digest(file_bytes(slug, path, *size)))))
                .collect();
            (*slug, tree)
        })
        .collect();
    let mut drive_problems = Vec::new();
    for (id, _, _, _, folder, slug) in &items {
        let Some(folder) = folder else {
            drive_problems.push(format!("item {id}: no folder"));
            continue;
        };
        let found = list_tree(&reader, folder).await?;
        let mut counts: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
        for (path, md5) in found {
            let e = counts.entry(path).or_insert((0, None));
            e.0 += 1;
            e.1 = md5;
        }
        let want = &expected[slug.as_str()];
        let got: BTreeMap<String, String> =
            counts.iter().map(|(p, (_, m))| (p.clone(), m.clone().unwrap_or_default())).collect();
        if got != *want || counts.values().any(|(n, _)| *n != 1) {
            drive_problems.push(format!("item {id}: folder differs from the source: {counts:?}"));
        }
    }
    checks.push(Check {
        name: "every Drive folder holds each file once, MD5 equal",
        ok: drive_problems.is_empty(),
        detail: format!("{} folders checked; {}", items.len(), summarize(&drive_problems)),
    });

    // The order refunded mid-delivery: every item revoked, no Drive access left, and an email
    // only for an item that was completed before the refund.
    let mut refund_problems = Vec::new();
    for (code, email) in &refunded {
        let rows: Vec<(String, Option<String>, bool)> = sqlx::query_as(
            "SELECT i.status, i.drive_folder_id, i.completed_at IS NOT NULL FROM order_items i
             JOIN orders o ON o.id = i.order_id WHERE o.code = ?",
        )
        .bind(code)
        .fetch_all(&pool)
        .await?;
        let status: String =
            sqlx::query_scalar("SELECT status FROM orders WHERE code = ?").bind(code).fetch_one(&pool).await?;
        if status != "refunded" {
            refund_problems.push(format!("{code} is {status}"));
        }
        for (item_status, folder, _) in &rows {
            if item_status != "revoked" {
                refund_problems.push(format!("{code}: an item is {item_status}"));
            }
            if let Some(folder) = folder {
                // An id is kept before its folder is made: an item revoked before that has no
                // folder, and so no reader.
                let readers = match reader.permissions(folder).await {
                    Err(coursedrop::adapters::drive::DriveError::Refused { status: 404, .. }) => vec![],
                    other => other?,
                };
                if readers.iter().any(|p| p.email_address.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(email))) {
                    refund_problems.push(format!("{code}: the buyer can still open {folder}"));
                }
            }
        }
        let completed_before = rows.iter().filter(|r| r.2).count();
        let sent = refund_mails.iter().filter(|(_, to)| to.contains(email.as_str())).count();
        if sent != completed_before {
            refund_problems
                .push(format!("{code}: {sent} emails for {completed_before} items completed before the refund"));
        }
    }
    checks.push(Check {
        name: "refunded mid-delivery: every item revoked, no access, no email after the refund",
        ok: refund_problems.is_empty() && refunded.len() == 1,
        detail: format!("{} orders refunded; {}", refunded.len(), summarize(&refund_problems)),
    });

    // The frozen worker's items: finished, each file once (the Drive check above), and by the
    // worker that took them over.
    let mut takeover_problems = Vec::new();
    let mut by_other = 0;
    // The job names its worker `deliver-<host>-<pid>`.
    let frozen_worker = format!("-{frozen_pid}");
    for id in &stalled {
        let status: String =
            sqlx::query_scalar("SELECT status FROM order_items WHERE id = ?").bind(id).fetch_one(&pool).await?;
        if !matches!(status.as_str(), "completed" | "revoked") {
            takeover_problems.push(format!("item {id} is {status}"));
        }
        let deliverers: Vec<String> = sqlx::query_scalar(
            "SELECT actor FROM order_events WHERE item_id = ? AND to_status = 'delivered' ORDER BY id",
        )
        .bind(id)
        .fetch_all(&pool)
        .await?;
        match deliverers.as_slice() {
            [] if status == "revoked" => {}
            [one] if one.ends_with(&frozen_worker) => {
                takeover_problems.push(format!("item {id} was finished by the frozen worker {one}"))
            }
            [_] => by_other += 1,
            many => takeover_problems.push(format!("item {id} delivered {} times: {many:?}", many.len())),
        }
    }
    checks.push(Check {
        name: "a frozen worker's leases taken over: its items finished once, by another worker",
        ok: takeover_problems.is_empty() && !stalled.is_empty() && by_other > 0,
        detail: format!(
            "{} items were delivering when job {frozen_pid} froze; {by_other} finished by another worker; {}",
            stalled.len(),
            summarize(&takeover_problems)
        ),
    });

    // The shared course: its buyers (completed items) are the readers of the seller's folder,
    // nobody else; and nothing was copied for them.
    let shared_slug = DRIVE_COURSES.iter().find(|(_, m)| *m == DeliveryMode::Share).map(|(s, _)| *s).unwrap_or("");
    let seller_folder = &seller_folders[shared_slug];
    let mut buyers: Vec<String> = items.iter().filter(|i| i.5 == shared_slug).map(|i| i.2.to_lowercase()).collect();
    buyers.sort();
    buyers.dedup();
    let mut readers: Vec<String> = reader
        .permissions(seller_folder)
        .await?
        .into_iter()
        .filter(|p| p.role == "reader")
        .filter_map(|p| p.email_address)
        .collect();
    readers.sort();
    let foreign = items.iter().filter(|i| i.5 == shared_slug && i.4.as_deref() != Some(seller_folder.as_str())).count();
    checks.push(Check {
        name: "the shared course: its buyers, and only they, read the seller's folder",
        ok: readers == buyers && foreign == 0 && !buyers.is_empty(),
        detail: format!(
            "{} buyers, {} readers, {foreign} items not on the seller's folder; copied course: {} server-side copies",
            buyers.len(),
            readers.len(),
            drive.copies().0
        ),
    });

    let (payments, unmatched): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(order_id IS NULL), 0) AS SIGNED) FROM payments")
            .fetch_one(&pool)
            .await?;
    // Every transfer came from both feeds: one payment each, the other report a sighting at
    // most, and no order credited beyond its one transfer.
    let (sightings, held, overpaid): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM payment_sightings), (SELECT COUNT(*) FROM payments WHERE hold IS NOT NULL),
                (SELECT COUNT(*) FROM orders WHERE paid_vnd > total_vnd)",
    )
    .fetch_one(&pool)
    .await?;
    checks.push(Check {
        name: "no payment lost or doubled, each transfer reported by both feeds",
        ok: payments == sent_ids.len() as i64
            && unmatched == unmatched_ids.len() as i64
            && webhook_failures == 0
            && held == 0
            && overpaid == 0
            && sightings <= payments,
        detail: format!(
            "{payments} payments kept for {} transfers each reported by SePay and Casso ({webhook_calls} SePay webhook calls, {webhook_failures} never accepted); {sightings} second reports kept as evidence, {held} held, {overpaid} orders credited twice; unmatched kept: {unmatched_ids:?}",
            sent_ids.len()
        ),
    });

    // Every transfer whose webhook was dropped was found by reconciliation; and how long the
    // longest of those waited from its order to its payment row.
    let mut found_late = 0;
    for (sepay_id, casso_id) in &dropped {
        let arrived: Option<String> = sqlx::query_scalar(
            "SELECT arrived_by FROM payments
             WHERE (feed = 'sepay' AND feed_txn_id = ?) OR (feed = 'casso' AND feed_txn_id = ?)",
        )
        .bind(sepay_id.to_string())
        .bind(casso_id.to_string())
        .fetch_optional(&pool)
        .await?;
        if arrived.as_deref() == Some("reconcile") {
            found_late += 1;
        }
    }
    let waits: Vec<f64> = sqlx::query_scalar(
        "SELECT CAST(TIMESTAMPDIFF(MICROSECOND, e.created_at, p.received_at) / 1e6 AS DOUBLE) FROM payments p
         JOIN order_events e ON e.order_id = p.order_id AND e.kind = 'order_created' WHERE p.arrived_by = 'reconcile'",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    let longest = waits.iter().cloned().fold(0.0, f64::max);
    let (by_reconcile,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM payments WHERE arrived_by = 'reconcile'").fetch_one(&pool).await?;
    checks.push(Check {
        name: "webhooks dropped, payments found by reconciliation",
        ok: !dropped.is_empty() && found_late == dropped.len(),
        detail: format!(
            "{} webhooks dropped (orders {}..{}), {found_late} of them recorded by reconciliation; {by_reconcile} payments in all came by reconciliation ({casso_failed} Casso deliveries failed); longest from order to reconciled payment {longest:.1} s",
            dropped.len(),
            dropped_stretch.start,
            dropped_stretch.end
        ),
    });

    let mut dlq_counts = Vec::new();
    for url in &dead_letters {
        let attrs = stack
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
        let n: i64 = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        dlq_counts.push(n);
    }
    checks.push(Check {
        name: "dead-letter queues empty",
        ok: dlq_counts.iter().all(|n| *n == 0),
        detail: format!("messages: {dlq_counts:?}"),
    });

    let (leaked,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM order_items i JOIN orders o ON o.id = i.order_id
         WHERE o.status IN ('pending', 'cancelled') AND (i.drive_folder_id IS NOT NULL OR i.status NOT IN ('awaiting_payment', 'cancelled'))",
    )
    .fetch_one(&pool)
    .await?;
    let unpaid = orders.iter().filter(|o| !o.3).count();
    checks.push(Check {
        name: "no unpaid order delivered",
        ok: leaked == 0,
        detail: format!("{unpaid} unpaid orders; {leaked} of their items moved on"),
    });

    println!("\nchaos events:");
    for line in &chaos_log {
        println!("  {line}");
    }
    let kills = kills.load(Ordering::SeqCst);
    checks.push(Check {
        name: "every planned outage happened",
        ok: kills == 5 && chaos_log.iter().all(|l| !l.starts_with("FAILED")),
        detail: format!("{kills} job kills, {} events", chaos_log.len()),
    });
    println!("\n| check | result | detail |\n|---|---|---|");
    for c in &checks {
        println!("| {} | {} | {} |", c.name, if c.ok { "pass" } else { "FAIL" }, c.detail);
    }
    let all_ok = checks.iter().all(|c| c.ok);
    println!(
        "\nchaos: {} in {:.0} s ({} orders, {} paid, {} items delivered)",
        if all_ok { "PASS" } else { "FAIL" },
        started.elapsed().as_secs_f64(),
        orders.len(),
        paid_codes.len(),
        items.len()
    );
    if all_ok {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{database}`"))).execute(&pool).await?;
        let _ = std::fs::remove_dir_all(&drive_dir);
    }
    Ok(all_ok)
}

fn summarize(problems: &[String]) -> String {
    match problems.len() {
        0 => "no problems".into(),
        n => format!("{n} problems, first: {}", problems[..n.min(3)].join("; ")),
    }
}

/// One webhook delivery, retried every second until a 2xx, as SePay retries (up to 3 minutes).
async fn send_like_sepay(http: &reqwest::Client, url: &str, key: &str, body: &str) -> (usize, bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut calls = 0;
    while Instant::now() < deadline {
        calls += 1;
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("authorization", format!("Apikey {key}"))
            .body(body.to_string())
            .send()
            .await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            return (calls, true);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (calls, false)
}

/// `maxReceiveCount` as infra/template.yaml deploys it.
fn max_receive_count(queue: &str) -> u32 {
    if queue == "deliver" { 20 } else { 10 }
}

/// A dead-letter queue for each stage queue, redriven as in the template; their URLs.
async fn attach_dead_letter_queues(stack: &stack::Stack) -> Result<Vec<String>> {
    let mut dlqs = Vec::new();
    for (queue, _) in &stack.queue_urls {
        let dlq = redriven_queue(&stack.sqs, &format!("{PREFIX}{}", queue.as_str())).await?;
        let _ = stack.sqs.purge_queue().queue_url(&dlq).send().await;
        dlqs.push(dlq);
    }
    Ok(dlqs)
}

/// Creates the queue `name` (if missing) with its dead-letter queue `name-dlq`, redriven after
/// [`max_receive_count`] receives; answers the dead-letter queue's URL.
async fn redriven_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let url = sqs.create_queue().queue_name(name).send().await?.queue_url.unwrap_or_default();
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await?.queue_url.unwrap_or_default();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| anyhow!("{name}-dlq has no ARN"))?;
    let max_receives = max_receive_count(name.trim_start_matches(PREFIX));
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives}).to_string(),
        )
        .send()
        .await?;
    Ok(dlq)
}

async fn put_course_files(source: &coursedrop::adapters::source::S3Source) -> Result<()> {
    source.ensure_bucket(BUCKET, "ap-southeast-1").await?;
    for (slug, _, files) in COURSES.iter().filter(|(s, ..)| drive_mode(s).is_none()) {
        for (path, size) in *files {
            source
                .client()
                .put_object()
                .bucket(BUCKET)
                .key(format!("courses/{slug}/{path}"))
                .body(file_bytes(slug, path, *size).into())
                .send()
                .await
                .map_err(|e| anyhow!("putting {slug}/{path}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
        }
    }
    Ok(())
}

async fn restart_service(name: &str) -> Result<()> {
    let out = tokio::process::Command::new("devtools/services").args(["restart", name]).output().await?;
    if !out.status.success() {
        return Err(anyhow!("devtools/services restart {name}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// moto and the SQS server keep everything in memory: after their restart the harness
/// recreates what AWS would still hold (the queues with their dead-letter queues, the
/// seller's bucket). The messages that were in the queues are gone; the sweeper's re-publish
/// of unconsumed outbox rows and its stuck-item re-send are what bring them back.
async fn restart_moto(
    sqs: &aws_sdk_sqs::Client,
    names: &[String],
    source: &coursedrop::adapters::source::S3Source,
) -> Result<()> {
    restart_service("moto").await?;
    // SQS is served apart from moto (fauxqs, `make services`): its outage is the queues'.
    if std::env::var_os("AWS_ENDPOINT_URL_SQS").is_some() {
        restart_service("sqs").await?;
    }
    for name in names {
        redriven_queue(sqs, name).await?;
    }
    put_course_files(source).await
}

/// The deliver job as a child process, configured for a short chaos run.
struct DeliverJob {
    child: Option<tokio::process::Child>,
    env: Vec<(String, String)>,
}

impl DeliverJob {
    fn start<F: Fn(&str) -> Option<String>>(vars: &Vars<F>, db_url: &str, drive_base: &str) -> Result<Self> {
        let mut env = stack::local_aws_env(vars);
        env.push(("DATABASE_URL".into(), db_url.into()));
        env.push(("DRIVE_API_ROOT".into(), drive_base.into()));
        for (k, v) in [
            ("QUEUE_NAME_PREFIX", PREFIX),
            ("DRIVE_ACCESS_TOKEN", "emulator-token"),
            ("DRIVE_CHUNK_SIZE", "1048576"),
            ("DELIVER_LEASE_SECS", "8"),
            ("DELIVER_VISIBILITY_SECS", "10"),
            ("DELIVER_RETRY_DELAY_SECS", "2"),
            ("DELIVER_MESSAGES_IN_FLIGHT", "4"),
            ("DELIVER_MAX_ATTEMPTS", "30"),
            ("RUST_LOG", "warn"),
        ] {
            env.push((k.into(), v.into()));
        }
        let mut job = DeliverJob::prepared(env);
        job.restart()?;
        Ok(job)
    }

    /// A job with this environment, not started yet (`restart` starts it).
    fn prepared(env: Vec<(String, String)>) -> Self {
        DeliverJob { child: None, env }
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the process: a worker whose heartbeats stop
    /// while it still lives, as a long GC pause or a starved container would.
    fn signal(&self, signal: &str) -> Result<u32> {
        let pid = self.child.as_ref().and_then(|c| c.id()).ok_or_else(|| anyhow!("the job is not running"))?;
        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
        if !status.success() {
            return Err(anyhow!("kill -{signal} {pid} failed"));
        }
        Ok(pid)
    }

    /// Starts the job again with the same environment.
    fn restart(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(".local/log/chaos-deliver.log")?;
        let child = tokio::process::Command::new("target/release/deliver")
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting target/release/deliver (make chaos builds it)")?;
        self.child = Some(child);
        Ok(())
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

/// Every file under `folder`, by path, with its MD5 (folders walked, not listed).
async fn list_tree<T: coursedrop::adapters::drive::AccessToken>(
    drive: &DriveClient<T>,
    folder: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let mut todo = vec![(folder.to_string(), String::new())];
    while let Some((id, prefix)) = todo.pop() {
        for f in drive.children(&id).await? {
            let path = format!("{prefix}{}", f.name);
            if f.mime_type.as_deref() == Some("application/vnd.google-apps.folder") {
                todo.push((f.id, format!("{path}/")));
            } else {
                out.push((path, f.md5_checksum));
            }
        }
    }
    Ok(out)
}

/// (headers-and-body, recipients) of each message to a chaos buyer of this run.
fn read_maildir(maildir: &str, to_prefix: &str) -> Result<Vec<(String, String)>> {
    let dir = std::path::Path::new(maildir).join("new");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let text = std::fs::read_to_string(entry?.path()).unwrap_or_default();
        let text = text.replace("\r\n", "\n");
        let head = text.split("\n\n").next().unwrap_or("").to_string();
        let to = head.lines().find(|l| l.to_ascii_lowercase().starts_with("to:")).unwrap_or("").to_string();
        if to.contains(to_prefix) {
            out.push((head, to));
        }
    }
    Ok(out)
}
