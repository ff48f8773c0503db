//! Configuration from the environment, read once at start.
//!
//! Every variable has a local default so `make dev` and the tests run with nothing set;
//! production sets them (and secrets) explicitly. Reading goes through a lookup function so
//! tests can supply variables without touching the process environment.

use std::str::FromStr;

use thiserror::Error;

use crate::domain::{CodeCharset, CodePattern, CodePatternError};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is not valid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// Typed access to variables through a lookup function.
pub struct Vars<F: Fn(&str) -> Option<String>>(pub F);

impl Vars<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Vars(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The variable's value, or `None` when it is unset or empty.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn string_or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_string())
    }

    pub fn parse_or<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                var,
                reason: format!("{v:?}: {e}"),
            }),
        }
    }
}

pub const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/coursedrop";

pub fn database_url<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> String {
    vars.string_or("DATABASE_URL", DEFAULT_DATABASE_URL)
}

/// The SePay payment-code pattern: `ORDER_CODE_PREFIX` (default `CD`),
/// `ORDER_CODE_SUFFIX_MIN`/`_MAX` (6/10, as configured in SePay), `ORDER_CODE_LENGTH`
/// (8, the suffix length we generate) and `ORDER_CODE_CHARSET` (`digits` or `alphanumeric`).
pub fn code_pattern<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<CodePattern, ConfigError> {
    let charset = match vars
        .string_or("ORDER_CODE_CHARSET", "digits")
        .to_ascii_lowercase()
        .as_str()
    {
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
        ConfigError::Invalid {
            var,
            reason: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Vars(move |k: &str| map.get(k).cloned())
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
    fn bad_values_name_the_variable() {
        let err = code_pattern(&vars(&[("ORDER_CODE_LENGTH", "eight")])).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    var: "ORDER_CODE_LENGTH",
                    ..
                }
            ),
            "{err}"
        );
        let err = code_pattern(&vars(&[("ORDER_CODE_CHARSET", "hex")])).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    var: "ORDER_CODE_CHARSET",
                    ..
                }
            ),
            "{err}"
        );
        let err = code_pattern(&vars(&[("ORDER_CODE_LENGTH", "20")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ORDER_CODE_LENGTH is not valid: the generated suffix length must lie between the minimum and the maximum"
        );
    }
}
