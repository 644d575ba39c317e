//! Workspaces (seed 002): create (which queues the first start build), get
//! by id or by owner and name, and list. Parse, call `app/workspaces.rs`
//! (which decides who sees what: anything hidden is a 404, so existence
//! never leaks), render.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiResult;
use super::{json, uuid_param, Body, Query};
use crate::app::NewWorkspace;
use crate::server::AppState;

pub use crate::sdk::CreateWorkspaceRequest as CreateWorkspace;

pub async fn create_for_user(
    state: State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    body: Body<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<json::WorkspaceJson>)> {
    create(state, caller, None, user, body).await
}

pub async fn create_for_member(
    state: State<AppState>,
    caller: Caller,
    Path((org, user)): Path<(String, String)>,
    body: Body<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<json::WorkspaceJson>)> {
    // `me` names no organization: the template's is used, as without one.
    create(state, caller, Some(org).filter(|o| o != "me"), user, body).await
}

/// `org` is `None` on the route without one: the template's organization.
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    org: Option<String>,
    user: String,
    Body(req): Body<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<json::WorkspaceJson>)> {
    let app = state.app();
    let owner = app.user_by_ref(&caller.user, &user).await?;
    let new = NewWorkspace {
        name: req.name,
        template_id: req.template_id,
        template_version_id: req.template_version_id,
        rich_parameter_values: json::name_values(req.rich_parameter_values),
        autostart_schedule: req.autostart_schedule,
        ttl_ms: req.ttl_ms,
        automatic_updates: req.automatic_updates,
    };
    let (ws, _) = app.create_workspace(caller.subject(), &owner, org.as_deref(), new).await?;
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
    let id = uuid_param("workspace", &id)?;
    let ws = state.app().workspace(caller.subject(), id, q.include_deleted).await?;
    Ok(Json(json::workspace(&state, &ws).await?))
}

pub async fn by_owner_and_name(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    Query(q): Query<GetQuery>,
) -> ApiResult<Json<json::WorkspaceJson>> {
    let app = state.app();
    let owner = app.user_by_ref(&caller.user, &user).await?;
    let ws = app.workspace_by_name(caller.subject(), owner.id, &name, q.include_deleted).await?;
    Ok(Json(json::workspace(&state, &ws).await?))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    q: String,
    // Seed 003's separate filters.
    owner: Option<String>,
    template: Option<String>,
    name: Option<String>,
    status: Option<String>,
    has_agent: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let params: Vec<(&str, String)> = [
        ("owner", q.owner),
        ("template", q.template),
        ("name", q.name),
        ("status", q.status),
        ("has-agent", q.has_agent),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let app = state.app();
    let (list, count) = app.workspaces(caller.subject(), &q.q, params, q.limit, q.offset).await?;
    let out = json::workspaces(&state, &list).await?;
    Ok(Json(serde_json::json!({"workspaces": out, "count": count})))
}

async fn favorite(state: AppState, caller: Caller, id: String, on: bool) -> ApiResult<StatusCode> {
    let id = uuid_param("workspace", &id)?;
    state.app().set_favorite(caller.subject(), id, on).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn put_favorite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    favorite(state, caller, id, true).await
}

pub async fn delete_favorite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    favorite(state, caller, id, false).await
}

/// `POST usage`: any body (Coder's agent and app names) is accepted and
/// not needed; the use is what counts.
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = uuid_param("workspace", &id)?;
    state.app().workspace_used(caller.subject(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
