//! The functions that render store rows and domain values into the
//! response bodies of [`crate::sdk`] (codersdk's field names), the only
//! place the API's main resources (users, jobs, builds, workspaces,
//! templates, versions, logs, daemons) are turned into their wire form.
//! The body types themselves live in the SDK, shared with the client; the
//! old names are re-exported here for the handlers. A few small answers
//! (`{"message"}`, `{"hash"}`, `{"session_token"}`, lists with a count)
//! are still written with `json!` in their handlers; their shapes are in
//! the SDK too, and the integration tests read them through it.

use std::borrow::Cow;
use std::collections::HashMap;

use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use crate::domain::{build_status, Job, JobInput, NameValue, StoredLog, WorkspaceBuild};
use crate::sdk;
use crate::server::daemons::{Connected, Matched};
use crate::server::AppState;
use crate::store::{
    BuildView, Organization, Store, Template, TemplateVersion, User, Workspace, WorkspaceView,
};

pub use crate::sdk::{
    DaemonJob, MinimalUser, Organization as OrganizationJson, ProvisionerDaemon as DaemonJson,
    ProvisionerJob as JobJson, ProvisionerJobInput, ProvisionerJobLog as LogJson, Role as RoleJson,
    Template as TemplateJson, TemplateVersion as TemplateVersionJson, User as UserJson,
    Workspace as WorkspaceJson, WorkspaceBuild as BuildJson,
    WorkspaceBuildParameter as ParameterJson,
};

/// Request bodies carry the SDK's parameter type; the domain has its own,
/// so renaming either side cannot change the other's format.
impl From<sdk::WorkspaceBuildParameter> for NameValue {
    fn from(p: sdk::WorkspaceBuildParameter) -> Self {
        NameValue { name: p.name, value: p.value }
    }
}

/// Converts a request's parameter list to the domain's.
pub fn name_values(values: Vec<sdk::WorkspaceBuildParameter>) -> Vec<NameValue> {
    values.into_iter().map(NameValue::from).collect()
}

impl From<Matched> for sdk::MatchedProvisioners {
    fn from(m: Matched) -> Self {
        sdk::MatchedProvisioners {
            count: m.count,
            available: m.available,
            most_recently_seen: m.most_recently_seen,
        }
    }
}

pub fn user(u: &User, org: &Organization) -> UserJson {
    // Like Coder, only explicit site roles are listed; `member` is implied.
    let roles = u
        .roles
        .iter()
        .map(|r| RoleJson {
            name: r.as_str().to_owned(),
            display_name: r.display_name().to_owned(),
        })
        .collect();
    UserJson {
        id: u.id,
        username: u.username.clone(),
        email: u.email.clone(),
        name: u.name.clone(),
        created_at: u.created_at,
        status: "active".to_owned(),
        organization_ids: vec![org.id],
        roles,
        avatar_url: String::new(),
        login_type: "password".to_owned(),
    }
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

/// A job as the API shows it, with what it is for (`metadata`) and, while
/// pending, the daemons that could take it.
pub async fn job(
    state: &AppState,
    j: &Job,
    metadata: sdk::ProvisionerJobMetadata,
) -> ApiResult<JobJson> {
    let queue = state.store.queue_position(j.id).await?;
    Ok(job_in_queue(state, j, queue, metadata))
}

/// A job's JSON with its (queue position, queue size) read already.
fn job_in_queue(
    state: &AppState,
    j: &Job,
    (queue_position, queue_size): (i64, i64),
    metadata: sdk::ProvisionerJobMetadata,
) -> JobJson {
    let available_workers = if j.status() == crate::domain::JobStatus::Pending {
        state.daemons.matching_ids(&j.tags, j.provisioner.as_str())
    } else {
        Vec::new()
    };
    JobJson {
        id: j.id,
        job_type: j.job_type.to_string(),
        created_at: j.created_at,
        started_at: j.started_at,
        completed_at: j.completed_at,
        canceled_at: j.canceled_at,
        error: j.error.clone(),
        error_code: j.error_code.clone(),
        status: j.status().as_str().to_owned(),
        worker_id: j.worker_id,
        worker_name: j.worker_name.clone(),
        file_id: j.file_id,
        tags: j.tags.clone(),
        queue_position,
        queue_size,
        organization_id: j.organization_id,
        input: public_input(&j.input),
        available_workers,
        metadata,
    }
}

/// Only the ids of a job's input: variable values may be secrets and never
/// leave the server through the API.
fn public_input(input: &serde_json::Value) -> ProvisionerJobInput {
    match serde_json::from_value::<JobInput>(input.clone()) {
        Ok(JobInput::WorkspaceBuild { workspace_build_id, .. }) => ProvisionerJobInput {
            workspace_build_id: Some(workspace_build_id),
            ..Default::default()
        },
        Ok(JobInput::TemplateVersionImport { template_version_id, .. }) => ProvisionerJobInput {
            template_version_id: Some(template_version_id),
            ..Default::default()
        },
        Err(_) => ProvisionerJobInput::default(),
    }
}

pub fn log(l: &StoredLog) -> LogJson<'_> {
    LogJson {
        id: l.id,
        created_at: l.line.created_at,
        log_source: Cow::Borrowed(l.line.source.as_str()),
        log_level: Cow::Borrowed(l.line.level.as_str()),
        stage: Cow::Borrowed(&l.line.stage),
        output: Cow::Borrowed(&l.line.output),
    }
}

