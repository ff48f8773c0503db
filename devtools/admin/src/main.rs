//! `coursedrop-admin`: the operator's CLI. It reads the same settings as the functions
//! (`DATABASE_URL`, the queue settings, `SMTP_URL`, the Drive credentials), needs only the ones
//! the command uses, and records every change in the order's timeline as
//! `operator:<name>` (`--operator`, default `$USER`).
//!
//! Tables for people by default; `--json` for scripts. Exit code 0 on success, 1 when the
//! command was refused or failed (the reason on stderr), 2 for a usage error.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::mail::Mailer;
use coursedrop::adapters::source::{CourseSource, DeliveryMode, S3Source};
use coursedrop::app::config::{self, AppVars};
use coursedrop::app::operations;
use coursedrop::app::payments::{self, Gateway};
use coursedrop::app::reconcile;
use coursedrop::app::refund;
use coursedrop::app::relay;
use coursedrop::app::self_service::SelfServiceError;
use coursedrop::app::sweeper::{self, Deadlines};
use coursedrop::domain::{CouponCode, CourseSlug, Discount, ItemStatus, OrderCode, OrderStatus, Status, Vnd};
use coursedrop::store::{self, items, orders, outbox::OutboxMessage};
use serde_json::{Value, json};
use sqlx::MySqlPool;

mod table;

use table::{Table, vnd};

