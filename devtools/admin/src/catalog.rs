use anyhow::Result;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::source::{CourseSource, DeliveryMode, S3Source};
use coursedrop::app::operations;
use coursedrop::domain::{CouponCode, CourseSlug, Discount, Vnd};
use coursedrop::store;
use serde_json::{Value, json};

use crate::cli::{CouponCommand, CourseCommand};
use crate::table::{Table, vnd};
use crate::{Ctx, invalid, when};

fn course_slug(input: &str) -> Result<CourseSlug> {
    CourseSlug::parse(input).map_err(|_| invalid(format!("{input:?} is not a course slug")))
}

fn coupon_code(input: &str) -> Result<CouponCode> {
    CouponCode::parse(input).map_err(|e| invalid(format!("{input:?} is not a coupon code: {e}")))
}

fn coupon_scope(c: &store::coupons::Coupon) -> String {
    if c.courses.is_empty() { "every course".into() } else { c.courses.join(", ") }
}

/// A time an operator types. A bare date is Vietnam's (UTC+7), where the seller is: from its
/// midnight, or for an end, through that whole day.
fn moment(flag: &str, input: &str, end: bool) -> Result<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let vietnam = chrono::FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset");
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let local = if let Ok(t) = NaiveDateTime::parse_from_str(input, "%Y-%m-%d %H:%M") {
        t
    } else if let Ok(d) = NaiveDate::parse_from_str(input, "%Y-%m-%d") {
        let d = if end { d.succ_opt().unwrap_or(d) } else { d };
        d.and_hms_opt(0, 0, 0).expect("midnight exists")
    } else {
        return Err(invalid(format!("{flag} {input:?}: a date (YYYY-MM-DD), YYYY-MM-DD HH:MM or RFC 3339")));
    };
    let t = vietnam.from_local_datetime(&local).single().ok_or_else(|| invalid(format!("{flag} {input:?}")))?;
    Ok(t.with_timezone(&chrono::Utc))
}

pub(crate) async fn course(ctx: &Ctx, command: CourseCommand) -> Result<(Value, String)> {
    Ok(match command {
        CourseCommand::Add { slug, title, price, source, mode, lms_course_id } => {
            let slug = CourseSlug::parse(&slug).map_err(|e| invalid(format!("--slug: {e}")))?;
            let price = Vnd::new(price).map_err(|e| invalid(format!("--price: {e}")))?;
            let mode = DeliveryMode::parse(&mode).map_err(|_| invalid(format!("--mode {mode:?}: copy or share")))?;
            let s3 = S3Source::from_vars(&ctx.vars).await;
            // Drive credentials are read only for a Drive source: an S3-only seller needs none.
            let drive = match CourseSource::parse(&source) {
                Ok(CourseSource::Drive(_)) => Some(DriveClient::from_vars(&ctx.vars).await?),
                _ => None,
            };
            let course = operations::CourseToAdd {
                slug: &slug,
                title: &title,
                price,
                source: &source,
                mode,
                lms_course_id: lms_course_id.as_deref(),
            };
            let added = operations::add_course(&ctx.pool, &s3, drive.as_ref(), &course).await?;
            let text = format!(
                "added course {} (id {}): {} files, {:.1} MB at {}, delivered by {}",
                added.slug,
                added.id,
                added.files,
                added.bytes as f64 / 1e6,
                added.source,
                added.delivery_mode.as_str()
            );
            (json!(added), text)
        }
        CourseCommand::List => {
            let courses = operations::courses(&ctx.pool).await?;
            let mut t = Table::new(&["SLUG", "TITLE", "PRICE", "ON SALE", "MODE", "SOURCE"]);
            for c in &courses {
                t.row(vec![
                    c.slug.clone(),
                    c.title.clone(),
                    vnd(c.price_vnd),
                    if c.active { "yes" } else { "no" }.into(),
                    c.delivery_mode.clone(),
                    c.source.clone(),
                ]);
            }
            (json!(courses), t.render())
        }
        CourseCommand::Disable { slug } => {
            operations::set_course_active(&ctx.pool, &course_slug(&slug)?, false).await?;
            (json!({"slug": slug, "active": false}), format!("course {slug} is off sale"))
        }
        CourseCommand::Enable { slug } => {
            operations::set_course_active(&ctx.pool, &course_slug(&slug)?, true).await?;
            (json!({"slug": slug, "active": true}), format!("course {slug} is on sale"))
        }
        CourseCommand::SetSource { slug, source, mode } => {
            let slug = course_slug(&slug)?;
            let mode = DeliveryMode::parse(&mode).map_err(|_| invalid(format!("--mode {mode:?}: copy or share")))?;
            let s3 = S3Source::from_vars(&ctx.vars).await;
            let drive = match CourseSource::parse(&source) {
                Ok(CourseSource::Drive(_)) => Some(DriveClient::from_vars(&ctx.vars).await?),
                _ => None,
            };
            let checked = operations::change_source(&ctx.pool, &s3, drive.as_ref(), &slug, &source, mode).await?;
            let text = format!(
                "course {slug} now delivers from {} by {}: {} files, {:.1} MB checked",
                checked.stored,
                mode.as_str(),
                checked.files,
                checked.bytes as f64 / 1e6
            );
            (json!(checked), text)
        }
    })
}

