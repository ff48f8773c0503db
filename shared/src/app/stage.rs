//! One way to write a stage (enroll, deliver, finalize, and any later one): a [`Stage`] does
//! its work on one item, and [`run_one`] and [`run_batch`] are the only code that turns what
//! it came to into a log line and into what the queue does with the message.
//!
//! A stage's `run` claims the item (a compare-and-set or a lease, so two runs never both do
//! the work), does the work, and records the item's transition together with the outbox rows
//! it causes in one commit (`store::items::transition*`), then publishes those rows (the
//! relay's sweep publishes any it misses). It is safe to call again for the same item at any
//! time: an item past the stage is left alone. What cannot succeed by retrying is recorded on
//! the item with [`fail`]; what can is answered [`Outcome::Retry`], and the message comes back.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::domain::{ItemStatus, Stage as StageName, Status};
use crate::store::StoreError;
use crate::store::items::{self, ItemChange};

/// What a stage's work on one item came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The item moved on (what happened, for the log).
    Done(String),
    /// Nothing to do: the item is past this stage, unknown, or its order closed.
    Skipped(String),
    /// A transient failure: the message comes back soon.
    Retry(String),
    /// Another worker holds the item under a live lease and will settle it: this message (a
    /// duplicate, or the holder's own after a crash) comes back once that lease could have
    /// run out, not every few seconds, so a long delivery does not push it to the dead-letter
    /// queue by receives alone.
    Busy(String),
    /// Worth waiting long for without spending an attempt (Drive's daily upload cap).
    Wait(String),
    /// Given up: the item is `failed` at this stage with this reason; an operator decides.
    Failed(String),
}

/// A stage of an item's way from paid to completed.
pub trait Stage: Send + Sync {
    /// Which stage this is: its failures are recorded at it, and its logs name it.
    const NAME: StageName;

    /// Claims the item, works it, and records the transition and its outbox rows in one
    /// commit. A store error is retried like [`Outcome::Retry`].
    fn run(&self, item_id: u64) -> impl Future<Output = Result<Outcome, StoreError>> + Send;
}

/// What the queue should do with the item's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done with, one way or another: delete it.
    Delete,
    /// Bring it back after the queue's retry delay.
    Retry,
    /// Bring it back after a long wait ([`Outcome::Wait`]).
    RetryLater,
    /// Bring it back once another worker's lease could have run out ([`Outcome::Busy`]).
    RetryAfterLease,
}

/// Runs `stage` on one item and says what to do with its message. Every stage's outcome is
/// logged here, the same way.
pub async fn run_one<S: Stage>(stage: &S, item_id: u64) -> Settle {
    let name = S::NAME.as_str();
    match stage.run(item_id).await {
        Ok(Outcome::Done(what)) => {
            tracing::info!(item_id, stage = name, %what, "done");
            Settle::Delete
        }
        Ok(Outcome::Skipped(why)) => {
            tracing::info!(item_id, stage = name, %why, "nothing to do");
            Settle::Delete
        }
        Ok(Outcome::Failed(reason)) => {
            tracing::error!(item_id, stage = name, %reason, "failed; the item waits for an operator");
            Settle::Delete
        }
        Ok(Outcome::Retry(reason)) => {
            tracing::warn!(item_id, stage = name, %reason, "will be retried");
            Settle::Retry
        }
        Ok(Outcome::Busy(reason)) => {
            tracing::info!(item_id, stage = name, %reason, "busy; back after the lease");
            Settle::RetryAfterLease
        }
        Ok(Outcome::Wait(reason)) => {
            tracing::info!(item_id, stage = name, %reason, "waiting");
            Settle::RetryLater
        }
        Err(e) => {
            tracing::warn!(item_id, stage = name, error = %e, "store error; the message will be retried");
            Settle::Retry
        }
    }
}

/// An SQS-triggered stage: the records of a batch worked concurrently (each item is claimed,
/// so two records for one item never both do the work), and only those worth retrying
/// reported as `BatchItemFailure`s.
pub async fn run_batch<S: Stage>(stage: &S, event: SqsEvent) -> SqsBatchResponse {
    crate::adapters::sqs_batch::handle(event, |item_id| async move { run_one(stage, item_id).await != Settle::Delete })
        .await
}

/// Records that `stage` gave up on an item in status `from`, with `reason`, by `actor`;
/// `held_by` is the worker whose lease the change needs (`None` when no lease is held). When
/// the item had moved on first, nothing is written and its status now is the answer.
pub async fn fail(
    pool: &sqlx::MySqlPool,
    item_id: u64,
    from: ItemStatus,
    stage: StageName,
    reason: &str,
    actor: &str,
    held_by: Option<&str>,
) -> Result<Result<(), ItemStatus>, StoreError> {
    let mut change = ItemChange::failure(item_id, from, stage, reason, actor);
    if let Some(worker) = held_by {
        change = change.held_by(worker);
    }
    Ok(items::transition_unless_moved(pool, &change).await?.map(|_| ()))
}
