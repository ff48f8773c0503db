//! Courses kept in the seller's own Drive: copied server-side into the buyer's folder, or
//! shared as they are.

use super::*;
use coursedrop::adapters::source::drive::Shortcuts;
use drive_emulator::{DOCS_MIME, FOLDER_MIME, IDENTITY, Seed, SeedShare};

/// What the buyer's folder must hold: path, size, MD5 (none for a Doc) and type.
type Listing = Vec<(String, u64, Option<String>, String)>;

struct SellerCourse {
    folder: String,
    expected: Listing,
}

fn folder(h: &Harness, name: &str, parent: Option<&str>, shared: bool) -> String {
    let share_with = if shared { vec![SeedShare::new(IDENTITY, "reader")] } else { vec![] };
    h.drive
        .emu
        .seed(Seed {
            name: name.into(),
            parent: parent.map(String::from),
            mime_type: Some(FOLDER_MIME.into()),
            share_with,
            ..Seed::default()
        })
        .unwrap()
}

fn file(h: &Harness, parent: &str, name: &str, bytes: Vec<u8>) -> String {
    h.drive
        .emu
        .seed(Seed { name: name.into(), parent: Some(parent.into()), bytes: Some(bytes), ..Seed::default() })
        .unwrap()
}

fn md5_of(bytes: &[u8]) -> Option<String> {
    Some(hex::encode(Md5::digest(bytes)))
}

/// A seller's course, shared with our identity as reader: nested folders, an empty file, a
/// Doc, a shortcut to a file kept elsewhere in the seller's Drive, and a `big`-byte video.
fn seller_course(h: &Harness, big: u64) -> SellerCourse {
    let root = folder(h, "Rust cơ bản (bản gốc)", None, true);
    let intro = folder(h, "01-intro", Some(&root), false);
    let notes = folder(h, "notes", Some(&intro), false);
    let ownership = folder(h, "02-ownership", Some(&root), false);
    let welcome = data(300_001, 7);
    file(h, &intro, "welcome.mp4", welcome.clone());
    file(h, &notes, "empty.txt", vec![]);
    h.drive
        .emu
        .seed(Seed { name: "lesson.mp4".into(), parent: Some(ownership.clone()), zeros: Some(big), ..Seed::default() })
        .unwrap();
    h.drive
        .emu
        .seed(Seed {
            name: "Giáo trình".into(),
            parent: Some(root.clone()),
            mime_type: Some(DOCS_MIME.into()),
            size: Some(5120),
            ..Seed::default()
        })
        .unwrap();
    // Kept in another folder the seller also shared with us; the course links to it.
    let resources = folder(h, "Tài nguyên", None, true);
    let cheatsheet = b"%PDF-1.4 cheatsheet".to_vec();
    let target = file(h, &resources, "cheatsheet-v3.pdf", cheatsheet.clone());
    h.drive
        .emu
        .seed(Seed {
            name: "cheatsheet.pdf".into(),
            parent: Some(root.clone()),
            shortcut_target: Some(target),
            ..Seed::default()
        })
        .unwrap();
    let zeros_md5 = {
        let mut hasher = Md5::new();
        let block = vec![0u8; 1 << 20];
        let mut left = big;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            hasher.update(&block[..n]);
            left -= n as u64;
        }
        Some(hex::encode(hasher.finalize()))
    };
    let octet = "application/octet-stream".to_string();
    let mut expected = vec![
        ("01-intro/welcome.mp4".into(), welcome.len() as u64, md5_of(&welcome), octet.clone()),
        ("01-intro/notes/empty.txt".into(), 0, md5_of(&[]), octet.clone()),
        ("02-ownership/lesson.mp4".into(), big, zeros_md5, octet.clone()),
        ("Giáo trình".into(), 5120, None, DOCS_MIME.into()),
        ("cheatsheet.pdf".into(), cheatsheet.len() as u64, md5_of(&cheatsheet), octet),
    ];
    expected.sort();
    SellerCourse { folder: root, expected }
}

/// A harness whose course is the seller's Drive folder, delivered in `mode`.
async fn drive_harness(pool: MySqlPool, mode: &str, big: u64) -> (Harness, SellerCourse) {
    let h = harness(pool, &[], CHUNK_GRANULE).await;
    let course = seller_course(&h, big);
    use_drive_source(&h, &course.folder, mode).await;
    (h, course)
}

async fn use_drive_source(h: &Harness, folder: &str, mode: &str) {
    sqlx::query("UPDATE courses SET source = ?, delivery_mode = ?")
        .bind(format!("drive://{folder}"))
        .bind(mode)
        .execute(&h.pool)
        .await
        .unwrap();
}

