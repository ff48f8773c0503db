//! Configuration from the environment, read once at start.
//!
//! Every variable has a local default so `make dev` and the tests run with nothing set;
//! production sets them (and secrets) explicitly. Reading goes through a lookup function so
//! tests can supply variables without touching the process environment.

use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

mod adapters;
mod routes;
pub use adapters::{connect_database, sqs_publisher};
pub use routes::{payment_routes, payos_api, sepay_va, shop_url};

use crate::domain::{CodeCharset, CodePattern, CodePatternError};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is not valid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// The configuration's raw values, read once at start (the environment overlaid with the
/// secrets, or a test's own), with typed access. One concrete type, cheap to clone: what the
/// readers in this module turn into each part's settings.
#[derive(Clone)]
pub struct Vars(Arc<Lookup>);

/// A variable's value by its name.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Vars {
    /// Values from `lookup`.
    pub fn new(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Vars(Arc::new(lookup))
    }

    /// The process environment.
    pub fn process() -> Self {
        Vars::new(|name| std::env::var(name).ok())
    }

    /// These values with `over`'s on top: where `over` answers, it wins.
    pub fn with(&self, over: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        let under = self.0.clone();
        Vars::new(move |name| over(name).or_else(|| under(name)))
    }
}

impl Vars {
    /// The variable's value, or `None` when it is unset or empty.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    pub fn string_or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_string())
    }

    /// A duration such as `30m` (see [`parse_duration`]), or `None` when unset.
    pub fn duration(&self, var: &'static str) -> Result<Option<chrono::Duration>, ConfigError> {
        self.get(var).map(|v| parse_duration(&v).map_err(|reason| ConfigError::Invalid { var, reason })).transpose()
    }

    /// A duration that may be switched off: `off` (or a zero such as `0s`) is `None`;
    /// unset is `default`.
    pub fn duration_or_off(&self, var: &'static str, default: &str) -> Result<Option<chrono::Duration>, ConfigError> {
        let value = self.string_or(var, default);
        let zero = value.trim_end_matches(|c: char| c.is_ascii_alphabetic()).trim().parse::<i64>() == Ok(0);
        if value.eq_ignore_ascii_case("off") || zero {
            return Ok(None);
        }
        parse_duration(&value).map(Some).map_err(|reason| ConfigError::Invalid { var, reason })
    }

    /// [`Vars::duration`] with a default written the same way (`"60s"`).
    pub fn duration_or(&self, var: &'static str, default: &str) -> Result<chrono::Duration, ConfigError> {
        parse_duration(&self.string_or(var, default)).map_err(|reason| ConfigError::Invalid { var, reason })
    }

    pub fn parse_or<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid { var, reason: format!("{v:?}: {e}") }),
        }
    }
}

/// Variables as every binary reads them: the environment, overlaid with the Secrets Manager
/// secrets named by `APP_SECRET_ID` (one, or several separated by commas) when that is set.
pub type AppVars = Vars;

impl AppVars {
    /// Reads the secret (if any) once; call it at cold start. A secret that cannot be read
    /// fails the start: running with half a configuration would only fail later and worse.
    pub async fn load() -> Result<Self, crate::adapters::secrets::SecretError> {
        Self::load_over(|name| std::env::var(name).ok()).await
    }

