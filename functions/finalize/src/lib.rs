//! The finalize function: an `SqsEvent` in, an `SqsBatchResponse` out naming only the records
//! worth retrying (Drive or the SMTP server unavailable).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use coursedrop::drive::AccessToken;
use coursedrop::drive::upload::DriveClient;
use coursedrop::finalize::{self, Outcome};
use coursedrop::mail::Mailer;

pub struct FinalizeContext<T> {
    pub pool: sqlx::MySqlPool,
    pub drive: DriveClient<T>,
    pub mailer: Mailer,
}

pub async fn handle<T: AccessToken>(ctx: &FinalizeContext<T>, event: SqsEvent) -> SqsBatchResponse {
    coursedrop::adapters::sqs_batch::handle(event, |item_id| handle_item(ctx, item_id)).await
}

async fn handle_item<T: AccessToken>(ctx: &FinalizeContext<T>, item_id: u64) -> bool {
    match finalize::finalize_item(&ctx.pool, &ctx.drive, &ctx.mailer, item_id).await {
        Ok(Outcome::Completed { order_completed }) => {
            tracing::info!(item_id, order_completed, "shared, emailed, completed");
            false
        }
        Ok(Outcome::Retry(reason)) => {
            tracing::warn!(item_id, %reason, "finalize will be retried");
            true
        }
        Ok(Outcome::Failed(reason)) => {
            tracing::error!(item_id, %reason, "finalize failed; the item waits for an operator");
            false
        }
        Ok(other) => {
            tracing::info!(item_id, outcome = ?other, "nothing to do");
            false
        }
        Err(e) => {
            tracing::warn!(item_id, error = %e, "store error; the message will be retried");
            true
        }
    }
}
