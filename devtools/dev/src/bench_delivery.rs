//! `make bench` (delivery part): one course copied from local S3 to the Drive emulator by a
//! child process at default settings, against (a) reading the same objects from S3 and
//! discarding them and (b) uploading the same bytes from memory to the emulator, in the same
//! run. The child reports its own peak RSS (VmHWM), for a 1 GiB and a 4 GiB course.
//!
//! Two scenarios for the 1 GiB course. Direct: every process on the machine's cores, so the
//! figures say how much CPU the work costs here. Shaped links: S3 and Drive each behind a
//! link that caps every connection's rate (`link`), as the network does in production, so
//! the figures say whether the pipeline overlaps reading with sending.
//!
//! `BENCH_JOB_EXE` delivers with another build's `coursedrop-dev deliver-one` (the bench
//! itself is the default), to compare two builds in one run.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::drive::{DriveConfig, StaticToken};
use coursedrop::adapters::source::{S3Location, S3Source};
use coursedrop::app::config::{self, Vars};
use coursedrop::domain::{CourseSlug, Email, OrderCode, Vnd};
use coursedrop::store::{catalog, orders};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sqlx::MySqlPool;

use crate::stack;

const BUCKET: &str = "coursedrop-bench";
const FILE: usize = 128 * 1024 * 1024;
const FILES_IN_FLIGHT: usize = 4;

/// CPU seconds (user + system) a process has used, from /proc (Linux's clock tick is 100 Hz).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The moto server's pid (started by devtools/services), if it is ours.
fn moto_pid() -> Option<String> {
    std::fs::read_to_string(".local/run/moto.pid").ok().map(|p| p.trim().to_string())
}

/// CPU seconds used during `f` by this process (the Drive emulator and the bench's own
/// client) and by moto; with the wall time, whether the two cores were the bound.
async fn with_cpu<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<(T, Value)> {
    let moto = moto_pid();
    let (self0, moto0) = (cpu_seconds("self"), moto.as_deref().map(cpu_seconds));
    let started = Instant::now();
    let out = f.await?;
    let wall = started.elapsed().as_secs_f64();
    let round = |v: f64| (v * 10.0).round() / 10.0;
    let this = cpu_seconds("self") - self0;
    let moto = moto.as_deref().map(cpu_seconds).zip(moto0).map(|(a, b)| a - b);
    Ok((out, json!({"wall_s": round(wall), "emulator_and_bench_cpu_s": round(this), "moto_cpu_s": moto.map(round)})))
}

/// Delivery's rate as a share of the slower of reading alone and writing alone.
fn ratio_to_slower(deliver_mb_s: f64, read_mb_s: f64, write_mb_s: f64) -> f64 {
    (deliver_mb_s / read_mb_s.min(write_mb_s) * 100.0).round() / 100.0
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    (bytes as f64 / 1e6 / secs * 10.0).round() / 10.0
}

async fn seed_course(source: &S3Source, gib: usize) -> Result<S3Location> {
    source.ensure_bucket(BUCKET, "ap-southeast-1").await?;
    let s3 = source.client();
    let body: Bytes = (0..FILE).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect::<Vec<u8>>().into();
    for n in 0..gib * 8 {
        let key = format!("gib-{gib}/part-{:02}/lesson-{n:03}.mp4", n / 8);
        if s3.head_object().bucket(BUCKET).key(&key).send().await.ok().and_then(|h| h.content_length())
            == Some(FILE as i64)
        {
            continue;
        }
        s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(body.clone().into())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("putting {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
    }
    Ok(S3Location::parse(&format!("s3://{BUCKET}/gib-{gib}/"))?)
}

async fn enrolled_item(pool: &MySqlPool, at: &S3Location, gib: usize) -> Result<u64> {
    enrolled_item_of(pool, &format!("bench-{gib}-gib"), &at.to_string()).await
}

async fn enrolled_item_of(pool: &MySqlPool, slug: &str, source: &str) -> Result<u64> {
    let slug = CourseSlug::parse(slug)?;
    let mut conn = pool.acquire().await?;
    let course = catalog::upsert(
        &mut conn,
        &catalog::NewCourse {
            slug: &slug,
            title: "Bench",
            price: Vnd::new(1)?,
            source,
            delivery_mode: coursedrop::adapters::source::DeliveryMode::Copy,
            lms_course_id: None,
        },
    )
    .await?;
    let code = OrderCode::from_stored(format!("CD{:08}", rand::random_range(0..100_000_000u32)));
    let created = orders::create(
        pool,
        &orders::NewOrder {
            code: &code,
            email: &Email::parse("bench@example.com")?,
            phone: None,
            lang: "vi",
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            items: &[(course, Vnd::new(1)?)],
            idempotency_key: None,
            request_hash: None,
            coupon: None,
        },
        "bench",
    )
    .await?;
    let item = created.item_ids[0];
    sqlx::query("UPDATE order_items SET status = 'enrolled' WHERE id = ?").bind(item).execute(pool).await?;
    Ok(item)
}

/// (a): the objects read from S3, F at a time, bytes discarded.
async fn read_alone(source: &S3Source, at: &S3Location) -> Result<(u64, f64)> {
    let objects = source.list(at).await?;
    let started = Instant::now();
    let totals: Vec<u64> = futures_util::stream::iter(objects.iter().map(|o| async move {
        let mut stream = source.open(&at.bucket, &o.key, 0).await?;
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            n += chunk?.len() as u64;
        }
        Ok::<u64, coursedrop::adapters::source::SourceError>(n)
    }))
    .buffer_unordered(FILES_IN_FLIGHT)
    .try_collect()
    .await?;
    Ok((totals.iter().sum(), started.elapsed().as_secs_f64()))
}

