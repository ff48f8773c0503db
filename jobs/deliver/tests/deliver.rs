//! Delivery against real MariaDB, moto S3, the local SQS server and the Drive emulator.

use std::collections::HashMap;
use std::time::Duration;

use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::drive::{CHUNK_GRANULE, StaticToken};
use coursedrop::adapters::queue::SqsPublisher;
use coursedrop::domain::Queue;
use coursedrop::testing;
use deliver::{DeliverSettings, Deliverer, Outcome};
use drive_emulator::{Faults, TempEmulator};
use md5::{Digest, Md5};
use serde_json::Value;
use sqlx::MySqlPool;

struct Harness {
    pool: MySqlPool,
    job: std::sync::Arc<Deliverer<StaticToken, SqsPublisher>>,
    drive: TempEmulator,
    sqs: aws_sdk_sqs::Client,
    urls: HashMap<Queue, String>,
    item: u64,
    files: Vec<(String, Vec<u8>)>,
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i * 17 + seed as usize) % 239) as u8).collect()
}

async fn harness(pool: MySqlPool, files: &[(&str, Vec<u8>)], chunk: usize) -> Harness {
    let source = testing::s3_source().await.with_page_size(2);
    let keyed: Vec<(String, Vec<u8>)> = files.iter().map(|(p, b)| (format!("course/{p}"), b.clone())).collect();
    let refs: Vec<(&str, Vec<u8>)> = keyed.iter().map(|(k, b)| (k.as_str(), b.clone())).collect();
    let bucket = testing::bucket_with(&source, &refs).await;
    let (_, created) = testing::pending_order(&pool, &[100_000], 30).await;
    let item = created.item_ids[0];
    sqlx::query("UPDATE courses c JOIN order_items i ON i.course_id = c.id SET c.source = ?, c.title = 'Rust cơ bản' WHERE i.id = ?")
        .bind(format!("s3://{bucket}/course/"))
        .bind(item)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE order_items SET status = 'enrolled' WHERE id = ?").bind(item).execute(&pool).await.unwrap();

    let drive = TempEmulator::start("deliver-test").await.unwrap();
    let mut config = testing::fast_drive_config(&drive.base);
    config.chunk_size = chunk;
    let sqs = testing::sqs_client().await;
    let (publisher, urls) = testing::fresh_queues(&sqs).await;
    let job = std::sync::Arc::new(Deliverer {
        pool: pool.clone(),
        drive: DriveClient::new(config, StaticToken("emulator-token".into())),
        source,
        publisher,
        settings: DeliverSettings { lease_secs: 30, ..DeliverSettings::default() },
        worker: "test-worker".into(),
    });
    let files = files.iter().map(|(p, b)| (p.to_string(), b.clone())).collect();
    Harness { pool, job, drive, sqs, urls, item, files }
}

