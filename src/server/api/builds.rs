//! Workspace builds (seed 001): create with the transition rules of seed
//! 000, get by id or by owner/workspace/number, list, resources, raw state,
//! parameters and cancel.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::templates::{ensure_imported, new_job};
use super::users::resolve;
use super::workspaces::visible;
use super::{json, uuid_param, validate, Body, Query};
use crate::domain::{
    resolve_parameters, BuildReason, Job, JobInput, JobOrigin, JobStatus, JobType, NameValue,
    Transition, WorkspaceBuild,
};
use crate::server::access::{self, Action, Resource};
use crate::server::{AppState, Event};
use crate::store::{BuildPage, CancelResult, StoreError, TemplateVersion, Workspace};

/// What a new build needs.
pub struct NewBuild<'a> {
    pub workspace: &'a Workspace,
    pub build_number: i32,
    pub transition: Transition,
    pub version: &'a TemplateVersion,
    pub initiator: Uuid,
    pub state: Vec<u8>,
    /// The `rich_parameter_values` of the request.
    pub parameters: Vec<NameValue>,
    /// The values of the workspace's previous build (empty for the first).
    pub previous_parameters: &'a [NameValue],
    pub dry_run: bool,
    pub log_level: Option<String>,
}

/// Builds the build row and its job; the job takes the tags of the
/// version's import job, so it runs where the template was imported.
pub async fn prepare(state: &AppState, n: NewBuild<'_>) -> ApiResult<(WorkspaceBuild, Job)> {
    let import = state.store.job(n.version.job_id).await?;
    let parameters = build_parameters(state, &n).await?;
    let id = Uuid::new_v4();
    let input = JobInput::WorkspaceBuild {
        workspace_build_id: id,
        dry_run: n.dry_run,
        log_level: n.log_level,
    };
    let job = new_job(
        JobType::WorkspaceBuild,
        import.provisioner,
        JobOrigin {
            organization_id: n.workspace.organization_id,
            initiator_id: n.initiator,
            file_id: import.file_id,
        },
        &input,
        import.tags,
    )?;
    let now = Utc::now();
    let build = WorkspaceBuild {
        id,
        workspace_id: n.workspace.id,
        build_number: n.build_number,
        transition: n.transition,
        template_version_id: n.version.id,
        initiator_id: n.initiator,
        reason: BuildReason::Initiator,
        provisioner_state: n.state,
        job_id: job.id,
        deadline: None,
        max_deadline: None,
        daily_cost: 0,
        rich_parameters: parameters,
        created_at: now,
        updated_at: now,
    };
    Ok((build, job))
}

/// Seed 000's "invalid state transition" rule, given the latest build's
/// transition and its job's final status.
pub fn check_transition(
    deleted: bool,
    last: Transition,
    last_status: JobStatus,
    next: Transition,
) -> Result<(), String> {
    let succeeded = last_status == JobStatus::Succeeded;
    if deleted || (last == Transition::Delete && succeeded) {
        return Err("the workspace has been deleted".into());
    }
    if next == Transition::Stop && last == Transition::Stop && succeeded {
        return Err("the workspace is already stopped".into());
    }
    Ok(())
}

/// The values the build runs with: every value given must be for a
/// `coder_parameter` the template declares (a template that declares none,
/// such as an echo template without `parameters`, takes none); each is
/// checked against its rules, values are inherited from the previous build
/// and defaults filled in. One validation per bad field.
async fn build_parameters(state: &AppState, n: &NewBuild<'_>) -> ApiResult<Vec<NameValue>> {
    let names: Vec<&str> = n.parameters.iter().map(|v| v.name.as_str()).collect();
    validate::values("rich_parameter_values", &names)?;
    let declared = state
        .store
        .import_result(n.version.job_id)
        .await?
        .map(|i| i.parameters)
        .unwrap_or_default();
    resolve_parameters(&declared, &n.parameters, n.previous_parameters).map_err(|issues| {
        let detail = issues
            .iter()
            .map(|i| format!("{}: {}", i.field, i.detail))
            .collect::<Vec<_>>()
            .join("; ");
        issues
            .into_iter()
            .fold(ApiError::bad_request("Invalid rich parameter values.").detail(detail), |e, i| {
                e.field(&i.field, i.detail)
            })
    })
}

