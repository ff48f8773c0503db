//! `make bench`: requests/s and latency of the webhook (unique and duplicate payments) and of
//! order creation (plain, and all with one coupon), over real HTTP on loopback, against the local MariaDB and moto, in a
//! database of its own (`<name>_bench`, recreated each run).
//!
//! Results are merged into `bench/latest.json` (other benchmarks add their own keys) and the
//! Markdown table `bench/latest.md` is rewritten from it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use coursedrop::app::config::{self, Vars};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::stack;

struct Phase {
    name: &'static str,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l[i].as_secs_f64() * 1000.0
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "requests_per_s": (self.requests as f64 / self.elapsed.as_secs_f64()).round(),
            "p50_ms": (self.percentile(0.50) * 100.0).round() / 100.0,
            "p99_ms": (self.percentile(0.99) * 100.0).round() / 100.0,
        })
    }
}

/// Sends `requests` with at most `concurrency` in flight; every answer must have `expect`.
async fn run_phase<F>(
    name: &'static str,
    concurrency: usize,
    requests: Vec<reqwest::RequestBuilder>,
    expect: u16,
    check: F,
) -> Result<Phase>
where
    F: Fn(usize, &str) + Send + Sync + 'static,
{
    let gate = Arc::new(Semaphore::new(concurrency));
    let check = Arc::new(check);
    let n = requests.len();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, req) in requests.into_iter().enumerate() {
        let permit = gate.clone().acquire_owned().await?;
        let check = check.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = req.send().await.map_err(|e| anyhow!("request {i}: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let took = t.elapsed();
            drop(permit);
            if status != expect {
                bail!("request {i}: expected {expect}, got {status}: {body}");
            }
            check(i, &body);
            Ok::<Duration, anyhow::Error>(took)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for t in tasks {
        latencies.push(t.await??);
    }
    Ok(Phase { name, requests: n, elapsed: start.elapsed(), latencies })
}

pub async fn run(vars: &Vars) -> Result<()> {
    if vars.get("BENCH_SKIP_HTTP").is_some() {
        // The other parts only, keeping the HTTP figures of the last full run.
        let mut report = read_report();
        other_parts(vars, &mut report).await?;
        write_report(&report)?;
        println!("{}", markdown(&report));
        return Ok(());
    }
    let n: usize = vars.parse_or("BENCH_REQUESTS", 1000)?;
    let concurrency: usize = vars.parse_or("BENCH_CONCURRENCY", 16)?;
    let (pool, bench_db) = stack::fresh_database(&config::database_url(vars), "bench", 24).await?;
    // Queues of the bench's own, so a running `make dev` never sees its messages.
    // One bench buyer places every order: the per-email caps on unpaid orders (and on the
    // coupon's uses they hold) are lifted.
    let bench_vars = vars.with(|k: &str| match k {
        "QUEUE_NAME_PREFIX" => Some("coursedrop-bench-".into()),
        "PENDING_ORDERS_PER_EMAIL" | "COUPON_HOLDS_PER_EMAIL" => Some(u32::MAX.to_string()),
        _ => None,
    });
    let stack = stack::build(pool.clone(), &bench_vars).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, stack.router.clone()).into_future());
    let http = coursedrop::support::http_client::client_builder().pool_max_idle_per_host(concurrency).build()?;
    let key = vars.get("SEPAY_API_KEY").ok_or_else(|| anyhow!("SEPAY_API_KEY is not set"))?;
    let account = config::bank_account(vars)?.account_number;
    println!("bench: {n} requests per phase, {concurrency} in flight, server {base}, database {bench_db}");

    let order_body = json!({"email": "bench@example.com", "courses": ["rust-101", "sql-thuc-chien"]}).to_string();
    let requests = (0..n)
        .map(|_| {
            http.post(format!("{base}/orders")).header("content-type", "application/json").body(order_body.clone())
        })
        .collect();
    let create = run_phase("create_order", concurrency, requests, 201, |_, _| {}).await?;
    let codes: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, total_vnd FROM orders ORDER BY id").fetch_all(&pool).await?;

    let payloads: Vec<String> = codes
        .iter()
        .enumerate()
        .map(|(i, (code, total))| {
            json!({"id": 1_000_000 + i, "gateway": "MBBank", "transactionDate": "2026-11-22 10:00:00", "accountNumber": account,
                   "code": null, "content": format!("MBVCB.{i}.{code}.CT tu NGUYEN VAN A"), "transferType": "in",
                   "transferAmount": total, "accumulated": 0, "subAccount": null, "referenceCode": format!("FT{}", 1_000_000 + i), "description": ""})
            .to_string()
        })
        .collect();
    let hook = |body: &String| {
        http.post(format!("{base}/webhooks/sepay"))
            .header("content-type", "application/json")
            .header("authorization", format!("Apikey {key}"))
            .body(body.clone())
    };
    let unique = run_phase("webhook_unique", concurrency, payloads.iter().map(hook).collect(), 200, |_, _| {}).await?;
    let sqs_alone = sqs_alone(&stack, n, concurrency).await?;
    let duplicate =
        run_phase("webhook_duplicate", concurrency, payloads.iter().map(hook).collect(), 200, |_, _| {}).await?;

    // The numbers only count if the work was really done, once.
    let (payments, paid, unpublished): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM payments), (SELECT COUNT(*) FROM orders WHERE status = 'paid'),
                (SELECT COUNT(*) FROM outbox WHERE publish_attempts > 0)",
    )
    .fetch_one(&pool)
    .await?;
    if payments != n as i64 || paid != n as i64 || unpublished != 0 {
        bail!(
            "bench invariants broken: {payments} payments, {paid} paid orders, {unpublished} outbox rows whose publish failed"
        );
    }

    // A flash sale: every order takes a use of one coupon, so the orders queue on its row's
    // lock inside their placing transactions. Beside the plain phase above, in one run.
    sqlx::query("INSERT INTO coupons (code, percent_off, max_uses) VALUES ('BENCH10', 10, ?)")
        .bind(n as u32)
        .execute(&pool)
        .await?;
    let coupon_body =
        json!({"email": "bench@example.com", "courses": ["rust-101", "sql-thuc-chien"], "coupon": "bench10"})
            .to_string();
    let requests = (0..n)
        .map(|_| {
            http.post(format!("{base}/orders")).header("content-type", "application/json").body(coupon_body.clone())
        })
        .collect();
    let with_coupon = run_phase("create_order_coupon", concurrency, requests, 201, |_, _| {}).await?;
    let (uses, discounted): (u32, i64) = sqlx::query_as(
        "SELECT (SELECT uses FROM coupons WHERE code = 'BENCH10'), (SELECT COUNT(*) FROM orders WHERE discount_vnd = 79800)",
    )
    .fetch_one(&pool)
    .await?;
    if uses as usize != n || discounted != n as i64 {
        bail!(
            "bench invariants broken: the coupon has {uses} uses and {discounted} orders its discount, for {n} placed"
        );
    }
    stack::purge_queues(&stack).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{bench_db}`"))).execute(&pool).await?;

    let mut report = read_report();
    other_parts(vars, &mut report).await?;
    report["http"] = json!({
        "concurrency": concurrency,
        "note": "real HTTP on loopback; MariaDB and moto SQS local; each unique payment pays a 2-course order and publishes 2 enroll messages",
    });
    for phase in [&create, &with_coupon, &unique, &duplicate, &sqs_alone] {
        report["http"][phase.name] = phase.json();
    }
    let ratio = (unique.requests as f64 / unique.elapsed.as_secs_f64())
        / (sqs_alone.requests as f64 / sqs_alone.elapsed.as_secs_f64());
    report["http"]["webhook_unique_vs_sqs_alone"] = json!((ratio * 100.0).round() / 100.0);
    let coupon_ratio = with_coupon.elapsed.as_secs_f64().recip() * with_coupon.requests as f64
        / (create.requests as f64 / create.elapsed.as_secs_f64());
    report["http"]["create_order_coupon_vs_plain"] = json!((coupon_ratio * 100.0).round() / 100.0);
    write_report(&report)?;
    println!("{}", markdown(&report));
    Ok(())
}

/// Delivery (unless `BENCH_SKIP_DELIVERY`) and start-up (unless `BENCH_SKIP_STARTUP`).
async fn other_parts(vars: &Vars, report: &mut Value) -> Result<()> {
    if vars.get("BENCH_SKIP_STARTUP").is_none() {
        report["startup"] = crate::bench_startup::run(vars).await?;
    }
    if vars.get("BENCH_SKIP_DELIVERY").is_none() {
        report["delivery"] = crate::bench_delivery::run(vars).await?;
    }
    report["machine"] = json!(machine());
    report["date"] = json!(chrono::Utc::now().to_rfc3339());
    Ok(())
}

/// The ceiling the local SQS emulator sets: the same `SendMessageBatch` calls the webhook
/// makes (one per payment, two messages), straight from the SDK, at the same concurrency.
async fn sqs_alone(stack: &stack::Stack, n: usize, concurrency: usize) -> Result<Phase> {
    use coursedrop::adapters::queue::Publisher;
    let gate = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let publisher = stack.publisher.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let results = publisher
                .publish_batch(coursedrop::domain::Queue::Deliver, &["{\"item_id\":0}", "{\"item_id\":0}"])
                .await;
            drop(permit);
            results.into_iter().collect::<Result<Vec<()>, _>>().map_err(|e| anyhow!("{e}"))?;
            Ok::<Duration, anyhow::Error>(t.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for t in tasks {
        latencies.push(t.await??);
    }
    Ok(Phase { name: "sqs_alone", requests: n, elapsed: start.elapsed(), latencies })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpus} cores, {}", std::env::consts::ARCH)
}

const REPORT: &str = "bench/latest.json";

fn read_report() -> Value {
    std::fs::read_to_string(REPORT).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_else(|| json!({}))
}

fn write_report(report: &Value) -> Result<()> {
    std::fs::create_dir_all("bench")?;
    std::fs::write(REPORT, serde_json::to_string_pretty(report)? + "\n")?;
    std::fs::write("bench/latest.md", markdown(report))?;
    Ok(())
}

fn markdown(report: &Value) -> String {
    let mut out = format!(
        "# coursedrop benchmarks\n\n{} — {}\n\n| what | requests/s | p50 ms | p99 ms |\n|---|---:|---:|---:|\n",
        report["date"].as_str().unwrap_or(""),
        report["machine"].as_str().unwrap_or("")
    );
    for (key, label) in [
        ("create_order", "POST /orders"),
        ("create_order_coupon", "POST /orders, every order taking a use of one coupon"),
        ("webhook_unique", "POST /webhooks/sepay, unique payments"),
        ("webhook_duplicate", "POST /webhooks/sepay, duplicates"),
        ("sqs_alone", "SQS SendMessageBatch alone (the local SQS server), the webhook's ceiling here"),
    ] {
        let p = &report["http"][key];
        if p.is_object() {
            out.push_str(&format!("| {label} | {} | {} | {} |\n", p["requests_per_s"], p["p50_ms"], p["p99_ms"]));
        }
    }
    let d = &report["delivery"];
    if d.is_object() {
        out.push_str(&format!(
            "\n| delivery (S3 → Drive emulator, default settings) | MB/s | peak RSS MiB |\n|---|---:|---:|\n| 1 GiB course | {} | {} |\n| 4 GiB course | {} | {} |\n| S3 read alone (1 GiB) | {} | |\n| Drive upload alone (1 GiB from memory) | {} | |\n\nDelivery reaches {} × the slower of reading alone and writing alone.\n",
            d["1_gib"]["deliver_mb_s"], d["1_gib"]["peak_rss_mib"], d["4_gib"]["deliver_mb_s"], d["4_gib"]["peak_rss_mib"],
            d["1_gib"]["s3_read_alone_mb_s"], d["1_gib"]["drive_write_alone_mb_s"], d["1_gib"]["ratio_to_slower_alone"]
        ));
    }
    let g = &report["delivery"]["1_gib"];
    let sh = &g["shaped_links"];
    if sh.is_object() {
        out.push_str(&format!(
            "\nWith shaped links (S3 {} MB/s, Drive {} MB/s per connection): delivery {} MB/s, S3 read alone {} MB/s, Drive upload alone {} MB/s; delivery reaches {} × the slower.\n",
            sh["s3_link_mb_s_per_connection"], sh["drive_link_mb_s_per_connection"], sh["deliver_mb_s"],
            sh["s3_read_alone_mb_s"], sh["drive_write_alone_mb_s"], sh["ratio_to_slower_alone"]
        ));
    }
    let dr = &g["from_drive"];
    if dr.is_object() {
        out.push_str(&format!(
            "\n| 1 GiB course, by source | wall s | job CPU s | peak RSS MiB | bytes through the job |\n|---|---:|---:|---:|---:|\n| S3 (stream → resumable upload) | {} | {} | {} | {} |\n| seller's Drive (server-side copy) | {} | {} | {} | {} |\n\nFrom Drive the job uses {} × less CPU and {} × less wall time for the same GiB ({} copies).\n",
            g["seconds"], g["cpu"]["job_cpu_s"], g["peak_rss_mib"], 8u64 * 128 * 1024 * 1024,
            dr["seconds"], dr["job_cpu_s"], dr["peak_rss_mib"], dr["uploaded_bytes"],
            dr["s3_over_drive_job_cpu"], dr["s3_over_drive_wall"], dr["copies"]
        ));
    }
    if g["cpu"].is_object() {
        out.push_str("\n| 1 GiB run | wall s | job CPU s | emulator + bench CPU s | moto CPU s | cores busy |\n|---|---:|---:|---:|---:|---:|\n");
        for (label, c) in [
            ("delivery", &g["cpu"]),
            ("S3 read alone", &g["s3_read_alone_cpu"]),
            ("Drive write alone", &g["drive_write_alone_cpu"]),
        ] {
            let f = |k: &str| c[k].as_f64().unwrap_or(0.0);
            let busy = (f("job_cpu_s") + f("emulator_and_bench_cpu_s") + f("moto_cpu_s")) / f("wall_s").max(0.001);
            out.push_str(&format!(
                "| {label} | {} | {} | {} | {} | {:.2} |\n",
                c["wall_s"],
                c["job_cpu_s"].as_f64().map_or("—".into(), |v| v.to_string()),
                c["emulator_and_bench_cpu_s"],
                c["moto_cpu_s"],
                busy
            ));
        }
    }
    let st = &report["startup"];
    if st.is_object() {
        out.push_str(
            "\n| function | start to ready p50 ms | max ms | binary MiB (x86_64) | zip MiB (arm64) |\n|---|---:|---:|---:|---:|\n",
        );
        for name in crate::bench_startup::FUNCTIONS {
            let f = &st[name];
            if f.is_object() {
                let zip = f["arm64_zip_mib"].as_f64().map_or("—".to_string(), |z| z.to_string());
                out.push_str(&format!(
                    "| {name} | {} | {} | {} | {zip} |\n",
                    f["ready_ms_p50"], f["ready_ms_max"], f["binary_mib"]
                ));
            }
        }
        out.push_str(&format!("\nStart to ready: {} runs each; {}.\n", st["runs"], st["note"].as_str().unwrap_or("")));
    }
    if let Some(r) = report["http"]["create_order_coupon_vs_plain"].as_f64() {
        out.push_str(&format!("\nOrders that all take a use of one coupon (each reserving it on the coupon's row, under its lock) reach {r} × the rate of plain orders.\n"));
    }
    if let Some(r) = report["http"]["webhook_unique_vs_sqs_alone"].as_f64() {
        // Each unique payment makes one SQS call: near 1 ×, the local server bounds the phase.
        let verdict = if r >= 0.8 {
            "the local SQS server (AWS_ENDPOINT_URL_SQS) is the bound here, not the webhook"
        } else {
            "the local SQS server is not what bounds the webhook"
        };
        out.push_str(&format!("\nUnique payments reach {r} × the rate of the SQS calls alone: {verdict}.\n"));
    }
    out
}