pub async fn build(state: &AppState, b: &WorkspaceBuild) -> ApiResult<BuildJson> {
    builds(state, std::slice::from_ref(b)).await?.pop().ok_or_else(|| missing("build", b.id))
}

/// The builds' JSON, in their order, from a fixed number of store reads
/// whatever their number (`Store::build_views`), not a few per build.
pub async fn builds(state: &AppState, list: &[WorkspaceBuild]) -> ApiResult<Vec<BuildJson>> {
    let ids: Vec<Uuid> = list.iter().map(|b| b.id).collect();
    let mut views = state.store.build_views(&ids).await?;
    fresh_builds(state, &mut views).await?;
    Ok(views.iter().map(|v| build_of_view(state, v)).collect())
}

/// The build rows are read before their jobs: a build whose job completed
/// in between is read again, so a finished build never shows without what
/// its completion wrote with it (its deadline, its state). A completion
/// sets the build's `updated_at` to the job's `completed_at`; a build whose
/// row is older than its job's completion (caught in that moment, or a job
/// canceled before it started, which leaves the build row alone) is read
/// again, all of a page's such builds in one more `build_views`, so a page
/// still costs a bounded number of queries.
async fn fresh_builds(state: &AppState, views: &mut [BuildView]) -> ApiResult<()> {
    let stale: Vec<Uuid> = views
        .iter()
        .filter(|v| v.job.completed_at.is_some_and(|done| v.build.updated_at < done))
        .map(|v| v.build.id)
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let mut again: HashMap<Uuid, BuildView> =
        state.store.build_views(&stale).await?.into_iter().map(|v| (v.build.id, v)).collect();
    for v in views.iter_mut() {
        if let Some(fresh) = again.remove(&v.build.id) {
            *v = fresh;
        }
    }
    Ok(())
}

/// A row read a moment ago that is gone now (deleted in between): an
/// internal error rather than a partial answer.
fn missing(what: &str, id: Uuid) -> ApiError {
    ApiError::internal(format!("{what} {id} vanished while it was read"))
}

fn build_of_view(state: &AppState, v: &BuildView) -> BuildJson {
    let (b, job_row) = (&v.build, &v.job);
    let metadata = sdk::ProvisionerJobMetadata {
        template_version_name: v.template_version_name.clone(),
        template_id: v.template_id,
        template_name: v.template_name.clone(),
        template_display_name: v.template_display_name.clone(),
        workspace_id: Some(b.workspace_id),
        workspace_name: v.workspace_name.clone(),
        ..Default::default()
    };
    BuildJson {
        id: b.id,
        build_number: b.build_number,
        created_at: b.created_at,
        updated_at: b.updated_at.max(job_row.updated_at),
        workspace_id: b.workspace_id,
        workspace_name: v.workspace_name.clone(),
        workspace_owner_id: v.owner_id,
        workspace_owner_name: v.owner_username.clone(),
        workspace_owner_avatar_url: String::new(),
        template_version_id: b.template_version_id,
        template_version_name: v.template_version_name.clone(),
        transition: b.transition.to_string(),
        initiator_id: b.initiator_id,
        initiator_name: v.initiator_username.clone(),
        reason: b.reason.to_string(),
        status: build_status(job_row.status(), b.transition).as_str().to_owned(),
        job: job_in_queue(state, job_row, v.queue, metadata),
        resources: v.resources.iter().map(super::resources::stored).collect(),
        deadline: b.deadline,
        max_deadline: b.max_deadline,
        // Coder's build cost: the sum of its resources' coder_metadata costs.
        daily_cost: v
            .resources
            .iter()
            .fold(0i32, |sum, r| sum.saturating_add(r.resource.daily_cost)),
        matched_provisioners: (job_row.status() == crate::domain::JobStatus::Pending)
            .then(|| state.daemons.matching(&job_row.tags, job_row.provisioner.as_str()).into()),
    }
}

pub async fn workspace(state: &AppState, ws: &Workspace) -> ApiResult<WorkspaceJson> {
    workspaces(state, std::slice::from_ref(ws))
        .await?
        .pop()
        .ok_or_else(|| missing("workspace", ws.id))
}

