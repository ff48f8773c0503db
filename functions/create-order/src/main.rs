//! The create-order Lambda: config, pool and router built once at cold start, then served
//! by lambda_http on Lambda or on 127.0.0.1:$PORT (default 3001) locally.

use anyhow::Context;
use coursedrop::app::config::AppVars;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coursedrop::runtime::telemetry::init();
    let vars = AppVars::load().await.context("reading the configuration secret")?;
    let pool = coursedrop::app::config::connect_database(&vars, 4).await.context("connecting to the database")?;
    let state = create_order::AppState::from_vars(pool, &vars)?;
    coursedrop::runtime::http::serve(create_order::router(state), 3001).await.map_err(|e| anyhow::anyhow!(e))
}
