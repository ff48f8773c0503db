//! The `fields` parameter: answers carry only the fields asked for.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Keeps only the requested fields: `id,name,files(id,name),nextPageToken`; `*` keeps all.
pub(crate) fn select(value: &Value, fields: &str) -> Value {
    let fields = fields.trim();
    if fields.is_empty() || fields == "*" {
        return value.clone();
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in fields.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&fields[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&fields[start..]);
    let mut out = Map::new();
    for part in parts {
        let part = part.trim();
        let (name, sub) = match part.find('(') {
            Some(i) if part.ends_with(')') => (&part[..i], Some(&part[i + 1..part.len() - 1])),
            _ => (part, None),
        };
        if let Some(v) = value.get(name) {
            let v = match (sub, v) {
                (Some(sub), Value::Array(items)) => Value::Array(items.iter().map(|i| select(i, sub)).collect()),
                (Some(sub), other) => select(other, sub),
                (None, other) => other.clone(),
            };
            out.insert(name.to_string(), v);
        }
    }
    Value::Object(out)
}

pub(crate) const DEFAULT_FILE_FIELDS: &str = "kind,id,name,mimeType";

#[derive(Deserialize)]
pub(crate) struct FieldsQuery {
    pub(crate) fields: Option<String>,
}
