//! Fails running jobs whose daemon went silent: killed, partitioned, or
//! lost with a server restart. Without this, such a job would stay
//! `running` forever and block its workspace. The build's previous state is
//! kept (a failure never overwrites state), so the next build can run.
//! Failing goes through the use case (`app::App::fail_job`), which also
//! tells the event bus.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::AppState;

/// Error code of jobs failed because their daemon stopped answering.
pub use crate::domain::DAEMON_LOST;
/// Error code of jobs no daemon took within the pending timeout.
pub const PENDING_TIMEOUT: &str = "PENDING_TIMEOUT";

/// The shortest reaper tick. Flags refuse a zero interval, but settings
/// built in code skip the parser, and `tokio::time::interval` panics on
/// zero: a panicked reaper would leave a dead daemon's job running forever.
/// Daemons clamp the heartbeat the server announces to the same floor.
const MIN_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Checks every heartbeat interval until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.settings.heartbeat_interval.max(MIN_TICK));
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

/// `d` before now; a timeout too long to subtract means "since ever".
fn ago(d: std::time::Duration) -> chrono::DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
}

async fn fail(state: &AppState, job: uuid::Uuid, message: &str, code: &str) {
    if let Err(e) = state.app().fail_job(job, message, Some(code)).await {
        tracing::error!(%job, error = %e, "reaper could not fail job");
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
    if !stale.is_empty() {
        // Every replica's daemons as they are now, so the message names the
        // same daemons whichever replica sends it.
        let _ = state.daemons.current().await;
    }
    for job in stale {
        let tags = serde_json::to_string(&job.tags).unwrap_or_default();
        let provisioner = job.provisioner.as_str();
        let matched = state.daemons.matching(&job.tags, provisioner);
        let why = if matched.count == 0 {
            format!(
                "no connected provisioner daemon has the tags {tags} and runs {provisioner} jobs: \
                 start one with matching --tag flags (and {provisioner} installed)"
            )
        } else {
            format!("{} matching provisioner daemon(s) stayed busy", matched.count)
        };
        let message =
            format!("the job waited {}s without being picked up: {why}", timeout.as_secs());
        tracing::warn!(job = %job.id, %tags, "failing job that stayed pending");
        fail(state, job.id, &message, PENDING_TIMEOUT).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ago;

    /// A timeout too long for the clock means no job is stale yet, not a
    /// panic in the reaper.
    #[test]
    fn ago_survives_any_timeout() {
        assert_eq!(ago(Duration::MAX), chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let hour = ago(Duration::from_secs(3600));
        let delta = chrono::Utc::now() - hour;
        assert!(
            delta >= chrono::Duration::seconds(3600) && delta < chrono::Duration::seconds(3660)
        );
    }
}
