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
