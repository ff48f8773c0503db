//! The local stack: every HTTP function on one router, queues in moto, the sweeper as a loop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use coursedrop::adapters::queue::{QueueConfig, SqsPublisher, aws_sdk_config};
use coursedrop::config::Vars;
use coursedrop::domain::{CourseSlug, Queue, Status, Vnd};
use coursedrop::store::{self, catalog};
use coursedrop::{http, sweeper};
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
        catalog::upsert(&mut conn, &catalog::NewCourse { slug: &slug, title, price, source, lms_course_id: None })
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

/// Builds the stack on an already migrated database, creating the queues if they are missing.
pub async fn build<F: Fn(&str) -> Option<String>>(pool: MySqlPool, vars: &Vars<F>) -> Result<Stack> {
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
    let create = create_order::AppState::from_vars(pool.clone(), vars)?;
    let hook = sepay_webhook::WebhookState::from_vars(pool.clone(), publisher.clone(), vars)?;
    let router = http::with_fallbacks(
        Router::new().merge(create_order::routes(create)).merge(sepay_webhook::routes(Arc::new(hook))),
    );
    Ok(Stack { sqs, publisher, queue_urls, router })
}

/// The enroll function, fed by a poller that keeps Lambda's SQS contract: it deletes exactly
/// the messages the function did not report as failures.
pub fn spawn_enroll<F: Fn(&str) -> Option<String>>(stack: &Stack, pool: MySqlPool, vars: &Vars<F>) -> Result<()> {
    let ctx = Arc::new(enroll::EnrollContext {
        pool,
        provider: coursedrop::enrollment::Provider::from_vars(vars)?,
        publisher: stack.publisher.clone(),
        settings: coursedrop::enrollment::EnrollSettings::from_vars(vars)?,
        worker: format!("local-{}", std::process::id()),
    });
    let url = stack.queue_urls.iter().find(|(q, _)| *q == Queue::Enroll).map(|(_, u)| u.clone()).unwrap_or_default();
    let client = stack.sqs.clone();
    tokio::spawn(async move {
        coursedrop::adapters::poller::poll_like_lambda(
            client,
            url,
            Duration::from_secs(5),
            |event| {
                let ctx = ctx.clone();
                async move { enroll::handle(&ctx, event).await }
            },
            std::future::pending(),
        )
        .await
    });
    Ok(())
}

/// The sweeper's schedule, locally.
pub fn spawn_sweeper(pool: MySqlPool, publisher: Arc<SqsPublisher>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = sweeper::sweep(&pool, &publisher, 30).await {
                tracing::error!(error = %e, "sweep failed");
            }
        }
    });
}
