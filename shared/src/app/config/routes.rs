//! Which payment routes of an order's own are on: payOS (`PAYOS_CLIENT_ID`, `PAYOS_API_KEY`,
//! `PAYOS_CHECKSUM_KEY`, all three or none) and SePay's order virtual accounts
//! (`SEPAY_VA_ACCOUNT_XID` with `SEPAY_VA_BANK` and its bank's setting).

use std::sync::Arc;

use super::{ConfigError, Vars, code_pattern};
use crate::adapters::{payos_api, sepay_va};
use crate::app::routes::RouteSettings;
use crate::domain::payment_route::PaymentRoutes;

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, reason: reason.into() }
}

fn set(vars: &Vars, var: &str) -> Option<String> {
    vars.get(var).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `SHOP_URL`, checked: the buyer page's public address.
pub fn shop_url(vars: &Vars) -> Result<Option<String>, ConfigError> {
    set(vars, "SHOP_URL")
        .map(|u| reqwest::Url::parse(&u).map(|u| u.to_string()).map_err(|e| invalid("SHOP_URL", e.to_string())))
        .transpose()
}

/// payOS's API client, when its three credentials are set.
pub fn payos_api(vars: &Vars) -> Result<Option<payos_api::PayosApi>, ConfigError> {
    let names = ["PAYOS_CLIENT_ID", "PAYOS_API_KEY", "PAYOS_CHECKSUM_KEY"];
    let values: Vec<Option<String>> = names.iter().map(|n| set(vars, n)).collect();
    let missing: Vec<&str> = names.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(n, _)| *n).collect();
    if missing.len() == names.len() {
        return Ok(None);
    }
    // The webhook alone needs only the checksum key: links need all three.
    if missing.len() == 2 && values[2].is_some() {
        return Ok(None);
    }
    if !missing.is_empty() {
        return Err(invalid(
            "PAYOS_CLIENT_ID",
            format!("payOS needs all three of its keys; missing {}", missing.join(", ")),
        ));
    }
    let [Some(client_id), Some(api_key), Some(checksum_key)] = <[Option<String>; 3]>::try_from(values).expect("three")
    else {
        unreachable!("all three are set")
    };
    Ok(Some(payos_api::PayosApi::new(
        &vars.string_or("PAYOS_API_BASE_URL", payos_api::DEFAULT_BASE_URL),
        &client_id,
        &api_key,
        &checksum_key,
        code_pattern(vars)?.prefix(),
    )))
}

/// SePay's order virtual accounts, when `SEPAY_VA_ACCOUNT_XID` is set.
pub fn sepay_va(vars: &Vars) -> Result<Option<sepay_va::SepayVa>, ConfigError> {
    let Some(xid) = set(vars, "SEPAY_VA_ACCOUNT_XID") else { return Ok(None) };
    let token = set(vars, "SEPAY_VA_TOKEN")
        .or_else(|| set(vars, "SEPAY_API_TOKEN"))
        .ok_or_else(|| invalid("SEPAY_VA_TOKEN", "virtual accounts need SePay's API token (or SEPAY_API_TOKEN)"))?;
    let bank = match set(vars, "SEPAY_VA_BANK").unwrap_or_default().to_ascii_lowercase().as_str() {
        "bidv" => sepay_va::VaBank::Bidv,
        "sacombank" => sepay_va::VaBank::Sacombank {
            va_prefix: set(vars, "SEPAY_VA_PREFIX")
                .ok_or_else(|| invalid("SEPAY_VA_PREFIX", "Sacombank's virtual accounts need the account's prefix"))?,
        },
        "vietcombank" => sepay_va::VaBank::Vietcombank {
            terminal_id: set(vars, "SEPAY_VA_TERMINAL_ID").ok_or_else(|| {
                invalid("SEPAY_VA_TERMINAL_ID", "Vietcombank's virtual accounts need a terminal id (tid)")
            })?,
        },
        other => return Err(invalid("SEPAY_VA_BANK", format!("{other:?}: expected bidv, sacombank or vietcombank"))),
    };
    Ok(Some(sepay_va::SepayVa::new(
        &vars.string_or("SEPAY_VA_BASE_URL", sepay_va::DEFAULT_BASE_URL),
        &token,
        &xid,
        bank,
    )))
}

/// The routes opened for each order, and how long a buyer waits for them
/// (`PAYMENT_ROUTE_TIMEOUT`, default 5s).
pub fn payment_routes(vars: &Vars) -> Result<RouteSettings, ConfigError> {
    let mut providers: Vec<Arc<dyn PaymentRoutes>> = Vec::new();
    if let Some(va) = sepay_va(vars)? {
        providers.push(Arc::new(va));
    }
    if let Some(payos) = payos_api(vars)? {
        providers.push(Arc::new(payos));
    }
    let within = vars.duration_or("PAYMENT_ROUTE_TIMEOUT", "5s")?;
    Ok(RouteSettings {
        providers,
        shop_url: shop_url(vars)?,
        open_within: std::time::Duration::from_secs(within.num_seconds().max(1) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Vars::new(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn payos_needs_all_three_keys_for_links() {
        assert!(payos_api(&vars(&[])).unwrap().is_none());
        assert!(payos_api(&vars(&[("PAYOS_CHECKSUM_KEY", "k")])).unwrap().is_none(), "webhook only");
        let err = payos_api(&vars(&[("PAYOS_CLIENT_ID", "c"), ("PAYOS_CHECKSUM_KEY", "k")])).unwrap_err();
        assert!(err.to_string().contains("PAYOS_API_KEY"), "{err}");
        let all = [("PAYOS_CLIENT_ID", "c"), ("PAYOS_API_KEY", "a"), ("PAYOS_CHECKSUM_KEY", "k")];
        assert!(payos_api(&vars(&all)).unwrap().is_some());
    }

    #[test]
    fn virtual_accounts_need_their_banks_setting() {
        assert!(sepay_va(&vars(&[])).unwrap().is_none());
        let base = [("SEPAY_VA_ACCOUNT_XID", "ba1"), ("SEPAY_API_TOKEN", "t")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            sepay_va(&vars(&all))
        };
        assert!(with(&[("SEPAY_VA_BANK", "bidv")]).unwrap().is_some());
        assert!(with(&[("SEPAY_VA_BANK", "sacombank")]).is_err());
        assert!(with(&[("SEPAY_VA_BANK", "sacombank"), ("SEPAY_VA_PREFIX", "SEP1")]).unwrap().is_some());
        assert!(with(&[("SEPAY_VA_BANK", "vietcombank")]).is_err());
        assert!(with(&[("SEPAY_VA_BANK", "mb")]).is_err());
        assert!(sepay_va(&vars(&[("SEPAY_VA_ACCOUNT_XID", "ba1"), ("SEPAY_VA_BANK", "bidv")])).is_err(), "no token");
    }
}
