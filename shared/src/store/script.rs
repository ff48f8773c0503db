//! Several statements in one round trip.
//!
//! A statement with `?` placeholders costs a round trip each time it runs, and each round trip
//! costs both processes more CPU than the statement itself (a send, a wake-up, a receive). A
//! transaction whose statements are known together (paying an order) therefore goes as one
//! script over the text protocol, in which sqlx enables MySQL's multi-statement mode.
//!
//! Values are written into the text, and this is what keeps that safe: the SQL comes only
//! from `&'static str` fragments of this crate's source, and a value can only be an integer,
//! NULL, or a string written as a hex literal with its character set (`_utf8mb4 X'6869'`), a
//! form no content can end early. Nothing is escaped, so nothing can be escaped wrongly.
//!
//! The server runs the statements in order and stops at the first that fails; what ran
//! before it stays in the open transaction, for the caller to roll back.

use std::fmt::Write as _;

use futures_util::TryStreamExt;
use sqlx::mysql::MySqlRow;
use sqlx::{Either, MySqlConnection};

/// SQL text built from static fragments and literal values.
#[derive(Debug, Default, Clone)]
pub struct Script {
    sql: String,
    statements: usize,
}

/// What one statement of a script answered.
#[derive(Debug, Default)]
pub struct Answer {
    pub rows_affected: u64,
    pub last_insert_id: u64,
    pub rows: Vec<MySqlRow>,
}

/// A value written into a script.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Text(&'a str),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u64> for Value<'_> {
    fn from(v: u64) -> Self {
        Value::UInt(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl Script {
    pub fn new() -> Self {
        Script::default()
    }

    /// SQL text: only ever a literal of this crate's source.
    pub fn sql(&mut self, fragment: &'static str) -> &mut Self {
        self.sql.push_str(fragment);
        self
    }

    pub fn value<'a>(&mut self, value: impl Into<Value<'a>>) -> &mut Self {
        match value.into() {
            Value::Null => self.sql.push_str("NULL"),
            Value::Int(v) => {
                let _ = write!(self.sql, "{v}");
            }
            Value::UInt(v) => {
                let _ = write!(self.sql, "{v}");
            }
            Value::Text(v) => {
                // The connection's character set is utf8mb4 and a &str is UTF-8, so the bytes
                // are the string's own; the introducer makes them text rather than binary.
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                self.sql.reserve(v.len() * 2 + 12);
                self.sql.push_str("_utf8mb4 X'");
                self.sql.extend(
                    v.bytes().flat_map(|b| [HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char]),
                );
                self.sql.push('\'');
            }
        }
        self
    }

    /// `(v1, v2, …)`: one row of a `VALUES` list.
    pub fn tuple<'a>(&mut self, values: impl IntoIterator<Item = Value<'a>>) -> &mut Self {
        self.sql.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.value(v);
        }
        self.sql.push(')');
        self
    }

    /// Ends a statement.
    pub fn end(&mut self) -> &mut Self {
        self.sql.push_str(";\n");
        self.statements += 1;
        self
    }

    pub fn statements(&self) -> usize {
        self.statements
    }

    pub fn as_sql(&self) -> &str {
        &self.sql
    }

    /// Runs the script in one round trip: one [`Answer`] per statement, in order.
    pub async fn run(&self, conn: &mut MySqlConnection) -> Result<Vec<Answer>, sqlx::Error> {
        // Safe by construction: see the module's comment.
        let sql = sqlx::AssertSqlSafe(self.sql.as_str());
        let mut stream = sqlx::raw_sql(sql).fetch_many(conn);
        let mut answers = Vec::with_capacity(self.statements);
        let mut rows = Vec::new();
        // Each statement's rows come first, then its result.
        while let Some(step) = stream.try_next().await? {
            match step {
                Either::Right(row) => rows.push(row),
                Either::Left(done) => answers.push(Answer {
                    rows_affected: done.rows_affected(),
                    last_insert_id: done.last_insert_id(),
                    rows: std::mem::take(&mut rows),
                }),
            }
        }
        if answers.len() != self.statements {
            return Err(sqlx::Error::Protocol(format!(
                "a script of {} statements answered {}",
                self.statements,
                answers.len()
            )));
        }
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_literals_no_content_can_end() {
        let mut s = Script::new();
        s.sql("SELECT ").value("a'; DROP TABLE x; -- \\").sql(", ").value(-5i64).sql(", ").value(7u64);
        s.sql(", ").value(None::<&str>).sql(", ").value("").end();
        assert_eq!(
            s.as_sql(),
            "SELECT _utf8mb4 X'61273B2044524F50205441424C4520783B202D2D205C', -5, 7, NULL, _utf8mb4 X'';\n"
        );
        assert_eq!(s.statements(), 1);
    }

    #[test]
    fn text_is_its_utf8_bytes() {
        let mut s = Script::new();
        s.tuple([Value::Text("đơn"), Value::UInt(1), Value::Null]);
        assert_eq!(s.as_sql(), "(_utf8mb4 X'C491C6A16E', 1, NULL)");
    }
}
