//! Request and response bodies of the REST API with codersdk's field names
//! (seeds 000-003). Each is `Serialize + Deserialize`: the server writes
//! responses and reads requests through them, the client the other way
//! round. Serde attributes pin the wire form: a field that Coder omits when
//! empty is skipped, one it sends as `null` is an `Option` that is always
//! written.
//!
//! Optional request fields are skipped when `None`, so a typed request puts
//! the same bytes on the wire as a hand-written body that leaves them out.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Provisioner tags: key to value.
pub type Tags = BTreeMap<String, String>;

// ---------------------------------------------------------------- responses

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub status: String,
    pub organization_ids: Vec<Uuid>,
    pub roles: Vec<Role>,
    pub avatar_url: String,
    pub login_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub description: String,
    pub icon: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionerJob {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub job_type: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub status: String,
    pub worker_id: Option<Uuid>,
    pub worker_name: Option<String>,
    pub file_id: Uuid,
    pub tags: Tags,
    pub queue_position: i64,
    pub queue_size: i64,
    pub organization_id: Uuid,
    pub input: ProvisionerJobInput,
    /// The connected daemons that could take the job while it is pending
    /// (Coder's `available_workers`); left out when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_workers: Vec<Uuid>,
    /// What the job is for (codersdk's `ProvisionerJobMetadata`).
    #[serde(default)]
    pub metadata: ProvisionerJobMetadata,
}

/// codersdk's `ProvisionerJobMetadata`: the template (and, for a build,
/// the workspace) a job belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerJobMetadata {
    pub template_version_name: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub template_icon: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workspace_name: String,
}

/// Only the ids of a job's input (variable values may be secrets): exactly
/// one is present, or none for an input the server cannot read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerJobInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_build_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version_id: Option<Uuid>,
}

/// One log line. Borrowed when the server writes it (logs are the hottest
/// path of the API), owned when a client reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerJobLog<'a> {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub log_source: Cow<'a, str>,
    pub log_level: Cow<'a, str>,
    pub stage: Cow<'a, str>,
    pub output: Cow<'a, str>,
}

/// A log line as a client holds it.
pub type Log = ProvisionerJobLog<'static>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceBuild {
    pub id: Uuid,
    pub build_number: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub workspace_owner_id: Uuid,
    pub workspace_owner_name: String,
    pub workspace_owner_avatar_url: String,
    pub template_version_id: Uuid,
    pub template_version_name: String,
    pub transition: String,
    pub initiator_id: Uuid,
    pub initiator_name: String,
    pub reason: String,
    pub job: ProvisionerJob,
    pub status: String,
    pub resources: Vec<WorkspaceResource>,
    pub deadline: Option<DateTime<Utc>>,
    pub max_deadline: Option<DateTime<Utc>>,
    pub daily_cost: i32,
    /// For a pending build: the connected daemons that could take it.
    pub matched_provisioners: Option<MatchedProvisioners>,
}

/// `matched_provisioners` of seed 002.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MatchedProvisioners {
    pub count: usize,
    pub available: usize,
    pub most_recently_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceResourceMetadata {
    pub key: String,
    pub value: String,
    pub sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceResource {
    pub id: Uuid,
    pub job_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub workspace_transition: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub module_path: String,
    pub instance_type: Option<String>,
    pub hide: bool,
    pub icon: String,
    pub daily_cost: i32,
    pub metadata: Vec<WorkspaceResourceMetadata>,
    /// codersdk's `WorkspaceAgent`s: many fields only a connected agent
    /// could fill, kept as JSON (see `server::api::resources`).
    pub agents: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceHealth {
    pub healthy: bool,
    pub failing_agents: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub owner_avatar_url: String,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub template_icon: String,
    pub template_active_version_id: Uuid,
    pub template_allow_user_cancel_workspace_jobs: bool,
    /// The template's "require active version" setting, which this server
    /// does not have: always false.
    #[serde(default)]
    pub template_require_active_version: bool,
    pub latest_build: WorkspaceBuild,
    pub outdated: bool,
    pub name: String,
    pub autostart_schedule: Option<String>,
    pub ttl_ms: Option<i64>,
    pub last_used_at: DateTime<Utc>,
    pub deleting_at: Option<DateTime<Utc>>,
    pub dormant_at: Option<DateTime<Utc>>,
    pub health: WorkspaceHealth,
    pub automatic_updates: String,
    pub allow_renames: bool,
    pub favorite: bool,
    /// When the autostart schedule next starts the workspace.
    #[serde(default)]
    pub next_start_at: Option<DateTime<Utc>>,
}

/// `GET /workspaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspacesResponse {
    pub workspaces: Vec<Workspace>,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub active_version_id: Uuid,
    pub created_by_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub provisioner: String,
}

/// codersdk's `MinimalUser` (a version's `created_by`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinimalUser {
    pub id: Uuid,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateVersion {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub name: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: MinimalUser,
    pub job: ProvisionerJob,
    pub readme: String,
    /// For a pending import: the connected daemons that could take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_provisioners: Option<MatchedProvisioners>,
}

/// A name and value: a build's parameter, a variable's value at import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceBuildParameter {
    pub name: String,
    pub value: String,
}

