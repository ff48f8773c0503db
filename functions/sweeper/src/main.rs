//! The sweeper: on Lambda, one sweep per scheduled invocation (EventBridge, every minute);
//! elsewhere, a sweep every `SWEEP_INTERVAL` (default 60s) until SIGINT/SIGTERM.

// lambda_runtime's layered service makes the main future's type deeper than the default limit.
#![recursion_limit = "256"]

use std::time::Duration;

use anyhow::Context;
use coursedrop::app::config::AppVars;
use coursedrop::app::sweeper::{self, SweepReport};
use lambda_runtime::{LambdaEvent, service_fn};

/// Outbox rows younger than this are left to the relay that wrote them.
const OUTBOX_GRACE_SECS: u32 = 30;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = coursedrop::app::config::connect_database(&vars, 2).await.context("connecting to the database")?;
    let publisher = coursedrop::app::config::sqs_publisher(&vars).await;
    let deadlines = coursedrop::app::sweeper::Deadlines::from_vars(&vars)?;
    let timing = sweeper::OutboxTiming::from_vars(&vars, OUTBOX_GRACE_SECS)?;
    let reminders =
        coursedrop::app::reminders::Reminders::from_vars(&vars).context("the payment reminders' settings")?;

    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let (pool, publisher, deadlines, reminders) = (&pool, &publisher, &deadlines, &reminders);
        // The scheduled event carries nothing the sweep needs.
        return lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
            sweeper::sweep_with(pool, publisher, timing, deadlines, Some(reminders))
                .await
                .map_err(lambda_runtime::Error::from)
        }))
        .await
        .map_err(|e| anyhow::anyhow!(e));
    }

    let interval = vars.duration_or("SWEEP_INTERVAL", "60s")?;
    let (pool, publisher, deadlines, reminders) = (&pool, &publisher, &deadlines, &reminders);
    let period = Duration::from_secs(interval.num_seconds() as u64);
    coursedrop::runtime::schedule::every(period, coursedrop::runtime::http::shutdown_signal(), move || async move {
        let result: Result<SweepReport, _> =
            sweeper::sweep_with(pool, publisher, timing, deadlines, Some(reminders)).await;
        if let Err(e) = result {
            tracing::error!(error = %e, "sweep failed; retrying at the next tick");
        }
    })
    .await;
    Ok(())
}
