//! The seller's console, as use cases: staff sign-in ([`auth`]), the dashboard
//! ([`dashboard`]), orders and problems ([`orders`]), the revenue report ([`revenue`]) and the
//! actions staff take ([`actions`]). The console function parses, calls these and renders;
//! every rule (who may do what, what a refund needs, what is audited) is here or below.

pub mod actions;
pub mod auth;
pub mod dashboard;
pub mod orders;
pub mod revenue;

use std::time::Duration;

use thiserror::Error;

use crate::adapters::drive::DriveError;
use crate::adapters::mail::MailError;
use crate::adapters::source::SourceError;
use crate::app::config::{ConfigError, Vars};
use crate::app::operations::OpsError;
use crate::app::payments::AttachError;
use crate::app::payments::hold::HoldError;
use crate::app::refund::RefundError;
use crate::app::self_service::SelfServiceError;
use crate::app::sweeper::Deadlines;
use crate::domain::staff::{StaffAction, StaffRole};
use crate::store::StoreError;

/// The console's settings, read once.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// How long a sign-in link works (`CONSOLE_LINK_TTL`, default 15m).
    pub link_ttl: Duration,
    /// A session unused this long ends (`CONSOLE_SESSION_IDLE`, default 2h).
    pub session_idle: Duration,
    /// A session ends this long after sign-in whatever happens (`CONSOLE_SESSION_MAX`, 12h).
    pub session_absolute: Duration,
    /// Links asked for one address from one client in `link_window`
    /// (`CONSOLE_LINKS_PER_ADDRESS`, 5). Per client, so a stranger who knows the owner's
    /// address cannot use up the owner's own.
    pub links_per_address: i64,
    /// Links asked from one client in `link_window` (`CONSOLE_LINKS_PER_CLIENT`, 20).
    pub links_per_client: i64,
    /// Links asked for one address from all clients together in `link_window`
    /// (`CONSOLE_LINKS_PER_ADDRESS_ALL`, 30): what bounds a flood of emails to one inbox.
    pub links_per_address_all: i64,
    pub link_window: Duration,
    /// Asking for a link always takes at least this long (`CONSOLE_LINK_ANSWER_TIME`, 1s; `off`
    /// for none), so the time of the answer does not tell a staff address (a link is written
    /// and emailed) from any other.
    pub link_answer_time: Option<Duration>,
    /// When an item in a working state counts as stuck (the sweeper's deadlines).
    pub deadlines: Deadlines,
}

impl ConsoleSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let std = |d: chrono::Duration| d.to_std().unwrap_or_default();
        Ok(ConsoleSettings {
            link_ttl: std(vars.duration_or("CONSOLE_LINK_TTL", "15m")?),
            session_idle: std(vars.duration_or("CONSOLE_SESSION_IDLE", "2h")?),
            session_absolute: std(vars.duration_or("CONSOLE_SESSION_MAX", "12h")?),
            links_per_address: vars.parse_or("CONSOLE_LINKS_PER_ADDRESS", 5)?,
            links_per_client: vars.parse_or("CONSOLE_LINKS_PER_CLIENT", 20)?,
            links_per_address_all: vars.parse_or("CONSOLE_LINKS_PER_ADDRESS_ALL", 30)?,
            link_answer_time: vars.duration_or_off("CONSOLE_LINK_ANSWER_TIME", "1s")?.map(std),
            link_window: Duration::from_secs(15 * 60),
            deadlines: Deadlines::from_vars(vars)?,
        })
    }
}

/// A signed-in member of staff, as every console use case receives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub id: u64,
    pub email: String,
    pub role: StaffRole,
}

impl Staff {
    /// Who did it, in the order's events and the audit: `staff:<email>` (cut to the column's
    /// 64 characters).
    pub fn actor(&self) -> String {
        let mut actor = format!("staff:{}", self.email);
        while actor.len() > 64 {
            actor.pop();
        }
        actor
    }

