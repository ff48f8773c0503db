//! The enroll function: one `SqsEvent` in, an `SqsBatchResponse` out listing only the
//! records worth retrying. A body that can never succeed (not JSON, no such item) is logged
//! and dropped, so one bad message never fails its batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use coursedrop::adapters::queue::Publisher;
use coursedrop::app::enrollment::{Enroll, EnrollProvider};
use coursedrop::app::stage;

/// What the function holds from its cold start: the enrollment stage and its parts.
pub type EnrollContext<P, Q> = Enroll<P, Q>;

/// Works the records of a batch concurrently through the one stage runner (each item is
/// claimed by a lease, so two records for one item cannot both call the provider).
pub async fn handle<P: EnrollProvider, Q: Publisher + Sync>(
    ctx: &EnrollContext<P, Q>,
    event: SqsEvent,
) -> SqsBatchResponse {
    stage::run_batch(ctx, event).await
}
