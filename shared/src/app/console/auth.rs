//! Who gets in: a one-time link by email, then a server-side session.
//!
//! Asking for a link answers the same whether or not the address is staff, so the form tells
//! a stranger nothing. The link's token and the session's id are random 256-bit secrets the
//! database keeps only as hashes; a link works once, for [`ConsoleSettings::link_ttl`]; a
//! session ends when idle, at its absolute limit, at sign-out, or at once when the account is
//! disabled.

use sqlx::MySqlPool;

use super::{ConsoleError, ConsoleSettings, Staff};
use crate::adapters::mail::{Mailer, SignInMail};
use crate::domain::Email;
use crate::domain::staff::{Secret, fingerprint};
use crate::store::staff::{self as stored, StaffMember};

/// Asks for a sign-in link for `address` from `client` (the caller's IP, or anything that
/// names the client). The link is `{console_url}/sign-in/{token}`. `Ok` means "if this
/// address is staff, a link is on its way", for staff and anyone else alike: in the answer,
/// in its time (at least [`ConsoleSettings::link_answer_time`]) and when the mail fails (it
/// is logged, not answered). Only a malformed address or a limit is answered otherwise.
pub async fn request_link(
    pool: &MySqlPool,
    mailer: &Mailer,
    settings: &ConsoleSettings,
    address: &str,
    client: &str,
    console_url: &str,
    lang: &str,
) -> Result<(), ConsoleError> {
    let started = tokio::time::Instant::now();
    let email = Email::parse(address).map_err(|e| ConsoleError::invalid("email", e.to_string()))?;
    let recent = stored::record_and_count_request(
        pool,
        &fingerprint(email.as_str()),
        &fingerprint(client),
        settings.link_window,
    )
    .await?;
    if recent.for_address_from_client > settings.links_per_address
        || recent.from_client > settings.links_per_client
        || recent.for_address > settings.links_per_address_all
    {
        return Err(ConsoleError::TooManyLinks { retry_after_secs: settings.link_window.as_secs() });
    }
    if let Err(e) = send_link_if_staff(pool, mailer, settings, &email, console_url, lang).await {
        tracing::error!(error = %e, "a sign-in link could not be sent");
    }
    if let Some(floor) = settings.link_answer_time {
        tokio::time::sleep_until(started + floor).await;
    }
    Ok(())
}

async fn send_link_if_staff(
    pool: &MySqlPool,
    mailer: &Mailer,
    settings: &ConsoleSettings,
    email: &Email,
    console_url: &str,
    lang: &str,
) -> Result<(), ConsoleError> {
    let Some(member) = stored::active_by_email(pool, email.as_str()).await? else {
        tracing::info!("sign-in link asked for an address that is not staff");
        return Ok(());
    };
    let token = Secret::generate();
    stored::insert_link(pool, &token.digest(), member.id, settings.link_ttl).await?;
    let link = format!("{}/sign-in/{}", console_url.trim_end_matches('/'), token.expose());
    let message_id = mailer.new_message_id(&format!("sign-in.{}", member.id));
    let mail = SignInMail {
        to: &member.email,
        lang,
        link: &link,
        minutes: settings.link_ttl.as_secs().div_ceil(60),
        message_id: &message_id,
    };
    mailer.send(mailer.sign_in(&mail)?).await?;
    tracing::info!(staff_id = member.id, "sign-in link sent");
    Ok(())
}

/// A session just begun: the cookie's value and the form token, handed to the browser once.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Secret,
    pub csrf: Secret,
    pub staff: Staff,
}

fn staff_of(m: StaffMember) -> Staff {
    Staff { id: m.id, email: m.email, role: m.role }
}

