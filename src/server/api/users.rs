//! Users, sessions and organizations: first-user setup, login/logout,
//! creating users and changing their site roles (owners and user admins),
//! and lookups by `me`, name or id. Parse, call `app/users.rs` (where
//! `access` decides who may do what), render; logins and sessions are
//! HTTP's own (tokens, the failed-login limiter).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::auth::{new_session, Caller};
use super::error::{ApiError, ApiResult};
use super::{json, Body};
use crate::app::passwords::{hash_password_pooled, verify_password_pooled};
use crate::app::NewUser;
use crate::server::AppState;
use crate::store::{StoreError, User};

pub use crate::sdk::CreateUserRequest as CreateUser;

impl From<CreateUser> for NewUser {
    fn from(r: CreateUser) -> Self {
        NewUser { username: r.username, email: r.email, password: r.password, name: r.name }
    }
}

pub async fn create_first(
    State(state): State<AppState>,
    Body(req): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let (user, org) = state.app().create_first_user(req.into()).await?;
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
    let (user, org) = state.app().create_user(caller.subject(), req.into()).await?;
    Ok((StatusCode::CREATED, Json(json::user(&user, &org))))
}

pub use crate::sdk::LoginRequest as Login;

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

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<json::UserJson>> {
    let (user, org) = state.app().user(caller.subject(), &caller.user, &user).await?;
    Ok(Json(json::user(&user, &org)))
}

pub use crate::sdk::UpdateRolesRequest as UpdateRoles;

/// `PUT /users/{user}/roles`: replaces the user's site roles; each role
/// granted or taken away must be one the caller may assign.
pub async fn put_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    Body(req): Body<UpdateRoles>,
) -> ApiResult<Json<json::UserJson>> {
    let (user, org) =
        state.app().set_roles(caller.subject(), &caller.user, &user, &req.roles).await?;
    Ok(Json(json::user(&user, &org)))
}

pub async fn organizations(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Vec<json::OrganizationJson>>> {
    let orgs = state.app().organizations_of(caller.subject(), &caller.user, &user).await?;
    Ok(Json(orgs.iter().map(json::organization).collect()))
}

pub async fn organization(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<json::OrganizationJson>> {
    Ok(Json(json::organization(&state.app().organization(caller.subject(), &org).await?)))
}
