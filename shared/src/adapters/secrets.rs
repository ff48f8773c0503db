//! The one Secrets Manager secret: a JSON object of variable names to values (the database
//! URL, the SePay key, SMTP and Drive credentials), read once at cold start and laid over the
//! environment, so every config reader finds secrets and plain settings the same way.

use std::collections::HashMap;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("reading secret {id}: {message}")]
    Fetch { id: String, message: String },
    #[error("secret {id} has no string value (binary secrets are not supported)")]
    NotString { id: String },
    #[error("secret {id} is not a JSON object of names to values: {message}")]
    Shape { id: String, message: String },
}

/// The secret's JSON parsed into variables. Strings, numbers and booleans become their text;
/// nested values are refused, so a mistyped secret fails the cold start instead of quietly
/// leaving a setting out. Key names are checked like environment variable names.
pub fn parse_secret(id: &str, text: &str) -> Result<HashMap<String, String>, SecretError> {
    let shape = |message: String| SecretError::Shape { id: id.to_string(), message };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| shape(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(shape("the top level is not an object".into()));
    };
    let mut vars = HashMap::with_capacity(map.len());
    for (key, value) in map {
        let name_ok = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(shape(format!("{key:?} is not a variable name (A-Z, 0-9 and _)")));
        }
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(shape(format!("{key} must be a string, number or boolean"))),
        };
        vars.insert(key, text);
    }
    Ok(vars)
}

/// Fetches and parses the secret through the shared SDK configuration (`AWS_ENDPOINT_URL`
/// points it at moto or LocalStack locally).
pub async fn fetch_secret(id: &str) -> Result<HashMap<String, String>, SecretError> {
    let config = super::queue::aws_sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let out = client.get_secret_value().secret_id(id).send().await.map_err(|e| SecretError::Fetch {
        id: id.to_string(),
        message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
    })?;
    let text = out.secret_string().ok_or_else(|| SecretError::NotString { id: id.to_string() })?;
    parse_secret(id, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_numbers_and_booleans_become_variables() {
        let vars = parse_secret("s", r#"{"DATABASE_URL":"mysql://u:p@h/db","SMTP_PORT":587,"X":true}"#).unwrap();
        assert_eq!(vars["DATABASE_URL"], "mysql://u:p@h/db");
        assert_eq!(vars["SMTP_PORT"], "587");
        assert_eq!(vars["X"], "true");
    }

    #[test]
    fn bad_shapes_are_refused_with_the_reason() {
        for (text, needle) in [
            ("not json", "expected"),
            ("[1]", "not an object"),
            (r#"{"drive":{"a":1}}"#, "not a variable name"),
            (r#"{"DRIVE":{"a":1}}"#, "DRIVE must be a string"),
            (r#"{"1X":"a"}"#, "not a variable name"),
        ] {
            let err = parse_secret("prod/coursedrop", text).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("prod/coursedrop"), "{text}: {err}");
        }
    }
}
