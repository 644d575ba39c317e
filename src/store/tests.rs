//! Conformance suite for [`Store`] backends, written against `&dyn Store`
//! so every backend runs the same checks. Instantiated for SQLite below.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use super::*;
use crate::domain::{
    BuildReason, JobInput, JobOrigin, JobType, LogLevel, LogLine, LogSource, Provisioner, Resource,
    Role, Transition,
};

/// Everything a build needs, inserted once.
struct Fixture {
    user: User,
    org: Organization,
    file: Uuid,
    version: TemplateVersion,
    template: Template,
}

fn job(f: &Fixture, job_type: JobType, input: JobInput, tags: Tags) -> Job {
    let origin = JobOrigin { organization_id: f.org.id, initiator_id: f.user.id, file_id: f.file };
    Job::queued(job_type, Provisioner::Echo, origin, &input, tags).expect("job")
}

async fn fixture(store: &dyn Store) -> Fixture {
    let now = Utc::now();
    let user = User {
        id: Uuid::new_v4(),
        username: "alice".into(),
        email: "alice@example.com".into(),
        name: String::new(),
        password_hash: "x".into(),
        roles: vec![Role::Owner],
        created_at: now,
    };
    store.insert_first_user(&user).await.expect("first user");
    let second = User {
        id: Uuid::new_v4(),
        username: "bob".into(),
        email: "bob@example.com".into(),
        ..user.clone()
    };
    assert!(
        matches!(store.insert_first_user(&second).await, Err(StoreError::Conflict(_))),
        "only one first user"
    );
    assert_eq!(store.user_by_id(user.id).await.expect("first").roles, vec![Role::Owner]);
    let member = User { id: Uuid::new_v4(), roles: vec![], ..second.clone() };
    store.insert_user(&member).await.expect("member");
    assert!(store.user_by_id(member.id).await.expect("member").roles.is_empty());
    let roles = [Role::TemplateAdmin, Role::UserAdmin];
    store.set_user_roles(member.id, &roles).await.expect("set roles");
    assert_eq!(store.user_by_username("BOB").await.expect("bob").roles, roles.to_vec());
    assert!(matches!(
        store.set_user_roles(Uuid::new_v4(), &roles).await,
        Err(StoreError::NotFound)
    ));
    let org = store.default_organization().await.expect("org");
    let file = File {
        id: Uuid::new_v4(),
        hash: "ab".repeat(32),
        mimetype: "application/x-tar".into(),
        data: b"tar".to_vec(),
        created_by: user.id,
        created_at: now,
    };
    let file_id = store.insert_file(&file).await.expect("file");
    let dup = File { id: Uuid::new_v4(), ..file.clone() };
    assert_eq!(
        store.insert_file(&dup).await.expect("dedupe"),
        file_id,
        "files are content-addressed"
    );
    let theirs = File { id: Uuid::new_v4(), created_by: member.id, ..file.clone() };
    let their_id = store.insert_file(&theirs).await.expect("another uploader");
    assert_ne!(their_id, file_id, "per uploader, so no one learns what others uploaded");
    assert_eq!(store.file(their_id).await.expect("theirs").created_by, member.id);
    assert_eq!(
        store.file_info(file_id).await.expect("info"),
        ("ab".repeat(32), 3),
        "hash and size"
    );
    let mut f = Fixture {
        user,
        org,
        file: file_id,
        version: TemplateVersion {
            id: Uuid::new_v4(),
            template_id: None,
            organization_id: Uuid::nil(),
            name: "v1".into(),
            message: String::new(),
            job_id: Uuid::nil(),
            created_by: Uuid::nil(),
            created_at: now,
            updated_at: now,
        },
        template: Template {
            id: Uuid::new_v4(),
            organization_id: Uuid::nil(),
            name: "t".into(),
            display_name: String::new(),
            description: String::new(),
            active_version_id: Uuid::nil(),
            created_by: Uuid::nil(),
            created_at: now,
            updated_at: now,
        },
    };
    let import = job(
        &f,
        JobType::TemplateVersionImport,
        JobInput::TemplateVersionImport {
            template_version_id: f.version.id,
            user_variable_values: vec![],
        },
        crate::domain::default_tags(),
    );
    f.version = TemplateVersion {
        organization_id: f.org.id,
        job_id: import.id,
        created_by: f.user.id,
        ..f.version
    };
    store.insert_template_version(&f.version, &import).await.expect("version");
    f.template = Template {
        organization_id: f.org.id,
        active_version_id: f.version.id,
        created_by: f.user.id,
        ..f.template
    };
    store.insert_template(&f.template).await.expect("template");
    assert_eq!(
        store.template_version(f.version.id).await.expect("v").template_id,
        Some(f.template.id)
    );
    // A version backs one template: a second one from it is refused whole.
    let thief = Template { id: Uuid::new_v4(), name: "thief".into(), ..f.template.clone() };
    assert!(matches!(store.insert_template(&thief).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.template(thief.id).await, Err(StoreError::NotFound)));
    assert_eq!(
        store.template_version(f.version.id).await.expect("v").template_id,
        Some(f.template.id),
        "the version stays with its template"
    );
    f
}

