//! `coursedrop-admin`: the operator's CLI. It reads the same settings as the functions
//! (`DATABASE_URL`, the queue settings, `SMTP_URL`, the Drive credentials), needs only the ones
//! the command uses, and records every change in the order's timeline as
//! `operator:<name>` (`--operator`, default `$USER`).
//!
//! Tables for people by default; `--json` for scripts. Exit code 0 on success, 1 when the
//! command was refused or failed (the reason on stderr), 2 for a usage error.

use anyhow::{Context, Result};
use clap::Parser;
use coursedrop::app::config::{self, AppVars};
use coursedrop::app::operations;
use coursedrop::app::relay;
use coursedrop::app::self_service::SelfServiceError;
use coursedrop::domain::OrderCode;
use coursedrop::store::{self, outbox::OutboxMessage};
use serde_json::{Value, json};
use sqlx::MySqlPool;

mod catalog;
mod cli;
mod db;
mod orders;
mod payments;
mod staff;
mod table;

use cli::{Cli, Command};

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
        if let Some(e) = cause.downcast_ref::<coursedrop::app::console::ConsoleError>() {
            return e.code();
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

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Runs the command; returns what to print (JSON for scripts, text for people).
async fn run(cli: Cli, ctx: &Ctx) -> Result<(Value, String)> {
    match cli.command {
        Command::Course(command) => catalog::course(ctx, command).await,
        Command::Coupon(command) => catalog::coupon(ctx, command).await,
        Command::Staff(command) => staff::staff(ctx, command).await,
        Command::Orders { status, limit } => orders::orders(ctx, status, limit).await,
        Command::Order { code } => orders::order(ctx, code).await,
        Command::Items { status, limit } => orders::items(ctx, status, limit).await,
        Command::Stuck => orders::stuck(ctx).await,
        Command::Retry { item_id } => orders::retry(ctx, item_id).await,
        Command::ResendEmail { item_id } => orders::resend_email(ctx, item_id).await,
        Command::MoveAccess { code, to, course } => orders::move_access(ctx, code, to, course).await,
        Command::Refund { code, reason } => orders::refund(ctx, code, reason).await,
        Command::AcceptLate { code } => payments::accept_late(ctx, code).await,
        Command::PurgeUnpaid { older_than_days } => orders::purge_unpaid(ctx, older_than_days).await,
        Command::Cancel { code, reason } => orders::cancel(ctx, code, reason).await,
        Command::Payments(command) => payments::payments(ctx, command).await,
        Command::Reconcile { gateway, since } => payments::reconcile(ctx, gateway, since).await,
        Command::Payos(cli::PayosCommand::ConfirmWebhook { url }) => payments::confirm_payos_webhook(ctx, &url).await,
        Command::DbUsers => db::db_users(ctx).await,
    }
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
