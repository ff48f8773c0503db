//! The logs of a whole flow (`coursedrop-dev demo`: order, payment, enrollment, delivery,
//! sharing, email) as JSON lines, read back: none of the configured secrets appears, nor the
//! buyer's full email address; the address appears masked, and item lines carry the order code.

use std::process::Command;

#[test]
fn a_full_flow_logs_no_secret_and_no_full_email() {
    let _one = super::browser::ONE_STACK_AT_A_TIME.blocking_lock();
    let api_key = format!("sk-live-{:016x}", rand_u64());
    let out = Command::new(env!("CARGO_BIN_EXE_coursedrop-dev"))
        .arg("demo")
        .current_dir(super::browser::workspace())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("SEPAY_API_KEY", &api_key)
        .output()
        .expect("running coursedrop-dev demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{logs}");

    let buyer = stdout
        .split_whitespace()
        .find(|w| w.starts_with("nguoi.mua.") && w.contains('@'))
        .map(|w| w.trim_end_matches([',', ';', '.']))
        .expect("the demo names its buyer");
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for message in ["order placed", "payment applied", "delivery email sent"] {
        assert!(lines.iter().any(|l| l["message"] == message), "no {message:?} line in:\n{logs}");
    }
    // Every stage logs its outcome through the one runner, in one shape.
    for stage in ["enroll", "deliver", "finalize"] {
        assert!(
            lines.iter().any(|l| l["message"] == "done" && l["stage"] == stage && l["span"]["order_code"].is_string()),
            "no \"done\" line of stage {stage} with its order code in:\n{logs}"
        );
    }

    // The secrets the flow used: the webhook's key, and the Drive OAuth client's secret and
    // refresh token (the demo signs in to the emulator as production signs in to Google).
    for secret in [api_key.as_str(), "local-secret", "emulator-refresh-token"] {
        assert!(!logs.contains(secret), "a secret is in the logs: {secret}");
    }
    assert!(!logs.contains(buyer), "the buyer's full address is in the logs");
    let local = buyer.split('@').next().unwrap();
    assert!(!logs.contains(local), "the buyer's local part is in the logs");
    let masked = format!("{}***@example.com", &buyer[..1]);
    assert!(logs.contains(&masked), "the masked address ({masked}) should be logged where the buyer is named");
    assert!(
        lines.iter().any(|l| l["span"]["order_code"].is_string() && l["span"]["item_id"].is_number()),
        "item work should log inside a span with the order code and item id"
    );
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
