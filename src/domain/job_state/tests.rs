//! Table tests of the job and build state machine: every status a job can
//! be in against each event (cancel, release, completion by its owner,
//! another daemon or the server, late results), and the build rules.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::domain::{
    BuildReason, ImportResult, JobInput, JobOrigin, JobStatus, Provisioner, Tags, DAEMON_LOST,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("time")
}

fn now() -> DateTime<Utc> {
    t0() + Duration::minutes(5)
}

const OWNER: Uuid = Uuid::from_u128(1);
const OTHER: Uuid = Uuid::from_u128(2);

/// A job of `job_type` in `status`, owned by [`OWNER`] once started.
fn job_of(job_type: JobType, status: JobStatus) -> Job {
    let origin =
        JobOrigin { organization_id: Uuid::nil(), initiator_id: Uuid::nil(), file_id: Uuid::nil() };
    let input = JobInput::WorkspaceBuild {
        workspace_build_id: Uuid::nil(),
        dry_run: false,
        log_level: None,
    };
    let mut j = Job::queued(job_type, Provisioner::Echo, origin, &input, Tags::new()).expect("job");
    j.created_at = t0();
    j.updated_at = t0();
    let started = |j: &mut Job| {
        j.started_at = Some(t0());
        j.worker_id = Some(OWNER);
        j.worker_name = Some("owner".into());
    };
    match status {
        JobStatus::Pending => {}
        JobStatus::Running => started(&mut j),
        JobStatus::Canceling => {
            started(&mut j);
            j.canceled_at = Some(t0());
        }
        JobStatus::Succeeded => {
            started(&mut j);
            j.completed_at = Some(t0());
        }
        JobStatus::Failed => {
            started(&mut j);
            j.completed_at = Some(t0());
            j.error = Some("boom".into());
        }
        JobStatus::Canceled => {
            started(&mut j);
            j.canceled_at = Some(t0());
            j.completed_at = Some(t0());
        }
    }
    assert_eq!(j.status(), status, "fixture");
    j
}

fn job(status: JobStatus) -> Job {
    job_of(JobType::WorkspaceBuild, status)
}

/// A job the reaper failed because its daemon went silent.
fn lost() -> Job {
    let mut j = job(JobStatus::Failed);
    j.error = Some("the daemon stopped answering".into());
    j.error_code = Some(DAEMON_LOST.into());
    j
}

use JobStatus::{Canceled, Canceling, Failed, Pending, Running, Succeeded};
const ALL: [JobStatus; 6] = [Pending, Running, Canceling, Succeeded, Failed, Canceled];

#[test]
fn cancel_by_status() {
    // status before, result, status after (None: nothing written)
    let table = [
        (Pending, CancelResult::CanceledPending, Some(Canceled)),
        (Running, CancelResult::Canceling, Some(Canceling)),
        (Canceling, CancelResult::AlreadyDone, None),
        (Succeeded, CancelResult::AlreadyDone, None),
        (Failed, CancelResult::AlreadyDone, None),
        (Canceled, CancelResult::AlreadyDone, None),
    ];
    for (before, result, after) in table {
        let j = job(before);
        let got = cancel(&j, now());
        assert_eq!(got.result, result, "{before}");
        assert_eq!(got.job.as_ref().map(Job::status), after, "{before}");
        if let Some(next) = got.job {
            assert_eq!(next.canceled_at, Some(now()), "{before}: canceled now");
            assert_eq!(next.updated_at, now(), "{before}");
            let completed = (before == Pending).then(now);
            assert_eq!(next.completed_at, completed, "{before}: only a pending job completes");
            assert_eq!(next.worker_id, j.worker_id, "{before}: the owner stays");
        }
    }
}

