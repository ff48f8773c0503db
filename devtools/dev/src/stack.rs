//! The local stack: every HTTP function on one router, queues in moto, the sweeper as a loop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use coursedrop::adapters::queue::{QueueConfig, SqsPublisher, aws_sdk_config};
use coursedrop::app::config::{self, Vars};
use coursedrop::app::sweeper;
use coursedrop::domain::{CourseSlug, Queue, Status, Vnd};
use coursedrop::runtime::http;
use coursedrop::store::{self, catalog};
use sqlx::MySqlPool;

/// The demo catalog: three courses in the seller's (local) S3 bucket.
pub const DEMO_CATALOG: &[(&str, &str, i64, &str)] = &[
    ("rust-101", "Rust cơ bản", 499_000, "s3://coursedrop-demo/courses/rust-101/"),
    ("serverless-aws", "Serverless trên AWS", 799_000, "s3://coursedrop-demo/courses/serverless-aws/"),
    ("sql-thuc-chien", "SQL thực chiến", 299_000, "s3://coursedrop-demo/courses/sql-thuc-chien/"),
];

pub struct Stack {
    pub sqs: aws_sdk_sqs::Client,
    pub publisher: Arc<SqsPublisher>,
    pub queue_urls: Vec<(Queue, String)>,
    pub router: Router,
}

pub async fn migrate(pool: &MySqlPool) -> Result<()> {
    store::migrate(pool).await.context("applying migrations")
}

