//! What the cases share: [`fixture`], which inserts a first user, the
//! default organization, a file and a template with its first version, and
//! small builders for jobs, builds, workspaces, resources and log lines.
//! Setup only: the fixture asserts nothing beyond its calls succeeding (the
//! cases of `accounts` and `templates` check those calls), and it leaves the
//! queue empty so every case sees only the jobs it queues itself.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::{
    default_tags, BuildReason, Job, JobInput, JobOrigin, JobType, LogLevel, LogLine, LogSource,
    Provisioner, Resource, Role, Tags, Transition, WorkspaceBuild,
};
use crate::store::{
    AcquireRequest, File, Organization, Store, Template, TemplateVersion, User, Workspace,
};

/// Everything a build needs, inserted once.
pub struct Fixture {
    /// The first user, an owner.
    pub user: User,
    pub org: Organization,
    pub file: Uuid,
    /// The template's first and active version.
    pub version: TemplateVersion,
    pub template: Template,
}

/// A user named `name`, with `name@example.com` as email.
pub fn user(name: &str, roles: Vec<Role>) -> User {
    User {
        id: Uuid::new_v4(),
        username: name.into(),
        email: format!("{name}@example.com"),
        name: String::new(),
        password_hash: "x".into(),
        roles,
        created_at: Utc::now(),
    }
}

/// A file of `data` uploaded by `created_by`.
pub fn file(data: &[u8], created_by: Uuid) -> File {
    use sha2::Digest;
    File {
        id: Uuid::new_v4(),
        hash: hex::encode(sha2::Sha256::digest(data)),
        mimetype: "application/x-tar".into(),
        data: data.to_vec(),
        created_by,
        created_at: Utc::now(),
    }
}

/// Inserts the [`Fixture`]. The template's import job is canceled while
/// pending, so the queue starts empty.
pub async fn fixture(store: &dyn Store) -> Fixture {
    let user = user("alice", vec![Role::Owner]);
    store.insert_first_user(&user).await.expect("first user");
    let org = store.default_organization().await.expect("org");
    let file = store.insert_file(&file(b"tar", user.id)).await.expect("file");
    let now = Utc::now();
    let version = TemplateVersion {
        id: Uuid::new_v4(),
        template_id: None,
        organization_id: org.id,
        name: "v1".into(),
        message: String::new(),
        job_id: Uuid::nil(),
        created_by: user.id,
        created_at: now,
        updated_at: now,
    };
    let template = Template {
        id: Uuid::new_v4(),
        organization_id: org.id,
        name: "t".into(),
        display_name: String::new(),
        description: String::new(),
        active_version_id: version.id,
        created_by: user.id,
        created_at: now,
        updated_at: now,
    };
    let mut f = Fixture { user, org, file, version, template };
    let import = import_job(&f, default_tags(), Provisioner::Echo);
    f.version.job_id = import.id;
    store.insert_template_version(&f.version, &import).await.expect("version");
    store.insert_template(&f.template).await.expect("template");
    f.version.template_id = Some(f.template.id);
    store.cancel_job(import.id).await.expect("cancel the fixture's import");
    f
}

/// A pending job of the fixture's user, organization and file.
pub fn job(f: &Fixture, job_type: JobType, input: JobInput, tags: Tags) -> Job {
    let origin = JobOrigin { organization_id: f.org.id, initiator_id: f.user.id, file_id: f.file };
    Job::queued(job_type, Provisioner::Echo, origin, &input, tags).expect("job")
}

/// A template import job (not inserted) with these tags and provisioner.
pub fn import_job(f: &Fixture, tags: Tags, provisioner: Provisioner) -> Job {
    let input = JobInput::TemplateVersionImport {
        template_version_id: f.version.id,
        user_variable_values: vec![],
    };
    let mut j = job(f, JobType::TemplateVersionImport, input, tags);
    j.provisioner = provisioner;
    j
}

/// Queues a template import with these tags and provisioner, as a new
/// version of no template.
pub async fn queue_import(
    store: &dyn Store,
    f: &Fixture,
    tags: Tags,
    provisioner: Provisioner,
) -> Job {
    let j = import_job(f, tags, provisioner);
    let v = TemplateVersion {
        id: Uuid::new_v4(),
        template_id: None,
        job_id: j.id,
        ..f.version.clone()
    };
    store.insert_template_version(&v, &j).await.expect("version");
    j
}

