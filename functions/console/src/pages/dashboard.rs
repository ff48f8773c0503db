//! The dashboard and the staff audit.

use axum::extract::State;
use axum::response::Response;
use coursedrop::adapters::drive::AccessToken;
use coursedrop::app::console::dashboard::{self, QueueDepth};
use coursedrop::domain::format_vnd;
use minijinja::Value;
use minijinja::value::Serde;

use super::{failed, signed_page};
use crate::ConsoleState;
use crate::i18n::word;
use crate::plot;
use crate::session::Signed;

pub async fn show<T: AccessToken>(State(state): State<ConsoleState<T>>, s: Signed) -> Response {
    let c = &state.0;
    let mut dead_letters = Vec::new();
    for (stage, url) in &c.dead_letters {
        dead_letters.push(QueueDepth { queue: stage.clone(), messages: c.publisher.approximate_depth(url).await });
    }
    let d = match dashboard::dashboard(&c.pool, &c.settings.deadlines, dead_letters, chrono::Utc::now()).await {
        Ok(d) => d,
        Err(e) => return failed(&s, e),
    };
    let day = |d: &chrono::NaiveDate| d.format("%d/%m").to_string();
    let revenue_plot = plot::bars(
        &word(s.lang, "revenue_per_day"),
        &d.revenue_by_day.iter().map(|p| (day(&p.day), p.value)).collect::<Vec<_>>(),
        format_vnd,
    );
    let delivery_plot = plot::bars(
        &word(s.lang, "delivery_per_day"),
        &d.delivery_by_day.iter().map(|p| (day(&p.day), p.value)).collect::<Vec<_>>(),
        |secs| format!("{secs} s"),
    );
    let context = minijinja::context! {
        d => Value::from(Serde(&d)),
        conversion => d.conversion_percent().map(|p| format!("{p:.0}%")),
        revenue_plot => Value::from_safe_string(revenue_plot),
        delivery_plot => Value::from_safe_string(delivery_plot),
        dlq_configured => !c.dead_letters.is_empty(),
    };
    signed_page(&s, c.secure_cookies, "dashboard.html", "dashboard", context)
}

/// What staff did outside orders (owner only: it names the staff).
pub async fn audit<T: AccessToken>(State(state): State<ConsoleState<T>>, s: Signed) -> Response {
    match coursedrop::app::console::auth::audit_log(&state.0.pool, &s.staff, 300).await {
        Ok(entries) => signed_page(
            &s,
            state.0.secure_cookies,
            "audit.html",
            "audit",
            minijinja::context! { entries => Value::from(Serde(&entries)) },
        ),
        Err(e) => failed(&s, e),
    }
}
