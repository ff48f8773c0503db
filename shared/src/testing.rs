//! Helpers for integration tests against the real local services that `make test` starts:
//! MariaDB (through `sqlx::test`) and moto (SQS).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_sqs::config::{Credentials, Region};
use sqlx::MySqlPool;

use crate::adapters::queue::{QueueConfig, SqsPublisher, aws_sdk_config};
use crate::domain::{CodeCharset, CodePattern, CourseSlug, Email, OrderCode, Queue, Status, Vnd};
use crate::store::{catalog, orders};

pub const ENDPOINT_DEFAULT: &str = "http://127.0.0.1:4566";

/// An SQS client for the local SQS server: `AWS_ENDPOINT_URL_SQS` when set (as the SDK itself
/// reads it), else `AWS_ENDPOINT_URL` (default 127.0.0.1:4566); dummy credentials.
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SQS")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| ENDPOINT_DEFAULT.into());
    sqs_client_at(&endpoint).await
}

/// An SQS client for any endpoint: a dead one simulates SQS being unreachable.
pub async fn sqs_client_at(endpoint: &str) -> aws_sdk_sqs::Client {
    let sdk = aws_sdk_config().await;
    let config = aws_sdk_sqs::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .region(Region::new("ap-southeast-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "coursedrop-tests"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// The URL of the database `pool` is connected to (a `sqlx::test` database), for a child
/// process that must use the same one: `DATABASE_URL` with its database name replaced.
pub async fn database_url_of(pool: &MySqlPool) -> String {
    let db: String = sqlx::query_scalar("SELECT DATABASE()").fetch_one(pool).await.expect("current database");
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| crate::app::config::DEFAULT_DATABASE_URL.into());
    format!("{}/{db}", base.rsplit_once('/').expect("a URL with a database").0)
}

/// Queues of their own for one test: `t<n>-<pid>-enroll`, … Returns the publisher and each URL.
pub async fn fresh_queues(client: &aws_sdk_sqs::Client) -> (SqsPublisher, HashMap<Queue, String>) {
    static N: AtomicU64 = AtomicU64::new(0);
    let prefix = format!(
        "t{}-{}-{}-",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut urls = HashMap::new();
    for q in Queue::ALL {
        let out = client
            .create_queue()
            .queue_name(format!("{prefix}{}", q.as_str()))
            .send()
            .await
            .expect("create queue in moto");
        urls.insert(*q, out.queue_url.expect("queue url"));
    }
    let config = QueueConfig { urls: urls.clone(), name_prefix: prefix };
    (SqsPublisher::new(client.clone(), config), urls)
}

/// Receives and deletes every message now in the queue; returns their bodies.
pub async fn drain(client: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = client.receive_message().queue_url(url).max_number_of_messages(10).send().await.expect("receive");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(m.body.unwrap_or_default());
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// Adds a course to the catalog and returns its id.
pub async fn seed_course(pool: &MySqlPool, slug: &str, title: &str, price: i64, active: bool) -> u64 {
    let mut conn = pool.acquire().await.expect("connection");
    let slug = CourseSlug::parse(slug).expect("valid slug");
    let id = catalog::insert(
        &mut conn,
        &catalog::NewCourse {
            slug: &slug,
            title,
            price: Vnd::new(price).expect("valid price"),
            source: &format!("s3://seller/courses/{slug}/"),
            delivery_mode: crate::adapters::source::DeliveryMode::Copy,
            lms_course_id: None,
        },
    )
    .await
    .expect("insert course");
    if !active {
        sqlx::query("UPDATE courses SET active = FALSE WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await
            .expect("disable");
    }
    id
}

/// A pending order for one new course per price (slugs unique per call), expiring in
/// `expires_in_minutes`. Returns the code and the created ids.
pub async fn pending_order(
    pool: &MySqlPool,
    prices: &[i64],
    expires_in_minutes: i64,
) -> (OrderCode, orders::CreatedOrder) {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut items = Vec::new();
    for (i, price) in prices.iter().enumerate() {
        let slug =
            format!("course-{i}-{}-{}", chrono::Utc::now().timestamp_micros(), N.fetch_add(1, Ordering::Relaxed));
        items.push((seed_course(pool, &slug, "Khoá học", *price, true).await, Vnd::new(*price).expect("valid price")));
    }
    let pattern = CodePattern::new("CD", 6, 10, 8, CodeCharset::Digits).expect("valid pattern");
    let code = OrderCode::generate(&pattern);
    let created = orders::create(
        pool,
        &orders::NewOrder {
            code: &code,
            email: &Email::parse("buyer@example.com").expect("valid email"),
            phone: None,
            lang: "vi",
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(expires_in_minutes),
            items: &items,
            idempotency_key: None,
            request_hash: None,
            coupon: None,
        },
        "test",
    )
    .await
    .expect("create order");
    (code, created)
}

/// An S3 source on moto at `AWS_ENDPOINT_URL` (default 127.0.0.1:4566), path-style, dummy
/// credentials.
pub async fn s3_source() -> crate::adapters::source::S3Source {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| ENDPOINT_DEFAULT.into());
    let sdk = aws_sdk_config().await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new("ap-southeast-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "coursedrop-tests"))
        .force_path_style(true)
        .timeout_config(crate::adapters::source::s3_timeouts())
        .build();
    crate::adapters::source::S3Source::new(aws_sdk_s3::Client::from_conf(config))
}

/// A bucket of its own for one test, holding `files` (key → bytes).
pub async fn bucket_with(source: &crate::adapters::source::S3Source, files: &[(&str, Vec<u8>)]) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let bucket = format!(
        "t-{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    source.ensure_bucket(&bucket, "ap-southeast-1").await.expect("create bucket in moto");
    let s3 = source.client();
    for (key, bytes) in files {
        s3.put_object().bucket(&bucket).key(*key).body(bytes.clone().into()).send().await.expect("put object");
    }
    bucket
}

/// The SMTP sink's Maildir. The sink on `SMTP_URL`'s port (1025 by default) may be another
/// checkout's, so first where `devtools/services` recorded that it writes
/// (`$TMPDIR/coursedrop-smtp-<port>.maildir`); else `MAILDIR`, else the workspace's `.local/mail`.
pub fn maildir() -> std::path::PathBuf {
    let url = std::env::var("SMTP_URL").unwrap_or_default();
    let port = url.rsplit_once(':').and_then(|(_, p)| p.split(['/', '?']).next()?.parse::<u16>().ok());
    let record = std::env::temp_dir().join(format!("coursedrop-smtp-{}.maildir", port.unwrap_or(1025)));
    if let Ok(dir) = std::fs::read_to_string(record).map(|d| std::path::PathBuf::from(d.trim()))
        && dir.join("new").is_dir()
    {
        return dir;
    }
    std::env::var("MAILDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/mail"))
}

/// Every message the sink holds for `to`, raw.
pub fn mails_to(to: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir().join("new")) else { return vec![] };
    let needle = format!("To: {to}");
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter(|raw| raw.lines().any(|l| l.trim_end().eq_ignore_ascii_case(&needle)))
        .collect()
}

/// In the newest message the sink holds for `to` written at or after `since`, the first line
/// of its text part that contains `marker` (a sign-in link's `/sign-in/`, say).
pub fn newest_line_to(to: &str, since: std::time::SystemTime, marker: &str) -> Option<String> {
    let needle = format!("To: {to}");
    let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(maildir().join("new"))
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let at = e.metadata().ok()?.modified().ok()?;
            let raw = std::fs::read_to_string(e.path()).ok()?;
            (at >= since && raw.lines().any(|l| l.trim_end().eq_ignore_ascii_case(&needle))).then_some((at, raw))
        })
        .collect();
    mails.sort_by_key(|(at, _)| *at);
    let (text, _) = mail_parts(&mails.pop()?.1);
    text.lines().find(|l| l.contains(marker)).map(|l| l.trim().to_string())
}

/// The decoded text and HTML parts of a raw message (both base64, as the mailer writes them).
pub fn mail_parts(raw: &str) -> (String, String) {
    let mut text = String::new();
    let mut html = String::new();
    // The Maildir keeps messages with \n line ends; the wire had \r\n.
    let raw = raw.replace("\r\n", "\n");
    for part in raw.split("\n--").skip(1) {
        let Some((headers, body)) = part.split_once("\n\n") else { continue };
        let b64: String = body.lines().take_while(|l| !l.starts_with("--")).collect::<Vec<_>>().join("");
        let Ok(bytes) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64.trim()) else {
            continue;
        };
        let decoded = String::from_utf8(bytes).unwrap_or_default();
        if headers.contains("text/plain") {
            text = decoded;
        } else if headers.contains("text/html") {
            html = decoded;
        }
    }
    (text, html)
}

