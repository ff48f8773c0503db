//! `drive-emulator`: serves the Drive v3 emulator on 127.0.0.1:`DRIVE_EMULATOR_PORT` (4567)
//! with bytes under `DRIVE_EMULATOR_DIR` (`.local/drive`). Faults from
//! `DRIVE_EMULATOR_FAULT_RATE` (a total rate split over the five kinds) or changed at run
//! time with `POST /emulator/faults`.

use anyhow::Context;
use drive_emulator::{Config, Emulator, Faults};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let port: u16 = std::env::var("DRIVE_EMULATOR_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(4567);
    let dir = std::env::var("DRIVE_EMULATOR_DIR").unwrap_or_else(|_| ".local/drive".into());
    let mut config = Config::new(&dir);
    if let Some(rate) = std::env::var("DRIVE_EMULATOR_FAULT_RATE").ok().and_then(|r| r.parse().ok()) {
        config.faults = Faults::spread(rate);
    }
    let emulator = Emulator::new(config).with_context(|| format!("preparing {dir}"))?;
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("binding port {port}"))?;
    println!("drive emulator on http://127.0.0.1:{port}, bytes in {dir}");
    emulator.serve(listener).await;
    Ok(())
}
