//! Cases for the end of a job: completion (owner, idempotence, state,
//! resources, import results, a successful delete), cancel outcomes, the
//! server's own failures and results that come after the server gave up.

use uuid::Uuid;

use super::fixture::{
    acquire_req, agent, build, fixture, new_workspace, queue_import, resource, take, workspace,
};
use crate::domain::{
    default_tags, ImportResult, JobOutcome, JobStatus, Provisioner, TemplateParameter, Transition,
    DAEMON_LOST,
};
use crate::store::{CancelResult, CompleteResult, LogRange, Store, StoreError};

/// A completed import stores what it found and both plans' resources, by
/// transition; a failed one stores no result.
pub async fn import_result_and_resources_by_transition(store: &dyn Store) {
    let f = fixture(store).await;
    let import = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let worker = take(store, import.id).await;
    assert!(store.import_result(import.id).await.expect("none yet").is_none());
    let found = ImportResult {
        parameters: vec![TemplateParameter { name: "cpu".into(), ..Default::default() }],
        variables: vec![],
        external_auth: vec![crate::domain::ExternalAuthProvider {
            id: "github".into(),
            optional: true,
        }],
        presets: vec![crate::domain::Preset {
            name: "small".into(),
            parameters: [("cpu".to_owned(), "1".to_owned())].into(),
            ..Default::default()
        }],
        stop_resources: vec![resource("home", "terraform_data")],
    };
    let imported = JobOutcome {
        resources: vec![resource("home", "terraform_data"), resource("vm", "terraform_data")],
        import: Some(found.clone()),
        ..JobOutcome::default()
    };
    assert_eq!(
        store.complete_job(import.id, worker, &imported).await.expect("complete"),
        CompleteResult::Completed
    );
    let kept = store.import_result(import.id).await.expect("result").expect("stored");
    assert_eq!(kept.parameters, found.parameters);
    assert_eq!(kept.variables, found.variables);
    let rows = store.resources_of_job(import.id).await.expect("resources");
    let by_transition: Vec<(Transition, &str)> =
        rows.iter().map(|r| (r.transition, r.resource.name.as_str())).collect();
    assert_eq!(
        by_transition,
        [(Transition::Start, "home"), (Transition::Start, "vm"), (Transition::Stop, "home")],
        "both plans' resources, by transition"
    );
    assert!(rows.iter().all(|r| r.job_id == import.id));
    assert_eq!(store.job(import.id).await.expect("job").status(), JobStatus::Succeeded);

    let failing = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let worker = take(store, failing.id).await;
    let failed = JobOutcome { error: Some("bad template".into()), ..JobOutcome::default() };
    store.complete_job(failing.id, worker, &failed).await.expect("fail");
    assert!(store.import_result(failing.id).await.expect("read").is_none(), "failed: no result");
    assert!(store.resources_of_job(failing.id).await.expect("resources").is_empty());
    assert!(store.import_result(Uuid::new_v4()).await.expect("unknown job").is_none());
}

/// Only the daemon holding a job completes it, once: later results are
/// acknowledged and change nothing. A failed build keeps the partial state
/// it reports.
pub async fn only_the_owner_completes_once(store: &dyn Store) {
    let f = fixture(store).await;
    let (_, b1, j1) = new_workspace(store, &f, "dev").await;
    let failed = JobOutcome {
        state: Some(b"partial".to_vec()),
        error: Some("boom".into()),
        error_code: Some("E_BOOM".into()),
        ..JobOutcome::default()
    };
    assert!(
        matches!(
            store.complete_job(j1.id, Uuid::new_v4(), &failed).await,
            Err(StoreError::Conflict(_))
        ),
        "no one completes a pending job"
    );
    let worker = take(store, j1.id).await;
    assert!(
        matches!(
            store.complete_job(j1.id, Uuid::new_v4(), &failed).await,
            Err(StoreError::Conflict(_))
        ),
        "only the owner completes"
    );
    assert_eq!(store.job(j1.id).await.expect("job").status(), JobStatus::Running, "unchanged");
    assert_eq!(
        store.complete_job(j1.id, worker, &failed).await.expect("fail"),
        CompleteResult::Completed
    );
    assert_eq!(
        store.complete_job(j1.id, worker, &JobOutcome::default()).await.expect("again"),
        CompleteResult::AlreadyCompleted
    );
    let job = store.job(j1.id).await.expect("job");
    assert_eq!(job.status(), JobStatus::Failed);
    assert_eq!((job.error.as_deref(), job.error_code.as_deref()), (Some("boom"), Some("E_BOOM")));
    assert!(job.completed_at.is_some());
    assert_eq!(store.build(b1.id).await.expect("build").provisioner_state, b"partial");
    assert!(matches!(
        store.complete_job(Uuid::new_v4(), worker, &JobOutcome::default()).await,
        Err(StoreError::NotFound)
    ));
}

