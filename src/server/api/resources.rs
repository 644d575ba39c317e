//! Resources in the seeds' `WorkspaceResource` shape, agents, apps and
//! scripts inside (codersdk's `WorkspaceAgent` fields; what only a running
//! agent could tell, such as connection times, is null or its initial
//! value), and the template version endpoints that list what an import
//! found: `resources`, `rich-parameters`, `variables`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::auth::Caller;
use super::error::ApiResult;
use super::uuid_param;
use crate::domain::{
    Agent, App, ExternalAuthProvider, ImportResult, Job, JobInput, Preset, Resource,
    StoredResource, TemplateParameter, TemplateVariable,
};
use crate::server::AppState;

pub use crate::sdk::{
    WorkspaceResource as ResourceJson, WorkspaceResourceMetadata as MetadataJson,
};

/// A stored resource row as the API shows it.
pub fn stored(r: &StoredResource) -> ResourceJson {
    render(r.id, r.job_id, r.created_at, r.transition.as_str(), &r.resource)
}

/// A resource as the API shows it; also what `provisionerd resources` prints.
pub fn render(
    id: Uuid,
    job_id: Uuid,
    created_at: DateTime<Utc>,
    transition: &str,
    r: &Resource,
) -> ResourceJson {
    let metadata = r
        .metadata
        .iter()
        .map(|m| MetadataJson {
            key: m.key.clone(),
            // Sensitive values are never sent back in clear.
            value: if m.sensitive { String::new() } else { m.value.clone() },
            sensitive: m.sensitive,
        })
        .collect();
    ResourceJson {
        id,
        job_id,
        created_at,
        workspace_transition: transition.to_owned(),
        name: r.name.clone(),
        resource_type: r.resource_type.clone(),
        module_path: r.module_path.clone(),
        instance_type: r.instance_type.clone(),
        hide: r.hide,
        icon: r.icon.clone(),
        daily_cost: r.daily_cost,
        metadata,
        agents: r.agents.iter().map(|a| agent(a, id, created_at)).collect(),
    }
}

pub(super) fn agent(a: &Agent, resource_id: Uuid, created_at: DateTime<Utc>) -> Value {
    let scripts: Vec<Value> = a
        .scripts
        .iter()
        .map(|s| {
            serde_json::json!({
                // Derived from the log source, so it is stable without a
                // stored column of its own.
                "id": Uuid::new_v5(&s.log_source_id, b"script"),
                "log_source_id": s.log_source_id,
                "display_name": s.display_name,
                "icon": s.icon,
                "script": s.script,
                "cron": s.cron,
                "log_path": s.log_path,
                "run_on_start": s.run_on_start,
                "run_on_stop": s.run_on_stop,
                "start_blocks_login": s.start_blocks_login,
                "timeout": s.timeout_seconds,
            })
        })
        .collect();
    let log_sources: Vec<Value> = a
        .scripts
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.log_source_id,
                "workspace_agent_id": a.id,
                "created_at": created_at,
                "display_name": s.display_name,
                "icon": s.icon,
            })
        })
        .collect();
    let blocking = a.scripts.iter().any(|s| s.start_blocks_login);
    serde_json::json!({
        "id": a.id,
        "resource_id": resource_id,
        "name": a.name,
        "created_at": created_at,
        "updated_at": created_at,
        "status": "connecting",
        "lifecycle_state": "created",
        "health": {"healthy": false, "reason": "agent has not connected yet"},
        "operating_system": a.operating_system,
        "architecture": a.architecture,
        "directory": a.directory,
        "expanded_directory": "",
        "environment_variables": a.env,
        "connection_timeout_seconds": a.connection_timeout_seconds,
        "troubleshooting_url": a.troubleshooting_url,
        "motd_file": a.motd_file,
        "display_apps": a.display_apps,
        "metadata": a.metadata,
        "auth": a.auth,
        "instance_id": a.instance_id.clone().unwrap_or_default(),
        "order": a.order,
        "apps": a.apps.iter().map(app).collect::<Vec<_>>(),
        "scripts": scripts,
        "log_sources": log_sources,
        "startup_script_behavior": if blocking { "blocking" } else { "non-blocking" },
        "api_version": "",
        "version": "",
        "subsystems": [],
        "latency": {},
        "logs_length": 0,
        "logs_overflowed": false,
        "first_connected_at": null,
        "last_connected_at": null,
        "disconnected_at": null,
        "started_at": null,
        "ready_at": null,
    })
}

