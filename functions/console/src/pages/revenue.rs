//! Revenue for the tax return: a year's months and courses, and its files.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Datelike;
use coursedrop::adapters::drive::AccessToken;
use coursedrop::app::console::revenue;
use coursedrop::domain::today_in_vietnam;
use minijinja::Value;
use minijinja::value::Serde;
use serde::Deserialize;

use super::{failed, signed_page};
use crate::ConsoleState;
use crate::export;
use crate::render::Failure;
use crate::session::Signed;

#[derive(Deserialize)]
pub struct YearQuery {
    year: Option<i32>,
}

pub async fn show<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    s: Signed,
    Query(q): Query<YearQuery>,
) -> Response {
    let year = q.year.unwrap_or_else(|| today_in_vietnam().year());
    match revenue::year(&state.0.pool, year).await {
        Ok(r) => signed_page(
            &s,
            state.0.secure_cookies,
            "revenue.html",
            "revenue",
            minijinja::context! { r => Value::from(Serde(&r)), year },
        ),
        Err(e) => failed(&s, e),
    }
}

/// `/revenue/2026.csv` or `/revenue/2026.xlsx`.
pub async fn download<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    s: Signed,
    Path(file): Path<String>,
) -> Response {
    let not_found = || {
        Failure::new(s.lang, StatusCode::NOT_FOUND, "not_found", "ask for /revenue/<year>.csv or .xlsx").into_response()
    };
    let Some((year, kind)) = file.split_once('.') else { return not_found() };
    let Ok(year) = year.parse::<i32>() else { return not_found() };
    let r = match revenue::year(&state.0.pool, year).await {
        Ok(r) => r,
        Err(e) => return failed(&s, e),
    };
    match kind {
        "csv" => export::csv_download(&format!("revenue-{year}.csv"), export::revenue_csv(&r)),
        "xlsx" => match export::revenue_xlsx(&r) {
            Ok(bytes) => export::download(&format!("revenue-{year}.xlsx"), export::XLSX, bytes),
            Err(e) => {
                tracing::error!(error = %e, "writing the revenue workbook");
                Failure::new(s.lang, StatusCode::INTERNAL_SERVER_ERROR, "export", "the workbook could not be written")
                    .into_response()
            }
        },
        _ => not_found(),
    }
}