#[derive(Parser)]
#[command(name = "coursedrop-admin", version, about = "Operate coursedrop: catalog, orders, items, payments.")]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Who is acting, for the timeline (recorded as operator:<name>).
    #[arg(long, global = true, env = "USER", default_value = "admin")]
    operator: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The catalog.
    #[command(subcommand)]
    Course(CourseCommand),
    /// Discount codes.
    #[command(subcommand)]
    Coupon(CouponCommand),
    /// Orders, newest first.
    Orders {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One order: its items and its timeline.
    Order { code: String },
    /// Items, most recently changed first.
    Items {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Items in a working state longer than its deadline.
    Stuck,
    /// Send a failed item back to the stage it failed in.
    Retry { item_id: u64 },
    /// Send a completed item's delivery email again.
    ResendEmail { item_id: u64 },
    /// Move the Drive access of an order's delivered courses to another Google address (the
    /// old one loses it), and email the links there. No limit, unlike the buyer's own.
    MoveAccess {
        code: String,
        /// The Google address that gets the access.
        #[arg(long)]
        to: String,
        /// Only this course of the order.
        #[arg(long)]
        course: Option<String>,
    },
    /// Refund a paid order: revoke its items and remove the buyer's Drive access.
    Refund {
        code: String,
        #[arg(long)]
        reason: String,
    },
    /// Accept the late payment of an expired (cancelled) order: it becomes paid and its
    /// courses are delivered.
    AcceptLate { code: String },
    /// Delete orders that expired unpaid more than DAYS ago (no payment, nothing paid), with
    /// their items and timeline: they hold only a stranger's email. Safe to run on a schedule.
    PurgeUnpaid {
        #[arg(long, default_value_t = 90)]
        older_than_days: u32,
    },
    /// Cancel an unpaid order.
    Cancel {
        code: String,
        #[arg(long, default_value = "cancelled by an operator")]
        reason: String,
    },
    /// Payments that matched no order.
    #[command(subcommand)]
    Payments(PaymentCommand),
    /// List each bank feed's transfers since its cursor and record what the webhooks missed
    /// (one pass, as the scheduled reconciler runs it).
    Reconcile {
        /// Only this feed: sepay or casso.
        #[arg(long)]
        gateway: Option<String>,
        /// List from this day (YYYY-MM-DD, Vietnam time) instead of the stored cursor.
        #[arg(long)]
        since: Option<String>,
    },
    /// Each function's own database user (infra/db-users.sql) on the database of
    /// DATABASE_URL, with the passwords in DB_PASSWORD_<FUNCTION> (infra/db-users passes them
    /// from the stack's secrets). Run as the database's administrator after `make migrate`.
    DbUsers,
}

#[derive(Subcommand)]
enum CourseCommand {
    /// Add a course; its source must exist, hold files and be deliverable in the mode asked.
    Add {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        title: String,
        /// Price in VND (an integer).
        #[arg(long)]
        price: i64,
        /// s3://bucket/prefix/, drive://<folderId>, or the Drive folder's address as the browser
        /// shows it (https://drive.google.com/drive/folders/<id>)
        #[arg(long)]
        source: String,
        /// copy: a folder of the buyer's own with the course copied into it; share (Drive
        /// sources only): read access to the seller's folder itself, nothing copied
        #[arg(long, default_value = "copy")]
        mode: String,
        #[arg(long)]
        lms_course_id: Option<String>,
    },
    List,
    /// Take a course off sale; orders already made keep it.
    Disable {
        slug: String,
    },
    /// Put a course back on sale.
    Enable {
        slug: String,
    },
}

#[derive(Subcommand)]
enum CouponCommand {
    /// Add a coupon: a percentage or an amount off, optionally limited in uses, time and courses.
    Add {
        /// What buyers type (3-32 letters, digits, - and _; any case).
        #[arg(long)]
        code: String,
        /// Percent off (1-100), rounded down to the đồng.
        #[arg(long, conflicts_with = "amount", required_unless_present = "amount")]
        percent: Option<u8>,
        /// VND off (at most the price of the courses it applies to).
        #[arg(long)]
        amount: Option<i64>,
        /// How many orders may use it (unlimited without).
        #[arg(long)]
        max_uses: Option<u32>,
        /// Valid from: YYYY-MM-DD (Vietnam time, from midnight), YYYY-MM-DD HH:MM or RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// Valid until: YYYY-MM-DD (Vietnam time, through that whole day), YYYY-MM-DD HH:MM or RFC 3339.
        #[arg(long)]
        until: Option<String>,
        /// Only for this course (repeat for more); every course without.
        #[arg(long = "course")]
        courses: Vec<String>,
    },
    List,
    /// Take a coupon off: orders placed with it keep their price.
    Disable {
        code: String,
    },
}

#[derive(Subcommand)]
enum PaymentCommand {
    /// Incoming transfers kept without an order, newest first.
    Unmatched {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Count an unmatched payment towards an order.
    Attach { payment_id: u64, code: String },
    /// Transfers held as possible duplicates: another feed reported one with the same account,
    /// amount and text moments apart, and no bank reference tells the two apart.
    Held {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// A held payment is a transfer of its own: count it towards the order its lookalike paid.
    Release { payment_id: u64 },
    /// A held payment is the transfer it resembles, reported twice: keep it as evidence only.
    Drop { payment_id: u64 },
}

struct Ctx {
    pool: MySqlPool,
    vars: AppVars,
    actor: String,
}

impl Ctx {
    fn code(&self, input: &str) -> Result<OrderCode> {
        let pattern = config::code_pattern(&self.vars)?;
        OrderCode::parse(input, &pattern).map_err(|e| invalid(format!("{input:?} is not an order code: {e}")))
    }

    /// Publishes the outbox rows a command wrote. If the queue is unreachable the rows stay
    /// and the sweeper publishes them within a minute; the command still succeeded.
    async fn publish(&self, rows: &[OutboxMessage]) -> &'static str {
        if rows.is_empty() {
            return "";
        }
        let publisher = config::sqs_publisher(&self.vars).await;
        let report = relay::publish_all(&self.pool, &publisher, rows).await;
        if report.failed == 0 { "queued" } else { "saved; the sweeper will queue it within a minute" }
    }
}

/// A refusal with a stable code for `--json` output (`invalid_input`, `not_found`, `refused`);
/// other failures get theirs from their type in [`error_code`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Coded {
    code: &'static str,
    message: String,
}

fn coded(code: &'static str, message: impl Into<String>) -> anyhow::Error {
    Coded { code, message: message.into() }.into()
}

fn invalid(message: impl Into<String>) -> anyhow::Error {
    coded("invalid_input", message)
}

fn store_code(s: &store::StoreError) -> &'static str {
    match s {
        store::StoreError::NotFound { .. } => "not_found",
        store::StoreError::ItemConflict { .. }
        | store::StoreError::OrderConflict { .. }
        | store::StoreError::PartialChange { .. } => "conflict",
        _ => "database",
    }
}

/// The stable code of a failed command, from the first cause whose type says what it was.
fn error_code(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.code;
        }
        if let Some(o) = cause.downcast_ref::<operations::OpsError>() {
            match o {
                operations::OpsError::NotFound(_) => return "not_found",
                operations::OpsError::Refused(_) => return "refused",
                operations::OpsError::Source(_) => return "source",
                operations::OpsError::Drive(_) => return "drive",
                operations::OpsError::Mail(_) => return "mail",
                // Transparent: the StoreError is not a cause of its own in the chain.
                operations::OpsError::Store(s) => return store_code(s),
            }
        }
        if let Some(e) = cause.downcast_ref::<SelfServiceError>() {
            match e {
                SelfServiceError::Drive(_) => return "drive",
                SelfServiceError::Mail(_) => return "mail",
                SelfServiceError::Store(s) => return store_code(s),
                _ => return "refused",
            }
        }
        if let Some(s) = cause.downcast_ref::<store::StoreError>() {
            return store_code(s);
        }
        if cause.downcast_ref::<sqlx::Error>().is_some() {
            return "database";
        }
        if cause.downcast_ref::<config::ConfigError>().is_some() {
            return "config";
        }
    }
    "failed"
}

