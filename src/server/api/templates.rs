//! Templates and template versions. Creating a version queues its import
//! job (terraform init + plan, no apply), so a broken template fails before
//! anyone builds it. Parse, call `app/templates.rs`, render.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::auth::Caller;
use super::error::ApiResult;
use super::{json, uuid_param, Body};
use crate::app::{NewTemplate, NewVersion};
use crate::server::AppState;

pub use crate::sdk::CreateTemplateVersionRequest as CreateVersion;

pub async fn create_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(req): Body<CreateVersion>,
) -> ApiResult<(StatusCode, Json<json::TemplateVersionJson>)> {
    let new = NewVersion {
        file_id: req.file_id,
        storage_method: req.storage_method,
        provisioner: req.provisioner,
        tags: req.tags,
        name: req.name,
        template_id: req.template_id,
        message: req.message,
        user_variable_values: json::name_values(req.user_variable_values),
    };
    let version = state.app().import_version(caller.subject(), &org, new).await?;
    Ok((StatusCode::CREATED, Json(json::template_version(&state, &version).await?)))
}

pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<json::TemplateVersionJson>> {
    let id = uuid_param("templateversion", &id)?;
    let v = state.app().template_version(caller.subject(), id).await?;
    Ok(Json(json::template_version(&state, &v).await?))
}

pub use crate::sdk::CreateTemplateRequest as CreateTemplate;

pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(req): Body<CreateTemplate>,
) -> ApiResult<(StatusCode, Json<json::TemplateJson>)> {
    let new = NewTemplate {
        name: req.name,
        template_version_id: req.template_version_id,
        display_name: req.display_name,
        description: req.description,
    };
    let template = state.app().create_template(caller.subject(), &org, new).await?;
    Ok((StatusCode::CREATED, Json(json::template(state.store.as_ref(), &template).await?)))
}

pub async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<json::TemplateJson>> {
    let t = state.app().template(caller.subject(), uuid_param("template", &id)?).await?;
    Ok(Json(json::template(state.store.as_ref(), &t).await?))
}

pub async fn template_by_name(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<Json<json::TemplateJson>> {
    let t = state.app().template_by_name(caller.subject(), &org, &name).await?;
    Ok(Json(json::template(state.store.as_ref(), &t).await?))
}

pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<json::TemplateJson>>> {
    let mut out = Vec::new();
    for t in state.app().templates(caller.subject(), &org).await? {
        out.push(json::template(state.store.as_ref(), &t).await?);
    }
    Ok(Json(out))
}

pub async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<json::TemplateVersionJson>>> {
    let template = uuid_param("template", &id)?;
    let mut out = Vec::new();
    for v in state.app().versions_of(caller.subject(), template).await? {
        out.push(json::template_version(&state, &v).await?);
    }
    Ok(Json(out))
}

pub use crate::sdk::UpdateActiveTemplateVersion as Promote;

pub async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<Promote>,
) -> ApiResult<Json<serde_json::Value>> {
    let template = uuid_param("template", &id)?;
    state.app().promote(caller.subject(), template, req.id).await?;
    Ok(Json(serde_json::json!({"message": "Updated the active template version."})))
}
