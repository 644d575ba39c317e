//! The scheduler (Coder's autobuild executor): every poll interval it asks
//! the use case `App::autobuild_tick` to queue the autostart and autostop
//! builds the workspaces' schedules owe. The rules live in `app` and
//! `domain::schedule`; this loop only keeps time. Several replicas may run
//! it on one database: the store refuses a second active build per
//! workspace, so each owed build is queued once.
//!
//! The clock is injectable ([`Clock`]), so tests can move time instead of
//! waiting for a minute boundary.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::AppState;

/// The shortest tick, so a zero interval set in code cannot spin.
const MIN_TICK: Duration = Duration::from_millis(50);

/// Where the scheduler reads the time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// A clock that reads `f` (tests: a clock ahead of the system's).
    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Ticks every `autobuild_poll_interval` until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let every = state.settings.autobuild_poll_interval.max(MIN_TICK);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = state.settings.clock.now();
        if let Err(e) = state.app().autobuild_tick(now).await {
            tracing::error!(error = %e, "the scheduler could not list scheduled workspaces");
        }
    }
}
