//! What needs a hand: failed and stuck items, transfers that matched no order, orders paid
//! wrongly, and transfers held as possible duplicates, each with what fixes it.

use axum::extract::{Path, State};
use axum::response::Response;
use coursedrop::adapters::drive::AccessToken;
use coursedrop::app::console::{ConsoleError, actions, orders};
use minijinja::Value;
use minijinja::value::Serde;
use serde::Deserialize;

use super::{done, failed, signed_page};
use crate::ConsoleState;
use crate::session::{Change, Signed};

pub async fn show<T: AccessToken>(State(state): State<ConsoleState<T>>, s: Signed) -> Response {
    let c = &state.0;
    match orders::problems(&c.pool, &c.settings.deadlines, &c.pattern).await {
        Ok(p) => signed_page(
            &s,
            c.secure_cookies,
            "problems.html",
            "problems",
            minijinja::context! { p => Value::from(Serde(&p)) },
        ),
        Err(e) => failed(&s, e),
    }
}

#[derive(Deserialize)]
pub struct PaymentForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    note: String,
}

fn answer<T>(state: &ConsoleState<T>, s: &Signed, result: Result<actions::Done, ConsoleError>) -> Response {
    match result {
        Ok(d) => done(state.0.secure_cookies, "/problems", &crate::said::done(s.lang, &d)),
        Err(e) => failed(s, e),
    }
}

pub async fn attach<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(id): Path<u64>,
    Change { s, form }: Change<PaymentForm>,
) -> Response {
    let c = &state.0;
    let result = async {
        let code = orders::order_code(&form.code, &c.pattern)?;
        actions::attach(&c.pool, &c.publisher, &s.staff, id, &code).await
    }
    .await;
    answer(&state, &s, result)
}

pub async fn release<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(id): Path<u64>,
    Change { s, .. }: Change<PaymentForm>,
) -> Response {
    let result = actions::release(&state.0.pool, &state.0.publisher, &s.staff, id).await;
    answer(&state, &s, result)
}

pub async fn drop_held<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(id): Path<u64>,
    Change { s, .. }: Change<PaymentForm>,
) -> Response {
    let result = actions::drop_held(&state.0.pool, &s.staff, id).await;
    answer(&state, &s, result)
}

pub async fn handled<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(id): Path<u64>,
    Change { s, form }: Change<PaymentForm>,
) -> Response {
    let result = actions::mark_handled(&state.0.pool, &s.staff, id, &form.note).await;
    answer(&state, &s, result)
}