fn build(f: &Fixture, ws: Uuid, number: i32, transition: Transition) -> (WorkspaceBuild, Job) {
    let id = Uuid::new_v4();
    let j = job(
        f,
        JobType::WorkspaceBuild,
        JobInput::WorkspaceBuild { workspace_build_id: id, dry_run: false, log_level: None },
        crate::domain::default_tags(),
    );
    let now = Utc::now();
    let b = WorkspaceBuild {
        id,
        workspace_id: ws,
        build_number: number,
        transition,
        template_version_id: f.version.id,
        initiator_id: f.user.id,
        reason: BuildReason::Initiator,
        provisioner_state: b"old-state".to_vec(),
        job_id: j.id,
        deadline: None,
        max_deadline: None,
        daily_cost: 0,
        rich_parameters: vec![],
        created_at: now,
        updated_at: now,
    };
    (b, j)
}

/// A resource with nothing but a name and a type.
fn resource(name: &str, kind: &str) -> Resource {
    Resource {
        name: name.into(),
        resource_type: kind.into(),
        module_path: String::new(),
        hide: false,
        icon: String::new(),
        daily_cost: 0,
        instance_type: None,
        metadata: vec![],
        attributes: serde_json::Value::Null,
        agents: vec![],
    }
}

fn acquire_req(worker: Uuid) -> AcquireRequest {
    AcquireRequest {
        worker_id: worker,
        worker_name: "w".into(),
        tags: crate::domain::default_tags(),
        provisioners: vec![Provisioner::Echo],
    }
}

fn line(text: &str) -> LogLine {
    LogLine {
        source: LogSource::Provisioner,
        level: LogLevel::Info,
        stage: "s".into(),
        output: text.into(),
        created_at: Utc::now(),
    }
}