fn app(p: &App) -> Value {
    let healthcheck = p.healthcheck.as_ref();
    serde_json::json!({
        "id": p.id,
        "slug": p.slug,
        "display_name": p.display_name,
        "command": p.command,
        "url": p.url,
        "icon": p.icon,
        "subdomain": p.subdomain,
        "subdomain_name": "",
        "sharing_level": p.sharing_level,
        "external": p.external,
        "health": if healthcheck.is_some() { "initializing" } else { "disabled" },
        "healthcheck": {
            "url": healthcheck.map(|h| h.url.as_str()).unwrap_or(""),
            "interval": healthcheck.map_or(0, |h| h.interval),
            "threshold": healthcheck.map_or(0, |h| h.threshold),
        },
        "order": p.order,
        "hidden": p.hidden,
        "open_in": p.open_in,
    })
}

/// The import job of a version the caller may read, once it has succeeded.
pub(super) async fn imported(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Job> {
    let id = uuid_param("templateversion", id)?;
    Ok(state.app().imported_version(caller.subject(), id).await?)
}

/// What the succeeded import of a version found.
pub(super) async fn import_result(state: &AppState, job: &Job) -> ApiResult<ImportResult> {
    Ok(state.store.import_result(job.id).await?.unwrap_or_default())
}

/// `GET /templateversions/{id}/resources`: the planned resources of both
/// transitions.
pub async fn version_resources(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ResourceJson>>> {
    let job = imported(&state, &caller, &id).await?;
    let resources = state.store.resources_of_job(job.id).await?;
    Ok(Json(resources.iter().map(stored).collect()))
}

/// `GET /templateversions/{id}/rich-parameters`.
pub async fn version_parameters(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    let job = imported(&state, &caller, &id).await?;
    let result = import_result(&state, &job).await?;
    Ok(Json(result.parameters.iter().map(parameter).collect()))
}

/// A template parameter as `rich-parameters` lists it (and
/// `provisionerd resources --import` prints it).
pub fn parameter(p: &TemplateParameter) -> Value {
    serde_json::json!({
        "name": p.name,
        "display_name": p.display_name,
        "description": p.description,
        "description_plaintext": p.description,
        "type": p.kind,
        "form_type": p.form_type,
        "mutable": p.mutable,
        "default_value": p.default_value,
        "icon": p.icon,
        "options": p.options,
        "validation_regex": p.validation_regex,
        "validation_error": p.validation_error,
        "validation_min": p.validation_min,
        "validation_max": p.validation_max,
        "validation_monotonic": p.validation_monotonic,
        "required": p.required,
        "ephemeral": p.ephemeral,
        "order": p.order,
    })
}

/// An external auth provider as `templateversions/{id}/external-auth`
/// shows it. No provider is configured on this server, so none is
/// authenticated and there is nowhere to log in.
pub fn external_auth(p: &ExternalAuthProvider) -> Value {
    serde_json::json!({
        "id": p.id,
        "type": p.id,
        "display_name": p.id,
        "display_icon": "",
        "authenticate_url": "",
        "authenticated": false,
        "optional": p.optional,
    })
}

/// A preset as `templateversions/{id}/presets` shows it, in Coder's shape
/// (its Go type has no JSON tags: the keys are capitalised). Its id is
/// derived from the version and its name, so it is stable across requests.
pub fn preset(version: Uuid, p: &Preset) -> Value {
    let parameters: Vec<Value> = p
        .parameters
        .iter()
        .map(|(name, value)| serde_json::json!({"Name": name, "Value": value}))
        .collect();
    serde_json::json!({
        "ID": Uuid::new_v5(&version, p.name.as_bytes()),
        "Name": p.name,
        "Parameters": parameters,
        "Default": p.default,
        "DesiredPrebuildInstances": p.prebuild_instances,
        "Description": p.description,
        "Icon": p.icon,
    })
}

/// `GET /templateversions/{id}/variables`: the template's variables with
/// the values given at import; sensitive ones never show a value.
pub async fn version_variables(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    let job = imported(&state, &caller, &id).await?;
    let given: BTreeMap<String, String> = match serde_json::from_value(job.input.clone()) {
        Ok(JobInput::TemplateVersionImport { user_variable_values, .. }) => {
            user_variable_values.iter().map(|v| (v.name.clone(), v.value.clone())).collect()
        }
        _ => BTreeMap::new(),
    };
    let result = import_result(&state, &job).await?;
    Ok(Json(result.variables.iter().map(|v| variable(v, given.get(&v.name))).collect()))
}

fn variable(v: &TemplateVariable, given: Option<&String>) -> Value {
    let hide = |s: &str| if v.sensitive { String::new() } else { s.to_owned() };
    serde_json::json!({
        "name": v.name,
        "description": v.description,
        "type": v.kind,
        "value": hide(given.map_or(&v.default_value, |g| g)),
        "default_value": hide(&v.default_value),
        "required": v.required,
        "sensitive": v.sensitive,
    })
}
