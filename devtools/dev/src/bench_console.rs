//! `make bench-console`: the seller's console at 100,000 orders (`CONSOLE_BENCH_ORDERS`). The
//! orders list, its paging and every kind of search are asked `CONSOLE_BENCH_RUNS` times each
//! through the console's router (the handler, its SQL, the page's rendering; no network), as
//! a signed-in owner. Each figure is reported beside the 100 ms a page may take to feel
//! instant, and, for paging, beside the OFFSET query the keyset replaces, run in the same
//! run on the same data. The pool has 2 connections, as the deployed console's. Writes
//! `bench/console.md`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::http::Request;
use coursedrop::app::config::{self, Vars};
use coursedrop::app::console::auth;
use coursedrop::domain::percentile;
use coursedrop::domain::staff::{Secret, StaffRole};
use sqlx::MySqlPool;
use tower::ServiceExt;

use crate::stack;

/// What a page may take to feel instant (the RAIL model's response budget).
const BUDGET_MS: f64 = 100.0;

/// 100,000 orders over the last year, set-based (MariaDB's sequence engine): one course
/// each of five, every tenth pending or cancelled, the paid ones with a payment and a bank
/// reference.
async fn seed(pool: &MySqlPool, n: u64) -> Result<()> {
    let seq = format!("seq_1_to_{n}");
    let statements = [
        "INSERT INTO courses (slug, title, price_vnd, source, delivery_mode)
         SELECT CONCAT('bench-', seq), CONCAT('Khoá ', seq), 100000 * seq, CONCAT('s3://bench/', seq, '/'), 'copy'
         FROM seq_1_to_5"
            .to_string(),
        format!(
            "INSERT INTO orders (code, email, phone, lang, total_vnd, paid_vnd, status, expires_at, paid_at, created_at)
             SELECT CONCAT('CD', LPAD(seq, 8, '0')), CONCAT('buyer', seq, '@example.com'), CONCAT('09', LPAD(seq, 8, '0')),
                    'vi', 100000 * (1 + seq % 5) + seq % 997,
                    IF(seq % 10 IN (0, 1), 0, 100000 * (1 + seq % 5) + seq % 997),
                    ELT(1 + seq % 10, 'pending', 'cancelled', 'paid', 'completed', 'completed', 'completed',
                        'completed', 'completed', 'completed', 'refunded'),
                    NOW(3) - INTERVAL (({n} - seq) * 315) SECOND + INTERVAL 1 DAY,
                    IF(seq % 10 IN (0, 1), NULL, NOW(3) - INTERVAL (({n} - seq) * 315) SECOND + INTERVAL 5 MINUTE),
                    NOW(3) - INTERVAL (({n} - seq) * 315) SECOND
             FROM {seq}"
        ),
        "INSERT INTO order_items (order_id, course_id, price_vnd, status)
         SELECT o.id, c.id, o.total_vnd, IF(o.status IN ('pending', 'cancelled'), 'awaiting_payment',
                IF(o.status = 'refunded', 'revoked', 'completed'))
         FROM orders o JOIN courses c ON c.slug = CONCAT('bench-', 1 + o.id % 5)"
            .to_string(),
        "INSERT INTO payments (sepay_id, feed, feed_txn_id, order_id, transfer_type, amount_vnd, bank_account,
                               bank_reference, reference_code, content, raw_payload, received_at)
         SELECT o.id, 'sepay', o.id, o.id, 'in', o.paid_vnd, '0123456789', CONCAT('FT', LPAD(o.id, 10, '0')),
                CONCAT('FT', LPAD(o.id, 10, '0')), o.code, '{}', o.paid_at
         FROM orders o WHERE o.paid_at IS NOT NULL"
            .to_string(),
        "ANALYZE TABLE orders, order_items, payments, courses".to_string(),
    ];
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.context("seeding the bench orders")?;
    }
    Ok(())
}

struct Scenario {
    name: &'static str,
    path: String,
}

