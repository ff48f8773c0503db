//! The catalog and the coupons (owner only to change; everyone may look).

use axum::extract::{Path, State};
use axum::response::Response;
use coursedrop::adapters::drive::AccessToken;
use coursedrop::app::console::{ConsoleError, actions};
use coursedrop::app::operations::{self, CouponToAdd, CourseToAdd};
use coursedrop::domain::course::DeliveryMode;
use coursedrop::domain::{CouponCode, CourseSlug, Discount, Vnd, vietnam_midnight};
use minijinja::Value;
use minijinja::value::Serde;
use serde::Deserialize;

use super::{done, failed, signed_page};
use crate::ConsoleState;
use crate::session::{Change, Signed};

pub async fn courses<T: AccessToken>(State(state): State<ConsoleState<T>>, s: Signed) -> Response {
    match operations::courses(&state.0.pool).await {
        Ok(courses) => signed_page(
            &s,
            state.0.secure_cookies,
            "catalog.html",
            "catalog",
            minijinja::context! { courses => Value::from(Serde(&courses)) },
        ),
        Err(e) => failed(&s, e.into()),
    }
}

fn slug(field: &'static str, s: &str) -> Result<CourseSlug, ConsoleError> {
    CourseSlug::parse(s).map_err(|e| ConsoleError::invalid(field, e.to_string()))
}

fn price(s: &str) -> Result<Vnd, ConsoleError> {
    let digits: String = s.chars().filter(|c| !matches!(c, '.' | ',' | ' ')).collect();
    let n: i64 =
        digits.parse().map_err(|_| ConsoleError::invalid("price", format!("{s:?} is not a whole number of VND")))?;
    Vnd::new(n).map_err(|e| ConsoleError::invalid("price", e.to_string()))
}

#[derive(Deserialize)]
pub struct CourseForm {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    active: String,
}

fn answer(secure: bool, to: &str, s: &Signed, result: Result<actions::Done, ConsoleError>) -> Response {
    match result {
        Ok(d) => done(secure, to, &crate::said::done(s.lang, &d)),
        Err(e) => failed(s, e),
    }
}

pub async fn add_course<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Change { s, form: f }: Change<CourseForm>,
) -> Response {
    let c = &state.0;
    let result = async {
        let slug = slug("slug", &f.slug)?;
        let mode = DeliveryMode::parse(if f.mode.is_empty() { "copy" } else { &f.mode })
            .map_err(|e| ConsoleError::invalid("mode", e.to_string()))?;
        let course = CourseToAdd {
            slug: &slug,
            title: &f.title,
            price: price(&f.price)?,
            source: f.source.trim(),
            mode,
            lms_course_id: None,
        };
        actions::add_course(&c.pool, &c.s3, Some(&c.drive), &s.staff, &course).await
    }
    .await;
    answer(c.secure_cookies, "/catalog", &s, result)
}

pub async fn edit_course<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(raw): Path<String>,
    Change { s, form: f }: Change<CourseForm>,
) -> Response {
    let c = &state.0;
    let result =
        async { actions::edit_course(&c.pool, &s.staff, &slug("slug", &raw)?, &f.title, price(&f.price)?).await }.await;
    answer(c.secure_cookies, "/catalog", &s, result)
}

pub async fn change_source<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(raw): Path<String>,
    Change { s, form: f }: Change<CourseForm>,
) -> Response {
    let c = &state.0;
    let result = async {
        let mode = DeliveryMode::parse(&f.mode).map_err(|e| ConsoleError::invalid("mode", e.to_string()))?;
        actions::change_source(&c.pool, &c.s3, Some(&c.drive), &s.staff, &slug("slug", &raw)?, &f.source, mode).await
    }
    .await;
    answer(c.secure_cookies, "/catalog", &s, result)
}

pub async fn set_active<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(raw): Path<String>,
    Change { s, form: f }: Change<CourseForm>,
) -> Response {
    let c = &state.0;
    let result =
        async { actions::set_course_active(&c.pool, &s.staff, &slug("slug", &raw)?, f.active == "true").await }.await;
    answer(c.secure_cookies, "/catalog", &s, result)
}

pub async fn coupons<T: AccessToken>(State(state): State<ConsoleState<T>>, s: Signed) -> Response {
    let c = &state.0;
    let (coupons, courses) = match (operations::coupons(&c.pool).await, operations::courses(&c.pool).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return failed(&s, e.into()),
    };
    signed_page(
        &s,
        c.secure_cookies,
        "coupons.html",
        "coupons",
        minijinja::context! { coupons => Value::from(Serde(&coupons)), courses => Value::from(Serde(&courses)) },
    )
}

#[derive(Deserialize)]
pub struct CouponForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    percent: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    max_uses: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    course: String,
}

fn discount(f: &CouponForm) -> Result<Discount, ConsoleError> {
    match (f.percent.trim(), f.amount.trim()) {
        (p, "") if !p.is_empty() => {
            let p: u8 =
                p.parse().map_err(|_| ConsoleError::invalid("percent", format!("{p:?} is not a percentage")))?;
            Discount::percent(p).map_err(|e| ConsoleError::invalid("percent", e.to_string()))
        }
        ("", a) if !a.is_empty() => {
            Discount::amount(price(a)?).map_err(|e| ConsoleError::invalid("amount", e.to_string()))
        }
        _ => Err(ConsoleError::invalid("percent", "give either a percentage or an amount off, not both")),
    }
}

pub async fn add_coupon<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Change { s, form: f }: Change<CouponForm>,
) -> Response {
    let c = &state.0;
    let result = async {
        let code = CouponCode::parse(&f.code).map_err(|e| ConsoleError::invalid("code", e.to_string()))?;
        let max_uses = match f.max_uses.trim() {
            "" => None,
            n => Some(n.parse().map_err(|_| ConsoleError::invalid("max_uses", format!("{n:?} is not a number")))?),
        };
        let until = match f.until.trim() {
            "" => None,
            d => Some(vietnam_midnight(
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| ConsoleError::invalid("until", format!("{d:?} is not a date (YYYY-MM-DD)")))?
                    + chrono::Duration::days(1),
            )),
        };
        let courses = match f.course.trim() {
            "" => Vec::new(),
            one => vec![slug("course", one)?],
        };
        let coupon = CouponToAdd {
            code: &code,
            discount: discount(&f)?,
            max_uses,
            valid_from: None,
            valid_until: until,
            courses: &courses,
        };
        actions::add_coupon(&c.pool, &s.staff, &coupon).await
    }
    .await;
    answer(c.secure_cookies, "/coupons", &s, result)
}

pub async fn disable_coupon<T: AccessToken>(
    State(state): State<ConsoleState<T>>,
    Path(raw): Path<String>,
    Change { s, .. }: Change<CouponForm>,
) -> Response {
    let c = &state.0;
    let result = async {
        let code = CouponCode::parse(&raw).map_err(|e| ConsoleError::invalid("code", e.to_string()))?;
        actions::disable_coupon(&c.pool, &s.staff, &code).await
    }
    .await;
    answer(c.secure_cookies, "/coupons", &s, result)
}
