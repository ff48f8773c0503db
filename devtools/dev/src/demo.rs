//! `make demo`: the flow, as far as it is built, over real HTTP against the local services.
//! Each stage prints what it did; the first that fails stops the demo with a non-zero exit.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use coursedrop::app::config::{self, Vars};
use coursedrop::domain::{Queue, Status};

use serde_json::{Value, json};

use crate::stack;

struct Stage(&'static str);

impl Stage {
    fn ok(&self, detail: impl std::fmt::Display) {
        println!("  ✔ {:<10} {detail}", self.0);
    }
}

pub async fn run(vars: &Vars) -> Result<()> {
    // A database and queues of the demo's own: the run is the same whatever `make dev` holds.
    let (pool, database) =
        stack::fresh_database(&config::database_url(vars), "demo", 8).await.context("preparing the demo database")?;
    let demo_vars = vars.with(|k: &str| (k == "QUEUE_NAME_PREFIX").then(|| "coursedrop-demo-".into()));
    let vars = &demo_vars;
    // Each function as its own least-privileged user, as deployed (the operator's steps below
    // use the administrator's pool, as coursedrop-admin does).
    let server = config::database_url(vars);
    let server = server.rsplit_once('/').map_or(server.as_str(), |(s, _)| s).to_string();
    let pools = stack::Pools::least_privilege(&pool, &format!("{server}/{database}"), 4).await?;
    let stack = stack::build_with(&pools, vars).await?;
    stack::purge_queues(&stack).await;
    let source = coursedrop::adapters::source::S3Source::from_vars(vars).await;
    let seeded = stack::seed_files(&source).await.context("putting the demo course files in local S3")?;
    let drive_dir = std::path::PathBuf::from(".local/drive-demo");
    let _ = std::fs::remove_dir_all(&drive_dir);
    let (_drive, drive_base) = stack::spawn_drive(&drive_dir, 0).await?;
    stack::spawn_deliver(&stack, pools.deliver.clone(), vars, &drive_base).await?;
    stack::spawn_finalize(&stack, pools.finalize.clone(), vars, &drive_base).await?;
    // A buyer of this run only, so the mailbox check finds this run's email.
    let buyer = format!("nguoi.mua.{:06}@example.com", rand::random_range(0..1_000_000u32));
    stack::spawn_enroll(&stack, pools.enroll.clone(), vars)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, stack.router.clone()).into_future());
    let http = coursedrop::support::http_client::client_builder().timeout(Duration::from_secs(30)).build()?;
    println!("coursedrop demo — local stack on {base}, database {database}, queues coursedrop-demo-*");
    println!(
        "  course files: {:.1} MB in s3://{}/courses/ · Google Drive emulator on {drive_base}",
        seeded as f64 / 1e6,
        stack::DEMO_BUCKET
    );

    let stage = Stage("catalog");
    let courses: Value = http.get(format!("{base}/courses")).send().await?.error_for_status()?.json().await?;
    let slugs: Vec<String> =
        courses.as_array().into_iter().flatten().filter_map(|c| c["slug"].as_str().map(String::from)).collect();
    if slugs.len() < 2 {
        bail!("stage catalog failed: expected the demo catalog, got {courses}");
    }
    stage.ok(format!("{} courses: {}", slugs.len(), slugs.join(", ")));

    // The seller's promotion: 10 % off, as `coursedrop-admin coupon add` makes it.
    let coupon = coursedrop::domain::CouponCode::parse("DEMO10")?;
    coursedrop::app::operations::add_coupon(
        &pool,
        &coursedrop::app::operations::CouponToAdd {
            code: &coupon,
            discount: coursedrop::domain::Discount::percent(10)?,
            max_uses: Some(100),
            valid_from: None,
            valid_until: None,
            courses: &[],
        },
    )
    .await?;

    let stage = Stage("order");
    let resp = http
        .post(format!("{base}/orders"))
        .json(&json!({"email": buyer, "lang": "vi", "courses": [&slugs[0], &slugs[1]], "coupon": "demo10"}))
        .send()
        .await?;
    if resp.status() != 201 {
        bail!("stage order failed: {} {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    let order: Value = resp.json().await?;
    let code = order["code"].as_str().ok_or_else(|| anyhow!("stage order failed: no code in {order}"))?.to_string();
    let amount = order["amount_vnd"].as_i64().unwrap_or_default();
    // What opens the order's status view (the code alone does not).
    let t = order["view_token"].as_str().unwrap_or_default().to_string();
    stage.ok(format!(
        "{code}: {amount} VND ({} less {} with coupon {}), transfer text {}",
        order["subtotal_vnd"],
        order["discount_vnd"],
        order["coupon"].as_str().unwrap_or_default(),
        order["payment"]["transfer_text"].as_str().unwrap_or_default()
    ));
    println!("               VietQR payload {}", order["payment"]["vietqr"].as_str().unwrap_or_default());
    println!("               QR image       {base}/orders/{code}/qr.svg?t={t}");
    println!("               status page    {base}/?order={code}&t={t}");

    // SePay's webhook, as SePay sends it: the bank's text around a lower-cased code,
    // authenticated with the configured API key.
    let stage = Stage("payment");
    let account = config::bank_account(vars)?.account_number;
    let sepay_id = chrono::Utc::now().timestamp_micros();
    let body = json!({
        "id": sepay_id, "gateway": "MBBank", "transactionDate": chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        "accountNumber": account, "code": null, "subAccount": null, "transferType": "in", "transferAmount": amount,
        "content": format!("MBVCB.{sepay_id}.{}.CT tu 0123456789 NGUYEN VAN A", code.to_lowercase()),
        "referenceCode": format!("FT{sepay_id}"), "accumulated": 0, "description": ""
    });
    let key = vars.get("SEPAY_API_KEY").ok_or_else(|| anyhow!("stage payment failed: SEPAY_API_KEY is not set"))?;
    let resp = http
        .post(format!("{base}/webhooks/sepay"))
        .header("Authorization", format!("Apikey {key}"))
        .json(&body)
        .send()
        .await?;
    if resp.status() != 200 {
        bail!("stage payment failed: webhook answered {} {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    let status: Value = http.get(format!("{base}/orders/{}?t={t}", code.to_lowercase())).send().await?.json().await?;
    if status["status"] != "paid" {
        bail!("stage payment failed: order is {} after the webhook", status["status"]);
    }
    stage.ok(format!(
        "webhook 200; order {} with {} VND received",
        status["status"].as_str().unwrap_or_default(),
        status["paid_vnd"]
    ));

    // The enroll function takes the messages from its queue, as Lambda would hand them over.
    let stage = Stage("enroll");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status: Value = http.get(format!("{base}/orders/{code}?t={t}")).send().await?.json().await?;
        let items = status["items"].as_array().cloned().unwrap_or_default();
        if items.iter().all(|i| i["status"] != "enrolling" && i["status"] != "awaiting_payment") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            bail!("stage enroll failed: items still waiting after 30 s: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for item in status["items"].as_array().into_iter().flatten() {
        println!(
            "               {:<16} {}",
            item["course"].as_str().unwrap_or_default(),
            item["status"].as_str().unwrap_or_default()
        );
        // Delivery may already have taken it further.
        if !["enrolled", "delivering", "delivered", "completed"].contains(&item["status"].as_str().unwrap_or_default())
        {
            bail!("stage enroll failed: {} is {}", item["course"], item["status"]);
        }
    }
    let provider = vars.string_or("ENROLL_PROVIDER", "builtin");
    // The relay publishes right after the enrollment commits, writing nothing when it
    // succeeds; a failed publish is recorded on its row. Wait briefly for either the deliver
    // job to take each message in (the row consumed) or a failure to show.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (waiting, failed): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(x.consumed_at IS NULL), 0) AS SIGNED),
                    CAST(COALESCE(SUM(x.publish_attempts > 0 AND x.consumed_at IS NULL), 0) AS SIGNED)
             FROM outbox x JOIN order_items i ON x.item_id = i.id
             JOIN orders o ON o.id = i.order_id WHERE o.code = ? AND x.queue = 'deliver'",
        )
        .bind(&code)
        .fetch_one(&pool)
        .await?;
        if failed > 0 {
            bail!("stage enroll failed: {failed} deliver messages could not be published (is moto up?)");
        }
        if waiting == 0 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stage.ok(format!(
        "every course enrolled ({provider} provider); one message per course on the {} queue",
        Queue::Deliver.as_str()
    ));

    // The deliver job streams each course from S3 into the buyer's Drive folder.
    let stage = Stage("deliver");
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut last_print = std::time::Instant::now() - Duration::from_secs(10);
    let status = loop {
        let status: Value = http.get(format!("{base}/orders/{code}?t={t}")).send().await?.json().await?;
        let items = status["items"].as_array().cloned().unwrap_or_default();
        if let Some(failed) = items.iter().find(|i| i["status"] == "failed") {
            bail!("stage deliver failed: {} failed", failed["course"]);
        }
        let done = items.iter().all(|i| i["status"] == "delivered" || i["status"] == "completed");
        if done || last_print.elapsed() >= Duration::from_secs(1) {
            for i in &items {
                println!("               {}", progress_line(i));
            }
            last_print = std::time::Instant::now();
        }
        if done {
            break status;
        }
        if std::time::Instant::now() > deadline {
            bail!("stage deliver failed: not delivered after 10 minutes: {status}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let folders: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT c.slug, i.drive_folder_id FROM order_items i JOIN courses c ON c.id = i.course_id
         JOIN orders o ON o.id = i.order_id WHERE o.code = ? ORDER BY i.id",
    )
    .bind(&code)
    .fetch_all(&pool)
    .await?;
    let bytes: u64 =
        status["items"].as_array().into_iter().flatten().filter_map(|i| i["progress"]["bytes_done"].as_u64()).sum();
    stage.ok(format!("{:.1} MB into the buyer's Drive folders, MD5-checked", bytes as f64 / 1e6));
    for (slug, folder) in folders {
        println!(
            "               {slug:<16} Drive folder {} (emulator: GET {drive_base}/drive/v3/files?q='<id>'+in+parents)",
            folder.unwrap_or_default()
        );
    }
    println!("               bytes on disk under {}", drive_dir.join("blobs").display());

    // The finalize function shares each folder with the buyer and emails the link once.
    let stage = Stage("finalize");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status: Value = http.get(format!("{base}/orders/{code}?t={t}")).send().await?.json().await?;
        if status["status"] == "completed" {
            break status;
        }
        if let Some(failed) = status["items"].as_array().into_iter().flatten().find(|i| i["status"] == "failed") {
            bail!("stage finalize failed: {} failed", failed["course"]);
        }
        if std::time::Instant::now() > deadline {
            bail!("stage finalize failed: the order is not completed after 60 s (is the SMTP sink up?): {status}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let maildir = std::path::PathBuf::from(vars.string_or("MAILDIR", ".local/mail")).join("new");
    let mails: Vec<std::path::PathBuf> = std::fs::read_dir(&maildir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|m| m.contains(&format!("To: {buyer}"))))
        .collect();
    let courses = status["items"].as_array().map(|i| i.len()).unwrap_or(0);
    if mails.len() != courses {
        bail!("stage finalize failed: {} emails to {buyer} in {}, expected {courses}", mails.len(), maildir.display());
    }
    stage.ok(format!("folders shared with {buyer}; {} emails sent; order completed", mails.len()));
    for item in status["items"].as_array().into_iter().flatten() {
        println!(
            "               {:<16} {}",
            item["course"].as_str().unwrap_or_default(),
            item["drive_link"].as_str().unwrap_or_default()
        );
    }
    for m in &mails {
        println!("               email: {}", m.display());
    }
    println!("\nevery stage succeeded: paid, enrolled, delivered, shared and emailed.");
    crate::demo_console::show(&pool, pools.console.clone(), vars, &drive_base, &code).await
}

/// `rust-101         [##########..........]  45.2 / 90.4 MB  delivering`
fn progress_line(item: &Value) -> String {
    let done = item["progress"]["bytes_done"].as_u64().unwrap_or(0);
    let total = item["progress"]["bytes_total"].as_u64();
    let bar = match total {
        Some(t) if t > 0 => {
            let filled = ((done as f64 / t as f64) * 20.0).round().min(20.0) as usize;
            format!("[{}{}]", "#".repeat(filled), ".".repeat(20 - filled))
        }
        _ => "[....................]".to_string(),
    };
    format!(
        "{:<16} {bar} {:>6.1} / {:>6.1} MB  {}",
        item["course"].as_str().unwrap_or_default(),
        done as f64 / 1e6,
        total.unwrap_or(0) as f64 / 1e6,
        item["status"].as_str().unwrap_or_default()
    )
}
