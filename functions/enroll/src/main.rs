//! The enroll Lambda (SQS, `ReportBatchItemFailures`). Config, pool, provider and SQS client
//! are built once at cold start.

// lambda_runtime's layered service makes the main future's type deeper than the default limit.
#![recursion_limit = "256"]

use anyhow::Context;
use aws_lambda_events::event::sqs::SqsEvent;
use coursedrop::app::config::AppVars;
use coursedrop::app::enrollment::{EnrollSettings, Provider};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = coursedrop::app::config::connect_database(&vars, 2).await.context("connecting to the database")?;
    let ctx = enroll::EnrollContext {
        pool,
        provider: Provider::from_vars(&vars)?,
        publisher: coursedrop::app::config::sqs_publisher(&vars).await,
        settings: EnrollSettings::from_vars(&vars)?,
        worker: std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| "enroll".into()),
    };
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(enroll::handle(ctx, event.payload).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
