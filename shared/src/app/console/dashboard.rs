//! The dashboard: what the seller looks at first. Money in today, this week and this month,
//! what is waiting to be paid, how fast buyers get their email, and what needs a hand.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sqlx::MySqlPool;

use super::ConsoleError;
use crate::app::sweeper;
use crate::domain::{percentile, vietnam_date, vietnam_midnight};
use crate::store::console::{self as stored, FeedPass, ProblemCounts, Takings};

/// A dead-letter queue's depth, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueDepth {
    pub queue: String,
    /// `None`: SQS did not answer.
    pub messages: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayValue {
    pub day: NaiveDate,
    pub value: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub today: Takings,
    pub last_7_days: Takings,
    pub last_30_days: Takings,
    pub pending: Takings,
    /// Orders placed in the last 30 days, and how many of them were paid.
    pub placed_30_days: i64,
    pub paid_of_placed_30_days: i64,
    /// Seconds from payment to the buyer's email, over the items emailed in 30 days.
    pub delivery_p50_secs: Option<i64>,
    pub delivery_p95_secs: Option<i64>,
    pub delivered_30_days: usize,
    pub stuck_items: usize,
    pub problems: ProblemCounts,
    pub feeds: Vec<FeedPass>,
    pub dead_letters: Vec<QueueDepth>,
    /// Revenue per Vietnam day, the last 30 days, oldest first (days without sales are 0).
    pub revenue_by_day: Vec<DayValue>,
    /// The median seconds from payment to email per Vietnam day the item was paid.
    pub delivery_by_day: Vec<DayValue>,
}

impl Dashboard {
    /// Paid orders out of those placed, in percent.
    pub fn conversion_percent(&self) -> Option<f64> {
        (self.placed_30_days > 0).then(|| 100.0 * self.paid_of_placed_30_days as f64 / self.placed_30_days as f64)
    }
}

/// The most items the delivery-time figures look at (the newest).
const DELIVERY_SAMPLE: u32 = 20_000;

pub async fn dashboard(
    pool: &MySqlPool,
    deadlines: &sweeper::Deadlines,
    dead_letters: Vec<QueueDepth>,
    now: DateTime<Utc>,
) -> Result<Dashboard, ConsoleError> {
    let today = vietnam_date(now);
    let start = |days_back: i64| vietnam_midnight(today - Duration::days(days_back));
    // Independent reads, side by side (as many at once as the pool has connections).
    let starts = [start(0), start(6), start(29)];
    let (takings, (placed, paid), times, paid_orders, pending, stuck, problems, feeds) = tokio::try_join!(
        stored::takings_since(pool, &starts),
        stored::conversion_since(pool, start(29)),
        stored::delivery_times(pool, start(29), DELIVERY_SAMPLE),
        stored::paid_since(pool, start(29)),
        stored::pending(pool),
        sweeper::stuck_items(pool, deadlines),
        stored::problem_counts(pool),
        stored::reconcile_passes(pool),
    )?;
    let mut secs: Vec<i64> = times.iter().map(|(_, s)| (*s).max(0)).collect();
    secs.sort_unstable();

    let days: Vec<NaiveDate> = (0..30).rev().map(|back| today - Duration::days(back)).collect();
    let mut revenue = vec![0i64; days.len()];
    for (paid_at, total) in paid_orders {
        if let Some(i) = days.iter().position(|d| *d == vietnam_date(paid_at)) {
            revenue[i] += total;
        }
    }
    let mut per_day: Vec<Vec<i64>> = vec![Vec::new(); days.len()];
    for (paid_at, s) in &times {
        if let Some(i) = days.iter().position(|d| *d == vietnam_date(*paid_at)) {
            per_day[i].push((*s).max(0));
        }
    }
    let delivery_by_day = days
        .iter()
        .zip(per_day.iter_mut())
        .map(|(day, v)| {
            v.sort_unstable();
            DayValue { day: *day, value: percentile(v, 0.5).unwrap_or(0) }
        })
        .collect();

    Ok(Dashboard {
        today: takings[0],
        last_7_days: takings[1],
        last_30_days: takings[2],
        pending,
        placed_30_days: placed,
        paid_of_placed_30_days: paid,
        delivery_p50_secs: percentile(&secs, 0.5),
        delivery_p95_secs: percentile(&secs, 0.95),
        delivered_30_days: secs.len(),
        stuck_items: stuck.len(),
        problems,
        feeds,
        dead_letters,
        revenue_by_day: days.iter().zip(revenue).map(|(day, value)| DayValue { day: *day, value }).collect(),
        delivery_by_day,
    })
}
