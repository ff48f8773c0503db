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
//! beside SePay's (for a sixth of the orders Casso's comes first), and another sixth are paid
//! through payOS (its signed webhook 1–3 times at the same moment as SePay's report of the same
//! transfer, whose text is payOS's, not our code); the job is killed with SIGKILL 5 times at random moments and
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

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use anyhow::Result;
use coursedrop::adapters::source::DeliveryMode;
use coursedrop::app::config::Vars;

mod checks;
mod faults;
mod inspect;
mod job;
mod setup;
mod traffic;

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

fn file_bytes(slug: &str, path: &str, size: usize) -> Vec<u8> {
    let seed = slug.len() * 31 + path.len() * 7;
    (0..size).map(|i| ((i.wrapping_mul(2_654_435_761) >> 11) + seed) as u8).collect()
}

pub async fn run(vars: &Vars) -> Result<bool> {
    let started = Instant::now();
    let n_orders: usize = vars.parse_or("CHAOS_ORDERS", 50)?;
    let timeout = Duration::from_secs(vars.parse_or("CHAOS_TIMEOUT_SECS", 600u64)?);
    let run_id: u32 = rand::random_range(0..1_000_000);
    let world = setup::build(vars).await?;
    println!(
        "chaos: {n_orders} orders, stack on {}, database {}, Drive emulator {} (10 % faults)",
        world.base, world.database, world.drive_base
    );

    // Orders: 1–3 courses each; one in ten stays unpaid.
    let http = coursedrop::support::http_client::client_builder().timeout(Duration::from_secs(20)).build()?;
    let orders = traffic::place_orders(&http, &world.base, n_orders, run_id).await?;

    // The outages, on their own schedule while payments and deliveries run.
    let kills = Arc::new(AtomicUsize::new(0));
    let refunded: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    // The items that were delivering when the job froze, and the frozen process's pid.
    let stalled: Arc<std::sync::Mutex<(Vec<u64>, u32)>> = Arc::default();
    let chaos = faults::spawn(&world, &kills, &refunded, &stalled, started);

    // Payments: each booked at the bank, its webhook 3–10 times at once, each retried until
    // answered 2xx, as SePay does. Orders in the middle stretch of the run lose their webhooks.
    let sent = traffic::pay(vars, &world.bank, &world.base, &http, &orders, n_orders).await?;

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
        .fetch_one(&world.pool)
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
    world.job.lock().await.kill().await;
    world.spare.lock().await.kill().await;
    world.drive.set_faults(drive_emulator::Faults::default());

    let ran = checks::Ran {
        started,
        run_id,
        orders: &orders,
        paid_codes,
        to_complete,
        refunded,
        stalled,
        frozen_pid,
        chaos_log,
        kills,
    };
    checks::run(vars, world, sent, ran).await
}
