//! The finalize Lambda (SQS, `ReportBatchItemFailures`). Config, pool, Drive client and SMTP
//! transport are built once at cold start.

// lambda_runtime's layered service makes the main future's type deeper than the default limit.
#![recursion_limit = "256"]

use anyhow::Context;
use aws_lambda_events::event::sqs::SqsEvent;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::app::config::AppVars;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = coursedrop::app::config::connect_database(&vars, 2).await.context("connecting to the database")?;
    let ctx = finalize::FinalizeContext {
        pool,
        drive: DriveClient::from_vars(&vars).await?,
        mailer: coursedrop::adapters::mail::Mailer::from_vars(&vars)?,
    };
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(finalize::handle(ctx, event.payload).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
