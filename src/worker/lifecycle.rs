//! When a daemon stops: the policy, without I/O.
//!
//! A daemon drains (takes no new jobs, finishes running ones, exits) on the
//! first signal, after `--max-jobs` jobs, or after `--idle-timeout` without
//! work. It aborts (cancels running jobs and reports them) on the second
//! signal or when a drain outlasts `--drain-timeout`. After an abort it gives
//! up reporting once the cancel grace and a short report window have passed,
//! so a daemon always exits, even when the server cannot be reached.

use std::time::Duration;

use tokio::time::Instant;

/// Time to report canceled jobs after terraform had its cancel grace.
pub const REPORT_WINDOW: Duration = Duration::from_secs(10);

/// The operator's limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct StopPolicy {
    pub max_jobs: Option<u64>,
    pub idle_timeout: Option<Duration>,
    pub drain_timeout: Option<Duration>,
    /// The cancel grace terraform gets between SIGINT and SIGKILL.
    pub cancel_grace: Duration,
}

/// What a deadline asks for when it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Idle too long: drain (and so exit).
    Drain,
    /// Drained too long: cancel the running jobs.
    Abort,
    /// Aborted and still not done: exit without waiting for reports.
    GiveUp,
}

#[derive(Debug)]
pub struct Lifecycle {
    policy: StopPolicy,
    draining_since: Option<Instant>,
    aborted_at: Option<Instant>,
    gave_up: bool,
    last_active: Instant,
    started: u64,
}

impl Lifecycle {
    pub fn new(policy: StopPolicy) -> Self {
        Self {
            policy,
            draining_since: None,
            aborted_at: None,
            gave_up: false,
            last_active: Instant::now(),
            started: 0,
        }
    }

    pub fn draining(&self) -> bool {
        self.draining_since.is_some()
    }

    pub fn aborted(&self) -> bool {
        self.aborted_at.is_some()
    }

    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// Starts draining; `false` if it already was.
    pub fn begin_drain(&mut self) -> bool {
        let first = self.draining_since.is_none();
        self.draining_since.get_or_insert_with(Instant::now);
        first
    }

    /// Starts aborting (draining too); `false` if it already was.
    pub fn begin_abort(&mut self) -> bool {
        self.begin_drain();
        let first = self.aborted_at.is_none();
        self.aborted_at.get_or_insert_with(Instant::now);
        first
    }

    /// Counts a job; `true` when that was the last one `--max-jobs` allows.
    pub fn job_started(&mut self) -> bool {
        self.started += 1;
        self.last_active = Instant::now();
        self.policy.max_jobs.is_some_and(|max| self.started >= max)
    }

    pub fn job_finished(&mut self) {
        self.last_active = Instant::now();
    }

    /// The next deadline, given whether the daemon runs no job now.
    pub fn next_deadline(&self, idle: bool) -> Option<(Instant, Due)> {
        if self.gave_up {
            return None;
        }
        if let Some(at) = self.aborted_at {
            return Some((at + self.policy.cancel_grace + REPORT_WINDOW, Due::GiveUp));
        }
        if let Some(since) = self.draining_since {
            return self.policy.drain_timeout.map(|t| (since + t, Due::Abort));
        }
        match (idle, self.policy.idle_timeout) {
            (true, Some(t)) => Some((self.last_active + t, Due::Drain)),
            _ => None,
        }
    }

    /// Applies a deadline that passed.
    pub fn on_due(&mut self, due: Due) {
        match due {
            Due::Drain => {
                self.begin_drain();
            }
            Due::Abort => {
                self.begin_abort();
            }
            Due::GiveUp => self.gave_up = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> StopPolicy {
        StopPolicy {
            max_jobs: Some(2),
            idle_timeout: Some(Duration::from_secs(60)),
            drain_timeout: Some(Duration::from_secs(300)),
            cancel_grace: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_then_drain_then_abort_then_give_up() {
        let mut l = Lifecycle::new(policy());
        let (at, due) = l.next_deadline(true).expect("idle deadline");
        assert_eq!((at - Instant::now(), due), (Duration::from_secs(60), Due::Drain));
        assert_eq!(l.next_deadline(false), None, "no idle deadline while a job runs");
        l.on_due(Due::Drain);
        assert!(l.draining() && !l.aborted());
        let (at, due) = l.next_deadline(false).expect("drain deadline");
        assert_eq!((at - Instant::now(), due), (Duration::from_secs(300), Due::Abort));
        tokio::time::advance(Duration::from_secs(300)).await;
        l.on_due(Due::Abort);
        let (at, due) = l.next_deadline(false).expect("report deadline");
        assert_eq!(
            (at - Instant::now(), due),
            (Duration::from_secs(5) + REPORT_WINDOW, Due::GiveUp)
        );
        l.on_due(Due::GiveUp);
        assert!(l.gave_up());
        assert_eq!(l.next_deadline(false), None);
    }

    #[tokio::test(start_paused = true)]
    async fn max_jobs_and_repeated_signals() {
        let mut l = Lifecycle::new(policy());
        assert!(!l.job_started());
        assert!(l.job_started(), "the second job is the last one allowed");
        assert!(l.begin_drain());
        assert!(!l.begin_drain(), "a second drain changes nothing");
        assert!(l.begin_abort());
        assert!(!l.begin_abort());
        let unlimited = Lifecycle::new(StopPolicy::default());
        assert_eq!(unlimited.next_deadline(true), None);
    }
}