/// A variable of a template version (`GET /templateversions/{id}/variables`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVersionVariable {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    pub default_value: String,
    pub required: bool,
    pub sensitive: bool,
}

/// The job a daemon runs, in its listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonJob {
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionerDaemon {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub tags: Tags,
    pub provisioners: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub status: String,
    pub current_job: Option<DaemonJob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionerKey {
    pub id: Uuid,
    pub organization: Uuid,
    pub name: String,
    pub tags: Tags,
    pub created_at: DateTime<Utc>,
}

/// `POST /organizations/{org}/provisionerkeys`: the secret, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateProvisionerKeyResponse {
    pub key: String,
}

/// `POST /users/first`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateFirstUserResponse {
    pub user_id: Uuid,
    pub organization_id: Uuid,
}

/// `POST /users/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub session_token: String,
}

/// `POST /files`: the id of the stored file (Coder calls it `hash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    pub hash: Uuid,
}

/// `GET /buildinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub version: String,
    pub external_url: String,
}

/// A plain acknowledgement (`{"message": ...}`): logout, cancel, promote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

/// One field's problem in an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    pub field: String,
    pub detail: String,
}

/// Every error answer: `message`, plus `detail` and `validations` when
/// there is something to say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<ValidationError>,
}

// ----------------------------------------------------------------- requests

/// `POST /users/first` and `POST /users`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUserRequest {
    pub username: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub name: String,
}

/// `POST /users/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// `PUT /users/{user}/roles`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRolesRequest {
    pub roles: Vec<String>,
}

fn file_storage() -> String {
    "file".to_owned()
}

/// `POST /organizations/{org}/templateversions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTemplateVersionRequest {
    pub file_id: Uuid,
    #[serde(default = "file_storage")]
    pub storage_method: String,
    pub provisioner: String,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_variable_values: Vec<WorkspaceBuildParameter>,
}

impl CreateTemplateVersionRequest {
    /// A version of the uploaded file `file_id` for `provisioner`.
    pub fn new(file_id: Uuid, provisioner: &str) -> Self {
        Self {
            file_id,
            storage_method: file_storage(),
            provisioner: provisioner.to_owned(),
            tags: Tags::new(),
            name: None,
            template_id: None,
            message: None,
            user_variable_values: Vec::new(),
        }
    }
}

/// `POST /organizations/{org}/templates`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTemplateRequest {
    pub name: String,
    pub template_version_id: Uuid,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// `PATCH /templates/{id}/versions`: make `id` the active version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateActiveTemplateVersion {
    pub id: Uuid,
}

/// `POST /users/{user}/workspaces` (and the organization member route).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWorkspaceRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rich_parameter_values: Vec<WorkspaceBuildParameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autostart_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<i64>,
    /// `always` or `never` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic_updates: Option<String>,
}

/// `PUT /workspaces/{id}/autostart`: empty or null clears the schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateWorkspaceAutostartRequest {
    #[serde(default)]
    pub schedule: Option<String>,
}

/// `PUT /workspaces/{id}/ttl`: null clears the ttl.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateWorkspaceTtlRequest {
    #[serde(default)]
    pub ttl_ms: Option<i64>,
}