/// The whole suite.
pub async fn conformance(store: Arc<dyn Store>) {
    let f = fixture(store.as_ref()).await;
    let worker = Uuid::new_v4();
    // The import job is the oldest: acquire it first and complete it.
    let import =
        store.acquire_job(&acquire_req(worker)).await.expect("acquire").expect("import job");
    assert_eq!(import.id, f.version.job_id);
    assert!(store.import_result(import.id).await.expect("none yet").is_none());
    let found = ImportResult {
        parameters: vec![crate::domain::TemplateParameter {
            name: "cpu".into(),
            ..Default::default()
        }],
        variables: vec![],
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
    let rows = store.resources_of_job(import.id).await.expect("resources");
    let by_transition: Vec<(Transition, &str)> =
        rows.iter().map(|r| (r.transition, r.resource.name.as_str())).collect();
    assert_eq!(
        by_transition,
        [(Transition::Start, "home"), (Transition::Start, "vm"), (Transition::Stop, "home")],
        "both plans' resources, by transition"
    );

    let now = Utc::now();
    let ws = Workspace {
        id: Uuid::new_v4(),
        organization_id: f.org.id,
        owner_id: f.user.id,
        template_id: f.template.id,
        name: "dev".into(),
        deleted: false,
        autostart_schedule: None,
        ttl_ms: None,
        created_at: now,
        updated_at: now,
    };
    let (b1, j1) = build(&f, ws.id, 1, Transition::Start);
    store.insert_workspace(&ws, &b1, &j1).await.expect("workspace");
    assert_eq!(store.queue_position(j1.id).await.expect("queue"), (1, 1));
    let (b2, j2) = build(&f, ws.id, 2, Transition::Stop);
    assert!(
        matches!(store.insert_build(&b2, &j2).await, Err(StoreError::Conflict(_))),
        "one active build per workspace"
    );

    // Logs are de-duplicated by sequence number and paged by id.
    let got = store.acquire_job(&acquire_req(worker)).await.expect("acquire").expect("build job");
    assert_eq!(got.id, j1.id);
    let unlogged = store.append_logs(LogBatch { job_id: j1.id, lines: vec![] }).await;
    assert_eq!(unlogged.expect("no logs yet").up_to_seq, 0, "a job that never logged");
    let batch = LogBatch { job_id: j1.id, lines: vec![(1, line("a")), (2, line("b"))] };
    let first = store.append_logs(batch).await.expect("logs");
    assert_eq!(first.up_to_seq, 2);
    // Output is kept byte for byte, whatever terraform printed.
    let odd = "c \"quoted\" \\ back\ttab\r\nnew line é 😀 \u{0} nul [1,{}] ->> 0";
    let resend = LogBatch { job_id: j1.id, lines: vec![(2, line("b")), (3, line(odd))] };
    let second = store.append_logs(resend).await.expect("logs");
    assert_eq!(second.up_to_seq, 3);
    let logs = store.logs(j1.id, LogRange::default()).await.expect("logs");
    assert_eq!(logs.iter().map(|l| l.line.output.as_str()).collect::<Vec<_>>(), ["a", "b", odd]);
    // What each call reports as stored is exactly what a reader gets.
    assert_eq!([first.stored, second.stored].concat(), logs, "stored lines with their ids");
    let old = LogBatch { job_id: j1.id, lines: vec![(1, line("a"))] };
    let none = store.append_logs(old).await.expect("logs");
    assert_eq!((none.up_to_seq, none.stored.len()), (3, 0), "an old batch stores nothing");
    let empty = store.append_logs(LogBatch { job_id: j1.id, lines: vec![] }).await.expect("empty");
    assert_eq!((empty.up_to_seq, empty.stored.len()), (3, 0), "an empty batch reports the stored");
    // A batch out of order and with a repeated seq stores each line once, in
    // seq order.
    let mixed = vec![(5, line("e")), (4, line("d")), (5, line("e again"))];
    let mixed = store.append_logs(LogBatch { job_id: j1.id, lines: mixed }).await.expect("mixed");
    let got: Vec<_> = mixed.stored.iter().map(|l| (l.seq, l.line.output.as_str())).collect();
    assert_eq!((mixed.up_to_seq, got), (5, vec![(4, "d"), (5, "e")]));
    let unknown = LogBatch { job_id: Uuid::new_v4(), lines: vec![(1, line("lost"))] };
    assert!(store.append_logs(unknown).await.is_err(), "lines of an unknown job are refused");
    let logs = store.logs(j1.id, LogRange::default()).await.expect("logs");
    assert!(logs.windows(2).all(|w| w[0].id < w[1].id && w[0].seq < w[1].seq));
    let after = store
        .logs(j1.id, LogRange { after: Some(logs[0].id), before: Some(logs[2].id), limit: None })
        .await
        .expect("page");
    assert_eq!(after.len(), 1);
    let first_two =
        store.logs(j1.id, LogRange { limit: Some(2), ..LogRange::default() }).await.expect("page");
    assert_eq!(first_two, logs[..2]);

    // A failed build keeps the partial state it reports.
    let failed = JobOutcome {
        state: Some(b"partial".to_vec()),
        error: Some("boom".into()),
        ..JobOutcome::default()
    };
    assert!(
        matches!(
            store.complete_job(j1.id, Uuid::new_v4(), &failed).await,
            Err(StoreError::Conflict(_))
        ),
        "only the owner completes"
    );
    assert_eq!(
        store.complete_job(j1.id, worker, &failed).await.expect("fail"),
        CompleteResult::Completed
    );
    assert_eq!(
        store.complete_job(j1.id, worker, &JobOutcome::default()).await.expect("again"),
        CompleteResult::AlreadyCompleted
    );
    assert_eq!(store.job(j1.id).await.expect("job").status(), crate::domain::JobStatus::Failed);
    assert_eq!(store.build(b1.id).await.expect("build").provisioner_state, b"partial");

    // Cancel: pending completes at once; running becomes canceling.
    store.insert_build(&b2, &j2).await.expect("second build");
    assert_eq!(store.cancel_job(j2.id).await.expect("cancel"), CancelResult::CanceledPending);
    assert_eq!(store.job(j2.id).await.expect("job").status(), crate::domain::JobStatus::Canceled);
    let (b3, j3) = build(&f, ws.id, 3, Transition::Delete);
    store.insert_build(&b3, &j3).await.expect("third build");
    store.acquire_job(&acquire_req(worker)).await.expect("acquire").expect("delete job");
    assert_eq!(store.cancel_job(j3.id).await.expect("cancel"), CancelResult::Canceling);
    assert_eq!(store.cancel_job(j3.id).await.expect("cancel"), CancelResult::AlreadyDone);
    store.release_job(j3.id, worker).await.expect("release a canceled job");
    assert_eq!(store.job(j3.id).await.expect("job").status(), crate::domain::JobStatus::Canceled);

    // A successful delete marks the workspace deleted and stores resources.
    let (b4, j4) = build(&f, ws.id, 4, Transition::Delete);
    store.insert_build(&b4, &j4).await.expect("fourth build");
    store.acquire_job(&acquire_req(worker)).await.expect("acquire").expect("job");
    store.release_job(j4.id, worker).await.expect("release");
    assert!(
        store.job(j4.id).await.expect("job").started_at.is_none(),
        "released jobs are pending again"
    );
    store.acquire_job(&acquire_req(worker)).await.expect("acquire").expect("job again");
    let r = resource("vm", "echo");
    let ok = JobOutcome { state: Some(Vec::new()), resources: vec![r], ..JobOutcome::default() };
    store.complete_job(j4.id, worker, &ok).await.expect("complete");
    assert!(store.workspace(ws.id).await.expect("ws").deleted);
    assert_eq!(store.resources_of_job(j4.id).await.expect("resources").len(), 1);
    assert!(matches!(
        store.workspace_by_owner_and_name(f.user.id, "dev").await,
        Err(StoreError::NotFound)
    ));

    racing_acquirers(store.clone(), &f).await;
    tag_matching(store.as_ref(), &f).await;
    no_head_of_line_blocking(store.as_ref(), &f).await;
}

/// Queues a template import with these tags and provisioner.
async fn queue_import(store: &dyn Store, f: &Fixture, tags: Tags, provisioner: Provisioner) -> Job {
    let input = JobInput::TemplateVersionImport {
        template_version_id: f.version.id,
        user_variable_values: vec![],
    };
    let mut j = job(f, JobType::TemplateVersionImport, input, tags);
    j.provisioner = provisioner;
    let v = TemplateVersion { id: Uuid::new_v4(), job_id: j.id, ..f.version.clone() };
    store.insert_template_version(&v, &j).await.expect("version");
    j
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Acquire follows `domain::tags_satisfy` and the daemon's provisioners,
/// case by case, with nothing else pending.
async fn tag_matching(store: &dyn Store, f: &Fixture) {
    let org = [("scope", "organization")];
    let pool_a = [("scope", "organization"), ("pool", "a")];
    // (job tags, job provisioner, daemon tags, whether the daemon takes it)
    type Case<'a> = (&'a [(&'a str, &'a str)], Provisioner, &'a [(&'a str, &'a str)], bool);
    let cases: [Case; 11] = [
        (&org, Provisioner::Echo, &org, true),
        (&org, Provisioner::Echo, &pool_a, false),
        (&[], Provisioner::Echo, &org, true),
        (&[], Provisioner::Echo, &pool_a, false),
        (&pool_a, Provisioner::Echo, &pool_a, true),
        (
            &pool_a,
            Provisioner::Echo,
            &[("scope", "organization"), ("pool", "a"), ("os", "l")],
            true,
        ),
        (&pool_a, Provisioner::Echo, &[("scope", "organization"), ("pool", "b")], false),
        (&pool_a, Provisioner::Echo, &org, false),
        (
            &[("scope", "user"), ("owner", "u1")],
            Provisioner::Echo,
            &[("scope", "user"), ("owner", "u1")],
            true,
        ),
        (
            &[("scope", "user"), ("owner", "u1")],
            Provisioner::Echo,
            &[("scope", "user"), ("owner", "u2")],
            false,
        ),
        (&org, Provisioner::Terraform, &org, false),
    ];
    for (job_tags, provisioner, daemon_tags, expected) in cases {
        let (job_tags, daemon_tags) = (tags(job_tags), tags(daemon_tags));
        let same_provisioner = provisioner == Provisioner::Echo;
        assert_eq!(
            expected,
            same_provisioner && crate::domain::tags_satisfy(&daemon_tags, &job_tags),
            "the case table follows domain::tags_satisfy"
        );
        let j = queue_import(store, f, job_tags.clone(), provisioner).await;
        let req = AcquireRequest { tags: daemon_tags.clone(), ..acquire_req(Uuid::new_v4()) };
        let got = store.acquire_job(&req).await.expect("acquire").map(|j| j.id);
        let case = format!("job {job_tags:?} ({provisioner}), daemon {daemon_tags:?}");
        assert_eq!(got, expected.then_some(j.id), "{case}");
        // Clear the queue for the next case.
        store.cancel_job(j.id).await.expect("cancel");
        store.release_job(j.id, req.worker_id).await.expect("release");
        assert!(store.job(j.id).await.expect("job").completed_at.is_some(), "{case}");
    }
}

/// More jobs no daemon can take than any scan limit (some sharing one tag
/// set, some each with their own) sit ahead of one an untagged daemon can:
/// that daemon gets it at once, and a daemon of the pool gets the oldest
/// pool job.
async fn no_head_of_line_blocking(store: &dyn Store, f: &Fixture) {
    let nobody = crate::domain::with_default_scope(tags(&[("pool", "nobody")]));
    let mut blocked = Vec::new();
    for i in 0..1200 {
        let t = if i % 2 == 0 {
            nobody.clone()
        } else {
            crate::domain::with_default_scope(tags(&[("pool", &format!("nobody-{i}"))]))
        };
        blocked.push(queue_import(store, f, t, Provisioner::Echo).await);
    }
    // Same tags, another provisioner: a run of its own.
    let tf = queue_import(store, f, crate::domain::default_tags(), Provisioner::Terraform).await;
    let mine = queue_import(store, f, crate::domain::default_tags(), Provisioner::Echo).await;
    assert_eq!(store.queue_position(mine.id).await.expect("position"), (1202, 1202));
    let worker = Uuid::new_v4();
    let got = store.acquire_job(&acquire_req(worker)).await.expect("acquire");
    assert_eq!(got.map(|j| j.id), Some(mine.id), "the untagged job behind 1200 others");
    assert!(store.acquire_job(&acquire_req(worker)).await.expect("acquire").is_none());
    let terraform =
        AcquireRequest { provisioners: vec![Provisioner::Terraform], ..acquire_req(worker) };
    let got = store.acquire_job(&terraform).await.expect("acquire");
    assert_eq!(got.map(|j| j.id), Some(tf.id), "the terraform run next to the echo run");
    let pool = AcquireRequest { tags: nobody.clone(), ..acquire_req(Uuid::new_v4()) };
    let got = store.acquire_job(&pool).await.expect("acquire").expect("a pool job");
    assert_eq!(got.id, blocked[0].id, "the oldest job of the pool first");
    let got = store.acquire_job(&pool).await.expect("acquire").expect("a pool job");
    assert_eq!(got.id, blocked[2].id, "then the next one of the pool");
    let odd = AcquireRequest {
        tags: crate::domain::with_default_scope(tags(&[("pool", "nobody-1199")])),
        ..acquire_req(Uuid::new_v4())
    };
    let got = store.acquire_job(&odd).await.expect("acquire").expect("its own job");
    assert_eq!(got.id, blocked[1199].id, "a tag set of one job, last among the runs");
    for j in &blocked {
        store.cancel_job(j.id).await.expect("cancel");
    }
}

/// Eight acquirers race over 50 jobs: each job goes to exactly one.
async fn racing_acquirers(store: Arc<dyn Store>, f: &Fixture) {
    let mut ids = HashSet::new();
    for _ in 0..50 {
        let input = JobInput::TemplateVersionImport {
            template_version_id: f.version.id,
            user_variable_values: vec![],
        };
        let j = job(f, JobType::TemplateVersionImport, input, crate::domain::default_tags());
        let v = TemplateVersion { id: Uuid::new_v4(), job_id: j.id, ..f.version.clone() };
        store.insert_template_version(&v, &j).await.expect("version");
        ids.insert(j.id);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) =
                store.acquire_job(&acquire_req(Uuid::new_v4())).await.expect("acquire")
            {
                mine.push(j.id);
            }
            mine
        });
    }
    let mut seen = Vec::new();
    while let Some(r) = tasks.join_next().await {
        seen.extend(r.expect("task"));
    }
    assert_eq!(seen.len(), 50, "every job handed out once");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("db/provisionerd.db").display());
    let store = open(&url).await.expect("open");
    conformance(store).await;
    // Reopening runs migrations again without harm.
    drop(open(&url).await.expect("reopen"));
    let err = open("postgres://db.example/provisionerd").await.err().expect("unsupported");
    assert!(err.to_string().contains("not supported yet"), "{err}");
}