/// A Drive configuration for tests against the emulator: retries that wait milliseconds,
/// not seconds, and enough of them to ride out injected fault rates.
pub fn fast_drive_config(base: &str) -> crate::adapters::drive::DriveConfig {
    let mut config = crate::adapters::drive::DriveConfig::new(base);
    config.backoff_base = std::time::Duration::from_millis(1);
    config.backoff_max = std::time::Duration::from_millis(20);
    config.max_attempts = 30;
    config
}

/// A TCP relay in front of the database that counts round trips: each time the client sends
/// after the server has answered is one. What a statement count can't show (a script of five
/// statements is one round trip, a pool's ping is one with no statement), this does.
pub struct RoundTrips {
    count: std::sync::Arc<AtomicU64>,
    /// The relay's `DATABASE_URL`: the database `pool` uses, through the relay.
    pub url: String,
}

impl RoundTrips {
    pub async fn in_front_of(pool: &MySqlPool) -> RoundTrips {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target = database_url_of(pool).await;
        let parsed = url_host_port(&target);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
        let port = listener.local_addr().expect("bound").port();
        let count = std::sync::Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let server_at = parsed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&server_at).await.expect("the database answers");
                let counter = counter.clone();
                // Whether the last bytes went server → client: the client's next send is a new
                // round trip.
                let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up_answered = answered.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        // Before the bytes go on: the answer may come back at once.
                        if up_answered.swap(false, Ordering::SeqCst) {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        answered.store(true, Ordering::SeqCst);
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let url = target.replacen(&parsed, &format!("127.0.0.1:{port}"), 1);
        RoundTrips { count, url }
    }

    pub fn so_far(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

/// `host:port` of a `mysql://user[:pass]@host:port/db` URL.
fn url_host_port(url: &str) -> String {
    let after_at = url.rsplit_once('@').map_or(url.trim_start_matches("mysql://"), |(_, rest)| rest);
    after_at.split(['/', '?']).next().unwrap_or(after_at).to_string()
}

/// The SMTP sink the tests send to: `SMTP_URL` (the Makefile's, or the Docker route's), else
/// the local sink's default.
pub fn smtp_url() -> String {
    std::env::var("SMTP_URL").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| "smtp://127.0.0.1:1025".into())
}
