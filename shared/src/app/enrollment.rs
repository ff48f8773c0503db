//! Enrollment: its own stage, before any delivery. An item in `enrolling` is enrolled with
//! the seller's provider; only then does it become `enrolled`, the one state the deliver job
//! claims from.

pub use crate::adapters::lms::{moodle, webhook};

use std::time::Duration;

use sqlx::MySqlPool;

use crate::adapters::queue::Publisher;
use crate::app::config::{ConfigError, Vars};
use crate::app::{relay, stage};
use crate::domain::{ItemStatus, Stage};
use crate::store::items::{self, ItemChange};
use crate::store::outbox::OutboxMessage;
use crate::store::{StoreError, leases};

const ACTOR: &str = "enroll";

pub use crate::domain::lms::{EnrollError, EnrollProvider, Enrollee};

/// The seller has no LMS: the entitlement is our own record (the item reaching `enrolled`,
/// with its event), so enrolling always succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtin;

impl EnrollProvider for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    async fn enroll(&self, _who: &Enrollee) -> Result<(), EnrollError> {
        Ok(())
    }

    /// The item's `revoked` status is the whole entitlement: nothing else to undo.
    async fn unenroll(&self, _who: &Enrollee) -> Result<(), EnrollError> {
        Ok(())
    }
}

/// The provider chosen by `ENROLL_PROVIDER`.
#[derive(Debug, Clone)]
pub enum Provider {
    Builtin(Builtin),
    Webhook(webhook::WebhookProvider),
    Moodle(moodle::MoodleProvider),
}

impl EnrollProvider for Provider {
    fn name(&self) -> &'static str {
        match self {
            Provider::Builtin(p) => p.name(),
            Provider::Webhook(p) => p.name(),
            Provider::Moodle(p) => p.name(),
        }
    }

    async fn enroll(&self, who: &Enrollee) -> Result<(), EnrollError> {
        match self {
            Provider::Builtin(p) => p.enroll(who).await,
            Provider::Webhook(p) => p.enroll(who).await,
            Provider::Moodle(p) => p.enroll(who).await,
        }
    }

    async fn unenroll(&self, who: &Enrollee) -> Result<(), EnrollError> {
        match self {
            Provider::Builtin(p) => p.unenroll(who).await,
            Provider::Webhook(p) => p.unenroll(who).await,
            Provider::Moodle(p) => p.unenroll(who).await,
        }
    }
}