/// The workspaces' JSON, in their order, from a fixed number of store
/// reads whatever their number: one for the workspaces with their names
/// and latest build ids (`Store::workspace_views`), then the latest builds
/// as `builds` reads them. Each workspace is shown as that read finds it.
pub async fn workspaces(state: &AppState, list: &[Workspace]) -> ApiResult<Vec<WorkspaceJson>> {
    let ids: Vec<Uuid> = list.iter().map(|w| w.id).collect();
    let views = state.store.workspace_views(&ids).await?;
    let latest_ids: Vec<Uuid> = views.iter().map(|v| v.latest_build_id).collect();
    let mut builds = state.store.build_views(&latest_ids).await?;
    fresh_builds(state, &mut builds).await?;
    let mut latest: HashMap<Uuid, BuildView> =
        builds.into_iter().map(|b| (b.build.id, b)).collect();
    let mut out = Vec::with_capacity(views.len());
    for v in &views {
        let b =
            latest.remove(&v.latest_build_id).ok_or_else(|| missing("build", v.latest_build_id))?;
        out.push(workspace_of_view(v, &b, build_of_view(state, &b)));
    }
    Ok(out)
}

fn workspace_of_view(
    v: &WorkspaceView,
    latest: &BuildView,
    latest_build: BuildJson,
) -> WorkspaceJson {
    let ws = &v.workspace;
    // Healthy only when every agent of the latest build is; no agent
    // connects to this server yet, so each reported agent is failing.
    let failing_agents: Vec<Uuid> = latest_build
        .resources
        .iter()
        .flat_map(|r| &r.agents)
        .filter(|a| a["health"]["healthy"] != true)
        .filter_map(|a| a["id"].as_str().and_then(|id| id.parse().ok()))
        .collect();
    WorkspaceJson {
        id: ws.id,
        created_at: ws.created_at,
        updated_at: ws.updated_at,
        owner_id: ws.owner_id,
        owner_name: v.owner_username.clone(),
        owner_avatar_url: String::new(),
        organization_id: ws.organization_id,
        organization_name: v.organization_name.clone(),
        template_id: ws.template_id,
        template_name: v.template_name.clone(),
        template_display_name: v.template_display_name.clone(),
        template_icon: String::new(),
        template_active_version_id: v.template_active_version_id,
        template_allow_user_cancel_workspace_jobs: true,
        template_require_active_version: false,
        outdated: latest.build.template_version_id != v.template_active_version_id,
        latest_build,
        name: ws.name.clone(),
        autostart_schedule: ws.autostart_schedule.clone(),
        ttl_ms: ws.ttl_ms,
        last_used_at: ws.last_used_at.unwrap_or(ws.created_at),
        deleting_at: None,
        dormant_at: ws.dormant_at,
        health: sdk::WorkspaceHealth { healthy: failing_agents.is_empty(), failing_agents },
        automatic_updates: ws.automatic_updates.to_string(),
        allow_renames: true,
        favorite: ws.favorite,
        next_start_at: crate::app::schedules::next_start_at(ws, chrono::Utc::now()),
    }
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

pub async fn template_version(
    state: &AppState,
    v: &TemplateVersion,
) -> ApiResult<TemplateVersionJson> {
    let store = state.store.as_ref();
    let j = store.job(v.job_id).await?;
    let template = match v.template_id {
        Some(id) => Some(store.template(id).await?),
        None => None,
    };
    let metadata = sdk::ProvisionerJobMetadata {
        template_version_name: v.name.clone(),
        ..template.as_ref().map(job_metadata).unwrap_or_default()
    };
    let creator = store.user_by_id(v.created_by).await.map(|u| u.username).unwrap_or_default();
    Ok(TemplateVersionJson {
        id: v.id,
        template_id: v.template_id,
        organization_id: v.organization_id,
        name: v.name.clone(),
        message: v.message.clone(),
        created_at: v.created_at,
        updated_at: v.updated_at,
        created_by: MinimalUser { id: v.created_by, username: creator },
        job: job(state, &j, metadata).await?,
        readme: String::new(),
        // As on builds: why a pending import waits (Coder shows it too).
        matched_provisioners: (j.status() == crate::domain::JobStatus::Pending)
            .then(|| state.daemons.matching(&j.tags, j.provisioner.as_str()).into()),
    })
}

/// The template half of a job's metadata (this server keeps no template
/// icon).
fn job_metadata(t: &Template) -> sdk::ProvisionerJobMetadata {
    sdk::ProvisionerJobMetadata {
        template_id: t.id,
        template_name: t.name.clone(),
        template_display_name: t.display_name.clone(),
        ..Default::default()
    }
}

pub fn parameters(values: &[NameValue]) -> Vec<ParameterJson> {
    values.iter().map(|p| ParameterJson { name: p.name.clone(), value: p.value.clone() }).collect()
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
        status: if d.jobs.is_empty() { "idle" } else { "busy" }.to_owned(),
        current_job: d.jobs.iter().next().map(|id| DaemonJob { id: *id }),
    }
}
