//! Users, sessions and organizations: first-user setup, login/logout,
//! creating users and changing their site roles (owners and user admins),
//! and lookups by `me`, name or id. Who may do what is `access`'s call.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use uuid::Uuid;

use super::auth::{hash_password_pooled, new_session, verify_password_pooled, Caller};
use super::error::{ApiError, ApiResult};
use super::{json, validate, Body};
use crate::domain::Role;
use crate::server::access::{Action, Resource};
use crate::server::AppState;
use crate::store::{Organization, StoreError, User};

/// Shortest password accepted.
const MIN_PASSWORD: usize = 8;

pub use crate::sdk::CreateUserRequest as CreateUser;

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
        password_hash: hash_password_pooled(&req.password).await?,
        roles: if is_owner { vec![Role::Owner] } else { Vec::new() },
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
    caller.may(Action::Create, Resource::User { id: Uuid::nil() })?;
    let org = state.store.default_organization().await?;
    let user = insert(&state, req, false).await?;
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
    caller.may(Action::Read, Resource::User { id: user.id })?;
    let org = state.store.default_organization().await?;
    Ok(Json(json::user(&user, &org)))
}

pub use crate::sdk::UpdateRolesRequest as UpdateRoles;

/// The site roles a request names, in `Role::ALL` order; `member` is
/// implicit, so naming it changes nothing.
fn parse_roles(names: &[String]) -> ApiResult<Vec<Role>> {
    let mut wanted = Vec::new();
    for name in names {
        match name.parse::<Role>() {
            Ok(role) => wanted.push(role),
            Err(_) if name == "member" => {}
            Err(_) => {
                return Err(ApiError::invalid(
                    "roles",
                    format!(
                        "unknown role {name:?}: use owner, template-admin, user-admin or member"
                    ),
                ))
            }
        }
    }
    Ok(Role::ALL.into_iter().filter(|r| wanted.contains(r)).collect())
}

/// `PUT /users/{user}/roles`: replaces the user's site roles; each role
/// granted or taken away must be one the caller may assign.
pub async fn put_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    Body(req): Body<UpdateRoles>,
) -> ApiResult<Json<json::UserJson>> {
    let target = resolve(&state, &caller, &user).await?;
    caller.may(Action::Read, Resource::User { id: target.id })?;
    if target.id == caller.user.id {
        return Err(ApiError::bad_request("You cannot change your own roles.")
            .detail("ask another owner or user admin to change them"));
    }
    caller.may(Action::Update, Resource::User { id: target.id })?;
    let wanted = parse_roles(&req.roles)?;
    for role in Role::ALL {
        match (target.roles.contains(&role), wanted.contains(&role)) {
            (false, true) => caller.may(Action::Create, Resource::RoleAssignment { role })?,
            (true, false) => caller.may(Action::Delete, Resource::RoleAssignment { role })?,
            _ => {}
        }
    }
    state.store.set_user_roles(target.id, &wanted).await?;
    let user = state.store.user_by_id(target.id).await?;
    let org = state.store.default_organization().await?;
    Ok(Json(json::user(&user, &org)))
}

pub async fn organizations(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Vec<json::OrganizationJson>>> {
    let user = resolve(&state, &caller, &user).await?;
    caller.may(Action::Read, Resource::User { id: user.id })?;
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
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<json::OrganizationJson>> {
    caller.may(Action::Read, Resource::Organization)?;
    Ok(Json(json::organization(&resolve_org(&state, &org).await?)))
}

/// Daemons connected to this server that serve the organization.
pub async fn daemons(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<json::DaemonJson>>> {
    caller.may(Action::Read, Resource::ProvisionerDaemon)?;
    resolve_org(&state, &org).await?;
    Ok(Json(state.daemons.list().iter().map(json::daemon).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_in_a_fixed_order_without_member_or_duplicates() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = parse_roles(&names(&["user-admin", "member", "owner", "user-admin"]));
        assert_eq!(got.expect("valid"), vec![Role::Owner, Role::UserAdmin]);
        assert!(parse_roles(&[]).expect("none").is_empty());
        let err = parse_roles(&names(&["owner", "root"])).expect_err("unknown role");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.validations[0].field, "roles");
        assert!(err.detail.contains("\"root\""), "{}", err.detail);
    }
}
