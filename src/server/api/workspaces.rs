//! Workspaces (seed 002): create (which queues the first start build), get
//! by id or by owner and name, and list. Users see their own workspaces;
//! owners and template admins see everyone's (`access`). Anything else is a
//! 404, so existence never leaks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Caller;
use super::builds::{prepare, NewBuild};
use super::error::{ApiError, ApiResult};
use super::templates::ensure_imported;
use super::users::{resolve, resolve_org};
use super::{json, uuid_param, validate, validate_name, Body, Query};
use crate::domain::Transition;
use crate::server::access::{self, Action, Resource};
use crate::server::{AppState, Event};
use crate::store::{StoreError, Workspace, WorkspaceFilter};

pub use crate::sdk::CreateWorkspaceRequest as CreateWorkspace;

/// The workspace if the caller may see it (deleted ones only when asked).
pub async fn visible(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    include_deleted: bool,
) -> ApiResult<Workspace> {
    let ws = state.store.workspace(id).await?;
    caller.may(Action::Read, Resource::Workspace { owner: ws.owner_id })?;
    if ws.deleted && !include_deleted {
        return Err(ApiError::not_found());
    }
    Ok(ws)
}

pub async fn create_for_user(
    state: State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    body: Body<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<json::WorkspaceJson>)> {
    create(state, caller, "me".to_owned(), user, body).await
}

pub async fn create_for_member(
    state: State<AppState>,
    caller: Caller,
    Path((org, user)): Path<(String, String)>,
    body: Body<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<json::WorkspaceJson>)> {
    create(state, caller, org, user, body).await
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    org: String,
    user: String,
    Body(req): Body<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<json::WorkspaceJson>)> {
    let owner = resolve(&state, &caller, &user).await?;
    caller.may(Action::Create, Resource::Workspace { owner: owner.id })?;
    validate_name("name", &req.name)?;
    let names: Vec<&str> = req.rich_parameter_values.iter().map(|v| v.name.as_str()).collect();
    validate::values("rich_parameter_values", &names)?;
    let (template, version) = match (req.template_id, req.template_version_id) {
        (_, Some(v)) => {
            let version = state.store.template_version(v).await.map_err(|_| {
                ApiError::invalid("template_version_id", "no such template version")
            })?;
            let t = version.template_id.ok_or_else(|| {
                ApiError::invalid("template_version_id", "version belongs to no template")
            })?;
            (state.store.template(t).await?, version)
        }
        (Some(t), None) => {
            let template = state
                .store
                .template(t)
                .await
                .map_err(|_| ApiError::invalid("template_id", "no such template"))?;
            let version = state.store.template_version(template.active_version_id).await?;
            (template, version)
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "template_id",
                "template_id or template_version_id is required",
            ))
        }
    };
    let org = if org == "me" {
        state.store.organization_by_id(template.organization_id).await?
    } else {
        resolve_org(&state, &org).await?
    };
    if org.id != template.organization_id {
        return Err(ApiError::invalid("template_id", "template belongs to another organization"));
    }
    ensure_imported(&state, &version).await?;
    let now = Utc::now();
    let ws = Workspace {
        id: Uuid::new_v4(),
        organization_id: org.id,
        owner_id: owner.id,
        template_id: template.id,
        name: req.name,
        deleted: false,
        autostart_schedule: req.autostart_schedule,
        ttl_ms: req.ttl_ms,
        created_at: now,
        updated_at: now,
    };
    let new = NewBuild {
        workspace: &ws,
        build_number: 1,
        transition: Transition::Start,
        version: &version,
        initiator: caller.user.id,
        state: Vec::new(),
        parameters: json::name_values(req.rich_parameter_values),
        previous_parameters: &[],
        dry_run: false,
        log_level: None,
    };
    let (build, job) = prepare(&state, new).await?;
    match state.store.insert_workspace(&ws, &build, &job).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("A workspace with that name already exists.")
                .field("name", "already in use"))
        }
        other => other?,
    }
    state.events.publish(Event::JobQueued);
    Ok((StatusCode::CREATED, Json(json::workspace(&state, &ws).await?)))
}

#[derive(Deserialize, Default)]
pub struct GetQuery {
    #[serde(default)]
    include_deleted: bool,
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<GetQuery>,
) -> ApiResult<Json<json::WorkspaceJson>> {
    let ws = visible(&state, &caller, uuid_param("workspace", &id)?, q.include_deleted).await?;
    Ok(Json(json::workspace(&state, &ws).await?))
}

pub async fn by_owner_and_name(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult<Json<json::WorkspaceJson>> {
    let owner = resolve(&state, &caller, &user).await?;
    let ws = match state.store.workspace_by_owner_and_name(owner.id, &name).await {
        Err(StoreError::NotFound) => return Err(ApiError::not_found()),
        other => other?,
    };
    let ws = visible(&state, &caller, ws.id, false).await?;
    Ok(Json(json::workspace(&state, &ws).await?))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    #[serde(default)]
    offset: i64,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    if q.limit.is_some_and(|l| l < 0) || q.offset < 0 {
        return Err(ApiError::bad_request("limit and offset must not be negative"));
    }
    let filter = WorkspaceFilter {
        owner_id: (!access::reads_all_workspaces(caller.actor())).then_some(caller.user.id),
        include_deleted: false,
        limit: q.limit.filter(|l| *l > 0),
        offset: q.offset,
    };
    let (list, count) = state.store.workspaces(&filter).await?;
    let mut out = Vec::with_capacity(list.len());
    for ws in &list {
        out.push(json::workspace(&state, ws).await?);
    }
    Ok(Json(serde_json::json!({"workspaces": out, "count": count})))
}
