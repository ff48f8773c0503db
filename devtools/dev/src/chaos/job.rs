use anyhow::{Context, Result, anyhow};
use coursedrop::app::config::Vars;

use super::PREFIX;
use crate::stack;

/// The deliver job as a child process, configured for a short chaos run.
pub(super) struct DeliverJob {
    child: Option<tokio::process::Child>,
    pub(super) env: Vec<(String, String)>,
}

impl DeliverJob {
    pub(super) fn start(vars: &Vars, db_url: &str, drive_base: &str) -> Result<Self> {
        let mut env = stack::local_aws_env(vars);
        env.push(("DATABASE_URL".into(), db_url.into()));
        env.push(("DRIVE_API_ROOT".into(), drive_base.into()));
        for (k, v) in [
            ("QUEUE_NAME_PREFIX", PREFIX),
            ("DRIVE_ACCESS_TOKEN", "emulator-token"),
            ("DRIVE_CHUNK_SIZE", "1048576"),
            ("DELIVER_LEASE_SECS", "8"),
            ("DELIVER_VISIBILITY_SECS", "10"),
            ("DELIVER_RETRY_DELAY_SECS", "2"),
            ("DELIVER_MESSAGES_IN_FLIGHT", "4"),
            ("DELIVER_MAX_ATTEMPTS", "30"),
            ("RUST_LOG", "warn"),
        ] {
            env.push((k.into(), v.into()));
        }
        let mut job = DeliverJob::prepared(env);
        job.restart()?;
        Ok(job)
    }

    /// A job with this environment, not started yet (`restart` starts it).
    pub(super) fn prepared(env: Vec<(String, String)>) -> Self {
        DeliverJob { child: None, env }
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the process: a worker whose heartbeats stop
    /// while it still lives, as a long GC pause or a starved container would.
    pub(super) fn signal(&self, signal: &str) -> Result<u32> {
        let pid = self.child.as_ref().and_then(|c| c.id()).ok_or_else(|| anyhow!("the job is not running"))?;
        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
        if !status.success() {
            return Err(anyhow!("kill -{signal} {pid} failed"));
        }
        Ok(pid)
    }

    /// Starts the job again with the same environment.
    pub(super) fn restart(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(".local/log/chaos-deliver.log")?;
        let child = tokio::process::Command::new("target/release/deliver")
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting target/release/deliver (make chaos builds it)")?;
        self.child = Some(child);
        Ok(())
    }

    pub(super) async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}