impl Harness {
    /// The buyer's folder as Drive lists it: every file's path, size, MD5 and type.
    async fn copied(&self) -> Listing {
        let mut out: Listing = self
            .walk("size,md5Checksum")
            .await
            .into_iter()
            .map(|(path, f)| {
                let size = f["size"].as_str().unwrap().parse().unwrap();
                (path, size, f["md5Checksum"].as_str().map(String::from), f["mimeType"].as_str().unwrap().to_string())
            })
            .collect();
        out.sort();
        out
    }

    /// Another worker with its own settings (and queues of its own).
    async fn with(&self, settings: DeliverSettings) -> Deliverer<StaticToken, SqsPublisher> {
        Deliverer {
            pool: self.pool.clone(),
            drive: DriveClient::new(testing::fast_drive_config(&self.drive.base), StaticToken("emulator-token".into())),
            source: self.job.source.clone(),
            publisher: testing::fresh_queues(&self.sqs).await.0,
            settings,
            worker: "test-worker-2".into(),
        }
    }
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_drive_course_is_copied_server_side_every_file_once_and_exact(pool: MySqlPool) {
    let big = 2 * 1024 * 1024 * 1024 + 7; // 2 GiB and a little: no byte of it passes through us
    let (h, course) = drive_harness(pool, "copy", big).await;
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);

    assert_eq!(h.copied().await, course.expected, "the tree, each file once, MD5 (or size and type) equal");
    assert_eq!(h.drive.emu.bytes_written(), 0, "nothing was uploaded");
    let (copies, copied_bytes) = h.drive.emu.copies();
    let total: u64 = course.expected.iter().map(|e| e.1).sum();
    assert_eq!((copies, copied_bytes), (5, total), "one server-side copy per file");
    let (status, _, files_total, files_done, bytes_total, bytes_done, _) = h.item_row().await;
    assert_eq!(
        (status.as_str(), files_total, files_done, bytes_total, bytes_done),
        ("delivered", Some(5), 5, Some(total), total)
    );
    let mut md5s: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT path, md5 FROM delivered_files WHERE RIGHT(path, 1) <> '/' ORDER BY path")
            .fetch_all(&h.pool)
            .await
            .unwrap();
    md5s.sort(); // in Rust's order: the database's collation sorts case-insensitively
    let mut recorded: Vec<(String, Option<String>)> =
        course.expected.iter().map(|e| (e.0.clone(), e.2.clone())).collect();
    recorded.sort();
    assert_eq!(md5s, recorded, "every file recorded, with Drive's MD5 where it keeps one");
    assert_eq!(testing::drain(&h.sqs, &h.urls[&Queue::Finalize]).await, vec![format!("{{\"item_id\":{}}}", h.item)]);

    // A run that copied a file but died before recording it: the next run's copy under the
    // stored id gets 409, and the file already there is checked and recorded, not copied again.
    sqlx::query("UPDATE delivered_files SET completed_at = NULL WHERE path = '02-ownership/lesson.mp4'")
        .execute(&h.pool)
        .await
        .unwrap();
    h.back_to_enrolled().await;
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    assert_eq!(h.drive.emu.copies().0, 5, "no second copy");
    assert_eq!(h.copied().await, course.expected);
    let _ = testing::drain(&h.sqs, &h.urls[&Queue::Finalize]).await;

    // The Doc, which Drive copies only under an id of its own (the emulator refuses a
    // reserved one, `generatedIdNotSupported`, as Drive does): copied by a run that died
    // before recording anything of it. The next run finds it by its mark, not copying again.
    sqlx::query("UPDATE delivered_files SET completed_at = NULL, drive_file_id = NULL WHERE path = 'Giáo trình'")
        .execute(&h.pool)
        .await
        .unwrap();
    h.back_to_enrolled().await;
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    assert_eq!(h.drive.emu.copies().0, 5, "the Doc is not copied twice");
    assert_eq!(h.copied().await, course.expected);
    let _ = testing::drain(&h.sqs, &h.urls[&Queue::Finalize]).await;

    // A redelivered message copies nothing more.
    assert_eq!(
        h.job.deliver_item(h.item).await.unwrap(),
        Outcome::AlreadyDone(coursedrop::domain::ItemStatus::Delivered)
    );
    assert_eq!(h.drive.emu.copies().0, 5);
}

