//! Developer commands behind `make migrate`, `make dev`, `make demo` and `make bench`.

mod bench;
mod bench_console;
mod bench_delivery;
mod bench_startup;
mod chaos;
mod demo;
mod demo_console;
mod link;
mod stack;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use coursedrop::app::config::{self, Vars};

#[tokio::main]
async fn main() -> Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    let vars = Vars::process();
    if matches!(command.as_str(), "demo" | "chaos") {
        coursedrop::runtime::telemetry::init_quiet_in_terminal();
    }
    match command.as_str() {
        "migrate" | "seed" => {
            let pool = connect(&vars).await?;
            stack::migrate(&pool).await?;
            if command == "seed" {
                stack::seed(&pool).await?;
                println!("demo catalog: {} courses", stack::DEMO_CATALOG.len());
            } else {
                println!("migrations applied ({} in all)", coursedrop::store::MIGRATOR.iter().count());
            }
            Ok(())
        }
        "serve" => serve(&vars).await,
        "demo" => demo::run(&vars).await,
        "bench" => bench::run(&vars).await,
        "bench-console" => bench_console::run(&vars).await,
        "chaos" => {
            if chaos::run(&vars).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        "deliver-one" => {
            let item = std::env::args().nth(2).and_then(|i| i.parse().ok()).context("deliver-one needs an item id")?;
            bench_delivery::deliver_one(&vars, item).await
        }
        other => bail!("unknown command {other:?}; expected migrate, seed, serve, demo, bench, bench-console or chaos"),
    }
}

async fn connect(vars: &Vars) -> Result<sqlx::MySqlPool> {
    let url = config::database_url(vars);
    coursedrop::store::connect(&url, 8).await.with_context(|| format!("connecting to {}", redact(&url)))
}

/// The Casso checksum key `make dev` signs and checks with when none is configured.
const LOCAL_CASSO_KEY: &str = "local-casso-checksum-key";

