use anyhow::Result;
use coursedrop::app::config;
use coursedrop::app::payments::{self, Gateway};
use coursedrop::app::{reconcile, routes};
use serde_json::{Value, json};

use crate::cli::PaymentCommand;
use crate::table::{Table, vnd};
use crate::{Ctx, coded, invalid, when};

fn hold_error(e: payments::hold::HoldError) -> anyhow::Error {
    match e {
        payments::hold::HoldError::NoPayment(_) => coded("not_found", e.to_string()),
        payments::hold::HoldError::NotHeld(_) => coded("refused", e.to_string()),
        payments::hold::HoldError::Store(e) => e.into(),
    }
}

pub(crate) async fn payments(ctx: &Ctx, command: PaymentCommand) -> Result<(Value, String)> {
    Ok(match command {
        PaymentCommand::Unmatched { limit } => {
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
        PaymentCommand::Held { limit } => {
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
        PaymentCommand::Release { payment_id } => {
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
        PaymentCommand::Drop { payment_id } => {
            payments::hold::drop_held(&ctx.pool, payment_id, &ctx.actor).await.map_err(hold_error)?;
            (
                json!({"payment_id": payment_id, "hold": "dropped"}),
                format!("payment {payment_id} dropped: kept as evidence of the transfer it duplicates, never counted"),
            )
        }
        PaymentCommand::Attach { payment_id, code } => {
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

pub(crate) async fn accept_late(ctx: &Ctx, code: String) -> Result<(Value, String)> {
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
    Ok((
        json!({"code": code.as_str(), "status": "paid", "paid_vnd": paid, "items": recorded.outbox.len()}),
        format!(
            "order {code}: late payment of {} accepted; the order is paid and its {} courses are {queued}",
            vnd(paid),
            recorded.outbox.len()
        ),
    ))
}

pub(crate) async fn reconcile(
    ctx: &Ctx,
    gateway: Option<String>,
    since: Option<String>,
) -> Result<(serde_json::Value, String)> {
    let only = gateway
        .map(|g| Gateway::parse(&g).ok_or_else(|| invalid(format!("--gateway {g:?}: expected sepay, casso or payos"))))
        .transpose()?;
    let since = since
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .map_err(|_| invalid(format!("--since {d:?}: expected a day, YYYY-MM-DD")))
        })
        .transpose()?;
    let feeds = config::feeds(&ctx.vars)?;
    let routes = config::payment_routes(&ctx.vars)?;
    let payos_on = routes.provider(coursedrop::domain::payment_route::RouteKind::PayosLink).is_some();
    let configured = |g: Gateway| match g {
        Gateway::Sepay => feeds.sepay.is_some(),
        Gateway::Casso => feeds.casso.is_some(),
        Gateway::Payos => payos_on,
    };
    let off = || {
        let mut off = feeds.off.clone();
        if !payos_on {
            off.push("payOS is off: PAYOS_CLIENT_ID, PAYOS_API_KEY and PAYOS_CHECKSUM_KEY are not set".into());
        }
        off.join("; ")
    };
    if let Some(g) = only.filter(|g| !configured(*g)) {
        return Err(coded("refused", format!("{g} has no API credentials configured: {}", off())));
    }
    if !Gateway::ALL.iter().any(|g| configured(*g)) {
        return Err(coded("refused", format!("no bank feed to reconcile: {}", off())));
    }
    let settings = config::payment_settings(&ctx.vars)?;
    let publisher = config::sqs_publisher(&ctx.vars).await;
    let lookback = ctx.vars.parse_or("RECONCILE_LOOKBACK_DAYS", reconcile::DEFAULT_LOOKBACK_DAYS)?;
    let outcomes = if only == Some(Gateway::Payos) {
        Vec::new()
    } else {
        reconcile::pass_all(&ctx.pool, &feeds, &settings, &publisher, only, since, lookback).await
    };
    let mut lines = Vec::new();
    let mut values = Vec::new();
    let mut failed = Vec::new();
    if payos_on && only.is_none_or(|g| g == Gateway::Payos) {
        let r = routes::reconcile_links(&ctx.pool, &routes, &settings, &publisher, routes::LINKS_PER_PASS).await?;
        lines.push(format!(
            "payos: asked about {} pending orders' links; {} recorded now, {} unanswered{}",
            r.asked,
            r.found.len(),
            r.failed.len(),
            if r.rate_limited { "; payOS asked us to slow down, the rest wait for the next pass" } else { "" }
        ));
        for f in &r.found {
            lines.push(format!(
                "  found {} {} ({})",
                f.id,
                vnd(f.amount_vnd),
                f.order_code.as_deref().unwrap_or("no order")
            ));
        }
        for (link, reason) in &r.failed {
            lines.push(format!("  unanswered {link}: {reason}"));
        }
        values.push(json!({"gateway": "payos", "links": r}));
    }
    if only.is_none() && !routes.providers.is_empty() {
        let r = routes::close_finished(&ctx.pool, &routes, &settings, &publisher, routes::CLOSES_PER_PASS).await?;
        if r.closed > 0 || !r.failed.is_empty() {
            lines.push(format!("payment routes of finished orders: {} closed, {} failed", r.closed, r.failed.len()));
        }
        for (route, reason) in &r.failed {
            lines.push(format!("  not closed {route}: {reason}"));
        }
        values.push(json!({"closed_routes": r}));
    }
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
    if !payos_on && only.is_none() {
        lines.push("payOS is off: its keys are not set".into());
    }
    if !failed.is_empty() {
        // What did work is in the message too: one feed failing does not hide the others.
        return Err(coded("feed", format!("reconciliation failed for {}\n{}", failed.join("; "), lines.join("\n"))));
    }
    Ok((json!(values), lines.join("\n")))
}

pub(crate) async fn confirm_payos_webhook(ctx: &Ctx, url: &str) -> Result<(serde_json::Value, String)> {
    let local = ["http://127.0.0.1:", "http://localhost:"].iter().any(|p| url.starts_with(p));
    if !url.starts_with("https://") && !local {
        return Err(invalid(format!("{url:?}: payOS calls webhooks over https (a URL starting https://)")));
    }
    let Some(payos) = config::payos_api(&ctx.vars)? else {
        return Err(coded("refused", "payOS is off: set PAYOS_CLIENT_ID, PAYOS_API_KEY and PAYOS_CHECKSUM_KEY"));
    };
    payos.confirm_webhook(url).await.map_err(|e| coded("payos", e.to_string()))?;
    Ok((
        json!({"webhook_url": url, "confirmed": true}),
        format!("payOS confirmed the webhook {url}: it called it and got 2xx"),
    ))
}
