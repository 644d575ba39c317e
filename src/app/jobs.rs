//! Ending jobs: a daemon's result (the daemon service) and the server
//! giving up on a job (the reaper, an offer that cannot be described).
//! Both write through the store, which applies the job state machine, and
//! then tell the event bus, so followers and daemons look again.
//!
//! No [`Subject`](super::Subject) here: a daemon is not a user, and the
//! store's owner check (`worker_id`) is what decides whose result counts.

use uuid::Uuid;

use super::{App, Error, Refusal, Result};
use crate::domain::{Job, JobOutcome, JobType, WorkspaceBuild};
use crate::server::Event;
use crate::store::{CompleteResult, StoreError};

impl App<'_> {
    /// Records the result `daemon` reports for its job. A result for a job
    /// the daemon no longer owns (failed and queued again since) is
    /// [`Error::Conflict`], whose detail says why: the caller acknowledges
    /// and drops it.
    pub async fn complete_job(
        &self,
        job_id: Uuid,
        daemon: Uuid,
        outcome: &JobOutcome,
    ) -> Result<CompleteResult> {
        let result = match self.store.complete_job(job_id, daemon, outcome).await {
            Err(StoreError::Conflict(why)) => {
                return Err(Error::Conflict(Refusal {
                    message: "The job's result was refused.".into(),
                    detail: why,
                    validations: Vec::new(),
                }))
            }
            other => other?,
        };
        // Read back once for the metrics. (A start build's deadline was
        // written by the store in the completion's own transaction.)
        let ended = match result {
            CompleteResult::Completed => self.ended(job_id).await,
            _ => None,
        };
        if !matches!(result, CompleteResult::AlreadyCompleted) {
            self.events.publish(Event::JobUpdated(job_id));
        }
        // A late result leaves the job failed as counted when it was failed.
        if let Some((job, build)) = &ended {
            count_ended(job, build.as_ref());
        }
        Ok(result)
    }

    /// Fails a job whoever owns it, with a message for its build's log and
    /// an error code (`PROVISIONER_DAEMON_LOST`, `PENDING_TIMEOUT`, ...).
    pub async fn fail_job(
        &self,
        job_id: Uuid,
        message: &str,
        code: Option<&str>,
    ) -> Result<CompleteResult> {
        let result = self.store.fail_job(job_id, message, code).await?;
        // A daemon may still run it: its session tells it to stop.
        self.events.publish(Event::JobCanceled(job_id));
        if matches!(result, CompleteResult::Completed) {
            if let Some((job, build)) = self.ended(job_id).await {
                count_ended(&job, build.as_ref());
            }
        }
        Ok(result)
    }

    /// A job that just ended, read back once, with its build when it is a
    /// workspace build. A read that fails only leaves the job uncounted.
    async fn ended(&self, job_id: Uuid) -> Option<(Job, Option<WorkspaceBuild>)> {
        let job = self.store.job(job_id).await.ok()?;
        let build = match job.job_type {
            JobType::WorkspaceBuild => self.store.build_by_job(job_id).await.ok(),
            _ => None,
        };
        Some((job, build))
    }
}

/// Counts an ended job in the metrics, by the transition of its build.
fn count_ended(job: &Job, build: Option<&WorkspaceBuild>) {
    crate::metrics::get().job_ended(job, build.map_or("", |b| b.transition.as_str()));
}
