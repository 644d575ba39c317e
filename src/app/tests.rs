//! The use cases without HTTP: a real SQLite store in a temp dir and the
//! real event bus. They show that the server itself (a scheduler) can
//! queue builds through the same path as users, and that the rules hold
//! there too.

use tokio::sync::broadcast::error::TryRecvError;
use uuid::Uuid;

use super::*;
use crate::domain::{
    BuildReason, JobOutcome, JobStatus, Provisioner, Role, Transition, WorkspaceBuild,
};
use crate::server::{Event, Events};
use crate::store::{AcquireRequest, DynStore, File};

struct World {
    _dir: tempfile::TempDir,
    store: DynStore,
    events: Events,
    owner: User,
    member: User,
}

impl World {
    fn app(&self) -> App<'_> {
        App::new(self.store.as_ref(), &self.events)
    }
}

async fn user(store: &dyn Store, name: &str, roles: Vec<Role>) -> User {
    let user = User {
        id: Uuid::new_v4(),
        username: name.into(),
        email: format!("{name}@example.com"),
        name: String::new(),
        password_hash: "not a hash".into(),
        roles,
        created_at: chrono::Utc::now(),
    };
    store.insert_user(&user).await.expect("user");
    user
}

/// What the built-in daemon would do: take the oldest job and report success.
async fn run_next_job(store: &dyn Store) -> Uuid {
    let daemon = Uuid::new_v4();
    let req = AcquireRequest {
        worker_id: daemon,
        worker_name: "test".into(),
        tags: crate::domain::default_tags(),
        provisioners: vec![Provisioner::Echo],
    };
    let job = store.acquire_job(&req).await.expect("acquire").expect("a queued job");
    let outcome = JobOutcome { state: Some(b"{\"v\":1}".to_vec()), ..Default::default() };
    store.complete_job(job.id, daemon, &outcome).await.expect("complete");
    job.id
}

/// An owner, a member, an imported echo template, and the member's
/// workspace whose first build (a start) succeeded.
async fn world() -> (World, Uuid) {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("provisionerd.db").display());
    let store = crate::store::open(&url).await.expect("store");
    let owner = user(store.as_ref(), "owner", vec![Role::Owner]).await;
    let member = user(store.as_ref(), "member", Vec::new()).await;
    let w = World { _dir: dir, store, events: Events::new(), owner, member };
    let app = w.app();
    let as_owner = Subject::User(access::Actor::of(&w.owner));
    let file = File {
        id: Uuid::new_v4(),
        hash: "00".into(),
        mimetype: "application/x-tar".into(),
        data: vec![0; 512],
        created_by: w.owner.id,
        created_at: chrono::Utc::now(),
    };
    let file_id = w.store.insert_file(&file).await.expect("file");
    let org = w.store.default_organization().await.expect("org");
    let version = NewVersion {
        file_id,
        storage_method: "file".into(),
        provisioner: "echo".into(),
        tags: Default::default(),
        name: None,
        template_id: None,
        message: None,
        user_variable_values: Vec::new(),
    };
    let version = app.import_version(as_owner, &org.name, version).await.expect("import");
    run_next_job(w.store.as_ref()).await;
    let template = NewTemplate {
        name: "echo".into(),
        template_version_id: version.id,
        display_name: String::new(),
        description: String::new(),
    };
    let template = app.create_template(as_owner, &org.name, template).await.expect("template");
    let as_member = Subject::User(access::Actor::of(&w.member));
    let new = NewWorkspace {
        name: "dev".into(),
        template_id: Some(template.id),
        template_version_id: None,
        rich_parameter_values: Vec::new(),
        autostart_schedule: None,
        ttl_ms: None,
        automatic_updates: None,
    };
    let (ws, first) =
        app.create_workspace(as_member, &w.member, None, new).await.expect("workspace");
    assert_eq!((first.reason, first.initiator_id), (BuildReason::Initiator, w.member.id));
    run_next_job(w.store.as_ref()).await;
    (w, ws.id)
}

async fn queued_job_of(w: &World, build: &WorkspaceBuild) -> JobStatus {
    w.store.job(build.job_id).await.expect("job").status()
}