/// A successful build stores its new state and resources under its
/// transition; a result without state keeps the state the build started
/// from.
pub async fn successful_build_stores_state_and_resources(store: &dyn Store) {
    let f = fixture(store).await;
    let (ws, b1, j1) = new_workspace(store, &f, "dev").await;
    let worker = take(store, j1.id).await;
    let ok = JobOutcome {
        state: Some(b"new-state".to_vec()),
        resources: vec![resource("vm", "echo"), resource("disk", "echo")],
        ..JobOutcome::default()
    };
    store.complete_job(j1.id, worker, &ok).await.expect("complete");
    assert_eq!(store.job(j1.id).await.expect("job").status(), JobStatus::Succeeded);
    assert_eq!(store.build(b1.id).await.expect("build").provisioner_state, b"new-state");
    let rows = store.resources_of_job(j1.id).await.expect("resources");
    let got: Vec<_> = rows.iter().map(|r| (r.transition, r.resource.name.as_str())).collect();
    assert_eq!(got, [(Transition::Start, "vm"), (Transition::Start, "disk")], "in order");
    assert!(!store.workspace(ws.id).await.expect("ws").deleted);

    let (b2, j2) = build(&f, ws.id, 2, Transition::Stop);
    store.insert_build(&b2, &j2).await.expect("stop");
    let worker = take(store, j2.id).await;
    store.complete_job(j2.id, worker, &JobOutcome::default()).await.expect("complete");
    assert_eq!(store.build(b2.id).await.expect("b2").provisioner_state, b"old-state");
    assert!(store.resources_of_job(j2.id).await.expect("resources").is_empty());
}

/// A successful delete marks the workspace deleted and stores its
/// resources; a failed or canceled one leaves the workspace live.
pub async fn successful_delete_marks_the_workspace_deleted(store: &dyn Store) {
    let f = fixture(store).await;
    let (ws, _, j1) = new_workspace(store, &f, "dev").await;
    let worker = take(store, j1.id).await;
    store.complete_job(j1.id, worker, &JobOutcome::default()).await.expect("start");
    let failed = JobOutcome { error: Some("boom".into()), ..JobOutcome::default() };
    let canceled = JobOutcome { canceled: true, ..JobOutcome::default() };
    for (number, outcome) in [(2, failed), (3, canceled)] {
        let (b, j) = build(&f, ws.id, number, Transition::Delete);
        store.insert_build(&b, &j).await.expect("delete build");
        let worker = take(store, j.id).await;
        store.complete_job(j.id, worker, &outcome).await.expect("complete");
        assert!(!store.workspace(ws.id).await.expect("ws").deleted, "{outcome:?}");
    }
    let (b4, j4) = build(&f, ws.id, 4, Transition::Delete);
    store.insert_build(&b4, &j4).await.expect("fourth build");
    let worker = take(store, j4.id).await;
    let r = resource("vm", "echo");
    let ok = JobOutcome { state: Some(Vec::new()), resources: vec![r], ..JobOutcome::default() };
    store.complete_job(j4.id, worker, &ok).await.expect("complete");
    assert!(store.workspace(ws.id).await.expect("ws").deleted);
    let rows = store.resources_of_job(j4.id).await.expect("resources");
    assert_eq!(rows.iter().map(|r| r.transition).collect::<Vec<_>>(), [Transition::Delete]);
    assert!(store.build(b4.id).await.expect("b4").provisioner_state.is_empty());
    assert!(matches!(
        store.workspace_by_owner_and_name(f.user.id, "dev").await,
        Err(StoreError::NotFound)
    ));
    let (listed, count) = store.workspaces(&Default::default()).await.expect("list");
    assert_eq!((listed.len(), count), (0, 0), "a deleted workspace is not listed");
}

