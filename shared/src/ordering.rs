//! Placing an order and reading it back: validation, catalog prices, idempotent retries,
//! the payment instructions (VietQR and SePay's QR link), and the buyer's status view.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{MySqlConnection, MySqlPool};
use thiserror::Error;

use crate::adapters::{sepay, vietqr};
use crate::config::BankAccount;
use crate::domain::{CodePattern, CourseSlug, Email, OrderCode, Vnd};
use crate::store::{self, StoreError, catalog, items, orders};

pub const MAX_COURSES_PER_ORDER: usize = 20;

#[derive(Debug, Clone)]
pub struct OrderSettings {
    pub pattern: CodePattern,
    pub bank: BankAccount,
    pub ttl: chrono::Duration,
}

/// The body of `POST /orders`. Anything else in it (a price, say) is ignored: prices come
/// from the catalog.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderRequest {
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    pub courses: Option<Vec<String>>,
}

#[derive(Debug, Error)]
pub enum PlaceOrderError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyConflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> PlaceOrderError {
    PlaceOrderError::Invalid { field, message: message.into() }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ValidRequest {
    email: Email,
    phone: Option<String>,
    lang: &'static str,
    slugs: Vec<CourseSlug>,
}

impl ValidRequest {
    /// A digest of the request as understood, to tell a retry from a different request.
    fn digest(&self) -> String {
        let slugs: Vec<&str> = self.slugs.iter().map(|s| s.as_str()).collect();
        let canonical =
            format!("{}\n{}\n{}\n{}", self.email, self.phone.as_deref().unwrap_or(""), self.lang, slugs.join(","));
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

fn validate(req: &OrderRequest) -> Result<ValidRequest, PlaceOrderError> {
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
    let Some(courses) = req.courses.as_ref() else {
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
    Ok(ValidRequest { email, phone, lang, slugs })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlacedItem {
    pub course: String,
    pub title: String,
    pub price_vnd: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PaymentInstructions {
    pub bank: String,
    pub account_number: String,
    pub account_name: String,
    pub transfer_text: String,
    pub qr_image_url: String,
    pub vietqr: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlacedOrder {
    pub code: String,
    pub status: String,
    pub amount_vnd: i64,
    pub expires_at: DateTime<Utc>,
    pub items: Vec<PlacedItem>,
    pub payment: PaymentInstructions,
}

#[derive(Debug)]
pub struct Placement {
    pub order: PlacedOrder,
    /// False when an Idempotency-Key replay returned an order made earlier.
    pub created: bool,
}

pub fn vietqr_payload(bank: &BankAccount, code: &str, amount: i64) -> Result<String, vietqr::VietQrError> {
    vietqr::VietQr {
        bank_bin: &bank.bank_bin,
        account_number: &bank.account_number,
        amount: Vnd::new(amount).ok(),
        bill_number: None,
        purpose: code,
    }
    .payload()
}

async fn placed(
    conn: &mut MySqlConnection,
    head: &orders::OrderHead,
    s: &OrderSettings,
) -> Result<PlacedOrder, StoreError> {
    let items = items::priced_courses_in(conn, head.id).await?;
    let vietqr = vietqr_payload(&s.bank, &head.code, head.total_vnd)
        .map_err(|e| StoreError::Corrupt(format!("VietQR for {}: {e}", head.code)))?;
    Ok(PlacedOrder {
        code: head.code.clone(),
        status: head.status.clone(),
        amount_vnd: head.total_vnd,
        expires_at: head.expires_at,
        items: items.into_iter().map(|(course, title, price_vnd)| PlacedItem { course, title, price_vnd }).collect(),
        payment: PaymentInstructions {
            bank: s.bank.bank_code.clone(),
            account_number: s.bank.account_number.clone(),
            account_name: s.bank.account_name.clone(),
            transfer_text: head.code.clone(),
            qr_image_url: sepay::qr_image_url(&s.bank.account_number, &s.bank.bank_code, head.total_vnd, &head.code),
            vietqr,
        },
    })
}

/// Validates the request, prices it from the catalog and creates the order, or returns the
/// order an earlier request with the same `idempotency_key` created.
pub async fn place_order(
    pool: &MySqlPool,
    settings: &OrderSettings,
    request: &OrderRequest,
    idempotency_key: Option<&str>,
) -> Result<Placement, PlaceOrderError> {
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(invalid("Idempotency-Key", "Idempotency-Key must be 1 to 128 visible ASCII characters"));
    }
    let valid = validate(request)?;
    let digest = valid.digest();
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;

    let replay = |head: orders::OrderHead| {
        if head.request_hash.as_deref() != Some(digest.as_str()) {
            return Err(PlaceOrderError::IdempotencyConflict);
        }
        Ok(head)
    };
    if let Some(key) = idempotency_key
        && let Some(head) = orders::head_by_key(&mut conn, key).await?
    {
        let head = replay(head)?;
        return Ok(Placement { order: placed(&mut conn, &head, settings).await?, created: false });
    }

    let mut items = Vec::with_capacity(valid.slugs.len());
    for slug in &valid.slugs {
        match catalog::by_slug(&mut conn, slug).await? {
            Some(c) if c.active => {
                let price = Vnd::new(c.price_vnd).map_err(|e| StoreError::Corrupt(format!("price of {slug}: {e}")))?;
                items.push((c.id, price));
            }
            Some(_) => return Err(invalid("courses", format!("{slug} is no longer for sale"))),
            None => return Err(invalid("courses", format!("there is no course {slug}"))),
        }
    }

    let expires_at = Utc::now() + settings.ttl;
    // A random code can collide with an existing one; a fresh draw almost surely will not.
    for _ in 0..8 {
        let code = OrderCode::generate(&settings.pattern);
        let new = orders::NewOrder {
            code: &code,
            email: &valid.email,
            phone: valid.phone.as_deref(),
            lang: valid.lang,
            expires_at,
            items: &items,
            idempotency_key,
            request_hash: Some(&digest),
        };
        // On the connection this request already holds: taking a second from the pool while
        // holding one can starve the pool under concurrent requests.
        let created = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            orders::create_in(&mut tx, &new, "create-order").await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await;
        match created {
            Ok(_) => {
                let head = orders::head_by_code(&mut conn, code.as_str())
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: "order", id: code.to_string() })?;
                return Ok(Placement { order: placed(&mut conn, &head, settings).await?, created: true });
            }
            Err(StoreError::Database(e)) if store::is_duplicate_key(&e, "uq_orders_code") => {
                continue;
            }
            Err(StoreError::Database(e)) if store::is_duplicate_key(&e, "uq_orders_idempotency_key") => {
                // A concurrent request with the same key won the race: answer as its retry.
                let key = idempotency_key.unwrap_or_default();
                let head = orders::head_by_key(&mut conn, key)
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: "order", id: key.to_string() })?;
                let head = replay(head)?;
                return Ok(Placement { order: placed(&mut conn, &head, settings).await?, created: false });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Corrupt("could not draw an unused order code in 8 tries; widen ORDER_CODE_LENGTH".into()).into())
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Progress {
    pub files_done: u32,
    pub files_total: Option<u32>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemView {
    pub course: String,
    pub title: String,
    pub status: String,
    pub progress: Progress,
    pub drive_link: Option<String>,
}

/// What a buyer sees of an order: never the email or the phone.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderView {
    pub code: String,
    pub status: String,
    pub amount_vnd: i64,
    pub paid_vnd: i64,
    pub expires_at: DateTime<Utc>,
    pub items: Vec<ItemView>,
}

pub async fn order_view(pool: &MySqlPool, code: &OrderCode) -> Result<Option<OrderView>, StoreError> {
    let mut conn = pool.acquire().await?;
    let Some(head) = orders::head_by_code(&mut conn, code.as_str()).await? else {
        return Ok(None);
    };
    let rows = items::progress_of_order_in(&mut conn, head.id).await?;
    Ok(Some(OrderView {
        code: head.code,
        status: head.status,
        amount_vnd: head.total_vnd,
        paid_vnd: head.paid_vnd,
        expires_at: head.expires_at,
        items: rows
            .into_iter()
            .map(|r| ItemView {
                // The link is the buyer's only once the folder is shared with them.
                drive_link: if r.status == "completed" { r.drive_link } else { None },
                course: r.slug,
                title: r.title,
                status: r.status,
                progress: Progress {
                    files_done: r.files_done,
                    files_total: r.files_total,
                    bytes_done: r.bytes_done,
                    bytes_total: r.bytes_total,
                },
            })
            .collect(),
    }))
}

/// The VietQR payload of an order, for its QR image.
pub async fn order_vietqr(
    pool: &MySqlPool,
    settings: &OrderSettings,
    code: &OrderCode,
) -> Result<Option<String>, StoreError> {
    let mut conn = pool.acquire().await?;
    let Some(head) = orders::head_by_code(&mut conn, code.as_str()).await? else {
        return Ok(None);
    };
    vietqr_payload(&settings.bank, &head.code, head.total_vnd)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("VietQR for {}: {e}", head.code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(email: &str, courses: &[&str]) -> OrderRequest {
        OrderRequest {
            email: Some(email.into()),
            phone: None,
            lang: None,
            courses: Some(courses.iter().map(|s| s.to_string()).collect()),
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
