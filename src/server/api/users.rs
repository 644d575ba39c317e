//! Users, sessions and organizations: first-user setup, login/logout,
//! creating users (owners only), and lookups by `me`, name or id.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::{hash_password, new_session, verify_password, Caller};
use super::error::{ApiError, ApiResult};
use super::{json, validate, Body};
use crate::server::AppState;
use crate::store::{Organization, StoreError, User};

/// Shortest password accepted.
const MIN_PASSWORD: usize = 8;

#[derive(Deserialize)]
pub struct CreateUser {
    username: String,
    email: String,
    password: String,
    #[serde(default)]
    name: String,
}

/// Coder's rules: the username is a name (`validate::name`), the real name
/// at most 128 characters without surrounding whitespace.
fn validate_user(req: &CreateUser) -> ApiResult<()> {
    validate::name("username", &req.username)?;
    validate::email("email", &req.email)?;
    validate::real_name("name", &req.name)?;
    if req.password.len() < MIN_PASSWORD {
        return Err(ApiError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD} characters"),
        ));
    }
    Ok(())
}

async fn insert(state: &AppState, req: CreateUser, is_owner: bool) -> ApiResult<User> {
    validate_user(&req)?;
    let user = User {
        id: Uuid::new_v4(),
        username: req.username,
        email: req.email,
        name: req.name,
        password_hash: hash_password(&req.password)?,
        is_owner,
        created_at: Utc::now(),
    };
    // The first user (the owner) is inserted only while no user exists, in
    // one statement, so racing setups cannot both win.
    let (inserted, taken) = if is_owner {
        (state.store.insert_first_user(&user).await, "The initial user has already been created.")
    } else {
        (state.store.insert_user(&user).await, "A user with that username or email already exists.")
    };
    match inserted {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict(_)) => Err(ApiError::conflict(taken)),
        Err(e) => Err(e.into()),
    }
}

pub async fn create_first(
    State(state): State<AppState>,
    Body(req): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    if state.store.count_users().await? > 0 {
        return Err(ApiError::conflict("The initial user has already been created."));
    }
    let org = state.store.default_organization().await?;
    let user = insert(&state, req, true).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"user_id": user.id, "organization_id": org.id})),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<json::UserJson>)> {
    if !caller.user.is_owner {
        return Err(ApiError::forbidden("Only an owner can create users."));
    }
    let org = state.store.default_organization().await?;
    let user = insert(&state, req, false).await?;
    Ok((StatusCode::CREATED, Json(json::user(&user, &org))))
}

#[derive(Deserialize)]
pub struct Login {
    email: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    Body(req): Body<Login>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let bad = || ApiError::unauthorized("Incorrect email or password.");
    let user = match state.store.user_by_email(&req.email).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => {
            // Spend the same work as a real check so timing does not reveal
            // which emails exist.
            let _ = hash_password(&req.password);
            return Err(bad());
        }
        Err(e) => return Err(e.into()),
    };
    if !verify_password(&req.password, &user.password_hash) {
        return Err(bad());
    }
    let token = new_session(&state, &user).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"session_token": token}))))
}

pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    state.store.delete_api_key(&caller.key_id).await?;
    Ok(Json(serde_json::json!({"message": "Logged out."})))
}

/// Resolves a `{user}` path parameter: `me`, a UUID or a username.
pub async fn resolve(state: &AppState, caller: &Caller, param: &str) -> ApiResult<User> {
    if param == "me" {
        return Ok(caller.user.clone());
    }
    let found = match param.parse::<Uuid>() {
        Ok(id) => state.store.user_by_id(id).await,
        Err(_) => state.store.user_by_username(param).await,
    };
    Ok(found?)
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<json::UserJson>> {
    let user = resolve(&state, &caller, &user).await?;
    let org = state.store.default_organization().await?;
    Ok(Json(json::user(&user, &org)))
}

pub async fn organizations(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Vec<json::OrganizationJson>>> {
    let user = resolve(&state, &caller, &user).await?;
    let orgs = state.store.organizations_of_user(user.id).await?;
    Ok(Json(orgs.iter().map(json::organization).collect()))
}

/// Resolves an `{organization}` path parameter: a UUID or a name.
pub async fn resolve_org(state: &AppState, param: &str) -> ApiResult<Organization> {
    // Make sure the default organization exists before looking it up by name.
    let default = state.store.default_organization().await?;
    let found = match param.parse::<Uuid>() {
        Ok(id) if id == default.id => return Ok(default),
        Ok(id) => state.store.organization_by_id(id).await,
        Err(_) => state.store.organization_by_name(param).await,
    };
    Ok(found?)
}

pub async fn organization(
    State(state): State<AppState>,
    _caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<json::OrganizationJson>> {
    Ok(Json(json::organization(&resolve_org(&state, &org).await?)))
}

/// Daemons connected to this server that serve the organization.
pub async fn daemons(
    State(state): State<AppState>,
    _caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<json::DaemonJson>>> {
    resolve_org(&state, &org).await?;
    Ok(Json(state.daemons.list().iter().map(json::daemon).collect()))
}
