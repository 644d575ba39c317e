//! Response bodies in the seeds' shapes (codersdk's field names), and the
//! functions that assemble them from store rows. Handlers never build JSON
//! by hand.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::error::ApiResult;
use crate::domain::{build_status, Job, JobInput, NameValue, StoredLog, Tags, WorkspaceBuild};
use crate::server::daemons::{Connected, Matched};
use crate::server::AppState;
use crate::store::{Organization, Store, Template, TemplateVersion, User, Workspace};

#[derive(Serialize)]
pub struct UserJson {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub status: &'static str,
    pub organization_ids: Vec<Uuid>,
    pub roles: Vec<RoleJson>,
    pub avatar_url: String,
    pub login_type: &'static str,
}

#[derive(Serialize)]
pub struct RoleJson {
    pub name: &'static str,
    pub display_name: &'static str,
}

pub fn user(u: &User, org: &Organization) -> UserJson {
    // Like Coder, only explicit site roles are listed; `member` is implied.
    let roles = u
        .roles
        .iter()
        .map(|r| RoleJson { name: r.as_str(), display_name: r.display_name() })
        .collect();
    UserJson {
        id: u.id,
        username: u.username.clone(),
        email: u.email.clone(),
        name: u.name.clone(),
        created_at: u.created_at,
        status: "active",
        organization_ids: vec![org.id],
        roles,
        avatar_url: String::new(),
        login_type: "password",
    }
}

#[derive(Serialize)]
pub struct OrganizationJson {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub description: String,
    pub icon: String,
}

pub fn organization(o: &Organization) -> OrganizationJson {
    OrganizationJson {
        id: o.id,
        name: o.name.clone(),
        display_name: o.display_name.clone(),
        is_default: o.is_default,
        created_at: o.created_at,
        updated_at: o.created_at,
        description: String::new(),
        icon: String::new(),
    }
}

#[derive(Serialize)]
pub struct JobJson {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub job_type: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub status: &'static str,
    pub worker_id: Option<Uuid>,
    pub worker_name: Option<String>,
    pub file_id: Uuid,
    pub tags: Tags,
    pub queue_position: i64,
    pub queue_size: i64,
    pub organization_id: Uuid,
    pub input: serde_json::Value,
}

pub async fn job(store: &dyn Store, j: &Job) -> ApiResult<JobJson> {
    let (queue_position, queue_size) = store.queue_position(j.id).await?;
    Ok(JobJson {
        id: j.id,
        job_type: j.job_type.to_string(),
        created_at: j.created_at,
        started_at: j.started_at,
        completed_at: j.completed_at,
        canceled_at: j.canceled_at,
        error: j.error.clone(),
        error_code: j.error_code.clone(),
        status: j.status().as_str(),
        worker_id: j.worker_id,
        worker_name: j.worker_name.clone(),
        file_id: j.file_id,
        tags: j.tags.clone(),
        queue_position,
        queue_size,
        organization_id: j.organization_id,
        input: public_input(&j.input),
    })
}

/// Only the ids of a job's input: variable values may be secrets and never
/// leave the server through the API.
fn public_input(input: &serde_json::Value) -> serde_json::Value {
    match serde_json::from_value::<JobInput>(input.clone()) {
        Ok(JobInput::WorkspaceBuild { workspace_build_id, .. }) => {
            serde_json::json!({ "workspace_build_id": workspace_build_id })
        }
        Ok(JobInput::TemplateVersionImport { template_version_id, .. }) => {
            serde_json::json!({ "template_version_id": template_version_id })
        }
        Err(_) => serde_json::json!({}),
    }
}

#[derive(Serialize)]
pub struct LogJson<'a> {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub log_source: &'static str,
    pub log_level: &'static str,
    pub stage: &'a str,
    pub output: &'a str,
}

pub fn log(l: &StoredLog) -> LogJson<'_> {
    LogJson {
        id: l.id,
        created_at: l.line.created_at,
        log_source: l.line.source.as_str(),
        log_level: l.line.level.as_str(),
        stage: &l.line.stage,
        output: &l.line.output,
    }
}

#[derive(Serialize)]
pub struct BuildJson {
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
    pub job: JobJson,
    pub status: &'static str,
    pub resources: Vec<super::resources::ResourceJson>,
    pub deadline: Option<DateTime<Utc>>,
    pub max_deadline: Option<DateTime<Utc>>,
    pub daily_cost: i32,
    /// For a pending build: the connected daemons that could take it.
    pub matched_provisioners: Option<Matched>,
}

