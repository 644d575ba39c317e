//! Domain types shared by every layer: jobs, builds, logs, resources and the
//! status rules that derive a job's and a build's status from timestamps.
//!
//! This module owns no I/O. The store persists these types, the REST API turns
//! them into the seeds' JSON, and the gRPC edge converts them to and from prost
//! messages; none of those representations leak in here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod agent;
mod build_rules;
pub mod job_state;
pub mod schedule;
mod template;
pub mod workspace_query;

pub use agent::{slim_window, Agent, AgentMetadata, App, Healthcheck, Script};
pub use build_rules::{check_imported, check_transition, NotImported};
pub use template::{
    resolve_parameters, ExternalAuthProvider, ImportResult, ParameterIssue, ParameterOption,
    Preset, TemplateParameter, TemplateVariable,
};

/// A string enum that round-trips through its wire name.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The name used on the wire and in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(UnknownVariant { kind: stringify!($name), value: other.to_owned() }),
                }
            }
        }
    };
}

/// A string that names no variant of a wire enum.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

wire_enum!(
    /// A site-wide role, as Coder's built-in roles name them. Every user is
    /// also a `member`; like Coder, that role is implicit and never stored
    /// or listed.
    Role { Owner => "owner", TemplateAdmin => "template-admin", UserAdmin => "user-admin" }
);

impl Role {
    /// Every assignable role, in the order the API lists them.
    pub const ALL: [Role; 3] = [Role::Owner, Role::TemplateAdmin, Role::UserAdmin];

    /// The name Coder's UI shows for the role.
    pub fn display_name(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::TemplateAdmin => "Template Admin",
            Role::UserAdmin => "User Admin",
        }
    }
}

wire_enum!(
    /// What a workspace build does to the workspace.
    Transition { Start => "start", Stop => "stop", Delete => "delete" }
);

wire_enum!(
    /// The kind of work a provisioner job carries.
    JobType {
        WorkspaceBuild => "workspace_build",
        TemplateVersionImport => "template_version_import",
        TemplateVersionDryRun => "template_version_dry_run",
    }
);

wire_enum!(
    /// Which provisioner runs a job.
    Provisioner { Terraform => "terraform", Echo => "echo" }
);

wire_enum!(
    /// A job's status, derived from its timestamps (see [`Job::status`]).
    JobStatus {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Canceling => "canceling",
        Canceled => "canceled",
        Failed => "failed",
    }
);

wire_enum!(
    /// A workspace build's status, derived from its job and transition.
    BuildStatus {
        Pending => "pending",
        Starting => "starting",
        Running => "running",
        Stopping => "stopping",
        Stopped => "stopped",
        Failed => "failed",
        Canceling => "canceling",
        Canceled => "canceled",
        Deleting => "deleting",
        Deleted => "deleted",
    }
);

wire_enum!(
    /// Severity of a job log line.
    LogLevel { Trace => "trace", Debug => "debug", Info => "info", Warn => "warn", Error => "error" }
);

wire_enum!(
    /// Who wrote a job log line: the daemon itself or the provisioner it ran.
    LogSource { ProvisionerDaemon => "provisioner_daemon", Provisioner => "provisioner" }
);

wire_enum!(
    /// Why a build was started.
    BuildReason { Initiator => "initiator", Autostart => "autostart", Autostop => "autostop" }
);

wire_enum!(
    /// Whether the scheduler's start builds move a workspace to its
    /// template's active version (`always`) or keep its version (`never`).
    AutomaticUpdates { Never => "never", Always => "always" }
);

/// Tags a job requires or a daemon offers.
pub type Tags = BTreeMap<String, String>;

/// Tag keys every job and daemon has; anything else makes it "tagged".
pub const SCOPE_KEYS: [&str; 2] = ["scope", "owner"];

