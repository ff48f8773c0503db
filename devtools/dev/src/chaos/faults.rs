use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::domain::{Queue, Status};

use super::PREFIX;
use super::setup::{Setup, put_course_files, redriven_queue};

/// Starts the planned outages on their own schedule; the task answers what happened, a line each.
pub(super) fn spawn(
    world: &Setup,
    kills: &Arc<AtomicUsize>,
    refunded: &Arc<std::sync::Mutex<Vec<(String, String)>>>,
    stalled: &Arc<std::sync::Mutex<(Vec<u64>, u32)>>,
    started: Instant,
) -> tokio::task::JoinHandle<Vec<String>> {
    let (job, kills, spare) = (world.job.clone(), kills.clone(), world.spare.clone());
    let (refunded, stalled) = (refunded.clone(), stalled.clone());
    let pool = world.pool.clone();
    let deliver_url =
        world.stack.queue_urls.iter().find(|(q, _)| *q == Queue::Deliver).map(|(_, u)| u.clone()).unwrap_or_default();
    let refund_drive = DriveClient::new(
        coursedrop::adapters::drive::DriveConfig::new(&world.drive_base),
        coursedrop::adapters::drive::StaticToken("emulator-token".into()),
    );
    let stack_sqs = world.stack.sqs.clone();
    let queue_names: Vec<String> = Queue::ALL.iter().map(|q| format!("{PREFIX}{}", q.as_str())).collect();
    let source = world.source.clone();
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
                Ok(s) => {
                    format!("at {:>5.1} s  {s} (took {} ms)", (t - run_started).as_secs_f64(), t.elapsed().as_millis())
                }
                Err(e) => format!("FAILED {what}: {e:#}"),
            });
        }
        log
    })
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