    /// Refuses what the role may not do, before anything is read or changed.
    pub fn require(&self, action: StaffAction) -> Result<(), ConsoleError> {
        if self.role.may(action) { Ok(()) } else { Err(ConsoleError::Forbidden { role: self.role, action }) }
    }
}

/// Every way a console use case can fail, each with a stable [`ConsoleError::code`].
#[derive(Debug, Error)]
pub enum ConsoleError {
    #[error("a {role} may not do this ({action:?}); ask the shop's owner")]
    Forbidden { role: StaffRole, action: StaffAction },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("too many sign-in links asked for; try again in {retry_after_secs} s")]
    TooManyLinks { retry_after_secs: u64 },
    #[error("the course source: {0}")]
    Source(#[from] SourceError),
    #[error("Google Drive: {0}")]
    Drive(#[from] DriveError),
    #[error("email: {0}")]
    Mail(#[from] MailError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConsoleError {
    pub fn code(&self) -> &'static str {
        match self {
            ConsoleError::Forbidden { .. } => "forbidden",
            ConsoleError::NotFound(_) => "not_found",
            ConsoleError::Refused(_) => "refused",
            ConsoleError::Invalid { .. } => "invalid_input",
            ConsoleError::TooManyLinks { .. } => "too_many_requests",
            ConsoleError::Source(_) => "source",
            ConsoleError::Drive(_) => "drive",
            ConsoleError::Mail(_) => "mail",
            ConsoleError::Config(_) => "config",
            ConsoleError::Store(StoreError::NotFound { .. }) => "not_found",
            ConsoleError::Store(
                StoreError::ItemConflict { .. } | StoreError::OrderConflict { .. } | StoreError::PartialChange { .. },
            ) => "conflict",
            ConsoleError::Store(_) => "database",
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ConsoleError::Invalid { field, message: message.into() }
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Store(e.into())
    }
}

impl From<OpsError> for ConsoleError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(m) => ConsoleError::NotFound(m),
            OpsError::Refused(m) => ConsoleError::Refused(m),
            OpsError::Source(e) => ConsoleError::Source(e),
            OpsError::Drive(e) => ConsoleError::Drive(e),
            OpsError::Mail(e) => ConsoleError::Mail(e),
            OpsError::Store(e) => ConsoleError::Store(e),
        }
    }
}

impl From<RefundError> for ConsoleError {
    fn from(e: RefundError) -> Self {
        match e {
            RefundError::NotFound(code) => ConsoleError::NotFound(format!("no order {code}")),
            e @ RefundError::NotRefundable { .. } => ConsoleError::Refused(e.to_string()),
            RefundError::Store(e) => ConsoleError::Store(e),
        }
    }
}

impl From<SelfServiceError> for ConsoleError {
    fn from(e: SelfServiceError) -> Self {
        match e {
            SelfServiceError::Drive(e) => ConsoleError::Drive(e),
            SelfServiceError::Mail(e) => ConsoleError::Mail(e),
            SelfServiceError::Store(e) => ConsoleError::Store(e),
            SelfServiceError::Invalid(field, message) => ConsoleError::Invalid { field, message },
            e => ConsoleError::Refused(e.to_string()),
        }
    }
}

impl From<HoldError> for ConsoleError {
    fn from(e: HoldError) -> Self {
        match e {
            HoldError::NoPayment(id) => ConsoleError::NotFound(format!("no payment {id}")),
            e @ HoldError::NotHeld(_) => ConsoleError::Refused(e.to_string()),
            HoldError::Store(e) => ConsoleError::Store(e),
        }
    }
}

impl From<AttachError> for ConsoleError {
    fn from(e: AttachError) -> Self {
        match e {
            AttachError::NoPayment(id) => ConsoleError::NotFound(format!("no payment {id}")),
            AttachError::NoOrder(code) => ConsoleError::NotFound(format!("no order {code}")),
            AttachError::Store(e) => ConsoleError::Store(e),
            e => ConsoleError::Refused(e.to_string()),
        }
    }
}
