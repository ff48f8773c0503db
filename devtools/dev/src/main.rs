//! Developer commands behind `make migrate`, `make dev` and `make demo`.
//!
//! `demo` runs the flow as far as it is built, against the real local services, and says
//! plainly which stages are not built yet instead of pretending they ran.

use anyhow::{Context, Result, bail};
use chrono::{Duration, Utc};
use coursedrop::config::{self, Vars};
use coursedrop::domain::{CourseSlug, Email, OrderCode, Vnd};
use coursedrop::store::{self, catalog, events, orders};
use sqlx::MySqlPool;

/// The demo catalog: three courses in the seller's (local) S3 bucket.
const DEMO_CATALOG: &[(&str, &str, i64, &str)] = &[
    (
        "rust-101",
        "Rust cơ bản",
        499_000,
        "s3://coursedrop-demo/courses/rust-101/",
    ),
    (
        "serverless-aws",
        "Serverless trên AWS",
        799_000,
        "s3://coursedrop-demo/courses/serverless-aws/",
    ),
    (
        "sql-thuc-chien",
        "SQL thực chiến",
        299_000,
        "s3://coursedrop-demo/courses/sql-thuc-chien/",
    ),
];

#[tokio::main]
async fn main() -> Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    let vars = Vars::process();
    let url = config::database_url(&vars);
    let pool = store::connect(&url, 4)
        .await
        .with_context(|| format!("connecting to {}", redact(&url)))?;
    match command.as_str() {
        "migrate" => migrate(&pool).await,
        "seed" => seed(&pool).await.map(|_| ()),
        "demo" => demo(&pool, &vars).await,
        other => bail!("unknown command {other:?}; expected migrate, seed or demo"),
    }
}

async fn migrate(pool: &MySqlPool) -> Result<()> {
    store::migrate(pool).await.context("applying migrations")?;
    println!(
        "migrations applied ({} in all)",
        store::MIGRATOR.iter().count()
    );
    Ok(())
}

async fn seed(pool: &MySqlPool) -> Result<Vec<(u64, Vnd)>> {
    let mut conn = pool.acquire().await?;
    let mut ids = Vec::new();
    for (slug, title, price, source) in DEMO_CATALOG {
        let slug = CourseSlug::parse(slug)?;
        let price = Vnd::new(*price)?;
        let id = catalog::upsert(
            &mut conn,
            &catalog::NewCourse {
                slug: &slug,
                title,
                price,
                source,
                lms_course_id: None,
            },
        )
        .await?;
        ids.push((id, price));
    }
    println!("demo catalog: {} courses", ids.len());
    Ok(ids)
}

async fn demo<F: Fn(&str) -> Option<String>>(pool: &MySqlPool, vars: &Vars<F>) -> Result<()> {
    migrate(pool).await?;
    let courses = seed(pool).await?;
    let pattern = config::code_pattern(vars)?;
    let code = OrderCode::generate(&pattern);
    let email = Email::parse("nguoi.mua@example.com")?;
    let created = orders::create(
        pool,
        &orders::NewOrder {
            code: &code,
            email: &email,
            phone: None,
            lang: "vi",
            expires_at: Utc::now() + Duration::minutes(30),
            items: &courses[..2],
            idempotency_key: None,
            request_hash: None,
        },
        "demo",
    )
    .await?;
    println!(
        "order {code}: {} for {} courses, pending payment",
        created.total,
        created.item_ids.len()
    );
    let found = OrderCode::find_in(
        &format!("MBVCB.8812.{} chuyen tien", code.as_str().to_lowercase()),
        &pattern,
    );
    println!(
        "a bank transfer text carrying the code in lower case is matched back to: {}",
        found.map(|c| c.to_string()).unwrap_or_default()
    );
    let timeline = events::for_order(&mut *pool.acquire().await?, created.order_id).await?;
    for e in timeline {
        println!(
            "  {} {} -> {} by {}",
            e.created_at.format("%H:%M:%S%.3f"),
            e.kind,
            e.to_status.unwrap_or_default(),
            e.actor
        );
    }
    println!(
        "not built yet: payment webhook, enrollment, delivery, finalize (see the open issues)"
    );
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
