//! A pass on a period until told to stop: the scheduled functions (sweeper, reconciler) when
//! they run outside Lambda, and the local stack's loops. On Lambda, EventBridge is the clock.

use std::future::Future;
use std::time::Duration;

/// Runs `pass` now and then every `period` until `stop` completes. A pass that takes longer
/// than the period delays the next, never overlaps it; `stop` is heeded between passes.
pub async fn every<F, Fut>(period: Duration, stop: impl Future<Output = ()>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => pass().await,
        }
    }
}
