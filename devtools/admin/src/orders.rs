use anyhow::Result;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::mail::Mailer;
use coursedrop::app::operations;
use coursedrop::app::refund;
use coursedrop::app::self_service::SelfServiceError;
use coursedrop::app::sweeper::{self, Deadlines};
use coursedrop::domain::{ItemStatus, OrderStatus, Status};
use coursedrop::store::{self, items, orders};
use serde_json::{Value, json};

use crate::table::{Table, vnd};
use crate::{Ctx, coded, invalid, when};

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
            Some(stage) if i.status == ItemStatus::Failed => format!("failed ({stage})"),
            _ => i.status.to_string(),
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

pub(crate) async fn orders(ctx: &Ctx, status: Option<String>, limit: u32) -> Result<(Value, String)> {
    let orders = operations::orders(&ctx.pool, order_status(status)?, limit).await?;
    let mut t = Table::new(&["ORDER", "EMAIL", "STATUS", "TOTAL", "PAID", "ITEMS", "CREATED", "ATTENTION"]);
    for o in &orders {
        t.row(vec![
            o.code.clone(),
            o.email.clone(),
            o.status.to_string(),
            vnd(o.total_vnd),
            vnd(o.paid_vnd),
            o.items.to_string(),
            when(o.created_at),
            o.attention.clone().unwrap_or_default(),
        ]);
    }
    Ok((json!(orders), t.render()))
}

pub(crate) async fn order(ctx: &Ctx, code: String) -> Result<(Value, String)> {
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
    Ok((json!(timeline), text))
}

pub(crate) async fn items(ctx: &Ctx, status: Option<String>, limit: u32) -> Result<(Value, String)> {
    let items = operations::items(&ctx.pool, item_status(status)?, limit).await?;
    let text = items_table(&items).render();
    Ok((json!(items), text))
}

pub(crate) async fn stuck(ctx: &Ctx) -> Result<(Value, String)> {
    let stuck = sweeper::stuck_items(&ctx.pool, &Deadlines::from_vars(&ctx.vars)?).await?;
    let mut t = Table::new(&["ITEM", "ORDER", "COURSE", "STATUS", "FOR", "ATTEMPTS", "LAST ERROR"]);
    for s in &stuck {
        t.row(vec![
            s.id.to_string(),
            s.order_code.clone(),
            s.course.clone(),
            s.status.to_string(),
            format!("{} min", s.minutes),
            s.attempts.to_string(),
            s.last_error.clone().unwrap_or_default(),
        ]);
    }
    let text = if stuck.is_empty() { "no stuck items".to_string() } else { t.render() };
    Ok((json!(stuck), text))
}

pub(crate) async fn retry(ctx: &Ctx, item_id: u64) -> Result<(Value, String)> {
    let done = operations::retry_failed(&ctx.pool, item_id, &ctx.actor).await?;
    let queued = ctx.publish(done.outbox.as_slice()).await;
    let now = items::status(&mut *ctx.pool.acquire().await?, item_id).await?;
    let to = now.map(|s| s.as_str()).unwrap_or("gone");
    Ok((
        json!({"item_id": item_id, "status": to, "message": queued}),
        format!("item {item_id} is {to} again: {queued}"),
    ))
}

pub(crate) async fn resend_email(ctx: &Ctx, item_id: u64) -> Result<(Value, String)> {
    let mailer = Mailer::from_vars(&ctx.vars)?;
    let sent = operations::resend_email(&ctx.pool, &mailer, item_id, &ctx.actor).await?;
    let text = format!("sent item {item_id}'s delivery email to {} ({})", sent.to, sent.message_id);
    Ok((json!(sent), text))
}

pub(crate) async fn move_access(
    ctx: &Ctx,
    code: String,
    to: String,
    course: Option<String>,
) -> Result<(Value, String)> {
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
    Ok((json!(moved), text))
}

pub(crate) async fn refund(ctx: &Ctx, code: String, reason: String) -> Result<(Value, String)> {
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
    Ok((json!(report), text))
}

pub(crate) async fn cancel(ctx: &Ctx, code: String, reason: String) -> Result<(Value, String)> {
    let code = ctx.code(&code)?;
    let order = operations::order(&ctx.pool, &code).await?;
    if order.status != OrderStatus::Pending {
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
    Ok((json!({"code": code.as_str(), "status": "cancelled"}), format!("order {code} cancelled")))
}

pub(crate) async fn purge_unpaid(ctx: &Ctx, older_than_days: u32) -> Result<(Value, String)> {
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
    Ok((
        json!({"purged": purged, "older_than_days": older_than_days}),
        format!("{purged} orders that expired unpaid more than {older_than_days} days ago deleted"),
    ))
}
