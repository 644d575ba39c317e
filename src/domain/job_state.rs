//! The job and build state machine as pure decisions: what cancelling,
//! releasing, completing or failing a job does, what a late result does to
//! its build and to newer builds, and the one-active-build rule.
//!
//! Each function takes the rows a store backend read under its lock (the
//! job, its build, the newer builds of the workspace, `now`) and returns a
//! decision saying exactly what to write: the job row as it must be
//! afterwards, which builds get which state, whether the workspace becomes
//! deleted, the note and log line of a late result, and the result to hand
//! back. A backend only locks, reads, calls these and writes, so a second
//! backend reuses every rule without copying one. What a status *is* stays
//! in `domain.rs` (`Job::status`, `build_status`); this module decides how
//! the timestamps those rules read change. No I/O here.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    schedule, Job, JobOutcome, JobStatus, JobType, LogLevel, LogLine, LogSource, Transition,
    WorkspaceBuild, DAEMON_LOST,
};

/// Result of cancelling a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelResult {
    /// The job was pending and is now completed as canceled.
    CanceledPending,
    /// The job is running; it is now canceling and its daemon must stop it.
    Canceling,
    /// The job had already completed or was already canceling.
    AlreadyDone,
}

/// Result of completing a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteResult {
    Completed,
    /// The job had already completed; nothing changed (completion is idempotent).
    AlreadyCompleted,
    /// The server had given up on the job (its daemon went silent) before
    /// this result came. Its state and resources were kept on the build, and
    /// passed on to newer builds that have not started, unless one has
    /// started: then `conflict` is set and the newer build's state stands.
    /// `note` says what happened; it was also added to the job's error and
    /// logs.
    Late {
        note: String,
        conflict: bool,
    },
}

/// What cancelling a job does.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancel {
    pub result: CancelResult,
    /// The job row to write; `None` when nothing changes.
    pub job: Option<Job>,
}

/// Cancels a job: a pending one completes as canceled at once, a running
/// one becomes canceling (its daemon must stop it and report), and one
/// that completed or is canceling already stays as it is.
pub fn cancel(job: &Job, now: DateTime<Utc>) -> Cancel {
    let mut next = job.clone();
    next.canceled_at = Some(now);
    next.updated_at = now;
    let result = match job.status() {
        JobStatus::Pending => {
            next.completed_at = Some(now);
            CancelResult::CanceledPending
        }
        JobStatus::Running => CancelResult::Canceling,
        JobStatus::Canceling | JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled => {
            return Cancel { result: CancelResult::AlreadyDone, job: None };
        }
    };
    Cancel { result, job: Some(next) }
}

/// Puts a job offered to `worker_id` and never acknowledged back to
/// pending. Returns the job row to write, or `None` when nothing changes:
/// the job completed, or another daemon owns it now. A job canceled while
/// on offer has no daemon left to stop it, so it completes as canceled.
pub fn release(job: &Job, worker_id: Uuid, now: DateTime<Utc>) -> Option<Job> {
    if !job.is_active() || job.worker_id != Some(worker_id) {
        return None;
    }
    let mut next = job.clone();
    next.updated_at = now;
    if job.canceled_at.is_some() {
        next.completed_at = Some(now);
    } else {
        next.started_at = None;
        next.worker_id = None;
        next.worker_name = None;
    }
    Some(next)
}

/// Who reports a job's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    /// The daemon of that id; only the job's owner may complete it.
    Daemon(Uuid),
    /// The server itself (reaper, timeouts): it may fail any job.
    Server,
}

/// A daemon reported the end of a job another daemon owns (it was failed
/// and queued again, or the daemon never had it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job_id} is not owned by this daemon")]
pub struct NotOwner {
    pub job_id: Uuid,
}

/// What a job's end does, before any build is looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// Nothing changes: completion is idempotent, and a stale repeat is
    /// acknowledged and dropped.
    AlreadyCompleted,
    /// The first result of a job the server failed as [`DAEMON_LOST`]: the
    /// backend reads the job's build and the newer builds of its workspace
    /// and applies [`late_result`].
    Late,
    /// The job completes: write `job`, then do what `effect` says.
    Complete { job: Box<Job>, effect: Effect },
}

/// What a completion writes besides the job row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A workspace build: apply [`complete_build`] to the job's build.
    Build,
    /// A template import that reported its findings: its resources go in
    /// as the `start` transition's, the import's stop resources as the
    /// `stop` transition's, and the findings as the version's import row.
    Import,
    /// Nothing else (a dry run, or an import that reported no findings).
    Nothing,
}

