//! The finalize function: an `SqsEvent` in, an `SqsBatchResponse` out naming only the records
//! worth retrying (Drive or the SMTP server unavailable).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use coursedrop::adapters::drive::AccessToken;
use coursedrop::adapters::drive::upload::DriveClient;
use coursedrop::adapters::mail::Mailer;
use coursedrop::app::finalize::Finalize;
use coursedrop::app::stage;

pub struct FinalizeContext<T> {
    pub pool: sqlx::MySqlPool,
    pub drive: DriveClient<T>,
    pub mailer: Mailer,
}

/// Works the records of a batch concurrently through the one stage runner.
pub async fn handle<T: AccessToken>(ctx: &FinalizeContext<T>, event: SqsEvent) -> SqsBatchResponse {
    let finalize = Finalize { pool: &ctx.pool, drive: &ctx.drive, mailer: &ctx.mailer };
    stage::run_batch(&finalize, event).await
}