/// Coder's rules: a daemon takes a job when every tag of the job is among
/// its own tags, and a job with no tags beyond its scope only goes to a
/// daemon with none either, so a special-purpose daemon never takes
/// ordinary work.
pub fn tags_satisfy(daemon: &Tags, job: &Tags) -> bool {
    let subset = job.iter().all(|(k, v)| daemon.get(k) == Some(v));
    let plain = |t: &Tags| t.keys().all(|k| SCOPE_KEYS.contains(&k.as_str()));
    subset && (!plain(job) || plain(daemon))
}

/// The tags a job or daemon gets when it names none.
pub fn default_tags() -> Tags {
    Tags::from([("scope".to_owned(), "organization".to_owned())])
}

/// Adds the default scope unless `tags` names one.
pub fn with_default_scope(mut tags: Tags) -> Tags {
    if !tags.contains_key("scope") {
        tags.extend(default_tags());
    }
    tags
}

/// A provisioner job: one unit of work in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub job_type: JobType,
    pub provisioner: Provisioner,
    pub organization_id: Uuid,
    pub initiator_id: Uuid,
    pub file_id: Uuid,
    /// Job-type specific input, see [`JobInput`].
    pub input: serde_json::Value,
    pub tags: Tags,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The daemon that owns the job once it was acquired.
    pub worker_id: Option<Uuid>,
    pub worker_name: Option<String>,
    pub error: Option<String>,
    pub error_code: Option<String>,
}

/// Who queues a job, for what, and with which archive.
#[derive(Debug, Clone, Copy)]
pub struct JobOrigin {
    pub organization_id: Uuid,
    pub initiator_id: Uuid,
    pub file_id: Uuid,
}

impl Job {
    /// A new pending job.
    pub fn queued(
        job_type: JobType,
        provisioner: Provisioner,
        origin: JobOrigin,
        input: &JobInput,
        tags: Tags,
    ) -> Result<Job, serde_json::Error> {
        let now = Utc::now();
        Ok(Job {
            id: Uuid::new_v4(),
            job_type,
            provisioner,
            organization_id: origin.organization_id,
            initiator_id: origin.initiator_id,
            file_id: origin.file_id,
            input: serde_json::to_value(input)?,
            tags,
            created_at: now,
            updated_at: now,
            started_at: None,
            canceled_at: None,
            completed_at: None,
            worker_id: None,
            worker_name: None,
            error: None,
            error_code: None,
        })
    }

    /// DESIGN.md section 3: the status is derived, never stored.
    pub fn status(&self) -> JobStatus {
        match (self.completed_at, &self.error, self.canceled_at, self.started_at) {
            (_, Some(_), _, _) => JobStatus::Failed,
            (Some(_), None, Some(_), _) => JobStatus::Canceled,
            (Some(_), None, None, _) => JobStatus::Succeeded,
            (None, None, Some(_), _) => JobStatus::Canceling,
            (None, None, None, None) => JobStatus::Pending,
            (None, None, None, Some(_)) => JobStatus::Running,
        }
    }

    pub fn is_active(&self) -> bool {
        self.completed_at.is_none()
    }

    /// Whether the job is a workspace build asked for as a dry run: a plan
    /// that applies nothing.
    pub fn is_dry_run(&self) -> bool {
        self.input.get("dry_run") == Some(&serde_json::Value::Bool(true))
    }
}

/// The JSON stored in a job's `input` column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobInput {
    WorkspaceBuild {
        workspace_build_id: Uuid,
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        log_level: Option<String>,
    },
    TemplateVersionImport {
        template_version_id: Uuid,
        #[serde(default)]
        user_variable_values: Vec<NameValue>,
    },
}

/// A name/value pair as the API's `rich_parameter_values` and variables use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