/// Decides what a reported end of `job` does. `late_result_recorded` says
/// whether a late result was already recorded for it (`late_result_at`).
pub fn complete(
    job: &Job,
    late_result_recorded: bool,
    by: Reporter,
    outcome: &JobOutcome,
    now: DateTime<Utc>,
) -> Result<Completion, NotOwner> {
    let owner = match by {
        Reporter::Daemon(id) => job.worker_id == Some(id),
        Reporter::Server => true,
    };
    if !job.is_active() {
        let late = matches!(by, Reporter::Daemon(_))
            && owner
            && job.error_code.as_deref() == Some(DAEMON_LOST)
            && !late_result_recorded;
        return Ok(if late { Completion::Late } else { Completion::AlreadyCompleted });
    }
    if !owner {
        return Err(NotOwner { job_id: job.id });
    }
    let mut next = job.clone();
    next.completed_at = Some(now);
    next.updated_at = now;
    // A cancel that came first keeps its time; a daemon that stopped on its
    // own because of a cancel it saw makes the job canceled now.
    next.canceled_at = match (job.canceled_at, outcome.canceled) {
        (Some(t), _) => Some(t),
        (None, true) => Some(now),
        (None, false) => None,
    };
    next.error.clone_from(&outcome.error);
    next.error_code.clone_from(&outcome.error_code);
    let effect = match (job.job_type, &outcome.import) {
        (JobType::WorkspaceBuild, _) => Effect::Build,
        (JobType::TemplateVersionImport, Some(_)) => Effect::Import,
        _ => Effect::Nothing,
    };
    Ok(Completion::Complete { job: Box::new(next), effect })
}

/// What a completed build job writes on its build and workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCompletion<'a> {
    /// The build's new state; `None` keeps the state it has. A failed or
    /// canceled build keeps the partial state it reports too.
    pub state: Option<&'a [u8]>,
    /// The transition the outcome's resources are stored under.
    pub resources: Transition,
    /// A successful delete build marks its workspace deleted.
    pub workspace_deleted: bool,
    /// The build's deadline, written with the completion so no reader sees
    /// a running workspace without one: a start build whose job succeeded
    /// stops its workspace's ttl after the completion ([`schedule::deadline`]);
    /// `None` leaves the build's deadline as it is (none yet).
    pub deadline: Option<DateTime<Utc>>,
}

/// Decides what the outcome of `build`'s job writes. `job` is the job row
/// as the completion writes it (see [`complete`]); `ttl_ms` is the
/// workspace's ttl, read in the same transaction. A dry run's job destroyed
/// and started nothing, so it never marks its workspace deleted and gets no
/// deadline.
pub fn complete_build<'a>(
    build: &WorkspaceBuild,
    job: &Job,
    outcome: &'a JobOutcome,
    ttl_ms: Option<i64>,
) -> BuildCompletion<'a> {
    let succeeded = outcome.error.is_none() && !outcome.canceled;
    // A dry run planned only: it started nothing to stop and destroyed
    // nothing, so it neither sets a deadline nor marks its workspace deleted.
    let dry_run = job.is_dry_run();
    let deadline = match (build.transition, job.status(), job.completed_at) {
        (Transition::Start, JobStatus::Succeeded, Some(completed)) if !dry_run => {
            schedule::deadline(completed, ttl_ms)
        }
        _ => None,
    };
    BuildCompletion {
        state: outcome.state.as_deref(),
        resources: build.transition,
        workspace_deleted: build.transition == Transition::Delete && succeeded && !dry_run,
        deadline,
    }
}

/// A build of the same workspace newer than a late result's build, as the
/// late-result rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewerBuild {
    pub id: Uuid,
    pub build_number: i32,
    /// Whether its job has started (a daemon took it).
    pub started: bool,
    /// The state it was created with.
    pub provisioner_state: Vec<u8>,
}

/// What a late result writes.
#[derive(Debug, Clone, PartialEq)]
pub struct LateResult<'a> {
    /// The job row to write: it stays failed, its error gains the note.
    /// The backend also marks the late result recorded at `job.updated_at`,
    /// so a second one is [`Completion::AlreadyCompleted`].
    pub job: Job,
    /// The reported state and the builds that take it (the late build,
    /// then newer builds that have not started and still hold the state it
    /// started from), or `None` when no build's state changes.
    pub state: Option<(&'a [u8], Vec<Uuid>)>,
    /// The transition the outcome's resources are stored under for the
    /// job, or `None` when they are dropped.
    pub resources: Option<Transition>,
    /// The line appended to the job's log, after the daemon's last one.
    pub log: LogLine,
    /// What the reporter is told.
    pub result: CompleteResult,
}