#[test]
fn release_by_status_and_owner() {
    // status before, releasing daemon, status after (None: nothing written)
    let table = [
        (Pending, OWNER, None),
        (Running, OWNER, Some(Pending)),
        (Running, OTHER, None),
        (Canceling, OWNER, Some(Canceled)),
        (Canceling, OTHER, None),
        (Succeeded, OWNER, None),
        (Failed, OWNER, None),
        (Canceled, OWNER, None),
    ];
    for (before, worker, after) in table {
        let got = release(&job(before), worker, now());
        assert_eq!(got.as_ref().map(Job::status), after, "{before} by {worker}");
        if let Some(next) = got {
            assert_eq!(next.updated_at, now());
            match after {
                Some(Pending) => {
                    assert_eq!(
                        (next.started_at, next.worker_id, next.worker_name),
                        (None, None, None)
                    );
                }
                _ => assert_eq!(next.completed_at, Some(now()), "a canceled offer completes"),
            }
        }
    }
}

fn succeeded() -> JobOutcome {
    JobOutcome { state: Some(b"new".to_vec()), ..JobOutcome::default() }
}

fn failed() -> JobOutcome {
    JobOutcome {
        state: Some(b"partial".to_vec()),
        error: Some("apply failed".into()),
        error_code: Some("E".into()),
        ..JobOutcome::default()
    }
}

fn stopped() -> JobOutcome {
    JobOutcome { canceled: true, error: Some("canceled".into()), ..JobOutcome::default() }
}

fn stopped_cleanly() -> JobOutcome {
    JobOutcome { canceled: true, ..JobOutcome::default() }
}

/// What a completion table row expects.
#[derive(Debug, PartialEq)]
enum Want {
    /// Completes with this status and canceled_at.
    Done(JobStatus, Option<DateTime<Utc>>),
    Already,
    Late,
    NotOwner,
}

fn decide(j: &Job, recorded: bool, by: Reporter, outcome: &JobOutcome) -> Want {
    match complete(j, recorded, by, outcome, now()) {
        Ok(Completion::Complete { job, effect }) => {
            assert_eq!(job.completed_at, Some(now()));
            assert_eq!(job.updated_at, now());
            assert_eq!(job.error, outcome.error);
            assert_eq!(job.error_code, outcome.error_code);
            assert_eq!(effect, Effect::Build);
            Want::Done(job.status(), job.canceled_at)
        }
        Ok(Completion::AlreadyCompleted) => Want::Already,
        Ok(Completion::Late) => Want::Late,
        Err(e) => {
            assert_eq!(e, NotOwner { job_id: j.id });
            assert_eq!(e.to_string(), format!("job {} is not owned by this daemon", j.id));
            Want::NotOwner
        }
    }
}

#[test]
fn complete_by_status_reporter_and_outcome() {
    let owner = Reporter::Daemon(OWNER);
    let other = Reporter::Daemon(OTHER);
    let server = Reporter::Server;
    let t = Some(t0());
    let n = Some(now());
    let table = [
        // A running job, by its owner, another daemon and the server.
        (Running, owner, succeeded(), Want::Done(Succeeded, None)),
        (Running, owner, failed(), Want::Done(Failed, None)),
        (Running, owner, stopped_cleanly(), Want::Done(Canceled, n)),
        (Running, owner, stopped(), Want::Done(Failed, n)),
        (Running, other, succeeded(), Want::NotOwner),
        (Running, server, failed(), Want::Done(Failed, None)),
        // A cancel that came first keeps its time, whatever the outcome.
        (Canceling, owner, succeeded(), Want::Done(Canceled, t)),
        (Canceling, owner, stopped_cleanly(), Want::Done(Canceled, t)),
        (Canceling, owner, failed(), Want::Done(Failed, t)),
        (Canceling, other, stopped(), Want::NotOwner),
        (Canceling, server, failed(), Want::Done(Failed, t)),
        // A pending job has no owner: only the server can end it.
        (Pending, owner, succeeded(), Want::NotOwner),
        (Pending, server, failed(), Want::Done(Failed, None)),
        // Completed jobs stay as they are, for anyone.
        (Succeeded, owner, succeeded(), Want::Already),
        (Succeeded, other, failed(), Want::Already),
        (Succeeded, server, failed(), Want::Already),
        (Failed, owner, succeeded(), Want::Already),
        (Failed, server, failed(), Want::Already),
        (Canceled, owner, stopped(), Want::Already),
        (Canceled, server, failed(), Want::Already),
    ];
    for (i, (before, by, outcome, want)) in table.into_iter().enumerate() {
        let got = decide(&job(before), false, by, &outcome);
        assert_eq!(got, want, "row {i}: {before} by {by:?} with {outcome:?}");
    }
}

