//! Moodle web services (REST, JSON format): find the user by email, create them if absent
//! (Moodle mails them a password: `createpassword=1`), then `enrol_manual_enrol_users` into
//! the course id mapped from the catalog (`courses.lms_course_id`). Enrolling twice is safe
//! in Moodle. After a refund, `enrol_manual_unenrol_users` takes the user out of the course
//! again (a user Moodle does not have, or not in the course, is already out).
//!
//! Parameters are form-encoded arrays (`enrolments[0][userid]=5`). Errors arrive as HTTP 200
//! with `{"exception", "errorcode", "message"}`.
//!
//! The token goes in the POST body with the other parameters, never in the URL: Moodle's REST
//! server reads `wstoken`, `wsfunction` and `moodlewsrestformat` from either, and a URL ends up
//! in error messages (reqwest's end with `for url (…)`), hence in logs, `last_error` and the
//! timeline. The token can create users and enrol anyone.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Digest;

use crate::domain::lms::{EnrollError, EnrollProvider, Enrollee};

#[derive(Clone)]
pub struct MoodleProvider {
    endpoint: String,
    token: String,
    role_id: u32,
    client: reqwest::Client,
}

impl std::fmt::Debug for MoodleProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MoodleProvider({}, token ***)", self.endpoint)
    }
}

#[derive(Deserialize)]
struct MoodleException {
    errorcode: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct MoodleUser {
    id: u64,
}

/// Error codes that retrying cannot cure: the token, the service's permissions, or the data.
const PERMANENT: &[&str] = &[
    "invalidtoken",
    "accessexception",
    "invalidparameter",
    "invalidrecord",
    "invalidrecordunknown",
    "servicerequireslogin",
    "wsaccessuserdeleted",
    "wsaccessusersuspended",
    "enrolnotpermitted",
    "wsusercannotenrol",
    "nopermissions",
    "requireloginerror",
];

impl MoodleProvider {
    /// `site` is the Moodle root, e.g. `https://lms.example.com`.
    pub fn new(site: String, token: String, role_id: u32, timeout: Duration) -> Self {
        let endpoint = format!("{}/webservice/rest/server.php", site.trim_end_matches('/'));
        // Never follow a redirect: the token is in the request, and must reach only this site.
        let client = crate::support::http_client::client_builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with rustls builds");
        MoodleProvider { endpoint, token, role_id, client }
    }

    async fn call<T: DeserializeOwned>(&self, function: &str, params: &[(String, String)]) -> Result<T, EnrollError> {
        let mut form: Vec<(&str, &str)> =
            vec![("wstoken", self.token.as_str()), ("wsfunction", function), ("moodlewsrestformat", "json")];
        form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let response = self
            .client
            .post(&self.endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| EnrollError::Transient(format!("Moodle unreachable ({function}): {}", e.without_url())))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?");
            return Err(EnrollError::Permanent(format!(
                "Moodle answered {status} to {function} (a redirect to {to}); redirects are not followed, so the token \
                 goes nowhere else: set MOODLE_URL to the address the site answers on"
            )));
        }
        let text = response
            .text()
            .await
            .map_err(|e| EnrollError::Transient(format!("Moodle ({function}): {}", e.without_url())))?;
        if !status.is_success() {
            let message = format!("Moodle answered {status} to {function}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                EnrollError::Transient(message)
            } else {
                EnrollError::Permanent(message)
            });
        }
        // Errors come back as 200 with an exception object.
        if let Ok(e) = serde_json::from_str::<MoodleException>(&text) {
            let message = format!("Moodle {function}: {} ({})", e.errorcode, e.message);
            return Err(if PERMANENT.contains(&e.errorcode.as_str()) {
                EnrollError::Permanent(message)
            } else {
                EnrollError::Transient(message)
            });
        }
        serde_json::from_str(&text)
            .map_err(|e| EnrollError::Transient(format!("Moodle {function}: unexpected answer ({e}): {text:.200}")))
    }
}

/// A Moodle username for the buyer: Moodle accepts only lower-case letters, digits and
/// `_ - . @` in usernames (`PARAM_USERNAME`, unless the site turns on
/// `extendedusernamechars`), so an address such as `an+khoa'hoc@example.com` cannot be used
/// as it is. Other characters become `_`, and then a short hash of the address is appended,
/// so two addresses that clean to the same text never share a username. An address that is
/// already clean is its own username, as before.
pub fn username_for(email: &str) -> String {
    let lower = email.trim().to_lowercase();
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.@".contains(c);
    if lower.chars().all(allowed) {
        return lower;
    }
    let cleaned: String = lower.chars().map(|c| if allowed(c) { c } else { '_' }).collect();
    let digest = sha2::Sha256::digest(lower.as_bytes());
    format!("{cleaned}-{}", &hex::encode(digest)[..8])
}

