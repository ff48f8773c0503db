//! `staff add|list|disable`: the console's accounts.

use anyhow::Result;
use coursedrop::app::console::auth;
use coursedrop::domain::staff::StaffRole;
use serde_json::{Value, json};

use crate::cli::StaffCommand;
use crate::table::Table;
use crate::{Ctx, invalid, when};

pub(crate) async fn staff(ctx: &Ctx, command: StaffCommand) -> Result<(Value, String)> {
    match command {
        StaffCommand::Add { email, role } => {
            let role = StaffRole::parse(&role).map_err(|e| invalid(format!("--role: {e}")))?;
            let added = auth::add_staff(&ctx.pool, &email, role, &ctx.actor).await?;
            let text = format!(
                "{} can sign in to the console as {}: they ask for a link on its sign-in page",
                added.email, added.role
            );
            Ok((json!(added), text))
        }
        StaffCommand::List => {
            let all = auth::list_staff(&ctx.pool).await?;
            let mut t = Table::new(&["EMAIL", "ROLE", "ADDED", "BY", "DISABLED"]);
            for m in &all {
                t.row(vec![
                    m.email.clone(),
                    m.role.to_string(),
                    when(m.created_at),
                    m.created_by.clone(),
                    m.disabled_at.map(when).unwrap_or_default(),
                ]);
            }
            Ok((json!(all), t.render()))
        }
        StaffCommand::SetRole { email, role } => {
            let role = StaffRole::parse(&role).map_err(|e| invalid(format!("--role: {e}")))?;
            auth::set_role(&ctx.pool, &email, role, &ctx.actor).await?;
            Ok((json!({"email": email, "role": role}), format!("{email} is now {role}")))
        }
        StaffCommand::Disable { email } => {
            auth::disable_staff(&ctx.pool, &email, &ctx.actor).await?;
            Ok((json!({"disabled": email}), format!("{email} is disabled; their sessions have ended")))
        }
    }
}