pub(crate) async fn coupon(ctx: &Ctx, command: CouponCommand) -> Result<(Value, String)> {
    Ok(match command {
        CouponCommand::Add { code, percent, amount, max_uses, from, until, courses } => {
            let code = coupon_code(&code)?;
            let discount = match (percent, amount) {
                (Some(p), None) => Discount::percent(p).map_err(|e| invalid(format!("--percent: {e}")))?,
                (None, Some(a)) => Vnd::new(a)
                    .map_err(|e| e.to_string())
                    .and_then(|a| Discount::amount(a).map_err(|e| e.to_string()))
                    .map_err(|e| invalid(format!("--amount: {e}")))?,
                _ => return Err(invalid("give one of --percent and --amount")),
            };
            let courses = courses.iter().map(|c| course_slug(c)).collect::<Result<Vec<_>>>()?;
            let coupon = operations::add_coupon(
                &ctx.pool,
                &operations::CouponToAdd {
                    code: &code,
                    discount,
                    max_uses,
                    valid_from: from.as_deref().map(|t| moment("--from", t, false)).transpose()?,
                    valid_until: until.as_deref().map(|t| moment("--until", t, true)).transpose()?,
                    courses: &courses,
                },
            )
            .await?;
            let text = format!("added coupon {}: {} off {}", coupon.code, coupon.discount, coupon_scope(&coupon));
            (json!(coupon), text)
        }
        CouponCommand::List => {
            let coupons = operations::coupons(&ctx.pool).await?;
            let mut t = Table::new(&["CODE", "OFF", "USED", "FROM", "UNTIL", "COURSES", "ACTIVE"]);
            for c in &coupons {
                t.row(vec![
                    c.code.clone(),
                    c.discount.to_string(),
                    match c.max_uses {
                        Some(max) => format!("{}/{max}", c.uses),
                        None => c.uses.to_string(),
                    },
                    c.valid_from.map(when).unwrap_or_default(),
                    c.valid_until.map(when).unwrap_or_default(),
                    coupon_scope(c),
                    if c.active { "yes" } else { "no" }.into(),
                ]);
            }
            (json!(coupons), t.render())
        }
        CouponCommand::Disable { code } => {
            let code = coupon_code(&code)?;
            operations::disable_coupon(&ctx.pool, &code).await?;
            (
                json!({"code": code, "active": false}),
                format!("coupon {code} is off; orders placed with it keep their price"),
            )
        }
    })
}
