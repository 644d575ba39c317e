//! Fails running jobs whose daemon went silent: killed, partitioned, or
//! lost with a server restart. Without this, such a job would stay
//! `running` forever and block its workspace. The build's previous state is
//! kept (a failure never overwrites state), so the next build can run.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{AppState, Event};

/// Error code of jobs failed because their daemon stopped answering.
pub use crate::domain::DAEMON_LOST;
/// Error code of jobs no daemon took within the pending timeout.
pub const PENDING_TIMEOUT: &str = "PENDING_TIMEOUT";

/// Checks every heartbeat interval until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.settings.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        reap_silent(&state).await;
        reap_pending(&state).await;
    }
}

fn ago(d: std::time::Duration) -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

async fn fail(state: &AppState, job: uuid::Uuid, message: &str, code: &str) {
    match state.store.fail_job(job, message, Some(code)).await {
        Ok(_) => state.events.publish(Event::JobUpdated(job)),
        Err(e) => tracing::error!(%job, error = %e, "reaper could not fail job"),
    }
}

/// Running jobs whose daemon went silent.
async fn reap_silent(state: &AppState) {
    let timeout = state.settings.heartbeat_timeout;
    let stale = match state.store.stale_jobs(ago(timeout)).await {
        Ok(jobs) => jobs,
        Err(e) => return tracing::error!(error = %e, "reaper could not list stale jobs"),
    };
    for job in stale {
        let daemon = job.worker_name.as_deref().unwrap_or("unknown");
        let message = format!(
            "provisioner daemon {daemon:?} sent no heartbeat for {}s; the job was abandoned (the previous state is kept)",
            timeout.as_secs()
        );
        tracing::warn!(job = %job.id, %daemon, "failing job of a silent daemon");
        fail(state, job.id, &message, DAEMON_LOST).await;
    }
}

/// Jobs no daemon took in time: say whether any daemon could have.
async fn reap_pending(state: &AppState) {
    let timeout = state.settings.pending_timeout;
    let stale = match state.store.pending_jobs_before(ago(timeout)).await {
        Ok(jobs) => jobs,
        Err(e) => return tracing::error!(error = %e, "reaper could not list pending jobs"),
    };
    for job in stale {
        let tags = serde_json::to_string(&job.tags).unwrap_or_default();
        let matched = state.daemons.matching(&job.tags);
        let why = if matched.count == 0 {
            format!("no connected provisioner daemon has the tags {tags}: start one with matching --tag flags")
        } else {
            format!("{} matching provisioner daemon(s) stayed busy", matched.count)
        };
        let message =
            format!("the job waited {}s without being picked up: {why}", timeout.as_secs());
        tracing::warn!(job = %job.id, %tags, "failing job that stayed pending");
        fail(state, job.id, &message, PENDING_TIMEOUT).await;
    }
}
