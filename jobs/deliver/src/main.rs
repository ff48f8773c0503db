//! The deliver job (ECS Fargate): a long-running consumer of the deliver queue. Everything is
//! built once at start; SIGTERM (ECS stopping the task) stops receiving, lets work in flight
//! finish within the grace period and hands back the rest.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::app::config::AppVars;
use coursedrop::domain::Queue;
use deliver::{ConsumerSettings, DeliverSettings, Deliverer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = coursedrop::app::config::connect_database(&vars, 8).await.context("connecting to the database")?;
    let publisher = coursedrop::app::config::sqs_publisher(&vars).await;
    let queue_url = publisher.queue_url(Queue::Deliver).await.map_err(|e| anyhow::anyhow!(e))?;
    let sqs = publisher.client().clone();

    let settings = DeliverSettings {
        files_in_flight: vars.parse_or("DELIVER_FILES_IN_FLIGHT", 4usize)?,
        lease_secs: vars.parse_or("DELIVER_LEASE_SECS", 120u32)?,
        max_attempts: vars.parse_or("DELIVER_MAX_ATTEMPTS", 5u32)?,
        parent_folder: vars.string_or("DRIVE_PARENT_FOLDER_ID", "root"),
        shortcuts: vars.parse_or("DRIVE_SHORTCUTS", coursedrop::adapters::source::drive::Shortcuts::Follow)?,
    };
    let job = Arc::new(Deliverer {
        pool,
        drive: DriveClient::from_vars(&vars).await?,
        source: coursedrop::adapters::source::S3Source::from_vars(&vars).await,
        publisher,
        settings,
        worker: format!("deliver-{}-{}", hostname(), std::process::id()),
    });
    // How long a crashed task's message stays hidden; the heartbeat renews it at half.
    let visibility_secs = vars.parse_or("DELIVER_VISIBILITY_SECS", 300i32)?;
    let consumer = ConsumerSettings {
        max_in_flight: vars.parse_or("DELIVER_MESSAGES_IN_FLIGHT", 2usize)?,
        grace: Duration::from_secs(vars.parse_or("DELIVER_STOP_GRACE_SECS", 90u64)?),
        visibility_secs,
        retry_delay_secs: vars.parse_or("DELIVER_RETRY_DELAY_SECS", 60i32)?,
        // A busy item's message: back when the holder's lease (or its own message) could.
        busy_delay_secs: vars.parse_or("DELIVER_BUSY_DELAY_SECS", visibility_secs)?,
        wait_secs: long_poll_wait(&vars)?,
        ..ConsumerSettings::default()
    };
    tracing::info!(queue = %queue_url, "deliver job started");
    deliver::consume(job, sqs, queue_url, consumer, coursedrop::runtime::http::shutdown_signal()).await;
    tracing::info!("deliver job stopped");
    Ok(())
}

/// SQS's long-poll wait, 1 to 20 s (SQS refuses more); the receiving client's timeouts are
/// set from it.
fn long_poll_wait(vars: &coursedrop::app::config::Vars) -> anyhow::Result<i32> {
    let wait = vars.parse_or("DELIVER_WAIT_SECS", 20i32)?;
    anyhow::ensure!((1..=20).contains(&wait), "DELIVER_WAIT_SECS is {wait}: SQS waits 1 to 20 seconds");
    Ok(wait)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "local".into())
}