pub async fn build(state: &AppState, b: &WorkspaceBuild) -> ApiResult<BuildJson> {
    let store = state.store.as_ref();
    let ws = store.workspace(b.workspace_id).await?;
    let owner = store.user_by_id(ws.owner_id).await?;
    let initiator = store.user_by_id(b.initiator_id).await.map(|u| u.username).unwrap_or_default();
    let version = store.template_version(b.template_version_id).await?;
    let job_row = store.job(b.job_id).await?;
    let resources = store.resources_of_job(b.job_id).await?;
    Ok(BuildJson {
        id: b.id,
        build_number: b.build_number,
        created_at: b.created_at,
        updated_at: b.updated_at.max(job_row.updated_at),
        workspace_id: ws.id,
        workspace_name: ws.name,
        workspace_owner_id: owner.id,
        workspace_owner_name: owner.username,
        workspace_owner_avatar_url: String::new(),
        template_version_id: version.id,
        template_version_name: version.name,
        transition: b.transition.to_string(),
        initiator_id: b.initiator_id,
        initiator_name: initiator,
        reason: b.reason.to_string(),
        status: build_status(job_row.status(), b.transition).as_str(),
        job: job(store, &job_row).await?,
        resources: resources.iter().map(super::resources::stored).collect(),
        deadline: b.deadline,
        max_deadline: b.max_deadline,
        daily_cost: b.daily_cost,
        matched_provisioners: (job_row.status() == crate::domain::JobStatus::Pending)
            .then(|| state.daemons.matching(&job_row.tags)),
    })
}

#[derive(Serialize)]
pub struct WorkspaceJson {
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
    pub latest_build: BuildJson,
    pub outdated: bool,
    pub name: String,
    pub autostart_schedule: Option<String>,
    pub ttl_ms: Option<i64>,
    pub last_used_at: DateTime<Utc>,
    pub deleting_at: Option<DateTime<Utc>>,
    pub dormant_at: Option<DateTime<Utc>>,
    pub health: serde_json::Value,
    pub automatic_updates: &'static str,
    pub allow_renames: bool,
    pub favorite: bool,
}

pub async fn workspace(state: &AppState, ws: &Workspace) -> ApiResult<WorkspaceJson> {
    let store = state.store.as_ref();
    let owner = store.user_by_id(ws.owner_id).await?;
    let org = store.organization_by_id(ws.organization_id).await?;
    let template = store.template(ws.template_id).await?;
    let latest = store.latest_build(ws.id).await?;
    let latest_build = build(state, &latest).await?;
    Ok(WorkspaceJson {
        id: ws.id,
        created_at: ws.created_at,
        updated_at: ws.updated_at,
        owner_id: owner.id,
        owner_name: owner.username,
        owner_avatar_url: String::new(),
        organization_id: org.id,
        organization_name: org.name,
        template_id: template.id,
        template_name: template.name.clone(),
        template_display_name: template.display_name.clone(),
        template_icon: String::new(),
        template_active_version_id: template.active_version_id,
        template_allow_user_cancel_workspace_jobs: true,
        outdated: latest.template_version_id != template.active_version_id,
        latest_build,
        name: ws.name.clone(),
        autostart_schedule: ws.autostart_schedule.clone(),
        ttl_ms: ws.ttl_ms,
        last_used_at: ws.updated_at,
        deleting_at: None,
        dormant_at: None,
        health: serde_json::json!({"healthy": true, "failing_agents": []}),
        automatic_updates: "never",
        allow_renames: false,
        favorite: false,
    })
}

#[derive(Serialize)]
pub struct TemplateJson {
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

pub async fn template(store: &dyn Store, t: &Template) -> ApiResult<TemplateJson> {
    let version = store.template_version(t.active_version_id).await?;
    let provisioner = store.job(version.job_id).await?.provisioner.to_string();
    Ok(TemplateJson {
        id: t.id,
        organization_id: t.organization_id,
        name: t.name.clone(),
        display_name: t.display_name.clone(),
        description: t.description.clone(),
        active_version_id: t.active_version_id,
        created_by_id: t.created_by,
        created_at: t.created_at,
        updated_at: t.updated_at,
        provisioner,
    })
}

#[derive(Serialize)]
pub struct TemplateVersionJson {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub name: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: BTreeMap<&'static str, String>,
    pub job: JobJson,
    pub readme: String,
}

pub async fn template_version(
    store: &dyn Store,
    v: &TemplateVersion,
) -> ApiResult<TemplateVersionJson> {
    let j = store.job(v.job_id).await?;
    let creator = store.user_by_id(v.created_by).await.map(|u| u.username).unwrap_or_default();
    Ok(TemplateVersionJson {
        id: v.id,
        template_id: v.template_id,
        organization_id: v.organization_id,
        name: v.name.clone(),
        message: v.message.clone(),
        created_at: v.created_at,
        updated_at: v.updated_at,
        created_by: BTreeMap::from([("id", v.created_by.to_string()), ("username", creator)]),
        job: job(store, &j).await?,
        readme: String::new(),
    })
}

#[derive(Serialize)]
pub struct ParameterJson {
    pub name: String,
    pub value: String,
}

pub fn parameters(values: &[NameValue]) -> Vec<ParameterJson> {
    values.iter().map(|p| ParameterJson { name: p.name.clone(), value: p.value.clone() }).collect()
}

#[derive(Serialize)]
pub struct DaemonJson {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub tags: Tags,
    pub provisioners: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub status: &'static str,
    pub current_job: Option<serde_json::Value>,
}

pub fn daemon(d: &Connected) -> DaemonJson {
    DaemonJson {
        id: d.id,
        name: d.name.clone(),
        version: d.version.clone(),
        tags: d.tags.clone(),
        provisioners: d.provisioners.clone(),
        created_at: d.connected_at,
        last_seen_at: d.last_seen,
        status: if d.jobs.is_empty() { "idle" } else { "busy" },
        current_job: d.jobs.iter().next().map(|id| serde_json::json!({ "id": id })),
    }
}
