use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use coursedrop::adapters::source::DeliveryMode;
use coursedrop::app::config::{self, Vars};
use coursedrop::domain::{CourseSlug, Status, Vnd};
use coursedrop::store::catalog;
use serde_json::json;
use tokio::sync::Mutex;

use super::job::DeliverJob;
use super::{BUCKET, CASSO_KEY, COURSES, Files, PREFIX, drive_mode, file_bytes};
use crate::stack;

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

/// What the phases after setup use: the stack, its emulators and the deliver jobs.
pub(super) struct Setup {
    pub(super) pool: sqlx::MySqlPool,
    pub(super) database: String,
    pub(super) stack: stack::Stack,
    pub(super) dead_letters: Vec<String>,
    pub(super) source: coursedrop::adapters::source::S3Source,
    pub(super) drive_dir: std::path::PathBuf,
    pub(super) drive: drive_emulator::Emulator,
    pub(super) drive_base: String,
    pub(super) seller_folders: HashMap<&'static str, String>,
    pub(super) base: String,
    pub(super) bank: bank_emulator::Emulator,
    pub(super) job: Arc<Mutex<DeliverJob>>,
    pub(super) spare: Arc<Mutex<DeliverJob>>,
}

/// A fresh database with the chaos catalog, the stack on it with the Drive and bank emulators,
/// and the deliver job started.
pub(super) async fn build(vars: &Vars) -> Result<Setup> {
    let database_url = config::database_url(vars);
    let (pool, database) = stack::fresh_database(&database_url, "chaos", 16).await?;
    let chaos_db_url = format!("{}/{database}", database_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(""));
    let chaos_vars = vars.with(|k: &str| match k {
        "QUEUE_NAME_PREFIX" => Some(PREFIX.into()),
        "ENROLL_LEASE" => Some("5s".into()),
        "CASSO_CHECKSUM_KEY" => Some(CASSO_KEY.into()),
        // payOS's webhooks are in the mix: the traffic signs them as payOS does.
        "PAYOS_CHECKSUM_KEY" => Some(bank_emulator::payos::CHECKSUM_KEY.into()),
        _ => None,
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
    let bank_vars = stack::bank_vars(&chaos_vars, &bank_base, CASSO_KEY, &format!("{base}/"));
    stack::spawn_reconciler(
        pool.clone(),
        stack.publisher.clone(),
        config::feeds(&bank_vars)?,
        config::payment_routes(&bank_vars)?,
        config::payment_settings(&bank_vars)?,
        Duration::from_secs(5),
    );

    let job = Arc::new(Mutex::new(DeliverJob::start(vars, &chaos_db_url, &drive_base)?));
    // A second worker, started when the first is frozen: it takes over the frozen one's items.
    let spare = Arc::new(Mutex::new(DeliverJob::prepared(job.lock().await.env.clone())));
    Ok(Setup {
        pool,
        database,
        stack,
        dead_letters,
        source,
        drive_dir,
        drive,
        drive_base,
        seller_folders,
        base,
        bank,
        job,
        spare,
    })
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
pub(super) async fn redriven_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
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

pub(super) async fn put_course_files(source: &coursedrop::adapters::source::S3Source) -> Result<()> {
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
