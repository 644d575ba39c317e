//! Provisioner keys per organization: create (the secret is shown once),
//! list (never the secret), delete (which disconnects daemons using it).
//! Owners and template admins only: to Coder a key is a provisioner daemon.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::users::resolve_org;
use super::{validate, validate_name, Body};
use crate::domain::with_default_scope;
use crate::server::access::{Action, Resource};
use crate::server::{AppState, Event};
use crate::store::{ProvisionerKey, StoreError};

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
    caller.may(Action::Create, Resource::ProvisionerDaemon)?;
    let org = resolve_org(&state, &org).await?;
    validate_name("name", &req.name)?;
    validate::tags("tags", &req.tags)?;
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    let key = ProvisionerKey {
        id: Uuid::new_v4(),
        organization_id: org.id,
        name: req.name,
        hashed_secret: Sha256::digest(secret.as_bytes()).to_vec(),
        tags: with_default_scope(req.tags),
        created_at: Utc::now(),
    };
    match state.store.insert_provisioner_key(&key).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(format!(
                "A provisioner key named {:?} already exists.",
                key.name
            )))
        }
        other => other?,
    }
    // The only time the secret leaves the server.
    Ok((StatusCode::CREATED, Json(serde_json::json!({"key": format!("{}.{secret}", key.id)}))))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<KeyJson>>> {
    caller.may(Action::Read, Resource::ProvisionerDaemon)?;
    let org = resolve_org(&state, &org).await?;
    Ok(Json(state.store.provisioner_keys(org.id).await?.iter().map(key_json).collect()))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.may(Action::Delete, Resource::ProvisionerDaemon)?;
    let org = resolve_org(&state, &org).await?;
    let key = state.store.delete_provisioner_key(org.id, &name).await?;
    state.events.publish(Event::KeyRevoked(key.id));
    Ok(StatusCode::NO_CONTENT)
}