    /// [`AppVars::load`] over any lookup instead of the process environment. The secret's
    /// values win over the lookup's, so a stray variable cannot shadow a rotated secret.
    pub async fn load_over(
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Self, crate::adapters::secrets::SecretError> {
        // A comma-separated list: each function reads only the secrets its work needs (the
        // public create-order never the payment, Drive or LMS credentials). Later ones win.
        // Last, `DATABASE_SECRET_ID`: the function's own database user and password
        // (DATABASE_USER, DATABASE_PASSWORD; infra/db-users.sql says what each may do).
        let ids: Vec<String> = [env("APP_SECRET_ID"), env("DATABASE_SECRET_ID")]
            .into_iter()
            .flatten()
            .flat_map(|s| s.split(',').map(|id| id.trim().to_string()).collect::<Vec<_>>())
            .filter(|id| !id.is_empty())
            .collect();
        let mut secret = std::collections::HashMap::new();
        for id in &ids {
            let values = crate::adapters::secrets::fetch_secret(id).await?;
            // Names only: the values are the secrets.
            let mut names: Vec<&str> = values.keys().map(String::as_str).collect();
            names.sort_unstable();
            tracing::info!(secret = %id, variables = ?names, "configuration secret loaded");
            secret.extend(values);
        }
        Ok(Vars::new(move |name| secret.get(name).cloned().or_else(|| env(name))))
    }
}

pub const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/coursedrop";

pub fn database_url(vars: &Vars) -> String {
    vars.string_or("DATABASE_URL", DEFAULT_DATABASE_URL)
}

/// The SePay payment-code pattern: `ORDER_CODE_PREFIX` (default `CD`),
/// `ORDER_CODE_SUFFIX_MIN`/`_MAX` (6/10, as configured in SePay), `ORDER_CODE_LENGTH`
/// (8, the suffix length we generate) and `ORDER_CODE_CHARSET` (`digits` or `alphanumeric`).
pub fn code_pattern(vars: &Vars) -> Result<CodePattern, ConfigError> {
    let charset = match vars.string_or("ORDER_CODE_CHARSET", "digits").to_ascii_lowercase().as_str() {
        "digits" => CodeCharset::Digits,
        "alphanumeric" => CodeCharset::Alphanumeric,
        other => {
            return Err(ConfigError::Invalid {
                var: "ORDER_CODE_CHARSET",
                reason: format!("{other:?}: expected digits or alphanumeric"),
            });
        }
    };
    let prefix = vars.string_or("ORDER_CODE_PREFIX", "CD");
    let min = vars.parse_or("ORDER_CODE_SUFFIX_MIN", 6usize)?;
    let max = vars.parse_or("ORDER_CODE_SUFFIX_MAX", 10usize)?;
    let len = vars.parse_or("ORDER_CODE_LENGTH", 8usize)?;
    CodePattern::new(&prefix, min, max, len, charset).map_err(|e| {
        let var = match e {
            CodePatternError::Prefix => "ORDER_CODE_PREFIX",
            CodePatternError::SuffixBounds => "ORDER_CODE_SUFFIX_MIN",
            CodePatternError::GeneratedLength => "ORDER_CODE_LENGTH",
        };
        ConfigError::Invalid { var, reason: e.to_string() }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_duration_can_be_switched_off() {
        let v = |value: &'static str| Vars::new(move |_: &str| Some(value.to_string()));
        assert_eq!(v("off").duration_or_off("X", "30m"), Ok(None));
        assert_eq!(v("0s").duration_or_off("X", "30m"), Ok(None));
        assert_eq!(v("45m").duration_or_off("X", "30m"), Ok(Some(chrono::Duration::minutes(45))));
        assert_eq!(Vars::new(|_: &str| None).duration_or_off("X", "30m"), Ok(Some(chrono::Duration::minutes(30))));
        assert!(v("soon").duration_or_off("X", "30m").is_err());
    }

    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Vars::new(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let v = vars(&[("DATABASE_URL", "  ")]);
        assert_eq!(database_url(&v), DEFAULT_DATABASE_URL);
        let p = code_pattern(&v).unwrap();
        assert_eq!(p.prefix(), "CD");
        assert_eq!(p.charset(), CodeCharset::Digits);
    }

    #[test]
    fn pattern_follows_the_environment() {
        let v = vars(&[
            ("ORDER_CODE_PREFIX", "dh"),
            ("ORDER_CODE_CHARSET", "Alphanumeric"),
            ("ORDER_CODE_SUFFIX_MIN", "3"),
            ("ORDER_CODE_SUFFIX_MAX", "6"),
            ("ORDER_CODE_LENGTH", "5"),
        ]);
        let p = code_pattern(&v).unwrap();
        assert_eq!(p.prefix(), "DH");
        assert_eq!(p.charset(), CodeCharset::Alphanumeric);
    }

    #[test]
    fn durations_are_read_unset_set_or_refused_by_name() {
        let v = vars(&[("DEADLINE_ENROLLED", "45s"), ("DEADLINE_DELIVERED", "soon")]);
        assert_eq!(v.duration("DEADLINE_ENROLLING").unwrap(), None);
        assert_eq!(v.duration("DEADLINE_ENROLLED").unwrap(), Some(chrono::Duration::seconds(45)));
        let err = v.duration("DEADLINE_DELIVERED").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { var: "DEADLINE_DELIVERED", .. }), "{err}");
        assert_eq!(v.duration_or("SWEEP_INTERVAL", "10s").unwrap(), chrono::Duration::seconds(10));
    }

    #[test]
    fn a_huge_duration_is_refused_by_name_not_a_panic() {
        for huge in ["9999999999999999d", "9223372036854775807s", "106752d", "99999999999999999999m"] {
            let err = vars(&[("ORDER_TTL", huge)]).duration_or("ORDER_TTL", "30m").unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { var: "ORDER_TTL", .. }), "{huge}: {err}");
        }
        assert_eq!(parse_duration("3650d"), Ok(chrono::Duration::days(3650)));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = code_pattern(&vars(&[("ORDER_CODE_LENGTH", "eight")])).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { var: "ORDER_CODE_LENGTH", .. }), "{err}");
        let err = code_pattern(&vars(&[("ORDER_CODE_CHARSET", "hex")])).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { var: "ORDER_CODE_CHARSET", .. }), "{err}");
        let err = code_pattern(&vars(&[("ORDER_CODE_LENGTH", "20")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ORDER_CODE_LENGTH is not valid: the generated suffix length must lie between the minimum and the maximum"
        );
    }
}

