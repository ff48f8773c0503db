//! The console Lambda: config, pool, Drive, SMTP, SQS and S3 clients built once at cold
//! start, then served by lambda_http on Lambda or on 127.0.0.1:$PORT (default 3007) locally.

use anyhow::Context;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::source::S3Source;
use coursedrop::app::config::{self, AppVars};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = config::connect_database(&vars, 2).await.context("connecting to the database")?;
    let state = console::ConsoleState::new(
        pool,
        DriveClient::from_vars(&vars).await?,
        coursedrop::adapters::mail::Mailer::from_vars(&vars)?,
        config::sqs_publisher(&vars).await,
        S3Source::from_vars(&vars).await,
        &vars,
    )?;
    coursedrop::runtime::http::serve(console::router(state), 3007).await.map_err(|e| anyhow::anyhow!(e))
}