#[test]
fn a_late_result_is_the_owners_first_after_daemon_lost() {
    let owner = Reporter::Daemon(OWNER);
    // job, already recorded, reporter, expected
    let table = [
        (lost(), false, owner, Want::Late),
        (lost(), true, owner, Want::Already),
        (lost(), false, Reporter::Daemon(OTHER), Want::Already),
        (lost(), false, Reporter::Server, Want::Already),
        (job(Failed), false, owner, Want::Already),
    ];
    for (i, (j, recorded, by, want)) in table.into_iter().enumerate() {
        for outcome in [succeeded(), failed(), stopped()] {
            assert_eq!(decide(&j, recorded, by, &outcome), want, "row {i}");
        }
    }
}

#[test]
fn completion_effect_by_job_type() {
    let import = JobOutcome { import: Some(ImportResult::default()), ..JobOutcome::default() };
    let table = [
        (JobType::WorkspaceBuild, succeeded(), Effect::Build),
        (JobType::WorkspaceBuild, import.clone(), Effect::Build),
        (JobType::TemplateVersionImport, import.clone(), Effect::Import),
        (JobType::TemplateVersionImport, failed(), Effect::Nothing),
        (JobType::TemplateVersionDryRun, import, Effect::Nothing),
    ];
    for (job_type, outcome, want) in table {
        let j = job_of(job_type, Running);
        match complete(&j, false, Reporter::Daemon(OWNER), &outcome, now()) {
            Ok(Completion::Complete { effect, .. }) => assert_eq!(effect, want, "{job_type}"),
            other => panic!("{job_type}: {other:?}"),
        }
    }
}

fn build(transition: Transition, state: &[u8]) -> WorkspaceBuild {
    WorkspaceBuild {
        id: Uuid::from_u128(10),
        workspace_id: Uuid::from_u128(20),
        build_number: 3,
        transition,
        template_version_id: Uuid::nil(),
        initiator_id: Uuid::nil(),
        reason: BuildReason::Initiator,
        provisioner_state: state.to_vec(),
        job_id: Uuid::nil(),
        deadline: None,
        max_deadline: None,
        daily_cost: 0,
        rich_parameters: Vec::new(),
        created_at: t0(),
        updated_at: t0(),
    }
}

#[test]
fn build_completion_by_transition_and_outcome() {
    use Transition::{Delete, Start, Stop};
    let no_state = JobOutcome::default();
    // transition, outcome, state written, workspace deleted
    let table: [(Transition, JobOutcome, Option<&[u8]>, bool); 9] = [
        (Start, succeeded(), Some(b"new"), false),
        (Stop, succeeded(), Some(b"new"), false),
        (Delete, succeeded(), Some(b"new"), true),
        (Delete, no_state.clone(), None, true),
        (Start, failed(), Some(b"partial"), false),
        (Delete, failed(), Some(b"partial"), false),
        (Delete, stopped(), None, false),
        (Delete, stopped_cleanly(), None, false),
        (Stop, no_state, None, false),
    ];
    for (transition, outcome, state, deleted) in table {
        let done = completed(&job(Running), &outcome);
        let got = complete_build(&build(transition, b"old"), &done, &outcome, None);
        assert_eq!(got.state, state, "{transition} {outcome:?}");
        assert_eq!(got.resources, transition);
        assert_eq!(got.workspace_deleted, deleted, "{transition} {outcome:?}");
        // A dry run destroyed and started nothing: its workspace is never
        // deleted and gets no deadline, whatever its ttl.
        let mut dry = done.clone();
        dry.input = serde_json::json!({ "dry_run": true });
        let planned = complete_build(&build(transition, b"old"), &dry, &outcome, Some(3_600_000));
        assert!(!planned.workspace_deleted, "dry run {transition} {outcome:?}");
        assert_eq!(planned.deadline, None, "dry run {transition} {outcome:?}");
    }
}

