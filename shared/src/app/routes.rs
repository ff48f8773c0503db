//! Payment routes of an order's own (payOS links, virtual accounts): opened when the order is
//! placed, asked about by reconciliation (payOS has no list of transactions, so each pending
//! order's link is asked in turn), and closed once the order no longer waits for money.
//!
//! A route is an extra: a provider that fails, refuses or is slow leaves the order payable
//! into the main account with its code, and says why in the order's events.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool};

use crate::adapters::queue::Publisher;
use crate::app::payments::{self, Arrival, PaymentOutcome, PaymentSettings};
use crate::domain::payment_route::{PaymentRoutes, RouteError, RouteKind, RouteRequest};
use crate::domain::{CodePattern, OrderCode};
use crate::store::routes::{self as stored, StoredRoute};
use crate::store::{StoreError, orders::OrderHead};

/// Pending orders' payOS links asked about in one pass: payOS has no list of transactions.
pub const LINKS_PER_PASS: u32 = 200;
/// Routes of finished orders closed in one pass.
pub const CLOSES_PER_PASS: u32 = 200;

/// The providers the seller configured, and how long a buyer waits for them.
#[derive(Clone, Default)]
pub struct RouteSettings {
    pub providers: Vec<Arc<dyn PaymentRoutes>>,
    /// The buyer's page (`SHOP_URL`), for payOS to send the buyer back to.
    pub shop_url: Option<String>,
    /// The longest a placed order waits for a provider (`PAYMENT_ROUTE_TIMEOUT`, default 5s);
    /// past it the order is answered without that route.
    pub open_within: Duration,
}

impl std::fmt::Debug for RouteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<RouteKind> = self.providers.iter().map(|p| p.kind()).collect();
        f.debug_struct("RouteSettings").field("providers", &kinds).field("open_within", &self.open_within).finish()
    }
}

impl RouteSettings {
    pub fn provider(&self, kind: RouteKind) -> Option<&Arc<dyn PaymentRoutes>> {
        self.providers.iter().find(|p| p.kind() == kind)
    }
}

fn return_url(settings: &RouteSettings, head: &OrderHead) -> Option<String> {
    let shop = settings.shop_url.as_deref()?;
    let token = head.view_token.as_deref()?;
    Some(format!("{shop}?order={}&t={token}", head.code))
}

/// Opens every configured route for a just-placed order, at once, each within
/// `open_within`, and keeps what each answered. Never fails the order: a failure is kept as
/// the route's reason, and only the database can fail this.
pub async fn open_for(
    conn: &mut MySqlConnection,
    settings: &RouteSettings,
    pattern: &CodePattern,
    head: &OrderHead,
) -> Result<(), StoreError> {
    if settings.providers.is_empty() {
        return Ok(());
    }
    let request = RouteRequest {
        code: head.code.clone(),
        amount_vnd: head.total_vnd,
        expires_at: head.expires_at,
        payos_number: OrderCode::parse(&head.code, pattern).ok().and_then(|c| pattern.payos_number(&c)),
        return_url: return_url(settings, head),
    };
    let answers = futures_util::future::join_all(settings.providers.iter().map(|p| {
        let request = &request;
        async move {
            let answer = tokio::time::timeout(settings.open_within, p.open(request)).await.unwrap_or_else(|_| {
                Err(RouteError::Unreachable {
                    provider: p.kind().provider(),
                    reason: format!("no answer within {} ms", settings.open_within.as_millis()),
                })
            });
            (p.kind(), answer)
        }
    }))
    .await;
    for (kind, answer) in answers {
        match answer {
            Ok(route) => {
                stored::record_opened(conn, head.id, head.total_vnd, &route, "create-order").await?;
            }
            Err(e) => {
                tracing::warn!(order = %head.code, route = kind.as_str(), error = %e, "a payment route could not be opened; the order is paid into the main account");
                stored::record_failed(conn, head.id, head.total_vnd, kind, &e.to_string(), "create-order").await?;
            }
        }
    }
    Ok(())
}

/// What one pass over payOS's links found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinksReport {
    pub asked: usize,
    /// Transfers recorded by this pass: their webhooks never came.
    pub found: Vec<super::reconcile::Found>,
    /// Links payOS could not answer for, with why; asked again next pass.
    pub failed: Vec<(String, String)>,
    /// payOS asked us to slow down beyond what we wait: the pass stopped early.
    pub rate_limited: bool,
}

/// How asking payOS about one link went.
enum Asked {
    Done,
    /// payOS keeps answering 429: stop asking this pass.
    RateLimited,
    /// payOS could not answer, or a transfer could not be recorded: said in `failed`.
    Failed,
}