/// Queues an echo import with these tags, created at `at`.
pub async fn queue_import_at(store: &dyn Store, f: &Fixture, tags: Tags, at: DateTime<Utc>) -> Job {
    let mut j = import_job(f, tags, Provisioner::Echo);
    (j.created_at, j.updated_at) = (at, at);
    let v = TemplateVersion {
        id: Uuid::new_v4(),
        template_id: None,
        job_id: j.id,
        ..f.version.clone()
    };
    store.insert_template_version(&v, &j).await.expect("version");
    j
}

/// A live workspace of the fixture's user named `name` (not inserted).
pub fn workspace(f: &Fixture, name: &str) -> Workspace {
    let now = Utc::now();
    Workspace {
        id: Uuid::new_v4(),
        organization_id: f.org.id,
        owner_id: f.user.id,
        template_id: f.template.id,
        name: name.into(),
        deleted: false,
        autostart_schedule: None,
        ttl_ms: None,
        dormant_at: None,
        automatic_updates: crate::domain::AutomaticUpdates::Never,
        favorite: false,
        last_used_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// Build `number` of workspace `ws` and its job (not inserted), starting
/// from the state `old-state`.
pub fn build(f: &Fixture, ws: Uuid, number: i32, transition: Transition) -> (WorkspaceBuild, Job) {
    let id = Uuid::new_v4();
    let j = job(
        f,
        JobType::WorkspaceBuild,
        JobInput::WorkspaceBuild { workspace_build_id: id, dry_run: false, log_level: None },
        default_tags(),
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

/// Inserts workspace `name` with its first build (a start) and returns them.
pub async fn new_workspace(
    store: &dyn Store,
    f: &Fixture,
    name: &str,
) -> (Workspace, WorkspaceBuild, Job) {
    let ws = workspace(f, name);
    let (b, j) = build(f, ws.id, 1, Transition::Start);
    store.insert_workspace(&ws, &b, &j).await.expect("workspace");
    (ws, b, j)
}

/// A resource with nothing but a name and a type.
pub fn resource(name: &str, kind: &str) -> Resource {
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

/// A token agent with nothing but its id and a name.
pub fn agent(id: Uuid) -> crate::domain::Agent {
    crate::domain::Agent {
        id,
        name: "main".into(),
        operating_system: "linux".into(),
        architecture: "amd64".into(),
        directory: String::new(),
        env: Default::default(),
        connection_timeout_seconds: 0,
        troubleshooting_url: String::new(),
        motd_file: String::new(),
        display_apps: vec![],
        metadata: vec![],
        auth: "token".into(),
        instance_id: None,
        order: 0,
        apps: vec![],
        scripts: vec![],
    }
}

/// An untagged echo daemon.
pub fn acquire_req(worker: Uuid) -> AcquireRequest {
    AcquireRequest {
        worker_id: worker,
        worker_name: "w".into(),
        tags: default_tags(),
        provisioners: vec![Provisioner::Echo],
    }
}

/// Acquires the next job as a new untagged echo daemon, which must be
/// `expected`; returns the daemon's id.
pub async fn take(store: &dyn Store, expected: Uuid) -> Uuid {
    let worker = Uuid::new_v4();
    let got = store.acquire_job(&acquire_req(worker)).await.expect("acquire");
    assert_eq!(got.map(|j| j.id), Some(expected), "the job to take");
    worker
}

pub fn line(text: &str) -> LogLine {
    LogLine {
        source: LogSource::Provisioner,
        level: LogLevel::Info,
        stage: "s".into(),
        output: text.into(),
        created_at: Utc::now(),
    }
}

pub fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A time after every timestamp the store wrote so far and before every one
/// it writes from now on: waits for the clock to move on past it. The
/// reaper compares the store's timestamps with its own clock (`now -
/// timeout`), so a backend stamps jobs with the server's clock too.
pub async fn tick() -> DateTime<Utc> {
    let mark = Utc::now() + Duration::milliseconds(1);
    while Utc::now() <= mark + Duration::milliseconds(1) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    mark
}
