//! The finalize function: an `SqsEvent` in, an `SqsBatchResponse` out naming only the records
//! worth retrying (Drive or the SMTP server unavailable).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use coursedrop::adapters::drive::AccessToken;
use coursedrop::app::finalize::Finalize;
use coursedrop::app::stage;

/// What the function holds from its cold start: the finalize stage and its parts.
pub type FinalizeContext<T> = Finalize<T>;

/// Works the records of a batch concurrently through the one stage runner.
pub async fn handle<T: AccessToken>(ctx: &FinalizeContext<T>, event: SqsEvent) -> SqsBatchResponse {
    stage::run_batch(ctx, event).await
}
