//! Metrics as CloudWatch Embedded Metric Format (EMF) lines: one JSON object per line whose
//! `_aws` member tells CloudWatch which fields are metrics. No API call, no client, nothing
//! to wait for: on Lambda the line goes to stdout and CloudWatch Logs extracts the metric; in
//! the ECS task it goes over TCP to the CloudWatch agent sidecar (`METRICS_ENDPOINT`), since
//! plain container logs are not parsed for EMF.
//!
//! Emitting never blocks and never fails the caller: a full or broken sink drops the line.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, sync_channel};

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "coursedrop";

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric<'a> {
    /// An item entered a status (`Status` dimension): `enrolling`, `delivered`, `completed`, …
    ItemEntered { status: &'a str },
    /// An item failed at a stage (`Stage` dimension): `enroll`, `deliver`, `finalize`.
    ItemFailed { stage: &'a str },
    /// One item's delivery finished: bytes copied and seconds taken.
    Delivered { bytes: u64, seconds: f64 },
    /// Items past their stage's deadline, counted by each sweep (the alarm's metric).
    StuckItems { count: u64 },
    /// A payment only reconciliation found (`Gateway` dimension): a webhook was missed.
    ReconciledPayment { gateway: &'a str },
    /// A bank feed's webhook refused as unauthorized (`Gateway` dimension): a wrong or rotated
    /// key refuses every payment, so this is alarmed on.
    WebhookRefused { gateway: &'a str },
    /// A bank feed's webhook answered 5xx (`Gateway` dimension): the transfer was not recorded
    /// and the feed will retry.
    WebhookFailed { gateway: &'a str },
}

/// A metric's name, unit and value in one EMF line.
type Measure = (&'static str, &'static str, Value);

impl Metric<'_> {
    /// The EMF object for this metric at `timestamp_ms`.
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let (dimension, metrics): (Option<(&str, &str)>, Vec<Measure>) = match *self {
            Metric::ItemEntered { status } => (Some(("Status", status)), vec![("ItemsEntered", "Count", json!(1))]),
            Metric::ItemFailed { stage } => (Some(("Stage", stage)), vec![("ItemFailures", "Count", json!(1))]),
            Metric::Delivered { bytes, seconds } => {
                (None, vec![("DeliveryBytes", "Bytes", json!(bytes)), ("DeliverySeconds", "Seconds", json!(seconds))])
            }
            Metric::StuckItems { count } => (None, vec![("StuckItems", "Count", json!(count))]),
            Metric::ReconciledPayment { gateway } => {
                (Some(("Gateway", gateway)), vec![("PaymentsFoundByReconciliation", "Count", json!(1))])
            }
            Metric::WebhookRefused { gateway } => {
                (Some(("Gateway", gateway)), vec![("WebhooksRefused", "Count", json!(1))])
            }
            Metric::WebhookFailed { gateway } => {
                (Some(("Gateway", gateway)), vec![("WebhookFailures", "Count", json!(1))])
            }
        };
        let dimensions: Vec<Vec<&str>> = match dimension {
            Some((name, _)) => vec![vec![name]],
            None => vec![vec![]],
        };
        let definitions: Vec<Value> = metrics.iter().map(|(n, unit, _)| json!({"Name": n, "Unit": unit})).collect();
        let mut line = Map::new();
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": dimensions, "Metrics": definitions}],
            }),
        );
        if let Some((name, value)) = dimension {
            line.insert(name.into(), json!(value));
        }
        for (name, _, value) in metrics {
            line.insert(name.into(), value);
        }
        Value::Object(line)
    }
}

/// Where lines go.
#[derive(Debug, Clone)]
pub enum Sink {
    Off,
    Stdout,
    /// A writer thread feeding a TCP endpoint (the CloudWatch agent listens on 25888), and
    /// the log group the agent is to write the lines to (`METRICS_LOG_GROUP`: the agent's
    /// permission is scoped to that one group).
    Tcp(SyncSender<String>, Option<String>),
}