/// Cancel: a pending job completes at once; a running one becomes
/// canceling and ends canceled whatever its daemon reports; a job that
/// ended or is canceling already is left alone.
pub async fn cancel_outcomes(store: &dyn Store) {
    let f = fixture(store).await;
    let ws = workspace(&f, "dev");
    let (b1, j1) = build(&f, ws.id, 1, Transition::Start);
    store.insert_workspace(&ws, &b1, &j1).await.expect("workspace");
    assert_eq!(store.cancel_job(j1.id).await.expect("cancel"), CancelResult::CanceledPending);
    let job = store.job(j1.id).await.expect("job");
    assert_eq!(job.status(), JobStatus::Canceled);
    assert!(job.canceled_at.is_some() && job.completed_at.is_some());
    assert_eq!(store.cancel_job(j1.id).await.expect("again"), CancelResult::AlreadyDone);
    let nothing = store.acquire_job(&acquire_req(Uuid::new_v4())).await.expect("acquire");
    assert!(nothing.is_none(), "a canceled job is not handed out");

    // Running: canceling until the daemon reports; its success still reads
    // canceled.
    let (b2, j2) = build(&f, ws.id, 2, Transition::Start);
    store.insert_build(&b2, &j2).await.expect("second build");
    let worker = take(store, j2.id).await;
    assert_eq!(store.cancel_job(j2.id).await.expect("cancel"), CancelResult::Canceling);
    assert_eq!(store.job(j2.id).await.expect("job").status(), JobStatus::Canceling);
    assert_eq!(store.cancel_job(j2.id).await.expect("cancel"), CancelResult::AlreadyDone);
    let (early, early_job) = build(&f, ws.id, 3, Transition::Stop);
    assert!(
        matches!(store.insert_build(&early, &early_job).await, Err(StoreError::Conflict(_))),
        "a canceling build is still active"
    );
    let ok = JobOutcome { state: Some(b"stopped-halfway".to_vec()), ..JobOutcome::default() };
    store.complete_job(j2.id, worker, &ok).await.expect("complete");
    assert_eq!(store.job(j2.id).await.expect("job").status(), JobStatus::Canceled);
    assert_eq!(store.build(b2.id).await.expect("b2").provisioner_state, b"stopped-halfway");

    // A daemon that stopped a job on its own reports it canceled.
    let (b3, j3) = build(&f, ws.id, 3, Transition::Stop);
    store.insert_build(&b3, &j3).await.expect("third build");
    let worker = take(store, j3.id).await;
    let stopped = JobOutcome { canceled: true, ..JobOutcome::default() };
    store.complete_job(j3.id, worker, &stopped).await.expect("complete");
    assert_eq!(store.job(j3.id).await.expect("job").status(), JobStatus::Canceled);
    assert_eq!(store.cancel_job(j3.id).await.expect("ended"), CancelResult::AlreadyDone);
    assert!(matches!(store.cancel_job(Uuid::new_v4()).await, Err(StoreError::NotFound)));
}

/// The server fails a job whoever holds it, pending or running, once;
/// the build keeps its state.
pub async fn fail_job_ignores_the_owner(store: &dyn Store) {
    let f = fixture(store).await;
    let (ws, b1, j1) = new_workspace(store, &f, "dev").await;
    take(store, j1.id).await;
    let done = store.fail_job(j1.id, "timed out", Some("TIMEOUT")).await.expect("fail");
    assert_eq!(done, CompleteResult::Completed);
    let job = store.job(j1.id).await.expect("job");
    assert_eq!(job.status(), JobStatus::Failed);
    assert_eq!(
        (job.error.as_deref(), job.error_code.as_deref()),
        (Some("timed out"), Some("TIMEOUT"))
    );
    assert_eq!(store.build(b1.id).await.expect("b1").provisioner_state, b"old-state");
    let again = store.fail_job(j1.id, "again", None).await.expect("again");
    assert_eq!(again, CompleteResult::AlreadyCompleted);
    assert_eq!(store.job(j1.id).await.expect("job").error.as_deref(), Some("timed out"));

    let (b2, j2) = build(&f, ws.id, 2, Transition::Start);
    store.insert_build(&b2, &j2).await.expect("pending build");
    store.fail_job(j2.id, "never started", None).await.expect("fail a pending job");
    let job = store.job(j2.id).await.expect("job");
    assert_eq!((job.status(), job.error_code), (JobStatus::Failed, None));
    assert_eq!(store.queue_position(j2.id).await.expect("position"), (0, 0));
    assert!(matches!(store.fail_job(Uuid::new_v4(), "x", None).await, Err(StoreError::NotFound)));
}