/// The database the administrator's connection is on.
async fn sqlx_database(pool: &MySqlPool) -> Result<String> {
    store::current_database(pool).await?.ok_or_else(|| invalid("DATABASE_URL names no database"))
}

fn hold_error(e: payments::hold::HoldError) -> anyhow::Error {
    match e {
        payments::hold::HoldError::NoPayment(_) => coded("not_found", e.to_string()),
        payments::hold::HoldError::NotHeld(_) => coded("refused", e.to_string()),
        payments::hold::HoldError::Store(e) => e.into(),
    }
}

fn course_slug(input: &str) -> Result<CourseSlug> {
    CourseSlug::parse(input).map_err(|_| invalid(format!("{input:?} is not a course slug")))
}

fn coupon_code(input: &str) -> Result<CouponCode> {
    CouponCode::parse(input).map_err(|e| invalid(format!("{input:?} is not a coupon code: {e}")))
}

fn coupon_scope(c: &store::coupons::Coupon) -> String {
    if c.courses.is_empty() { "every course".into() } else { c.courses.join(", ") }
}

/// A time an operator types. A bare date is Vietnam's (UTC+7), where the seller is: from its
/// midnight, or for an end, through that whole day.
fn moment(flag: &str, input: &str, end: bool) -> Result<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let vietnam = chrono::FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset");
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let local = if let Ok(t) = NaiveDateTime::parse_from_str(input, "%Y-%m-%d %H:%M") {
        t
    } else if let Ok(d) = NaiveDate::parse_from_str(input, "%Y-%m-%d") {
        let d = if end { d.succ_opt().unwrap_or(d) } else { d };
        d.and_hms_opt(0, 0, 0).expect("midnight exists")
    } else {
        return Err(invalid(format!("{flag} {input:?}: a date (YYYY-MM-DD), YYYY-MM-DD HH:MM or RFC 3339")));
    };
    let t = vietnam.from_local_datetime(&local).single().ok_or_else(|| invalid(format!("{flag} {input:?}")))?;
    Ok(t.with_timezone(&chrono::Utc))
}

fn item_status(s: Option<String>) -> Result<Option<ItemStatus>> {
    s.map(|s| ItemStatus::parse(&s).map_err(|e| invalid(format!("{e}; one of: {}", names(ItemStatus::ALL)))))
        .transpose()
}

fn order_status(s: Option<String>) -> Result<Option<OrderStatus>> {
    s.map(|s| OrderStatus::parse(&s).map_err(|e| invalid(format!("{e}; one of: {}", names(OrderStatus::ALL)))))
        .transpose()
}