impl Sink {
    /// `METRICS_ENDPOINT=tcp://host:port` → the agent; on Lambda → stdout; `METRICS=stdout`
    /// → stdout; otherwise off (a developer's terminal stays readable).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Sink {
        if let Some(endpoint) = get("METRICS_ENDPOINT").filter(|v| !v.trim().is_empty()) {
            let address = endpoint.trim().trim_start_matches("tcp://").to_string();
            let log_group = get("METRICS_LOG_GROUP").filter(|v| !v.trim().is_empty());
            return Sink::tcp(address).with_log_group(log_group);
        }
        if get("AWS_LAMBDA_RUNTIME_API").is_some() || get("METRICS").as_deref() == Some("stdout") {
            return Sink::Stdout;
        }
        Sink::Off
    }

    /// Starts the writer. It connects lazily, reconnects after an error, and drops what it
    /// cannot send: metrics are worth less than the work they describe.
    pub fn tcp(address: String) -> Sink {
        let (tx, rx) = sync_channel::<String>(1024);
        std::thread::Builder::new()
            .name("emf-writer".into())
            .spawn(move || {
                let mut stream: Option<std::net::TcpStream> = None;
                for line in rx {
                    if stream.is_none() {
                        stream = std::net::TcpStream::connect(&address).ok();
                    }
                    if let Some(s) = stream.as_mut()
                        && s.write_all(line.as_bytes()).and_then(|_| s.write_all(b"\n")).is_err()
                    {
                        stream = None;
                    }
                }
            })
            .expect("spawning the metrics writer thread");
        Sink::Tcp(tx, None)
    }

    /// The agent reads the log group from the line's `_aws.LogGroupName`.
    pub fn with_log_group(self, log_group: Option<String>) -> Sink {
        match self {
            Sink::Tcp(tx, _) => Sink::Tcp(tx, log_group),
            other => other,
        }
    }

    pub fn emit(&self, metric: &Metric<'_>) {
        if matches!(self, Sink::Off) {
            return;
        }
        let mut value = metric.to_emf(chrono::Utc::now().timestamp_millis());
        if let Sink::Tcp(_, Some(group)) = self {
            value["_aws"]["LogGroupName"] = json!(group);
        }
        let line = value.to_string();
        match self {
            Sink::Off => {}
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            // Full or writer gone: the line is dropped, never waited for.
            Sink::Tcp(tx, _) => {
                let _ = tx.try_send(line);
            }
        }
    }
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Chooses the process's sink from the environment; called by `telemetry::init`.
pub fn init() {
    let _ = SINK.get_or_init(|| Sink::from_env(|name| std::env::var(name).ok()));
}

/// Emits through the process's sink (off until [`init`]).
pub fn emit(metric: Metric<'_>) {
    if let Some(sink) = SINK.get() {
        sink.emit(&metric);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};

    use super::*;

    #[test]
    fn a_dimensioned_count_follows_the_emf_specification() {
        let line = Metric::ItemEntered { status: "delivered" }.to_emf(1_700_000_000_000);
        assert_eq!(
            line,
            json!({
                "_aws": {"Timestamp": 1_700_000_000_000i64, "CloudWatchMetrics": [{
                    "Namespace": "coursedrop", "Dimensions": [["Status"]],
                    "Metrics": [{"Name": "ItemsEntered", "Unit": "Count"}]}]},
                "Status": "delivered", "ItemsEntered": 1
            })
        );
    }

    #[test]
    fn every_declared_metric_and_dimension_has_a_value() {
        for metric in [
            Metric::ItemEntered { status: "enrolled" },
            Metric::ItemFailed { stage: "deliver" },
            Metric::Delivered { bytes: 1 << 30, seconds: 6.5 },
            Metric::StuckItems { count: 3 },
            Metric::WebhookRefused { gateway: "sepay" },
            Metric::WebhookFailed { gateway: "casso" },
        ] {
            let line = metric.to_emf(0);
            let directive = &line["_aws"]["CloudWatchMetrics"][0];
            for name in directive["Metrics"].as_array().unwrap() {
                assert!(line[name["Name"].as_str().unwrap()].is_number(), "{line}");
            }
            for set in directive["Dimensions"].as_array().unwrap() {
                for dim in set.as_array().unwrap() {
                    assert!(line[dim.as_str().unwrap()].is_string(), "{line}");
                }
            }
            assert!(!line.to_string().contains('\n'));
        }
    }

    #[test]
    fn the_tcp_sink_delivers_lines_and_survives_a_dead_endpoint() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sink = Sink::tcp(listener.local_addr().unwrap().to_string())
            .with_log_group(Some("/coursedrop/prod/deliver-metrics".into()));
        sink.emit(&Metric::StuckItems { count: 2 });
        sink.emit(&Metric::Delivered { bytes: 10, seconds: 0.5 });
        let (conn, _) = listener.accept().unwrap();
        let lines: Vec<Value> =
            BufReader::new(conn).lines().take(2).map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
        assert_eq!(lines[0]["StuckItems"], 2);
        assert_eq!(lines[0]["_aws"]["LogGroupName"], "/coursedrop/prod/deliver-metrics", "where the agent writes it");
        assert_eq!(lines[1]["DeliveryBytes"], 10);

        // Nobody listening: emitting still returns at once and does not panic.
        let dead = Sink::tcp("127.0.0.1:1".into());
        for _ in 0..5000 {
            dead.emit(&Metric::StuckItems { count: 1 });
        }
    }

    #[test]
    fn the_sink_follows_the_environment() {
        assert!(matches!(Sink::from_env(|_| None), Sink::Off));
        assert!(matches!(Sink::from_env(|k| (k == "AWS_LAMBDA_RUNTIME_API").then(|| "x".into())), Sink::Stdout));
        assert!(matches!(
            Sink::from_env(|k| (k == "METRICS_ENDPOINT").then(|| "tcp://127.0.0.1:25888".into())),
            Sink::Tcp(_, None)
        ));
    }
}