/// A result that comes after the server failed the job as
/// `PROVISIONER_DAEMON_LOST`: its state is kept (and passed to a newer build
/// that has not started), once; with a newer build started, the conflict is
/// recorded instead of touching that build.
pub async fn late_results_keep_the_state(store: &dyn Store) {
    let f = fixture(store).await;
    let ws = workspace(&f, "late");
    let (worker, other) = (Uuid::new_v4(), Uuid::new_v4());
    let lost = Some(DAEMON_LOST);
    let state =
        |s: &str| JobOutcome { state: Some(s.as_bytes().to_vec()), ..JobOutcome::default() };
    let acquire = |w: Uuid| async move {
        store.acquire_job(&acquire_req(w)).await.expect("acquire").expect("a job")
    };
    let (b1, j1) = build(&f, ws.id, 1, Transition::Start);
    store.insert_workspace(&ws, &b1, &j1).await.expect("workspace");
    assert_eq!(acquire(worker).await.id, j1.id);
    store.fail_job(j1.id, "daemon went silent", lost).await.expect("reap");
    let (b2, j2) = build(&f, ws.id, 2, Transition::Start);
    store.insert_build(&b2, &j2).await.expect("retry after the reap");

    assert_eq!(
        store.complete_job(j1.id, other, &state("x")).await.expect("stranger"),
        CompleteResult::AlreadyCompleted,
        "only the daemon that ran it reports late"
    );
    let late = store.complete_job(j1.id, worker, &state("late-1")).await.expect("late");
    assert!(matches!(late, CompleteResult::Late { conflict: false, .. }), "{late:?}");
    assert_eq!(store.build(b1.id).await.expect("b1").provisioner_state, b"late-1");
    assert_eq!(
        store.build(b2.id).await.expect("b2").provisioner_state,
        b"late-1",
        "the pending retry starts from what exists"
    );
    let j = store.job(j1.id).await.expect("job 1");
    assert_eq!(j.status(), JobStatus::Failed, "the build still reads failed");
    let error = j.error.unwrap_or_default();
    assert!(error.starts_with("daemon went silent; ") && error.contains("kept"), "{error}");
    let logs = store.logs(j1.id, LogRange::default()).await.expect("logs");
    assert_eq!(logs.last().map(|l| l.line.stage.as_str()), Some("Late result"));
    assert_eq!(
        store.complete_job(j1.id, worker, &state("again")).await.expect("resent"),
        CompleteResult::AlreadyCompleted,
        "a resent late result is only acknowledged"
    );
    assert_eq!(store.build(b1.id).await.expect("b1").provisioner_state, b"late-1");

    // The retry is reaped too, and a third build starts before its daemon
    // reports: that build's state stands; the conflict is on build 2.
    assert_eq!(acquire(other).await.id, j2.id);
    store.fail_job(j2.id, "daemon went silent", lost).await.expect("reap");
    let (b3, j3) = build(&f, ws.id, 3, Transition::Stop);
    store.insert_build(&b3, &j3).await.expect("third build");
    assert_eq!(acquire(worker).await.id, j3.id);
    let late = store.complete_job(j2.id, other, &state("late-2")).await.expect("late");
    let CompleteResult::Late { note, conflict: true } = late else { panic!("{late:?}") };
    assert!(note.contains("build #3"), "{note}");
    assert_eq!(store.build(b2.id).await.expect("b2").provisioner_state, b"late-2");
    assert_eq!(store.build(b3.id).await.expect("b3").provisioner_state, b"old-state");
    let error = store.job(j2.id).await.expect("job 2").error.unwrap_or_default();
    assert!(error.contains("conflict"), "{error}");

    // A late result without state leaves the state alone.
    store.fail_job(j3.id, "daemon went silent", lost).await.expect("reap");
    let late = store.complete_job(j3.id, worker, &JobOutcome::default()).await.expect("late");
    let CompleteResult::Late { note, conflict: false } = late else { panic!("{late:?}") };
    assert!(note.contains("no state"), "{note}");
    assert_eq!(store.build(b3.id).await.expect("b3").provisioner_state, b"old-state");

    // A job failed for another reason takes no late result.
    let (b4, j4) = build(&f, ws.id, 4, Transition::Start);
    store.insert_build(&b4, &j4).await.expect("fourth build");
    assert_eq!(acquire(worker).await.id, j4.id);
    store.fail_job(j4.id, "timed out", None).await.expect("fail");
    let result = store.complete_job(j4.id, worker, &state("late-4")).await.expect("result");
    assert_eq!(result, CompleteResult::AlreadyCompleted);
    assert_eq!(store.build(b4.id).await.expect("b4").provisioner_state, b"old-state");
}

