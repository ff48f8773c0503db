//! `make demo`: the flow, as far as it is built, over real HTTP against the local services.
//! Each stage prints what it did; the first that fails stops the demo with a non-zero exit.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use coursedrop::config::{self, Vars};
use coursedrop::domain::{Queue, Status};

use serde_json::{Value, json};

use crate::stack;

struct Stage(&'static str);

impl Stage {
    fn ok(&self, detail: impl std::fmt::Display) {
        println!("  ✔ {:<10} {detail}", self.0);
    }
}

pub async fn run<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<()> {
    // A database and queues of the demo's own: the run is the same whatever `make dev` holds.
    let (pool, database) =
        stack::fresh_database(&config::database_url(vars), "demo", 8).await.context("preparing the demo database")?;
    let demo_vars =
        Vars(|k: &str| if k == "QUEUE_NAME_PREFIX" { Some("coursedrop-demo-".into()) } else { vars.get(k) });
    let vars = &demo_vars;
    let stack = stack::build(pool.clone(), vars).await?;
    stack::purge_queues(&stack).await;
    stack::spawn_enroll(&stack, pool.clone(), vars)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, stack.router.clone()).into_future());
    let http = coursedrop::http::client_builder().timeout(Duration::from_secs(30)).build()?;
    println!("coursedrop demo — local stack on {base}, database {database}, queues coursedrop-demo-*");

    let stage = Stage("catalog");
    let courses: Value = http.get(format!("{base}/courses")).send().await?.error_for_status()?.json().await?;
    let slugs: Vec<String> =
        courses.as_array().into_iter().flatten().filter_map(|c| c["slug"].as_str().map(String::from)).collect();
    if slugs.len() < 2 {
        bail!("stage catalog failed: expected the demo catalog, got {courses}");
    }
    stage.ok(format!("{} courses: {}", slugs.len(), slugs.join(", ")));

    let stage = Stage("order");
    let resp = http
        .post(format!("{base}/orders"))
        .json(&json!({"email": "nguoi.mua@example.com", "lang": "vi", "courses": [&slugs[0], &slugs[1]]}))
        .send()
        .await?;
    if resp.status() != 201 {
        bail!("stage order failed: {} {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    let order: Value = resp.json().await?;
    let code = order["code"].as_str().ok_or_else(|| anyhow!("stage order failed: no code in {order}"))?.to_string();
    let amount = order["amount_vnd"].as_i64().unwrap_or_default();
    stage.ok(format!(
        "{code}: {amount} VND, transfer text {}",
        order["payment"]["transfer_text"].as_str().unwrap_or_default()
    ));
    println!("               VietQR payload {}", order["payment"]["vietqr"].as_str().unwrap_or_default());
    println!("               QR image       {base}/orders/{code}/qr.svg");

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
    let status: Value = http.get(format!("{base}/orders/{}", code.to_lowercase())).send().await?.json().await?;
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
        let status: Value = http.get(format!("{base}/orders/{code}")).send().await?.json().await?;
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
        if item["status"] != "enrolled" {
            bail!("stage enroll failed: {} is {}", item["course"], item["status"]);
        }
    }
    let provider = vars.string_or("ENROLL_PROVIDER", "builtin");
    let unpublished: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox x JOIN order_items i ON x.payload = CONCAT('{\"item_id\":', i.id, '}')
         JOIN orders o ON o.id = i.order_id WHERE o.code = ? AND x.queue = 'deliver' AND x.published_at IS NULL",
    )
    .bind(&code)
    .fetch_one(&pool)
    .await?;
    if unpublished > 0 {
        bail!("stage enroll failed: {unpublished} deliver messages not published (is moto up?)");
    }
    stage.ok(format!(
        "every course enrolled ({provider} provider); one message per course on the {} queue",
        Queue::Deliver.as_str()
    ));

    println!("\nnot built yet: delivery to Google Drive, sharing and the email (see the open issues).");
    println!("every stage that exists succeeded.");
    Ok(())
}
