//! The orders list (search, filters, paging, CSV) and one order with its actions.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use coursedrop::adapters::drive::AccessToken;
use coursedrop::app::console::orders::{self, FilterInput};
use coursedrop::app::console::{ConsoleError, actions};
use coursedrop::domain::staff::StaffAction;
use coursedrop::domain::{ItemStatus, OrderStatus, Status};
use minijinja::Value;
use minijinja::value::Serde;
use serde::Deserialize;

use super::{bad_form, done, failed, signed_page};
use crate::ConsoleState;
use crate::export;
use crate::session::{Change, Signed};

const PAGE_SIZE: u32 = 50;
/// The most rows one CSV export holds: about 4 MB, inside the 6 MB a Lambda may answer with.
/// The orders page says so when a filter matches more.
pub const EXPORT_CAP: usize = 25_000;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(flatten)]
    filter: FilterInput,
    before: Option<u64>,
}

fn query_string(f: &FilterInput) -> String {
    let pairs = [
        ("q", &f.q),
        ("status", &f.status),
        ("course", &f.course),
        ("coupon", &f.coupon),
        ("from", &f.from),
        ("to", &f.to),
    ];
    pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn list<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    s: Signed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else { return bad_form(&s, "the search's address is not valid") };
    let c = &state.0;
    let filter = match q.filter.parse() {
        Ok(f) => f,
        Err(e) => return failed(&s, e),
    };
    let page = match orders::list(&c.pool, &filter, q.before, PAGE_SIZE).await {
        Ok(p) => p,
        Err(e) => return failed(&s, e),
    };
    let courses = coursedrop::app::operations::courses(&c.pool)
        .await
        .map(|cs| cs.into_iter().map(|c| c.slug).collect::<Vec<_>>())
        .unwrap_or_default();
    let qs = query_string(&q.filter);
    let context = minijinja::context! {
        page => Value::from(Serde(&page)),
        input => minijinja::context! {
            q => &q.filter.q, status => &q.filter.status, course => &q.filter.course,
            coupon => &q.filter.coupon, from => &q.filter.from, to => &q.filter.to,
        },
        statuses => OrderStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        courses,
        qs => &qs,
        paged => q.before.is_some(),
        export_cap => EXPORT_CAP,
    };
    signed_page(&s, c.secure_cookies, "orders.html", "orders", context)
}

pub async fn csv<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    s: Signed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else { return bad_form(&s, "the search's address is not valid") };
    let filter = match q.filter.parse() {
        Ok(f) => f,
        Err(e) => return failed(&s, e),
    };
    match orders::export(&state.0.pool, &filter, EXPORT_CAP).await {
        Ok(rows) => export::csv_download("orders.csv", export::orders_csv(&rows)),
        Err(e) => failed(&s, e),
    }
}

pub async fn show<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    s: Signed,
    Path(code): Path<String>,
) -> Response {
    let c = &state.0;
    let code = match orders::order_code(&code, &c.pattern) {
        Ok(code) => code,
        Err(e) => return failed(&s, e),
    };
    let detail = match orders::detail(&c.pool, &code).await {
        Ok(d) => d,
        Err(e) => return failed(&s, e),
    };
    let refundable = matches!(detail.order.status, OrderStatus::Paid | OrderStatus::Completed)
        || (detail.order.status == OrderStatus::Cancelled && detail.order.paid_vnd > 0);
    let context = minijinja::context! {
        o => Value::from(Serde(&detail.order)),
        items => Value::from(Serde(&detail.items)),
        payments => Value::from(Serde(&detail.payments)),
        routes => Value::from(Serde(&detail.routes)),
        events => Value::from(Serde(&detail.events)),
        can_refund => s.staff.role.may(StaffAction::Refund) && refundable,
        completed => ItemStatus::Completed.as_str(),
        failed_status => ItemStatus::Failed.as_str(),
    };
    signed_page(&s, c.secure_cookies, "order.html", "orders", context)
}

/// The refund's confirmation: the amount, and each course whose access goes.
pub async fn refund_form<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    s: Signed,
    Path(code): Path<String>,
) -> Response {
    let c = &state.0;
    if let Err(e) = s.staff.require(StaffAction::Refund) {
        return failed(&s, e);
    }
    let code = match orders::order_code(&code, &c.pattern) {
        Ok(code) => code,
        Err(e) => return failed(&s, e),
    };
    match orders::detail(&c.pool, &code).await {
        Ok(d) => signed_page(
            &s,
            c.secure_cookies,
            "refund.html",
            "orders",
            minijinja::context! { o => Value::from(Serde(&d.order)), items => Value::from(Serde(&d.items)) },
        ),
        Err(e) => failed(&s, e),
    }
}

#[derive(Deserialize)]
pub struct RefundForm {
    #[serde(default)]
    reason: String,
    confirm_vnd: Option<i64>,
}

pub async fn refund<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(code): Path<String>,
    Change { s, form }: Change<RefundForm>,
) -> Response {
    let c = &state.0;
    let result = async {
        let code = orders::order_code(&code, &c.pattern)?;
        let d =
            actions::refund(&c.pool, &c.drive, &c.publisher, &s.staff, &code, &form.reason, form.confirm_vnd).await?;
        Ok::<_, ConsoleError>((code, d))
    }
    .await;
    match result {
        Ok((code, d)) => done(c.secure_cookies, &format!("/orders/{code}"), &crate::said::done(s.lang, &d)),
        Err(e) => failed(&s, e),
    }
}

#[derive(Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    course: String,
}

pub async fn move_access<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(code): Path<String>,
    Change { s, form }: Change<MoveForm>,
) -> Response {
    let c = &state.0;
    let course = Some(form.course.trim()).filter(|c| !c.is_empty());
    let result = async {
        let code = orders::order_code(&code, &c.pattern)?;
        let d = actions::move_access(&c.pool, &c.drive, &c.mailer, &s.staff, &code, &form.to, course).await?;
        Ok::<_, ConsoleError>((code, d))
    }
    .await;
    match result {
        Ok((code, d)) => done(c.secure_cookies, &format!("/orders/{code}"), &crate::said::done(s.lang, &d)),
        Err(e) => failed(&s, e),
    }
}

#[derive(Deserialize)]
pub struct ItemForm {
    /// The page to come back to.
    #[serde(default)]
    back: String,
}

/// `POST /items/{id}/{action}`: `resend` a completed item's email, `retry` a failed item,
/// `send-again` a stuck item's stage; then back to the page it was taken from.
pub async fn item_action<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path((id, action)): Path<(u64, String)>,
    Change { s, form }: Change<ItemForm>,
) -> Response {
    let c = &state.0;
    let result = match action.as_str() {
        "resend" => actions::resend(&c.pool, &c.mailer, &s.staff, id).await,
        "retry" => actions::retry(&c.pool, &c.publisher, &s.staff, id).await,
        "send-again" => actions::send_again(&c.pool, &c.publisher, &s.staff, id).await,
        other => Err(ConsoleError::NotFound(format!("no action {other:?} on an item (resend, retry or send-again)"))),
    };
    match result {
        Ok(d) => done(c.secure_cookies, &super::local_path(&form.back, "/orders"), &crate::said::done(s.lang, &d)),
        Err(e) => failed(&s, e),
    }
}
