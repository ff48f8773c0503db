//! A launch-day burst against a database that allows few connections: 500 webhook deliveries
//! at once, over real HTTP, to the function as deployed (its pool of `DATABASE_MAX_CONNECTIONS`
//! on a user the database caps with `MAX_USER_CONNECTIONS`, as a small `max_connections`
//! would). Requests wait for a connection; none is refused by the database, none answered
//! 5xx, every payment recorded once.

use std::sync::Arc;

use bank_webhook::{WebhookState, router};
use coursedrop::adapters::sepay::WebhookAuth;
use coursedrop::app::payments::PaymentSettings;
use coursedrop::store::kept::KeptConnections;
use coursedrop::testing;
use sqlx::MySqlPool;

use super::{ACCOUNT, KEY, PAYOS_KEY, pattern, payload, scalar};

const BURST: usize = 500;
/// What the database lets this function's user open at once.
const CAP: u32 = 4;

#[sqlx::test(migrator = "coursedrop::store::MIGRATOR")]
async fn five_hundred_webhooks_at_once_never_exceed_the_databases_connections(pool: MySqlPool) {
    let mut codes = Vec::with_capacity(BURST);
    for _ in 0..BURST {
        codes.push(testing::pending_order(&pool, &[199_000], 30).await.0.to_string());
    }
    // The function's own user, capped by the server.
    let db: String = sqlx::query_scalar("SELECT DATABASE()").fetch_one(&pool).await.unwrap();
    let user = format!("cd_burst_{}", chrono::Utc::now().timestamp_micros() % 1_000_000_000);
    for sql in [
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'burst-pass' WITH MAX_USER_CONNECTIONS {CAP}"),
        format!("GRANT ALL ON `{db}`.* TO '{user}'@'%'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    let url = testing::database_url_of(&pool).await;
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
    let capped = coursedrop::store::connect_with(options.username(&user).password("burst-pass"), CAP).await.unwrap();

    let sqs = testing::sqs_client().await;
    let (publisher, _) = testing::fresh_queues(&sqs).await;
    let state = WebhookState {
        db: KeptConnections::new(capped.clone()),
        auth: WebhookAuth::ApiKey(KEY.into()),
        casso: coursedrop::adapters::casso::CassoAuth::Unconfigured { reason: "not in this test".into() },
        payos: coursedrop::adapters::payos::PayosAuth::ChecksumKey(PAYOS_KEY.into()),
        settings: PaymentSettings { pattern: pattern(), account_number: ACCOUNT.into() },
        publisher,
        sepay_sources: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, router(Arc::new(state))).into_future());

    let http = coursedrop::support::http_client::client_builder().build().unwrap();
    let mut sent = tokio::task::JoinSet::new();
    for (i, code) in codes.iter().enumerate() {
        let (http, url, body) =
            (http.clone(), format!("{base}/webhooks/sepay"), payload(900_000 + i as i64, code, 199_000));
        sent.spawn(async move {
            let r = http
                .post(url)
                .header("authorization", format!("Apikey {KEY}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        });
    }
    let mut answers = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    while let Some(done) = sent.join_next().await {
        let (status, body) = done.unwrap();
        *answers.entry(status).or_insert(0) += 1;
        if status != 200 {
            failures.push(body);
        }
    }
    assert_eq!(
        answers.get(&200),
        Some(&BURST),
        "every delivery answered 200: {answers:?}, e.g. {:?}",
        failures.first()
    );
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM payments").await, BURST as i64);
    assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM orders WHERE status = 'paid'").await, BURST as i64);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP USER '{user}'@'%'"))).execute(&pool).await.unwrap();
}
