//! Templates and template versions. Creating a version queues its import
//! job (terraform init + plan, no apply), so a broken template fails before
//! anyone builds it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::users::resolve_org;
use super::{json, uuid_param, validate, Body};
use crate::domain::{
    with_default_scope, Job, JobInput, JobOrigin, JobStatus, JobType, Provisioner, Tags,
};
use crate::server::access::{Action, Resource};
use crate::server::{AppState, Event};
use crate::store::{StoreError, Template, TemplateVersion};

pub use crate::sdk::CreateTemplateVersionRequest as CreateVersion;

/// A new job in the queue for the given file and tags.
pub fn new_job(
    job_type: JobType,
    provisioner: Provisioner,
    origin: JobOrigin,
    input: &JobInput,
    tags: Tags,
) -> ApiResult<Job> {
    Job::queued(job_type, provisioner, origin, input, tags).map_err(ApiError::internal)
}

pub async fn create_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(req): Body<CreateVersion>,
) -> ApiResult<(StatusCode, Json<json::TemplateVersionJson>)> {
    if let Some(name) = &req.name {
        validate::version_name("name", name)?;
    }
    validate::max_len("message", req.message.as_deref().unwrap_or(""), validate::MAX_MESSAGE)?;
    validate::tags("tags", &req.tags)?;
    let names: Vec<&str> = req.user_variable_values.iter().map(|v| v.name.as_str()).collect();
    validate::values("user_variable_values", &names)?;
    let org = resolve_org(&state, &org).await?;
    caller.may(
        Action::Create,
        Resource::TemplateVersion { has_template: req.template_id.is_some() },
    )?;
    if req.storage_method != "file" {
        return Err(ApiError::invalid("storage_method", "only \"file\" is supported"));
    }
    let provisioner: Provisioner = req
        .provisioner
        .parse()
        .map_err(|_| ApiError::invalid("provisioner", "must be \"terraform\" or \"echo\""))?;
    match state.store.file(req.file_id).await {
        Err(StoreError::NotFound) => {
            return Err(ApiError::invalid(
                "file_id",
                "no file with that id: upload it with POST /api/v2/files",
            ))
        }
        other => drop(other?),
    }
    if let Some(t) = req.template_id {
        let template = state
            .store
            .template(t)
            .await
            .map_err(|_| ApiError::invalid("template_id", "no such template"))?;
        if template.organization_id != org.id {
            return Err(ApiError::invalid(
                "template_id",
                "template belongs to another organization",
            ));
        }
    }
    let id = Uuid::new_v4();
    let input = JobInput::TemplateVersionImport {
        template_version_id: id,
        user_variable_values: json::name_values(req.user_variable_values),
    };
    let job = new_job(
        JobType::TemplateVersionImport,
        provisioner,
        JobOrigin { organization_id: org.id, initiator_id: caller.user.id, file_id: req.file_id },
        &input,
        with_default_scope(req.tags),
    )?;
    let now = Utc::now();
    let version = TemplateVersion {
        id,
        template_id: req.template_id,
        organization_id: org.id,
        name: req.name.unwrap_or_else(|| format!("v-{}", &id.simple().to_string()[..8])),
        message: req.message.unwrap_or_default(),
        job_id: job.id,
        created_by: caller.user.id,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_template_version(&version, &job).await?;
    state.events.publish(Event::JobQueued);
    Ok((StatusCode::CREATED, Json(json::template_version(state.store.as_ref(), &version).await?)))
}

pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<json::TemplateVersionJson>> {
    let v = state.store.template_version(uuid_param("templateversion", &id)?).await?;
    caller
        .may(Action::Read, Resource::TemplateVersion { has_template: v.template_id.is_some() })?;
    Ok(Json(json::template_version(state.store.as_ref(), &v).await?))
}

pub use crate::sdk::CreateTemplateRequest as CreateTemplate;

pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(req): Body<CreateTemplate>,
) -> ApiResult<(StatusCode, Json<json::TemplateJson>)> {
    let org = resolve_org(&state, &org).await?;
    caller.may(Action::Create, Resource::Template)?;
    validate::name("name", &req.name)?;
    validate::display_name("display_name", &req.display_name)?;
    validate::max_len("description", &req.description, validate::MAX_DESCRIPTION)?;
    let version = state
        .store
        .template_version(req.template_version_id)
        .await
        .map_err(|_| ApiError::invalid("template_version_id", "no such template version"))?;
    if version.organization_id != org.id {
        return Err(ApiError::invalid(
            "template_version_id",
            "the template version belongs to another organization",
        ));
    }
    if let Some(owner) = version.template_id {
        return Err(owned_version(owner));
    }
    ensure_imported(&state, &version).await?;
    let now = Utc::now();
    let template = Template {
        id: Uuid::new_v4(),
        organization_id: org.id,
        name: req.name,
        display_name: req.display_name,
        description: req.description,
        active_version_id: version.id,
        created_by: caller.user.id,
        created_at: now,
        updated_at: now,
    };
    match state.store.insert_template(&template).await {
        Err(StoreError::Conflict(_)) => {
            // The store refuses both a taken name and a version another
            // template claimed since we read it; the version tells which.
            let now = state.store.template_version(version.id).await?;
            if let Some(owner) = now.template_id.filter(|o| *o != template.id) {
                return Err(owned_version(owner));
            }
            return Err(ApiError::conflict(format!(
                "A template named {:?} already exists.",
                template.name
            )));
        }
        other => other?,
    }
    Ok((StatusCode::CREATED, Json(json::template(state.store.as_ref(), &template).await?)))
}

