//! The database's own users: one per function, each granted only what it reads and writes
//! (`infra/db-users.sql`). Applied by an operator with the administrator's connection.

use sqlx::MySqlPool;

use super::StoreError;

/// The grants, as shipped: `{database}` and `{suffix}` are filled in by [`apply`].
pub const SCRIPT: &str = include_str!("../../../infra/db-users.sql");

/// The functions that have a user of their own, by the name their user carries
/// (`cd_<role>`) and the variable an operator passes its password in (`DB_PASSWORD_<ROLE>`).
pub const ROLES: &[&str] = &[
    "create_order",
    "bank_webhook",
    "reconcile",
    "enroll",
    "deliver",
    "finalize",
    "self_service",
    "sweeper",
    "console",
];

/// A function's user: its name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbUser {
    pub role: &'static str,
    pub name: String,
    pub password: String,
}

/// Whether `s` can be written into the script as it stands: a database name or a suffix of
/// letters, digits and `_`. Nothing else reaches the SQL text.
fn plain(s: &str, max: usize) -> bool {
    s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Creates (or keeps) each function's user on `database`, grants what the script says, and
/// sets each password `password_of(role)` gives. Every role needs one (a user created
/// without would have none): nothing is changed unless all are given. Passwords are letters
/// and digits only, 16 to 128 of them: the statement that sets one cannot take a bound
/// parameter, so nothing else is ever written into it.
pub async fn apply(
    pool: &MySqlPool,
    database: &str,
    suffix: &str,
    password_of: impl Fn(&str) -> Option<String>,
) -> Result<Vec<DbUser>, StoreError> {
    if !plain(database, 64) || database.is_empty() || !plain(suffix, 16) {
        return Err(StoreError::Corrupt(format!("{database:?}/{suffix:?}: letters, digits and _ only")));
    }
    let mut users = Vec::new();
    for role in ROLES {
        let name = format!("cd_{role}{suffix}");
        let password = password_of(role).ok_or_else(|| StoreError::Corrupt(format!("no password for {name}")))?;
        if !(16..=128).contains(&password.len()) || !password.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StoreError::Corrupt(format!("the password for {name} must be 16 to 128 letters and digits")));
        }
        users.push(DbUser { role, name, password });
    }
    let script = SCRIPT.replace("{database}", database).replace("{suffix}", suffix);
    let mut conn = pool.acquire().await?;
    for statement in statements(&script) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *conn).await?;
    }
    for u in &users {
        let set = format!("ALTER USER '{}'@'%' IDENTIFIED BY '{}'", u.name, u.password);
        sqlx::raw_sql(sqlx::AssertSqlSafe(set)).execute(&mut *conn).await?;
    }
    Ok(users)
}

/// The script's statements, without its comments.
fn statements(script: &str) -> Vec<String> {
    script
        .split(";\n")
        .map(|chunk| chunk.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_a_user_and_only_plain_names_reach_the_sql() {
        let script = SCRIPT.replace("{database}", "coursedrop").replace("{suffix}", "");
        let all = statements(&script);
        for role in ROLES {
            let create = format!("CREATE USER IF NOT EXISTS 'cd_{role}'@'%'");
            assert!(all.contains(&create), "{role}");
        }
        assert!(all.iter().all(|s| s.starts_with("CREATE USER") || s.starts_with("GRANT ")), "{all:?}");
        assert!(
            !all.iter().any(|s| s.contains("cd_create_order") && s.contains(".payments")),
            "create-order: no payments"
        );
        assert!(plain("coursedrop_chaos", 64) && !plain("x`; DROP", 64) && !plain("a-b", 16));
    }
}