/// Drive allows `/` in names: a folder and a file named with one arrive in the buyer's copy
/// under the same names (inside our paths the `/` is written `∕`).
#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_slash_in_a_drive_name_stays_in_the_copys_name(pool: MySqlPool) {
    let h = harness(pool, &[], CHUNK_GRANULE).await;
    let root = folder(&h, "Khoá học", None, true);
    let part = folder(&h, "Phần 1/2", Some(&root), false);
    file(&h, &part, "Bài 1/2: mở đầu.pdf", b"%PDF-1.4 bai 1".to_vec());
    use_drive_source(&h, &root, "copy").await;
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    let names: Vec<String> =
        h.walk("size").await.into_iter().map(|(_, f)| f["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, vec!["Bài 1/2: mở đầu.pdf".to_string()]);
    let buyer_folder: String = sqlx::query_scalar("SELECT drive_folder_id FROM order_items WHERE id = ?")
        .bind(h.item)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    let drive = DriveClient::new(testing::fast_drive_config(&h.drive.base), StaticToken("emulator-token".into()));
    let top: Vec<String> = drive.children(&buyer_folder).await.unwrap().into_iter().map(|f| f.name).collect();
    assert_eq!(top, vec!["Phần 1/2".to_string()]);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_copy_killed_mid_course_resumes_and_never_duplicates(pool: MySqlPool) {
    let (h, course) = drive_harness(pool, "copy", 3 * 1024 * 1024).await;
    h.drive.emu.set_faults(Faults { copy_delay_ms: 300, ..Faults::default() });
    let job = h.with(DeliverSettings { files_in_flight: 2, lease_secs: 30, ..DeliverSettings::default() }).await;
    let job = std::sync::Arc::new(job);
    let running = tokio::spawn({
        let job = job.clone();
        let item = h.item;
        async move { job.deliver_item(item).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.drive.emu.copies().0 < 2 {
        assert!(std::time::Instant::now() < deadline, "the copies never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.abort();
    let _ = running.await;
    let done: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM delivered_files WHERE completed_at IS NOT NULL AND RIGHT(path, 1) <> '/'",
    )
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert!(done < 5, "stopped mid-course ({done} of 5 recorded)");

    // Copies the dead run made but never recorded exist under their stored ids: the next run
    // gets 409 for them and checks them, instead of copying again.
    sqlx::query("UPDATE order_items SET lease_until = NOW(3) - INTERVAL 1 SECOND").execute(&h.pool).await.unwrap();
    assert_eq!(job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    assert_eq!(h.copied().await, course.expected, "every file once, MD5 equal");
    assert_eq!(h.drive.emu.copies().0, 5, "each file copied once, across both runs");
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn ten_percent_drive_faults_still_copy_everything(pool: MySqlPool) {
    let (h, course) = drive_harness(pool, "copy", 1024 * 1024).await;
    h.drive.emu.set_faults(Faults::spread(0.10));
    assert_eq!(h.deliver_through_retries().await, Outcome::Delivered);
    h.drive.emu.set_faults(Faults::default());
    assert_eq!(h.copied().await, course.expected);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_copy_protected_file_fails_the_item_naming_it_and_what_to_change(pool: MySqlPool) {
    let h = harness(pool, &[], CHUNK_GRANULE).await;
    let course = seller_course(&h, 1024);
    let videos = h
        .drive
        .emu
        .seed(Seed {
            name: "03-bonus".into(),
            parent: Some(course.folder.clone()),
            mime_type: Some(FOLDER_MIME.into()),
            ..Seed::default()
        })
        .unwrap();
    h.drive
        .emu
        .seed(Seed {
            name: "secret.mp4".into(),
            parent: Some(videos),
            bytes: Some(b"no copies".to_vec()),
            copy_requires_writer_permission: true,
            ..Seed::default()
        })
        .unwrap();
    use_drive_source(&h, &course.folder, "copy").await;
    let outcome = h.job.deliver_item(h.item).await.unwrap();
    let Outcome::Failed(reason) = outcome else { panic!("expected a failure, got {outcome:?}") };
    assert!(reason.contains("03-bonus/secret.mp4") && reason.contains("Viewers and commenters"), "{reason}");
    let (status, stage, .., last_error) = h.item_row().await;
    assert_eq!((status.as_str(), stage.as_deref()), ("failed", Some("deliver")));
    assert!(last_error.unwrap().contains("03-bonus/secret.mp4"));
    let folder: Option<String> = sqlx::query_scalar("SELECT drive_folder_id FROM order_items WHERE id = ?")
        .bind(h.item)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(folder, None, "refused before anything was made for the buyer");
    assert_eq!(h.drive.emu.copies().0, 0);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn shortcuts_can_be_skipped_and_the_daily_cap_pauses_copies(pool: MySqlPool) {
    let (h, course) = drive_harness(pool, "copy", 1024).await;
    let job =
        h.with(DeliverSettings { shortcuts: Shortcuts::Skip, lease_secs: 30, ..DeliverSettings::default() }).await;
    h.drive.emu.set_faults(Faults { daily_cap_exceeded: true, ..Faults::default() });
    assert!(matches!(job.deliver_item(h.item).await.unwrap(), Outcome::Paused(_)));
    let attempts: u32 = sqlx::query_scalar("SELECT attempts FROM order_items WHERE id = ?")
        .bind(h.item)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "the cap spends no attempt");
    h.drive.emu.set_faults(Faults::default());
    assert_eq!(job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    let without_shortcut: Listing = course.expected.into_iter().filter(|e| e.0 != "cheatsheet.pdf").collect();
    assert_eq!(h.copied().await, without_shortcut);
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn a_full_shared_drive_fails_clearly_and_is_not_retried(pool: MySqlPool) {
    let (h, _) = drive_harness(pool, "copy", 1024).await;
    h.drive.emu.set_faults(Faults { shared_drive_full: true, ..Faults::default() });
    let outcome = h.job.deliver_item(h.item).await.unwrap();
    let Outcome::Failed(reason) = outcome else { panic!("expected a failure, got {outcome:?}") };
    assert!(reason.contains("maximum number of items") && reason.contains("teamDriveFileLimitExceeded"), "{reason}");
    let attempts: u32 = sqlx::query_scalar("SELECT attempts FROM order_items WHERE id = ?")
        .bind(h.item)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "failed at once, not after retries");
}

fn mailer() -> coursedrop::adapters::mail::Mailer {
    coursedrop::adapters::mail::Mailer::from_vars(&coursedrop::app::config::Vars::new(|k: &str| match k {
        "SMTP_URL" => Some(coursedrop::testing::smtp_url()),
        _ => None,
    }))
    .unwrap()
}

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn share_mode_gives_one_permission_on_the_sellers_folder_and_a_refund_removes_it(pool: MySqlPool) {
    let h = harness(pool, &[], CHUNK_GRANULE).await;
    let course = seller_course(&h, 1024);
    // Sharing the seller's folder needs editor access to it.
    sqlx::query("UPDATE courses SET source = ?, delivery_mode = 'share'")
        .bind(format!("drive://{}", course.folder))
        .execute(&h.pool)
        .await
        .unwrap();
    let outcome = h.job.deliver_item(h.item).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Failed(r) if r.contains("editor access")),
        "a reader cannot share: {outcome:?}"
    );

    let editable = h
        .drive
        .emu
        .seed(Seed {
            name: "Khoá học chia sẻ".into(),
            mime_type: Some(FOLDER_MIME.into()),
            share_with: vec![SeedShare::new(IDENTITY, "writer")],
            ..Seed::default()
        })
        .unwrap();
    file(&h, &editable, "bai-1.mp4", data(1000, 3));
    use_drive_source(&h, &editable, "share").await;
    sqlx::query("UPDATE order_items SET status = 'enrolled', failed_stage = NULL, last_error = NULL WHERE id = ?")
        .bind(h.item)
        .execute(&h.pool)
        .await
        .unwrap();
    assert_eq!(h.job.deliver_item(h.item).await.unwrap(), Outcome::Delivered);
    let (folder, link): (String, String) =
        sqlx::query_as("SELECT drive_folder_id, drive_link FROM order_items WHERE id = ?")
            .bind(h.item)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(folder, editable, "the item's folder is the seller's own");
    assert!(link.ends_with(&editable), "{link}");
    assert_eq!(h.drive.emu.copies().0, 0, "nothing copied");

    let email = format!("buyer-{}@gmail.com", rand::random_range(0..u64::MAX));
    sqlx::query("UPDATE orders SET status = 'paid', email = ?").bind(&email).execute(&h.pool).await.unwrap();
    let drive = DriveClient::new(testing::fast_drive_config(&h.drive.base), StaticToken("emulator-token".into()));
    let finalized = coursedrop::app::finalize::finalize_item(&h.pool, &drive, &mailer(), h.item).await.unwrap();
    assert!(matches!(finalized, coursedrop::app::finalize::Outcome::Completed { .. }), "{finalized:?}");
    let readers = |perms: Vec<coursedrop::adapters::drive::meta::Permission>| -> Vec<String> {
        perms.into_iter().filter(|p| p.role == "reader").filter_map(|p| p.email_address).collect()
    };
    assert_eq!(readers(drive.permissions(&editable).await.unwrap()), vec![email.clone()], "one reader: the buyer");
    assert_eq!(testing::mails_to(&email).len(), 1);

    let code: String = sqlx::query_scalar("SELECT code FROM orders").fetch_one(&h.pool).await.unwrap();
    let code = coursedrop::domain::OrderCode::from_stored(code);
    let report = coursedrop::app::refund::refund(&h.pool, &drive, &code, "operator:lan", "buyer asked").await.unwrap();
    assert_eq!(report.permissions_removed, 1);
    assert!(readers(drive.permissions(&editable).await.unwrap()).is_empty(), "the refund took the buyer's access away");
    let perms = drive.permissions(&editable).await.unwrap();
    assert!(perms.iter().any(|p| p.email_address.as_deref() == Some(IDENTITY)), "our own access stays");
    assert!(drive.file(&editable).await.unwrap().is_some(), "the seller's folder is never deleted");
}