impl Harness {
    async fn get(&self, path: &str) -> Value {
        let http = coursedrop::support::http_client::client_builder().build().unwrap();
        http.get(format!("{}{path}", self.drive.base))
            .bearer_auth("emulator-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every file under the item's folder as Drive lists it (`fields` of each), by path.
    async fn walk(&self, fields: &str) -> Vec<(String, Value)> {
        let folder: String = sqlx::query_scalar("SELECT drive_folder_id FROM order_items WHERE id = ?")
            .bind(self.item)
            .fetch_one(&self.pool)
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut todo = vec![(folder, String::new())];
        while let Some((id, prefix)) = todo.pop() {
            let q = format!("'{id}' in parents and trashed = false");
            let list = self
                .get(&format!(
                    "/drive/v3/files?pageSize=1000&fields=files(id,name,mimeType,{fields})&q={}",
                    coursedrop::adapters::sepay::url_encode(&q)
                ))
                .await;
            for f in list["files"].as_array().unwrap() {
                let path = format!("{prefix}{}", f["name"].as_str().unwrap());
                if f["mimeType"] == "application/vnd.google-apps.folder" {
                    todo.push((f["id"].as_str().unwrap().to_string(), format!("{path}/")));
                } else {
                    out.push((path, f.clone()));
                }
            }
        }
        out
    }

    /// Every file under the item's folder: path, size and MD5 of the bytes on the emulator's
    /// disk. Walks the tree on Drive.
    async fn drive_tree(&self) -> Vec<(String, usize, String)> {
        let mut out: Vec<(String, usize, String)> = Vec::new();
        for (path, f) in self.walk("size").await {
            let bytes = std::fs::read(self.drive.emu.blob_path(f["id"].as_str().unwrap())).unwrap();
            out.push((path, bytes.len(), hex::encode(Md5::digest(&bytes))));
        }
        out.sort();
        out
    }

    /// Delivers the item, again while it answers `Retry` (up to 3 more runs): faults may
    /// outlast one run's retries, and the queue would redeliver.
    /// The item handed back to the job as a new run finds one whose worker died.
    async fn back_to_enrolled(&self) {
        sqlx::query("UPDATE order_items SET status = 'enrolled', lease_owner = NULL WHERE id = ?")
            .bind(self.item)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    async fn deliver_through_retries(&self) -> Outcome {
        let mut outcome = self.job.deliver_item(self.item).await.unwrap();
        for _ in 0..3 {
            if !matches!(outcome, Outcome::Retry(_)) {
                break;
            }
            outcome = self.job.deliver_item(self.item).await.unwrap();
        }
        outcome
    }

    fn expected(&self) -> Vec<(String, usize, String)> {
        summary(&self.files)
    }

    async fn item_row(&self) -> (String, Option<String>, Option<u32>, u32, Option<u64>, u64, Option<String>) {
        sqlx::query_as("SELECT status, failed_stage, files_total, files_done, bytes_total, bytes_done, last_error FROM order_items WHERE id = ?")
            .bind(self.item)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

fn summary(files: &[(String, Vec<u8>)]) -> Vec<(String, usize, String)> {
    let mut e: Vec<_> = files.iter().map(|(p, b)| (p.clone(), b.len(), hex::encode(Md5::digest(b)))).collect();
    e.sort();
    e
}

fn tree() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("01-intro/welcome.mp4", data(3 * CHUNK_GRANULE + 17, 1)),
        ("01-intro/notes/empty.txt", vec![]),
        ("02-ownership/lesson.mp4", data(700_001, 2)),
        ("README.md", b"# Rust co ban\n".to_vec()),
    ]
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn delivers_a_nested_course_every_file_once_and_hands_it_to_finalize(pool: MySqlPool) {
    let h = harness(pool, &tree(), CHUNK_GRANULE).await;
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);

    assert_eq!(h.drive_tree().await, h.expected(), "the tree, each file once, byte for byte");
    let total: u64 = h.files.iter().map(|(_, b)| b.len() as u64).sum();
    let (status, _, files_total, files_done, bytes_total, bytes_done, _) = h.item_row().await;
    assert_eq!(
        (status.as_str(), files_total, files_done, bytes_total, bytes_done),
        ("delivered", Some(4), 4, Some(total), total)
    );
    assert_eq!(testing::drain(&h.sqs, &h.urls[&Queue::Finalize]).await, vec![format!("{{\"item_id\":{}}}", h.item)]);
    let md5s: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT path, md5 FROM delivered_files WHERE RIGHT(path, 1) <> '/' ORDER BY path")
            .fetch_all(&h.pool)
            .await
            .unwrap();
    for (path, md5) in md5s {
        let bytes = &h.files.iter().find(|(p, _)| *p == path).unwrap().1;
        assert_eq!(md5, Some(hex::encode(Md5::digest(bytes))), "{path}");
    }
    let folder = h
        .get(&format!(
            "/drive/v3/files/{}?fields=name",
            sqlx::query_scalar::<_, String>("SELECT drive_folder_id FROM order_items")
                .fetch_one(&h.pool)
                .await
                .unwrap()
        ))
        .await;
    assert!(folder["name"].as_str().unwrap().starts_with("Rust cơ bản — CD"), "{folder}");

    // A redelivered message for a delivered item does no work.
    let written = h.drive.emu.bytes_written();
    assert_eq!(
        h.job.deliver_item(h.item).await.unwrap(),
        Outcome::AlreadyDone(coursedrop::domain::ItemStatus::Delivered)
    );
    assert_eq!(h.drive.emu.bytes_written(), written);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_job_killed_mid_file_resumes_from_drives_offset_not_from_zero(pool: MySqlPool) {
    let big = data(101 * 1024 * 1024 + 3, 5);
    let files = vec![("videos/big.mp4", big.clone()), ("small.txt", b"hello".to_vec())];
    let h = harness(pool, &files, 8 * 1024 * 1024).await;

    // Kill the job abruptly once some of the big file is on Drive.
    let job = h.job.clone();
    let running = tokio::spawn({
        let job = job.clone();
        let item = h.item;
        async move { job.deliver_item(item).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while h.drive.emu.bytes_written() < 24 * 1024 * 1024 {
        assert!(std::time::Instant::now() < deadline, "the upload never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.abort();
    let _ = running.await;
    let before = h.drive.emu.bytes_written();
    let status: String = sqlx::query_scalar("SELECT status FROM order_items WHERE id = ?")
        .bind(h.item)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(status, "delivering", "the dead worker's claim is still there");
    assert_eq!(job.deliver_item(h.item).await.unwrap(), Outcome::Busy, "its lease is still live");

    // The lease lapses; a new run takes over.
    sqlx::query("UPDATE order_items SET lease_until = NOW(3) - INTERVAL 1 SECOND").execute(&h.pool).await.unwrap();
    assert_eq!(job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);

    let total: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let written = h.drive.emu.bytes_written();
    assert!(
        written <= total + 8 * 1024 * 1024,
        "resumed, not restarted: {written} bytes written for {total} (first run wrote {before})"
    );
    let expected = summary(&files.iter().map(|(p, b)| (p.to_string(), b.clone())).collect::<Vec<_>>());
    let tree = h.drive_tree().await;
    assert_eq!(tree.len(), 2);
    assert_eq!(tree, expected, "every file once, byte for byte");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn ten_percent_drive_faults_still_deliver_everything(pool: MySqlPool) {
    let h = harness(pool, &tree(), CHUNK_GRANULE).await;
    h.drive.emu.set_faults(Faults::spread(0.10));
    assert_eq!(h.deliver_through_retries().await, Outcome::Delivered);
    h.drive.emu.set_faults(Faults::default());
    assert_eq!(h.drive_tree().await, h.expected());
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_missing_source_fails_the_item_clearly(pool: MySqlPool) {
    let h = harness(pool, &tree(), CHUNK_GRANULE).await;
    sqlx::query("UPDATE courses SET source = 's3://no-such-seller-bucket/course/'").execute(&h.pool).await.unwrap();
    let outcome = h.job.deliver_item(h.item).await.unwrap();
    let Outcome::Failed(reason) = outcome else { panic!("expected a failure, got {outcome:?}") };
    assert!(reason.contains("s3://no-such-seller-bucket") && reason.contains("does not exist"), "{reason}");
    let (status, stage, ..) = h.item_row().await;
    assert_eq!((status.as_str(), stage.as_deref()), ("failed", Some("deliver")));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_source_that_lists_nothing_is_never_delivered_as_an_empty_folder(pool: MySqlPool) {
    let h = harness(pool, &tree(), CHUNK_GRANULE).await;
    sqlx::query("UPDATE courses SET source = CONCAT(SUBSTRING_INDEX(source, '/', 3), '/nothing-here/')")
        .execute(&h.pool)
        .await
        .unwrap();
    let first = h.job.deliver_item(h.item).await.unwrap();
    let Outcome::Retry(reason) = first else { panic!("expected a retry, got {first:?}") };
    assert!(reason.contains("holds no files"), "{reason}");
    let last = loop {
        match h.job.deliver_item(h.item).await.unwrap() {
            Outcome::Retry(_) => continue,
            other => break other,
        }
    };
    assert!(matches!(&last, Outcome::Failed(r) if r.contains("holds no files")), "{last:?}");
    let (status, stage, ..) = h.item_row().await;
    assert_eq!((status.as_str(), stage.as_deref()), ("failed", Some("deliver")));
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_daily_upload_cap_pauses_without_spending_attempts(pool: MySqlPool) {
    let h = harness(pool, &tree(), CHUNK_GRANULE).await;
    h.drive.emu.set_faults(Faults { daily_cap_exceeded: true, ..Faults::default() });
    assert!(matches!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Paused(_)));
    let (status, attempts, lease): (String, u32, Option<String>) =
        sqlx::query_as("SELECT status, attempts, lease_owner FROM order_items WHERE id = ?")
            .bind(h.item)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts, lease), ("delivering", 0, None), "handed back, no attempt spent");
    h.drive.emu.set_faults(Faults::default());
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
}

async fn send(h: &Harness, body: &str) {
    h.sqs.send_message().queue_url(&h.urls[&Queue::Deliver]).message_body(body).send().await.unwrap();
}

fn quick_consumer() -> deliver::ConsumerSettings {
    deliver::ConsumerSettings {
        wait_secs: 1,
        visibility_secs: 30,
        retry_delay_secs: 1,
        busy_delay_secs: 1,
        grace: Duration::from_millis(200),
        ..Default::default()
    }
}

/// A message for an item another worker is delivering (a duplicate) comes back after the
/// busy delay, not the retry delay: a long delivery must not push it to the dead-letter queue
/// by receives alone (`make chaos` found 6 such messages there).
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_message_for_an_item_another_worker_holds_waits_for_the_lease(pool: MySqlPool) {
    let h = harness(pool, &tree(), CHUNK_GRANULE).await;
    sqlx::query(
        "UPDATE order_items SET status = 'delivering', lease_owner = 'worker-b', lease_until = NOW(3) + INTERVAL 60 SECOND WHERE id = ?",
    )
    .bind(h.item)
    .execute(&h.pool)
    .await
    .unwrap();
    send(&h, &format!("{{\"item_id\":{}}}", h.item)).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let settings = deliver::ConsumerSettings { busy_delay_secs: 30, ..quick_consumer() };
    let consumer = tokio::spawn(deliver::consume(
        h.job.clone(),
        h.sqs.clone(),
        h.urls[&Queue::Deliver].clone(),
        settings,
        async {
            let _ = stop_rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_tx.send(()).unwrap();
    consumer.await.unwrap();
    let received =
        h.sqs.receive_message().queue_url(&h.urls[&Queue::Deliver]).wait_time_seconds(3).send().await.unwrap();
    assert!(
        received.messages().is_empty(),
        "the busy item's message came back before the holder's lease could have run out"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM order_items WHERE id = ?")
        .bind(h.item)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(status, "delivering", "left to the worker that holds it");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn the_consumer_works_its_queue_and_deletes_what_is_done(pool: MySqlPool) {
    let h = harness(pool, &tree(), CHUNK_GRANULE).await;
    send(&h, &format!("{{\"item_id\":{}}}", h.item)).await;
    send(&h, "not a message").await;
    send(&h, &format!("{{\"item_id\":{}}}", h.item)).await; // a duplicate
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(deliver::consume(
        h.job.clone(),
        h.sqs.clone(),
        h.urls[&Queue::Deliver].clone(),
        quick_consumer(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM order_items WHERE id = ?")
            .bind(h.item)
            .fetch_one(&h.pool)
            .await
            .unwrap();
        let visible = h
            .sqs
            .get_queue_attributes()
            .queue_url(&h.urls[&Queue::Deliver])
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attrs = visible.attributes.unwrap_or_default();
        let count = |k| attrs.get(&k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        let left = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        if status == "delivered" && left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "status {status}, {left} messages left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(()).unwrap();
    consumer.await.unwrap();
    assert_eq!(h.drive_tree().await, h.expected(), "the duplicate message did no second copy");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_stopped_consumer_hands_unfinished_work_back(pool: MySqlPool) {
    let h = harness(pool, &[("big.bin", data(60 * 1024 * 1024, 4))], 8 * 1024 * 1024).await;
    send(&h, &format!("{{\"item_id\":{}}}", h.item)).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(deliver::consume(
        h.job.clone(),
        h.sqs.clone(),
        h.urls[&Queue::Deliver].clone(),
        quick_consumer(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while h.drive.emu.bytes_written() < 8 * 1024 * 1024 {
        assert!(std::time::Instant::now() < deadline, "the upload never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(()).unwrap(); // as SIGTERM does
    consumer.await.unwrap();

    let (status, owner): (String, Option<String>) =
        sqlx::query_as("SELECT status, lease_owner FROM order_items WHERE id = ?")
            .bind(h.item)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), owner),
        ("enrolled", None),
        "handed back: delivering → enrolled, no lease to wait out"
    );
    let handed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM order_events WHERE item_id = ? AND from_status = 'delivering' AND to_status = 'enrolled'",
    )
    .bind(h.item)
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(handed, 1, "the hand-back is in the item's timeline");
    assert_eq!(
        testing::drain(&h.sqs, &h.urls[&Queue::Deliver]).await,
        vec![format!("{{\"item_id\":{}}}", h.item)],
        "the message is visible again"
    );
    // The next worker finishes it from where Drive stands.
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    assert_eq!(h.drive_tree().await, h.expected());
}

/// Messages in the queue, visible or taken by a receive and not yet settled.
async fn messages_in(h: &Harness) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = h
        .sqs
        .get_queue_attributes()
        .queue_url(&h.urls[&Queue::Deliver])
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes.unwrap_or_default();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .map(|a| attrs.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum()
}

/// The real `deliver` binary, idle for several long-poll waits longer than the shared SDK
/// configuration's 8 s operation timeout: no receive may fail, and a message sent at any
/// moment is taken by a receive the job is still waiting on and worked. A receive the client
/// abandoned would take the message and hide it for the visibility timeout (120 s here), so
/// the queue would not drain.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn an_idle_job_keeps_every_long_poll_and_claims_each_message(pool: MySqlPool) {
    const WAIT_SECS: u64 = 10;
    let h = harness(pool.clone(), &[("a.txt", data(70_000, 1))], CHUNK_GRANULE).await;
    let log = std::env::temp_dir().join(format!("deliver-idle-{}-{}.log", std::process::id(), h.item));
    let mut job = tokio::process::Command::new(env!("CARGO_BIN_EXE_deliver"))
        .env("DATABASE_URL", testing::database_url_of(&pool).await)
        .env("ENROLL_QUEUE_URL", &h.urls[&Queue::Enroll])
        .env("DELIVER_QUEUE_URL", &h.urls[&Queue::Deliver])
        .env("FINALIZE_QUEUE_URL", &h.urls[&Queue::Finalize])
        .env("DRIVE_API_ROOT", &h.drive.base)
        .env("DRIVE_ACCESS_TOKEN", "emulator-token")
        .env("DRIVE_CHUNK_SIZE", CHUNK_GRANULE.to_string())
        .env("DELIVER_WAIT_SECS", WAIT_SECS.to_string())
        .env("DELIVER_VISIBILITY_SECS", "120")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    tokio::time::sleep(Duration::from_secs(3 * WAIT_SECS + 2)).await;
    // Messages for items that do not exist are worked at once (dropped as unknown); the last
    // is the real item. Each is sent at a random moment of a wait period.
    let mut bodies: Vec<String> = (1..=4u64).map(|n| format!(r#"{{"item_id":{}}}"#, 900_000_000 + n)).collect();
    bodies.push(format!(r#"{{"item_id":{}}}"#, h.item));
    for body in &bodies {
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..WAIT_SECS * 1000))).await;
        send(&h, body).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(WAIT_SECS + 15);
        while messages_in(&h).await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{body} was not worked: taken by a receive nobody waits on?\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let _ = job.start_kill();
    let _ = job.wait().await;
    let stderr = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(stderr.contains("deliver job started"), "{stderr}");
    assert!(!stderr.contains("receive failed"), "an idle receive failed:\n{stderr}");
    assert_eq!(h.item_row().await.0, "delivered", "{stderr}");
    assert_eq!(h.drive_tree().await, h.expected());
}

/// A worker whose heartbeats stopped counting (its lease lapsed, and another worker took the
/// item over) stops at its next heartbeat: it uploads nothing more, never clears the new
/// holder's lease, never records the item; the new holder delivers every file once, MD5 equal.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_worker_that_lost_its_lease_stops_and_leaves_the_item_to_the_new_holder(pool: MySqlPool) {
    let files = vec![("a.mp4", data(6 * 1024 * 1024 + 11, 3)), ("b/c.bin", data(3 * 1024 * 1024, 9))];
    let h = harness(pool, &files, CHUNK_GRANULE * 4).await;
    // A real network's pace, so the first worker is mid-copy when it loses the item.
    h.drive.emu.set_faults(Faults { upload_bytes_per_sec: 1024 * 1024, ..Faults::default() });
    // Heartbeats every second (a lease of 3 s).
    let first = std::sync::Arc::new(Deliverer {
        pool: h.pool.clone(),
        drive: DriveClient::new(testing::fast_drive_config(&h.drive.base), StaticToken("emulator-token".into())),
        source: testing::s3_source().await,
        publisher: testing::fresh_queues(&h.sqs).await.0,
        settings: DeliverSettings { lease_secs: 3, ..DeliverSettings::default() },
        worker: "worker-a".into(),
    });
    let running = tokio::spawn({
        let (first, item) = (first.clone(), h.item);
        async move { first.deliver_item(item).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.drive.emu.bytes_written() < 1024 * 1024 {
        assert!(std::time::Instant::now() < deadline, "the upload never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its heartbeats fail past the lease (here: the lease is simply taken from it, as a
    // worker that found it lapsed would take it).
    sqlx::query(
        "UPDATE order_items SET lease_owner = 'worker-b', lease_until = NOW(3) + INTERVAL 60 SECOND WHERE id = ?",
    )
    .bind(h.item)
    .execute(&h.pool)
    .await
    .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the worker kept going after losing its lease")
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::Busy);
    let stopped_at = h.drive.emu.bytes_written();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.drive.emu.bytes_written(), stopped_at, "bytes uploaded after the lease was lost");
    let (owner, status, attempts): (Option<String>, String, u32) =
        sqlx::query_as("SELECT lease_owner, status, attempts FROM order_items WHERE id = ?")
            .bind(h.item)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!((owner.as_deref(), status.as_str(), attempts), (Some("worker-b"), "delivering", 0));

    // The new holder (its lease lapses for the test to claim it as "worker-b" would) finishes.
    h.drive.emu.set_faults(Faults::default());
    sqlx::query("UPDATE order_items SET lease_until = NOW(3) - INTERVAL 1 SECOND WHERE id = ?")
        .bind(h.item)
        .execute(&h.pool)
        .await
        .unwrap();
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    assert_eq!(h.drive_tree().await, h.expected(), "every file once, MD5 equal");
}

/// A file already on Drive under the stored id but not the source's bytes (a run that died
/// with a wrong or partial file there): the 409 finds an MD5 mismatch, and the file is deleted
/// before the redo, so the folder never holds two files of one name.
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_wrong_file_under_the_stored_id_is_replaced_never_duplicated(pool: MySqlPool) {
    let h = harness(pool, &tree(), CHUNK_GRANULE).await;
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    let _ = testing::drain(&h.sqs, &h.urls[&Queue::Finalize]).await;

    // Put other bytes under README.md's id, in its place, and forget that it was recorded.
    let (row, file_id): (u64, String) =
        sqlx::query_as("SELECT id, drive_file_id FROM delivered_files WHERE item_id = ? AND path = 'README.md'")
            .bind(h.item)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    let folder: String = sqlx::query_scalar("SELECT drive_folder_id FROM order_items WHERE id = ?")
        .bind(h.item)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    h.job.drive.delete(&file_id).await.unwrap();
    let wrong = b"# not the seller's README\n".to_vec();
    let session = h.job.drive.start_with_id("README.md", &folder, wrong.len() as u64, Some(&file_id)).await.unwrap();
    let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(wrong.clone()))]);
    h.job.drive.upload(&session, 0, wrong.len() as u64, chunks, &mut Md5::new(), &mut |_| {}).await.unwrap();
    sqlx::query("UPDATE delivered_files SET completed_at = NULL, md5 = NULL, upload_session_uri = NULL WHERE id = ?")
        .bind(row)
        .execute(&h.pool)
        .await
        .unwrap();
    h.back_to_enrolled().await;

    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    assert_eq!(h.drive_tree().await, h.expected(), "README.md once, with the source's bytes");
}

#[path = "deliver/drive_source.rs"]
mod drive_source;
