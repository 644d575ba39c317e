//! `GET /workspaceagents/{id}` and the sub-routes Coder clients call on an
//! agent, answered from the stored resources. No agent API exists here, so
//! every agent is one that never connected: it shows `connecting`, has no
//! logs, and what needs a live connection (listening ports, a terminal,
//! containers) is refused with Coder's 400 naming the agent's state. An
//! unknown agent, or one of a workspace the caller may not read, is a 404.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::uuid_param;
use crate::app::FoundAgent;
use crate::server::AppState;

/// The status every stored agent has until an agent API lets one connect.
const STATUS: &str = "connecting";

async fn found(state: &AppState, caller: &Caller, id: &str) -> ApiResult<FoundAgent> {
    let id = uuid_param("workspaceagent", id)?;
    Ok(state.app().agent(caller.subject(), id).await?)
}

/// `GET /workspaceagents/{id}`: the agent in Coder's `WorkspaceAgent` shape,
/// as the resource list of its build shows it.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let f = found(&state, &caller, &id).await?;
    Ok(Json(super::resources::agent(&f.agent, f.resource.id, f.resource.created_at)))
}

/// `GET /workspaceagents/{id}/logs` (and the older `startup-logs`): the
/// agent's log lines, none for an agent that never connected. `before` and
/// `after` are checked as Coder checks them; following needs a connected
/// agent, so it is refused rather than left waiting for lines that cannot
/// come.
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Value>>> {
    found(&state, &caller, &id).await?;
    for name in ["before", "after"] {
        if let Some(v) = q.get(name).filter(|v| !v.is_empty()) {
            if v.parse::<i64>().is_err() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("Query param {name:?} must be an integer."),
                )
                .detail(format!("{v:?} is not an integer")));
            }
        }
    }
    if q.get("follow").is_some_and(|v| v.is_empty() || v == "true") {
        return Err(not_connected()
            .detail("following agent logs needs a connected agent; read them without follow"));
    }
    Ok(Json(Vec::new()))
}

/// What needs a live connection to the agent: `listening-ports`, `pty`,
/// `containers`. Coder answers 400 naming the state for an agent that is
/// not connected, after the workspace check.
pub async fn needs_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    found(&state, &caller, &id).await?;
    Err(not_connected())
}

fn not_connected() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("Agent state is {STATUS:?}, it must be in the \"connected\" state."),
    )
}
