//! The configuration secret, read from moto's Secrets Manager and laid over the environment.

use std::collections::HashMap;

use coursedrop::adapters::{queue::aws_sdk_config, secrets::SecretError};
use coursedrop::app::config::AppVars;

async fn put_secret(text: &str) -> String {
    let client = aws_sdk_secretsmanager::Client::new(&aws_sdk_config().await);
    let name = format!("coursedrop-test-{}", rand::random::<u64>());
    client.create_secret().name(&name).secret_string(text).send().await.expect("moto secretsmanager");
    name
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k: &str| map.get(k).cloned()
}

#[tokio::test]
async fn the_secret_is_read_once_and_wins_over_the_environment() {
    let id =
        put_secret(r#"{"SEPAY_API_KEY":"from-secret","DATABASE_URL":"mysql://app:pw@db:3306/cd","SMTP_PORT":587}"#)
            .await;
    let vars =
        AppVars::load_over(env(&[("APP_SECRET_ID", &id), ("SEPAY_API_KEY", "stray-env-value"), ("ORDER_TTL", "45m")]))
            .await
            .unwrap();
    assert_eq!(vars.get("SEPAY_API_KEY").as_deref(), Some("from-secret"));
    assert_eq!(coursedrop::app::config::database_url(&vars), "mysql://app:pw@db:3306/cd");
    assert_eq!(vars.get("SMTP_PORT").as_deref(), Some("587"));
    assert_eq!(vars.get("ORDER_TTL").as_deref(), Some("45m"), "plain settings still come from the environment");
    assert_eq!(vars.get("NOT_SET"), None);

    // Deleting the secret changes nothing for a process that already started: it was read once.
    let client = aws_sdk_secretsmanager::Client::new(&aws_sdk_config().await);
    client.delete_secret().secret_id(&id).force_delete_without_recovery(true).send().await.unwrap();
    assert_eq!(vars.get("SEPAY_API_KEY").as_deref(), Some("from-secret"));
}

#[tokio::test]
async fn without_a_secret_id_only_the_environment_counts() {
    let vars = AppVars::load_over(env(&[("SEPAY_API_KEY", "env-key")])).await.unwrap();
    assert_eq!(vars.get("SEPAY_API_KEY").as_deref(), Some("env-key"));
}

#[tokio::test]
async fn a_missing_or_malformed_secret_fails_the_start() {
    let err = AppVars::load_over(env(&[("APP_SECRET_ID", "no-such-secret-anywhere")])).await.err().unwrap();
    assert!(matches!(err, SecretError::Fetch { .. }) && err.to_string().contains("no-such-secret-anywhere"), "{err}");

    let id = put_secret(r#"{"DRIVE":{"nested":true}}"#).await;
    let err = AppVars::load_over(env(&[("APP_SECRET_ID", &id)])).await.err().unwrap();
    assert!(matches!(err, SecretError::Shape { .. }), "{err}");
}

/// Several secrets, comma-separated, as the template gives each function only what it needs:
/// all are read, and a later one wins over an earlier one.
#[tokio::test]
async fn several_secrets_are_merged_in_order() {
    let base = put_secret(r#"{"DATABASE_URL":"mysql://app:pw@db:3306/cd","SEPAY_API_KEY":"old"}"#).await;
    let payments = put_secret(r#"{"SEPAY_API_KEY":"from-payments","CASSO_CHECKSUM_KEY":"k"}"#).await;
    let list = format!("{base}, {payments}");
    let vars = AppVars::load_over(env(&[("APP_SECRET_ID", &list)])).await.unwrap();
    assert_eq!(coursedrop::app::config::database_url(&vars), "mysql://app:pw@db:3306/cd");
    assert_eq!(vars.get("SEPAY_API_KEY").as_deref(), Some("from-payments"));
    assert_eq!(vars.get("CASSO_CHECKSUM_KEY").as_deref(), Some("k"));
    let missing = format!("{base},no-such-secret-anywhere");
    assert!(AppVars::load_over(env(&[("APP_SECRET_ID", &missing)])).await.is_err(), "every one must be readable");
}