/// An agent is found by its id in the newest build that reported it; the
/// agents an import planned belong to no workspace and are not found.
pub async fn agents_are_found_in_their_newest_build(store: &dyn Store) {
    let f = fixture(store).await;
    let with_agents = |ids: &[Uuid]| {
        let mut r = resource("vm", "echo");
        r.agents = ids.iter().map(|id| agent(*id)).collect();
        r
    };
    let (kept, planned, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());

    let import = queue_import(store, &f, default_tags(), Provisioner::Echo).await;
    let worker = take(store, import.id).await;
    let imported = JobOutcome {
        resources: vec![with_agents(&[planned])],
        import: Some(ImportResult::default()),
        ..JobOutcome::default()
    };
    store.complete_job(import.id, worker, &imported).await.expect("import");
    assert!(matches!(store.build_of_agent(planned).await, Err(StoreError::NotFound)));

    let (ws, b1, j1) = new_workspace(store, &f, "dev").await;
    let worker = take(store, j1.id).await;
    let first = JobOutcome {
        resources: vec![with_agents(&[kept, other]), resource("disk", "echo")],
        ..JobOutcome::default()
    };
    store.complete_job(j1.id, worker, &first).await.expect("first");
    assert_eq!(store.build_of_agent(kept).await.expect("kept").id, b1.id);
    assert_eq!(store.build_of_agent(other).await.expect("other").id, b1.id);

    // The agent's resource survives the next build: the newer one has it.
    let (b2, j2) = build(&f, ws.id, 2, Transition::Start);
    store.insert_build(&b2, &j2).await.expect("second");
    let worker = take(store, j2.id).await;
    let second = JobOutcome { resources: vec![with_agents(&[kept])], ..JobOutcome::default() };
    store.complete_job(j2.id, worker, &second).await.expect("second");
    assert_eq!(store.build_of_agent(kept).await.expect("kept").id, b2.id);
    assert_eq!(store.build_of_agent(other).await.expect("other").id, b1.id);
    assert!(matches!(store.build_of_agent(Uuid::new_v4()).await, Err(StoreError::NotFound)));
}

/// A dry run plans only: once it ends it changes nothing. The status and
/// outdated filters look past it (`domain::build_speaks_for_workspace`,
/// spelled in the list SQL), and a dry-run delete leaves its workspace
/// live; while it is active it is the workspace's build in progress.
pub async fn dry_runs_that_ended_change_nothing(store: &dyn Store) {
    use crate::domain::{build_speaks_for_workspace, BuildStatus, JobInput};
    use crate::store::WorkspaceFilter;
    let f = fixture(store).await;
    let (ws, _, j1) = new_workspace(store, &f, "dev").await;
    let worker = take(store, j1.id).await;
    store.complete_job(j1.id, worker, &JobOutcome::default()).await.expect("start");
    let listed = |status: BuildStatus| async move {
        let filter = WorkspaceFilter { status: Some(status), ..WorkspaceFilter::default() };
        let (page, _) = store.workspaces(&filter).await.expect("list");
        page.iter().any(|w| w.id == ws.id)
    };
    for (number, transition) in [(2, Transition::Stop), (3, Transition::Delete)] {
        let (b, mut j) = build(&f, ws.id, number, transition);
        let input =
            JobInput::WorkspaceBuild { workspace_build_id: b.id, dry_run: true, log_level: None };
        j.input = serde_json::to_value(input).expect("input");
        store.insert_build(&b, &j).await.expect("dry run");
        assert!(listed(BuildStatus::Pending).await, "{transition}: a pending dry run shows");
        let worker = take(store, j.id).await;
        store.complete_job(j.id, worker, &JobOutcome::default()).await.expect("planned");
        let done = store.job(j.id).await.expect("job");
        assert!(done.is_dry_run() && !build_speaks_for_workspace(&done), "the domain agrees");
        assert!(listed(BuildStatus::Running).await, "{transition}: still running");
        for other in [BuildStatus::Stopped, BuildStatus::Deleted, BuildStatus::Pending] {
            assert!(!listed(other).await, "{transition}: not {other}");
        }
        assert!(!store.workspace(ws.id).await.expect("ws").deleted, "{transition}");
    }
}

