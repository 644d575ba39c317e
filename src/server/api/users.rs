//! Users, sessions and organizations: first-user setup, login/logout,
//! creating users (owners only), and lookups by `me`, name or id.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::{hash_password_pooled, new_session, verify_password_pooled, Caller};
use super::error::{ApiError, ApiResult};
use super::{json, Body};
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

fn validate_user(req: &CreateUser) -> ApiResult<()> {
    let name_ok = !req.username.is_empty()
        && req.username.len() <= 32
        && req.username.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(ApiError::invalid("username", "must be 1-32 letters, digits, '-' or '_'"));
    }
    if !req.email.contains('@') {
        return Err(ApiError::invalid("email", "must be an email address"));
    }
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
        password_hash: hash_password_pooled(&req.password).await?,
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

/// Logs in with email and password. Failed logins are limited per account
/// and per source address (`LoginLimits`); past the limit the answer is 429
/// with `Retry-After`, before any password hash is spent. Hashes run in a
/// bounded pool off the async threads, so a login flood cannot stall other
/// requests.
pub async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Body(req): Body<Login>,
) -> Response {
    let address = peer.map(|Extension(ConnectInfo(a))| a.ip().to_string());
    let attempt = match state.limits.logins.begin(&req.email, address.as_deref()) {
        Ok(attempt) => attempt,
        Err(wait) => {
            // Whole seconds, rounded up, so a client that waits this long is
            // let in.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::warn!(
                address = address.as_deref().unwrap_or("unknown"),
                "login refused: too many failed attempts"
            );
            let err =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many failed login attempts.")
                    .detail(format!(
                        "wait {secs} s before trying again, or ask an owner to reset the password"
                    ));
            return ([(header::RETRY_AFTER, secs.to_string())], err).into_response();
        }
    };
    match check_login(&state, &req).await {
        Ok(Some(user)) => {
            attempt.succeeded();
            match new_session(&state, &user).await {
                Ok(token) => {
                    (StatusCode::CREATED, Json(serde_json::json!({"session_token": token})))
                        .into_response()
                }
                Err(e) => e.into_response(),
            }
        }
        // The attempt is dropped without `succeeded`, so it counts.
        Ok(None) => ApiError::unauthorized("Incorrect email or password.").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The user whose email and password these are, if any.
async fn check_login(state: &AppState, req: &Login) -> ApiResult<Option<User>> {
    let user = match state.store.user_by_email(&req.email).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => {
            // Spend the same work as a real check so timing does not reveal
            // which emails exist.
            hash_password_pooled(&req.password).await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    Ok(verify_password_pooled(&req.password, &user.password_hash).await?.then_some(user))
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
