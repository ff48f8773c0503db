//! The emails (the delivery email, the payment reminder, the access-moved notice, the
//! console's sign-in link): rendered from the templates in `shared/templates/` (Vietnamese and
//! English, HTML with a plain-text alternative) and sent over SMTP with lettre.
//!
//! The Message-ID is chosen by the caller and stored before sending, so a re-send after a
//! crash carries the same id and mail clients fold the two.

use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Mailbox, MultiPart, SinglePart, header};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use thiserror::Error;

use crate::domain::brand::Brand;

const TEMPLATES: &[(&str, &str)] = &[
    ("delivery.vi.txt", include_str!("../../templates/delivery.vi.txt.j2")),
    ("delivery.vi.html", include_str!("../../templates/delivery.vi.html.j2")),
    ("delivery.en.txt", include_str!("../../templates/delivery.en.txt.j2")),
    ("delivery.en.html", include_str!("../../templates/delivery.en.html.j2")),
    ("reminder.vi.txt", include_str!("../../templates/reminder.vi.txt.j2")),
    ("reminder.vi.html", include_str!("../../templates/reminder.vi.html.j2")),
    ("reminder.en.txt", include_str!("../../templates/reminder.en.txt.j2")),
    ("reminder.en.html", include_str!("../../templates/reminder.en.html.j2")),
    ("access_moved.vi.txt", include_str!("../../templates/access_moved.vi.txt.j2")),
    ("access_moved.vi.html", include_str!("../../templates/access_moved.vi.html.j2")),
    ("access_moved.en.txt", include_str!("../../templates/access_moved.en.txt.j2")),
    ("access_moved.en.html", include_str!("../../templates/access_moved.en.html.j2")),
    ("sign_in.vi.txt", include_str!("../../templates/sign_in.vi.txt.j2")),
    ("sign_in.vi.html", include_str!("../../templates/sign_in.vi.html.j2")),
    ("sign_in.en.txt", include_str!("../../templates/sign_in.en.txt.j2")),
    ("sign_in.en.html", include_str!("../../templates/sign_in.en.html.j2")),
    ("footer.vi.txt", include_str!("../../templates/footer.vi.txt.j2")),
    ("footer.vi.html", include_str!("../../templates/footer.vi.html.j2")),
    ("footer.en.txt", include_str!("../../templates/footer.en.txt.j2")),
    ("footer.en.html", include_str!("../../templates/footer.en.html.j2")),
];

#[derive(Debug, Error)]
pub enum MailError {
    /// The SMTP server is unreachable or answered 4xx: retry later.
    #[error("sending failed, worth retrying: {0}")]
    Transient(String),
    /// The message cannot be sent as it is (bad address, 5xx).
    #[error("sending failed: {0}")]
    Permanent(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryMail<'a> {
    pub to: &'a str,
    pub lang: &'a str,
    pub title: &'a str,
    pub code: &'a str,
    pub link: &'a str,
    /// `<…@…>`, fixed per item before the first send.
    #[serde(skip)]
    pub message_id: &'a str,
}

/// The notice to the address a course's access was moved away from.
#[derive(Debug, Clone)]
pub struct AccessMovedMail<'a> {
    pub to: &'a str,
    pub lang: &'a str,
    pub title: &'a str,
    pub code: &'a str,
    /// Masked: the old address learns that it moved, not whose the new one is.
    pub new_address: &'a str,
    /// Vietnam time.
    pub when: &'a str,
    pub message_id: &'a str,
}

/// The payment reminder of an unpaid order: what to transfer, where, with which text.
#[derive(Debug, Clone)]
pub struct ReminderMail<'a> {
    pub to: &'a str,
    pub lang: &'a str,
    pub code: &'a str,
    /// The courses' titles.
    pub titles: &'a [String],
    pub amount_vnd: i64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub bank: &'a crate::domain::transfer::BankAccount,
    /// SePay's QR image for the amount and text (mail clients show an image, not a payload).
    pub qr_image_url: &'a str,
    /// The order's status page, when the page's address is configured (`SHOP_URL`).
    pub order_link: Option<&'a str>,
    pub message_id: &'a str,
}

/// A one-time link that signs a member of staff in to the console.
#[derive(Debug, Clone)]
pub struct SignInMail<'a> {
    pub to: &'a str,
    pub lang: &'a str,
    pub link: &'a str,
    pub minutes: u64,
    pub message_id: &'a str,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    brand: Brand,
    templates: minijinja::Environment<'static>,
}

impl Mailer {
    /// A mailer sending through `transport` as `from`, signing with the seller's `brand`.
    pub fn new(transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox, brand: Brand) -> Self {
        let mut templates = minijinja::Environment::new();
        templates.set_auto_escape_callback(|name| {
            if name.ends_with(".html") { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None }
        });
        for (name, source) in TEMPLATES {
            templates.add_template(name, source).expect("the bundled templates parse");
        }
        Mailer { transport, from, brand, templates }
    }

    pub fn from_address(&self) -> &Mailbox {
        &self.from
    }

