//! Start-to-ready of each Lambda binary, as Lambda starts it: the release binary is spawned
//! with `AWS_LAMBDA_RUNTIME_API` pointing at a small Runtime API of ours, and "ready" is its
//! first `GET /runtime/invocation/next`, the moment it can take an event. What lies between is
//! the real cold start: reading the configuration secret (moto's Secrets Manager), connecting
//! to MariaDB, building the SDK clients. Also each binary's size, and its arm64 zip's size when
//! `make build-lambdas` has made one.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::routing::get;
use coursedrop::app::config::{self, Vars};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const FUNCTIONS: [&str; 6] = ["create-order", "bank-webhook", "enroll", "finalize", "sweeper", "reconcile"];

pub async fn run(vars: &Vars) -> Result<Value> {
    let runs: usize = vars.parse_or("BENCH_STARTUP_RUNS", 20)?;
    let secret_id = "coursedrop-bench-startup";
    let secret = json!({"DATABASE_URL": config::database_url(vars), "SEPAY_API_KEY": "bench-key",
                        "DRIVE_ACCESS_TOKEN": "bench-token"})
    .to_string();
    let sm = aws_sdk_secretsmanager::Client::new(&coursedrop::adapters::queue::aws_sdk_config().await);
    if sm.put_secret_value().secret_id(secret_id).secret_string(&secret).send().await.is_err() {
        sm.create_secret().name(secret_id).secret_string(&secret).send().await.context("creating the bench secret")?;
    }

    // The Runtime API's `next` call: note the time, then hold the request, as Lambda does
    // while no event is waiting.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Instant>();
    let api = Router::new().route(
        "/2018-06-01/runtime/invocation/next",
        get(move || {
            let _ = ready_tx.send(Instant::now());
            std::future::pending::<&'static str>()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_addr = listener.local_addr()?.to_string();
    tokio::spawn(axum::serve(listener, api).into_future());

    let mut report = json!({"runs": runs, "note": "spawn to the first Runtime API `next` call; includes reading the secret (moto), connecting to MariaDB and building clients; x86_64 release build"});
    println!("bench: start-to-ready of each function, {runs} runs each");
    for name in FUNCTIONS {
        let binary = Path::new("target/release").join(name);
        if !binary.exists() {
            bail!("{} is missing: `make bench` builds it (cargo build --release -p {name})", binary.display());
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            while ready_rx.try_recv().is_ok() {}
            let start = Instant::now();
            let mut child = tokio::process::Command::new(&binary)
                .env_clear()
                // Only what a Lambda would have (AWS, as moto); the rest comes from the secret.
                .envs(crate::stack::local_aws_env(vars))
                .env("AWS_LAMBDA_RUNTIME_API", &api_addr)
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
                .env("APP_SECRET_ID", secret_id)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let ready = tokio::time::timeout(Duration::from_secs(10), ready_rx.recv()).await;
            let _ = child.start_kill();
            let output = child.wait_with_output().await?;
            match ready {
                Ok(Some(at)) => times.push(at.duration_since(start)),
                _ => bail!(
                    "{name} did not become ready within 10 s: {}",
                    String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("no output")
                ),
            }
        }
        times.sort();
        let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        let size = std::fs::metadata(&binary)?.len();
        let zip = std::fs::metadata(format!("target/lambda/{name}/bootstrap.zip")).ok().map(|m| m.len());
        report[name] = json!({
            "ready_ms_p50": ms(times[times.len() / 2]),
            "ready_ms_max": ms(*times.last().expect("at least one run")),
            "ready_ms_min": ms(times[0]),
            "binary_mib": (size as f64 / 1_048_576.0 * 10.0).round() / 10.0,
            "arm64_zip_mib": zip.map(|z| (z as f64 / 1_048_576.0 * 100.0).round() / 100.0),
        });
        println!(
            "  {name:14} ready p50 {} ms, max {} ms; binary {:.1} MiB",
            report[name]["ready_ms_p50"],
            report[name]["ready_ms_max"],
            size as f64 / 1_048_576.0
        );
    }
    let _ = sm.delete_secret().secret_id(secret_id).force_delete_without_recovery(true).send().await;
    Ok(report)
}