/// Asks payOS what link `reference` received and records each transfer through the same path
/// as its webhooks (a transfer already recorded changes nothing). A transfer that cannot be
/// recorded is reported, not fatal: one bad link must not stop the pass.
async fn record_link<P: Publisher>(
    pool: &MySqlPool,
    payos: &dyn PaymentRoutes,
    reference: &crate::domain::payment_route::RouteRef,
    settings: &PaymentSettings,
    publisher: &P,
    found: &mut Vec<super::reconcile::Found>,
    failed: &mut Vec<(String, String)>,
) -> Asked {
    let status = match payos.status(reference).await {
        Ok(status) => status,
        Err(RouteError::RateLimited { .. }) => {
            tracing::warn!("payOS keeps answering 429: this pass stops; the next one goes on");
            return Asked::RateLimited;
        }
        Err(e) => {
            tracing::error!(link = %reference.number, error = %e, "payOS could not say what its link received");
            failed.push((reference.number.clone(), e.to_string()));
            return Asked::Failed;
        }
    };
    let code = reference.number.parse::<i64>().ok().and_then(|n| settings.pattern.from_payos_number(n));
    for mut transfer in status.transfers {
        transfer.code = code.as_ref().map(|c| c.to_string());
        let recorded = match payments::record(pool, &transfer, settings, Arrival::Reconcile).await {
            Ok(recorded) => recorded,
            Err(e) => {
                tracing::error!(link = %reference.number, id = %transfer.id, error = %e, "a payOS transfer could not be recorded; asked again next pass");
                failed.push((reference.number.clone(), e.to_string()));
                return Asked::Failed;
            }
        };
        if matches!(recorded.outcome, PaymentOutcome::Duplicate | PaymentOutcome::SameTransfer { .. }) {
            continue;
        }
        tracing::warn!(link = %reference.number, id = %transfer.id, amount = transfer.amount_vnd, "a payOS transfer only reconciliation found: its webhook never arrived");
        crate::support::metrics::emit(crate::support::metrics::Metric::ReconciledPayment { gateway: "payos" });
        found.push(super::reconcile::Found {
            id: transfer.id.clone(),
            amount_vnd: transfer.amount_vnd,
            order_code: code.as_ref().map(|c| c.to_string()),
            outcome: format!("{:?}", recorded.outcome),
        });
        crate::app::relay::publish_all(pool, publisher, &recorded.outbox).await;
    }
    Asked::Done
}

/// Asks payOS about each pending order's open link, least recently asked first, up to
/// `limit` (payOS has no list of transactions), and records what it has received through the
/// same path as its webhooks: a transfer already recorded changes nothing.
pub async fn reconcile_links<P: Publisher>(
    pool: &MySqlPool,
    routes: &RouteSettings,
    settings: &PaymentSettings,
    publisher: &P,
    limit: u32,
) -> Result<LinksReport, StoreError> {
    let mut report = LinksReport::default();
    let Some(payos) = routes.provider(RouteKind::PayosLink) else { return Ok(report) };
    for route in stored::open_of_pending_orders(pool, RouteKind::PayosLink, limit).await? {
        let Some(reference) = route.reference() else { continue };
        report.asked += 1;
        let asked =
            record_link(pool, payos.as_ref(), &reference, settings, publisher, &mut report.found, &mut report.failed)
                .await;
        if let Asked::RateLimited = asked {
            report.rate_limited = true;
            break;
        }
        // Asked, even if it failed: the next pass starts with the links asked least recently.
        stored::mark_checked(pool, route.id).await?;
    }
    Ok(report)
}

/// What one pass of closing found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClosedReport {
    pub closed: usize,
    /// Transfers into payOS links found as they were closed: their webhooks never came.
    pub found: Vec<super::reconcile::Found>,
    pub failed: Vec<(String, String)>,
}

/// Closes the open routes of orders that no longer wait for money (paid, expired, cancelled,
/// refunded), so a late buyer cannot pay into them; a failure is kept on the route and tried
/// again next pass. A payOS link is first asked what it received, and that is recorded: a
/// payment that reached it just before the order expired, or on top of a payment made another
/// way, is kept (and flagged on the order), never closed away unseen.
pub async fn close_finished<P: Publisher>(
    pool: &MySqlPool,
    routes: &RouteSettings,
    settings: &PaymentSettings,
    publisher: &P,
    limit: u32,
) -> Result<ClosedReport, StoreError> {
    let mut report = ClosedReport::default();
    for route in stored::open_of_finished_orders(pool, limit).await? {
        let (Some(provider), Some(reference)) = (routes.provider(route.kind), route.reference()) else {
            // Its provider is no longer configured: nothing can close it from here.
            continue;
        };
        if route.kind == RouteKind::PayosLink {
            let (found, failed) = (&mut report.found, &mut report.failed);
            match record_link(pool, provider.as_ref(), &reference, settings, publisher, found, failed).await {
                Asked::Done => {}
                Asked::RateLimited => break,
                Asked::Failed => continue,
            }
        }
        match provider.close(&reference).await {
            Ok(()) => {
                stored::mark_closed(pool, &route, "its order no longer waits for payment", "reconcile").await?;
                report.closed += 1;
            }
            Err(e) => {
                tracing::warn!(route = %reference.number, error = %e, "closing a payment route failed; tried again next pass");
                stored::note_close_failed(pool, route.id, &e.to_string()).await?;
                report.failed.push((reference.number.clone(), e.to_string()));
            }
        }
    }
    Ok(report)
}

/// What the reconciler does with routes each run: ask payOS about pending orders' links, then
/// close the routes of orders that no longer wait for money.
pub async fn pass<P: Publisher>(
    pool: &MySqlPool,
    routes: &RouteSettings,
    settings: &PaymentSettings,
    publisher: &P,
) -> Result<(LinksReport, ClosedReport), StoreError> {
    if routes.providers.is_empty() {
        return Ok(Default::default());
    }
    let links = reconcile_links(pool, routes, settings, publisher, LINKS_PER_PASS).await?;
    let closed = close_finished(pool, routes, settings, publisher, CLOSES_PER_PASS).await?;
    tracing::info!(
        links_asked = links.asked,
        found = links.found.len(),
        closed = closed.closed,
        close_failed = closed.failed.len(),
        "payment routes' pass done"
    );
    Ok((links, closed))
}

/// An order's routes, for its pages.
pub async fn of_order(conn: &mut MySqlConnection, order_id: u64) -> Result<Vec<StoredRoute>, StoreError> {
    stored::of_order(conn, order_id).await
}