pub async fn seed(pool: &MySqlPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    for (slug, title, price, source) in DEMO_CATALOG {
        let slug = CourseSlug::parse(slug)?;
        let price = Vnd::new(*price)?;
        catalog::upsert(
            &mut conn,
            &catalog::NewCourse {
                slug: &slug,
                title,
                price,
                source,
                delivery_mode: coursedrop::adapters::source::DeliveryMode::Copy,
                lms_course_id: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// A database of its own for a run (`<name>_<suffix>`, dropped and made anew, migrated and
/// seeded), so demos and benchmarks never depend on, or disturb, what `make dev` holds.
pub async fn fresh_database(database_url: &str, suffix: &str, max_connections: u32) -> Result<(MySqlPool, String)> {
    let (base, db) =
        database_url.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("DATABASE_URL has no database name"))?;
    let db = db.split('?').next().unwrap_or(db);
    let name = format!("{db}_{suffix}");
    let admin = store::connect(&format!("{base}/{db}"), 1).await.context("connecting to the database server")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`"))).execute(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))).execute(&admin).await?;
    admin.close().await;
    let pool = store::connect(&format!("{base}/{name}"), max_connections).await?;
    migrate(&pool).await?;
    seed(&pool).await?;
    Ok((pool, name))
}

/// Empties the stack's queues (a run that uses queues of its own starts clean).
pub async fn purge_queues(stack: &Stack) {
    for (_, url) in &stack.queue_urls {
        let _ = stack.sqs.purge_queue().queue_url(url).send().await;
    }
}

/// Each function's pool. `make demo` and `make dev` connect each function as its own user,
/// with only the grants production gives it (`infra/db-users.sql`), so a grant a change
/// forgot fails there first; benchmarks and `make chaos` use one pool for all.
#[derive(Clone)]
pub struct Pools {
    pub create_order: MySqlPool,
    pub bank_webhook: MySqlPool,
    pub reconcile: MySqlPool,
    pub enroll: MySqlPool,
    pub deliver: MySqlPool,
    pub finalize: MySqlPool,
    pub self_service: MySqlPool,
    pub sweeper: MySqlPool,
    pub console: MySqlPool,
}

impl Pools {
    /// Every function on one pool.
    pub fn shared(pool: &MySqlPool) -> Self {
        Pools {
            create_order: pool.clone(),
            bank_webhook: pool.clone(),
            reconcile: pool.clone(),
            enroll: pool.clone(),
            deliver: pool.clone(),
            finalize: pool.clone(),
            self_service: pool.clone(),
            sweeper: pool.clone(),
            console: pool.clone(),
        }
    }

    /// Every function as its own user on the database `admin` is connected to (users
    /// `cd_<function>_local`, with local passwords; the grants are the shipped script's).
    pub async fn least_privilege(admin: &MySqlPool, database_url: &str, max: u32) -> Result<Self> {
        let options: sqlx::mysql::MySqlConnectOptions = database_url.parse()?;
        let database = options.get_database().context("DATABASE_URL has no database name")?.to_string();
        let local_password = |role: &str| Some(format!("coursedropLocal{}", role.replace('_', "")));
        let users = store::users::apply(admin, &database, "_local", local_password)
            .await
            .context("creating the functions' database users (infra/db-users.sql)")?;
        let mut pool = std::collections::HashMap::new();
        for u in users {
            let options = options.clone().username(&u.name).password(&u.password);
            pool.insert(u.role, store::connect_with(options.charset("utf8mb4"), max).await?);
        }
        let take = |role: &str| pool.get(role).cloned().context("a function without a database user");
        Ok(Pools {
            create_order: take("create_order")?,
            bank_webhook: take("bank_webhook")?,
            reconcile: take("reconcile")?,
            enroll: take("enroll")?,
            deliver: take("deliver")?,
            finalize: take("finalize")?,
            self_service: take("self_service")?,
            sweeper: take("sweeper")?,
            console: take("console")?,
        })
    }
}

/// Builds the stack on an already migrated database, creating the queues if they are missing.
pub async fn build(pool: MySqlPool, vars: &Vars) -> Result<Stack> {
    build_with(&Pools::shared(&pool), vars).await
}

/// [`build`] with each HTTP function on its own pool.
pub async fn build_with(pools: &Pools, vars: &Vars) -> Result<Stack> {
    let sqs = aws_sdk_sqs::Client::new(&aws_sdk_config().await);
    let queues = QueueConfig::from_vars(vars);
    let mut queue_urls = Vec::new();
    for q in Queue::ALL {
        let name = queues.queue_name(*q);
        let out =
            sqs.create_queue().queue_name(&name).send().await.map_err(|e| {
                anyhow::anyhow!("creating queue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e))
            })?;
        queue_urls.push((*q, out.queue_url.unwrap_or_default()));
    }
    let publisher = Arc::new(SqsPublisher::new(sqs.clone(), queues));
    let create = create_order::AppState::from_vars(pools.create_order.clone(), vars)?;
    let hook = bank_webhook::WebhookState::from_vars(pools.bank_webhook.clone(), publisher.clone(), vars)?;
    let router = http::with_common_layers(
        Router::new().merge(create_order::routes(create)).merge(bank_webhook::routes(Arc::new(hook))),
    );
    Ok(Stack { sqs, publisher, queue_urls, router })
}

/// The enroll function, fed by a poller that keeps Lambda's SQS contract: it deletes exactly
/// the messages the function did not report as failures.
pub fn spawn_enroll(stack: &Stack, pool: MySqlPool, vars: &Vars) -> Result<()> {
    let ctx = Arc::new(enroll::EnrollContext {
        pool,
        provider: coursedrop::app::enrollment::Provider::from_vars(vars)?,
        publisher: stack.publisher.clone(),
        settings: coursedrop::app::enrollment::EnrollSettings::from_vars(vars)?,
        worker: format!("local-{}", std::process::id()),
    });
    spawn_sqs_function(stack, Queue::Enroll, move |event| {
        let ctx = ctx.clone();
        async move { enroll::handle(&ctx, event).await }
    });
    Ok(())
}

/// The demo courses' files: (course slug, path, size). Generated, so `make demo` needs no
/// download; one is the size of a real lesson video.
pub const DEMO_FILES: &[(&str, &str, usize)] = &[
    ("rust-101", "01-gioi-thieu/bai-01-cai-dat.mp4", 64 * 1024 * 1024 + 12_345),
    ("rust-101", "01-gioi-thieu/slides.pdf", 1_500_000),
    ("rust-101", "02-ownership/bai-02-muon-va-tra.mp4", 24 * 1024 * 1024 + 777),
    ("rust-101", "02-ownership/bai-tap/README.md", 2_048),
    ("rust-101", "README.md", 1_024),
    ("serverless-aws", "01-lambda/bai-01.mp4", 32 * 1024 * 1024 + 5),
    ("serverless-aws", "01-lambda/code/handler.rs", 4_321),
    ("serverless-aws", "02-sqs/bai-02.mp4", 16 * 1024 * 1024),
    ("sql-thuc-chien", "bai-01-select.mp4", 12 * 1024 * 1024 + 3),
    ("sql-thuc-chien", "du-lieu/mau.sql", 250_000),
    ("sql-thuc-chien", "du-lieu/trong.txt", 0),
];
pub const DEMO_BUCKET: &str = "coursedrop-demo";

/// Puts the demo files in local S3 (the bucket `coursedrop-demo`), skipping those already
/// there with the right size.
pub async fn seed_files(source: &coursedrop::adapters::source::S3Source) -> Result<u64> {
    source.ensure_bucket(DEMO_BUCKET, "ap-southeast-1").await?;
    let s3 = source.client();
    let mut total = 0;
    for (slug, path, size) in DEMO_FILES {
        let key = format!("courses/{slug}/{path}");
        total += *size as u64;
        let existing =
            s3.head_object().bucket(DEMO_BUCKET).key(&key).send().await.ok().and_then(|h| h.content_length());
        if existing == Some(*size as i64) {
            continue;
        }
        let bytes: Vec<u8> = (0..*size).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        s3.put_object()
            .bucket(DEMO_BUCKET)
            .key(&key)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("putting {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
    }
    Ok(total)
}

/// The Drive emulator, in this process, bytes under `dir`. Returns its base URL.
pub async fn spawn_drive(dir: &std::path::Path, port: u16) -> Result<(drive_emulator::Emulator, String)> {
    let emulator = drive_emulator::Emulator::new(drive_emulator::Config::new(dir))?;
    let (base, _) = emulator.clone().spawn(port).await?;
    Ok((emulator, base))
}

/// A Drive client on the local emulator, configured as the job is (`DRIVE_CHUNK_SIZE`
/// checked; 8 MiB chunks unless set). It signs in with the OAuth refresh-token flow against
/// the emulator's token endpoint, as production does against Google's.
async fn emulator_drive(
    vars: &Vars,
    drive_base: &str,
) -> Result<coursedrop::adapters::drive::upload::DriveClient<coursedrop::adapters::drive::auth::DriveAuth>> {
    let drive_base = drive_base.to_string();
    let chunk_size = vars.string_or("DRIVE_CHUNK_SIZE", &(8 * 1024 * 1024).to_string());
    let local = vars.with(move |k: &str| match k {
        "DRIVE_API_ROOT" => Some(drive_base.clone()),
        "DRIVE_TOKEN_URI" => Some(format!("{drive_base}/token")),
        "DRIVE_REFRESH_TOKEN" => Some("emulator-refresh-token".to_string()),
        "DRIVE_CLIENT_ID" => Some("coursedrop-local".to_string()),
        "DRIVE_CLIENT_SECRET" => Some("local-secret".to_string()),
        // Blank reads as unset: the emulator's flow, whatever the caller's configuration holds.
        "DRIVE_SERVICE_ACCOUNT_KEY" | "DRIVE_ACCESS_TOKEN" => Some(String::new()),
        "DRIVE_CHUNK_SIZE" => Some(chunk_size.clone()),
        _ => None,
    });
    Ok(coursedrop::adapters::drive::upload::DriveClient::from_vars(&local).await?)
}

/// The deliver job's consumer, on the stack's deliver queue, into the Drive at `drive_base`.
pub async fn spawn_deliver(stack: &Stack, pool: MySqlPool, vars: &Vars, drive_base: &str) -> Result<()> {
    let job = Arc::new(deliver::Deliverer {
        pool,
        drive: emulator_drive(vars, drive_base).await?,
        source: coursedrop::adapters::source::S3Source::from_vars(vars).await,
        publisher: stack.publisher.clone(),
        settings: deliver::DeliverSettings::default(),
        worker: format!("local-deliver-{}", std::process::id()),
    });
    let url = stack.queue_urls.iter().find(|(q, _)| *q == Queue::Deliver).map(|(_, u)| u.clone()).unwrap_or_default();
    let settings = deliver::ConsumerSettings { wait_secs: 1, retry_delay_secs: 5, ..Default::default() };
    tokio::spawn(deliver::consume(job, stack.sqs.clone(), url, settings, std::future::pending()));
    Ok(())
}

/// The finalize function, fed like Lambda would feed it, sharing on the Drive at
/// `drive_base` and mailing through `SMTP_URL`.
pub async fn spawn_finalize(stack: &Stack, pool: MySqlPool, vars: &Vars, drive_base: &str) -> Result<()> {
    let ctx = Arc::new(finalize::FinalizeContext {
        pool,
        drive: emulator_drive(vars, drive_base).await?,
        mailer: coursedrop::adapters::mail::Mailer::from_vars(vars)?,
    });
    spawn_sqs_function(stack, Queue::Finalize, move |event| {
        let ctx = ctx.clone();
        async move { finalize::handle(&ctx, event).await }
    });
    Ok(())
}

/// The console on the Drive at `drive_base`, mailing through `SMTP_URL`, publishing to the
/// stack's queues, its sign-in links pointing at `console_url`. Its own router: its paths
/// (`/orders/{code}`…) are the buyer API's too, so it is served on a port of its own.
pub async fn console_router(pool: MySqlPool, vars: &Vars, drive_base: &str, console_url: &str) -> Result<Router> {
    let url = console_url.to_string();
    let vars = vars.with(move |k: &str| (k == "CONSOLE_URL").then(|| url.clone()));
    let state = console::ConsoleState::new(
        pool,
        emulator_drive(&vars, drive_base).await?,
        coursedrop::adapters::mail::Mailer::from_vars(&vars)?,
        config::sqs_publisher(&vars).await,
        coursedrop::adapters::source::S3Source::from_vars(&vars).await,
        &vars,
    )?;
    Ok(console::router(state))
}

/// The self-service routes (resend, move access), on the Drive at `drive_base` and mailing
/// through `SMTP_URL`, to merge into the stack's router.
pub async fn self_service_routes(pool: MySqlPool, vars: &Vars, drive_base: &str) -> Result<Router> {
    let state = self_service::SelfServiceState::new(
        pool,
        emulator_drive(vars, drive_base).await?,
        coursedrop::adapters::mail::Mailer::from_vars(vars)?,
        vars,
    )?;
    Ok(self_service::routes(state))
}

/// An SQS-triggered function fed from its queue by a poller that keeps Lambda's contract:
/// it deletes exactly the messages the function did not report as failures.
fn spawn_sqs_function<H, Fut>(stack: &Stack, queue: Queue, handler: H)
where
    H: Fn(aws_lambda_events::event::sqs::SqsEvent) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = aws_lambda_events::event::sqs::SqsBatchResponse> + Send + 'static,
{
    let url = stack.queue_urls.iter().find(|(q, _)| *q == queue).map(|(_, u)| u.clone()).unwrap_or_default();
    let client = stack.sqs.clone();
    tokio::spawn(coursedrop::adapters::poller::poll_like_lambda(
        client,
        url,
        Duration::from_secs(5),
        handler,
        std::future::pending(),
    ));
}

/// What a child process started with a clean environment needs to reach the local AWS
/// emulator as its parent does (endpoint, region, dummy credentials, path-style S3) and to
/// find programs (PATH). Everything else the child is given explicitly.
pub fn local_aws_env(vars: &Vars) -> Vec<(String, String)> {
    [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "S3_FORCE_PATH_STYLE",
        "PATH",
    ]
    .iter()
    .filter_map(|k| vars.get(k).map(|v| (k.to_string(), v)))
    .collect()
}

/// The sweeper's schedule, locally, with the stage deadlines it is given (`make dev` reads
/// `DEADLINE_*` as production does; `make chaos` uses seconds, not minutes), and the payment
/// reminders when given.
pub fn spawn_sweeper(
    pool: MySqlPool,
    publisher: Arc<SqsPublisher>,
    every: Duration,
    timing: sweeper::OutboxTiming,
    deadlines: coursedrop::app::sweeper::Deadlines,
    reminders: Option<coursedrop::app::reminders::Reminders>,
) {
    tokio::spawn(async move {
        let (pool, publisher, deadlines, reminders) = (&pool, &publisher, &deadlines, &reminders);
        coursedrop::runtime::schedule::every(every, std::future::pending(), move || async move {
            if let Err(e) = sweeper::sweep_with(pool, publisher, timing, deadlines, reminders.as_ref()).await {
                tracing::error!(error = %e, "sweep failed");
            }
        })
        .await
    });
}

/// The bank emulator (SePay's and Casso's APIs and webhooks), in this process. Returns its
/// base URL.
pub async fn spawn_bank(
    port: u16,
    sepay_webhook: Option<bank_emulator::Webhook>,
    casso_webhook: Option<bank_emulator::Webhook>,
) -> Result<(bank_emulator::Emulator, String)> {
    // payOS posts where the SePay webhook goes, at its own path.
    let payos = sepay_webhook.as_ref().or(casso_webhook.as_ref()).map(|w| {
        let base = w.url.rsplit_once("/webhooks/").map(|(b, _)| b).unwrap_or(&w.url);
        format!("{base}/webhooks/payos")
    });
    let emulator = bank_emulator::Emulator::new(bank_emulator::Config {
        sepay_webhook,
        casso_webhook,
        ..bank_emulator::Config::default()
    });
    let emulator = emulator_with_payos(emulator, payos);
    let (base, _) =
        emulator.clone().spawn(port).await.with_context(|| format!("binding the bank emulator on {port}"))?;
    Ok((emulator, base))
}

fn emulator_with_payos(emulator: bank_emulator::Emulator, webhook: Option<String>) -> bank_emulator::Emulator {
    emulator.set_payos_webhook(webhook);
    emulator
}

/// What a local run configures for the bank feeds: the emulator's APIs and tokens, a Casso
/// checksum key, and payOS (the emulator's keys; links send the buyer back to `shop_url`),
/// each unless the caller's own configuration sets it.
pub fn bank_vars(vars: &Vars, bank_base: &str, casso_key: &str, shop_url: &str) -> Vars {
    let (bank_base, casso_key, shop_url) = (bank_base.to_string(), casso_key.to_string(), shop_url.to_string());
    let local = Vars::new(move |k: &str| match k {
        "SEPAY_API_BASE_URL" | "CASSO_API_BASE_URL" | "PAYOS_API_BASE_URL" => Some(bank_base.clone()),
        "PAYOS_CLIENT_ID" => Some(bank_emulator::payos::CLIENT_ID.into()),
        "PAYOS_API_KEY" => Some(bank_emulator::payos::API_KEY.into()),
        "PAYOS_CHECKSUM_KEY" => Some(bank_emulator::payos::CHECKSUM_KEY.into()),
        "SHOP_URL" => Some(shop_url.clone()),
        "SEPAY_API_TOKEN" => Some(bank_emulator::Config::default().sepay_token),
        "CASSO_API_KEY" => Some(bank_emulator::Config::default().casso_api_key),
        "CASSO_CHECKSUM_KEY" => Some(casso_key.clone()),
        _ => None,
    });
    // The caller's own configuration wins over the emulator's.
    let caller = vars.clone();
    local.with(move |k: &str| caller.get(k))
}

/// The reconciler's schedule, locally: a pass over every configured feed every `every`.
pub fn spawn_reconciler(
    pool: MySqlPool,
    publisher: Arc<SqsPublisher>,
    feeds: coursedrop::app::config::Feeds,
    routes: coursedrop::app::routes::RouteSettings,
    settings: coursedrop::app::payments::PaymentSettings,
    every: Duration,
) {
    for off in &feeds.off {
        tracing::info!("{off}");
    }
    tokio::spawn(async move {
        let (pool, feeds, routes, settings, publisher) = (&pool, &feeds, &routes, &settings, &*publisher);
        // Each failure is logged by the pass; the next tick starts from the cursor again.
        coursedrop::runtime::schedule::every(every, std::future::pending(), move || async move {
            let lookback = coursedrop::app::reconcile::DEFAULT_LOOKBACK_DAYS;
            coursedrop::app::reconcile::pass_all(pool, feeds, settings, publisher, None, None, lookback).await;
            if let Err(e) = coursedrop::app::routes::pass(pool, routes, settings, publisher).await {
                tracing::error!(error = %e, "the payment routes' pass failed");
            }
        })
        .await
    });
}