/// `make dev`: every HTTP function on one port, the sweeper on a short schedule, the bank
/// emulator posting webhooks to it, the reconciler listing the emulator's APIs.
async fn serve(outer: &Vars) -> Result<()> {
    coursedrop::runtime::telemetry::init();
    let port: u16 = outer.parse_or("PORT", 3000)?;
    let bank_port: u16 = outer.parse_or("BANK_EMULATOR_PORT", 4568)?;
    let webhook = |path: &str, key: Option<String>| bank_emulator::Webhook {
        url: format!("http://127.0.0.1:{port}/webhooks/{path}"),
        key: key.unwrap_or_default(),
    };
    let casso_key = outer.string_or("CASSO_CHECKSUM_KEY", LOCAL_CASSO_KEY);
    let (_bank, bank_base) = stack::spawn_bank(
        bank_port,
        Some(webhook("sepay", outer.get("SEPAY_API_KEY"))),
        Some(webhook("casso", Some(casso_key.clone()))),
    )
    .await?;
    let local = stack::bank_vars(outer, &bank_base, &casso_key, &format!("http://127.0.0.1:{port}/"));
    let vars = &local;
    let admin = connect(vars).await?;
    stack::migrate(&admin).await?;
    stack::seed(&admin).await?;
    // Each function as its own least-privileged user, as deployed.
    let pools = stack::Pools::least_privilege(&admin, &config::database_url(vars), 4).await?;
    let stack = stack::build_with(&pools, vars).await?;
    let every = vars.duration_or("SWEEP_INTERVAL", "10s")?;
    stack::spawn_enroll(&stack, pools.enroll.clone(), vars)?;
    let source = coursedrop::adapters::source::S3Source::from_vars(vars).await;
    let seeded = stack::seed_files(&source).await?;
    let drive_port: u16 = vars.parse_or("DRIVE_EMULATOR_PORT", 4567)?;
    let (_drive, drive_base) = stack::spawn_drive(std::path::Path::new(".local/drive"), drive_port).await?;
    stack::spawn_deliver(&stack, pools.deliver.clone(), vars, &drive_base).await?;
    stack::spawn_finalize(&stack, pools.finalize.clone(), vars, &drive_base).await?;
    let router =
        stack.router.clone().merge(stack::self_service_routes(pools.self_service.clone(), vars, &drive_base).await?);
    // The seller's console on a port of its own (its paths are the buyer API's too).
    let console_port: u16 = vars.parse_or("CONSOLE_PORT", 3007)?;
    let console_url = format!("http://127.0.0.1:{console_port}");
    let console_app = stack::console_router(pools.console.clone(), vars, &drive_base, &console_url)
        .await?
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let console_listener = tokio::net::TcpListener::bind(("127.0.0.1", console_port))
        .await
        .with_context(|| format!("binding the console's port {console_port} (CONSOLE_PORT)"))?;
    tokio::spawn(axum::serve(console_listener, console_app).into_future());
    let owner = vars.string_or("CONSOLE_OWNER", demo_console::DEMO_OWNER);
    match coursedrop::app::console::auth::add_staff(
        &admin,
        &owner,
        coursedrop::domain::staff::StaffRole::Owner,
        "operator:dev",
    )
    .await
    {
        Ok(_) | Err(coursedrop::app::console::ConsoleError::Refused(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let deadlines = coursedrop::app::sweeper::Deadlines::from_vars(vars)?;
    let timing = coursedrop::app::sweeper::OutboxTiming::from_vars(vars, 30)?;
    stack::spawn_sweeper(
        pools.sweeper.clone(),
        stack.publisher.clone(),
        Duration::from_secs(every.num_seconds() as u64),
        timing,
        deadlines,
        Some(coursedrop::app::reminders::Reminders::from_vars(vars)?),
    );
    let reconcile_every = vars.duration_or("RECONCILE_INTERVAL", "60s")?;
    stack::spawn_reconciler(
        pools.reconcile.clone(),
        stack.publisher.clone(),
        config::feeds(vars)?,
        config::payment_routes(vars)?,
        config::payment_settings(vars)?,
        Duration::from_secs(reconcile_every.num_seconds() as u64),
    );
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("binding port {port}"))?;
    println!("coursedrop dev stack on http://127.0.0.1:{port}");
    println!(
        "  GET  /courses · POST /orders · GET /orders/{{code}}?t=… · GET /orders/{{code}}/qr.svg?t=… · POST /quote · POST /orders/{{code}}/resend · POST /orders/{{code}}/access · POST /webhooks/sepay · POST /webhooks/casso"
    );
    println!(
        "  bank emulator (SePay and Casso APIs) on {bank_base}; pay an order as a buyer would:\n    \
         curl -s {bank_base}/emulator/transfers -H 'content-type: application/json' \\\n      \
         -d '{{\"feed\":\"sepay\",\"amount_vnd\":499000,\"content\":\"CD12345678\"}}'\n  \
         (\"feed\":\"casso\" for Casso; POST {bank_base}/emulator/faults '{{\"drop_webhooks\":true}}' loses the webhooks, \
         and the reconciler, every {}s, still pays the order)",
        reconcile_every.num_seconds()
    );
    println!(
        "  payOS (emulated) opens a link per order; pay one as on payOS's page with its payment.payos.order_code:\n    \
         curl -s {bank_base}/emulator/payos/pay -H 'content-type: application/json' -d '{{\"orderCode\":12345678,\"also_sepay\":true}}'"
    );
    println!(
        "  the enroll function polls its queue; the deliver job and the finalize function consume theirs; the sweeper runs every {}s",
        every.num_seconds()
    );
    println!(
        "  Google Drive emulator on {drive_base} (token emulator-token); course files: {:.1} MB in s3://{}/",
        seeded as f64 / 1e6,
        stack::DEMO_BUCKET
    );
    println!(
        "  the seller's console on {console_url}: sign in as {owner} (owner); the link arrives in the SMTP sink ({})",
        vars.string_or("MAILDIR", ".local/mail")
    );
    println!("  Ctrl-C stops");
    // With the peer's address, which the per-client caps and lock-outs count by.
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(coursedrop::runtime::http::shutdown_signal()).await?;
    Ok(())
}

/// A database URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}
