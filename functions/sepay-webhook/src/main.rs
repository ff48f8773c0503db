//! The sepay-webhook Lambda: config, pool, SQS client and router built once at cold start.

use std::sync::Arc;

use anyhow::Context;
use coursedrop::adapters::queue::{QueueConfig, SqsPublisher, aws_sdk_config};
use coursedrop::config::{self, Vars};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::telemetry::init();
    let vars = Vars::process();
    let pool =
        coursedrop::store::connect(&config::database_url(&vars), 4).await.context("connecting to the database")?;
    let sqs = aws_sdk_sqs::Client::new(&aws_sdk_config().await);
    let publisher = SqsPublisher::new(sqs, QueueConfig::from_vars(&vars));
    let state = sepay_webhook::WebhookState::from_vars(pool, publisher, &vars)?;
    coursedrop::http::serve(sepay_webhook::router(Arc::new(state)), 3002).await.map_err(|e| anyhow::anyhow!(e))
}