pub async fn run(vars: &Vars) -> Result<()> {
    let n: u64 = vars.parse_or("CONSOLE_BENCH_ORDERS", 100_000)?;
    let runs: usize = vars.parse_or("CONSOLE_BENCH_RUNS", 100)?;
    let (pool, database) = stack::fresh_database(&config::database_url(vars), "bench_console", 2).await?;
    let started = Instant::now();
    seed(&pool, n).await?;
    println!("seeded {n} orders in {:.1} s (database {database})", started.elapsed().as_secs_f64());

    // A signed-in owner, as the browser would be after the emailed link.
    let owner = auth::add_staff(&pool, "bench.owner@example.com", StaffRole::Owner, "operator:bench").await?;
    let token = Secret::generate();
    coursedrop::store::staff::insert_link(&pool, &token.digest(), owner.id, Duration::from_secs(60)).await?;
    let session = auth::redeem(&pool, token.expose(), None).await?.context("the bench's sign-in")?;
    let cookie = format!("cd_session={}", session.id.expose());
    let router = stack::console_router(pool.clone(), vars, "http://127.0.0.1:9", "http://127.0.0.1:3007").await?;

    let deep: u64 = sqlx::query_scalar("SELECT id FROM orders ORDER BY id DESC LIMIT 1 OFFSET 50000")
        .fetch_optional(&pool)
        .await?
        .unwrap_or(1);
    let mid = n / 2;
    let scenarios = [
        Scenario { name: "list, first page", path: "/orders".into() },
        Scenario { name: "list, page 1,001 (keyset)", path: format!("/orders?before={deep}") },
        Scenario { name: "search: order code", path: format!("/orders?q=CD{mid:08}") },
        Scenario { name: "search: email (prefix)", path: format!("/orders?q=buyer{mid}%40") },
        Scenario { name: "search: phone", path: format!("/orders?q=09{mid:08}") },
        Scenario { name: "search: amount", path: format!("/orders?q={}", 100_000 * (1 + mid % 5) + mid % 997) },
        Scenario { name: "search: bank reference", path: format!("/orders?q=FT{mid:010}") },
        Scenario { name: "filter: status + course", path: "/orders?status=completed&course=bench-3".into() },
        Scenario {
            name: "filter: a month's dates",
            path: format!(
                "/orders?from={}&to={}",
                (chrono::Utc::now() - chrono::Duration::days(60)).format("%Y-%m-%d"),
                (chrono::Utc::now() - chrono::Duration::days(30)).format("%Y-%m-%d")
            ),
        },
        Scenario { name: "dashboard", path: "/".into() },
    ];

    let mut rows = Vec::new();
    for s in &scenarios {
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs + 5 {
            let request = Request::get(&s.path).header("cookie", &cookie).body(Body::empty())?;
            let t = Instant::now();
            let response = router.clone().oneshot(request).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            let elapsed = t.elapsed();
            if !status.is_success() {
                bail!("{} answered {status}: {}", s.path, String::from_utf8_lossy(&body));
            }
            if i >= 5 {
                times.push((elapsed.as_micros()) as i64);
            }
        }
        times.sort_unstable();
        let p50 = percentile(&times, 0.5).unwrap_or(0) as f64 / 1000.0;
        let p95 = percentile(&times, 0.95).unwrap_or(0) as f64 / 1000.0;
        rows.push((s.name, p50, p95));
    }

    // The page's query by key beside the OFFSET query it replaces, alone, same data, same run.
    let query_p95 = |sql: &'static str, bind: Option<u64>| {
        let pool = pool.clone();
        async move {
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                let mut q = sqlx::query_as::<_, (u64,)>(sql);
                if let Some(b) = bind {
                    q = q.bind(b);
                }
                let t = Instant::now();
                q.fetch_all(&pool).await?;
                times.push(t.elapsed().as_micros() as i64);
            }
            times.sort_unstable();
            Ok::<f64, anyhow::Error>(percentile(&times, 0.95).unwrap_or(0) as f64 / 1000.0)
        }
    };
    let keyset_p95 =
        query_p95("SELECT o.id FROM orders o WHERE o.id < ? ORDER BY o.id DESC LIMIT 51", Some(deep)).await?;
    let offset_p95 = query_p95("SELECT o.id FROM orders o ORDER BY o.id DESC LIMIT 51 OFFSET 50000", None).await?;

    let mut md = String::new();
    md.push_str(&format!(
        "# The console at {n} orders\n\nMeasured by `make bench-console` ({runs} requests per row after 5 warm-ups, through the \
         console's router as a signed-in owner: handler, SQL and rendering, no network; 2 database connections, as deployed). Budget: {BUDGET_MS:.0} ms, the time \
         a page may take to feel instant.\n\n| request | p50 ms | p95 ms | p95 / budget |\n|---|---:|---:|---:|\n"
    ));
    for (name, p50, p95) in &rows {
        md.push_str(&format!("| {name} | {p50:.1} | {p95:.1} | {:.2} |\n", p95 / BUDGET_MS));
    }
    md.push_str(&format!(
        "\nPage 1,001's query alone: by key (`WHERE id < last`) p95 {keyset_p95:.2} ms; by `OFFSET 50000`, the paging it \
         replaces, p95 {offset_p95:.2} ms, same data, same run: the key takes {:.3}× the offset's time.\n",
        keyset_p95 / offset_p95.max(0.001)
    ));
    println!("{md}");
    std::fs::create_dir_all("bench")?;
    std::fs::write("bench/console.md", &md)?;
    println!("wrote bench/console.md");
    Ok(())
}
