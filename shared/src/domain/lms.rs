//! The seller's learning-management system as enrollment sees it: the port the Moodle and
//! webhook clients (in `adapters::lms`) implement and `app::enrollment` drives.

use std::future::Future;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Enrollee {
    pub item_id: u64,
    pub order_code: String,
    pub email: String,
    pub phone: Option<String>,
    pub course_slug: String,
    /// The course's id in the seller's LMS, where the provider needs one (Moodle).
    pub lms_course_id: Option<String>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EnrollError {
    /// Worth retrying: a timeout, a 5xx, a connection refused.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help: a bad token, a course that does not exist.
    #[error("{0}")]
    Permanent(String),
}

pub trait EnrollProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Enrolls; must be safe to repeat for someone already enrolled.
    fn enroll(&self, who: &Enrollee) -> impl Future<Output = Result<(), EnrollError>> + Send;
    /// Takes the buyer out of the course after a refund; must be safe to repeat, and succeed
    /// for someone not (or no longer) enrolled.
    fn unenroll(&self, who: &Enrollee) -> impl Future<Output = Result<(), EnrollError>> + Send;
}