/// A result that comes after the server failed the job as
/// `PROVISIONER_DAEMON_LOST`: its state is kept (and passed to a newer build
/// that has not started), once; with a newer build started, the conflict is
/// recorded instead of touching that build.
async fn late_results(store: &dyn Store, f: &Fixture) {
    let now = Utc::now();
    let ws = Workspace {
        id: Uuid::new_v4(),
        organization_id: f.org.id,
        owner_id: f.user.id,
        template_id: f.template.id,
        name: "late".into(),
        deleted: false,
        autostart_schedule: None,
        ttl_ms: None,
        created_at: now,
        updated_at: now,
    };
    let (worker, other) = (Uuid::new_v4(), Uuid::new_v4());
    let lost = Some(crate::domain::DAEMON_LOST);
    let state =
        |s: &str| JobOutcome { state: Some(s.as_bytes().to_vec()), ..JobOutcome::default() };
    // The fixture's import job is first in the queue: out of the way.
    let import = store.acquire_job(&acquire_req(other)).await.expect("acquire").expect("import");
    store.fail_job(import.id, "not this test's", None).await.expect("fail import");
    let (b1, j1) = build(f, ws.id, 1, Transition::Start);
    store.insert_workspace(&ws, &b1, &j1).await.expect("workspace");
    let got = store.acquire_job(&acquire_req(worker)).await.expect("acquire").expect("job 1");
    assert_eq!(got.id, j1.id);
    store.fail_job(j1.id, "daemon went silent", lost).await.expect("reap");
    let (b2, j2) = build(f, ws.id, 2, Transition::Start);
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
    assert_eq!(j.status(), crate::domain::JobStatus::Failed, "the build still reads failed");
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
    let got = store.acquire_job(&acquire_req(other)).await.expect("acquire").expect("job 2");
    assert_eq!(got.id, j2.id);
    store.fail_job(j2.id, "daemon went silent", lost).await.expect("reap");
    let (b3, j3) = build(f, ws.id, 3, Transition::Stop);
    store.insert_build(&b3, &j3).await.expect("third build");
    let got = store.acquire_job(&acquire_req(worker)).await.expect("acquire").expect("job 3");
    assert_eq!(got.id, j3.id);
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
}

#[tokio::test]
async fn sqlite_late_results() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("provisionerd.db").display());
    let store = open(&url).await.expect("open");
    let f = fixture(store.as_ref()).await;
    late_results(store.as_ref(), &f).await;
}