pub use crate::sdk::CreateWorkspaceBuildRequest as CreateBuild;

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<CreateBuild>,
) -> ApiResult<(StatusCode, Json<json::BuildJson>)> {
    let transition: Transition = req.transition.parse().map_err(|_| {
        ApiError::invalid(
            "transition",
            format!("{:?} is not one of start, stop, delete", req.transition),
        )
    })?;
    if req.orphan && transition != Transition::Delete {
        return Err(ApiError::invalid(
            "orphan",
            "orphan is only allowed with the delete transition",
        ));
    }
    if req.orphan && req.state.is_some() {
        return Err(ApiError::invalid("orphan", "orphan and state cannot be combined"));
    }
    if let Some(level) = &req.log_level {
        if level != "debug" {
            return Err(ApiError::invalid("log_level", "only \"debug\" is supported"));
        }
    }
    let ws = visible(&state, &caller, uuid_param("workspace", &id)?, true).await?;
    authorize_build(&caller, &ws, transition, &req)?;
    let last = state.store.latest_build(ws.id).await?;
    let last_job = state.store.job(last.job_id).await?;
    if last_job.is_active() {
        return Err(ApiError::conflict("A workspace build is already active.").detail(format!(
            "build #{} is {}; wait for it or cancel it first",
            last.build_number,
            last_job.status()
        )));
    }
    check_transition(ws.deleted, last.transition, last_job.status(), transition).map_err(
        |why| ApiError::bad_request(format!("Invalid transition: {why}.")).field("transition", why),
    )?;
    let version = match req.template_version_id {
        Some(v) => {
            let version = state.store.template_version(v).await.map_err(|_| {
                ApiError::invalid("template_version_id", "no such template version")
            })?;
            if version.template_id != Some(ws.template_id) {
                return Err(ApiError::invalid(
                    "template_version_id",
                    "the version belongs to another template",
                ));
            }
            ensure_imported(&state, &version).await?;
            version
        }
        None => state.store.template_version(last.template_version_id).await?,
    };
    let build_state = if req.orphan {
        Vec::new()
    } else {
        req.state.unwrap_or_else(|| last.provisioner_state.clone())
    };
    let new = NewBuild {
        workspace: &ws,
        build_number: last.build_number + 1,
        transition,
        version: &version,
        initiator: caller.user.id,
        state: build_state,
        parameters: json::name_values(req.rich_parameter_values.unwrap_or_default()),
        previous_parameters: &last.rich_parameters,
        dry_run: req.dry_run,
        log_level: req.log_level,
    };
    let (build, job) = prepare(&state, new).await?;
    match state.store.insert_build(&build, &job).await {
        Err(StoreError::Conflict(detail)) => {
            return Err(ApiError::conflict("A workspace build is already active.").detail(detail))
        }
        other => other?,
    }
    state.events.publish(Event::JobQueued);
    Ok((StatusCode::CREATED, Json(json::build(&state, &build).await?)))
}

/// Coder's wsbuilder checks: the caller may change the workspace (a delete
/// build deletes it); only template managers may hand a build its state or
/// orphan a workspace, since a hand-written state is run by the template's
/// destroy provisioners; a debug log level is for owners.
fn authorize_build(
    caller: &Caller,
    ws: &Workspace,
    transition: Transition,
    req: &CreateBuild,
) -> ApiResult<()> {
    let action = if transition == Transition::Delete { Action::Delete } else { Action::Update };
    caller.may(action, Resource::Workspace { owner: ws.owner_id })?;
    if req.state.is_some() || req.orphan {
        caller.may(Action::Update, Resource::ProvisionerState)?;
    }
    if req.log_level.is_some()
        && access::check(caller.actor(), Action::Read, Resource::DeploymentConfig).is_err()
    {
        return Err(ApiError::bad_request(
            "Workspace builds with a custom log level are restricted to administrators only.",
        )
        .detail("leave out log_level, or ask an owner to run the build"));
    }
    Ok(())
}

