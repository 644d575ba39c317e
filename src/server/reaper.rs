//! Fails running jobs whose daemon went silent: killed, partitioned, or
//! lost with a server restart. Without this, such a job would stay
//! `running` forever and block its workspace. The build's previous state is
//! kept (a failure never overwrites state), so the next build can run.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{AppState, Event};

/// Error code of jobs failed because their daemon stopped answering.
pub const DAEMON_LOST: &str = "PROVISIONER_DAEMON_LOST";

/// Checks every heartbeat interval until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let timeout = state.settings.heartbeat_timeout;
    let mut tick = tokio::time::interval(state.settings.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(age) = chrono::Duration::from_std(timeout) else { return };
        let stale = match state.store.stale_jobs(Utc::now() - age).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = %e, "reaper could not list stale jobs");
                continue;
            }
        };
        for job in stale {
            let daemon = job.worker_name.as_deref().unwrap_or("unknown");
            let message = format!(
                "provisioner daemon {daemon:?} sent no heartbeat for {}s; the job was abandoned (the previous state is kept)",
                timeout.as_secs()
            );
            tracing::warn!(job = %job.id, %daemon, "failing job of a silent daemon");
            match state.store.fail_job(job.id, &message, Some(DAEMON_LOST)).await {
                Ok(_) => state.events.publish(Event::JobUpdated(job.id)),
                Err(e) => tracing::error!(job = %job.id, error = %e, "reaper could not fail job"),
            }
        }
    }
}