/// `PUT /workspaces/{id}/extend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutExtendWorkspaceRequest {
    pub deadline: DateTime<Utc>,
}

/// `PUT /workspaces/{id}/dormant`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateWorkspaceDormancy {
    pub dormant: bool,
}

/// `PUT /workspaces/{id}/autoupdates`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateWorkspaceAutomaticUpdatesRequest {
    pub automatic_updates: String,
}

/// `PATCH /workspaces/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateWorkspaceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `GET /workspaces/{id}/resolve-autostart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveAutostartResponse {
    pub parameter_mismatch: bool,
}

/// `POST /workspaces/{id}/builds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWorkspaceBuildRequest {
    pub transition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orphan: bool,
    /// A byte array, or the base64 text Coder's Go SDK sends for bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "bytes_or_base64"
    )]
    pub state: Option<Vec<u8>>,
    /// `None` inherits the previous build's values; `Some` overrides them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rich_parameter_values: Option<Vec<WorkspaceBuildParameter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl CreateWorkspaceBuildRequest {
    /// A build of `transition` ("start", "stop", "delete") with defaults.
    pub fn new(transition: &str) -> Self {
        Self { transition: transition.to_owned(), ..Self::default() }
    }
}

/// `POST /organizations/{org}/provisionerkeys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateProvisionerKeyRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

// Bodies that carry a secret print it redacted, so a `{:?}` in a log line
// or a failed assertion cannot leak a password, token or key.

impl std::fmt::Debug for CreateProvisionerKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateProvisionerKeyResponse").field("key", &"<redacted>").finish()
    }
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse").field("session_token", &"<redacted>").finish()
    }
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("name", &self.name)
            .finish()
    }
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Bytes as a JSON array of numbers or as standard base64 text (Go's
/// `encoding/json` writes `[]byte` that way); `null` is none.
fn bytes_or_base64<'de, D>(d: D) -> Result<Option<Vec<u8>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use base64::Engine as _;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Bytes {
        Array(Vec<u8>),
        Text(String),
    }
    match Option::<Bytes>::deserialize(d)? {
        None => Ok(None),
        Some(Bytes::Array(bytes)) => Ok(Some(bytes)),
        Some(Bytes::Text(text)) => base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("state is not base64: {e}"))),
    }
}

/// `GET /workspacebuilds/{id}/timings` and `GET /workspaces/{id}/timings`
/// (the latest build's): how long the build's provisioner stages and
/// resources took. Agent timings stay empty until agents connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceBuildTimings {
    pub provisioner_timings: Vec<ProvisionerTiming>,
    pub agent_script_timings: Vec<serde_json::Value>,
    pub agent_connection_timings: Vec<serde_json::Value>,
}

/// One step of a build's provisioner run: a whole stage (`resource` is
/// `state file`) or one resource's action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionerTiming {
    pub job_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// `init`, `plan`, `graph` or `apply`.
    pub stage: String,
    pub source: String,
    pub action: String,
    pub resource: String,
}

#[cfg(test)]
mod tests {
    //! The wire form the serde attributes pin: what is left out, what is
    //! `null`, and that a body the server writes reads back the same.

    use serde_json::json;

    use super::*;

    fn job(input: ProvisionerJobInput) -> ProvisionerJob {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("time");
        ProvisionerJob {
            id: Uuid::nil(),
            job_type: "workspace_build".into(),
            created_at: t,
            started_at: None,
            completed_at: None,
            canceled_at: None,
            error: None,
            error_code: None,
            status: "pending".into(),
            worker_id: None,
            worker_name: None,
            file_id: Uuid::nil(),
            tags: Tags::new(),
            queue_position: 1,
            queue_size: 1,
            organization_id: Uuid::nil(),
            input,
            available_workers: Vec::new(),
            metadata: ProvisionerJobMetadata::default(),
        }
    }