pub use crate::domain::transfer::BankAccount;

pub fn bank_account(vars: &Vars) -> Result<BankAccount, ConfigError> {
    let bank = BankAccount {
        bank_code: vars.string_or("BANK_CODE", "MBBank"),
        bank_bin: vars.string_or("BANK_BIN", "970422"),
        account_number: vars.string_or("BANK_ACCOUNT_NUMBER", "0123456789"),
        account_name: vars.string_or("BANK_ACCOUNT_NAME", "COURSEDROP DEMO"),
    };
    if bank.bank_bin.len() != 6 || !bank.bank_bin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::Invalid { var: "BANK_BIN", reason: "must be the bank's 6-digit BIN".into() });
    }
    if bank.account_number.is_empty() || !bank.account_number.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ConfigError::Invalid { var: "BANK_ACCOUNT_NUMBER", reason: "must be letters and digits".into() });
    }
    Ok(bank)
}

/// A duration such as `30m`, `2h`, `45s`, `1d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = number.parse().map_err(|_| format!("{s:?}: expected a number with s, m, h or d"))?;
    let per_unit = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{s:?}: unknown unit {other:?}; use s, m, h or d")),
    };
    // Ten years at most: every duration here is added to a time, and a sum past the calendar
    // would panic where it is used instead of here, by name.
    const LONGEST_SECS: i64 = 3650 * 86_400;
    let seconds = n.checked_mul(per_unit).filter(|s| *s <= LONGEST_SECS);
    match seconds {
        None => Err(format!("{s:?}: too long; at most 3650d")),
        Some(seconds) if seconds <= 0 => Err(format!("{s:?}: must be positive")),
        Some(seconds) => Ok(chrono::Duration::seconds(seconds)),
    }
}

/// How long an unpaid order waits for its transfer: `ORDER_TTL`, default 30 minutes.
pub fn order_ttl(vars: &Vars) -> Result<chrono::Duration, ConfigError> {
    vars.duration_or("ORDER_TTL", "30m")
}

/// The webhook's authentication: `SEPAY_AUTH` = `apikey` (default, with `SEPAY_API_KEY`)
/// or `hmac` (with `SEPAY_HMAC_SECRET`). With the chosen key unset, every request is refused.
pub fn webhook_auth(vars: &Vars) -> Result<crate::adapters::sepay::WebhookAuth, ConfigError> {
    use crate::adapters::sepay::WebhookAuth;
    let mode = vars.string_or("SEPAY_AUTH", "apikey").to_ascii_lowercase();
    Ok(match mode.as_str() {
        "apikey" => match vars.get("SEPAY_API_KEY") {
            Some(key) => WebhookAuth::ApiKey(key),
            None => WebhookAuth::Unconfigured { reason: "SEPAY_AUTH=apikey but SEPAY_API_KEY is not set".into() },
        },
        "hmac" => match vars.get("SEPAY_HMAC_SECRET") {
            Some(secret) => WebhookAuth::Hmac { secret, tolerance_secs: 300 },
            None => WebhookAuth::Unconfigured { reason: "SEPAY_AUTH=hmac but SEPAY_HMAC_SECRET is not set".into() },
        },
        other => {
            return Err(ConfigError::Invalid {
                var: "SEPAY_AUTH",
                reason: format!("{other:?}: expected apikey or hmac"),
            });
        }
    })
}

/// What payments are matched against: the code pattern and the account buyers pay into.
pub fn payment_settings(vars: &Vars) -> Result<crate::app::payments::PaymentSettings, ConfigError> {
    Ok(crate::app::payments::PaymentSettings {
        pattern: code_pattern(vars)?,
        account_number: bank_account(vars)?.account_number,
    })
}

