//! An order request checked field by field: each refusal names its field.

use super::{MAX_COURSES_PER_ORDER, OrderRequest, PlaceOrderError, invalid};
use sha2::{Digest, Sha256};

use crate::domain::{CouponCode, CourseSlug, Email};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ValidRequest {
    pub(super) email: Email,
    pub(super) phone: Option<String>,
    pub(super) lang: &'static str,
    pub(super) slugs: Vec<CourseSlug>,
    pub(super) coupon: Option<CouponCode>,
}

impl ValidRequest {
    /// A digest of the request as understood, to tell a retry from a different request.
    pub(super) fn digest(&self) -> String {
        let slugs: Vec<&str> = self.slugs.iter().map(|s| s.as_str()).collect();
        let mut canonical =
            format!("{}\n{}\n{}\n{}", self.email, self.phone.as_deref().unwrap_or(""), self.lang, slugs.join(","));
        // Only with a coupon, so an order placed before coupons keeps its digest.
        if let Some(c) = &self.coupon {
            canonical.push_str(&format!("\ncoupon:{c}"));
        }
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

fn normalise_phone(raw: &str) -> Result<String, PlaceOrderError> {
    let trimmed = raw.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(r) => ("+", r),
        None => ("", trimmed),
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' => {}
            other => {
                return Err(invalid("phone", format!("phone may hold digits, spaces and + . - ( ), not {other:?}")));
            }
        }
    }
    if !(8..=15).contains(&digits.len()) {
        return Err(invalid("phone", "phone must have 8 to 15 digits"));
    }
    Ok(format!("{plus}{digits}"))
}

pub(super) fn validate(req: &OrderRequest) -> Result<ValidRequest, PlaceOrderError> {
    let email = match req.email.as_deref() {
        None => return Err(invalid("email", "email is required")),
        Some(e) => Email::parse(e).map_err(|e| invalid("email", e.to_string()))?,
    };
    let phone = match req.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(normalise_phone(p)?),
    };
    let lang = match req.lang.as_deref().map(|l| l.trim().to_ascii_lowercase()) {
        None => "vi",
        Some(l) if l.is_empty() || l == "vi" => "vi",
        Some(l) if l == "en" => "en",
        Some(_) => return Err(invalid("lang", "lang must be \"vi\" or \"en\"")),
    };
    let slugs = validate_courses(req.courses.as_deref())?;
    let coupon = validate_coupon(req.coupon.as_deref())?;
    Ok(ValidRequest { email, phone, lang, slugs, coupon })
}

/// A coupon field: absent or blank is none.
pub(super) fn validate_coupon(raw: Option<&str>) -> Result<Option<CouponCode>, PlaceOrderError> {
    match raw.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => CouponCode::parse(c).map(Some).map_err(|e| invalid("coupon", e.to_string())),
    }
}

pub(super) fn validate_courses(courses: Option<&[String]>) -> Result<Vec<CourseSlug>, PlaceOrderError> {
    let Some(courses) = courses else {
        return Err(invalid("courses", "courses is required: a list of course slugs"));
    };
    if courses.is_empty() {
        return Err(invalid("courses", "choose at least one course"));
    }
    if courses.len() > MAX_COURSES_PER_ORDER {
        return Err(invalid("courses", format!("at most {MAX_COURSES_PER_ORDER} courses per order")));
    }
    let mut slugs: Vec<CourseSlug> = Vec::with_capacity(courses.len());
    for (i, raw) in courses.iter().enumerate() {
        // The position, not the text: a refusal never echoes what a client sent.
        let slug =
            CourseSlug::parse(raw).map_err(|e| invalid("courses", format!("course {} of the list: {e}", i + 1)))?;
        if slugs.contains(&slug) {
            return Err(invalid("courses", format!("{slug} is listed more than once")));
        }
        slugs.push(slug);
    }
    Ok(slugs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::ordering::OrderRequest;

    fn req(email: &str, courses: &[&str]) -> OrderRequest {
        OrderRequest {
            email: Some(email.into()),
            phone: None,
            lang: None,
            courses: Some(courses.iter().map(|s| s.to_string()).collect()),
            coupon: None,
        }
    }

    #[test]
    fn validation_names_the_field() {
        let field = |r: &OrderRequest| match validate(r) {
            Err(PlaceOrderError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(field(&req("not-an-email", &["a"])), "email");
        assert_eq!(field(&OrderRequest { email: None, ..req("", &["a"]) }), "email");
        assert_eq!(field(&req("a@b.vn", &[])), "courses");
        assert_eq!(field(&req("a@b.vn", &["a", "A"])), "courses");
        assert_eq!(field(&req("a@b.vn", &["bad slug"])), "courses");
        assert_eq!(field(&OrderRequest { courses: None, ..req("a@b.vn", &[]) }), "courses");
        assert_eq!(field(&OrderRequest { lang: Some("fr".into()), ..req("a@b.vn", &["a"]) }), "lang");
        assert_eq!(field(&OrderRequest { phone: Some("12ab".into()), ..req("a@b.vn", &["a"]) }), "phone");
        assert_eq!(field(&OrderRequest { phone: Some("123".into()), ..req("a@b.vn", &["a"]) }), "phone");
        assert_eq!(field(&OrderRequest { coupon: Some("no spaces".into()), ..req("a@b.vn", &["a"]) }), "coupon");
    }

    #[test]
    fn the_digest_sees_through_formatting_but_not_content() {
        let a =
            validate(&OrderRequest { phone: Some("+84 912.345.678".into()), ..req("x@Example.com", &["Rust-101"]) })
                .unwrap();
        let b = validate(&OrderRequest {
            phone: Some("+84912345678".into()),
            lang: Some("VI".into()),
            ..req(" x@example.com", &["rust-101"])
        })
        .unwrap();
        assert_eq!(a.digest(), b.digest());
        let c = validate(&req("x@example.com", &["rust-102"])).unwrap();
        assert_ne!(a.digest(), c.digest());
    }
}