/// The job row a completion of `job` by its owner writes at [`now`].
fn completed(job: &Job, outcome: &JobOutcome) -> Job {
    match complete(job, false, Reporter::Daemon(OWNER), outcome, now()) {
        Ok(Completion::Complete { job, .. }) => *job,
        other => panic!("{other:?}"),
    }
}

/// The deadline is decided with the completion: only a start build whose
/// job succeeded gets one, the workspace's ttl after the completion; a
/// job canceled before the daemon reported success does not.
#[test]
fn a_succeeded_start_build_gets_its_deadline_with_the_completion() {
    use Transition::{Delete, Start, Stop};
    let hour = Some(3_600_000);
    let canceling = job(Canceling);
    // transition, job before, outcome, ttl, deadline
    type Row<'a> = (Transition, &'a Job, JobOutcome, Option<i64>, Option<DateTime<Utc>>);
    let table: [Row<'_>; 8] = [
        (Start, &job(Running), succeeded(), hour, Some(now() + Duration::hours(1))),
        (Start, &job(Running), succeeded(), Some(60_000), Some(now() + Duration::minutes(1))),
        (Start, &job(Running), succeeded(), None, None),
        (Start, &job(Running), failed(), hour, None),
        (Start, &job(Running), stopped_cleanly(), hour, None),
        (Start, &canceling, succeeded(), hour, None),
        (Stop, &job(Running), succeeded(), hour, None),
        (Delete, &job(Running), succeeded(), hour, None),
    ];
    for (transition, before, outcome, ttl, want) in table {
        let done = completed(before, &outcome);
        let got = complete_build(&build(transition, b"old"), &done, &outcome, ttl);
        assert_eq!(got.deadline, want, "{transition} {:?} {outcome:?} {ttl:?}", before.status());
    }
}

fn newer(n: u128, started: bool, state: &[u8]) -> NewerBuild {
    NewerBuild {
        id: Uuid::from_u128(100 + n),
        build_number: 3 + n as i32,
        started,
        provisioner_state: state.to_vec(),
    }
}