/// The build if the caller may see its workspace.
pub async fn visible_build(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<WorkspaceBuild> {
    let build = state.store.build(uuid_param("workspacebuild", id)?).await?;
    visible(state, caller, build.workspace_id, true).await?;
    Ok(build)
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<json::BuildJson>> {
    let build = visible_build(&state, &caller, &id).await?;
    Ok(Json(json::build(&state, &build).await?))
}

pub async fn by_number(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, name, number)): Path<(String, String, String)>,
) -> ApiResult<Json<json::BuildJson>> {
    let owner = resolve(&state, &caller, &user).await?;
    let number: i32 =
        number.parse().map_err(|_| ApiError::invalid("buildnumber", "must be a number"))?;
    let ws = match state.store.workspace_by_owner_and_name(owner.id, &name).await {
        Err(StoreError::NotFound) => return Err(ApiError::not_found()),
        other => other?,
    };
    visible(&state, &caller, ws.id, false).await?;
    let build = state.store.build_by_number(ws.id, number).await?;
    Ok(Json(json::build(&state, &build).await?))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    #[serde(default)]
    offset: i64,
    since: Option<DateTime<Utc>>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<json::BuildJson>>> {
    let ws = visible(&state, &caller, uuid_param("workspace", &id)?, true).await?;
    let page =
        BuildPage { limit: q.limit.filter(|l| *l > 0), offset: q.offset.max(0), since: q.since };
    let mut out = Vec::new();
    for b in state.store.builds_of_workspace(ws.id, &page).await? {
        out.push(json::build(&state, &b).await?);
    }
    Ok(Json(out))
}

pub async fn resources(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<super::resources::ResourceJson>>> {
    let build = visible_build(&state, &caller, &id).await?;
    let rows = state.store.resources_of_job(build.job_id).await?;
    Ok(Json(rows.iter().map(super::resources::stored).collect()))
}

pub async fn raw_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    // Terraform state can hold secrets: like Coder, only template managers
    // read it raw, and anyone else is told it does not exist.
    let build = visible_build(&state, &caller, &id).await?;
    caller.may(Action::Read, Resource::ProvisionerState)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], build.provisioner_state))
}

pub async fn parameters(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<json::ParameterJson>>> {
    let build = visible_build(&state, &caller, &id).await?;
    Ok(Json(json::parameters(&build.rich_parameters)))
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let build = visible_build(&state, &caller, &id).await?;
    let ws = visible(&state, &caller, build.workspace_id, true).await?;
    caller.may(Action::Update, Resource::Workspace { owner: ws.owner_id })?;
    match state.store.cancel_job(build.job_id).await? {
        CancelResult::AlreadyDone => {
            Err(ApiError::bad_request("Job has already completed or is being canceled."))
        }
        CancelResult::CanceledPending | CancelResult::Canceling => {
            state.events.publish(Event::JobUpdated(build.job_id));
            Ok(Json(serde_json::json!({"message": "Job has been marked as canceled."})))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_rules() {
        use JobStatus::*;
        use Transition::*;
        assert!(
            check_transition(false, Stop, Succeeded, Stop).is_err(),
            "stop a stopped workspace"
        );
        assert!(check_transition(false, Stop, Succeeded, Start).is_ok());
        assert!(check_transition(false, Start, Failed, Stop).is_ok(), "stop after a failed start");
        assert!(check_transition(false, Stop, Failed, Stop).is_ok(), "retry a failed stop");
        assert!(
            check_transition(false, Delete, Succeeded, Start).is_err(),
            "start a deleted workspace"
        );
        assert!(check_transition(true, Start, Succeeded, Delete).is_err());
        assert!(check_transition(false, Delete, Failed, Delete).is_ok(), "retry a failed delete");
        assert!(check_transition(false, Start, Canceled, Start).is_ok());
    }
}