/// A job's build and the newer builds of its workspace, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct BuildHistory<'b> {
    pub build: &'b WorkspaceBuild,
    pub newer: &'b [NewerBuild],
}

/// Records a result that came after the server gave up on the job. The job
/// stays failed (its build may already have been retried), but the state
/// the daemon reports describes real resources: it is stored on the build,
/// and on newer builds of the workspace that have not started (they copied
/// the state this one started from), so the next build works on what
/// exists. A newer build that has started works from the old state
/// already: its state stands, and the conflict is recorded on this build.
/// `history` is `None` for jobs that are not workspace builds.
pub fn late_result<'a>(
    job: &Job,
    history: Option<BuildHistory<'_>>,
    outcome: &'a JobOutcome,
    now: DateTime<Utc>,
) -> LateResult<'a> {
    let reported = match &outcome.error {
        _ if outcome.canceled => "canceled".to_owned(),
        Some(e) => format!("failed: {e}"),
        None => "succeeded".to_owned(),
    };
    let late = format!(
        "the daemon reported the job's result after the server had given up on it ({reported})"
    );
    let mut state = None;
    let mut resources = None;
    // Only a workspace build's result has a build to keep it on.
    let history = history.filter(|_| job.job_type == JobType::WorkspaceBuild);
    let (note, conflict) = match (history, &outcome.state) {
        (None, _) => (format!("{late}; the result was dropped"), false),
        (Some(_), None) => {
            (format!("{late}; it carried no state, so the build's previous state stands"), false)
        }
        (Some(h), Some(reported_state)) => {
            resources = Some(h.build.transition);
            match h.newer.iter().find(|b| b.started) {
                Some(started) => {
                    state = Some((reported_state.as_slice(), vec![h.build.id]));
                    let note = format!(
                        "conflict: {late}, but build #{} of the workspace had already started \
                         from the older state; the reported state is kept on this build only \
                         (GET /api/v2/workspacebuilds/{}/state): resources it describes may \
                         need to be reconciled by hand",
                        started.build_number, h.build.id
                    );
                    (note, true)
                }
                None => {
                    // Pending newer builds inherit it, unless they were
                    // given a state of their own.
                    let inherit = h
                        .newer
                        .iter()
                        .filter(|b| b.provisioner_state == h.build.provisioner_state)
                        .map(|b| b.id);
                    let builds = std::iter::once(h.build.id).chain(inherit).collect();
                    state = Some((reported_state.as_slice(), builds));
                    (format!("{late}; the state it reported was kept for the workspace"), false)
                }
            }
        }
    };
    let mut next = job.clone();
    next.updated_at = now;
    next.error = Some(match &job.error {
        Some(e) => format!("{e}; {note}"),
        None => note.clone(),
    });
    let log = LogLine {
        source: LogSource::ProvisionerDaemon,
        level: if conflict { LogLevel::Error } else { LogLevel::Warn },
        stage: "Late result".to_owned(),
        output: note.clone(),
        created_at: now,
    };
    LateResult { job: next, state, resources, log, result: CompleteResult::Late { note, conflict } }
}

/// A workspace's latest build is still active, so no other may start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("build #{build_number} of this workspace is still active")]
pub struct ActiveBuild {
    pub build_number: i32,
}

/// One active build per workspace: a new build may be queued only when the
/// job of the workspace's latest build has completed (succeeded, failed or
/// canceled). Builds only start one after another, so the latest build is
/// the only one that can be active.
pub fn ensure_no_active_build(
    latest_build_number: i32,
    latest_job: &Job,
) -> Result<(), ActiveBuild> {
    if latest_job.is_active() {
        return Err(ActiveBuild { build_number: latest_build_number });
    }
    Ok(())
}

/// A new build's number is not above the workspace's latest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("build #{build_number} of this workspace exists already (the latest is #{latest})")]
pub struct BuildNumberTaken {
    pub build_number: i32,
    pub latest: i32,
}

/// Build numbers only grow: a new build's number must be above the latest
/// build's, so two builds racing to be the next one cannot both be queued.
pub fn ensure_build_number_free(
    latest_build_number: i32,
    build_number: i32,
) -> Result<(), BuildNumberTaken> {
    if build_number <= latest_build_number {
        return Err(BuildNumberTaken { build_number, latest: latest_build_number });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