/// A successful start build of a workspace with a ttl carries its deadline
/// (the completion's time plus the ttl) as soon as the completion returns:
/// it is written in the completion's transaction, so no reader sees the
/// build succeeded without it. Without a ttl, or for a failed start or a
/// stop, there is none.
pub async fn a_start_build_gets_its_deadline_with_the_completion(store: &dyn Store) {
    let f = fixture(store).await;
    let mut ws = workspace(&f, "timed");
    ws.ttl_ms = Some(3_600_000);
    let (b1, j1) = build(&f, ws.id, 1, Transition::Start);
    store.insert_workspace(&ws, &b1, &j1).await.expect("workspace");
    let worker = take(store, j1.id).await;
    store.complete_job(j1.id, worker, &JobOutcome::default()).await.expect("complete");
    let done = store.build(b1.id).await.expect("build");
    let completed = store.job(j1.id).await.expect("job").completed_at.expect("completed");
    assert_eq!(done.deadline, Some(completed + chrono::Duration::hours(1)));

    // A stop build gets none; a failed start gets none either.
    let (b2, j2) = build(&f, ws.id, 2, Transition::Stop);
    store.insert_build(&b2, &j2).await.expect("stop");
    let worker = take(store, j2.id).await;
    store.complete_job(j2.id, worker, &JobOutcome::default()).await.expect("stop");
    let stopped = store.build(b2.id).await.expect("b2");
    assert_eq!(stopped.deadline, None);
    // Even a completion that writes nothing else on the build touches it:
    // a build row older than its job's completion was read before it.
    let stop_done = store.job(j2.id).await.expect("j2").completed_at.expect("completed");
    assert_eq!((done.updated_at, stopped.updated_at), (completed, stop_done));
    let (b3, j3) = build(&f, ws.id, 3, Transition::Start);
    store.insert_build(&b3, &j3).await.expect("start");
    let worker = take(store, j3.id).await;
    let failed = JobOutcome { error: Some("boom".into()), ..JobOutcome::default() };
    store.complete_job(j3.id, worker, &failed).await.expect("fail");
    assert_eq!(store.build(b3.id).await.expect("b3").deadline, None);

    // No ttl, no deadline.
    let (_, b, j) = new_workspace(store, &f, "manual").await;
    let worker = take(store, j.id).await;
    store.complete_job(j.id, worker, &JobOutcome::default()).await.expect("complete");
    assert_eq!(store.build(b.id).await.expect("build").deadline, None);
}

/// A completion's timings are stored with it, in the order reported, to
/// the microsecond; a repeated completion adds none, and a job that
/// reported none (or is unknown) has none.
pub async fn timings_are_stored_with_the_completion(store: &dyn Store) {
    use crate::domain::{ProvisionerTiming, TimingStage};
    use chrono::SubsecRound;
    let f = fixture(store).await;
    let (_, _, j1) = new_workspace(store, &f, "timed").await;
    let worker = take(store, j1.id).await;
    assert!(store.job_timings(j1.id).await.expect("none yet").is_empty());
    let t0 = chrono::Utc::now().trunc_subsecs(6);
    let timing = |ms: i64, stage: TimingStage, source: &str, action: &str, resource: &str| {
        ProvisionerTiming {
            started_at: t0 + chrono::Duration::milliseconds(ms),
            ended_at: t0 + chrono::Duration::microseconds(ms * 1000 + 1234),
            stage,
            source: source.into(),
            action: action.into(),
            resource: resource.into(),
        }
    };
    let timings = vec![
        timing(0, TimingStage::Init, "terraform", "initializing terraform", "state file"),
        timing(900, TimingStage::Plan, "coder", "read", "data.coder_workspace.me"),
        timing(
            950,
            TimingStage::Graph,
            "terraform",
            "building terraform dependency graph",
            "state file",
        ),
        timing(1000, TimingStage::Apply, "coder", "create", "coder_agent.main"),
        timing(1000, TimingStage::Apply, "terraform", "create", "terraform_data.vm[0]"),
    ];
    let ok = JobOutcome { timings: timings.clone(), ..JobOutcome::default() };
    store.complete_job(j1.id, worker, &ok).await.expect("complete");
    assert_eq!(store.job_timings(j1.id).await.expect("timings"), timings);
    assert_eq!(
        store.complete_job(j1.id, worker, &ok).await.expect("again"),
        CompleteResult::AlreadyCompleted
    );
    assert_eq!(store.job_timings(j1.id).await.expect("timings").len(), timings.len());

    let (_, _, j2) = new_workspace(store, &f, "untimed").await;
    let worker = take(store, j2.id).await;
    store.complete_job(j2.id, worker, &JobOutcome::default()).await.expect("complete");
    assert!(store.job_timings(j2.id).await.expect("none").is_empty());
    assert!(store.job_timings(Uuid::new_v4()).await.expect("unknown").is_empty());
}
