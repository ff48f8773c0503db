//! The self-service Lambda: config, pool, Drive client and SMTP transport built once at cold
//! start, then served by lambda_http on Lambda or on 127.0.0.1:$PORT (default 3002) locally.

use anyhow::Context;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::app::config::AppVars;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = coursedrop::app::config::connect_database(&vars, 2).await.context("connecting to the database")?;
    let state = self_service::SelfServiceState::new(
        pool,
        DriveClient::from_vars(&vars).await?,
        coursedrop::adapters::mail::Mailer::from_vars(&vars)?,
        &vars,
    )?;
    coursedrop::runtime::http::serve(self_service::router(state), 3002).await.map_err(|e| anyhow::anyhow!(e))
}