/// Newer builds, outcome, builds given the reported state, conflict, words of the note.
type LateRow = (Vec<NewerBuild>, JobOutcome, Option<Vec<Uuid>>, bool, &'static str);

#[test]
fn late_result_by_state_and_newer_builds() {
    let b = build(Transition::Start, b"old");
    let id = |n: u128| Uuid::from_u128(100 + n);
    let table: Vec<LateRow> = vec![
        (vec![], succeeded(), Some(vec![b.id]), false, "kept for the workspace"),
        (vec![newer(1, false, b"old")], succeeded(), Some(vec![b.id, id(1)]), false, "kept"),
        (vec![newer(1, false, b"given")], succeeded(), Some(vec![b.id]), false, "kept"),
        (
            vec![newer(1, false, b"old"), newer(2, false, b"given"), newer(3, false, b"old")],
            failed(),
            Some(vec![b.id, id(1), id(3)]),
            false,
            "kept for the workspace",
        ),
        (vec![newer(1, true, b"old")], succeeded(), Some(vec![b.id]), true, "build #4"),
        (
            vec![newer(1, false, b"old"), newer(2, true, b"old")],
            succeeded(),
            Some(vec![b.id]),
            true,
            "build #5 of the workspace had already started",
        ),
        (vec![], JobOutcome::default(), None, false, "carried no state"),
        (vec![newer(1, true, b"old")], stopped(), None, false, "carried no state"),
    ];
    for (i, (newer, outcome, builds, conflict, words)) in table.into_iter().enumerate() {
        let history = BuildHistory { build: &b, newer: &newer };
        let got = late_result(&lost(), Some(history), &outcome, now());
        let CompleteResult::Late { note, conflict: c } = &got.result else {
            panic!("row {i}: {:?}", got.result)
        };
        assert_eq!(*c, conflict, "row {i}");
        assert!(note.contains(words), "row {i}: {note}");
        assert_eq!(got.state.as_ref().map(|(_, ids)| ids.clone()), builds, "row {i}");
        if let Some((state, _)) = got.state {
            assert_eq!(Some(state), outcome.state.as_deref(), "row {i}: the reported state");
        }
        let resources = outcome.state.as_ref().map(|_| Transition::Start);
        assert_eq!(got.resources, resources, "row {i}: resources with the state");
        let level = if conflict { LogLevel::Error } else { LogLevel::Warn };
        assert_eq!((got.log.level, got.log.stage.as_str()), (level, "Late result"), "row {i}");
        assert_eq!((&got.log.output, got.log.created_at), (note, now()), "row {i}");
        assert_eq!(got.log.source, LogSource::ProvisionerDaemon);
        // The job stays failed as the server left it; its error gains the note.
        assert_eq!(got.job.status(), Failed, "row {i}");
        assert_eq!(got.job.error_code.as_deref(), Some(DAEMON_LOST));
        assert_eq!(got.job.completed_at, Some(t0()), "row {i}: completed when it was failed");
        assert_eq!(got.job.error, Some(format!("the daemon stopped answering; {note}")));
        assert_eq!(got.job.updated_at, now());
    }
}

#[test]
fn late_result_says_what_the_daemon_reported() {
    let b = build(Transition::Stop, b"old");
    let history = BuildHistory { build: &b, newer: &[] };
    let table = [
        (succeeded(), "(succeeded)"),
        (failed(), "(failed: apply failed)"),
        (stopped(), "(canceled)"),
        (stopped_cleanly(), "(canceled)"),
    ];
    for (outcome, words) in table {
        let got = late_result(&lost(), Some(history), &outcome, now());
        let CompleteResult::Late { note, .. } = got.result else { panic!("{:?}", got.result) };
        assert!(
            note.starts_with(
                "the daemon reported the job's result after the server had given up on it "
            ),
            "{note}"
        );
        assert!(note.contains(words), "{note}");
    }
    let mut unexplained = lost();
    unexplained.error = None;
    let outcome = succeeded();
    let got = late_result(&unexplained, Some(history), &outcome, now());
    let CompleteResult::Late { note, .. } = &got.result else { panic!("{:?}", got.result) };
    assert_eq!(got.job.error.as_ref(), Some(note), "no earlier error: the note alone");
}

#[test]
fn a_late_result_of_a_job_without_a_build_is_dropped() {
    let b = build(Transition::Start, b"old");
    for job_type in [JobType::TemplateVersionImport, JobType::TemplateVersionDryRun] {
        let mut j = job_of(job_type, Failed);
        j.error_code = Some(DAEMON_LOST.into());
        for history in [None, Some(BuildHistory { build: &b, newer: &[] })] {
            let outcome = succeeded();
            let got = late_result(&j, history, &outcome, now());
            let CompleteResult::Late { note, conflict } = &got.result else {
                panic!("{:?}", got.result)
            };
            assert!(note.ends_with("; the result was dropped"), "{note}");
            assert!(!conflict);
            assert_eq!((got.state, got.resources), (None, None), "{job_type}");
            assert_eq!(got.log.level, LogLevel::Warn);
        }
    }
}

#[test]
fn one_active_build_per_workspace() {
    for status in ALL {
        let got = ensure_no_active_build(7, &job(status));
        let active = matches!(status, Pending | Running | Canceling);
        assert_eq!(got.is_err(), active, "{status}");
        if let Err(e) = got {
            assert_eq!(e, ActiveBuild { build_number: 7 });
            assert_eq!(e.to_string(), "build #7 of this workspace is still active");
        }
    }
}

#[test]
fn build_numbers_only_grow() {
    // latest, new, free
    let table = [(1, 2, true), (1, 5, true), (2, 2, false), (3, 1, false)];
    for (latest, number, free) in table {
        assert_eq!(ensure_build_number_free(latest, number).is_ok(), free, "{latest} {number}");
    }
}
