//! The deliver job's consumer loop around `coursedrop::app::delivery` (the one-message function):
//! it long-polls the deliver queue, works up to N messages at once, heartbeats their
//! visibility, settles each, and stops cleanly on SIGTERM.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use coursedrop::adapters::drive::AccessToken;
use coursedrop::adapters::queue::{Publisher, long_poll_client};
pub use coursedrop::app::delivery::{DeliverSettings, Deliverer, Outcome};
use coursedrop::app::stage;
use tracing::Instrument;

/// How the job consumes its queue.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Messages worked at once (`DELIVER_MESSAGES_IN_FLIGHT`, default 2).
    pub max_in_flight: usize,
    /// Long-polling wait per receive, seconds (at most 20).
    pub wait_secs: i32,
    /// Visibility given on receipt and renewed by the heartbeat while a message is worked.
    pub visibility_secs: i32,
    /// When a transient failure's message comes back.
    pub retry_delay_secs: i32,
    /// When the message of an item another worker holds comes back (at least the lease's
    /// length; the visibility timeout by default).
    pub busy_delay_secs: i32,
    /// When a message paused by Drive's daily cap comes back (SQS allows 12 h at most).
    pub pause_delay_secs: i32,
    /// After a stop, how long in-flight work may finish before it is handed back.
    pub grace: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            max_in_flight: 2,
            wait_secs: 20,
            visibility_secs: 300,
            retry_delay_secs: 60,
            busy_delay_secs: 300,
            pause_delay_secs: 6 * 3600,
            grace: Duration::from_secs(90),
        }
    }
}

enum Settle {
    Delete,
    RetryIn(i32),
}

async fn settle(sqs: &aws_sdk_sqs::Client, url: &str, receipt: &str, how: Settle) {
    let result = match how {
        Settle::Delete => sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Settle::RetryIn(secs) => sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not settle a message; it will come back after its visibility timeout");
    }
}

/// Works one received message: heartbeat its visibility, deliver, settle.
async fn work_message<T: AccessToken, P: Publisher>(
    job: Arc<Deliverer<T, P>>,
    sqs: aws_sdk_sqs::Client,
    url: String,
    settings: ConsumerSettings,
    item_id: u64,
    receipt: String,
) {
    let heartbeat = {
        let (sqs, url, receipt, secs) = (sqs.clone(), url.clone(), receipt.clone(), settings.visibility_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs((secs / 2).max(1) as u64));
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = sqs
                    .change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(&receipt)
                    .visibility_timeout(secs)
                    .send()
                    .await;
            }
        })
    };
    let settled = stage::run_one(&*job, item_id).await;
    heartbeat.abort();
    let how = match settled {
        stage::Settle::Delete => Settle::Delete,
        stage::Settle::Retry => Settle::RetryIn(settings.retry_delay_secs),
        // Drive's daily cap: SQS allows at most 12 hours of invisibility.
        stage::Settle::RetryLater => Settle::RetryIn(settings.pause_delay_secs.min(43_000)),
        // The holder's lease outlives a crash by at most its length; its own message comes
        // back after the visibility timeout anyway.
        stage::Settle::RetryAfterLease => Settle::RetryIn(settings.busy_delay_secs.clamp(0, 43_000)),
    };
    settle(&sqs, &url, &receipt, how).await;
}

/// The job's loop: receive, work up to `max_in_flight` messages at once, settle each. When
/// `stop` resolves it stops receiving, lets in-flight work finish within `grace`, and hands
/// back what is left (lease cleared, message visible again at once).
pub async fn consume<T: AccessToken, P: Publisher>(
    job: Arc<Deliverer<T, P>>,
    sqs: aws_sdk_sqs::Client,
    url: String,
    settings: ConsumerSettings,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let wait = settings.wait_secs.clamp(0, 20);
    let receiver = long_poll_client(&sqs, Duration::from_secs(wait as u64));
    let mut in_flight: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    let mut working: HashMap<tokio::task::Id, (u64, String)> = HashMap::new();
    loop {
        while in_flight.len() >= settings.max_in_flight.max(1) {
            tokio::select! {
                _ = &mut stop => return shut_down(job, sqs, url, settings, in_flight, working).await,
                done = in_flight.join_next_with_id() => if let Some(Ok((id, ()))) = done { working.remove(&id); },
            }
        }
        let free = (settings.max_in_flight.max(1) - in_flight.len()).min(10) as i32;
        let receive = receiver
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(free)
            .wait_time_seconds(wait)
            .visibility_timeout(settings.visibility_secs)
            .send();
        tokio::pin!(receive);
        // A receive is never dropped while open: SQS would hand a message to it all the same,
        // and nobody would work it until its visibility timeout. On a stop, the open receive
        // ends (within the wait) while work in flight gets its grace, and what it got is made
        // visible again at once.
        let received = tokio::select! {
            r = &mut receive => r,
            _ = &mut stop => {
                let (sqs_, url_) = (sqs.clone(), url.clone());
                let release = async move {
                    for m in receive.await.map(|out| out.messages.unwrap_or_default()).unwrap_or_default() {
                        settle(&sqs_, &url_, &m.receipt_handle.unwrap_or_default(), Settle::RetryIn(0)).await;
                    }
                };
                tokio::join!(release, shut_down(job, sqs, url, settings, in_flight, working));
                return;
            }
        };
        while let Some(done) = in_flight.try_join_next_with_id() {
            if let Ok((id, ())) = done {
                working.remove(&id);
            }
        }
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for m in messages {
            let receipt = m.receipt_handle.unwrap_or_default();
            let body = m.body.unwrap_or_default();
            let Ok(message) = serde_json::from_str::<coursedrop::store::outbox::ItemMessage>(&body) else {
                tracing::error!(body = %body.chars().take(200).collect::<String>(), "dropped a message that is not {{item_id}}");
                settle(&sqs, &url, &receipt, Settle::Delete).await;
                continue;
            };
            // Every log line of the item's work carries its id, and its order code once known.
            let handle = in_flight.spawn(
                work_message(job.clone(), sqs.clone(), url.clone(), settings.clone(), message.item_id, receipt.clone())
                    .instrument(coursedrop::support::spans::item_span(message.item_id)),
            );
            working.insert(handle.id(), (message.item_id, receipt));
        }
    }
}

async fn shut_down<T: AccessToken, P: Publisher>(
    job: Arc<Deliverer<T, P>>,
    sqs: aws_sdk_sqs::Client,
    url: String,
    settings: ConsumerSettings,
    mut in_flight: tokio::task::JoinSet<()>,
    mut working: HashMap<tokio::task::Id, (u64, String)>,
) {
    tracing::info!(in_flight = in_flight.len(), "stopping: no new messages; letting work in flight finish");
    let deadline = tokio::time::sleep(settings.grace);
    tokio::pin!(deadline);
    while !in_flight.is_empty() {
        tokio::select! {
            _ = &mut deadline => break,
            done = in_flight.join_next_with_id() => if let Some(Ok((id, ()))) = done { working.remove(&id); },
        }
    }
    in_flight.abort_all();
    while let Some(done) = in_flight.join_next_with_id().await {
        // Work that finished just before the abort settled its own message.
        if let Ok((id, ())) = done {
            working.remove(&id);
        }
    }
    for (item_id, receipt) in working.into_values() {
        tracing::info!(item_id, "handing back unfinished work");
        let _ = job.hand_back(item_id).await;
        settle(&sqs, &url, &receipt, Settle::RetryIn(0)).await;
    }
}
