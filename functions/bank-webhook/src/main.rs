//! The bank-webhook Lambda: config, pool, SQS client and router built once at cold start.

use std::sync::Arc;

use anyhow::Context;
use coursedrop::app::config::AppVars;

// One thread: a Lambda serves one request at a time, and a second worker would only add
// wake-ups between threads (also when run as a local server, as the bench does).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = coursedrop::app::config::connect_database(&vars, 4).await.context("connecting to the database")?;
    let publisher = coursedrop::app::config::sqs_publisher(&vars).await;
    let state = bank_webhook::WebhookState::from_vars(pool, publisher, &vars)?;
    coursedrop::runtime::http::serve(bank_webhook::router(Arc::new(state)), 3002).await.map_err(|e| anyhow::anyhow!(e))
}
