//! The end of `make demo`: the seller's console on the demo's database. A demo owner signs in
//! by the link the console emails (read from the SMTP sink, as a person would click it) and
//! finds the demo's order; then a fresh link is printed for you. In a terminal the console
//! stays up until Ctrl-C; elsewhere (the test that runs the demo) the demo ends there.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use coursedrop::app::config::Vars;
use coursedrop::app::console::auth;
use coursedrop::domain::staff::StaffRole;
use sqlx::MySqlPool;

use crate::stack;

pub const DEMO_OWNER: &str = "chu.cua.hang@example.com";

async fn ask_link(http: &reqwest::Client, url: &str) -> Result<String> {
    let since = SystemTime::now() - Duration::from_secs(1);
    http.post(format!("{url}/sign-in")).form(&[("email", DEMO_OWNER)]).send().await?.error_for_status()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(link) = coursedrop::testing::newest_line_to(DEMO_OWNER, since, "/sign-in/") {
            return Ok(link);
        }
        if std::time::Instant::now() > deadline {
            let maildir = coursedrop::testing::maildir();
            bail!("stage console failed: no sign-in link for {DEMO_OWNER} in {} after 10 s", maildir.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn show(admin: &MySqlPool, pool: MySqlPool, vars: &Vars, drive_base: &str, code: &str) -> Result<()> {
    let port: u16 = vars.parse_or("CONSOLE_PORT", 3007)?;
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        // `make dev` may hold the port: any free one will do for the demo.
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let url = format!("http://{}", listener.local_addr()?);
    let router = stack::console_router(pool, vars, drive_base, &url).await?;
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(axum::serve(listener, app).into_future());
    auth::add_staff(admin, DEMO_OWNER, StaffRole::Owner, "operator:demo").await.context("adding the demo owner")?;

    let http = coursedrop::support::http_client::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    // Signed in as a person would be: the emailed link, its button, the cookie.
    let link = ask_link(&http, &url).await?;
    let path = &link[link.find("/sign-in/").context("a sign-in link")?..];
    let signed = http.post(format!("{url}{path}")).send().await?;
    let cookie = signed
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("cd_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .context("stage console failed: the sign-in link did not sign in")?;
    let page = http
        .get(format!("{url}/orders?q={code}"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    if !page.contains(&format!("/orders/{code}\"")) {
        bail!("stage console failed: the orders list does not find {code}");
    }
    println!("  ✔ {:<10} {DEMO_OWNER} signed in by the emailed link; the orders list finds {code}", "console");
    let fresh = ask_link(&http, &url).await?;
    println!("\nthe seller's console: {url}");
    println!("  sign in as the demo owner (the link works once, for 15 minutes): {fresh}");
    println!("  more staff: make admin ARGS='staff add --email you@example.com --role owner'");
    if std::io::stdout().is_terminal() && vars.get("DEMO_EXIT").is_none() {
        println!("  the console stays up until Ctrl-C");
        coursedrop::runtime::http::shutdown_signal().await;
    }
    Ok(())
}
