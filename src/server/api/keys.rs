//! Provisioner keys per organization: create (the secret is shown once),
//! list (never the secret), delete (which disconnects daemons using it).
//! Owners and template admins only: to Coder a key is a provisioner daemon.
//! Parse, call `app/provisioners.rs`, render.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::auth::Caller;
use super::error::ApiResult;
use super::Body;
use crate::server::AppState;
use crate::store::ProvisionerKey;

pub use crate::sdk::CreateProvisionerKeyRequest as CreateKey;

pub use crate::sdk::ProvisionerKey as KeyJson;

fn key_json(k: &ProvisionerKey) -> KeyJson {
    KeyJson {
        id: k.id,
        organization: k.organization_id,
        name: k.name.clone(),
        tags: k.tags.clone(),
        created_at: k.created_at,
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(req): Body<CreateKey>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let (_, token) = state.app().create_key(caller.subject(), &org, req.name, req.tags).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"key": token}))))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<KeyJson>>> {
    let keys = state.app().keys(caller.subject(), &org).await?;
    Ok(Json(keys.iter().map(key_json).collect()))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.app().delete_key(caller.subject(), &org, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
