//! `GET /organizations/{organization}/provisionerdaemons`: the daemons
//! connected to this server (`server/daemons.rs` keeps them), for owners
//! and template admins (`app/provisioners.rs` decides).

use axum::extract::{Path, State};
use axum::Json;

use super::auth::Caller;
use super::error::ApiResult;
use super::json;
use crate::server::AppState;

/// Daemons connected to this server that serve the organization.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<json::DaemonJson>>> {
    let daemons = state.app().daemons(caller.subject(), &org, &state.daemons).await?;
    Ok(Json(daemons.iter().map(json::daemon).collect()))
}