/// A workspace build: one transition of one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceBuild {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub build_number: i32,
    pub transition: Transition,
    pub template_version_id: Uuid,
    pub initiator_id: Uuid,
    pub reason: BuildReason,
    /// The terraform state bytes after this build (the previous build's state
    /// until this one completes).
    pub provisioner_state: Vec<u8>,
    pub job_id: Uuid,
    pub deadline: Option<DateTime<Utc>>,
    pub max_deadline: Option<DateTime<Utc>>,
    pub daily_cost: i32,
    pub rich_parameters: Vec<NameValue>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The status of a build, from its job's status and its transition.
pub fn build_status(job: JobStatus, transition: Transition) -> BuildStatus {
    match (job, transition) {
        (JobStatus::Pending, _) => BuildStatus::Pending,
        (JobStatus::Running, Transition::Start) => BuildStatus::Starting,
        (JobStatus::Running, Transition::Stop) => BuildStatus::Stopping,
        (JobStatus::Running, Transition::Delete) => BuildStatus::Deleting,
        (JobStatus::Succeeded, Transition::Start) => BuildStatus::Running,
        (JobStatus::Succeeded, Transition::Stop) => BuildStatus::Stopped,
        (JobStatus::Succeeded, Transition::Delete) => BuildStatus::Deleted,
        (JobStatus::Canceling, _) => BuildStatus::Canceling,
        (JobStatus::Canceled, _) => BuildStatus::Canceled,
        (JobStatus::Failed, _) => BuildStatus::Failed,
    }
}

/// Whether a build (by its job) speaks for its workspace: every build does
/// but a dry run that ended. A dry run only planned, so once it ends the
/// workspace's status, transitions, state, version and schedule are the
/// build's before it, and it never looks `running` (or `stopped`,
/// `deleted`) because of a plan that changed nothing. While it is active
/// it is the workspace's build in progress, so no other build starts
/// beside it. (Coder has no plan-only workspace builds at all: it ignores
/// `dry_run` and applies; plans are template version dry runs there.)
pub fn build_speaks_for_workspace(job: &Job) -> bool {
    job.is_active() || !job.is_dry_run()
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub source: LogSource,
    pub level: LogLevel,
    pub stage: String,
    pub output: String,
    pub created_at: DateTime<Utc>,
}

/// A log line as stored: with the store's id (what `before`/`after` page on)
/// and the daemon's per-job sequence number (what de-duplicates resends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLog {
    pub id: i64,
    pub job_id: Uuid,
    pub seq: i64,
    pub line: LogLine,
}

/// Metadata shown on a resource (`coder_metadata` items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceMetadata {
    pub key: String,
    pub value: String,
    pub sensitive: bool,
}

/// A resource terraform created, as a build reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Module path, empty for the root module.
    #[serde(default)]
    pub module_path: String,
    #[serde(default)]
    pub hide: bool,
    #[serde(default)]
    pub icon: String,
    #[serde(default)]
    pub daily_cost: i32,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub metadata: Vec<ResourceMetadata>,
    /// The resource's attribute values from the state, sensitive ones removed.
    #[serde(default)]
    pub attributes: serde_json::Value,
    /// The `coder_agent`s that run on this resource.
    #[serde(default)]
    pub agents: Vec<Agent>,
}

/// A resource row as stored with the job that reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub id: Uuid,
    pub job_id: Uuid,
    pub transition: Transition,
    pub created_at: DateTime<Utc>,
    pub resource: Resource,
}

/// Error code of jobs the server failed because their daemon stopped
/// answering. A result the daemon reports later for such a job is a late
/// result: its state is still kept (see `Store::complete_job`).
pub const DAEMON_LOST: &str = "PROVISIONER_DAEMON_LOST";

wire_enum!(
    /// A stage of a provisioner run a timing belongs to, as Coder names
    /// them: `init`, `plan`, `graph` (the dependency graph agents are
    /// attached with) and `apply` (a destroy too).
    TimingStage { Init => "init", Plan => "plan", Graph => "graph", Apply => "apply" }
);

