//! Build timings (seed 002, Coder's `WorkspaceBuildTimings`): how long each
//! provisioner stage (`init`, `plan`, `graph`, `apply`) and each resource's
//! action of a build took, as its daemon measured and reported them with
//! the completion, for a build (`/workspacebuilds/{id}/timings`) or a
//! workspace's latest build (`/workspaces/{id}/timings`). Who may read them
//! is who may read the build. Agent timings are empty: no agent connects.

use axum::extract::{Path, State};
use axum::Json;

use super::auth::Caller;
use super::error::ApiResult;
use super::uuid_param;
use crate::domain::{ProvisionerTiming, WorkspaceBuild};
use crate::sdk;
use crate::server::AppState;

pub async fn build(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<sdk::WorkspaceBuildTimings>> {
    let id = uuid_param("workspacebuild", &id)?;
    let (build, timings) = state.app().build_timings(caller.subject(), id).await?;
    Ok(Json(render(&build, timings)))
}

pub async fn workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<sdk::WorkspaceBuildTimings>> {
    let id = uuid_param("workspace", &id)?;
    let (build, timings) = state.app().workspace_timings(caller.subject(), id).await?;
    Ok(Json(render(&build, timings)))
}

fn render(build: &WorkspaceBuild, timings: Vec<ProvisionerTiming>) -> sdk::WorkspaceBuildTimings {
    let provisioner_timings = timings
        .into_iter()
        .map(|t| sdk::ProvisionerTiming {
            job_id: build.job_id,
            started_at: t.started_at,
            ended_at: t.ended_at,
            stage: t.stage.as_str().to_owned(),
            source: t.source,
            action: t.action,
            resource: t.resource,
        })
        .collect();
    sdk::WorkspaceBuildTimings {
        provisioner_timings,
        agent_script_timings: Vec::new(),
        agent_connection_timings: Vec::new(),
    }
}
