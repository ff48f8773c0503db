use anyhow::Result;
use coursedrop::store;
use serde_json::{Value, json};
use sqlx::MySqlPool;

use crate::{Ctx, invalid};

/// The database the administrator's connection is on.
async fn sqlx_database(pool: &MySqlPool) -> Result<String> {
    store::current_database(pool).await?.ok_or_else(|| invalid("DATABASE_URL names no database"))
}

pub(crate) async fn db_users(ctx: &Ctx) -> Result<(Value, String)> {
    let database: String = sqlx_database(&ctx.pool).await?;
    let password = |role: &str| std::env::var(format!("DB_PASSWORD_{}", role.to_uppercase())).ok();
    let users = store::users::apply(&ctx.pool, &database, "", password).await.map_err(|e| match e {
        store::StoreError::Corrupt(m) => invalid(format!("{m} (set DB_PASSWORD_<FUNCTION> for each function)")),
        e => e.into(),
    })?;
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    Ok((
        json!({"database": database, "users": names}),
        format!("{} function users on {database}, each with only its grants: {}", names.len(), names.join(", ")),
    ))
}
