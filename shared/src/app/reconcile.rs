//! Reconciliation: list each bank feed's transfers since its cursor and record every one
//! through the same path as the webhooks. One already recorded changes nothing; one the
//! webhook missed is recorded, pays its order, and is counted and logged loudly, because it
//! means webhooks are failing. The cursor moves only past transfers that are committed.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::MySqlPool;
use thiserror::Error;

use crate::adapters::queue::Publisher;
use crate::app::payments::{self, Arrival, BankTransfer, Gateway, PaymentOutcome, PaymentSettings};
use crate::domain::bank_feed::FeedError;
use crate::store::{self, StoreError};
use crate::support::metrics::{self, Metric};

pub use crate::domain::bank_feed::{BankFeed, Listed, Listing, Start};

/// A transfer only reconciliation found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub id: String,
    pub amount_vnd: i64,
    pub order_code: Option<String>,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub gateway: Gateway,
    pub started_from: String,
    pub requests: u32,
    pub listed: usize,
    pub already_recorded: usize,
    /// Recorded by this pass: the webhook never brought them.
    pub found: Vec<Found>,
    /// Listed but not taken (the reason says why); the cursor stays before the first.
    pub refused: Vec<(String, String)>,
    pub cursor_before: Option<String>,
    pub cursor_after: Option<String>,
}

#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How far back a feed's first pass lists (`RECONCILE_LOOKBACK`).
pub const DEFAULT_LOOKBACK_DAYS: i64 = 3;

/// One pass over one feed. `since` (a day) overrides the stored cursor for this pass only;
/// with neither, the pass starts `lookback_days` ago.
pub async fn pass<F: BankFeed, P: Publisher>(
    pool: &MySqlPool,
    feed: &F,
    settings: &PaymentSettings,
    publisher: &P,
    since: Option<NaiveDate>,
    lookback_days: i64,
) -> Result<PassReport, ReconcileError> {
    let gateway = feed.gateway();
    let stored = store::reconcile::cursor(pool, gateway.as_str()).await?.map(|c| c.cursor_value);
    let start = match (since, &stored) {
        (Some(day), _) => Start::Since(day),
        (None, Some(c)) => Start::Cursor(c.clone()),
        (None, None) => Start::Since(crate::domain::today_in_vietnam() - chrono::Duration::days(lookback_days)),
    };
    let listing = feed.list(&start).await.inspect_err(|e| {
        tracing::error!(%gateway, error = %e, "reconciliation could not list transfers; the cursor stays");
    })?;
    let ids: Vec<&str> = listing.items.iter().map(|l| l.id.as_str()).collect();
    let already = store::payments::recorded_among(pool, gateway.as_str(), &ids).await?;

    let mut report = PassReport {
        gateway,
        started_from: match &start {
            Start::Cursor(c) => format!("cursor {c}"),
            Start::Since(d) => format!("{d}"),
        },
        requests: listing.requests,
        listed: listing.items.len(),
        already_recorded: 0,
        found: Vec::new(),
        refused: Vec::new(),
        cursor_before: stored.clone(),
        cursor_after: stored,
    };
    // The cursor follows committed transfers while nothing before them is left undone.
    let mut contiguous = true;
    let mut failure = None;
    for listed in &listing.items {
        let transfer = match &listed.transfer {
            Err(reason) => {
                tracing::error!(%gateway, id = %listed.id, %reason, "a listed transfer was refused; the cursor stays before it");
                report.refused.push((listed.id.clone(), reason.clone()));
                contiguous = false;
                continue;
            }
            Ok(_) if already.contains(&listed.id) => {
                report.already_recorded += 1;
                None
            }
            Ok(t) => Some(t),
        };
        if let Some(transfer) = transfer {
            // `already` has answered the duplicate question for the whole listing in one read.
            match payments::record_unseen(pool, transfer, settings, Arrival::Reconcile).await {
                Ok(recorded) => {
                    if matches!(recorded.outcome, PaymentOutcome::Duplicate | PaymentOutcome::SameTransfer { .. }) {
                        // The webhook got there between our read and our insert, or another
                        // feed reported the transfer (kept as a sighting, not counted again).
                        report.already_recorded += 1;
                    } else {
                        found(&mut report, transfer, &recorded.outcome);
                        crate::app::relay::publish_all(pool, publisher, &recorded.outbox).await;
                    }
                }
                Err(e) => {
                    tracing::error!(%gateway, id = %listed.id, error = %e, "recording a listed transfer failed; the pass stops here");
                    failure = Some(e);
                    break;
                }
            }
        }
        if contiguous {
            report.cursor_after = Some(listed.cursor_after.clone());
        }
    }
    store::reconcile::advance(
        pool,
        gateway.as_str(),
        report.cursor_after.as_deref(),
        report.listed as u32,
        report.found.len() as u32,
    )
    .await?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    tracing::info!(
        %gateway,
        listed = report.listed,
        already = report.already_recorded,
        found = report.found.len(),
        refused = report.refused.len(),
        cursor = report.cursor_after.as_deref().unwrap_or("-"),
        "reconciliation pass done"
    );
    Ok(report)
}