/// How long one step of a provisioner run took: a whole stage (`init`,
/// `graph`), or one resource's action within `plan` or `apply` (from
/// terraform's `-json` hook messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionerTiming {
    pub started_at: DateTime<Utc>,
    /// Never before `started_at`.
    pub ended_at: DateTime<Utc>,
    pub stage: TimingStage,
    /// The provider (`coder`, `terraform`, ...), or `terraform` itself for
    /// a whole stage.
    pub source: String,
    /// What was done: `create`, `read`, `delete`, ..., or the stage's work.
    pub action: String,
    /// The resource's address, or `state file` for a whole stage.
    pub resource: String,
}

/// What a daemon reports when a job ends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobOutcome {
    /// Terraform state bytes; `None` keeps the build's current state.
    pub state: Option<Vec<u8>>,
    pub resources: Vec<Resource>,
    /// Set when the job failed.
    pub error: Option<String>,
    pub error_code: Option<String>,
    /// The daemon stopped the job because it was canceled.
    pub canceled: bool,
    /// A template import's parameters and variables.
    pub import: Option<ImportResult>,
    /// How long each stage and resource took (none from daemons before
    /// protocol 1.1, or from the echo provisioner).
    pub timings: Vec<ProvisionerTiming>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let origin = JobOrigin {
            organization_id: Uuid::nil(),
            initiator_id: Uuid::nil(),
            file_id: Uuid::nil(),
        };
        let input = JobInput::TemplateVersionImport {
            template_version_id: Uuid::nil(),
            user_variable_values: vec![],
        };
        Job::queued(JobType::TemplateVersionImport, Provisioner::Echo, origin, &input, Tags::new())
            .expect("job")
    }

    #[test]
    fn job_status_follows_timestamps() {
        let now = Utc::now();
        let mut j = job();
        assert_eq!(j.status(), JobStatus::Pending);
        j.started_at = Some(now);
        assert_eq!(j.status(), JobStatus::Running);
        j.canceled_at = Some(now);
        assert_eq!(j.status(), JobStatus::Canceling);
        j.completed_at = Some(now);
        assert_eq!(j.status(), JobStatus::Canceled);
        j.error = Some("boom".into());
        assert_eq!(j.status(), JobStatus::Failed);
        j.canceled_at = None;
        assert_eq!(j.status(), JobStatus::Failed);
        j.error = None;
        assert_eq!(j.status(), JobStatus::Succeeded);
    }

    #[test]
    fn build_status_depends_on_transition() {
        assert_eq!(build_status(JobStatus::Running, Transition::Stop), BuildStatus::Stopping);
        assert_eq!(build_status(JobStatus::Succeeded, Transition::Delete), BuildStatus::Deleted);
        assert_eq!(build_status(JobStatus::Pending, Transition::Start), BuildStatus::Pending);
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        with_default_scope(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn tags_must_all_match() {
        let daemon = tags(&[("a", "1"), ("b", "2")]);
        assert!(tags_satisfy(&daemon, &tags(&[("a", "1")])));
        assert!(!tags_satisfy(&daemon, &tags(&[("a", "2")])));
        assert!(!tags_satisfy(&daemon, &tags(&[("c", "1")])));
    }

    #[test]
    fn untagged_jobs_only_go_to_untagged_daemons() {
        assert!(tags_satisfy(&tags(&[]), &tags(&[])));
        assert!(
            !tags_satisfy(&tags(&[("pool", "gpu")]), &tags(&[])),
            "a gpu daemon does not take ordinary work"
        );
        assert!(!tags_satisfy(&tags(&[]), &tags(&[("pool", "gpu")])));
    }

    #[test]
    fn enums_round_trip() {
        assert_eq!("stop".parse::<Transition>().ok(), Some(Transition::Stop));
        assert!("create".parse::<Transition>().is_err());
        assert_eq!(JobType::TemplateVersionImport.as_str(), "template_version_import");
    }
}
