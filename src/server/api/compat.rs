//! Routes and request details Coder clients rely on beyond the seeds: the
//! site-wide organization and template lists, a template's version by name,
//! the (empty) template examples, and a trailing slash accepted on every
//! route as Coder's router accepts it (`/templates/{id}/versions/`).

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::Json;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::{json, uuid_param};
use crate::server::AppState;

/// Drops one trailing `/` from the path (not from `/` itself) before
/// routing, keeping the query.
pub async fn trim_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let target = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        let mut parts = req.uri().clone().into_parts();
        // A path rebuilt from a valid one stays valid; if not, leave it.
        if let Ok(pq) = target.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// `GET /organizations`: the organizations the caller belongs to.
pub async fn organizations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<json::OrganizationJson>>> {
    let orgs = state.app().organizations_of(caller.subject(), &caller.user, "me").await?;
    Ok(Json(orgs.iter().map(json::organization).collect()))
}

/// `GET /templates`: the templates of every organization the caller
/// belongs to.
pub async fn templates(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<json::TemplateJson>>> {
    let app = state.app();
    let mut out = Vec::new();
    for org in app.organizations_of(caller.subject(), &caller.user, "me").await? {
        for t in app.templates(caller.subject(), &org.id.to_string()).await? {
            out.push(json::template(state.store.as_ref(), &t).await?);
        }
    }
    Ok(Json(out))
}

/// `GET /templates/{id}/versions/{name}`: a template's version by name.
pub async fn version_by_name(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Json<json::TemplateVersionJson>> {
    let template = uuid_param("template", &id)?;
    let versions = state.app().versions_of(caller.subject(), template).await?;
    let version = versions.iter().find(|v| v.name == name).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("No template version found by name {name:?}."))
            .detail("list the template's versions at /api/v2/templates/{id}/versions")
    })?;
    Ok(Json(json::template_version(&state, version).await?))
}

/// `GET /organizations/{org}/templates/examples`: this server ships no
/// example templates.
pub async fn examples(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    state.app().organization(caller.subject(), &org).await?;
    Ok(Json(Vec::new()))
}

/// `GET /templateversions/{id}/external-auth`: the providers the template
/// asks for (see [`super::resources::external_auth`]).
pub async fn version_external_auth(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let job = super::resources::imported(&state, &caller, &id).await?;
    let result = super::resources::import_result(&state, &job).await?;
    Ok(Json(result.external_auth.iter().map(super::resources::external_auth).collect()))
}

/// `GET /templateversions/{id}/presets`, in Coder's shape (see
/// [`super::resources::preset`]).
pub async fn version_presets(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let job = super::resources::imported(&state, &caller, &id).await?;
    let result = super::resources::import_result(&state, &job).await?;
    let version = uuid_param("templateversion", &id)?;
    Ok(Json(result.presets.iter().map(|p| super::resources::preset(version, p)).collect()))
}