/// (b): the same bytes uploaded from memory to the emulator, F files at a time.
async fn write_alone(drive_base: &str, files: usize) -> Result<(u64, f64)> {
    let drive = Arc::new(DriveClient::new(DriveConfig::new(drive_base), StaticToken("emulator-token".into())));
    let body: Bytes = vec![7u8; FILE].into();
    let started = Instant::now();
    futures_util::stream::iter((0..files).map(|n| {
        let (drive, body) = (drive.clone(), body.clone());
        async move {
            let session = drive.start(&format!("w{n}"), "root", FILE as u64).await?;
            let pieces: Vec<Result<Bytes, std::io::Error>> =
                (0..FILE).step_by(1 << 20).map(|i| Ok(body.slice(i..(i + (1 << 20)).min(FILE)))).collect();
            drive
                .upload(
                    &session,
                    0,
                    FILE as u64,
                    futures_util::stream::iter(pieces),
                    &mut md5::Md5::default(),
                    &mut |_| {},
                )
                .await?;
            Ok::<(), coursedrop::adapters::drive::DriveError>(())
        }
    }))
    .buffer_unordered(FILES_IN_FLIGHT)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(((files * FILE) as u64, started.elapsed().as_secs_f64()))
}

/// Where the delivering child runs and what it talks to.
struct Child<'a> {
    exe: &'a std::path::Path,
    database_url: &'a str,
    drive_base: &'a str,
    /// Local S3 (and SQS) at another address than `AWS_ENDPOINT_URL`: a shaped link.
    aws_endpoint: Option<&'a str>,
}

