//! The delivery email: rendered from the templates in `shared/templates/` (Vietnamese and
//! English, HTML with a plain-text alternative) and sent over SMTP with lettre.
//!
//! The Message-ID is chosen by the caller and stored before sending, so a re-send after a
//! crash carries the same id and mail clients fold the two.

use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Mailbox, MultiPart, SinglePart, header};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use thiserror::Error;

use crate::config::{ConfigError, Vars};

const TEMPLATES: &[(&str, &str)] = &[
    ("delivery.vi.txt", include_str!("../templates/delivery.vi.txt.j2")),
    ("delivery.vi.html", include_str!("../templates/delivery.vi.html.j2")),
    ("delivery.en.txt", include_str!("../templates/delivery.en.txt.j2")),
    ("delivery.en.html", include_str!("../templates/delivery.en.html.j2")),
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

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    support: String,
    templates: minijinja::Environment<'static>,
}

impl Mailer {
    /// `SMTP_URL` (`smtp://host:port` plain, `smtp://…?tls=required` STARTTLS, `smtps://…`
    /// TLS; user and password in the URL; default the local sink), `MAIL_FROM`,
    /// `SUPPORT_CONTACT`.
    pub fn from_vars<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let url = vars.string_or("SMTP_URL", "smtp://127.0.0.1:1025");
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| ConfigError::Invalid { var: "SMTP_URL", reason: e.to_string() })?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        let from: Mailbox = vars.string_or("MAIL_FROM", "coursedrop <no-reply@coursedrop.local>").parse().map_err(
            |e: lettre::address::AddressError| ConfigError::Invalid { var: "MAIL_FROM", reason: e.to_string() },
        )?;
        let support = vars.string_or("SUPPORT_CONTACT", "support@coursedrop.local");
        let mut templates = minijinja::Environment::new();
        templates.set_auto_escape_callback(|name| {
            if name.ends_with(".html") { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None }
        });
        for (name, source) in TEMPLATES {
            templates.add_template(name, source).expect("the bundled templates parse");
        }
        Ok(Mailer { transport, from, support, templates })
    }

    pub fn from_address(&self) -> &Mailbox {
        &self.from
    }

    /// The delivery email, in the order's language (Vietnamese unless `en`).
    pub fn delivery(&self, m: &DeliveryMail<'_>) -> Result<Message, MailError> {
        let lang = if m.lang == "en" { "en" } else { "vi" };
        let context =
            minijinja::context! { title => m.title, code => m.code, link => m.link, support => &self.support };
        let render = |kind: &str| {
            self.templates
                .get_template(&format!("delivery.{lang}.{kind}"))
                .and_then(|t| t.render(&context))
                .map_err(|e| MailError::Permanent(format!("template: {e}")))
        };
        let subject = if lang == "en" {
            format!("Your course \"{}\" is ready ({})", m.title, m.code)
        } else {
            format!("Khoá học \"{}\" của bạn đã sẵn sàng ({})", m.title, m.code)
        };
        let to: Mailbox =
            m.to.parse().map_err(|e: lettre::address::AddressError| MailError::Permanent(format!("{}: {e}", m.to)))?;
        // Base64 for both parts: safe for any relay, whatever the language.
        let part = |content_type: header::ContentType, body: String| {
            SinglePart::builder().header(content_type).header(ContentTransferEncoding::Base64).body(body)
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(m.message_id.to_string()))
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(header::ContentType::TEXT_PLAIN, render("txt")?))
                    .singlepart(part(header::ContentType::TEXT_HTML, render("html")?)),
            )
            .map_err(|e| MailError::Permanent(e.to_string()))
    }

    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
            Err(e) => Err(MailError::Transient(e.to_string())),
        }
    }
}