    #[test]
    fn a_job_leaves_out_an_absent_error_and_writes_null_times() {
        let build = Uuid::from_u128(7);
        let input = ProvisionerJobInput { workspace_build_id: Some(build), ..Default::default() };
        let v = serde_json::to_value(job(input)).expect("json");
        let o = v.as_object().expect("object");
        assert!(!o.contains_key("error") && !o.contains_key("error_code"), "{v}");
        assert_eq!(v["type"], "workspace_build");
        for key in ["started_at", "completed_at", "canceled_at", "worker_id", "worker_name"] {
            assert_eq!(o.get(key), Some(&serde_json::Value::Null), "{key} is null: {v}");
        }
        assert_eq!(v["input"], json!({"workspace_build_id": build}));
        let none = serde_json::to_value(job(ProvisionerJobInput::default())).expect("json");
        assert_eq!(none["input"], json!({}));
        let back: ProvisionerJob = serde_json::from_value(v).expect("reads back");
        assert_eq!(back.input.workspace_build_id, Some(build));
        assert_eq!(back.error, None);
    }

    #[test]
    fn a_log_line_written_borrowed_reads_back_owned() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("time");
        let output = String::from("hello");
        let line = ProvisionerJobLog {
            id: 3,
            created_at: t,
            log_source: Cow::Borrowed("provisioner"),
            log_level: Cow::Borrowed("info"),
            stage: Cow::Borrowed("Planning"),
            output: Cow::Borrowed(&output),
        };
        let text = serde_json::to_string(&line).expect("json");
        let back: Log = serde_json::from_str(&text).expect("owned");
        assert_eq!(back, line);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["created_at", "id", "log_level", "log_source", "output", "stage"]);
    }

    #[test]
    fn requests_put_on_the_wire_only_what_is_set() {
        let stop = serde_json::to_value(CreateWorkspaceBuildRequest::new("stop")).expect("json");
        assert_eq!(stop, json!({"transition": "stop"}));
        let file = Uuid::from_u128(9);
        let version =
            serde_json::to_value(CreateTemplateVersionRequest::new(file, "echo")).expect("json");
        assert_eq!(
            version,
            json!({"file_id": file, "storage_method": "file", "provisioner": "echo"})
        );
        let ws = CreateWorkspaceRequest { name: "w".into(), ..Default::default() };
        assert_eq!(serde_json::to_value(ws).expect("json"), json!({"name": "w"}));
    }

    #[test]
    fn requests_read_with_the_servers_defaults() {
        let file = Uuid::from_u128(9);
        let v: CreateTemplateVersionRequest =
            serde_json::from_value(json!({"file_id": file, "provisioner": "echo"}))
                .expect("minimal version request");
        assert_eq!(v, CreateTemplateVersionRequest::new(file, "echo"));
        let b: CreateWorkspaceBuildRequest =
            serde_json::from_value(json!({"transition": "start", "rich_parameter_values": []}))
                .expect("build request");
        assert_eq!(b.rich_parameter_values, Some(Vec::new()), "an empty list overrides");
        assert!(!b.orphan && !b.dry_run && b.state.is_none());
        assert!(
            serde_json::from_value::<CreateWorkspaceBuildRequest>(json!({})).is_err(),
            "transition is required"
        );
    }

    #[test]
    fn secrets_print_redacted() {
        let login = LoginRequest { email: "a@b.c".into(), password: "hunter22".into() };
        let user = CreateUserRequest { password: "hunter22".into(), ..Default::default() };
        let token = LoginResponse { session_token: "tok-123".into() };
        let key = CreateProvisionerKeyResponse { key: "id.secret".into() };
        let printed = format!("{login:?} {user:?} {token:?} {key:?}");
        for secret in ["hunter22", "tok-123", "id.secret"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
    }

    #[test]
    fn an_error_body_has_coders_shape() {
        let bare = ErrorResponse { message: "nope".into(), ..Default::default() };
        assert_eq!(serde_json::to_value(&bare).expect("json"), json!({"message": "nope"}));
        let full: ErrorResponse = serde_json::from_value(json!({
            "message": "Invalid.", "detail": "why",
            "validations": [{"field": "name", "detail": "too long"}],
        }))
        .expect("reads");
        assert_eq!(full.validations[0].field, "name");
        let read: ErrorResponse =
            serde_json::from_value(json!({"message": "only"})).expect("reads");
        assert_eq!(read, ErrorResponse { message: "only".into(), ..Default::default() });
    }
}
