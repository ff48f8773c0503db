//! The reconciler: on Lambda, one pass over every configured bank feed per scheduled
//! invocation (EventBridge, every `RECONCILE_INTERVAL`); elsewhere, a pass every
//! `RECONCILE_INTERVAL` (default 10m) until SIGINT/SIGTERM.
//!
//! A pass lists each feed's transfers since its cursor and records every one through the
//! same path as the webhooks, so a webhook lost for any reason (our outage, a bad deploy, a
//! wrong key, SePay giving up after its eight tries) costs at most one interval, not money.

// lambda_runtime's layered service makes the main future's type deeper than the default limit.
#![recursion_limit = "256"]

use std::time::Duration;

use anyhow::Context;
use coursedrop::app::config::{self, AppVars};
use coursedrop::app::payments::Gateway;
use coursedrop::app::{reconcile, routes};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = coursedrop::app::config::connect_database(&vars, 2).await.context("connecting to the database")?;
    let publisher = coursedrop::app::config::sqs_publisher(&vars).await;
    let feeds = config::feeds(&vars)?;
    // payOS has no transaction list: each pending order's link is asked about instead, and the
    // routes of orders that no longer wait for money are closed.
    let routes = config::payment_routes(&vars)?;
    let settings = config::payment_settings(&vars)?;
    let lookback = vars.parse_or("RECONCILE_LOOKBACK_DAYS", reconcile::DEFAULT_LOOKBACK_DAYS)?;
    // Said once, at start: a feed with no credentials is off, not failing.
    for off in &feeds.off {
        tracing::info!("{off}");
    }

    let run = || async {
        let mut outcomes = reconcile::pass_all(&pool, &feeds, &settings, &publisher, None, None, lookback).await;
        if let Err(e) = routes::pass(&pool, &routes, &settings, &publisher).await {
            tracing::error!(error = %e, "the payment routes' pass failed; the next one tries again");
            outcomes.push(reconcile::Outcome { gateway: Gateway::Payos, result: Err(e.into()) });
        }
        outcomes
    };
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let run = &run;
        // The scheduled event carries nothing the pass needs.
        return lambda_runtime::run(lambda_runtime::service_fn(
            move |_: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
                let outcomes = run().await;
                let failed: Vec<String> = outcomes
                    .iter()
                    .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.gateway)))
                    .collect();
                // A failed feed fails the invocation, so the function's Errors metric alarms.
                if failed.is_empty() {
                    Ok(serde_json::json!({"feeds": outcomes.len()}))
                } else {
                    Err(lambda_runtime::Error::from(failed.join("; ")))
                }
            },
        ))
        .await
        .map_err(|e| anyhow::anyhow!(e));
    }

    let interval = vars.duration_or("RECONCILE_INTERVAL", "10m")?;
    let period = Duration::from_secs(interval.num_seconds() as u64);
    // Each failure is logged by the pass; the next tick tries again from the cursor.
    coursedrop::runtime::schedule::every(period, coursedrop::runtime::http::shutdown_signal(), || async {
        run().await;
    })
    .await;
    Ok(())
}