fn names<S: Status>(all: &[S]) -> String {
    all.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn progress(i: &operations::ItemSummary) -> String {
    match (i.files_total, i.bytes_total) {
        (Some(files), Some(bytes)) if bytes > 0 => {
            format!("{}/{} files, {:.0}%", i.files_done, files, i.bytes_done as f64 * 100.0 / bytes as f64)
        }
        (Some(files), _) => format!("{}/{} files", i.files_done, files),
        _ => String::new(),
    }
}

fn items_table(items: &[operations::ItemSummary]) -> Table {
    let mut t = Table::new(&["ITEM", "ORDER", "COURSE", "STATUS", "PROGRESS", "ATTEMPTS", "UPDATED", "LAST ERROR"]);
    for i in items {
        let status = match &i.failed_stage {
            Some(stage) if i.status == "failed" => format!("failed ({stage})"),
            _ => i.status.clone(),
        };
        t.row(vec![
            i.id.to_string(),
            i.order_code.clone(),
            i.course.clone(),
            status,
            progress(i),
            i.attempts.to_string(),
            when(i.updated_at),
            i.last_error.clone().unwrap_or_default(),
        ]);
    }
    t
}

/// Runs the command; returns what to print (JSON for scripts, text for people).
async fn run(cli: Cli, ctx: &Ctx) -> Result<(Value, String)> {
    Ok(match cli.command {
        Command::Course(CourseCommand::Add { slug, title, price, source, mode, lms_course_id }) => {
            let slug = CourseSlug::parse(&slug).map_err(|e| invalid(format!("--slug: {e}")))?;
            let price = Vnd::new(price).map_err(|e| invalid(format!("--price: {e}")))?;
            let mode = DeliveryMode::parse(&mode).map_err(|_| invalid(format!("--mode {mode:?}: copy or share")))?;
            let s3 = S3Source::from_vars(&ctx.vars).await;
            // Drive credentials are read only for a Drive source: an S3-only seller needs none.
            let drive = match CourseSource::parse(&source) {
                Ok(CourseSource::Drive(_)) => Some(DriveClient::from_vars(&ctx.vars).await?),
                _ => None,
            };
            let course = operations::CourseToAdd {
                slug: &slug,
                title: &title,
                price,
                source: &source,
                mode,
                lms_course_id: lms_course_id.as_deref(),
            };
            let added = operations::add_course(&ctx.pool, &s3, drive.as_ref(), &course).await?;
            let text = format!(
                "added course {} (id {}): {} files, {:.1} MB at {}, delivered by {}",
                added.slug,
                added.id,
                added.files,
                added.bytes as f64 / 1e6,
                added.source,
                added.delivery_mode.as_str()
            );
            (json!(added), text)
        }
        Command::Course(CourseCommand::List) => {
            let courses = operations::courses(&ctx.pool).await?;
            let mut t = Table::new(&["SLUG", "TITLE", "PRICE", "ON SALE", "MODE", "SOURCE"]);
            for c in &courses {
                t.row(vec![
                    c.slug.clone(),
                    c.title.clone(),
                    vnd(c.price_vnd),
                    if c.active { "yes" } else { "no" }.into(),
                    c.delivery_mode.clone(),
                    c.source.clone(),
                ]);
            }
            (json!(courses), t.render())
        }
        Command::Course(CourseCommand::Disable { slug }) => {
            operations::set_course_active(&ctx.pool, &course_slug(&slug)?, false).await?;
            (json!({"slug": slug, "active": false}), format!("course {slug} is off sale"))
        }
        Command::Course(CourseCommand::Enable { slug }) => {
            operations::set_course_active(&ctx.pool, &course_slug(&slug)?, true).await?;
            (json!({"slug": slug, "active": true}), format!("course {slug} is on sale"))
        }
        Command::Coupon(CouponCommand::Add { code, percent, amount, max_uses, from, until, courses }) => {
            let code = coupon_code(&code)?;
            let discount = match (percent, amount) {
                (Some(p), None) => Discount::percent(p).map_err(|e| invalid(format!("--percent: {e}")))?,
                (None, Some(a)) => Vnd::new(a)
                    .map_err(|e| e.to_string())
                    .and_then(|a| Discount::amount(a).map_err(|e| e.to_string()))
                    .map_err(|e| invalid(format!("--amount: {e}")))?,
                _ => return Err(invalid("give one of --percent and --amount")),
            };
            let courses = courses.iter().map(|c| course_slug(c)).collect::<Result<Vec<_>>>()?;
            let coupon = operations::add_coupon(
                &ctx.pool,
                &operations::CouponToAdd {
                    code: &code,
                    discount,
                    max_uses,
                    valid_from: from.as_deref().map(|t| moment("--from", t, false)).transpose()?,
                    valid_until: until.as_deref().map(|t| moment("--until", t, true)).transpose()?,
                    courses: &courses,
                },
            )
            .await?;
            let text = format!("added coupon {}: {} off {}", coupon.code, coupon.discount, coupon_scope(&coupon));
            (json!(coupon), text)
        }
        Command::Coupon(CouponCommand::List) => {
            let coupons = operations::coupons(&ctx.pool).await?;
            let mut t = Table::new(&["CODE", "OFF", "USED", "FROM", "UNTIL", "COURSES", "ACTIVE"]);
            for c in &coupons {
                t.row(vec![
                    c.code.clone(),
                    c.discount.to_string(),
                    match c.max_uses {
                        Some(max) => format!("{}/{max}", c.uses),
                        None => c.uses.to_string(),
                    },
                    c.valid_from.map(when).unwrap_or_default(),
                    c.valid_until.map(when).unwrap_or_default(),
                    coupon_scope(c),
                    if c.active { "yes" } else { "no" }.into(),
                ]);
            }
            (json!(coupons), t.render())
        }
        Command::Coupon(CouponCommand::Disable { code }) => {
            let code = coupon_code(&code)?;
            operations::disable_coupon(&ctx.pool, &code).await?;
            (
                json!({"code": code, "active": false}),
                format!("coupon {code} is off; orders placed with it keep their price"),
            )
        }
        Command::Orders { status, limit } => {
            let orders = operations::orders(&ctx.pool, order_status(status)?, limit).await?;
            let mut t = Table::new(&["ORDER", "EMAIL", "STATUS", "TOTAL", "PAID", "ITEMS", "CREATED", "ATTENTION"]);
            for o in &orders {
                t.row(vec![
                    o.code.clone(),
                    o.email.clone(),
                    o.status.clone(),
                    vnd(o.total_vnd),
                    vnd(o.paid_vnd),
                    o.items.to_string(),
                    when(o.created_at),
                    o.attention.clone().unwrap_or_default(),
                ]);
            }
            (json!(orders), t.render())
        }
        Command::Order { code } => {
            let timeline = operations::timeline(&ctx.pool, &ctx.code(&code)?).await?;
            let o = &timeline.order;
            let mut text = format!(
                "order {}  {}  {}  paid {} of {}  created {}\n",
                o.code,
                o.email,
                o.status,
                vnd(o.paid_vnd),
                vnd(o.total_vnd),
                when(o.created_at)
            );
            if let Some(a) = &o.attention {
                text.push_str(&format!("needs attention: {a}\n"));
            }
            text.push('\n');
            text.push_str(&items_table(&timeline.items).render());
            let mut t = Table::new(&["WHEN", "ITEM", "WHAT", "CHANGE", "BY", "DETAIL"]);
            for e in &timeline.events {
                let change = match (&e.from_status, &e.to_status) {
                    (Some(f), Some(to)) => format!("{f} → {to}"),
                    (None, Some(to)) => format!("→ {to}"),
                    _ => String::new(),
                };
                t.row(vec![
                    when(e.created_at),
                    e.item_id.map(|i| i.to_string()).unwrap_or_default(),
                    e.kind.clone(),
                    change,
                    e.actor.clone(),
                    e.detail.clone().unwrap_or_default(),
                ]);
            }
            text.push('\n');
            text.push_str(&t.render());
            (json!(timeline), text)
        }
        Command::Items { status, limit } => {
            let items = operations::items(&ctx.pool, item_status(status)?, limit).await?;
            let text = items_table(&items).render();
            (json!(items), text)
        }
        Command::Stuck => {
            let stuck = sweeper::stuck_items(&ctx.pool, &Deadlines::from_vars(&ctx.vars)?).await?;
            let mut t = Table::new(&["ITEM", "ORDER", "COURSE", "STATUS", "FOR", "ATTEMPTS", "LAST ERROR"]);
            for s in &stuck {
                t.row(vec![
                    s.id.to_string(),
                    s.order_code.clone(),
                    s.course.clone(),
                    s.status.clone(),
                    format!("{} min", s.minutes),
                    s.attempts.to_string(),
                    s.last_error.clone().unwrap_or_default(),
                ]);
            }
            let text = if stuck.is_empty() { "no stuck items".to_string() } else { t.render() };
            (json!(stuck), text)
        }
        Command::Retry { item_id } => {
            let done = items::retry_failed(&ctx.pool, item_id, &ctx.actor).await.map_err(|e| match e {
                store::StoreError::ItemConflict { actual, .. } => {
                    coded("refused", format!("item {item_id} is {actual}, not failed: nothing to retry"))
                }
                store::StoreError::NotFound { .. } => coded("not_found", format!("no item {item_id}")),
                e => e.into(),
            })?;
            let queued = ctx.publish(done.outbox.as_slice()).await;
            let now = items::status(&mut *ctx.pool.acquire().await?, item_id).await?;
            let to = now.map(|s| s.as_str()).unwrap_or("gone");
            (
                json!({"item_id": item_id, "status": to, "message": queued}),
                format!("item {item_id} is {to} again: {queued}"),
            )
        }
        Command::ResendEmail { item_id } => {
            let mailer = Mailer::from_vars(&ctx.vars)?;
            let sent = operations::resend_email(&ctx.pool, &mailer, item_id, &ctx.actor).await?;
            let text = format!("sent item {item_id}'s delivery email to {} ({})", sent.to, sent.message_id);
            (json!(sent), text)
        }
        Command::MoveAccess { code, to, course } => {
            let code = ctx.code(&code)?;
            let to = coursedrop::domain::Email::parse(&to).map_err(|e| invalid(format!("--to: {e}")))?;
            let drive = DriveClient::from_vars(&ctx.vars).await?;
            let mailer = Mailer::from_vars(&ctx.vars)?;
            let moved = coursedrop::app::self_service::move_access_as_operator(
                &ctx.pool,
                &drive,
                &mailer,
                &code,
                &to,
                course.as_deref(),
                &ctx.actor,
            )
            .await
            .map_err(|e| match e {
                SelfServiceError::NotDeliveredYet => coded(
                    "refused",
                    format!(
                        "order {code} has no delivered course to move{}",
                        match &course {
                            Some(c) => format!(" named {c}"),
                            None => String::new(),
                        }
                    ),
                ),
                // The rest get their codes in error_code.
                e => anyhow::Error::from(e),
            })?;
            let titles: Vec<&str> = moved.items.iter().map(|i| i.title.as_str()).collect();
            let mut text = format!("access to {} moved to {to}", titles.join(", "));
            if !moved.emailed {
                text.push_str("; the email to the new address was not sent (resend-email sends it)");
            }
            (json!(moved), text)
        }
        Command::Refund { code, reason } => {
            let code = ctx.code(&code)?;
            let drive = DriveClient::from_vars(&ctx.vars).await?;
            let report = refund::refund(&ctx.pool, &drive, &code, &ctx.actor, &reason).await?;
            let queued = ctx.publish(report.outbox.as_slice()).await;
            let mut text = format!(
                "order {code} refunded: {} items revoked, {} Drive permissions removed, {} unenrollments queued",
                report.items_revoked, report.permissions_removed, report.unenrollments_queued
            );
            if !queued.is_empty() {
                text.push_str(&format!(" ({queued})"));
            }
            if !report.folders_left.is_empty() {
                text.push_str(&format!(
                    "\nDrive did not answer for {} courses; their access is taken back by the finalize queue when it does (its alarms fire if it keeps failing)",
                    report.folders_left.len()
                ));
            }
            (json!(report), text)
        }
        Command::Cancel { code, reason } => {
            let code = ctx.code(&code)?;
            let order = operations::order(&ctx.pool, &code).await?;
            if order.status != OrderStatus::Pending.as_str() {
                return Err(coded(
                    "refused",
                    format!("order {code} is {}: only an unpaid order can be cancelled", order.status),
                ));
            }
            orders::cancel_unpaid(&ctx.pool, order.id, &ctx.actor, &reason).await.map_err(|e| match e {
                store::StoreError::OrderConflict { actual, .. } => {
                    coded("refused", format!("order {code} became {actual} meanwhile: it was not cancelled"))
                }
                e => e.into(),
            })?;
            (json!({"code": code.as_str(), "status": "cancelled"}), format!("order {code} cancelled"))
        }
        Command::Payments(PaymentCommand::Unmatched { limit }) => {
            let payments = payments::unmatched(&ctx.pool, limit).await?;
            let mut t = Table::new(&["PAYMENT", "FEED", "FEED ID", "AMOUNT", "RECEIVED", "BANK", "TRANSFER TEXT"]);
            for p in &payments {
                t.row(vec![
                    p.id.to_string(),
                    p.gateway.clone(),
                    p.gateway_txn_id.clone(),
                    vnd(p.amount_vnd),
                    when(p.received_at),
                    p.bank.clone().unwrap_or_default(),
                    p.content.clone().unwrap_or_default(),
                ]);
            }
            let text = if payments.is_empty() { "no unmatched payments".to_string() } else { t.render() };
            (json!(payments), text)
        }
        Command::Payments(PaymentCommand::Held { limit }) => {
            let held = payments::hold::held(&ctx.pool, limit).await?;
            let mut t = Table::new(&[
                "PAYMENT",
                "FEED",
                "FEED ID",
                "AMOUNT",
                "BANK TIME",
                "LOOKS LIKE",
                "ORDER",
                "TRANSFER TEXT",
            ]);
            for p in &held {
                t.row(vec![
                    p.id.to_string(),
                    p.feed.clone(),
                    p.feed_txn_id.clone(),
                    vnd(p.amount_vnd),
                    p.transaction_date.clone().unwrap_or_else(|| when(p.received_at)),
                    format!(
                        "{} ({} {}, {})",
                        p.duplicate_of,
                        p.duplicate_feed,
                        p.duplicate_feed_txn_id,
                        p.duplicate_transaction_date.as_deref().unwrap_or("-")
                    ),
                    p.order_code.clone().unwrap_or_else(|| "-".into()),
                    p.content.clone().unwrap_or_default(),
                ]);
            }
            let text = if held.is_empty() {
                "no held payments".to_string()
            } else {
                format!(
                    "{}\n`payments release ID` counts one as a transfer of its own; `payments drop ID` keeps it as evidence only",
                    t.render()
                )
            };
            (json!(held), text)
        }
        Command::Payments(PaymentCommand::Release { payment_id }) => {
            let released = payments::hold::release(&ctx.pool, payment_id, &ctx.actor).await.map_err(hold_error)?;
            match released.recorded {
                Some((code, recorded)) => {
                    let queued = ctx.publish(&recorded.outbox).await;
                    let text = match &recorded.outcome {
                        payments::PaymentOutcome::Applied { paid_vnd, total_vnd, became_paid, .. } => format!(
                            "payment {payment_id} released and counted towards {code}: {} of {} paid{}",
                            vnd(*paid_vnd),
                            vnd(*total_vnd),
                            if *became_paid {
                                format!("; the order is paid and its courses are {queued}")
                            } else {
                                String::new()
                            }
                        ),
                        payments::PaymentOutcome::Flagged { reason, .. } => {
                            format!(
                                "payment {payment_id} released and counted towards {code}; the order is flagged: {reason}"
                            )
                        }
                        other => format!("payment {payment_id} released: {other:?}"),
                    };
                    (json!({"payment_id": payment_id, "hold": "released", "code": code}), text)
                }
                None => (
                    json!({"payment_id": payment_id, "hold": "released", "code": null}),
                    format!(
                        "payment {payment_id} released; it matches no order, so it is listed with `payments unmatched` to attach"
                    ),
                ),
            }
        }
        Command::Payments(PaymentCommand::Drop { payment_id }) => {
            payments::hold::drop_held(&ctx.pool, payment_id, &ctx.actor).await.map_err(hold_error)?;
            (
                json!({"payment_id": payment_id, "hold": "dropped"}),
                format!("payment {payment_id} dropped: kept as evidence of the transfer it duplicates, never counted"),
            )
        }
        Command::DbUsers => {
            let database: String = sqlx_database(&ctx.pool).await?;
            let password = |role: &str| std::env::var(format!("DB_PASSWORD_{}", role.to_uppercase())).ok();
            let users = store::users::apply(&ctx.pool, &database, "", password).await.map_err(|e| match e {
                store::StoreError::Corrupt(m) => invalid(format!("{m} (set DB_PASSWORD_<FUNCTION> for each function)")),
                e => e.into(),
            })?;
            let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
            (
                json!({"database": database, "users": names}),
                format!(
                    "{} function users on {database}, each with only its grants: {}",
                    names.len(),
                    names.join(", ")
                ),
            )
        }
        Command::Reconcile { gateway, since } => reconcile(ctx, gateway, since).await?,
        Command::PurgeUnpaid { older_than_days } => {
            if older_than_days < 1 {
                return Err(invalid("--older-than-days must be at least 1"));
            }
            let mut purged = 0;
            loop {
                let n = store::orders::purge_cancelled_unpaid(&ctx.pool, older_than_days, 500).await?;
                purged += n;
                if n < 500 {
                    break;
                }
            }
            (
                json!({"purged": purged, "older_than_days": older_than_days}),
                format!("{purged} orders that expired unpaid more than {older_than_days} days ago deleted"),
            )
        }
        Command::AcceptLate { code } => {
            let code = ctx.code(&code)?;
            let recorded = payments::accept_late(&ctx.pool, &code, &ctx.actor).await.map_err(|e| match e {
                payments::AcceptError::NoOrder(_) => coded("not_found", e.to_string()),
                payments::AcceptError::Store(e) => e.into(),
                e => coded("refused", e.to_string()),
            })?;
            let queued = ctx.publish(&recorded.outbox).await;
            let paid = match &recorded.outcome {
                payments::PaymentOutcome::Applied { paid_vnd, .. } => *paid_vnd,
                _ => 0,
            };
            (
                json!({"code": code.as_str(), "status": "paid", "paid_vnd": paid, "items": recorded.outbox.len()}),
                format!(
                    "order {code}: late payment of {} accepted; the order is paid and its {} courses are {queued}",
                    vnd(paid),
                    recorded.outbox.len()
                ),
            )
        }
        Command::Payments(PaymentCommand::Attach { payment_id, code }) => {
            let code = ctx.code(&code)?;
            let recorded = payments::attach(&ctx.pool, payment_id, &code, &ctx.actor).await.map_err(|e| match e {
                payments::AttachError::NoPayment(_) | payments::AttachError::NoOrder(_) => {
                    coded("not_found", e.to_string())
                }
                payments::AttachError::Store(e) => e.into(),
                e => coded("refused", e.to_string()),
            })?;
            let queued = ctx.publish(&recorded.outbox).await;
            let text = match &recorded.outcome {
                payments::PaymentOutcome::Applied { paid_vnd, total_vnd, became_paid: true, .. } => format!(
                    "payment {payment_id} attached to {code}: {} of {} paid; the order is paid and its courses are {queued}",
                    vnd(*paid_vnd),
                    vnd(*total_vnd)
                ),
                payments::PaymentOutcome::Applied { paid_vnd, total_vnd, .. } => format!(
                    "payment {payment_id} attached to {code}: {} of {} paid; still waiting for the rest",
                    vnd(*paid_vnd),
                    vnd(*total_vnd)
                ),
                payments::PaymentOutcome::Flagged { reason, .. } => {
                    format!("payment {payment_id} attached to {code} and the order flagged: {reason}")
                }
                other => format!("payment {payment_id}: {other:?}"),
            };
            (
                json!({"payment_id": payment_id, "code": code.as_str(), "outcome": format!("{:?}", recorded.outcome)}),
                text,
            )
        }
    })
}

async fn reconcile(ctx: &Ctx, gateway: Option<String>, since: Option<String>) -> Result<(serde_json::Value, String)> {
    let only = gateway
        .map(|g| Gateway::parse(&g).ok_or_else(|| invalid(format!("--gateway {g:?}: expected sepay or casso"))))
        .transpose()?;
    let since = since
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .map_err(|_| invalid(format!("--since {d:?}: expected a day, YYYY-MM-DD")))
        })
        .transpose()?;
    let feeds = config::feeds(&ctx.vars)?;
    let configured = |g: Gateway| match g {
        Gateway::Sepay => feeds.sepay.is_some(),
        Gateway::Casso => feeds.casso.is_some(),
    };
    if let Some(g) = only.filter(|g| !configured(*g)) {
        return Err(coded("refused", format!("{g} has no API credentials configured: {}", feeds.off.join("; "))));
    }
    if !Gateway::ALL.iter().any(|g| configured(*g)) {
        return Err(coded("refused", format!("no bank feed to reconcile: {}", feeds.off.join("; "))));
    }
    let settings = config::payment_settings(&ctx.vars)?;
    let publisher = config::sqs_publisher(&ctx.vars).await;
    let lookback = ctx.vars.parse_or("RECONCILE_LOOKBACK_DAYS", reconcile::DEFAULT_LOOKBACK_DAYS)?;
    let outcomes = reconcile::pass_all(&ctx.pool, &feeds, &settings, &publisher, only, since, lookback).await;
    let mut lines = Vec::new();
    let mut values = Vec::new();
    let mut failed = Vec::new();
    for o in outcomes {
        match o.result {
            Ok(r) => {
                lines.push(format!(
                    "{}: listed {} from {} in {} requests; {} already recorded, {} recorded now, {} refused; cursor {} -> {}",
                    r.gateway,
                    r.listed,
                    r.started_from,
                    r.requests,
                    r.already_recorded,
                    r.found.len(),
                    r.refused.len(),
                    r.cursor_before.as_deref().unwrap_or("none"),
                    r.cursor_after.as_deref().unwrap_or("none"),
                ));
                for f in &r.found {
                    lines.push(format!(
                        "  found {} {}: {} ({})",
                        f.id,
                        vnd(f.amount_vnd),
                        f.outcome,
                        f.order_code.as_deref().unwrap_or("no order")
                    ));
                }
                for (id, reason) in &r.refused {
                    lines.push(format!("  refused {id}: {reason}"));
                }
                values.push(json!(r));
            }
            Err(e) => {
                lines.push(format!("{}: failed: {e}", o.gateway));
                values.push(json!({"gateway": o.gateway, "error": e.to_string()}));
                failed.push(format!("{}: {e}", o.gateway));
            }
        }
    }
    for off in feeds.off.iter().filter(|_| only.is_none()) {
        lines.push(off.clone());
    }
    if !failed.is_empty() {
        // What did work is in the message too: one feed failing does not hide the others.
        return Err(coded("feed", format!("reconciliation failed for {}\n{}", failed.join("; "), lines.join("\n"))));
    }
    Ok((json!(values), lines.join("\n")))
}

/// The error and its causes in one line, each cause once (sqlx repeats its message down the
/// chain), with a hint for the mistakes an operator can fix.
fn explain(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    if message.contains("1146 (42S02)") {
        message.push_str(" (the database has no schema yet: run `make migrate`)");
    }
    message
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json_output = cli.json;
    let result = async {
        // APP_SECRET_ID lets an operator use the deployed secret instead of typing credentials.
        let vars = AppVars::load().await.context("reading the configuration secret (APP_SECRET_ID)")?;
        let pool = config::connect_database(&vars, 2).await.context("connecting to the database (DATABASE_URL)")?;
        let ctx = Ctx { pool, vars, actor: format!("operator:{}", cli.operator) };
        run(cli, &ctx).await
    }
    .await;
    match result {
        Ok((value, text)) => {
            if json_output {
                println!("{}", serde_json::to_string_pretty(&value).expect("JSON values serialise"));
            } else {
                println!("{text}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            let message = explain(&e);
            if json_output {
                println!("{}", json!({"error": {"code": error_code(&e), "message": message}}));
            }
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