impl MoodleProvider {
    async fn find_user(&self, email: &str) -> Result<Vec<MoodleUser>, EnrollError> {
        self.call(
            "core_user_get_users_by_field",
            &[("field".into(), "email".into()), ("values[0]".into(), email.into())],
        )
        .await
    }

    async fn create_user(&self, who: &Enrollee, email: &str) -> Result<u64, EnrollError> {
        let local = email.split('@').next().unwrap_or("hoc vien");
        let created: Vec<MoodleUser> = self
            .call(
                "core_user_create_users",
                &[
                    ("users[0][username]".into(), username_for(email)),
                    ("users[0][email]".into(), email.into()),
                    ("users[0][firstname]".into(), local.to_string()),
                    ("users[0][lastname]".into(), who.order_code.clone()),
                    ("users[0][auth]".into(), "manual".into()),
                    // Moodle makes a password and mails it to the buyer.
                    ("users[0][createpassword]".into(), "1".into()),
                ],
            )
            .await?;
        created.first().map(|u| u.id).ok_or_else(|| EnrollError::Transient("Moodle created no user".into()))
    }
}

impl EnrollProvider for MoodleProvider {
    fn name(&self) -> &'static str {
        "moodle"
    }

    async fn enroll(&self, who: &Enrollee) -> Result<(), EnrollError> {
        let course_id = who
            .lms_course_id
            .as_deref()
            .ok_or_else(|| EnrollError::Permanent(format!("course {} has no Moodle course id", who.course_slug)))?;
        let email = who.email.to_lowercase();
        let found = self.find_user(&email).await?;
        let user_id = match found.first() {
            Some(u) => u.id,
            None => match self.create_user(who, &email).await {
                Ok(id) => id,
                // Another enrollment for the same buyer (a second course of the order, worked
                // at the same time) may have created the user first: look again.
                Err(create_error) => match self.find_user(&email).await?.first() {
                    Some(u) => u.id,
                    None => return Err(create_error),
                },
            },
        };
        // enrol_manual_enrol_users answers `null` on success.
        let _: Option<serde_json::Value> = self
            .call(
                "enrol_manual_enrol_users",
                &[
                    ("enrolments[0][roleid]".into(), self.role_id.to_string()),
                    ("enrolments[0][userid]".into(), user_id.to_string()),
                    ("enrolments[0][courseid]".into(), course_id.to_string()),
                ],
            )
            .await?;
        Ok(())
    }

    async fn unenroll(&self, who: &Enrollee) -> Result<(), EnrollError> {
        let course_id = who
            .lms_course_id
            .as_deref()
            .ok_or_else(|| EnrollError::Permanent(format!("course {} has no Moodle course id", who.course_slug)))?;
        let Some(user) = self.find_user(&who.email.to_lowercase()).await?.into_iter().next() else {
            return Ok(()); // never made: nothing to take back
        };
        // Answers `null` on success; Moodle's manual enrolment plugin ignores a user who is not
        // enrolled.
        let _: Option<serde_json::Value> = self
            .call(
                "enrol_manual_unenrol_users",
                &[
                    ("enrolments[0][userid]".into(), user.id.to_string()),
                    ("enrolments[0][courseid]".into(), course_id.to_string()),
                    ("enrolments[0][roleid]".into(), self.role_id.to_string()),
                ],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::username_for;

    #[test]
    fn usernames_are_what_moodle_accepts_and_never_shared() {
        assert_eq!(username_for("Hoc.Vien@Example.com"), "hoc.vien@example.com");
        let plus = username_for("an+khoa'hoc@example.com");
        assert!(plus.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.@".contains(c)), "{plus}");
        assert!(plus.starts_with("an_khoa_hoc@example.com-"), "{plus}");
        // Two addresses that clean to the same text keep apart.
        assert_ne!(username_for("an+b@example.com"), username_for("an'b@example.com"));
        assert_eq!(username_for("an+b@example.com"), username_for(" AN+B@example.com "));
        assert!(username_for("nguyễn@example.com").is_ascii());
    }
}