/// A version backs at most one template: taking it over would leave its
/// template listing no versions.
fn owned_version(owner: Uuid) -> ApiError {
    ApiError::invalid(
        "template_version_id",
        format!(
            "the template version already belongs to template {owner}: push a new version \
             (POST /api/v2/organizations/{{organization}}/templateversions) for the new template"
        ),
    )
}

/// A version can back a template or build only once its import succeeded.
pub async fn ensure_imported(state: &AppState, version: &TemplateVersion) -> ApiResult<()> {
    let job = state.store.job(version.job_id).await?;
    match job.status() {
        JobStatus::Succeeded => Ok(()),
        status => Err(ApiError::invalid(
            "template_version_id",
            format!(
                "template version import is {status}, not succeeded{}",
                job.error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        )),
    }
}

pub async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<json::TemplateJson>> {
    caller.may(Action::Read, Resource::Template)?;
    let t = state.store.template(uuid_param("template", &id)?).await?;
    Ok(Json(json::template(state.store.as_ref(), &t).await?))
}

pub async fn template_by_name(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<Json<json::TemplateJson>> {
    caller.may(Action::Read, Resource::Template)?;
    let org = resolve_org(&state, &org).await?;
    let t = state.store.template_by_name(org.id, &name).await?;
    Ok(Json(json::template(state.store.as_ref(), &t).await?))
}

pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<json::TemplateJson>>> {
    caller.may(Action::Read, Resource::Template)?;
    let org = resolve_org(&state, &org).await?;
    let mut out = Vec::new();
    for t in state.store.templates_of_organization(org.id).await? {
        out.push(json::template(state.store.as_ref(), &t).await?);
    }
    Ok(Json(out))
}

pub async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<json::TemplateVersionJson>>> {
    caller.may(Action::Read, Resource::Template)?;
    let t = state.store.template(uuid_param("template", &id)?).await?;
    let mut out = Vec::new();
    for v in state.store.template_versions_of_template(t.id).await? {
        out.push(json::template_version(state.store.as_ref(), &v).await?);
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
    let t = state.store.template(uuid_param("template", &id)?).await?;
    caller.may(Action::Update, Resource::Template)?;
    let version = state
        .store
        .template_version(req.id)
        .await
        .map_err(|_| ApiError::invalid("id", "no such template version"))?;
    if version.template_id.is_some_and(|owner| owner != t.id)
        || version.organization_id != t.organization_id
    {
        return Err(ApiError::invalid("id", "template version belongs to another template"));
    }
    ensure_imported(&state, &version).await?;
    state.store.set_active_version(t.id, version.id).await?;
    Ok(Json(serde_json::json!({"message": "Updated the active template version."})))
}