/// A scheduler stops and starts a workspace with no HTTP request and no
/// user: the builds record their reason and the owner as initiator, their
/// jobs are queued, and daemons are told.
#[tokio::test]
async fn the_system_queues_builds_with_a_reason() {
    let (w, ws) = world().await;
    let mut events = w.events.subscribe();
    let stop = BuildRequest::new(Transition::Stop, BuildReason::Autostop);
    let build = w.app().queue_build(Subject::System, ws, stop).await.expect("autostop");
    let stored = w.store.build(build.id).await.expect("stored build");
    assert_eq!(stored.reason, BuildReason::Autostop);
    assert_eq!(stored.initiator_id, w.member.id, "the workspace owner initiates system builds");
    assert_eq!(stored.build_number, 2);
    assert_eq!(stored.provisioner_state, b"{\"v\":1}", "state inherited from the last build");
    assert_eq!(queued_job_of(&w, &stored).await, JobStatus::Pending);
    assert!(matches!(events.try_recv(), Ok(Event::JobQueued)), "daemons are told");

    // The rules hold for the system too: one active build per workspace.
    let again = BuildRequest::new(Transition::Start, BuildReason::Autostart);
    let err = w.app().queue_build(Subject::System, ws, again.clone()).await.expect_err("active");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)), "nothing queued");

    run_next_job(w.store.as_ref()).await;
    let build = w.app().queue_build(Subject::System, ws, again).await.expect("autostart");
    let stored = w.store.build(build.id).await.expect("stored build");
    assert_eq!((stored.reason, stored.transition), (BuildReason::Autostart, Transition::Start));
    assert_eq!(queued_job_of(&w, &stored).await, JobStatus::Pending);
}

/// The rules live in the use case, not in a handler: a member may not
/// build another user's workspace (it is hidden), nor give a build a
/// hand-written state; stopping a stopped workspace is an invalid
/// transition whoever asks.
#[tokio::test]
async fn rules_and_permissions_hold_without_http() {
    let (w, ws) = world().await;
    let stranger = crate::store::User { id: Uuid::new_v4(), ..w.member.clone() };
    let as_stranger = Subject::User(access::Actor::of(&stranger));
    let start = BuildRequest::new(Transition::Start, BuildReason::Initiator);
    let err = w.app().queue_build(as_stranger, ws, start).await.expect_err("hidden");
    assert!(matches!(err, Error::NotFound), "{err:?}");

    let as_member = Subject::User(access::Actor::of(&w.member));
    let mut forged = BuildRequest::new(Transition::Start, BuildReason::Initiator);
    forged.state = Some(b"{}".to_vec());
    let err = w.app().queue_build(as_member, ws, forged).await.expect_err("state");
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");

    let stop = BuildRequest::new(Transition::Stop, BuildReason::Autostop);
    w.app().queue_build(Subject::System, ws, stop.clone()).await.expect("stop");
    run_next_job(w.store.as_ref()).await;
    let err = w.app().queue_build(Subject::System, ws, stop).await.expect_err("stopped");
    let Error::Invalid(refusal) = err else { panic!("want invalid, got {err:?}") };
    assert_eq!(refusal.message, "Invalid transition: the workspace is already stopped.");
    assert_eq!(refusal.validations[0].field, "transition");
}

/// Completing and failing jobs tell the event bus; a result from a daemon
/// that does not own the job is refused as a conflict, and nothing is told.
#[tokio::test]
async fn ending_jobs_tells_the_event_bus() {
    let (w, ws) = world().await;
    let stop = BuildRequest::new(Transition::Stop, BuildReason::Autostop);
    let build = w.app().queue_build(Subject::System, ws, stop).await.expect("stop");
    let mut events = w.events.subscribe();
    let outcome = JobOutcome::default();
    let err = w.app().complete_job(build.job_id, Uuid::new_v4(), &outcome).await;
    assert!(matches!(err, Err(Error::Conflict(_))), "not the owner: {err:?}");
    assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));

    w.app()
        .fail_job(build.job_id, "no daemon took it", Some("PENDING_TIMEOUT"))
        .await
        .expect("fail");
    assert!(matches!(events.try_recv(), Ok(Event::JobCanceled(id)) if id == build.job_id));
    let job = w.store.job(build.job_id).await.expect("job");
    assert_eq!(job.status(), JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some("PENDING_TIMEOUT"));
}
