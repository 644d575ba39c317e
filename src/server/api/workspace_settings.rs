//! A workspace's settings (seed 002): autostart, ttl, extend, dormancy,
//! automatic updates, rename and resolve-autostart. Parse, call
//! `app/schedules.rs` (which owns every rule), render: Coder answers most of
//! these with `204 No Content`, dormancy with the workspace, extend with a
//! message.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::auth::Caller;
use super::error::ApiResult;
use super::{json, uuid_param, Body};
use crate::app::WorkspaceChange;
use crate::sdk;
use crate::server::AppState;

async fn change(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: WorkspaceChange,
) -> ApiResult<crate::store::Workspace> {
    let id = uuid_param("workspace", id)?;
    Ok(state.app().change_workspace(caller.subject(), id, change).await?)
}

pub async fn autostart(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<sdk::UpdateWorkspaceAutostartRequest>,
) -> ApiResult<StatusCode> {
    let c = WorkspaceChange { autostart_schedule: Some(req.schedule), ..Default::default() };
    change(&state, &caller, &id, c).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn ttl(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<sdk::UpdateWorkspaceTtlRequest>,
) -> ApiResult<StatusCode> {
    let c = WorkspaceChange { ttl_ms: Some(req.ttl_ms), ..Default::default() };
    change(&state, &caller, &id, c).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn autoupdates(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<sdk::UpdateWorkspaceAutomaticUpdatesRequest>,
) -> ApiResult<StatusCode> {
    let c =
        WorkspaceChange { automatic_updates: Some(req.automatic_updates), ..Default::default() };
    change(&state, &caller, &id, c).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<sdk::UpdateWorkspaceRequest>,
) -> ApiResult<StatusCode> {
    let c = WorkspaceChange { name: req.name, ..Default::default() };
    change(&state, &caller, &id, c).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn dormant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<sdk::UpdateWorkspaceDormancy>,
) -> ApiResult<Json<json::WorkspaceJson>> {
    let c = WorkspaceChange { dormant: Some(req.dormant), ..Default::default() };
    let ws = change(&state, &caller, &id, c).await?;
    Ok(Json(json::workspace(&state, &ws).await?))
}

pub async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<sdk::PutExtendWorkspaceRequest>,
) -> ApiResult<Json<sdk::Response>> {
    let id = uuid_param("workspace", &id)?;
    let at = state.app().extend_deadline(caller.subject(), id, req.deadline).await?;
    let message =
        format!("Deadline updated to {}.", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Ok(Json(sdk::Response { message }))
}

pub async fn resolve_autostart(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<sdk::ResolveAutostartResponse>> {
    let id = uuid_param("workspace", &id)?;
    let parameter_mismatch = state.app().resolve_autostart(caller.subject(), id).await?;
    Ok(Json(sdk::ResolveAutostartResponse { parameter_mismatch }))
}