fn found(report: &mut PassReport, transfer: &BankTransfer, outcome: &PaymentOutcome) {
    let (order_code, what) = match outcome {
        PaymentOutcome::Applied { order_code, became_paid: true, .. } => (Some(order_code.clone()), "paid its order"),
        PaymentOutcome::Applied { order_code, .. } => (Some(order_code.clone()), "added to its order"),
        PaymentOutcome::Flagged { order_code, .. } => (Some(order_code.clone()), "kept; order flagged"),
        PaymentOutcome::Unmatched { .. } => (None, "kept unmatched"),
        PaymentOutcome::Outgoing => (None, "outgoing, kept"),
        PaymentOutcome::Duplicate => (None, "already recorded"),
        PaymentOutcome::SameTransfer { .. } => (None, "already recorded by another feed"),
        PaymentOutcome::Held { .. } => (None, "held as a possible duplicate"),
    };
    tracing::warn!(
        gateway = %report.gateway,
        id = %transfer.id,
        amount = transfer.amount_vnd,
        order_code = order_code.as_deref().unwrap_or("-"),
        what,
        "a transfer only reconciliation found: its webhook never arrived"
    );
    metrics::emit(Metric::ReconciledPayment { gateway: report.gateway.as_str() });
    report.found.push(Found {
        id: transfer.id.clone(),
        amount_vnd: transfer.amount_vnd,
        order_code,
        outcome: what.into(),
    });
}

/// One feed's pass, or why it failed.
#[derive(Debug)]
pub struct Outcome {
    pub gateway: Gateway,
    pub result: Result<PassReport, ReconcileError>,
}

/// A pass over every configured feed (or only `only`), one after the other: a feed that
/// fails does not stop the others.
pub async fn pass_all<P: Publisher>(
    pool: &MySqlPool,
    feeds: &crate::app::config::Feeds,
    settings: &PaymentSettings,
    publisher: &P,
    only: Option<Gateway>,
    since: Option<NaiveDate>,
    lookback_days: i64,
) -> Vec<Outcome> {
    let wanted = |g: Gateway| only.is_none_or(|o| o == g);
    let mut outcomes = Vec::new();
    if let Some(feed) = feeds.sepay.as_ref().filter(|_| wanted(Gateway::Sepay)) {
        let result = pass(pool, feed, settings, publisher, since, lookback_days).await;
        outcomes.push(Outcome { gateway: Gateway::Sepay, result });
    }
    if let Some(feed) = feeds.casso.as_ref().filter(|_| wanted(Gateway::Casso)) {
        let result = pass(pool, feed, settings, publisher, since, lookback_days).await;
        outcomes.push(Outcome { gateway: Gateway::Casso, result });
    }
    outcomes
}