impl Provider {
    /// `ENROLL_PROVIDER` = `builtin` (default) | `webhook` (`ENROLL_WEBHOOK_URL`,
    /// `ENROLL_WEBHOOK_SECRET`) | `moodle` (`MOODLE_URL`, `MOODLE_TOKEN`, `MOODLE_ROLE_ID`).
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let required = |var: &'static str| {
            vars.get(var).ok_or(ConfigError::Invalid { var, reason: "required by the chosen ENROLL_PROVIDER".into() })
        };
        match vars.string_or("ENROLL_PROVIDER", "builtin").to_ascii_lowercase().as_str() {
            "builtin" => Ok(Provider::Builtin(Builtin)),
            "webhook" => Ok(Provider::Webhook(
                webhook::WebhookProvider::new(
                    required("ENROLL_WEBHOOK_URL")?,
                    required("ENROLL_WEBHOOK_SECRET")?,
                    Duration::from_secs(10),
                )
                .with_revoke_url(vars.get("ENROLL_WEBHOOK_REVOKE_URL")),
            )),
            "moodle" => Ok(Provider::Moodle(moodle::MoodleProvider::new(
                required("MOODLE_URL")?,
                required("MOODLE_TOKEN")?,
                vars.parse_or("MOODLE_ROLE_ID", 5u32)?,
                Duration::from_secs(10),
            ))),
            other => Err(ConfigError::Invalid {
                var: "ENROLL_PROVIDER",
                reason: format!("{other:?}: expected builtin, webhook or moodle"),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollSettings {
    /// Transient failures before the item is failed (`ENROLL_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// How long one worker holds an item while it calls the provider (`ENROLL_LEASE`, 60s).
    pub lease_secs: u32,
}

impl EnrollSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let lease = vars.duration_or("ENROLL_LEASE", "60s")?;
        let max_attempts = vars.parse_or("ENROLL_MAX_ATTEMPTS", 5u32)?;
        if max_attempts == 0 {
            return Err(ConfigError::Invalid { var: "ENROLL_MAX_ATTEMPTS", reason: "must be at least 1".into() });
        }
        Ok(EnrollSettings { max_attempts, lease_secs: lease.num_seconds() as u32 })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Enrolled; the deliver message to publish.
    Enrolled { outbox: Option<OutboxMessage> },
    /// Nothing to do: the item is past enrollment (or revoked, cancelled, failed).
    AlreadyDone(ItemStatus),
    /// No such item: the message can never succeed.
    UnknownItem,
    /// Try again later (the provider's transient failure, or another worker holds it).
    Retry(String),
    /// Given up: the item is now `failed` at stage `enroll` (or, for an unenrollment, its
    /// order is flagged for an operator).
    Failed(String),
    /// A refunded item's buyer is out of the LMS.
    Unenrolled,
}

/// Takes the item for this worker, unless it is not enrolling or another holds it.
async fn claim(
    pool: &MySqlPool,
    item_id: u64,
    settings: &EnrollSettings,
    worker: &str,
) -> Result<Option<Outcome>, StoreError> {
    if leases::take(pool, item_id, ItemStatus::Enrolling, worker, settings.lease_secs).await? {
        return Ok(None);
    }
    Ok(Some(match items::status(&mut *pool.acquire().await?, item_id).await? {
        None => Outcome::UnknownItem,
        Some(ItemStatus::Enrolling) => Outcome::Retry("another worker is enrolling this item".into()),
        Some(other) => Outcome::AlreadyDone(other),
    }))
}

async fn enrollee(pool: &MySqlPool, item_id: u64) -> Result<Enrollee, StoreError> {
    let enrollee =
        items::enrollee(pool, item_id).await?.ok_or(StoreError::NotFound { kind: "item", id: item_id.to_string() })?;
    crate::support::spans::record_order_code(&enrollee.order_code);
    Ok(enrollee)
}

/// What a worker that lost its lease answers: nothing was written; the holder decides.
fn lease_lost() -> Outcome {
    Outcome::Retry("another worker holds this item's lease now".into())
}

/// Fails the item; `held_by` is the worker whose lease the change needs (`None` once the
/// lease was released).
async fn fail(pool: &MySqlPool, item_id: u64, reason: &str, held_by: Option<&str>) -> Result<Outcome, StoreError> {
    Ok(match stage::fail(pool, item_id, ItemStatus::Enrolling, Stage::Enroll, reason, ACTOR, held_by).await? {
        Ok(()) => Outcome::Failed(reason.to_string()),
        Err(ItemStatus::Enrolling) => lease_lost(),
        Err(now) => Outcome::AlreadyDone(now),
    })
}

/// Enrolls one item: claim, call the provider, record the result. Safe to call again with
/// the same item at any time: an item past `enrolling` is left alone, without calling the
/// provider.
pub async fn enroll_item<P: EnrollProvider>(
    pool: &MySqlPool,
    provider: &P,
    item_id: u64,
    settings: &EnrollSettings,
    worker: &str,
) -> Result<Outcome, StoreError> {
    if let Some(outcome) = claim(pool, item_id, settings, worker).await? {
        // A revoked item's message may ask for the reverse: looked at only then, so the
        // common path (an item to enroll) reads nothing more.
        if outcome == Outcome::AlreadyDone(ItemStatus::Revoked)
            && let Some(undone) = unenroll_if_asked(pool, provider, item_id, settings).await?
        {
            return Ok(undone);
        }
        return Ok(outcome);
    }
    let who = enrollee(pool, item_id).await?;
    match provider.enroll(&who).await {
        Ok(()) => {
            let reason = format!("enrolled by {}", provider.name());
            let change = ItemChange::new(item_id, ItemStatus::Enrolling, ItemStatus::Enrolled, ACTOR)
                .because(&reason)
                .held_by(worker);
            Ok(match items::transition_unless_moved(pool, &change).await? {
                Ok(t) => Outcome::Enrolled { outbox: t.outbox },
                // Our lease lapsed and another worker holds the item: it records the result.
                Err(ItemStatus::Enrolling) => lease_lost(),
                // Revoked while we were enrolling: the refund wins, and the enrollment we just
                // made is taken back (the refund's own unenrollment may have run before it).
                Err(ItemStatus::Revoked) => {
                    let mut tx = pool.begin().await?;
                    let asked = items::request_unenroll_in(&mut tx, item_id).await?;
                    tx.commit().await?;
                    match asked {
                        Some(_) => unenroll_if_asked(pool, provider, item_id, settings)
                            .await?
                            .unwrap_or(Outcome::AlreadyDone(ItemStatus::Revoked)),
                        None => Outcome::AlreadyDone(ItemStatus::Revoked),
                    }
                }
                Err(now) => Outcome::AlreadyDone(now),
            })
        }
        Err(EnrollError::Permanent(reason)) => {
            fail(pool, item_id, &format!("{}: {reason}", provider.name()), Some(worker)).await
        }
        Err(EnrollError::Transient(reason)) => {
            let Some(attempts) = leases::release(pool, item_id, ItemStatus::Enrolling, worker, Some(&reason)).await?
            else {
                return Ok(lease_lost());
            };
            if attempts >= settings.max_attempts {
                // Released: no lease to hold any more, so the failure is a plain compare-and-set.
                let reason = format!("{}: gave up after {attempts} attempts: {reason}", provider.name());
                fail(pool, item_id, &reason, None).await
            } else {
                Ok(Outcome::Retry(reason))
            }
        }
    }
}

/// A revoked item whose refund asked for it: the provider's unenroll, with enroll's rules
/// (transient failures retried up to the attempts, a permanent one given up at once). Given up,
/// the order is flagged for an operator: the buyer is refunded but still in the LMS. `None`
/// when the item asks for nothing of the kind.
async fn unenroll_if_asked<P: EnrollProvider>(
    pool: &MySqlPool,
    provider: &P,
    item_id: u64,
    settings: &EnrollSettings,
) -> Result<Option<Outcome>, StoreError> {
    if items::unenroll_pending(pool, item_id).await?.is_none() {
        return Ok(None);
    }
    let who = enrollee(pool, item_id).await?;
    let give_up = |reason: String| {
        format!(
            "refunded, but {} did not take {} out of {}: {reason}; remove them in the LMS by hand",
            provider.name(),
            crate::domain::mask_email(&who.email),
            who.course_slug
        )
    };
    let outcome = match provider.unenroll(&who).await {
        Ok(()) => {
            let detail = format!("unenrolled by {}", provider.name());
            items::finish_unenroll(pool, item_id, ACTOR, &detail, None).await?;
            Outcome::Unenrolled
        }
        Err(EnrollError::Permanent(reason)) => {
            let flag = give_up(reason);
            items::finish_unenroll(pool, item_id, ACTOR, &flag, Some(&flag)).await?;
            Outcome::Failed(flag)
        }
        Err(EnrollError::Transient(reason)) => {
            let attempts = items::unenroll_attempt_failed(pool, item_id, &reason).await?;
            if attempts >= settings.max_attempts {
                let flag = give_up(format!("gave up after {attempts} attempts: {reason}"));
                items::finish_unenroll(pool, item_id, ACTOR, &flag, Some(&flag)).await?;
                Outcome::Failed(flag)
            } else {
                Outcome::Retry(reason)
            }
        }
    };
    Ok(Some(outcome))
}

/// Enrollment as a [`stage::Stage`]: what it needs to enroll the item a queue message names.
pub struct Enroll<P, Q> {
    pub pool: MySqlPool,
    pub provider: P,
    pub publisher: Q,
    pub settings: EnrollSettings,
    /// Names the lease holder in the database: the Lambda's request id, or a poller's name.
    pub worker: String,
}

impl<P: EnrollProvider, Q: Publisher + Sync> stage::Stage for Enroll<P, Q> {
    const NAME: Stage = Stage::Enroll;

    async fn run(&self, item_id: u64) -> Result<stage::Outcome, StoreError> {
        let provider = self.provider.name();
        Ok(match enroll_item(&self.pool, &self.provider, item_id, &self.settings, &self.worker).await? {
            Outcome::Enrolled { outbox } => {
                relay::publish_all(&self.pool, &self.publisher, outbox.as_slice()).await;
                stage::Outcome::Done(format!("enrolled by {provider}"))
            }
            Outcome::Unenrolled => stage::Outcome::Done(format!("refunded: the buyer is out of {provider}")),
            Outcome::AlreadyDone(status) => stage::Outcome::Skipped(format!("the item is {status}, past enrollment")),
            Outcome::UnknownItem => stage::Outcome::Skipped("no such item".into()),
            Outcome::Failed(reason) => stage::Outcome::Failed(reason),
            Outcome::Retry(reason) => stage::Outcome::Retry(reason),
        })
    }
}
