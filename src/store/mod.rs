//! The store: the only module that contains SQL.
//!
//! [`Store`] is the contract the REST API, the gRPC service and the reaper
//! use; each backend (SQLite, PostgreSQL) implements it in its own
//! file with its own migrations. Operations that must be atomic (create a
//! build and its job, acquire a job, complete a job and update its build) are
//! single methods so that every backend runs them in one transaction.
//! Inside that transaction a backend decides nothing itself: it reads the
//! rows, asks `domain::job_state` what a cancel, release, completion or new
//! build does, and writes the answer. The JSON columns' formats are
//! `stored`'s, shared by every backend.
//!
//! The store does not know HTTP, gRPC or terraform, and it does not notify
//! anyone: callers publish events after a write succeeds.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    AutomaticUpdates, BuildStatus, ImportResult, Job, JobOutcome, LogLine, Provisioner, Role,
    StoredLog, StoredResource, Tags, WorkspaceBuild,
};

pub mod copy;
mod daemons;
mod migrations;
pub mod postgres;
mod sql;
pub mod sqlite;
pub mod stored;

pub use daemons::{Broadcast, DaemonRow, Listener, Replicas, MAX_TEXT};

/// What cancelling and completing a job did; the rules that decide it are in
/// `domain::job_state`, which every backend applies.
pub use crate::domain::job_state::{CancelResult, CompleteResult};

/// Errors a store operation can end in.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken: a second active build, a duplicate name.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database refused a write for lack of space, or cannot write its
    /// files at all. Reads still work; writes work again once space is freed.
    #[error("the database cannot store writes: {0}")]
    Unwritable(String),
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Site roles beyond the implicit `member`, without duplicates.
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
}

/// A session token: the secret is only ever stored as its sha256.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub user_id: Uuid,
    pub hashed_secret: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
}

/// A provisioner key: daemons that present it get its tags. The secret is
/// only ever stored as its sha256.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionerKey {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub hashed_secret: Vec<u8>,
    pub tags: Tags,
    pub created_at: DateTime<Utc>,
}

/// An uploaded template archive, content-addressed by sha256.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub id: Uuid,
    /// Hex sha256 of `data`.
    pub hash: String,
    pub mimetype: String,
    pub data: Vec<u8>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub active_version_id: Uuid,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateVersion {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub name: String,
    pub message: String,
    pub job_id: Uuid,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub owner_id: Uuid,
    pub template_id: Uuid,
    pub name: String,
    pub deleted: bool,
    pub autostart_schedule: Option<String>,
    pub ttl_ms: Option<i64>,
    /// Set while the workspace is dormant: it cannot be started.
    pub dormant_at: Option<DateTime<Utc>>,
    pub automatic_updates: AutomaticUpdates,
    /// Marked by its owner: first in the owner's lists.
    pub favorite: bool,
    /// When someone last used it (`POST usage`); `None` before any use.
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Filter and page for listing workspaces.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceFilter {
    pub owner_id: Option<Uuid>,
    /// The owner's username, any case.
    pub owner_username: Option<String>,
    /// A part of the name, any case.
    pub name_contains: Option<String>,
    /// The template's name, any case.
    pub template_name: Option<String>,
    /// The status of the latest build (`domain::build_status` of its job
    /// and transition).
    pub status: Option<BuildStatus>,
    pub dormant: Option<bool>,
    /// Whether the latest build is of another version than the active one.
    pub outdated: Option<bool>,
    /// Only deleted workspaces (Coder's `deleted:true`).
    pub only_deleted: bool,
    /// This user's favorite workspaces come first.
    pub requester: Option<Uuid>,
    pub include_deleted: bool,
    pub limit: Option<i64>,
    pub offset: i64,
}

/// Page over a workspace's builds, newest first.
#[derive(Debug, Clone, Default)]
pub struct BuildPage {
    pub limit: Option<i64>,
    pub offset: i64,
    /// Only builds created strictly after this time (Coder's `since`).
    pub since: Option<DateTime<Utc>>,
    /// Only builds numbered above this one (Coder's `after_id` cursor,
    /// resolved to the cursor build's number).
    pub after_number: Option<i64>,
}

/// Which logs of a job to read: ids strictly between `after` and `before`,
/// the first `limit` of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRange {
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// A workspace with the names its JSON shows and its latest build's id,
/// read for a whole page in one query ([`Store::workspace_views`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceView {
    pub workspace: Workspace,
    pub owner_username: String,
    pub organization_name: String,
    pub template_name: String,
    pub template_display_name: String,
    pub template_active_version_id: Uuid,
    pub latest_build_id: Uuid,
}

