//! Course slugs: the stable, URL-safe name of a course in the catalog.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CourseSlug(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SlugError {
    #[error("course slug must be 1 to 64 characters")]
    Length,
    #[error("course slug may only hold a-z, 0-9 and '-', found {0:?}")]
    Char(char),
    #[error("course slug must not start or end with '-' nor contain '--'")]
    Hyphens,
}

impl CourseSlug {
    /// Accepts upper case and folds it: `Rust-101` and `rust-101` are the same course.
    pub fn parse(input: &str) -> Result<Self, SlugError> {
        let s = input.trim().to_ascii_lowercase();
        if s.is_empty() || s.len() > 64 {
            return Err(SlugError::Length);
        }
        if let Some(bad) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            return Err(SlugError::Char(bad));
        }
        if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
            return Err(SlugError::Hyphens);
        }
        Ok(CourseSlug(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CourseSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_folds_case() {
        assert_eq!(CourseSlug::parse(" Rust-101 ").unwrap().as_str(), "rust-101");
    }

    #[test]
    fn rejects_bad_slugs() {
        assert_eq!(CourseSlug::parse(""), Err(SlugError::Length));
        assert_eq!(CourseSlug::parse(&"a".repeat(65)), Err(SlugError::Length));
        assert_eq!(CourseSlug::parse("rust 101"), Err(SlugError::Char(' ')));
        assert_eq!(CourseSlug::parse("rust'--"), Err(SlugError::Char('\'')));
        assert_eq!(CourseSlug::parse("-rust"), Err(SlugError::Hyphens));
        assert_eq!(CourseSlug::parse("rust--101"), Err(SlugError::Hyphens));
    }
}