/// Delivery by a child process (`deliver-one`), so its memory is measured alone.
async fn deliver_in_child(child: &Child<'_>, item: u64) -> Result<(f64, u64, f64)> {
    let started = Instant::now();
    let mut command = tokio::process::Command::new(child.exe);
    command
        .arg("deliver-one")
        .arg(item.to_string())
        .env("DATABASE_URL", child.database_url)
        .env("DRIVE_API_ROOT", child.drive_base)
        .env("DRIVE_ACCESS_TOKEN", "emulator-token")
        .env("QUEUE_NAME_PREFIX", "coursedrop-bench-");
    if let Some(endpoint) = child.aws_endpoint {
        command.env("AWS_ENDPOINT_URL", endpoint);
    }
    let out = command.output().await?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("deliver-one failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: Value = serde_json::from_slice(&out.stdout).context("deliver-one's report")?;
    Ok((secs, report["peak_rss_kib"].as_u64().unwrap_or(0), report["cpu_s"].as_f64().unwrap_or(0.0)))
}

/// The child: deliver one item at default settings, print `{"outcome", "peak_rss_kib"}`.
pub async fn deliver_one(vars: &Vars, item: u64) -> Result<()> {
    let pool = coursedrop::app::config::connect_database(vars, 8).await?;
    let job = deliver::Deliverer {
        pool,
        drive: DriveClient::from_vars(vars).await?,
        source: S3Source::from_vars(vars).await,
        publisher: coursedrop::app::config::sqs_publisher(vars).await,
        settings: deliver::DeliverSettings::default(),
        worker: "bench".into(),
    };
    let outcome = job.deliver_item(item).await?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    println!("{}", json!({"outcome": format!("{outcome:?}"), "peak_rss_kib": peak, "cpu_s": cpu_seconds("self")}));
    if outcome != deliver::Outcome::Delivered {
        bail!("not delivered: {outcome:?}");
    }
    Ok(())
}

/// The 1 GiB course kept in the seller's Drive instead (8 files of 128 MiB, readable by our
/// identity), delivered by server-side copy by the same child: no byte passes through it.
async fn from_drive(emu: &drive_emulator::Emulator, child: &Child<'_>, pool: &MySqlPool) -> Result<Value> {
    use drive_emulator::{FOLDER_MIME, IDENTITY, Seed, SeedShare};
    let folder = emu.seed(Seed {
        name: "Bench 1 GiB".into(),
        mime_type: Some(FOLDER_MIME.into()),
        share_with: vec![SeedShare::new(IDENTITY, "reader")],
        ..Seed::default()
    })?;
    for part in 0..2 {
        let sub = emu.seed(Seed {
            name: format!("part-{part:02}"),
            parent: Some(folder.clone()),
            mime_type: Some(FOLDER_MIME.into()),
            ..Seed::default()
        })?;
        for n in 0..4 {
            emu.seed(Seed {
                name: format!("lesson-{:03}.mp4", part * 4 + n),
                parent: Some(sub.clone()),
                zeros: Some(FILE as u64),
                ..Seed::default()
            })?;
        }
    }
    let item = enrolled_item_of(pool, "bench-1-gib-drive", &format!("drive://{folder}")).await?;
    let ((secs, rss, job_cpu), mut cpu) = with_cpu(deliver_in_child(child, item)).await?;
    cpu["job_cpu_s"] = json!((job_cpu * 100.0).round() / 100.0);
    let (copies, copied_bytes) = emu.copies();
    Ok(json!({
        "seconds": (secs * 100.0).round() / 100.0,
        "peak_rss_mib": rss / 1024,
        "job_cpu_s": (job_cpu * 100.0).round() / 100.0,
        "copies": copies,
        "copied_bytes": copied_bytes,
        "uploaded_bytes": emu.bytes_written(),
        "cpu": cpu,
    }))
}

/// The 1 GiB course again, with S3 and Drive behind shaped links: delivery against reading
/// alone and writing alone through the same links.
async fn shaped_links(
    vars: &Vars,
    child: &Child<'_>,
    pool: &MySqlPool,
    source: &S3Source,
    at: &S3Location,
) -> Result<Value> {
    // Assumed, not measured: one S3 GET and one Drive upload session each get tens of MB/s
    // over the internet, Drive's the slower. Both are settings.
    let s3_mb_s: f64 = vars.parse_or("BENCH_S3_LINK_MB_S", 50.0)?;
    let drive_mb_s: f64 = vars.parse_or("BENCH_DRIVE_LINK_MB_S", 25.0)?;
    let s3_link =
        crate::link::spawn(&vars.string_or("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"), s3_mb_s * 1e6).await?;
    let drive_link = crate::link::spawn(child.drive_base, drive_mb_s * 1e6).await?;
    println!("bench: shaped links: S3 {s3_mb_s} MB/s and Drive {drive_mb_s} MB/s per connection");

    let item = enrolled_item(pool, at, 1).await?;
    let linked = Child { drive_base: &drive_link, aws_endpoint: Some(&s3_link), ..*child };
    let (secs, rss, job_cpu) = deliver_in_child(&linked, item).await?;
    let bytes = (8 * FILE) as u64;
    let linked_s3 = aws_sdk_s3::Client::from_conf(source.client().config().to_builder().endpoint_url(&s3_link).build());
    let (read, read_secs) = read_alone(&S3Source::new(linked_s3), at).await?;
    let (written, write_secs) = write_alone(&drive_link, 8).await?;
    let (d, r, w) = (mb_per_s(bytes, secs), mb_per_s(read, read_secs), mb_per_s(written, write_secs));
    Ok(json!({
        "s3_link_mb_s_per_connection": s3_mb_s,
        "drive_link_mb_s_per_connection": drive_mb_s,
        "deliver_mb_s": d,
        "peak_rss_mib": rss / 1024,
        "job_cpu_s": (job_cpu * 10.0).round() / 10.0,
        "s3_read_alone_mb_s": r,
        "drive_write_alone_mb_s": w,
        "ratio_to_slower_alone": ratio_to_slower(d, r, w),
    }))
}

pub async fn run(vars: &Vars) -> Result<Value> {
    let (pool, db) = stack::fresh_database(&config::database_url(vars), "benchdeliver", 8).await?;
    let bench_vars = vars.with(|k: &str| (k == "QUEUE_NAME_PREFIX").then(|| "coursedrop-bench-".into()));
    let _stack = stack::build(pool.clone(), &bench_vars).await?;
    let url = config::database_url(vars);
    let db_url = format!("{}/{db}", url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url));
    let source = S3Source::from_vars(vars).await;
    let dir = std::path::PathBuf::from(".local/bench-drive");
    let _ = std::fs::remove_dir_all(&dir);
    let (emu, drive_base) = stack::spawn_drive(&dir, 0).await?;

    let other_exe = vars.get("BENCH_JOB_EXE");
    let exe = match &other_exe {
        Some(path) => std::path::PathBuf::from(path),
        None => std::env::current_exe()?,
    };
    let child = Child { exe: &exe, database_url: &db_url, drive_base: &drive_base, aws_endpoint: None };

    let mut report = json!({"file_mib": FILE >> 20, "files_in_flight": FILES_IN_FLIGHT, "chunk_mib": 16});
    if let Some(other) = other_exe {
        report["job_exe"] = json!(other);
    }
    for gib in [1usize, 4] {
        println!("bench: seeding a {gib} GiB course in local S3 (kept for the next run)");
        let at = seed_course(&source, gib).await?;
        let bytes = (gib * 8 * FILE) as u64;
        let item = enrolled_item(&pool, &at, gib).await?;
        let ((secs, rss, job_cpu), mut cpu) = with_cpu(deliver_in_child(&child, item)).await?;
        cpu["job_cpu_s"] = json!((job_cpu * 10.0).round() / 10.0);
        let key = format!("{gib}_gib");
        report[&key] = json!({"deliver_mb_s": mb_per_s(bytes, secs), "seconds": (secs * 10.0).round() / 10.0, "peak_rss_mib": rss / 1024, "cpu": cpu});
        if gib == 1 {
            let ((read, read_secs), read_cpu) = with_cpu(read_alone(&source, &at)).await?;
            let ((written, write_secs), write_cpu) = with_cpu(write_alone(&drive_base, gib * 8)).await?;
            report[&key]["s3_read_alone_cpu"] = read_cpu;
            report[&key]["drive_write_alone_cpu"] = write_cpu;
            let (r, w) = (mb_per_s(read, read_secs), mb_per_s(written, write_secs));
            report[&key]["s3_read_alone_mb_s"] = json!(r);
            report[&key]["drive_write_alone_mb_s"] = json!(w);
            report[&key]["ratio_to_slower_alone"] = json!(ratio_to_slower(mb_per_s(bytes, secs), r, w));
            let _ = std::fs::remove_dir_all(dir.join("blobs"));
            std::fs::create_dir_all(dir.join("blobs"))?;
            report[&key]["shaped_links"] = shaped_links(vars, &child, &pool, &source, &at).await?;
            let _ = std::fs::remove_dir_all(dir.join("blobs"));
            std::fs::create_dir_all(dir.join("blobs"))?;
            let before = emu.bytes_written();
            let mut drive = from_drive(&emu, &child, &pool).await?;
            drive["uploaded_bytes"] = json!(emu.bytes_written() - before);
            // What a seller gains by keeping courses in Drive: the job's CPU for the same GiB.
            let s3_cpu = job_cpu.max(0.001);
            let drive_cpu = drive["job_cpu_s"].as_f64().unwrap_or(0.0).max(0.001);
            drive["s3_over_drive_job_cpu"] = json!((s3_cpu / drive_cpu * 10.0).round() / 10.0);
            drive["s3_over_drive_wall"] =
                json!((secs / drive["seconds"].as_f64().unwrap_or(1.0).max(0.001) * 10.0).round() / 10.0);
            report[&key]["from_drive"] = drive;
        }
        println!("bench: {key}: {}", report[&key]);
        let _ = std::fs::remove_dir_all(dir.join("blobs"));
        std::fs::create_dir_all(dir.join("blobs"))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{db}`"))).execute(&pool).await?;
    Ok(report)
}
