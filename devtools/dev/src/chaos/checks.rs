use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::source::DeliveryMode;
use coursedrop::app::config::Vars;
use md5::{Digest, Md5};

use super::inspect::{list_tree, read_maildir};
use super::setup::Setup;
use super::traffic::Sent;
use super::{COURSES, DRIVE_COURSES, file_bytes};

/// id, order code, email, email Message-ID, Drive folder, course slug.
type DeliveredItem = (u64, String, String, Option<String>, Option<String>, String);

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// What the run did, for the checks: its orders, what the outages did, how long it took.
pub(super) struct Ran<'a> {
    pub(super) started: Instant,
    pub(super) run_id: u32,
    pub(super) orders: &'a [(String, i64, String, bool)],
    pub(super) paid_codes: Vec<&'a str>,
    pub(super) to_complete: usize,
    pub(super) refunded: Vec<(String, String)>,
    pub(super) stalled: Vec<u64>,
    pub(super) frozen_pid: u32,
    pub(super) chaos_log: Vec<String>,
    pub(super) kills: Arc<AtomicUsize>,
}

/// The invariants, checked and printed; drops the chaos database when all hold.
pub(super) async fn run(vars: &Vars, world: Setup, sent: Sent, ran: Ran<'_>) -> Result<bool> {
    let Setup { pool, database, stack, dead_letters, drive_dir, drive, drive_base, seller_folders, .. } = world;
    let Sent { sent_ids, unmatched_ids, dropped, dropped_stretch, casso_failed, webhook_calls, webhook_failures } =
        sent;
    let Ran { started, run_id, orders, paid_codes, to_complete, refunded, stalled, frozen_pid, chaos_log, kills } = ran;
    let mut checks = Vec::new();
    let (completed,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders WHERE status = 'completed'").fetch_one(&pool).await?;
    let failed: Vec<(u64, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, failed_stage, last_error FROM order_items WHERE status = 'failed'")
            .fetch_all(&pool)
            .await?;
    checks.push(Check {
        name: "every paid order completed (but the one refunded)",
        ok: completed == to_complete as i64,
        detail: format!("{completed} of {to_complete} completed; failed items: {failed:?}"),
    });

    // Emails: each item's Message-ID exactly once in the sink, to the right buyer.
    let items: Vec<DeliveredItem> = sqlx::query_as(
        "SELECT i.id, o.code, o.email, i.email_message_id, i.drive_folder_id, c.slug
         FROM order_items i JOIN orders o ON o.id = i.order_id JOIN courses c ON c.id = i.course_id
         WHERE o.status = 'completed'",
    )
    .fetch_all(&pool)
    .await?;
    let all_mails = read_maildir(&vars.string_or("MAILDIR", ".local/mail"), &format!("chaos-{run_id}-"))?;
    // The refunded buyer's mails are checked on their own below.
    let (refund_mails, mails): (Vec<_>, Vec<_>) =
        all_mails.into_iter().partition(|(_, to)| refunded.iter().any(|(_, e)| to.contains(e.as_str())));
    let mut mail_problems = Vec::new();
    for (id, _, email, message_id, _, _) in &items {
        let Some(mid) = message_id else {
            mail_problems.push(format!("item {id}: no Message-ID"));
            continue;
        };
        let got: Vec<&(String, String)> = mails.iter().filter(|(m, _)| m.contains(mid.as_str())).collect();
        if got.len() != 1 || !got[0].1.contains(email.as_str()) {
            mail_problems.push(format!("item {id}: {} emails with {mid}", got.len()));
        }
    }
    checks.push(Check {
        name: "each delivery email sent exactly once",
        ok: mail_problems.is_empty() && mails.len() == items.len(),
        detail: format!("{} emails for {} items; {}", mails.len(), items.len(), summarize(&mail_problems)),
    });

    // Drive: each folder holds each source file once, with its MD5.
    let reader = DriveClient::new(
        coursedrop::adapters::drive::DriveConfig::new(&drive_base),
        coursedrop::adapters::drive::StaticToken("emulator-token".into()),
    );
    let expected: HashMap<&str, BTreeMap<String, String>> = COURSES
        .iter()
        .map(|(slug, _, files)| {
            let tree = files
                .iter()
                .map(|(path, size)| (path.to_string(), hex::encode(Md5::digest(file_bytes(slug, path, *size)))))
                .collect();
            (*slug, tree)
        })
        .collect();
    let mut drive_problems = Vec::new();
    for (id, _, _, _, folder, slug) in &items {
        let Some(folder) = folder else {
            drive_problems.push(format!("item {id}: no folder"));
            continue;
        };
        let found = list_tree(&reader, folder).await?;
        let mut counts: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
        for (path, md5) in found {
            let e = counts.entry(path).or_insert((0, None));
            e.0 += 1;
            e.1 = md5;
        }
        let want = &expected[slug.as_str()];
        let got: BTreeMap<String, String> =
            counts.iter().map(|(p, (_, m))| (p.clone(), m.clone().unwrap_or_default())).collect();
        if got != *want || counts.values().any(|(n, _)| *n != 1) {
            drive_problems.push(format!("item {id}: folder differs from the source: {counts:?}"));
        }
    }
    checks.push(Check {
        name: "every Drive folder holds each file once, MD5 equal",
        ok: drive_problems.is_empty(),
        detail: format!("{} folders checked; {}", items.len(), summarize(&drive_problems)),
    });

    // The order refunded mid-delivery: every item revoked, no Drive access left, and an email
    // only for an item that was completed before the refund.
    let mut refund_problems = Vec::new();
    for (code, email) in &refunded {
        let rows: Vec<(String, Option<String>, bool)> = sqlx::query_as(
            "SELECT i.status, i.drive_folder_id, i.completed_at IS NOT NULL FROM order_items i
             JOIN orders o ON o.id = i.order_id WHERE o.code = ?",
        )
        .bind(code)
        .fetch_all(&pool)
        .await?;
        let status: String =
            sqlx::query_scalar("SELECT status FROM orders WHERE code = ?").bind(code).fetch_one(&pool).await?;
        if status != "refunded" {
            refund_problems.push(format!("{code} is {status}"));
        }
        for (item_status, folder, _) in &rows {
            if item_status != "revoked" {
                refund_problems.push(format!("{code}: an item is {item_status}"));
            }
            if let Some(folder) = folder {
                // An id is kept before its folder is made: an item revoked before that has no
                // folder, and so no reader.
                let readers = match reader.permissions(folder).await {
                    Err(coursedrop::adapters::drive::DriveError::Refused { status: 404, .. }) => vec![],
                    other => other?,
                };
                if readers.iter().any(|p| p.email_address.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(email))) {
                    refund_problems.push(format!("{code}: the buyer can still open {folder}"));
                }
            }
        }
        let completed_before = rows.iter().filter(|r| r.2).count();
        let sent = refund_mails.iter().filter(|(_, to)| to.contains(email.as_str())).count();
        if sent != completed_before {
            refund_problems
                .push(format!("{code}: {sent} emails for {completed_before} items completed before the refund"));
        }
    }
    checks.push(Check {
        name: "refunded mid-delivery: every item revoked, no access, no email after the refund",
        ok: refund_problems.is_empty() && refunded.len() == 1,
        detail: format!("{} orders refunded; {}", refunded.len(), summarize(&refund_problems)),
    });

    // The frozen worker's items: finished, each file once (the Drive check above), and by the
    // worker that took them over.
    let mut takeover_problems = Vec::new();
    let mut by_other = 0;
    // The job names its worker `deliver-<host>-<pid>`.
    let frozen_worker = format!("-{frozen_pid}");
    for id in &stalled {
        let status: String =
            sqlx::query_scalar("SELECT status FROM order_items WHERE id = ?").bind(id).fetch_one(&pool).await?;
        if !matches!(status.as_str(), "completed" | "revoked") {
            takeover_problems.push(format!("item {id} is {status}"));
        }
        let deliverers: Vec<String> = sqlx::query_scalar(
            "SELECT actor FROM order_events WHERE item_id = ? AND to_status = 'delivered' ORDER BY id",
        )
        .bind(id)
        .fetch_all(&pool)
        .await?;
        match deliverers.as_slice() {
            [] if status == "revoked" => {}
            [one] if one.ends_with(&frozen_worker) => {
                takeover_problems.push(format!("item {id} was finished by the frozen worker {one}"))
            }
            [_] => by_other += 1,
            many => takeover_problems.push(format!("item {id} delivered {} times: {many:?}", many.len())),
        }
    }
    checks.push(Check {
        name: "a frozen worker's leases taken over: its items finished once, by another worker",
        ok: takeover_problems.is_empty() && !stalled.is_empty() && by_other > 0,
        detail: format!(
            "{} items were delivering when job {frozen_pid} froze; {by_other} finished by another worker; {}",
            stalled.len(),
            summarize(&takeover_problems)
        ),
    });

    // The shared course: its buyers (completed items) are the readers of the seller's folder,
    // nobody else; and nothing was copied for them.
    let shared_slug = DRIVE_COURSES.iter().find(|(_, m)| *m == DeliveryMode::Share).map(|(s, _)| *s).unwrap_or("");
    let seller_folder = &seller_folders[shared_slug];
    let mut buyers: Vec<String> = items.iter().filter(|i| i.5 == shared_slug).map(|i| i.2.to_lowercase()).collect();
    buyers.sort();
    buyers.dedup();
    let mut readers: Vec<String> = reader
        .permissions(seller_folder)
        .await?
        .into_iter()
        .filter(|p| p.role == "reader")
        .filter_map(|p| p.email_address)
        .collect();
    readers.sort();
    let foreign = items.iter().filter(|i| i.5 == shared_slug && i.4.as_deref() != Some(seller_folder.as_str())).count();
    checks.push(Check {
        name: "the shared course: its buyers, and only they, read the seller's folder",
        ok: readers == buyers && foreign == 0 && !buyers.is_empty(),
        detail: format!(
            "{} buyers, {} readers, {foreign} items not on the seller's folder; copied course: {} server-side copies",
            buyers.len(),
            readers.len(),
            drive.copies().0
        ),
    });

    let (payments, unmatched): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(order_id IS NULL), 0) AS SIGNED) FROM payments")
            .fetch_one(&pool)
            .await?;
    // Every transfer came from both feeds: one payment each, the other report a sighting at
    // most, and no order credited beyond its one transfer.
    let (sightings, held, overpaid, by_payos): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM payment_sightings), (SELECT COUNT(*) FROM payments WHERE hold IS NOT NULL),
                (SELECT COUNT(*) FROM orders WHERE paid_vnd > total_vnd),
                (SELECT COUNT(DISTINCT order_id) FROM order_events
                  WHERE actor = 'payos-webhook' AND kind IN ('payment_received', 'payment_seen_again'))",
    )
    .fetch_one(&pool)
    .await?;
    checks.push(Check {
        name: "no payment lost or doubled, each transfer reported by two feeds",
        ok: payments == sent_ids.len() as i64
            && unmatched == unmatched_ids.len() as i64
            && webhook_failures == 0
            && held == 0
            && overpaid == 0
            && sightings <= payments,
        detail: format!(
            "{payments} payments kept for {} transfers each reported by two feeds, SePay and Casso or SePay and payOS ({by_payos} orders paid through payOS; {webhook_calls} SePay and payOS webhook calls, {webhook_failures} never accepted); {sightings} second reports kept as evidence, {held} held, {overpaid} orders credited twice; unmatched kept: {unmatched_ids:?}",
            sent_ids.len()
        ),
    });

    // Every transfer whose webhook was dropped was found by reconciliation; and how long the
    // longest of those waited from its order to its payment row.
    let mut found_late = 0;
    for (sepay_id, casso_id) in &dropped {
        let arrived: Option<String> = sqlx::query_scalar(
            "SELECT arrived_by FROM payments
             WHERE (feed = 'sepay' AND feed_txn_id = ?) OR (feed = 'casso' AND feed_txn_id = ?)",
        )
        .bind(sepay_id.to_string())
        .bind(casso_id.to_string())
        .fetch_optional(&pool)
        .await?;
        if arrived.as_deref() == Some("reconcile") {
            found_late += 1;
        }
    }
    let waits: Vec<f64> = sqlx::query_scalar(
        "SELECT CAST(TIMESTAMPDIFF(MICROSECOND, e.created_at, p.received_at) / 1e6 AS DOUBLE) FROM payments p
         JOIN order_events e ON e.order_id = p.order_id AND e.kind = 'order_created' WHERE p.arrived_by = 'reconcile'",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    let longest = waits.iter().cloned().fold(0.0, f64::max);
    let (by_reconcile,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM payments WHERE arrived_by = 'reconcile'").fetch_one(&pool).await?;
    checks.push(Check {
        name: "webhooks dropped, payments found by reconciliation",
        ok: !dropped.is_empty() && found_late == dropped.len(),
        detail: format!(
            "{} webhooks dropped (orders {}..{}), {found_late} of them recorded by reconciliation; {by_reconcile} payments in all came by reconciliation ({casso_failed} Casso deliveries failed); longest from order to reconciled payment {longest:.1} s",
            dropped.len(),
            dropped_stretch.start,
            dropped_stretch.end
        ),
    });

    let mut dlq_counts = Vec::new();
    for url in &dead_letters {
        let attrs = stack
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
        let n: i64 = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        dlq_counts.push(n);
    }
    checks.push(Check {
        name: "dead-letter queues empty",
        ok: dlq_counts.iter().all(|n| *n == 0),
        detail: format!("messages: {dlq_counts:?}"),
    });

    let (leaked,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM order_items i JOIN orders o ON o.id = i.order_id
         WHERE o.status IN ('pending', 'cancelled') AND (i.drive_folder_id IS NOT NULL OR i.status NOT IN ('awaiting_payment', 'cancelled'))",
    )
    .fetch_one(&pool)
    .await?;
    let unpaid = orders.iter().filter(|o| !o.3).count();
    checks.push(Check {
        name: "no unpaid order delivered",
        ok: leaked == 0,
        detail: format!("{unpaid} unpaid orders; {leaked} of their items moved on"),
    });

    println!("\nchaos events:");
    for line in &chaos_log {
        println!("  {line}");
    }
    let kills = kills.load(Ordering::SeqCst);
    checks.push(Check {
        name: "every planned outage happened",
        ok: kills == 5 && chaos_log.iter().all(|l| !l.starts_with("FAILED")),
        detail: format!("{kills} job kills, {} events", chaos_log.len()),
    });
    println!("\n| check | result | detail |\n|---|---|---|");
    for c in &checks {
        println!("| {} | {} | {} |", c.name, if c.ok { "pass" } else { "FAIL" }, c.detail);
    }
    let all_ok = checks.iter().all(|c| c.ok);
    println!(
        "\nchaos: {} in {:.0} s ({} orders, {} paid, {} items delivered)",
        if all_ok { "PASS" } else { "FAIL" },
        started.elapsed().as_secs_f64(),
        orders.len(),
        paid_codes.len(),
        items.len()
    );
    if all_ok {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{database}`"))).execute(&pool).await?;
        let _ = std::fs::remove_dir_all(&drive_dir);
    }
    Ok(all_ok)
}

fn summarize(problems: &[String]) -> String {
    match problems.len() {
        0 => "no problems".into(),
        n => format!("{n} problems, first: {}", problems[..n.min(3)].join("; ")),
    }
}