/// A build with what its JSON shows besides the build row: names, its job,
/// resources and queue position, read for a whole page in a fixed number
/// of queries ([`Store::build_views`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildView {
    pub build: WorkspaceBuild,
    pub workspace_name: String,
    pub owner_id: Uuid,
    pub owner_username: String,
    /// Empty when the initiator is no user (a deleted one).
    pub initiator_username: String,
    pub template_version_name: String,
    /// The workspace's template (a job's `metadata`).
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub job: Job,
    pub resources: Vec<StoredResource>,
    /// (position, size) as [`Store::queue_position`] gives them.
    pub queue: (i64, i64),
}

/// What a daemon offers when it asks for work.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    pub worker_id: Uuid,
    pub worker_name: String,
    pub tags: Tags,
    pub provisioners: Vec<Provisioner>,
}

/// A log batch from a daemon: lines numbered by the daemon's per-job sequence.
#[derive(Debug, Clone)]
pub struct LogBatch {
    pub job_id: Uuid,
    pub lines: Vec<(i64, LogLine)>,
}

/// What [`Store::append_logs`] did with a batch.
#[derive(Debug, Clone, Default)]
pub struct AppendedLogs {
    /// The highest sequence number stored for the job (what the daemon may
    /// forget up to).
    pub up_to_seq: i64,
    /// The lines this call stored, with their ids, in sequence order: the
    /// batch's lines with a sequence number above every one stored before.
    pub stored: Vec<StoredLog>,
}

