//! `bank-emulator`: SePay's and Casso's transaction APIs and webhooks on
//! 127.0.0.1:`BANK_EMULATOR_PORT` (4568). Webhooks go to `SEPAY_WEBHOOK_URL` (with
//! `SEPAY_API_KEY`) and `CASSO_WEBHOOK_URL` (signed with `CASSO_CHECKSUM_KEY`) when set.
//! Tokens: `SEPAY_API_TOKEN`, `CASSO_API_KEY` (the emulator's defaults otherwise).

use anyhow::Context;
use bank_emulator::{Config, Emulator, Webhook};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let port: u16 = var("BANK_EMULATOR_PORT").and_then(|p| p.parse().ok()).unwrap_or(4568);
    let mut config = Config::default();
    if let Some(t) = var("SEPAY_API_TOKEN") {
        config.sepay_token = t;
    }
    if let Some(k) = var("CASSO_API_KEY") {
        config.casso_api_key = k;
    }
    config.sepay_webhook =
        var("SEPAY_WEBHOOK_URL").map(|url| Webhook { url, key: var("SEPAY_API_KEY").unwrap_or_default() });
    config.casso_webhook =
        var("CASSO_WEBHOOK_URL").map(|url| Webhook { url, key: var("CASSO_CHECKSUM_KEY").unwrap_or_default() });
    let (base, _) = Emulator::new(config).spawn(port).await.with_context(|| format!("binding port {port}"))?;
    println!("bank emulator (SePay and Casso APIs) on {base}");
    std::future::pending::<()>().await;
    Ok(())
}
