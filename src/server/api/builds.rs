//! Workspace builds (seed 001): create with the transition rules of seed
//! 000, get by id or by owner/workspace/number, list, resources, raw state,
//! parameters and cancel. Each handler parses, calls the use case
//! (`app/builds.rs`, which owns the rules and the permission checks) and
//! renders.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::{json, uuid_param, Body, Query};
use crate::app::BuildRequest;
use crate::domain::{BuildReason, Transition};
use crate::server::AppState;
use crate::store::BuildPage;
use uuid::Uuid;

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
    let request = BuildRequest {
        transition,
        reason: BuildReason::Initiator,
        template_version_id: req.template_version_id,
        parameters: json::name_values(req.rich_parameter_values.unwrap_or_default()),
        state: req.state,
        orphan: req.orphan,
        dry_run: req.dry_run,
        log_level: req.log_level,
    };
    let ws = uuid_param("workspace", &id)?;
    let build = state.app().queue_build(caller.subject(), ws, request).await?;
    Ok((StatusCode::CREATED, Json(json::build(&state, &build).await?)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<json::BuildJson>> {
    let build = state.app().build(caller.subject(), uuid_param("workspacebuild", &id)?).await?;
    Ok(Json(json::build(&state, &build).await?))
}

pub async fn by_number(
    State(state): State<AppState>,
    caller: Caller,
    Path((user, name, number)): Path<(String, String, String)>,
) -> ApiResult<Json<json::BuildJson>> {
    let app = state.app();
    let owner = app.user_by_ref(&caller.user, &user).await?;
    let number: i32 =
        number.parse().map_err(|_| ApiError::invalid("buildnumber", "must be a number"))?;
    let build = app.build_by_number(caller.subject(), owner.id, &name, number).await?;
    Ok(Json(json::build(&state, &build).await?))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    #[serde(default)]
    offset: i64,
    since: Option<DateTime<Utc>>,
    after_id: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<json::BuildJson>>> {
    let page = BuildPage {
        limit: q.limit.filter(|l| *l > 0),
        offset: q.offset.max(0),
        since: q.since,
        after_number: None,
    };
    let after = match q.after_id.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(
            a.parse::<Uuid>()
                .map_err(|_| ApiError::invalid("after_id", format!("{a:?} is not a UUID")))?,
        ),
        None => None,
    };
    let ws = uuid_param("workspace", &id)?;
    let builds = state.app().builds_of_workspace(caller.subject(), ws, page, after).await?;
    Ok(Json(json::builds(&state, &builds).await?))
}

pub async fn resources(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<super::resources::ResourceJson>>> {
    let build = state.app().build(caller.subject(), uuid_param("workspacebuild", &id)?).await?;
    let rows = state.store.resources_of_job(build.job_id).await?;
    Ok(Json(rows.iter().map(super::resources::stored).collect()))
}

pub async fn raw_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = uuid_param("workspacebuild", &id)?;
    let raw = state.app().raw_state(caller.subject(), id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], raw))
}

pub async fn parameters(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<json::ParameterJson>>> {
    let build = state.app().build(caller.subject(), uuid_param("workspacebuild", &id)?).await?;
    Ok(Json(json::parameters(&build.rich_parameters)))
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = uuid_param("workspacebuild", &id)?;
    state.app().cancel_build(caller.subject(), id).await?;
    Ok(Json(serde_json::json!({"message": "Job has been marked as canceled."})))
}