/// The contract every backend implements. All methods are transactional.
#[async_trait::async_trait]
pub trait Store: Replicas + Send + Sync + 'static {
    /// `Unwritable` while the store cannot take writes: after a write failed
    /// for lack of space, until a probe write succeeds again (`/readyz`).
    async fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    // --- users, keys, organizations ---
    async fn count_users(&self) -> Result<i64>;
    /// Inserts a user and makes them a member of every default organization.
    async fn insert_user(&self, user: &User) -> Result<()>;
    /// Inserts the first user; `Conflict` when any user exists already, so
    /// two racing setups cannot both become the first owner.
    async fn insert_first_user(&self, user: &User) -> Result<()>;
    async fn user_by_id(&self, id: Uuid) -> Result<User>;
    /// Looks a user up by username, case-insensitively.
    async fn user_by_username(&self, username: &str) -> Result<User>;
    async fn user_by_email(&self, email: &str) -> Result<User>;
    /// Replaces a user's site roles; `NotFound` when there is no such user.
    async fn set_user_roles(&self, id: Uuid, roles: &[Role]) -> Result<()>;
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    async fn api_key(&self, id: &str) -> Result<ApiKey>;
    async fn delete_api_key(&self, id: &str) -> Result<()>;
    /// Returns the default organization, creating it on first use.
    async fn default_organization(&self) -> Result<Organization>;
    async fn organization_by_id(&self, id: Uuid) -> Result<Organization>;
    async fn organization_by_name(&self, name: &str) -> Result<Organization>;
    async fn organizations_of_user(&self, user_id: Uuid) -> Result<Vec<Organization>>;

    // --- provisioner keys ---
    /// `Conflict` when the organization has a key of that name.
    async fn insert_provisioner_key(&self, key: &ProvisionerKey) -> Result<()>;
    async fn provisioner_key(&self, id: Uuid) -> Result<ProvisionerKey>;
    async fn provisioner_keys(&self, organization_id: Uuid) -> Result<Vec<ProvisionerKey>>;
    /// Deletes the organization's key of that name and returns it.
    async fn delete_provisioner_key(
        &self,
        organization_id: Uuid,
        name: &str,
    ) -> Result<ProvisionerKey>;

    // --- files ---
    /// Inserts a file unless its uploader stored one with the same hash;
    /// returns the id of the stored file either way. Another uploader's
    /// identical bytes are a file of their own.
    async fn insert_file(&self, file: &File) -> Result<Uuid>;
    async fn file(&self, id: Uuid) -> Result<File>;
    /// A file's sha256 hex digest and size, without reading its data.
    async fn file_info(&self, id: Uuid) -> Result<(String, i64)>;

    // --- templates ---
    /// Inserts a template version and its import job in one transaction.
    async fn insert_template_version(&self, version: &TemplateVersion, job: &Job) -> Result<()>;
    async fn template_version(&self, id: Uuid) -> Result<TemplateVersion>;
    async fn template_versions_of_template(
        &self,
        template_id: Uuid,
    ) -> Result<Vec<TemplateVersion>>;
    /// Inserts a template and attaches its first version to it; `Conflict`
    /// when the name is taken or the version belongs to another template.
    async fn insert_template(&self, template: &Template) -> Result<()>;
    async fn template(&self, id: Uuid) -> Result<Template>;
    async fn template_by_name(&self, organization_id: Uuid, name: &str) -> Result<Template>;
    async fn templates_of_organization(&self, organization_id: Uuid) -> Result<Vec<Template>>;
    /// Makes `version_id` the active version and attaches it to the template.
    async fn set_active_version(&self, template_id: Uuid, version_id: Uuid) -> Result<()>;

    // --- workspaces and builds ---
    /// Inserts a workspace with its first build and that build's job.
    /// `Conflict` when the owner already has a live workspace of that name.
    async fn insert_workspace(
        &self,
        workspace: &Workspace,
        build: &WorkspaceBuild,
        job: &Job,
    ) -> Result<()>;
    async fn workspace(&self, id: Uuid) -> Result<Workspace>;
    /// The owner's workspace of that name that is not deleted.
    async fn workspace_by_owner_and_name(&self, owner_id: Uuid, name: &str) -> Result<Workspace>;
    async fn workspaces(&self, filter: &WorkspaceFilter) -> Result<(Vec<Workspace>, i64)>;
    /// Writes a live workspace's settings (name, schedule, ttl, dormancy,
    /// automatic updates, favorite, last use, updated_at). `NotFound` when it is deleted or
    /// missing, `Conflict` when the owner has a live workspace of the name.
    async fn update_workspace(&self, workspace: &Workspace) -> Result<()>;
    /// Live, not dormant workspaces the scheduler may owe a build: those
    /// with an autostart schedule or a build with a deadline.
    async fn autobuild_candidates(&self) -> Result<Vec<Workspace>>;
    /// Sets a build's deadline and max deadline (`None` clears them).
    async fn set_build_deadline(
        &self,
        build_id: Uuid,
        deadline: Option<DateTime<Utc>>,
        max_deadline: Option<DateTime<Utc>>,
    ) -> Result<()>;
    /// Inserts a build and its job. `Conflict` when the workspace's latest
    /// build's job has not completed, or `build.build_number` is taken.
    async fn insert_build(&self, build: &WorkspaceBuild, job: &Job) -> Result<()>;
    async fn build(&self, id: Uuid) -> Result<WorkspaceBuild>;
    async fn build_by_job(&self, job_id: Uuid) -> Result<WorkspaceBuild>;
    async fn build_by_number(&self, workspace_id: Uuid, number: i32) -> Result<WorkspaceBuild>;
    async fn latest_build(&self, workspace_id: Uuid) -> Result<WorkspaceBuild>;
    async fn builds_of_workspace(
        &self,
        workspace_id: Uuid,
        page: &BuildPage,
    ) -> Result<Vec<WorkspaceBuild>>;
    /// The workspaces with these ids as the API shows them, in the order
    /// given (unknown ids are left out), in one query whatever their number.
    async fn workspace_views(&self, ids: &[Uuid]) -> Result<Vec<WorkspaceView>>;
    /// The builds with these ids as the API shows them, in the order given
    /// (unknown ids are left out), in a fixed number of queries whatever
    /// their number.
    async fn build_views(&self, ids: &[Uuid]) -> Result<Vec<BuildView>>;

    // --- jobs ---
    async fn job(&self, id: Uuid) -> Result<Job>;
    /// (position, size) of a pending job in the queue; (0, size) otherwise.
    async fn queue_position(&self, job_id: Uuid) -> Result<(i64, i64)>;
    /// [`Store::queue_position`] of many jobs in one query (not one count
    /// per job); unknown ids are left out.
    async fn queue_positions(&self, job_ids: &[Uuid]) -> Result<HashMap<Uuid, (i64, i64)>>;
    /// Atomically hands the oldest pending job whose tags the daemon
    /// satisfies to it (sets started_at and worker). `None` when there is none.
    async fn acquire_job(&self, req: &AcquireRequest) -> Result<Option<Job>>;
    /// Puts a job the daemon never acknowledged back to pending.
    async fn release_job(&self, job_id: Uuid, worker_id: Uuid) -> Result<()>;
    /// Stores log lines whose sequence number is above the highest one
    /// stored for the job (a resent batch stores only its new suffix).
    async fn append_logs(&self, batch: LogBatch) -> Result<AppendedLogs>;
    async fn logs(&self, job_id: Uuid, range: LogRange) -> Result<Vec<StoredLog>>;
    /// Marks the daemon's running jobs as alive.
    async fn heartbeat(&self, worker_id: Uuid, job_ids: &[Uuid]) -> Result<()>;
    async fn cancel_job(&self, job_id: Uuid) -> Result<CancelResult>;
    /// Completes a job owned by `worker_id`: stores error or success, the
    /// build's new state (also after a failure, when given), its resources,
    /// and marks the workspace deleted after a successful delete build.
    /// A first result for a job the server failed as [`DAEMON_LOST`] while
    /// `worker_id` owned it is a late result ([`CompleteResult::Late`]): the
    /// job stays failed, but the real resources its state describes are not
    /// lost track of.
    ///
    /// [`DAEMON_LOST`]: crate::domain::DAEMON_LOST
    async fn complete_job(
        &self,
        job_id: Uuid,
        worker_id: Uuid,
        outcome: &JobOutcome,
    ) -> Result<CompleteResult>;
    /// Fails a job regardless of owner (used by reapers and timeouts).
    async fn fail_job(
        &self,
        job_id: Uuid,
        error: &str,
        error_code: Option<&str>,
    ) -> Result<CompleteResult>;
    /// The newest workspace build whose job reported the agent (an
    /// import's planned agents are not a workspace's); `NotFound` if none.
    async fn build_of_agent(&self, agent_id: Uuid) -> Result<WorkspaceBuild>;
    async fn resources_of_job(&self, job_id: Uuid) -> Result<Vec<StoredResource>>;
    /// How long each stage and resource of the job's run took, as its
    /// daemon reported with the completion (stored in the completion's
    /// transaction), in the order reported; empty before it completed.
    async fn job_timings(&self, job_id: Uuid) -> Result<Vec<crate::domain::ProvisionerTiming>>;
    /// What a completed template import found; `None` before it completed
    /// or when it failed.
    async fn import_result(&self, job_id: Uuid) -> Result<Option<ImportResult>>;
    /// Started, not completed jobs whose daemon has not been heard of since
    /// `before` (no heartbeat, log or handover).
    async fn stale_jobs(&self, before: DateTime<Utc>) -> Result<Vec<Job>>;
    /// Jobs still pending (never started, not canceled) created before `before`.
    async fn pending_jobs_before(&self, before: DateTime<Utc>) -> Result<Vec<Job>>;
}

/// A shared handle to whichever backend the server runs on.
pub type DynStore = Arc<dyn Store>;

/// Opens the store named by a database URL: `postgres://` (or
/// `postgresql://`) for PostgreSQL, `sqlite://path` or a plain path for SQLite.
pub async fn open(url: &str) -> Result<DynStore> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => Ok(Arc::new(postgres::PgStore::open(url).await?)),
        Some("sqlite") | None => Ok(Arc::new(sqlite::SqliteStore::open(url).await?)),
        Some(scheme) => Err(StoreError::Unsupported(format!(
            "{scheme}:// databases are not supported; use postgres://user:pass@host:port/db, sqlite:///path/to/db or --data-dir"
        ))),
    }
}

#[cfg(test)]
pub mod conformance;