/// Uses a link: a new session for its account, or `None` when the link is unknown, used,
/// expired or its account disabled (one answer for all, so a guess learns nothing). The
/// session `replacing` (the cookie the browser already had) ends: the id changes at sign-in.
pub async fn redeem(
    pool: &MySqlPool,
    token: &str,
    replacing: Option<&str>,
) -> Result<Option<NewSession>, ConsoleError> {
    let Some(token) = Secret::from_presented(token) else { return Ok(None) };
    let Some(member) = stored::redeem_link(pool, &token.digest()).await? else { return Ok(None) };
    if let Some(old) = replacing.and_then(Secret::from_presented) {
        stored::end_session(pool, &old.digest()).await?;
    }
    let id = Secret::generate();
    let csrf = Secret::generate();
    stored::create_session(pool, &id.digest(), member.id, csrf.expose()).await?;
    let staff = staff_of(member);
    stored::audit(&mut *pool.acquire().await?, &staff.actor(), "staff.sign_in", None, None).await?;
    Ok(Some(NewSession { id, csrf, staff }))
}

/// The session a request's cookie names, if it is live.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub staff: Staff,
    /// The form token this session's state-changing requests must carry.
    pub csrf: String,
}

pub async fn session(
    pool: &MySqlPool,
    settings: &ConsoleSettings,
    cookie: &str,
) -> Result<Option<LiveSession>, ConsoleError> {
    let Some(id) = Secret::from_presented(cookie) else { return Ok(None) };
    let found = stored::live_session(pool, &id.digest(), settings.session_idle, settings.session_absolute).await?;
    Ok(found.map(|s| LiveSession { staff: Staff { id: s.staff_id, email: s.email, role: s.role }, csrf: s.csrf_token }))
}

pub async fn sign_out(pool: &MySqlPool, cookie: &str) -> Result<(), ConsoleError> {
    if let Some(id) = Secret::from_presented(cookie) {
        stored::end_session(pool, &id.digest()).await?;
    }
    Ok(())
}

/// Whether a submitted form token is the session's, in constant time.
pub fn csrf_ok(session: &LiveSession, submitted: Option<&str>) -> bool {
    let Some(submitted) = submitted else { return false };
    Secret::from_presented(&session.csrf).is_some_and(|s| s.matches(submitted))
}

// ------------------------------------------------------------------ staff accounts (CLI)

/// Adds a member of staff, or gives a disabled account back (`coursedrop-admin staff add`).
pub async fn add_staff(
    pool: &MySqlPool,
    email: &str,
    role: crate::domain::staff::StaffRole,
    actor: &str,
) -> Result<StaffMember, ConsoleError> {
    let email = Email::parse(email).map_err(|e| ConsoleError::invalid("email", e.to_string()))?;
    stored::add(pool, email.as_str(), role, actor)
        .await?
        .ok_or_else(|| ConsoleError::Refused(format!("{email} is staff already; `staff set-role` changes the role")))
}

/// Changes a member of staff's role (`coursedrop-admin staff set-role`).
pub async fn set_role(
    pool: &MySqlPool,
    email: &str,
    role: crate::domain::staff::StaffRole,
    actor: &str,
) -> Result<(), ConsoleError> {
    let email = Email::parse(email).map_err(|e| ConsoleError::invalid("email", e.to_string()))?;
    if stored::set_role(pool, email.as_str(), role, actor).await? {
        Ok(())
    } else {
        Err(ConsoleError::NotFound(format!("no active staff account {email}")))
    }
}

pub async fn list_staff(pool: &MySqlPool) -> Result<Vec<StaffMember>, ConsoleError> {
    Ok(stored::list(pool).await?)
}

/// Disables an account; its sessions and unused links end at once.
pub async fn disable_staff(pool: &MySqlPool, email: &str, actor: &str) -> Result<(), ConsoleError> {
    let email = Email::parse(email).map_err(|e| ConsoleError::invalid("email", e.to_string()))?;
    if stored::disable(pool, email.as_str(), actor).await? {
        Ok(())
    } else {
        Err(ConsoleError::NotFound(format!("no active staff account {email}")))
    }
}

/// What staff did outside orders, newest first (owner only: it names the staff).
pub async fn audit_log(pool: &MySqlPool, staff: &Staff, limit: u32) -> Result<Vec<stored::AuditEntry>, ConsoleError> {
    staff.require(crate::domain::staff::StaffAction::Staff)?;
    Ok(stored::audit_recent(pool, limit).await?)
}