    /// A fresh `Message-ID`, `<tag.random@our domain>`: `tag` says what the mail is
    /// (`delivery.42`, `reminder.7`…), the random part makes each new message its own.
    pub fn new_message_id(&self, tag: &str) -> String {
        format!("<{tag}.{:016x}@{}>", rand::random::<u64>(), self.from.email.domain())
    }

    pub fn brand(&self) -> &Brand {
        &self.brand
    }

    /// The plain and HTML bodies of `kind` in `lang`, with the brand in every one.
    fn render(&self, kind: &str, lang: &str, context: minijinja::Value) -> Result<(String, String), MailError> {
        let context = minijinja::context! { brand => minijinja::context! {
            seller_name => &self.brand.seller_name,
            logo_url => &self.brand.logo_url,
            support_email => &self.brand.support_email,
            support_phone => &self.brand.support_phone,
            support_zalo => &self.brand.support_zalo,
        }, has_support => self.brand.has_support(), ..context };
        let render = |part: &str| {
            self.templates
                .get_template(&format!("{kind}.{lang}.{part}"))
                .and_then(|t| t.render(&context))
                .map_err(|e| MailError::Permanent(format!("template: {e}")))
        };
        Ok((render("txt")?, render("html")?))
    }

    fn message(
        &self,
        to: &str,
        subject: String,
        message_id: &str,
        bodies: (String, String),
    ) -> Result<Message, MailError> {
        let to: Mailbox =
            to.parse().map_err(|e: lettre::address::AddressError| MailError::Permanent(format!("{to}: {e}")))?;
        // Base64 for both parts: safe for any relay, whatever the language.
        let part = |content_type: header::ContentType, body: String| {
            SinglePart::builder().header(content_type).header(ContentTransferEncoding::Base64).body(body)
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id.to_string()))
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(header::ContentType::TEXT_PLAIN, bodies.0))
                    .singlepart(part(header::ContentType::TEXT_HTML, bodies.1)),
            )
            .map_err(|e| MailError::Permanent(e.to_string()))
    }

    /// The delivery email, in the order's language (Vietnamese unless `en`).
    pub fn delivery(&self, m: &DeliveryMail<'_>) -> Result<Message, MailError> {
        let lang = if m.lang == "en" { "en" } else { "vi" };
        let bodies =
            self.render("delivery", lang, minijinja::context! { title => m.title, code => m.code, link => m.link })?;
        let subject = if lang == "en" {
            format!("Your course \"{}\" is ready ({})", m.title, m.code)
        } else {
            format!("Khoá học \"{}\" của bạn đã sẵn sàng ({})", m.title, m.code)
        };
        self.message(m.to, subject, m.message_id, bodies)
    }

    /// The notice to the address the access was moved away from, in the order's language.
    pub fn access_moved(&self, m: &AccessMovedMail<'_>) -> Result<Message, MailError> {
        let lang = if m.lang == "en" { "en" } else { "vi" };
        let bodies = self.render(
            "access_moved",
            lang,
            minijinja::context! { title => m.title, code => m.code, new_address => m.new_address, when => m.when },
        )?;
        let subject = if lang == "en" {
            format!("The access to \"{}\" was moved to another address ({})", m.title, m.code)
        } else {
            format!("Quyền truy cập khoá học \"{}\" đã được chuyển sang địa chỉ khác ({})", m.title, m.code)
        };
        self.message(m.to, subject, m.message_id, bodies)
    }

    /// The payment reminder, in the order's language.
    pub fn reminder(&self, m: &ReminderMail<'_>) -> Result<Message, MailError> {
        let lang = if m.lang == "en" { "en" } else { "vi" };
        // The buyer reads the time where they are: Vietnam.
        let expires = crate::domain::vietnam_time(m.expires_at);
        let amount = crate::domain::format_vnd(m.amount_vnd);
        let bodies = self.render(
            "reminder",
            lang,
            minijinja::context! {
                code => m.code,
                titles => m.titles.join(", "),
                amount => &amount,
                expires => &expires,
                bank => &m.bank.bank_code,
                account_number => &m.bank.account_number,
                account_name => &m.bank.account_name,
                transfer_text => m.code,
                qr_image_url => m.qr_image_url,
                order_link => m.order_link,
            },
        )?;
        let subject = if lang == "en" {
            format!("Order {}: {amount} to pay before {expires} (Vietnam time)", m.code)
        } else {
            format!("Đơn hàng {}: còn chờ thanh toán {amount} trước {expires}", m.code)
        };
        self.message(m.to, subject, m.message_id, bodies)
    }

    /// The console's sign-in link, in the language the console was shown in.
    pub fn sign_in(&self, m: &SignInMail<'_>) -> Result<Message, MailError> {
        let lang = if m.lang == "en" { "en" } else { "vi" };
        let bodies = self.render("sign_in", lang, minijinja::context! { link => m.link, minutes => m.minutes })?;
        let subject = if lang == "en" {
            "Your sign-in link to the console"
        } else {
            "Liên kết đăng nhập trang quản trị"
        };
        self.message(m.to, subject.to_string(), m.message_id, bodies)
    }

    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
            Err(e) => Err(MailError::Transient(e.to_string())),
        }
    }
}