/// The Casso webhook's key (`CASSO_CHECKSUM_KEY`, from Casso's Webhook V2 settings). Without
/// it the Casso webhook refuses everything.
pub fn casso_auth(vars: &Vars) -> crate::adapters::casso::CassoAuth {
    use crate::adapters::casso::CassoAuth;
    match vars.get("CASSO_CHECKSUM_KEY").filter(|k| !k.trim().is_empty()) {
        Some(key) => CassoAuth::ChecksumKey { key, tolerance_secs: 300 },
        None => CassoAuth::Unconfigured { reason: "CASSO_CHECKSUM_KEY is not set".into() },
    }
}

/// payOS's webhook key (`PAYOS_CHECKSUM_KEY`); unset, every payOS webhook is refused.
pub fn payos_auth(vars: &Vars) -> crate::adapters::payos::PayosAuth {
    use crate::adapters::payos::PayosAuth;
    match vars.get("PAYOS_CHECKSUM_KEY").filter(|k| !k.trim().is_empty()) {
        Some(key) => PayosAuth::ChecksumKey(key),
        None => PayosAuth::Unconfigured,
    }
}

/// The bank feeds reconciliation lists: each one whose API credentials are set.
pub struct Feeds {
    pub sepay: Option<crate::adapters::sepay_api::SepayApi>,
    pub casso: Option<crate::adapters::casso::CassoApi>,
    /// Why each feed that is off is off, to say once at start.
    pub off: Vec<String>,
}

/// `SEPAY_API_TOKEN` (+ `SEPAY_API_BASE_URL`, `SEPAY_API_PAGE_SIZE`), `CASSO_API_KEY` (+
/// `CASSO_API_BASE_URL`, `CASSO_API_PAGE_SIZE`). A feed with no credentials is off.
pub fn feeds(vars: &Vars) -> Result<Feeds, ConfigError> {
    use crate::adapters::{bank_api::Pacing, casso, sepay_api};
    let mut off = Vec::new();
    let sepay = match vars.get("SEPAY_API_TOKEN").filter(|t| !t.trim().is_empty()) {
        Some(token) => {
            let limit: u32 = vars.parse_or("SEPAY_API_PAGE_SIZE", sepay_api::MAX_LIMIT)?;
            if limit == 0 || limit > sepay_api::MAX_LIMIT {
                return Err(ConfigError::Invalid { var: "SEPAY_API_PAGE_SIZE", reason: "must be 1 to 5000".into() });
            }
            Some(sepay_api::SepayApi::new(
                &vars.string_or("SEPAY_API_BASE_URL", sepay_api::DEFAULT_BASE_URL),
                token.trim(),
                Some(bank_account(vars)?.account_number),
                limit,
                Pacing::default(),
            ))
        }
        None => {
            off.push("SePay reconciliation is off: SEPAY_API_TOKEN is not set".to_string());
            None
        }
    };
    let casso = match vars.get("CASSO_API_KEY").filter(|k| !k.trim().is_empty()) {
        Some(key) => {
            let page_size: u32 = vars.parse_or("CASSO_API_PAGE_SIZE", 100)?;
            if page_size == 0 {
                return Err(ConfigError::Invalid { var: "CASSO_API_PAGE_SIZE", reason: "must be at least 1".into() });
            }
            Some(casso::CassoApi::new(
                &vars.string_or("CASSO_API_BASE_URL", casso::DEFAULT_API_BASE_URL),
                key.trim(),
                page_size,
                Pacing::default(),
            ))
        }
        None => {
            off.push("Casso reconciliation is off: CASSO_API_KEY is not set".to_string());
            None
        }
    };
    Ok(Feeds { sepay, casso, off })
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use crate::adapters::sepay::WebhookAuth;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap().num_seconds(), 1800);
        assert_eq!(parse_duration("90").unwrap().num_seconds(), 90);
        assert_eq!(parse_duration("2h").unwrap().num_seconds(), 7200);
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn webhook_auth_fails_closed_without_a_key() {
        let none = Vars::new(|_: &str| None);
        assert!(matches!(webhook_auth(&none).unwrap(), WebhookAuth::Unconfigured { .. }));
        let hmac_without_secret = Vars::new(|k: &str| (k == "SEPAY_AUTH").then(|| "hmac".to_string()));
        assert!(matches!(webhook_auth(&hmac_without_secret).unwrap(), WebhookAuth::Unconfigured { .. }));
        let key = Vars::new(|k: &str| (k == "SEPAY_API_KEY").then(|| "k".to_string()));
        assert!(matches!(webhook_auth(&key).unwrap(), WebhookAuth::ApiKey(_)));
    }
}
